#include "client/verify/strict_json.h"

#include "client/verify/str_util.h"

namespace shredd::verify {

using internal::Cat;
using nlohmann::json;

absl::StatusOr<json> ParseStrictJson(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(Cat(what, " is not valid JSON: ", e.what()));
  }
}

}  // namespace shredd::verify
