// The streaming RFC 6962 root: one small accumulator for every place that
// folds leaves into a Merkle root as they go by (the manifest verifier and
// receipts here; the daemon's certificate builder and transparency log are
// to use it too), in the manner of transparency-dev/merkle's compact.Range
// for the range [0, n).
//
// It holds the roots of the perfect subtrees that the binary digits of n
// give (one per 1-bit, largest first): O(log n) hashes, Append amortised
// O(1) node hashes, Root O(log n). Value type; thread-compatible.
#ifndef SHREDD_FORMATS_COMPACT_RANGE_H_
#define SHREDD_FORMATS_COMPACT_RANGE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"

#include "formats/merkle.h"

namespace shredd::verify {

class CompactRange {
 public:
  // Called for each node an Append completes: the root of the perfect
  // subtree at `level` (leaves are level 0) and `index` (its position among
  // that level's nodes, from the left). The transparency log stores them.
  using Visitor = std::function<void(int level, uint64_t index, const Hash& hash)>;

  CompactRange() = default;
  // The range of `size` leaves whose perfect subtree roots are `subtrees`
  // (largest first, one per 1-bit of size). INVALID_ARGUMENT if the count
  // does not match the bits of size.
  static absl::StatusOr<CompactRange> FromSubtrees(uint64_t size, std::vector<Hash> subtrees);

  // Adds the next leaf (a leaf hash, LeafHash(input), not the input);
  // `visit`, if given, sees every subtree root the leaf completes (not the
  // leaf itself).
  void Append(const Hash& leaf_hash, const Visitor& visit = nullptr);
  // The perfect subtree roots, largest first.
  const std::vector<Hash>& subtrees() const { return subtrees_; }

  // Leaves appended so far.
  uint64_t size() const { return size_; }

  // MTH of the leaves appended so far (RFC 6962 section 2.1): equal to
  // RootFromLeafHashes() over them; EmptyRoot() when there are none.
  Hash Root() const;

 private:
  std::vector<Hash> subtrees_;  // perfect subtree roots, largest first
  uint64_t size_ = 0;
};

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_COMPACT_RANGE_H_
