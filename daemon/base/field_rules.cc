#include "daemon/base/field_rules.h"

#include "absl/strings/ascii.h"

#include "daemon/base/strings.h"
#include "formats/text.h"

namespace shredd {
namespace {

bool IdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '@' ||
         c == '/' || c == '+' || c == '-';
}

}  // namespace

std::string QuoteForError(std::string_view value) { return verify::QuoteText(value, 40); }

absl::Status CheckTextField(std::string_view field, std::string_view value, size_t max_bytes, Empty empty) {
  if (value.empty()) {
    if (empty == Empty::kAllowed) return absl::OkStatus();
    return absl::InvalidArgumentError(StrCat(field, " must not be empty"));
  }
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(StrCat(field, " is longer than ", max_bytes, " bytes: ", QuoteForError(value)));
  }
  if (auto at = verify::FindUnsafeText(value)) {
    return absl::InvalidArgumentError(StrCat(field, " ", QuoteForError(value),
                                             " holds a control character, a bidi or line-separator "
                                             "character, or bytes that are not UTF-8 (at byte ",
                                             *at, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckIdField(std::string_view field, std::string_view value, size_t max_bytes) {
  if (value.empty()) return absl::InvalidArgumentError(StrCat(field, " must not be empty"));
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(StrCat(field, " is longer than ", max_bytes, " bytes: ", QuoteForError(value)));
  }
  bool ok = absl::ascii_isalnum(static_cast<unsigned char>(value[0]));
  for (char c : value) ok = ok && IdChar(c);
  if (!ok) {
    return absl::InvalidArgumentError(
        StrCat(field, " ", QuoteForError(value),
               " is not an id: use ASCII letters, digits and . _ : @ / + -, starting with a letter or digit"));
  }
  return absl::OkStatus();
}

}  // namespace shredd
