#include "daemon/keys/key_tree.h"

#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/base/coding.h"
#include "daemon/storage/rocks_util.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenDb;
using testing::OpenFileVaultOrDie;
using testing::TempDir;

SecretBytes KeyFor(uint64_t slot) {
  SecretBytes k(32);
  for (int i = 0; i < 32; ++i) k.data()[i] = static_cast<uint8_t>(slot * 7 + i);
  return k;
}

class KeyTreeTest : public ::testing::Test {
 protected:
  void Open() {
    db_ = OpenDb(dir_ / "db");
    vault_ = OpenFileVaultOrDie(dir_ / "vault");
    auto t = KeyTree::Open(db_.get(), vault_.get());
    ASSERT_TRUE(t.ok()) << t.status();
    tree_ = std::move(*t);
  }
  void Close() {
    tree_.reset();
    db_.reset();
    vault_.reset();
  }
  // Stores DEKs for n fresh slots; returns the slots.
  std::vector<uint64_t> AddSlots(int n) {
    std::vector<uint64_t> slots;
    rocksdb::WriteBatch batch;
    KeyTree::PendingNodes all;
    {
      auto lease = tree_->BeginWrite();
      for (int i = 0; i < n; ++i) {
        auto s = tree_->AllocateSlot();
        EXPECT_TRUE(s.ok());
        auto p = tree_->AddDek(lease, *s, KeyFor(*s), &batch);
        EXPECT_TRUE(p.ok()) << p.status();
        all.node_ids.insert(all.node_ids.end(), p->node_ids.begin(), p->node_ids.end());
        slots.push_back(*s);
      }
      EXPECT_TRUE(SyncWrite(db_.get(), &batch).ok());
    }
    tree_->Committed(all);
    return slots;
  }
  void ExpectReadable(uint64_t slot) {
    auto k = tree_->GetDek(slot);
    ASSERT_TRUE(k.ok()) << "slot " << slot << ": " << k.status();
    SecretBytes want = KeyFor(slot);
    EXPECT_EQ(0, std::memcmp(k->data(), want.data(), 32)) << "slot " << slot;
  }
  std::map<std::string, std::string> Snapshot() {
    std::map<std::string, std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) out[it->key().ToString()] = it->value().ToString();
    return out;
  }

  TempDir dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<Vault> vault_;
  std::unique_ptr<KeyTree> tree_;
};

TEST_F(KeyTreeTest, FreshTreeStartsAtEpochOneWithOneRoot) {
  Open();
  EXPECT_EQ(tree_->epoch(), 1u);
  auto roots = vault_->ListRoots();
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(*roots, std::vector<uint64_t>{1});
  EXPECT_TRUE(tree_->GetDek(KeyTree::kSystemSlot).ok());
}

TEST_F(KeyTreeTest, ShredDropsOnlyTheChosenSlotsAndRotatesTheRoot) {
  Open();
  auto slots = AddSlots(300);  // spans several buckets
  std::vector<uint64_t> doomed = {slots[3], slots[64], slots[65], slots[299]};
  rocksdb::WriteBatch batch;
  auto r = tree_->Shred(doomed, &batch);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->destroyed_epoch, 1u);
  EXPECT_EQ(r->installed_epoch, 2u);
  EXPECT_EQ(tree_->epoch(), 2u);
  EXPECT_EQ(*vault_->ListRoots(), std::vector<uint64_t>{2});
  std::set<uint64_t> d(doomed.begin(), doomed.end());
  for (uint64_t s : slots) {
    if (d.count(s)) {
      EXPECT_TRUE(absl::IsNotFound(tree_->GetDek(s).status())) << s;
    } else {
      ExpectReadable(s);
    }
  }
  // Survives a restart: everything is under the new root.
  Close();
  Open();
  EXPECT_EQ(tree_->epoch(), 2u);
  for (uint64_t s : slots) {
    if (!d.count(s)) ExpectReadable(s);
  }
  EXPECT_TRUE(tree_->GetDek(KeyTree::kSystemSlot).ok());
}

TEST_F(KeyTreeTest, ShredOfAMissingSlotChangesNothing) {
  Open();
  auto slots = AddSlots(10);
  rocksdb::WriteBatch batch;
  std::vector<uint64_t> doomed = {slots[0], 999999};
  auto r = tree_->Shred(doomed, &batch);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_EQ(tree_->epoch(), 1u);
  EXPECT_EQ(*vault_->ListRoots(), std::vector<uint64_t>{1});
  ExpectReadable(slots[0]);
}

