#include "daemon/orders/plan_digest.h"

#include <algorithm>

#include "daemon/base/coding.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {

void AppendString(std::string* out, std::string_view s) {
  AppendBigEndian64(out, s.size());
  out->append(s);
}

void AppendHash(std::string* out, const Sha256& h) { out->append(reinterpret_cast<const char*>(h.data()), h.size()); }

char RoleByte(ClosureRole role) {
  switch (role) {
    case ClosureRole::kSelected:
      return 's';
    case ClosureRole::kDerived:
      return 'd';
    case ClosureRole::kRetained:
      return 'r';
  }
  return '?';
}

}  // namespace

void PlanDigest::Add(const PlannedItem& p, ClosureRole role) {
  std::string leaf(1, RoleByte(role));
  AppendHash(&leaf, p.digest.hash);
  AppendBigEndian64(&leaf, p.digest.size);
  leaf.push_back(static_cast<char>(p.kind));
  leaf.push_back(static_cast<char>(p.edge_type ? static_cast<uint8_t>(*p.edge_type) : 0));
  AppendString(&leaf, p.edge_relation);
  leaf.push_back(p.edge_parent ? 1 : 0);
  AppendHash(&leaf, p.edge_parent ? p.edge_parent->hash : Sha256{});
  AppendString(&leaf, p.edge_dataset);
  AppendString(&leaf, p.hold_id);
  AppendString(&leaf, p.hold_reason);
  leaves_.push_back(Sha256Hasher::Of(leaf));
}

std::string PlanDigest::Finish(const OrderSpec& spec) {
  std::sort(leaves_.begin(), leaves_.end());
  Sha256Hasher h;
  std::string head = "shredd-plan-v2\n";
  AppendString(&head, spec.CanonicalJson());
  AppendBigEndian64(&head, leaves_.size());
  h.Update(head);
  for (const auto& leaf : leaves_) h.Update(std::string_view(reinterpret_cast<const char*>(leaf.data()), leaf.size()));
  leaves_.clear();
  leaves_.shrink_to_fit();
  return ContentDigest{h.Finish(), 0}.HashString();
}

absl::Status CheckReviewedPlan(const OrderSpec& spec, std::string_view actual, uint64_t selected, uint64_t derived,
                               uint64_t retained) {
  if (spec.expected_plan_digest.empty() || spec.expected_plan_digest == actual) return absl::OkStatus();
  return absl::FailedPreconditionError(
      StrCat("the plan of order ", QuoteForError(spec.id), " changed since it was reviewed (reviewed ",
             QuoteForError(spec.expected_plan_digest), ", now ", actual, ": ", selected, " selected, ", derived,
             " derived, ", retained, " retained under hold); plan it again and review the difference"));
}

}  // namespace shredd
