// ItemStore::LookupByKeys (the order planner's batched read) against the
// one-at-a-time LookupByKey.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/items/item_store.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenFileVaultOrDie;
using testing::TempDir;

TEST(ItemStoreLookup, BatchedLookupMatchesSingle) {
  TempDir dir;
  auto vault = OpenFileVaultOrDie(dir / "vault");
  ItemStore::Options o;
  o.data_dir = dir / "data";
  auto store = ItemStore::Open(o, vault.get());
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::string> data;
  for (int i = 0; i < 300; ++i) data.push_back("item " + std::to_string(i));
  std::vector<ItemStore::BatchEntry> entries;
  for (int i = 0; i < 300; ++i) {
    ItemStore::BatchEntry e;
    e.declared = {Sha256Hasher::Of(data[i]), data[i].size()};
    e.metadata.datasets = {"source"};
    if (i % 3 == 0) e.metadata.subject_ids = {"subject-" + std::to_string(i)};
    if (i % 5 == 0) e.metadata.labels = {{"k", std::to_string(i)}};
    e.metadata.name = "n" + std::to_string(i);
    e.data = data[i];
    entries.push_back(e);
  }
  for (const auto& r : (*store)->PutBatch(entries)) ASSERT_TRUE(r.ok()) << r.status();
  std::vector<ItemKey> keys;
  for (const auto& e : entries) keys.push_back((*store)->ItemKeyFor(e.declared.hash));
  std::reverse(keys.begin(), keys.end());  // any order
  ItemKey missing{};
  missing[0] = 0x42;
  keys.insert(keys.begin() + 7, missing);
  auto got = (*store)->LookupByKeys(keys);
  ASSERT_EQ(got.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto one = (*store)->LookupByKey(keys[i]);
    if (keys[i] == missing) {
      EXPECT_TRUE(absl::IsNotFound(got[i].status())) << got[i].status();
      EXPECT_TRUE(absl::IsNotFound(one.status()));
      continue;
    }
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ(got[i]->item_key, keys[i]);
    EXPECT_EQ(got[i]->slot, one->slot);
    EXPECT_EQ(got[i]->object_id, one->object_id);
    EXPECT_EQ(got[i]->inline_content, one->inline_content);
    EXPECT_EQ(got[i]->info.digest, one->info.digest);
    EXPECT_EQ(got[i]->info.metadata.kind, one->info.metadata.kind);
    EXPECT_EQ(got[i]->info.metadata.subject_ids, one->info.metadata.subject_ids);
    EXPECT_EQ(got[i]->info.metadata.datasets, one->info.metadata.datasets);
    EXPECT_EQ(got[i]->info.metadata.labels, one->info.metadata.labels);
    EXPECT_EQ(got[i]->info.metadata.name, one->info.metadata.name);
  }
  // Content digests round-trip through the (binary) metadata.
  auto first = (*store)->Lookup(entries[0].declared.hash);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->info.digest, entries[0].declared);
  EXPECT_EQ(first->info.metadata.subject_ids, entries[0].metadata.subject_ids);
}

}  // namespace
}  // namespace shredd
