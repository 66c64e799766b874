#include "formats/strict_json.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"

#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;
using nlohmann::json;

absl::StatusOr<json> ParseStrictJson(std::string_view text, std::string_view what) {
  // A raw NUL is never valid JSON (inside strings it must be escaped), and
  // nlohmann's parser would take it for the end of the input.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(what, " is not valid JSON: a NUL byte at offset ", nul, " (nothing may follow the document)"));
  }
  struct TooDeep {};
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  // `depth` is the number of arrays and objects around the value.
  const json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    const bool starts_value = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start ||
                              event == json::parse_event_t::value;
    if (starts_value && depth > kMaxJsonNesting) throw TooDeep{};  // stop before building it
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && !duplicate) duplicate = key;
    }
    return true;
  };
  json doc;
  try {
    // Strict: anything but whitespace after the document is an error.
    doc = json::parse(text.begin(), text.end(), note_keys, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(Cat(what, " is not valid JSON: ", e.what()));
  } catch (const TooDeep&) {
    return absl::InvalidArgumentError(
        Cat(what, " is not valid JSON: nested more than ", kMaxJsonNesting, " arrays and objects deep"));
  }
  if (duplicate) {
    std::string shown = absl::CHexEscape(Sv(std::string_view(*duplicate).substr(0, 64)));
    return absl::InvalidArgumentError(Cat(what, " has a duplicate member \"", shown, "\" in one object"));
  }
  return doc;
}

}  // namespace shredd::verify
