// Fuzz target: content digests as clients send them to the daemon
// (shredd::ParseDigestHash, daemon/crypto/digest.h), and the daemon's lenient hex
// decoder (shredd::HexDecode).
// Properties: an accepted digest is exactly "sha256:" + the lowercase hex of
// the parsed bytes (one spelling per item); HexDecode accepts exactly the
// strings of even length over [0-9a-fA-F] and inverts HexEncode.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/crypto/digest.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = shredd::fuzz::AsView(data, size);
  if (auto h = shredd::ParseDigestHash(input); h.ok()) {
    FUZZ_CHECK(input == "sha256:" + shredd::HexEncode(*h));
  }
  bool hex_ok = input.size() % 2 == 0;
  for (char c : input) hex_ok = hex_ok && std::isxdigit(static_cast<unsigned char>(c));
  auto raw = shredd::HexDecode(input);
  FUZZ_CHECK(raw.has_value() == hex_ok);
  if (raw) {
    std::string lower(input);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    FUZZ_CHECK(shredd::HexEncode(*raw) == lower);
  }
  return 0;
}
