// The digest of an order's plan, so that a submitter can execute exactly
// the plan a human reviewed (docs/ORDERS.md "Reviewed plans"). Format, not
// to be changed without a new version tag:
//
//   leaf  = SHA-256(role ‖ digest(32) ‖ size(8, big-endian) ‖ kind(1) ‖
//                   edge type(1) ‖ L(relation) ‖ has parent(1) ‖ parent(32) ‖
//                   L(dataset) ‖ L(hold id) ‖ L(hold reason))
//                                                 L(s) = len(s)(8) ‖ s
//   plan  = "sha256:" hex(SHA-256("shredd-plan-v2\n" ‖ L(canonical spec) ‖
//                   count(8) ‖ leaves sorted bytewise))
//
// v2 (2026-12) added the hold's reason: the reviewer approves what the
// certificate will say a hold retains, and a hold removed and placed again
// under the same id with another reason changes the plan. A plan reviewed
// under v1 no longer matches: plan it again.
//
// role is 's' (selected), 'd' (derived) or 'r' (retained). The leaves are
// sorted, so the digest does not depend on the order in which the closure
// is walked; it keeps 32 bytes per item until Finish.
#ifndef SHREDD_DAEMON_ORDERS_PLAN_DIGEST_H_
#define SHREDD_DAEMON_ORDERS_PLAN_DIGEST_H_

#include <string>
#include <string_view>
#include <vector>

#include "daemon/crypto/digest.h"
#include "daemon/orders/closure.h"
#include "daemon/orders/orders.h"

namespace shredd {

class PlanDigest {
 public:
  void Add(const PlannedItem& p, ClosureRole role);
  // "sha256:<hex>" over the spec's canonical form and every item added.
  std::string Finish(const OrderSpec& spec);

 private:
  std::vector<Sha256> leaves_;
};

// FAILED_PRECONDITION unless `actual` is the reviewed `expected` digest,
// saying what the closure holds now.
absl::Status CheckReviewedPlan(const OrderSpec& spec, std::string_view actual, uint64_t selected, uint64_t derived,
                               uint64_t retained);

}  // namespace shredd

#endif  // SHREDD_DAEMON_ORDERS_PLAN_DIGEST_H_
