// RFC 6962 / RFC 9162 (section 2) Merkle trees over SHA-256.
//
//   leaf hash  = SHA-256(0x00 || leaf_input)
//   node hash  = SHA-256(0x01 || left || right)
//   MTH({})    = SHA-256("")
//   MTH(D[n])  = NodeHash(MTH(D[0:k]), MTH(D[k:n])), k = largest power of
//                two smaller than n.
//
// Proofs are lists of hashes ordered from the leaf (or the smaller tree's
// root) towards the root, exactly as in RFC 9162 and the C2SP tlog formats,
// so they interoperate with golang.org/x/mod/sumdb/tlog and
// github.com/transparency-dev/merkle.
//
// Everything here is a pure function of its arguments and thread-safe.

#ifndef SHREDD_FORMATS_MERKLE_H_
#define SHREDD_FORMATS_MERKLE_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "formats/encoding.h"

namespace shredd::verify {

using Hash = std::array<uint8_t, 32>;

// SHA-256 of arbitrary bytes (OpenSSL; SHA-NI where the CPU has it).
Hash Sha256(std::string_view data);

// Parses exactly 64 lowercase hex characters into a Hash.
absl::StatusOr<Hash> ParseHash(std::string_view hex);

// RFC 6962 hashing primitives.
Hash LeafHash(std::string_view leaf_input);          // SHA-256(0x00 || leaf_input)
Hash NodeHash(const Hash& left, const Hash& right);  // SHA-256(0x01||l||r)
Hash EmptyRoot();                                    // SHA-256("") = e3b0c442...b855, MTH of the empty tree

// MTH over already-hashed leaves. O(n) time, O(n) scratch memory.
Hash RootFromLeafHashes(std::span<const Hash> leaf_hashes);

// Audit path PATH(index, D[n]) for leaf `index` of the tree over
// `leaf_hashes`. Requires index < leaf_hashes.size() (returns an empty proof
// otherwise). O(n) per call; use MerkleTree for many proofs over one tree.
std::vector<Hash> InclusionProof(std::span<const Hash> leaf_hashes, uint64_t index);

// Consistency proof PROOF(m, D[n]) between the tree over the first m leaves
// and the tree over all n = leaf_hashes.size() leaves. Empty when m == 0 or
// m >= n (those cases need no proof).
std::vector<Hash> ConsistencyProof(std::span<const Hash> leaf_hashes, uint64_t m);

// Recomputes the root from an inclusion proof (RFC 9162 2.1.3.2). Fails with
// InvalidArgument if index >= size or the proof has the wrong length for
// (index, size). Does not compare against any expected root.
absl::StatusOr<Hash> RootFromInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                                       std::span<const Hash> proof);

// OK iff `proof` proves that `leaf_hash` is leaf `index` of the tree of
// `size` leaves whose root is `root`. Otherwise InvalidArgument saying why.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash, std::span<const Hash> proof,
                             const Hash& root);

// OK iff `proof` proves that the tree of size m with root `root_m` is a
// prefix of the tree of size n with root `root_n` (RFC 9162 2.1.4.2).
// m == n requires an empty proof and equal roots; m == 0 requires an empty
// proof and root_m == EmptyRoot(); m > n always fails.
absl::Status VerifyConsistency(uint64_t m, uint64_t n, const Hash& root_m, const Hash& root_n,
                               std::span<const Hash> proof);

// An immutable tree that keeps every level in memory (about 2n hashes), so
// that the root is computed once and each inclusion proof costs O(log n).
// Meant for issuing one receipt per item of a large certificate.
class MerkleTree {
 public:
  explicit MerkleTree(std::vector<Hash> leaf_hashes);

  uint64_t size() const { return levels_.front().size(); }
  const Hash& root() const { return root_; }
  const Hash& leaf(uint64_t index) const { return levels_.front()[index]; }

  // Same result as the free InclusionProof(). Requires index < size().
  std::vector<Hash> InclusionProof(uint64_t index) const;

 private:
  // levels_[0] are the leaf hashes; levels_[i+1][j] = NodeHash of
  // levels_[i][2j], levels_[i][2j+1], or levels_[i][2j] itself when it has no
  // right sibling (this is how RFC 6962's unbalanced trees lay out).
  std::vector<std::vector<Hash>> levels_;
  Hash root_;
};

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_MERKLE_H_
