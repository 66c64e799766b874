// SlotOrderedLookup (an order's index scan, visited in key-tree slot order)
// against LookupByKey, in memory and through the scratch range.
#include "daemon/items/slot_ordered_lookup.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/items/item_store.h"
#include "daemon/storage/keyspace.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenFileVaultOrDie;
using testing::TempDir;

// Scratch records left in the database.
size_t ScratchRecords(rocksdb::DB* db) {
  size_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kSlotScratch); it->Valid() && it->key().starts_with(keyspace::kSlotScratch); it->Next()) ++n;
  return n;
}

class SlotOrderedLookupTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    vault_ = OpenFileVaultOrDie(dir_ / "vault");
    ItemStore::Options o;
    o.data_dir = dir_ / "data";
    auto store = ItemStore::Open(o, vault_.get());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    for (int i = 0; i < 300; ++i) data_.push_back("item " + std::to_string(i));
    std::vector<ItemStore::BatchEntry> entries;
    // Several batches, so that slots and item keys are in different orders.
    for (int i = 0; i < 300; ++i) {
      ItemStore::BatchEntry e;
      e.declared = {Sha256Hasher::Of(data_[i]), data_[i].size()};
      e.metadata.datasets = {"source"};
      e.metadata.subject_ids = {"subject-" + std::to_string(i)};
      e.data = data_[i];
      entries.push_back(e);
      if (entries.size() == 37 || i == 299) {
        for (const auto& r : store_->PutBatch(entries)) ASSERT_TRUE(r.ok()) << r.status();
        for (const auto& x : entries) keys_.push_back(store_->ItemKeyFor(x.declared.hash));
        entries.clear();
      }
    }
  }

  TempDir dir_;
  std::unique_ptr<Vault> vault_;
  std::unique_ptr<ItemStore> store_;
  std::vector<std::string> data_;
  std::vector<ItemKey> keys_;
};

TEST_P(SlotOrderedLookupTest, VisitsEveryStoredItemInSlotOrder) {
  std::vector<ItemKey> keys = keys_;
  std::sort(keys.begin(), keys.end());  // as an index lists them
  ItemKey missing{};
  missing[0] = 0x42;
  keys.insert(keys.begin() + 7, missing);
  std::vector<StoredItem> seen;
  {
    SlotOrderedLookup lookup(store_.get(), GetParam());
    for (const auto& k : keys) ASSERT_TRUE(lookup.Add(k).ok());
    auto s = lookup.Finish([&](const StoredItem& item) {
      seen.push_back(item);
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
  }
  ASSERT_EQ(seen.size(), keys_.size());
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1].slot, seen[i].slot);
  for (const auto& item : seen) {
    auto one = store_->LookupByKey(item.item_key);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ(item.slot, one->slot);
    EXPECT_EQ(item.object_id, one->object_id);
    EXPECT_EQ(item.info.digest, one->info.digest);
    EXPECT_EQ(item.info.metadata.subject_ids, one->info.metadata.subject_ids);
    EXPECT_EQ(item.info.metadata.datasets, one->info.metadata.datasets);
  }
  EXPECT_EQ(ScratchRecords(store_->db()), 0u);  // dropped with the lookup
}

TEST_P(SlotOrderedLookupTest, VisitErrorStopsTheWalk) {
  SlotOrderedLookup lookup(store_.get(), GetParam());
  for (const auto& k : keys_) ASSERT_TRUE(lookup.Add(k).ok());
  int visits = 0;
  auto s = lookup.Finish(
      [&](const StoredItem&) { return ++visits == 3 ? absl::CancelledError("enough") : absl::OkStatus(); });
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_EQ(visits, 3);
}

// An item that is there but cannot be read is an error naming it, not a
// skipped item (it used to be skipped: an order left it out, readable). One
// with a byte of its sealed metadata altered (opened in slot order, from
// memory or from the scratch range), one with its version byte altered (its
// record is read first).
TEST_P(SlotOrderedLookupTest, AnItemThatCannotBeReadIsAnError) {
  for (size_t damaged_byte : {size_t{60}, size_t{0}}) {
    SCOPED_TRACE(damaged_byte);
    const ItemKey key = keys_[damaged_byte == 0 ? 11 : 200];
    const std::string record_key =
        std::string(keyspace::kItem) + std::string(reinterpret_cast<const char*>(key.data()), key.size());
    std::string rec;
    ASSERT_TRUE(store_->db()->Get(rocksdb::ReadOptions(), record_key, &rec).ok());
    const std::string intact = rec;
    rec[damaged_byte] ^= 0x5a;
    ASSERT_TRUE(store_->db()->Put(rocksdb::WriteOptions(), record_key, rec).ok());
    SlotOrderedLookup lookup(store_.get(), GetParam());
    for (const auto& k : keys_) ASSERT_TRUE(lookup.Add(k).ok());
    auto s = lookup.Finish([&](const StoredItem&) { return absl::OkStatus(); });
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_NE(s.message().find("cannot be read"), std::string_view::npos) << s;
    ASSERT_TRUE(store_->db()->Put(rocksdb::WriteOptions(), record_key, intact).ok());
  }
}

// 1000: all in memory; 50: staged in the scratch range.
INSTANTIATE_TEST_SUITE_P(InMemoryAndScratch, SlotOrderedLookupTest, ::testing::Values(1000, 50));

TEST(SlotOrderedLookupScratch, LeftoversAreDroppedAtOpen) {
  TempDir dir;
  auto vault = OpenFileVaultOrDie(dir / "vault");
  ItemStore::Options o;
  o.data_dir = dir / "data";
  {
    auto store = ItemStore::Open(o, vault.get());
    ASSERT_TRUE(store.ok()) << store.status();
    // What a crash mid-scan leaves.
    ASSERT_TRUE((*store)
                    ->db()
                    ->Put(rocksdb::WriteOptions(), std::string(keyspace::kSlotScratch) + "12345678slot0001", "x")
                    .ok());
    ASSERT_EQ(ScratchRecords((*store)->db()), 1u);
  }
  auto store = ItemStore::Open(o, vault.get());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(ScratchRecords((*store)->db()), 0u);
}

}  // namespace
}  // namespace shredd
