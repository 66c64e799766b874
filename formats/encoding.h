// Byte <-> text encodings used by every shredd format: lowercase hex and
// standard base64 (RFC 4648 section 4, with '=' padding).
//
// All decoders are strict: they accept exactly the canonical encoding that
// the matching encoder produces, so that one byte string has one spelling.

#ifndef SHREDD_FORMATS_ENCODING_H_
#define SHREDD_FORMATS_ENCODING_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shredd::verify {

// Returns the lowercase hex spelling of `bytes` (two characters per byte).
std::string HexEncode(std::span<const uint8_t> bytes);
std::string HexEncode(std::string_view bytes);

// Decodes lowercase hex. Fails with InvalidArgument on odd length or on any
// character outside [0-9a-f] (uppercase is rejected: shredd formats are
// lowercase-only, and a second spelling would be a second identity).
absl::StatusOr<std::string> HexDecode(std::string_view hex);

// Returns the standard base64 (with padding) encoding of `bytes`.
std::string Base64Encode(std::string_view bytes);

// Decodes standard base64 with padding. Fails with InvalidArgument on any
// other input: URL-safe alphabet, missing padding, whitespace, or non-zero
// trailing bits (non-canonical encodings).
absl::StatusOr<std::string> Base64Decode(std::string_view text);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_ENCODING_H_
