#include "formats/json_fields.h"

#include "formats/str_util.h"

namespace shredd::verify::internal {

using nlohmann::json;

absl::StatusOr<const json*> Member(const json& obj, std::string_view where, const char* name) {
  if (!obj.is_object()) return absl::InvalidArgumentError(Cat(where, " is not a JSON object"));
  auto it = obj.find(name);
  if (it == obj.end()) return absl::InvalidArgumentError(Cat(where, " has no \"", name, "\""));
  return &*it;
}

absl::StatusOr<std::string> GetString(const json& obj, std::string_view where, const char* name) {
  absl::StatusOr<const json*> v = Member(obj, where, name);
  if (!v.ok()) return v.status();
  if (!(*v)->is_string()) {
    return absl::InvalidArgumentError(Cat(where, ".", name, " is a ", (*v)->type_name(), ", not a string"));
  }
  return (*v)->get<std::string>();
}

absl::StatusOr<uint64_t> GetUint(const json& obj, std::string_view where, const char* name) {
  absl::StatusOr<const json*> v = Member(obj, where, name);
  if (!v.ok()) return v.status();
  if (!(*v)->is_number_unsigned()) {
    return absl::InvalidArgumentError(Cat(where, ".", name, " is not a non-negative integer"));
  }
  return (*v)->get<uint64_t>();
}

absl::StatusOr<const json*> GetTyped(const json& obj, std::string_view where, const char* name, json::value_t type) {
  absl::StatusOr<const json*> v = Member(obj, where, name);
  if (!v.ok()) return v.status();
  if ((*v)->type() != type) {
    return absl::InvalidArgumentError(
        Cat(where, ".", name, " is a ", (*v)->type_name(), ", not an ", json(type).type_name()));
  }
  return v;
}

}  // namespace shredd::verify::internal