TEST_F(KeyTreeTest, SystemSlotCannotBeShredded) {
  Open();
  rocksdb::WriteBatch batch;
  std::vector<uint64_t> doomed = {KeyTree::kSystemSlot};
  EXPECT_TRUE(absl::IsInvalidArgument(tree_->Shred(doomed, &batch).status()));
}

// The heart of invariant 1 at the key-tree level: an old copy of every record
// plus every secret held after the shred does not yield the shredded DEK.
TEST_F(KeyTreeTest, OldCopiesAreUselessWithTheVaultAfterTheShred) {
  Open();
  auto slots = AddSlots(200);
  const uint64_t victim = slots[70];
  auto before = Snapshot();  // "image A"
  rocksdb::WriteBatch batch;
  std::vector<uint64_t> doomed = {victim};
  ASSERT_TRUE(tree_->Shred(doomed, &batch).ok());
  auto after = Snapshot();  // "image B"

  // Attacker: every root in the vault now, and every record of both images.
  auto roots = vault_->ListRoots();
  ASSERT_TRUE(roots.ok());
  std::vector<SecretBytes> known;  // every key the attacker can derive
  for (auto* image : {&before, &after}) {
    for (const auto& [k, v] : *image) {
      if (k.size() != 10 || k[0] != 'n' || k[1] != KeyTree::kLevels - 1) continue;
      uint64_t index = LoadBigEndian64(k.data() + 2);
      for (uint64_t e : *roots) {
        auto key = vault_->UnwrapWithRoot(e, v, NodeAssociatedData(KeyTree::kLevels - 1, index));
        if (key.ok()) known.push_back(std::move(*key));
      }
    }
  }
  EXPECT_FALSE(known.empty()) << "the current tree must still open with the current root";
  // Close over all node records of both images with every known key.
  bool grew = true;
  std::set<std::string> opened;
  while (grew) {
    grew = false;
    for (auto* image : {&before, &after}) {
      for (const auto& [k, v] : *image) {
        if (k.size() != 10 || k[0] != 'n') continue;
        std::string id = k + v;
        if (opened.count(id)) continue;
        uint64_t index = LoadBigEndian64(k.data() + 2);
        for (size_t i = 0; i < known.size(); ++i) {
          auto key = OpenSecret(known[i], v, NodeAssociatedData(k[1], index));
          if (key.ok()) {
            opened.insert(id);
            known.push_back(std::move(*key));
            grew = true;
            break;
          }
        }
      }
    }
  }
  // The victim's wrapped DEK exists only in image A; no known key opens it.
  const std::string rec = DekRecordKey(victim);
  ASSERT_TRUE(before.count(rec));
  EXPECT_FALSE(after.count(rec));
  for (const auto& k : known) {
    EXPECT_FALSE(OpenSecret(k, before.at(rec), DekAssociatedData(victim)).ok());
  }
  // Control: a survivor in the same bucket opens from image B's records.
  const std::string ok_rec = DekRecordKey(slots[71]);
  bool survivor_opens = false;
  for (const auto& k : known) survivor_opens |= OpenSecret(k, after.at(ok_rec), DekAssociatedData(slots[71])).ok();
  EXPECT_TRUE(survivor_opens);
}

TEST_F(KeyTreeTest, EpochCostDoesNotGrowWithTheNumberOfSlots) {
  Open();
  AddSlots(10);
  rocksdb::WriteBatch b1;
  std::vector<uint64_t> d1 = {5};
  auto small = tree_->Shred(d1, &b1);
  ASSERT_TRUE(small.ok());
  auto many = AddSlots(50000);
  rocksdb::WriteBatch b2;
  std::vector<uint64_t> d2 = {many[25000]};
  auto large = tree_->Shred(d2, &b2);
  ASSERT_TRUE(large.ok());
  // One path: at most 63 surviving DEKs + 4 levels x 63 siblings + 64 tops.
  EXPECT_LE(large->keys_rewrapped, 63u + 4 * 63 + 64);
  EXPECT_EQ(large->nodes_rekeyed, 4u);
  EXPECT_GT(large->keys_rewrapped, small->keys_rewrapped);  // a fuller bucket, same bound
}

