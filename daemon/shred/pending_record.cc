#include "daemon/shred/pending_record.h"

#include "daemon/base/strings.h"

namespace shredd {
namespace {

using json = nlohmann::json;

absl::Status WrongType(std::string_view member, std::string_view want) {
  return absl::DataLossError(StrCat("pending certification: \"", member, "\" is not ", want));
}

// Each reader leaves *out alone if the member is absent.
absl::Status ReadString(const json& j, const char* member, std::string* out) {
  auto it = j.find(member);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_string()) return WrongType(member, "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadCount(const json& j, const char* member, uint64_t* out) {
  auto it = j.find(member);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_number_unsigned()) return WrongType(member, "a non-negative integer");
  *out = it->get<uint64_t>();
  return absl::OkStatus();
}

absl::Status ReadOptionalCount(const json& j, const char* member, std::optional<uint64_t>* out) {
  if (!j.contains(member)) return absl::OkStatus();
  uint64_t v = 0;
  if (auto s = ReadCount(j, member, &v); !s.ok()) return s;
  *out = v;
  return absl::OkStatus();
}

absl::Status ReadArray(const json& j, const char* member, json* out) {
  auto it = j.find(member);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_array()) return WrongType(member, "an array");
  *out = *it;
  return absl::OkStatus();
}

}  // namespace

std::string EncodePendingRecord(const PendingRecord& r) {
  json j;
  j["requestId"] = r.request_id;
  j["reason"] = r.reason;
  if (!r.request_binding.empty()) j["requestBinding"] = r.request_binding;
  j["requested"] = r.requested;
  j["vault"] = r.vault;
  j["orderId"] = r.order_id;
  j["suppressedBy"] = r.suppressed_by;
  j["planned"] = r.planned;
  j["destroyed"] = r.destroyed;
  if (r.destroyed_epoch) j["destroyedEpoch"] = *r.destroyed_epoch;
  if (r.installed_epoch) j["installedEpoch"] = *r.installed_epoch;
  if (r.order) {
    j["order"] = *r.order;
    j["orderPrivate"] = r.order_private;
    j["orderSalt"] = r.order_salt;
  }
  j["derivedModels"] = r.derived_models;
  j["retained"] = r.retained;
  return j.dump();
}

absl::StatusOr<PendingRecord> DecodePendingRecord(std::string_view text, std::string_view cert_id) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("pending certification is not a JSON object");
  PendingRecord r;
  r.suppressed_by = StrCat("certificate ", cert_id);
  for (auto [member, out] :
       {std::pair{"requestId", &r.request_id}, std::pair{"reason", &r.reason}, std::pair{"requested", &r.requested},
        std::pair{"vault", &r.vault}, std::pair{"orderId", &r.order_id}, std::pair{"suppressedBy", &r.suppressed_by},
        std::pair{"requestBinding", &r.request_binding}}) {
    if (auto s = ReadString(j, member, out); !s.ok()) return s;
  }
  if (auto s = ReadCount(j, "planned", &r.planned); !s.ok()) return s;
  if (auto s = ReadCount(j, "destroyed", &r.destroyed); !s.ok()) return s;
  if (auto s = ReadOptionalCount(j, "destroyedEpoch", &r.destroyed_epoch); !s.ok()) return s;
  if (auto s = ReadOptionalCount(j, "installedEpoch", &r.installed_epoch); !s.ok()) return s;
  if (auto it = j.find("order"); it != j.end()) {
    if (!it->is_object()) return WrongType("order", "an object");
    r.order = *it;
    if (auto s = ReadString(j, "orderPrivate", &r.order_private); !s.ok()) return s;
    if (auto s = ReadString(j, "orderSalt", &r.order_salt); !s.ok()) return s;
  }
  if (auto s = ReadArray(j, "derivedModels", &r.derived_models); !s.ok()) return s;
  if (auto s = ReadArray(j, "retained", &r.retained); !s.ok()) return s;
  return r;
}

}  // namespace shredd
