#include "formats/compact_range.h"

namespace shredd::verify {

absl::StatusOr<CompactRange> CompactRange::FromSubtrees(uint64_t size, std::vector<Hash> subtrees) {
  if (static_cast<uint64_t>(__builtin_popcountll(size)) != subtrees.size()) {
    return absl::InvalidArgumentError("a compact range needs one subtree root per 1-bit of its size");
  }
  CompactRange r;
  r.size_ = size;
  r.subtrees_ = std::move(subtrees);
  return r;
}

void CompactRange::Append(const Hash& leaf_hash, const Visitor& visit) {
  // Each trailing 1-bit of size_ is a subtree as large as what is being
  // carried: merge them, as in binary addition.
  Hash carry = leaf_hash;
  int level = 0;
  for (uint64_t s = size_; s & 1; s >>= 1) {
    carry = NodeHash(subtrees_.back(), carry);
    subtrees_.pop_back();
    ++level;
    // The new node covers leaves [size_ + 1 - 2^level, size_ + 1).
    if (visit) visit(level, ((size_ + 1) >> level) - 1, carry);
  }
  subtrees_.push_back(carry);
  ++size_;
}

Hash CompactRange::Root() const {
  if (subtrees_.empty()) return EmptyRoot();
  // MTH(D[n]) = NodeHash(MTH(largest), MTH(rest)): fold from the smallest.
  Hash root = subtrees_.back();
  for (size_t i = subtrees_.size() - 1; i-- > 0;) root = NodeHash(subtrees_[i], root);
  return root;
}

}  // namespace shredd::verify
