// CompactRange against the whole-list root of merkle.h, for every size up
// to 300 and around powers of two, and at every step of one growing list.
#include "formats/compact_range.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/merkle.h"

namespace shredd::verify {
namespace {

std::vector<Hash> Leaves(uint64_t n) {
  std::vector<Hash> leaves;
  for (uint64_t i = 0; i < n; ++i) leaves.push_back(LeafHash("leaf " + std::to_string(i)));
  return leaves;
}

TEST(CompactRange, EmptyIsTheEmptyRoot) {
  CompactRange r;
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.Root(), EmptyRoot());
}

TEST(CompactRange, OneLeafIsItsHash) {
  CompactRange r;
  const Hash leaf = LeafHash("only");
  r.Append(leaf);
  EXPECT_EQ(r.Root(), leaf);
}

TEST(CompactRange, EqualsRootFromLeafHashesAtEveryStep) {
  const std::vector<Hash> leaves = Leaves(300);
  CompactRange r;
  for (uint64_t n = 1; n <= leaves.size(); ++n) {
    r.Append(leaves[n - 1]);
    ASSERT_EQ(r.size(), n);
    ASSERT_EQ(r.Root(), RootFromLeafHashes(std::span<const Hash>(leaves.data(), n))) << "n = " << n;
  }
}

TEST(CompactRange, VisitsEveryCompletedSubtreeWithItsPosition) {
  const std::vector<Hash> leaves = Leaves(77);
  CompactRange r;
  uint64_t visited = 0;
  for (const Hash& leaf : leaves) {
    r.Append(leaf, [&](int level, uint64_t index, const Hash& hash) {
      const uint64_t width = uint64_t{1} << level;
      ASSERT_LE((index + 1) * width, r.size() + 1);
      EXPECT_EQ(hash, RootFromLeafHashes(std::span<const Hash>(leaves.data() + index * width, width)))
          << "level " << level << " index " << index;
      ++visited;
    });
  }
  EXPECT_EQ(visited, 77u - __builtin_popcount(77));  // n leaves complete n - popcount(n) inner nodes
}

TEST(CompactRange, ResumesFromItsSubtrees) {
  const std::vector<Hash> leaves = Leaves(100);
  for (uint64_t split : {0u, 1u, 37u, 64u, 99u}) {
    CompactRange head;
    for (uint64_t i = 0; i < split; ++i) head.Append(leaves[i]);
    auto resumed = CompactRange::FromSubtrees(split, head.subtrees());
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    for (uint64_t i = split; i < leaves.size(); ++i) resumed->Append(leaves[i]);
    EXPECT_EQ(resumed->Root(), RootFromLeafHashes(leaves)) << "split " << split;
  }
  EXPECT_FALSE(CompactRange::FromSubtrees(3, {LeafHash("a")}).ok());  // 3 needs two subtrees
}

TEST(CompactRange, EqualsMerkleTreeAroundPowersOfTwo) {
  for (uint64_t p = 2; p <= 4096; p *= 2) {
    for (uint64_t n : {p - 1, p, p + 1}) {
      const std::vector<Hash> leaves = Leaves(n);
      CompactRange r;
      for (const Hash& h : leaves) r.Append(h);
      EXPECT_EQ(r.Root(), MerkleTree(leaves).root()) << "n = " << n;
    }
  }
}

TEST(CompactRange, OrderMatters) {
  CompactRange ab, ba;
  ab.Append(LeafHash("a"));
  ab.Append(LeafHash("b"));
  ba.Append(LeafHash("b"));
  ba.Append(LeafHash("a"));
  EXPECT_NE(ab.Root(), ba.Root());
}

}  // namespace
}  // namespace shredd::verify
