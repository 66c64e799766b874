#include "formats/compact_range.h"

namespace shredd::verify {

void CompactRange::Append(const Hash& leaf_hash) {
  // Each trailing 1-bit of size_ is a subtree as large as what is being
  // carried: merge them, as in binary addition.
  Hash carry = leaf_hash;
  for (uint64_t s = size_; s & 1; s >>= 1) {
    carry = NodeHash(subtrees_.back(), carry);
    subtrees_.pop_back();
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
