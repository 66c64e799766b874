// RFC 6962 / RFC 9162 Merkle tree tests: the certificate-transparency
// known-answer vectors (8 leaves), then exhaustive properties for every tree
// size up to 64 against a direct transcription of the RFC's recursive
// definitions.

#include "formats/merkle.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace shredd::verify {
namespace {

Hash H(std::string_view hex) {
  absl::StatusOr<Hash> h = ParseHash(hex);
  EXPECT_TRUE(h.ok()) << hex;
  return h.ok() ? *h : Hash{};
}

// Leaf inputs and roots of trees of size 1..8 from certificate-transparency's
// merkle_tree_test / transparency-dev/merkle proof/verify_test.go.
const std::vector<std::string>& CtInputs() {
  static const std::vector<std::string> inputs = {
      std::string(""),
      std::string("\x00", 1),
      std::string("\x10", 1),
      std::string("\x20\x21", 2),
      std::string("\x30\x31", 2),
      std::string("\x40\x41\x42\x43", 4),
      std::string("\x50\x51\x52\x53\x54\x55\x56\x57", 8),
      std::string("\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d"
                  "\x6e\x6f",
                  16),
  };
  return inputs;
}

const char* const kCtRoots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::vector<Hash> CtLeafHashes() {
  std::vector<Hash> leaves;
  for (const std::string& in : CtInputs()) leaves.push_back(LeafHash(in));
  return leaves;
}

TEST(MerkleKat, EmptyTreeRootIsSha256OfNothing) {
  EXPECT_EQ(HexEncode(EmptyRoot()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(RootFromLeafHashes({}), EmptyRoot());
}

TEST(MerkleKat, HashPrimitivesUseDomainSeparation) {
  // Leaf hash of the empty input is SHA-256(0x00), the first CT root.
  EXPECT_EQ(HexEncode(LeafHash("")), kCtRoots[0]);
  EXPECT_EQ(LeafHash(""), Sha256(std::string_view("\x00", 1)));
  const Hash l = LeafHash("a"), r = LeafHash("b");
  std::string node("\x01", 1);
  node.append(reinterpret_cast<const char*>(l.data()), 32);
  node.append(reinterpret_cast<const char*>(r.data()), 32);
  EXPECT_EQ(NodeHash(l, r), Sha256(node));
  EXPECT_NE(NodeHash(l, r), NodeHash(r, l));
}

TEST(MerkleKat, RootsOfEveryPrefix) {
  const std::vector<Hash> leaves = CtLeafHashes();
  for (size_t n = 1; n <= 8; ++n) {
    EXPECT_EQ(HexEncode(RootFromLeafHashes(std::span(leaves).first(n))), kCtRoots[n - 1]) << "size " << n;
    EXPECT_EQ(HexEncode(MerkleTree(std::vector<Hash>(leaves.begin(), leaves.begin() + n)).root()), kCtRoots[n - 1])
        << "size " << n;
  }
}

struct InclusionVector {
  uint64_t index;  // 0-based
  uint64_t size;
  std::vector<const char*> proof;
};

TEST(MerkleKat, InclusionProofs) {
  const std::vector<InclusionVector> vectors = {
      {0, 1, {}},
      {0,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {5,
       8,
       {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
      {1,
       5,
       {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
  };
  const std::vector<Hash> leaves = CtLeafHashes();
  for (const InclusionVector& v : vectors) {
    SCOPED_TRACE(testing::Message() << "leaf " << v.index << " size " << v.size);
    std::vector<Hash> want;
    for (const char* h : v.proof) want.push_back(H(h));
    const auto tree = std::span(leaves).first(v.size);
    EXPECT_EQ(InclusionProof(tree, v.index), want);
    const Hash root = H(kCtRoots[v.size - 1]);
    EXPECT_TRUE(VerifyInclusion(v.index, v.size, leaves[v.index], want, root).ok());
    absl::StatusOr<Hash> computed = RootFromInclusion(v.index, v.size, leaves[v.index], want);
    ASSERT_TRUE(computed.ok()) << computed.status();
    EXPECT_EQ(*computed, root);
  }
}

struct ConsistencyVector {
  uint64_t m, n;
  std::vector<const char*> proof;
};

TEST(MerkleKat, ConsistencyProofs) {
  const std::vector<ConsistencyVector> vectors = {
      {1, 1, {}},
      {1,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {6,
       8,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2,
       5,
       {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {6,
       7,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
  };
  const std::vector<Hash> leaves = CtLeafHashes();
  for (const ConsistencyVector& v : vectors) {
    SCOPED_TRACE(testing::Message() << v.m << " -> " << v.n);
    std::vector<Hash> want;
    for (const char* h : v.proof) want.push_back(H(h));
    EXPECT_EQ(ConsistencyProof(std::span(leaves).first(v.n), v.m), want);
    EXPECT_TRUE(VerifyConsistency(v.m, v.n, H(kCtRoots[v.m - 1]), H(kCtRoots[v.n - 1]), want).ok());
  }
}

TEST(MerkleKat, DegenerateConsistencyCases) {
  const Hash a = LeafHash("a"), b = LeafHash("b");
  EXPECT_TRUE(VerifyConsistency(0, 0, EmptyRoot(), EmptyRoot(), {}).ok());
  EXPECT_TRUE(VerifyConsistency(0, 5, EmptyRoot(), b, {}).ok());
  EXPECT_TRUE(VerifyConsistency(3, 3, a, a, {}).ok());
  EXPECT_FALSE(VerifyConsistency(0, 5, a, b, {}).ok());  // not the empty root
  EXPECT_FALSE(VerifyConsistency(3, 3, a, b, {}).ok());  // same size, 2 roots
  EXPECT_FALSE(VerifyConsistency(3, 3, a, a, std::vector<Hash>{a}).ok());
  EXPECT_FALSE(VerifyConsistency(0, 5, EmptyRoot(), b, std::vector<Hash>{a}).ok());
  EXPECT_FALSE(VerifyConsistency(2, 1, a, b, {}).ok());  // shrinking
  EXPECT_FALSE(VerifyConsistency(1, 2, a, b, {}).ok());  // empty proof
}

TEST(MerkleKat, InclusionRejectsOutOfRangeAndMalformedInput) {
  const Hash a = LeafHash("a");
  EXPECT_FALSE(VerifyInclusion(0, 0, a, {}, a).ok());
  EXPECT_FALSE(VerifyInclusion(1, 1, a, {}, a).ok());
  EXPECT_TRUE(VerifyInclusion(0, 1, a, {}, a).ok());
  EXPECT_FALSE(VerifyInclusion(0, 1, a, {}, LeafHash("b")).ok());
  EXPECT_FALSE(VerifyInclusion(0, 1, a, std::vector<Hash>{a}, a).ok());
  EXPECT_TRUE(InclusionProof(std::vector<Hash>{a}, 1).empty());
}

TEST(MerkleKat, ParseHashIsStrict) {
  EXPECT_TRUE(ParseHash(kCtRoots[0]).ok());
  EXPECT_FALSE(ParseHash(std::string(kCtRoots[0]).substr(2)).ok());
  EXPECT_FALSE(ParseHash(std::string(kCtRoots[0]) + "00").ok());
  std::string upper(kCtRoots[0]);
  upper[0] = 'E';  // "6e..." -> "6E..."
  upper[1] = 'E';
  EXPECT_FALSE(ParseHash(upper).ok());
}

// --- Reference transcription of RFC 9162 section 2.1 ----------------------

uint64_t Split(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

Hash RefMth(std::span<const Hash> d) {
  if (d.empty()) return EmptyRoot();
  if (d.size() == 1) return d[0];
  const uint64_t k = Split(d.size());
  return NodeHash(RefMth(d.first(k)), RefMth(d.subspan(k)));
}

std::vector<Hash> RefPath(uint64_t m, std::span<const Hash> d) {
  if (d.size() <= 1) return {};
  const uint64_t k = Split(d.size());
  std::vector<Hash> p;
  if (m < k) {
    p = RefPath(m, d.first(k));
    p.push_back(RefMth(d.subspan(k)));
  } else {
    p = RefPath(m - k, d.subspan(k));
    p.push_back(RefMth(d.first(k)));
  }
  return p;
}

std::vector<Hash> RefSubproof(uint64_t m, std::span<const Hash> d, bool b) {
  const uint64_t n = d.size();
  if (m == n) return b ? std::vector<Hash>{} : std::vector<Hash>{RefMth(d)};
  const uint64_t k = Split(n);
  std::vector<Hash> p;
  if (m <= k) {
    p = RefSubproof(m, d.first(k), b);
    p.push_back(RefMth(d.subspan(k)));
  } else {
    p = RefSubproof(m - k, d.subspan(k), false);
    p.push_back(RefMth(d.first(k)));
  }
  return p;
}

std::vector<Hash> MakeLeaves(size_t n) {
  std::vector<Hash> leaves;
  for (size_t i = 0; i < n; ++i) leaves.push_back(LeafHash(std::to_string(i)));
  return leaves;
}

// Single-bit corruptions of a proof: bits 0 and 255 and one that moves with
// the position, in every element.
std::vector<std::vector<Hash>> BitFlips(const std::vector<Hash>& proof) {
  std::vector<std::vector<Hash>> out;
  for (size_t i = 0; i < proof.size(); ++i) {
    for (size_t bit : {size_t{0}, size_t{255}, (i * 37 + 11) % 256}) {
      std::vector<Hash> bad = proof;
      bad[i][bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      out.push_back(std::move(bad));
    }
  }
  return out;
}

constexpr size_t kMaxSize = 64;

TEST(MerkleProperty, RootsMatchRecursiveDefinition) {
  const std::vector<Hash> all = MakeLeaves(kMaxSize);
  for (size_t n = 0; n <= kMaxSize; ++n) {
    const auto d = std::span(all).first(n);
    EXPECT_EQ(RootFromLeafHashes(d), RefMth(d)) << n;
    EXPECT_EQ(MerkleTree(std::vector<Hash>(d.begin(), d.end())).root(), RefMth(d)) << n;
  }
}

TEST(MerkleProperty, InclusionProofsVerifyAndCorruptionsFail) {
  const std::vector<Hash> all = MakeLeaves(kMaxSize);
  for (uint64_t n = 1; n <= kMaxSize; ++n) {
    const auto d = std::span(all).first(n);
    const MerkleTree tree(std::vector<Hash>(d.begin(), d.end()));
    const Hash root = tree.root();
    for (uint64_t i = 0; i < n; ++i) {
      SCOPED_TRACE(testing::Message() << "index " << i << " size " << n);
      const std::vector<Hash> proof = InclusionProof(d, i);
      ASSERT_EQ(proof, RefPath(i, d));
      ASSERT_EQ(tree.InclusionProof(i), proof);
      ASSERT_TRUE(VerifyInclusion(i, n, d[i], proof, root).ok());

      for (const auto& bad : BitFlips(proof)) {
        EXPECT_FALSE(VerifyInclusion(i, n, d[i], bad, root).ok());
      }
      Hash bad_leaf = d[i];
      bad_leaf[31] ^= 1;
      EXPECT_FALSE(VerifyInclusion(i, n, bad_leaf, proof, root).ok());
      Hash bad_root = root;
      bad_root[0] ^= 0x80;
      EXPECT_FALSE(VerifyInclusion(i, n, d[i], proof, bad_root).ok());
      for (uint64_t j = 0; j < n; ++j) {
        if (j != i) {
          EXPECT_FALSE(VerifyInclusion(j, n, d[i], proof, root).ok()) << "wrong index " << j;
        }
      }
      EXPECT_FALSE(VerifyInclusion(n, n, d[i], proof, root).ok());
      // A tree of twice or half the size has a different path length.
      EXPECT_FALSE(VerifyInclusion(i, 2 * n, d[i], proof, root).ok());
      if (i < n / 2) {
        EXPECT_FALSE(VerifyInclusion(i, n / 2, d[i], proof, root).ok());
      }
      if (!proof.empty()) {
        std::vector<Hash> truncated(proof.begin(), proof.end() - 1);
        EXPECT_FALSE(VerifyInclusion(i, n, d[i], truncated, root).ok());
      }
      std::vector<Hash> extended = proof;
      extended.push_back(root);
      EXPECT_FALSE(VerifyInclusion(i, n, d[i], extended, root).ok());
      std::vector<Hash> prepended = proof;
      prepended.insert(prepended.begin(), d[i]);
      EXPECT_FALSE(VerifyInclusion(i, n, d[i], prepended, root).ok());
    }
  }
}

TEST(MerkleProperty, ConsistencyProofsVerifyAndCorruptionsFail) {
  const std::vector<Hash> all = MakeLeaves(kMaxSize);
  for (uint64_t n = 1; n <= kMaxSize; ++n) {
    const auto dn = std::span(all).first(n);
    const Hash root_n = RootFromLeafHashes(dn);
    for (uint64_t m = 1; m < n; ++m) {
      SCOPED_TRACE(testing::Message() << m << " -> " << n);
      const Hash root_m = RootFromLeafHashes(std::span(all).first(m));
      const std::vector<Hash> proof = ConsistencyProof(dn, m);
      ASSERT_EQ(proof, RefSubproof(m, dn, true));
      ASSERT_TRUE(VerifyConsistency(m, n, root_m, root_n, proof).ok());

      for (const auto& bad : BitFlips(proof)) {
        EXPECT_FALSE(VerifyConsistency(m, n, root_m, root_n, bad).ok());
      }
      EXPECT_FALSE(VerifyConsistency(m, n, root_n, root_m, proof).ok());
      Hash bad_root = root_m;
      bad_root[7] ^= 4;
      EXPECT_FALSE(VerifyConsistency(m, n, bad_root, root_n, proof).ok());
      bad_root = root_n;
      bad_root[7] ^= 4;
      EXPECT_FALSE(VerifyConsistency(m, n, root_m, bad_root, proof).ok());
      if (m > 1) {
        EXPECT_FALSE(VerifyConsistency(m - 1, n, root_m, root_n, proof).ok());
      }
      if (m + 1 < n) {
        EXPECT_FALSE(VerifyConsistency(m + 1, n, root_m, root_n, proof).ok());
      }
      EXPECT_FALSE(VerifyConsistency(m, 2 * n, root_m, root_n, proof).ok());
      if (m <= n / 2) {
        EXPECT_FALSE(VerifyConsistency(m, n / 2, root_m, root_n, proof).ok());
      }
      EXPECT_FALSE(VerifyConsistency(m, n, root_m, root_n, {}).ok());
      std::vector<Hash> truncated(proof.begin(), proof.end() - 1);
      EXPECT_FALSE(VerifyConsistency(m, n, root_m, root_n, truncated).ok());
      std::vector<Hash> extended = proof;
      extended.push_back(root_n);
      EXPECT_FALSE(VerifyConsistency(m, n, root_m, root_n, extended).ok());
      std::vector<Hash> prepended = proof;
      prepended.insert(prepended.begin(), root_m);
      EXPECT_FALSE(VerifyConsistency(m, n, root_m, root_n, prepended).ok());
    }
  }
}

TEST(MerkleProperty, FailuresSayWhatFailed) {
  const std::vector<Hash> d = MakeLeaves(5);
  const Hash root = RootFromLeafHashes(d);
  std::vector<Hash> proof = InclusionProof(d, 2);
  proof.pop_back();
  absl::Status s = VerifyInclusion(2, 5, d[2], proof, root);
  EXPECT_NE(s.message().find("too few hashes"), std::string::npos) << s;
  proof = InclusionProof(d, 2);
  proof[0][0] ^= 1;
  s = VerifyInclusion(2, 5, d[2], proof, root);
  EXPECT_NE(s.message().find("leads to root"), std::string::npos) << s;
  proof = InclusionProof(d, 2);
  proof.push_back(root);
  s = VerifyInclusion(2, 5, d[2], proof, root);
  EXPECT_NE(s.message().find("too many hashes"), std::string::npos) << s;
  s = VerifyInclusion(5, 5, d[2], {}, root);
  EXPECT_NE(s.message().find("outside a tree of size 5"), std::string::npos) << s;
}

}  // namespace
}  // namespace shredd::verify
