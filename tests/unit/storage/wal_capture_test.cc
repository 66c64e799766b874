// WalCapture against a real RocksDB: batches written from several threads
// at once (RocksDB merges them into write groups) come back as an unbroken
// run, each with the sequence number RocksDB gave it, and replaying the run
// rebuilds the database exactly; a write that is not captured (skipped the
// WAL) ends the run; a writer still between db->Write and End holds the run
// back only for a bounded wait; the byte bound is kept.
#include "daemon/storage/wal_capture.h"

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include "daemon/base/strings.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenDb;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

std::string Random(size_t n) {
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

std::map<std::string, std::string> Dump(rocksdb::DB* db) {
  std::map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) out[it->key().ToString()] = it->value().ToString();
  return out;
}

// Begin, write, End: what GuardedWrite does for a replicated database.
void CapturedWrite(WalCapture& cap, rocksdb::DB* db, rocksdb::WriteBatch& b, bool wal = true, bool sync = false) {
  rocksdb::WriteOptions wo;
  wo.disableWAL = !wal;
  wo.sync = sync;
  const uint64_t t = cap.Begin();
  const rocksdb::Status s = db->Write(wo, &b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  cap.End(t, wal ? &b : nullptr);
}

struct Taken {
  uint64_t seq;
  uint32_t count;
  std::string rep;
};

std::vector<Taken> TakeAll(WalCapture& cap, uint64_t after, uint64_t upto, uint64_t* reached,
                           std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
  std::vector<Taken> out;
  *reached = cap.TakeRun(after, upto, wait, [&](uint64_t seq, uint32_t count, std::string_view rep) {
    out.push_back({seq, count, std::string(rep)});
    return true;
  });
  return out;
}

TEST(WalCapture, ConcurrentWritesComeBackAsAnUnbrokenRunThatReplaysExactly) {
  TempDir dir;
  auto db = OpenDb(dir / "db");
  WalCapture cap(64 << 20);
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        rocksdb::WriteBatch b;
        for (int k = 0; k <= i % 5; ++k) b.Put(StrCat("t", t, "-", i, "-", k), Random(64));
        if (i % 7 == 0) b.Delete(StrCat("t", t, "-", i - 1, "-0"));
        CapturedWrite(cap, db.get(), b, true, /*sync=*/true);  // writers queue behind the fsync: groups
      }
    });
  }
  for (auto& w : writers) w.join();
  const uint64_t latest = db->GetLatestSequenceNumber();
  size_t logged = 0;  // records in the WAL: one per write group
  std::unique_ptr<rocksdb::TransactionLogIterator> it;
  ASSERT_TRUE(db->GetUpdatesSince(1, &it).ok());
  for (; it->Valid(); it->Next()) ++logged;
  EXPECT_LT(logged, 800u) << "RocksDB merged some writers' batches into one write group";
  uint64_t reached = 0;
  std::vector<Taken> run = TakeAll(cap, 0, latest, &reached);
  EXPECT_EQ(reached, latest);
  ASSERT_EQ(run.size(), 800u) << "every batch, each on its own";
  uint64_t next = 1;
  for (const Taken& t : run) {
    EXPECT_EQ(t.seq, next);
    next += t.count;
  }
  TempDir out;
  auto copy = OpenDb(out / "db");
  for (Taken& t : run) {
    rocksdb::WriteBatch wb(std::move(t.rep));
    ASSERT_TRUE(copy->Write(rocksdb::WriteOptions(), &wb).ok());
  }
  EXPECT_EQ(copy->GetLatestSequenceNumber(), latest);
  EXPECT_EQ(Dump(copy.get()), Dump(db.get()));
  EXPECT_EQ(cap.bytes(), 0u);
}

TEST(WalCapture, AWriteThatSkippedTheWalEndsTheRun) {
  TempDir dir;
  auto db = OpenDb(dir / "db");
  WalCapture cap(64 << 20);
  rocksdb::WriteBatch a, staged, c;
  a.Put("a", "1");
  staged.Put("staged", "x");
  c.Put("c", "3");
  CapturedWrite(cap, db.get(), a);
  CapturedWrite(cap, db.get(), staged, /*wal=*/false);
  CapturedWrite(cap, db.get(), c);
  uint64_t reached = 0;
  const auto t0 = Clock::now();
  auto run = TakeAll(cap, 0, db->GetLatestSequenceNumber(), &reached);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1000)) << "no writer was still on its way";
  ASSERT_EQ(run.size(), 1u);
  EXPECT_EQ(reached, 1u) << "the run stops before the write that skipped the WAL";
  // What was shipped otherwise (a snapshot up to 2) is dropped; the run goes on after it.
  run = TakeAll(cap, 2, db->GetLatestSequenceNumber(), &reached);
  ASSERT_EQ(run.size(), 1u);
  EXPECT_EQ(run[0].seq, 3u);
  EXPECT_EQ(reached, 3u);
}

// A writer that has begun but not ended may hold a batch the run needs:
// TakeRun waits for it, but only as long as it is told; a writer that begins
// after TakeRun started does not hold it back at all.
TEST(WalCapture, AWriterStillOnItsWayHoldsTheRunBackForABoundedWait) {
  TempDir dir;
  auto db = OpenDb(dir / "db");
  WalCapture cap(64 << 20);
  rocksdb::WriteBatch a;
  a.Put("a", "1");
  CapturedWrite(cap, db.get(), a);
  const uint64_t open = cap.Begin();  // its batch never comes
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "direct", "2").ok());
  uint64_t reached = 0;
  auto t0 = Clock::now();
  auto run = TakeAll(cap, 0, db->GetLatestSequenceNumber(), &reached, std::chrono::milliseconds(150));
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(140));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
  EXPECT_EQ(reached, 1u);
  cap.End(open, nullptr);
  t0 = Clock::now();
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    (void)cap.Begin();  // begun after TakeRun started: never waited for
  });
  run = TakeAll(cap, reached, db->GetLatestSequenceNumber(), &reached, std::chrono::milliseconds(5000));
  late.join();
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2000));
  EXPECT_TRUE(run.empty());
}

TEST(WalCapture, KeepsAtMostItsByteBound) {
  TempDir dir;
  auto db = OpenDb(dir / "db");
  WalCapture cap(10000);
  for (int i = 0; i < 5; ++i) {
    rocksdb::WriteBatch b;
    b.Put(StrCat("k", i), Random(3000));
    CapturedWrite(cap, db.get(), b);
  }
  EXPECT_LE(cap.bytes(), 10000u);
  uint64_t reached = 0;
  auto run = TakeAll(cap, 0, db->GetLatestSequenceNumber(), &reached);
  EXPECT_EQ(run.size(), 3u);
  EXPECT_EQ(reached, 3u) << "the rest is left to the WAL reader";
}

}  // namespace
}  // namespace shredd
