// The keyspace is an on-disk format: every prefix is distinct, none is a
// prefix of another (a scan over one would meet the other's records), and
// the bytes are the ones existing data directories hold.
#include "daemon/storage/keyspace.h"

#include <set>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace shredd::keyspace {
namespace {

TEST(KeyspaceTest, PrefixesAreUniqueAndNoneIsAPrefixOfAnother) {
  std::set<std::string_view> seen;
  for (std::string_view p : kAll) {
    EXPECT_FALSE(p.empty());
    EXPECT_TRUE(seen.insert(p).second) << "prefix \"" << p << "\" used twice";
  }
  for (std::string_view a : kAll) {
    for (std::string_view b : kAll) {
      if (&a == &b || a == b) continue;
      EXPECT_FALSE(b.starts_with(a)) << "\"" << a << "\" is a prefix of \"" << b << "\"";
    }
  }
}

TEST(KeyspaceTest, IndexTypesAreDistinct) {
  EXPECT_EQ((std::set<char>{kIndexSubject, kIndexDataset, kIndexLabel}).size(), 3u);
}

// Changing a value would orphan the records of every existing data dir.
TEST(KeyspaceTest, ValuesAreTheOnDiskBytes) {
  std::string all;
  for (std::string_view p : kAll) all += std::string(p) + " ";
  EXPECT_EQ(all, "te n k Ls Le Lh Li Lc b i c o x s Y Z D w E e H h U r P qs ql C M m O J V u ");
  EXPECT_EQ(std::string({kIndexSubject, kIndexDataset, kIndexLabel}), "sdl");
}

}  // namespace
}  // namespace shredd::keyspace
