#include "daemon/items/item.h"

#include "daemon/base/field_rules.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {
constexpr size_t kMaxValue = 1024;
constexpr size_t kMaxEntries = 256;

// The one rule for text fields (daemon/base/field_rules.h).
absl::Status CheckText(std::string_view field, std::string_view v, bool allow_empty = false) {
  return CheckTextField(field, v, kMaxValue, allow_empty ? Empty::kAllowed : Empty::kRefused);
}
}  // namespace

std::string_view KindName(ItemKind kind) { return kind == ItemKind::kModel ? "model" : "photo"; }

absl::StatusOr<ItemKind> ParseKind(std::string_view name) {
  if (name == "photo") return ItemKind::kPhoto;
  if (name == "model") return ItemKind::kModel;
  return absl::InvalidArgumentError(StrCat("unknown kind ", QuoteForError(name), ": expected photo or model"));
}

absl::Status ItemMetadata::Validate() const {
  if (subject_ids.size() > kMaxEntries || datasets.size() > kMaxEntries || labels.size() > kMaxEntries) {
    return absl::InvalidArgumentError(StrCat("at most ", kMaxEntries, " subject ids, datasets or labels per item"));
  }
  for (const auto& s : subject_ids)
    if (auto st = CheckText("subject id", s); !st.ok()) return st;
  for (const auto& d : datasets)
    if (auto st = CheckText("dataset name", d); !st.ok()) return st;
  for (const auto& [k, v] : labels) {
    if (auto st = CheckText("label key", k); !st.ok()) return st;
    if (k.find('=') != std::string::npos) return absl::InvalidArgumentError("label key must not contain '='");
    if (auto st = CheckText("label value", v, true); !st.ok()) return st;
  }
  return CheckText("name", name, true);
}

}  // namespace shredd
