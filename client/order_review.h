// What a human reviews before an irreversible deletion: the plan of an
// order as a summary or a list, the plan file (`order plan -o`, read back
// by `order submit --plan`), the difference between a reviewed plan and the
// store's current one, and the confirmation prompt (docs/CLI.md, "Orders").
#ifndef SHREDD_CLIENT_ORDER_REVIEW_H_
#define SHREDD_CLIENT_ORDER_REVIEW_H_

#include <string>
#include <vector>

#include "shredd/v1/orders.pb.h"
#include "shredd/v1/shredd.pb.h"
#include <nlohmann/json.hpp>

#include "client/cli_common.h"

namespace shredd::cli {

std::string BasisName(shredd::v1::LegalBasis b);  // "ftc-order", ...; "" if unset
// Throws Failure (usage) naming `flag` for an unknown name.
shredd::v1::LegalBasis BasisFromName(const std::string& s, std::string_view flag = "--basis");

// The plan as --json prints it and as the plan file holds it.
nlohmann::json PlanJson(const shredd::v1::Plan& plan);
// Counts per kind, derived models with names and edges, holds, unmatched
// selectors.
std::string PlanSummaryText(const shredd::v1::Plan& plan);
// Every listed item with its file name and subjects.
std::string PlanListText(const shredd::v1::Plan& plan);

// The plan file: {"type":"shredd-order-plan-v1","spec":{...},"planDigest",
// "plan":{...}}; private (it names subjects).
std::string PlanFileText(const shredd::v1::OrderSpec& spec, const shredd::v1::Plan& plan);
struct ReviewedPlan {
  shredd::v1::OrderSpec spec;  // with expected_plan_digest set
  nlohmann::json plan;         // PlanJson of the reviewed plan
};
// Throws Failure (usage) naming the file and what is wrong with it.
ReviewedPlan ReadPlanFile(const std::string& path);
// What differs between the reviewed plan and `now`: lines, empty if the
// lists and counts are the same.
std::vector<std::string> PlanDiff(const nlohmann::json& reviewed, const shredd::v1::Plan& now);

// What `shred` is about to destroy: the digests, with the file each came
// from when a file was named.
std::string ShredSummary(const std::vector<std::string>& args, const shredd::v1::ShredRequest& req);

// On a terminal (stdin and stderr), prints `summary` and asks `question`
// [y/N] on stderr; throws Failure (exit 1, `declined`) unless answered yes.
// Without a terminal, or with `yes`, asks nothing.
void ConfirmOrThrow(bool yes, const std::string& summary, const std::string& question, const std::string& declined);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_ORDER_REVIEW_H_
