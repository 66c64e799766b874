// Fuzz target: RFC 6962/9162 proof verification with attacker-chosen sizes,
// indexes and proof hashes (the numbers in receipts, tlog-proofs and a
// server's consistency proofs), plus a differential check against proofs
// built from a real tree.
// Input layout: 8 bytes m, 8 bytes n, 1 byte selector, then 32-byte hashes.
// Properties: proofs generated for a real tree of <= 300 leaves verify;
// CompactRange folds the same roots (at m and at n) as RootFromLeafHashes;
// flipping any bit of them, or changing m/n, makes them fail; nothing
// crashes or overflows for any (m, n) in uint64.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "formats/compact_range.h"
#include "fuzz/fuzz_fixture.h"

namespace {
uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  if (size < 17) return 0;
  const uint64_t a = Load64(data), b = Load64(data + 8);
  const uint8_t sel = data[16];
  std::vector<verify::Hash> hashes;
  for (size_t off = 17; off + 32 <= size && hashes.size() < 80; off += 32) {
    verify::Hash h;
    std::memcpy(h.data(), data + off, 32);
    hashes.push_back(h);
  }
  const verify::Hash zero{};
  const verify::Hash h0 = hashes.empty() ? zero : hashes[0];
  const verify::Hash h1 = hashes.size() < 2 ? zero : hashes[1];
  const std::span<const verify::Hash> proof =
      hashes.size() > 2 ? std::span<const verify::Hash>(hashes).subspan(2) : std::span<const verify::Hash>();

  // Arbitrary numbers: must not crash; results are whatever they are.
  (void)verify::VerifyInclusion(a, b, h0, proof, h1);
  (void)verify::RootFromInclusion(a, b, h0, proof);
  (void)verify::VerifyConsistency(a, b, h0, h1, proof);

  // Differential: a real tree of n <= 300 leaves.
  const uint64_t n = 1 + b % 300;
  const uint64_t m = a % (n + 1);
  std::vector<verify::Hash> leaves(n);
  for (uint64_t i = 0; i < n; ++i) {
    verify::Hash h = h0;
    h[0] ^= static_cast<uint8_t>(i);
    h[1] ^= static_cast<uint8_t>(i >> 8);
    leaves[i] = verify::LeafHash(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
  }
  const verify::Hash root_n = verify::RootFromLeafHashes(leaves);
  const verify::Hash root_m = verify::RootFromLeafHashes(std::span(leaves).first(m));
  verify::CompactRange range;
  for (uint64_t i = 0; i < n; ++i) {
    if (i == m) FUZZ_CHECK(range.Root() == root_m);
    range.Append(leaves[i]);
  }
  FUZZ_CHECK(range.size() == n && range.Root() == root_n);
  std::vector<verify::Hash> cons = verify::ConsistencyProof(leaves, m);
  FUZZ_CHECK(verify::VerifyConsistency(m, n, root_m, root_n, cons).ok());
  if (!cons.empty()) {
    std::vector<verify::Hash> bad = cons;
    bad[sel % bad.size()][sel % 32] ^= static_cast<uint8_t>(1u << (sel % 8));
    FUZZ_CHECK(!verify::VerifyConsistency(m, n, root_m, root_n, bad).ok());
  }
  if (m < n) FUZZ_CHECK(!verify::VerifyConsistency(m, n, root_n, root_n, cons).ok() || root_m == root_n);

  const uint64_t idx = a % n;
  const verify::MerkleTree tree(leaves);
  FUZZ_CHECK(tree.root() == root_n);
  std::vector<verify::Hash> inc = tree.InclusionProof(idx);
  FUZZ_CHECK(inc == verify::InclusionProof(leaves, idx));
  FUZZ_CHECK(verify::VerifyInclusion(idx, n, leaves[idx], inc, root_n).ok());
  if (!inc.empty()) {
    std::vector<verify::Hash> bad = inc;
    bad[sel % bad.size()][(sel / 8) % 32] ^= static_cast<uint8_t>(1u << (sel % 8));
    FUZZ_CHECK(!verify::VerifyInclusion(idx, n, leaves[idx], bad, root_n).ok());
  }
  if (n > 1)
    FUZZ_CHECK(!verify::VerifyInclusion((idx + 1) % n, n, leaves[idx], inc, root_n).ok() ||
               leaves[(idx + 1) % n] == leaves[idx]);
  return 0;
}
