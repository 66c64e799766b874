// Fuzz target: tlog-proof files (ParseTlogProof, VerifyTlogProof) as handed
// to `shredctl log verify --proof` next to a certificate, against the
// fixture log's verifier key and each of its entries.
// Properties: a parsed proof round-trips through FormatTlogProof; a proof
// verifies for at most one (entry, index) of the fixture log, and a verified
// proof's index is inside the checkpoint's tree.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const fuzz::Fixture& f = fuzz::GetFixture();
  const std::string_view input = fuzz::AsView(data, size);
  auto proof = verify::ParseTlogProof(input);
  if (!proof.ok()) return 0;
  const std::string again = verify::FormatTlogProof(*proof);
  auto proof2 = verify::ParseTlogProof(again);
  FUZZ_CHECK(proof2.ok());
  FUZZ_CHECK(proof2->index == proof->index && proof2->path == proof->path && proof2->checkpoint == proof->checkpoint &&
             proof2->extra == proof->extra);
  FUZZ_CHECK(again == input);  // one spelling per proof

  int verified = 0;
  for (size_t i = 0; i < f.log_entries.size(); ++i) {
    auto v = verify::VerifyTlogProof(input, f.log_entries[i], f.verifier);
    if (!v.ok()) continue;
    ++verified;
    FUZZ_CHECK(v->index == proof->index);
    FUZZ_CHECK(v->index < v->checkpoint.size);
    FUZZ_CHECK(verify::VerifyTlogProof(input, f.log_entries[i], f.verifier, v->index).ok());
    FUZZ_CHECK(!verify::VerifyTlogProof(input, f.log_entries[i], f.verifier, v->index + 1).ok());
  }
  FUZZ_CHECK(verified <= 1);
  FUZZ_CHECK(!verify::VerifyTlogProof(input, "not a log entry", f.verifier).ok());
  return 0;
}
