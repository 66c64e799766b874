// BlobReaper (daemon/items/blob_reaper.h): a shredded item's ciphertext
// object is deleted in the background once its drop record is committed,
// and drops left by a stopped daemon are deleted at the next start.
#include "daemon/items/blob_reaper.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/crypto/digest.h"
#include "daemon/storage/keyspace.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::TempDir;

const std::string kRawId = std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);

void Publish(BlobBackend* b, const std::string& raw_id) {
  auto w = b->Create(HexEncode(raw_id));
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append("ciphertext").ok());
  ASSERT_TRUE((*w)->Publish().ok());
}

bool Exists(BlobBackend* b, const std::string& raw_id) { return b->Open(HexEncode(raw_id)).ok(); }

size_t DropRecords(rocksdb::DB* db) {
  size_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kBlobDrop); it->Valid() && it->key().starts_with(keyspace::kBlobDrop); it->Next()) ++n;
  return n;
}

template <typename F>
bool WaitFor(F done) {
  for (int i = 0; i < 200 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  return done();
}

TEST(BlobReaper, DeletesCommittedDropsInTheBackground) {
  TempDir dir;
  auto db = testing::OpenDb(dir / "db");
  auto blobs = OpenFileBlobBackend(dir / "data");
  ASSERT_TRUE(blobs.ok());
  const std::string kept = std::string(15, 'k') + "x";
  Publish(blobs->get(), kRawId);
  Publish(blobs->get(), kept);
  BlobReaper reaper(db.get(), blobs->get());
  rocksdb::WriteBatch batch;
  BlobReaper::StageDrop(kRawId, &batch);
  ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  reaper.Committed(1);
  EXPECT_TRUE(WaitFor([&] { return !Exists(blobs->get(), kRawId); }));
  EXPECT_TRUE(WaitFor([&] { return DropRecords(db.get()) == 0; }));
  EXPECT_TRUE(Exists(blobs->get(), kept));  // only what was dropped
  EXPECT_EQ(reaper.stats().deleted, 1u);
  EXPECT_EQ(reaper.stats().pending, 0u);
}

TEST(BlobReaper, DropsLeftByAStoppedDaemonAreDeletedAtTheNextStart) {
  TempDir dir;
  auto db = testing::OpenDb(dir / "db");
  auto blobs = OpenFileBlobBackend(dir / "data");
  ASSERT_TRUE(blobs.ok());
  Publish(blobs->get(), kRawId);
  rocksdb::WriteBatch batch;
  BlobReaper::StageDrop(kRawId, &batch);
  ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());  // committed, never reported: a crash
  ASSERT_TRUE(Exists(blobs->get(), kRawId));
  BlobReaper reaper(db.get(), blobs->get());
  EXPECT_TRUE(WaitFor([&] { return !Exists(blobs->get(), kRawId) && DropRecords(db.get()) == 0; }));
}

}  // namespace
}  // namespace shredd
