// One reading per file: the JSON parser every verifier entry point uses for
// envelopes, statements and receipts (the streaming manifest parser in
// manifest.cc applies the same rules).
//
// Refused, as INVALID_ARGUMENT naming `what`:
//  * anything but whitespace after the document, including a NUL byte
//    (nlohmann's parser stops at a NUL, so a file could carry a second
//    document that other tools, e.g. `openssl` over the whole file, read);
//  * a member name that appears twice in one object (last-wins would let two
//    readers of one file see different values).
#ifndef SHREDD_FORMATS_STRICT_JSON_H_
#define SHREDD_FORMATS_STRICT_JSON_H_

#include <string_view>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace shredd::verify {

absl::StatusOr<nlohmann::json> ParseStrictJson(std::string_view text, std::string_view what);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_STRICT_JSON_H_
