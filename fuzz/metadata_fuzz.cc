// Fuzz target: the decoder of an item's stored metadata plaintext
// (shredd::DecodeMetadata, daemon/items/metadata_codec.h): binary v1 and the JSON
// form older versions wrote. It only ever sees plaintext that authenticated
// under the item's key, but a bug in it must never crash the daemon.
// Properties: no crash; an accepted binary record re-encodes to exactly the
// same bytes (one spelling per record); an accepted JSON record re-encodes
// (binary) to a record that decodes to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/items/metadata_codec.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = shredd::fuzz::AsView(data, size);
  shredd::ContentDigest d;
  shredd::ItemMetadata m;
  if (!shredd::DecodeMetadata(input, &d, &m).ok()) return 0;
  const std::string again = shredd::EncodeMetadata(d, m);
  if (static_cast<uint8_t>(input[0]) == shredd::kMetadataBinaryV1) FUZZ_CHECK(again == input);
  shredd::ContentDigest d2;
  shredd::ItemMetadata m2;
  FUZZ_CHECK(shredd::DecodeMetadata(again, &d2, &m2).ok());
  FUZZ_CHECK(d2.hash == d.hash && m2.subject_ids == m.subject_ids && m2.datasets == m.datasets &&
             m2.labels == m.labels && m2.name == m.name);
  return 0;
}
