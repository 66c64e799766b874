// Fuzz target: public keys as users hand them to shredctl (--pubkey: SPKI
// PEM or note verifier key; --vkey), i.e. ParsePublicKey, ParseSpkiPem and
// ParseNoteVerifierKey.
// Properties: a parsed PEM key re-encodes and re-parses to the same key; a
// parsed verifier key's hash matches NoteKeyHash and re-encodes to the same
// verifier key text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const std::string_view input = fuzz::AsView(data, size);
  if (auto k = verify::ParsePublicKey(input); k.ok()) {
    auto again = verify::ParseSpkiPem(verify::ToSpkiPem(*k));
    FUZZ_CHECK(again.ok() && *again == *k);
  }
  if (auto k = verify::ParseSpkiPem(input); k.ok()) {
    FUZZ_CHECK(input.find("-----BEGIN") != std::string_view::npos);
    auto via = verify::ParsePublicKey(input);
    FUZZ_CHECK(via.ok() && *via == *k);
  }
  if (auto v = verify::ParseNoteVerifierKey(input); v.ok()) {
    FUZZ_CHECK(!v->name.empty());
    FUZZ_CHECK(v->key_hash == verify::NoteKeyHash(v->name, v->key));
    const std::string text = verify::NoteVerifierKey(v->name, v->key);
    auto again = verify::ParseNoteVerifierKey(text);
    FUZZ_CHECK(again.ok() && again->name == v->name && again->key == v->key);
    auto as_pub = verify::ParsePublicKey(text);
    FUZZ_CHECK(as_pub.ok() && *as_pub == v->key);
  }
  return 0;
}
