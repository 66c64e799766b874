// One reading per file: the JSON parser every verifier entry point uses for
// envelopes, statements and receipts (the streaming manifest parser in
// manifest.cc applies the same rules).
//
// Refused, as INVALID_ARGUMENT naming `what`:
//  * anything but whitespace after the document, including a NUL byte
//    (nlohmann's parser stops at a NUL, so a file could carry a second
//    document that other tools, e.g. `openssl` over the whole file, read);
//  * a member name that appears twice in one object (last-wins would let two
//    readers of one file see different values);
//  * a value inside more than kMaxJsonNesting arrays and objects (every
//    recursive walk of the document, nlohmann's dump() and destructor
//    among them, stays far from the stack's end; no shredd document nests
//    deeper than 10). The page (client/web/verify_encoding.js) has the
//    same limit.
#ifndef SHREDD_FORMATS_STRICT_JSON_H_
#define SHREDD_FORMATS_STRICT_JSON_H_

#include <string_view>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace shredd::verify {

inline constexpr int kMaxJsonNesting = 1000;

absl::StatusOr<nlohmann::json> ParseStrictJson(std::string_view text, std::string_view what);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_STRICT_JSON_H_
