// Fuzz target: private manifests (verify::VerifyManifest against the fixed,
// valid fixture certificate). A manifest comes from whoever hands it over
// (the daemon, a regulator's file share): untrusted.
// Properties: the streaming verifier agrees with the old DOM verifier
// (tests/formats/manifest_dom_reference.h); an accepted manifest lists exactly
// the certificate's item count and its items rebuild the certificate's
// Merkle root.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "fuzz/fuzz_fixture.h"
#include "tests/formats/manifest_dom_reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const fuzz::Fixture& f = fuzz::GetFixture();
  const std::string_view input = fuzz::AsView(data, size);
  // Differential: the streaming verifier accepts nothing that the DOM
  // verifier it replaced refused, and refuses what that one accepted only
  // for a repeated member or a raw NUL byte (deliberately stricter).
  const absl::Status got = verify::VerifyManifest(f.certificate, input);
  const absl::Status ref = verify::dom_reference::VerifyManifest(f.certificate, input);
  FUZZ_CHECK(!got.ok() || ref.ok());
  if (ref.ok() && !got.ok()) {
    const std::string_view msg(got.message().data(), got.message().size());
    FUZZ_CHECK(msg.find("\" twice") != std::string_view::npos || input.find('\0') != std::string_view::npos);
  }
  if (!got.ok()) return 0;
  // Accepted: independently recompute the root from the items.
  const nlohmann::json m = nlohmann::json::parse(input);
  FUZZ_CHECK(m["items"].size() == f.certificate.item_count);
  std::vector<verify::Hash> leaves;
  for (const auto& it : m["items"]) {
    verify::ItemEntry e;
    e.kind = it["kind"].get<std::string>();
    e.digest = it["digest"].get<std::string>();
    e.size = it["size"].get<uint64_t>();
    auto salt = verify::HexDecode(it["salt"].get<std::string>());
    FUZZ_CHECK(salt.ok() && salt->size() == 32);
    std::copy(salt->begin(), salt->end(), e.salt.begin());
    leaves.push_back(verify::ItemLeafHash(e));
  }
  FUZZ_CHECK(verify::RootFromLeafHashes(leaves) == f.certificate.merkle_root);
  return 0;
}
