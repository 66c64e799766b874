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
#include <vector>

#include "formats/merkle.h"

namespace shredd::verify {

class CompactRange {
 public:
  // Adds the next leaf (a leaf hash, LeafHash(input), not the input).
  void Append(const Hash& leaf_hash);

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
