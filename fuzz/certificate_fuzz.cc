// Fuzz target: certificates (verify::VerifyCertificate with a fixed key).
// Each input is tried twice:
//  1. as an envelope, verified under the fixture key (parser + signature
//     paths; a valid envelope in the corpus keeps the signature passing
//     while the fuzzer mutates other members);
//  2. as a statement that the harness signs itself with the fixture key, so
//     the statement/predicate parser behind the signature check is reached
//     with arbitrary bytes (a certificate only gets there once its signature
//     verified, but a malicious or buggy issuer can sign anything).
// Properties of an accepted certificate: item count equals the sum by kind;
// zero items means the empty-tree root; the subject binds the id.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/certificate.h"
#include "fuzz/fuzz_fixture.h"

namespace {
void CheckAccepted(const shredd::verify::VerifiedCertificate& c, const shredd::fuzz::Fixture& f) {
  using namespace shredd;
  uint64_t sum = 0;
  for (const auto& [kind, n] : c.count_by_kind) {
    FUZZ_CHECK(sum + n >= sum);
    sum += n;
  }
  FUZZ_CHECK(sum == c.item_count);
  if (c.item_count == 0) FUZZ_CHECK(c.merkle_root == verify::EmptyRoot());
  FUZZ_CHECK(c.keyid == verify::KeyId(f.pub));
  // The verified statement must itself verify again when re-signed.
  FUZZ_CHECK(verify::VerifyCertificate(verify::SignCertificate(c.statement, f.secret()), f.pub).ok());
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const fuzz::Fixture& f = fuzz::GetFixture();
  const std::string_view input = fuzz::AsView(data, size);
  if (auto c = verify::VerifyCertificate(input, f.pub); c.ok()) CheckAccepted(*c, f);
  if (auto c = verify::VerifyCertificate(verify::SignCertificate(input, f.secret()), f.pub); c.ok()) {
    FUZZ_CHECK(c->statement == input);
    CheckAccepted(*c, f);
  }
  return 0;
}
