// Fuzz target: per-item receipts (verify::VerifyReceipt against the fixed
// fixture certificate, for each of its items' digests).
// Property: a receipt is accepted for at most one digest, and only for a
// digest the certificate really covers; an accepted receipt has one reading
// only (no NUL, nothing appended to it is accepted).
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/certificate.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const fuzz::Fixture& f = fuzz::GetFixture();
  const std::string_view input = fuzz::AsView(data, size);
  int accepted = 0;
  for (const std::string& digest : f.item_digests) {
    if (!verify::VerifyReceipt(f.certificate, input, digest).ok()) continue;
    ++accepted;
    FUZZ_CHECK(input.find('\0') == std::string_view::npos);
    FUZZ_CHECK(!verify::VerifyReceipt(f.certificate, std::string(input) + std::string("\0x", 2), digest).ok());
    FUZZ_CHECK(!verify::VerifyReceipt(f.certificate, std::string(input) + "{}", digest).ok());
  }
  FUZZ_CHECK(accepted <= 1);
  // A digest the certificate does not cover is never proven.
  FUZZ_CHECK(!verify::VerifyReceipt(f.certificate, input, fuzz::DigestOf("never shredded")).ok());
  return 0;
}
