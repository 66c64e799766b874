// What the strings a caller hands the daemon may hold, when they can reach a
// public artefact (certificate, log entry), a sealed record shown back to
// people, or a terminal. One place for the rule; every entry point calls it
// before anything changes (docs/FORMATS.md, "Text fields").
//
//  * Text (reasons, references, relations, names, subject ids, labels):
//    well-formed UTF-8 with no control, bidi-formatting or line-separator
//    characters (formats/text.h), at most a per-field number of bytes.
//  * Ids (order, hold and request ids): 1..max bytes of ASCII letters,
//    digits and . _ : @ / + -, starting with a letter or digit.
//
// Refusals are INVALID_ARGUMENT naming the field; they quote at most a short,
// escaped prefix of the value (QuoteForError), never the value itself.
#ifndef SHREDD_DAEMON_BASE_FIELD_RULES_H_
#define SHREDD_DAEMON_BASE_FIELD_RULES_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace shredd {

inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxRequestIdBytes = 256;
inline constexpr size_t kMaxReasonBytes = 4096;
inline constexpr size_t kMaxRelationBytes = 256;
inline constexpr size_t kMaxReferenceBytes = 1024;

enum class Empty { kRefused, kAllowed };

absl::Status CheckTextField(std::string_view field, std::string_view value, size_t max_bytes,
                            Empty empty = Empty::kAllowed);
absl::Status CheckIdField(std::string_view field, std::string_view value, size_t max_bytes = kMaxIdBytes);

// A bounded, escaped, quoted prefix of `value` for an error message.
std::string QuoteForError(std::string_view value);

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_FIELD_RULES_H_
