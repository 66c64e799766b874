// Fuzz target: the strict hex and base64 decoders under every format
// (verify::HexDecode, verify::Base64Decode, verify::ParseHash).
// Property (documented in encoding.h): decoders accept exactly the canonical
// spelling, so decode-then-encode gives back the input byte for byte; and
// encode-then-decode gives back the bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const std::string_view input = fuzz::AsView(data, size);
  if (auto raw = verify::Base64Decode(input); raw.ok()) {
    FUZZ_CHECK(verify::Base64Encode(*raw) == input);
  }
  if (auto raw = verify::HexDecode(input); raw.ok()) {
    FUZZ_CHECK(verify::HexEncode(*raw) == input);
  }
  if (auto h = verify::ParseHash(input); h.ok()) {
    FUZZ_CHECK(verify::HexEncode(*h) == input);
  }
  auto b = verify::Base64Decode(verify::Base64Encode(input));
  FUZZ_CHECK(b.ok() && *b == input);
  auto x = verify::HexDecode(verify::HexEncode(input));
  FUZZ_CHECK(x.ok() && *x == input);
  return 0;
}
