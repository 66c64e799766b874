// Internal to shredd_formats: typed access to members of parsed JSON, each
// failure an InvalidArgument naming the JSON path ("receipt.item.size is not
// a non-negative integer"). Never throws, whatever the document holds.
#ifndef SHREDD_FORMATS_JSON_FIELDS_H_
#define SHREDD_FORMATS_JSON_FIELDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace shredd::verify::internal {

// The member `name` of `obj`; fails if `obj` is not an object or lacks it.
absl::StatusOr<const nlohmann::json*> Member(const nlohmann::json& obj, std::string_view where, const char* name);

absl::StatusOr<std::string> GetString(const nlohmann::json& obj, std::string_view where, const char* name);

// Integers as docs/FORMATS.md writes them: non-negative, never a float.
absl::StatusOr<uint64_t> GetUint(const nlohmann::json& obj, std::string_view where, const char* name);

// The member, if it has JSON type `type`.
absl::StatusOr<const nlohmann::json*> GetTyped(const nlohmann::json& obj, std::string_view where, const char* name,
                                               nlohmann::json::value_t type);

}  // namespace shredd::verify::internal

#endif  // SHREDD_FORMATS_JSON_FIELDS_H_