TEST_F(KeyTreeTest, RestartAfterCrashBeforeCommitDiscardsTheNewRoot) {
  Open();
  auto slots = AddSlots(5);
  ASSERT_TRUE(vault_->CreateRoot(2).ok());  // as if Shred crashed right after CreateRoot
  Close();
  Open();
  EXPECT_EQ(tree_->epoch(), 1u);
  EXPECT_EQ(*vault_->ListRoots(), std::vector<uint64_t>{1});
  for (uint64_t s : slots) ExpectReadable(s);
}

TEST_F(KeyTreeTest, RestartAfterCrashBeforeDestroyDestroysTheOldRoot) {
  Open();
  auto slots = AddSlots(5);
  // Simulate: the epoch committed, then the process died before DestroyRoot.
  // Re-create root 1's leftovers by copying the vault before the shred.
  std::filesystem::copy(dir_ / "vault", dir_ / "vault-before", std::filesystem::copy_options::recursive);
  rocksdb::WriteBatch b;
  std::vector<uint64_t> doomed = {slots[0]};
  ASSERT_TRUE(tree_->Shred(doomed, &b).ok());
  Close();
  std::filesystem::copy_file(dir_ / "vault-before/root-1.key", dir_ / "vault/root-1.key");
  Open();
  EXPECT_EQ(tree_->epoch(), 2u);
  EXPECT_EQ(*vault_->ListRoots(), std::vector<uint64_t>{2});
  ExpectReadable(slots[1]);
}

TEST_F(KeyTreeTest, DataDirOlderThanVaultRefusesAndTouchesNothing) {
  Open();
  auto slots = AddSlots(5);
  Close();
  std::filesystem::copy(dir_ / "db", dir_ / "db-old", std::filesystem::copy_options::recursive);
  Open();
  rocksdb::WriteBatch b;
  std::vector<uint64_t> doomed = {slots[0]};
  ASSERT_TRUE(tree_->Shred(doomed, &b).ok());
  Close();
  auto db = OpenDb(dir_ / "db-old");
  auto vault = OpenFileVaultOrDie(dir_ / "vault");
  auto t = KeyTree::Open(db.get(), vault.get());
  EXPECT_TRUE(absl::IsFailedPrecondition(t.status())) << t.status();
  EXPECT_EQ(*vault->ListRoots(), std::vector<uint64_t>{2});  // the live root survives
}

TEST_F(KeyTreeTest, NewDataDirWithAUsedVaultIsRefused) {
  Open();
  Close();
  auto db = OpenDb(dir_ / "db2");
  auto vault = OpenFileVaultOrDie(dir_ / "vault");
  auto t = KeyTree::Open(db.get(), vault.get());
  EXPECT_TRUE(absl::IsFailedPrecondition(t.status())) << t.status();
}

TEST_F(KeyTreeTest, AlteredRecordsAreDataLoss) {
  Open();
  auto slots = AddSlots(3);
  std::string v;
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), DekRecordKey(slots[1]), &v).ok());
  v[30] ^= 1;
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), DekRecordKey(slots[1]), v).ok());
  EXPECT_TRUE(absl::IsDataLoss(tree_->GetDek(slots[1]).status()));
  ExpectReadable(slots[0]);
  // A node record altered on disk is detected after a restart (cache cold).
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), NodeRecordKey(0, 0), &v).ok());
  v[v.size() - 1] ^= 0x80;
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), NodeRecordKey(0, 0), v).ok());
  Close();
  Open();
  EXPECT_TRUE(absl::IsDataLoss(tree_->GetDek(slots[0]).status()));
}

TEST_F(KeyTreeTest, ConcurrentWritersAndShredsLoseNothing) {
  Open();
  auto base = AddSlots(200);
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<uint64_t> written;
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&] {
      while (!stop) {
        auto s = AddSlots(7);
        std::lock_guard l(mu);
        written.insert(written.end(), s.begin(), s.end());
      }
    });
  }
  std::set<uint64_t> shredded;
  for (int i = 0; i < 20; ++i) {
    rocksdb::WriteBatch b;
    std::vector<uint64_t> doomed = {base[i * 5]};
    auto r = tree_->Shred(doomed, &b);
    ASSERT_TRUE(r.ok()) << r.status();
    shredded.insert(base[i * 5]);
  }
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_GT(written.size(), 0u);
  for (uint64_t s : written) ExpectReadable(s);
  for (uint64_t s : base) {
    if (!shredded.count(s)) ExpectReadable(s);
  }
  Close();
  Open();
  for (uint64_t s : written) ExpectReadable(s);
}

}  // namespace
}  // namespace shredd
