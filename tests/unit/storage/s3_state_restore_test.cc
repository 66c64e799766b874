// Restore from the object store against a real Ceph RGW (fixture "ceph"):
// a damaged snapshot, tampered or missing WAL objects, the gap a crash
// leaves, write groups shipped in parts, an older copy of the state started
// beside the live one, and runs: restore follows one history, never
// splicing in another's objects (docs/RECOVERY.md "Runs").
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "daemon/base/strings.h"
#include "daemon/storage/state_objects.h"
#include "daemon/storage/state_replicator.h"
#include "tests/unit/storage/s3_test_env.h"
#include "tests/unit/storage/state_test_util.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::NewBucketClient;
using testing::TempDir;
using namespace state_test;  // NOLINT(google-build-using-namespace)

// A snapshot publishes what it holds (WaitReplicated may then acknowledge
// it) while the WAL objects it covers may still be in flight. If the
// machine dies then and the newest snapshot is damaged, the fallback to the
// one before it stops short of what was acknowledged: DATA_LOSS, not a
// restore that exits 0 without it.
TEST(StateReplicator, AFallbackThatStopsShortOfTheDamagedSnapshotIsDataLoss) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  SyncPut(db.get(), "first", "in the older snapshot");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  SyncPut(db.get(), "acknowledged", "in the newest snapshot and a WAL object");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  ASSERT_TRUE(r->SnapshotNow().ok());
  r->Stop();
  auto descs = ListDescriptors(*c);
  ASSERT_TRUE(descs.ok() && descs->size() >= 2) << descs.status();
  // The WAL objects the newest snapshot covers never landed; the snapshot
  // itself is damaged.
  std::vector<std::string> covered;
  auto wal = ListWalObjects(*c);
  ASSERT_TRUE(wal.ok());
  for (const WalObjectKey& w : *wal) {
    if (w.last > (*descs)[descs->size() - 2].seq) covered.push_back(w.key);
  }
  ASSERT_FALSE(covered.empty());
  ASSERT_TRUE(DeleteKeys(*c, covered).ok());
  ASSERT_TRUE(c->PutObject(descs->back().key, "damaged").ok());
  TempDir out;
  auto report = RestoreState(*c, out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(report.status())) << report.status();
  EXPECT_NE(report.status().message().find("acknowledged state is in no intact object"), std::string::npos)
      << report.status();
}

TEST(StateReplicator, TamperedOrMissingWalObjectsFailTheRestoreNamingThem) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  // One WAL object per replicated write, except for writes the start-up
  // snapshot may already cover: write until three exist.
  for (int i = 0; i < 10 && Keys(*c, "state/wal/").size() < 3; ++i) {
    SyncPut(db.get(), StrCat("k", i), "v");
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  }
  r->Stop();
  auto wal = Keys(*c, "state/wal/");
  ASSERT_GE(wal.size(), 3u);
  std::string body;
  ASSERT_TRUE(c->GetObject(wal[1], 0, 0, &body).ok());
  // The operator edits a batch and recomputes the checksum: the signature
  // gives it away.
  const std::string original = body;
  const size_t data = body.size() - 32 - 64;
  body[data - 2] ^= 0x20;
  const Sha256 sum = Sha256Hasher::Of(std::string_view(body).substr(0, data));
  body.replace(data, 32, reinterpret_cast<const char*>(sum.data()), 32);
  ASSERT_TRUE(c->PutObject(wal[1], body).ok());
  TempDir forged_out;
  auto forged = RestoreState(*c, forged_out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(forged.status())) << forged.status();
  EXPECT_NE(forged.status().message().find(wal[1]), std::string::npos) << forged.status();
  EXPECT_NE(forged.status().message().find("not signed by this vault's identity"), std::string::npos)
      << forged.status();
  body = original;
  body[data - 2] ^= 0x20;
  ASSERT_TRUE(c->PutObject(wal[1], body).ok());
  TempDir out;
  auto bad = RestoreState(*c, out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find(wal[1]), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("checksum"), std::string::npos) << bad.status();
  ASSERT_TRUE(c->DeleteObject(wal[1]).ok());
  TempDir out2;
  auto gap = RestoreState(*c, out2 / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(gap.status())) << gap.status();
  EXPECT_NE(gap.status().message().find("gap"), std::string::npos) << gap.status();
  EXPECT_NE(gap.status().message().find(wal[2]), std::string::npos) << gap.status();
}

// A crash with several WAL objects in flight can leave a gap: a later
// object arrived, an earlier one never did. Nothing after the gap was
// acknowledged (an acknowledgement waits for every earlier object), so
// restore stops there; an object after the gap whose floor says the gap had
// been in the store means an object was deleted: DATA_LOSS. The restored
// daemon's first snapshot removes the objects of the lost history after it.
TEST(StateReplicator, RestoreStopsAtAGapACrashLeft) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  for (int i = 0; i < 5; ++i) {
    SyncPut(db.get(), StrCat("k", i), "v");
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  }
  r->Stop();
  const uint64_t last = db->GetLatestSequenceNumber();
  // The lost machine's tail: sequence last+1..last+2 never arrived, the
  // object after it (sealed while only `last` was in the store) did.
  rocksdb::WriteBatch ghost;
  ghost.Put("ghost", "never acknowledged");
  const std::vector<WalBatch> tail = {{.seq = last + 3, .count = 1, .rep = ghost.Data()}};
  const StateRun run = r->run();
  const std::string tail_key = c->KeyFor(WalObjectName(last + 3, last + 3, run.id));
  ASSERT_TRUE(c->PutObject(tail_key, EncodeWalObject(tail, last, Identity().Signer(), &run)).ok());
  TempDir out;
  RestoreReport report;
  EXPECT_EQ(Restored(*c, out / "db", &report), Dump(db.get()));
  EXPECT_EQ(report.final_seq, last);
  EXPECT_NE(report.gap.find(StrCat(last + 1, "..", last + 2)), std::string::npos) << report.gap;
  // The same object claiming that last+1 had been in the store when it was
  // sealed: the gap is a deleted object, not a crash.
  ASSERT_TRUE(c->PutObject(tail_key, EncodeWalObject(tail, last + 1, Identity().Signer(), &run)).ok());
  TempDir out2;
  auto lost = RestoreState(*c, out2 / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(lost.status())) << lost.status();
  EXPECT_NE(lost.status().message().find("gap"), std::string::npos) << lost.status();
  EXPECT_NE(lost.status().message().find("missing"), std::string::npos) << lost.status();
  // A daemon on the restored state: its first snapshot drops the lost
  // history's tail, which a later restore would otherwise replay. It may:
  // the restore saw that tail and stopped before it (store_end).
  EXPECT_EQ(report.store_end, last + 3);
  EXPECT_EQ(report.run, run.id);
  ASSERT_TRUE(c->PutObject(tail_key, EncodeWalObject(tail, last, Identity().Signer(), &run)).ok());
  auto rdb = testing::OpenDb(out / "db");
  ASSERT_NE(rdb, nullptr);
  TempDir dir2;
  auto r2 = Replicator(c, dir2, true, 2000, uint64_t{64} << 20, 2, report.store_end);
  r2->Start(rdb.get());
  ASSERT_TRUE(r2->SnapshotNow().ok());
  for (const std::string& k : Keys(*c, "state/wal/")) EXPECT_NE(k, tail_key);
  r2->Stop();
}

// A daemon restored at a gap a crash left goes on under a new run; its
// first snapshot drops the lost machine's tail. A bucket operator who kept
// that tail and puts it back once the restored daemon has written used to
// make a later restore splice it in where the sequence numbers lined up (a
// state neither daemon had; found by a review). Restore follows only the
// restored daemon's run: from its own snapshot, and, when that is damaged,
// from the lost machine's snapshot through the point where the new run
// began.
TEST(StateReplicator, AnAbandonedHistoryPutBackIsNeverSplicedIn) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto lost = Replicator(c, dir, true);
  lost->Start(db.get());
  for (int i = 0; i < 4; ++i) {
    SyncPut(db.get(), StrCat("k", i), "v");
    ASSERT_TRUE(lost->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  }
  lost->Stop();
  const uint64_t last = db->GetLatestSequenceNumber();
  const StateRun lost_run = lost->run();
  // The lost machine's tail after a gap: last+1..last+2 never arrived.
  rocksdb::WriteBatch ghost;
  ghost.Put("ghost", "the lost machine's, never acknowledged");
  const std::vector<WalBatch> tail = {{.seq = last + 3, .count = 1, .rep = ghost.Data()}};
  const std::string tail_key = c->KeyFor(WalObjectName(last + 3, last + 3, lost_run.id));
  const std::string tail_body = EncodeWalObject(tail, last, Identity().Signer(), &lost_run);
  ASSERT_TRUE(c->PutObject(tail_key, tail_body).ok());
  TempDir out;
  RestoreReport report;
  ASSERT_FALSE(Restored(*c, out / "db", &report).empty());
  ASSERT_EQ(report.final_seq, last);
  ASSERT_EQ(report.run, lost_run.id);
  // The restored daemon: a new run whose parent is the one restore ended on.
  auto rdb = testing::OpenDb(out / "db");
  ASSERT_NE(rdb, nullptr);
  TempDir dir2;
  auto restored = Replicator(c, dir2, true, 2000, uint64_t{64} << 20, 2, report.store_end, report.run);
  restored->Start(rdb.get());
  ASSERT_TRUE(restored->SnapshotNow().ok());
  EXPECT_EQ(restored->run().parent, lost_run.id);
  EXPECT_EQ(restored->run().fork, last);
  SyncPut(rdb.get(), "new1", "acknowledged by the restored daemon");
  SyncPut(rdb.get(), "new2", "acknowledged by the restored daemon");
  ASSERT_EQ(rdb->GetLatestSequenceNumber(), last + 2);
  ASSERT_TRUE(restored->WaitReplicated(last + 2).ok());
  restored->Stop();
  // The operator puts the tail back: it now lines up after the new writes.
  ASSERT_TRUE(c->PutObject(tail_key, tail_body).ok());
  const auto expected = Dump(rdb.get());
  ASSERT_EQ(expected.count("ghost"), 0u);
  TempDir again;
  RestoreReport r2;
  EXPECT_EQ(Restored(*c, again / "db", &r2), expected);
  EXPECT_EQ(r2.run, restored->run().id);
  EXPECT_EQ(r2.other_objects, 1u);
  // The restored daemon's snapshot damaged: restore falls back to the lost
  // machine's, follows its run to where the restored daemon's began, and
  // that one from there; the put-back tail stays out.
  auto descs = ListDescriptors(*c);
  ASSERT_TRUE(descs.ok() && descs->size() == 2) << descs.status();
  ASSERT_TRUE(c->PutObject(descs->back().key, "damaged").ok());
  TempDir fallback;
  RestoreReport r3;
  EXPECT_EQ(Restored(*c, fallback / "db", &r3), expected);
  EXPECT_EQ(r3.skipped.size(), 1u);
  EXPECT_EQ(r3.runs, 1u);
  EXPECT_EQ(r3.run, restored->run().id);
}

// A plain restart that wrote at start before replication began: the new
// run's snapshot damaged, restore follows the old run's objects from the
// snapshot before it and crosses into the new run at its fork; the new
// run's objects begin there (not after its snapshot), so the start's write
// is in them.
TEST(StateReplicator, AFallbackCrossesIntoTheRunThatContinuedTheState) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto first = Replicator(c, dir, true);
  first->Start(db.get());
  SyncPut(db.get(), "a", "1");
  ASSERT_TRUE(first->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  first->Stop();
  auto second = Replicator(c, dir, true, 2000, uint64_t{64} << 20, 2, 0, first->run().id);
  // The start writes before replication begins (a daemon's start drops
  // leftovers): only this run's objects hold that write.
  second->OpenedAt(db->GetLatestSequenceNumber());
  SyncPut(db.get(), "written at start", "before the first snapshot");
  second->Start(db.get());
  ASSERT_TRUE(second->SnapshotNow().ok());
  SyncPut(db.get(), "b", "2");
  ASSERT_TRUE(second->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  second->Stop();
  auto descs = ListDescriptors(*c);
  ASSERT_TRUE(descs.ok() && descs->size() == 2) << descs.status();
  ASSERT_TRUE(c->PutObject(descs->back().key, "damaged").ok());
  TempDir out;
  RestoreReport report;
  EXPECT_EQ(Restored(*c, out / "db", &report), Dump(db.get()));
  EXPECT_EQ(report.runs, 1u);
  EXPECT_EQ(report.run, second->run().id);
}

// Two runs that began from the same state (two daemons on one prefix, or a
// data-dir copy started beside the original): where a restore must choose
// between them, it fails naming both.
TEST(StateReplicator, TwoHistoriesFromTheSameStateAreNamedNotChosen) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  ASSERT_TRUE(r->SnapshotNow().ok());
  r->Stop();
  const uint64_t s = db->GetLatestSequenceNumber();
  std::vector<std::string> ids;
  for (const char* v : {"one", "two"}) {
    const StateRun child{.id = NewStateRunId(), .parent = r->run().id, .fork = s};
    rocksdb::WriteBatch b;
    b.Put("k", v);
    const std::vector<WalBatch> batches = {{.seq = s + 1, .count = 1, .rep = b.Data()}};
    ASSERT_TRUE(c->PutObject(c->KeyFor(WalObjectName(s + 1, s + 1, child.id)),
                             EncodeWalObject(batches, s, Identity().Signer(), &child))
                    .ok());
    ids.push_back(child.id);
  }
  TempDir out;
  auto refused = RestoreState(*c, out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("two histories"), std::string::npos) << refused.status();
  EXPECT_NE(refused.status().message().find(ids[0]), std::string::npos) << refused.status();
  EXPECT_NE(refused.status().message().find(ids[1]), std::string::npos) << refused.status();
}

// Runs whose headers name each other as parents at one point (no daemon
// writes that: a run's parent exists before it) are refused, not followed
// round and round.
TEST(StateReplicator, RunsThatFormACycleAreDataLoss) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  ASSERT_TRUE(r->SnapshotNow().ok());
  r->Stop();
  const uint64_t s = db->GetLatestSequenceNumber();
  const StateRun child{.id = NewStateRunId(), .parent = r->run().id, .fork = s};
  const StateRun back{.id = r->run().id, .parent = child.id, .fork = s};
  rocksdb::WriteBatch b;
  b.Put("k", "v");
  const std::vector<WalBatch> batches = {{.seq = s + 1, .count = 1, .rep = b.Data()}};
  for (const StateRun* run : {&child, &back}) {
    ASSERT_TRUE(c->PutObject(c->KeyFor(WalObjectName(s + 1, s + 1, run->id)),
                             EncodeWalObject(batches, s, Identity().Signer(), run))
                    .ok());
  }
  TempDir out;
  auto refused = RestoreState(*c, out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("cycle"), std::string::npos) << refused.status();
}

// A WAL object made of the writers' own batches (the capture) may end in
// the middle of a RocksDB write group; after a failed object the replicator
// re-ships through the WAL reader, which returns the group whole: the store
// then holds the group's first part in one object and the whole group in a
// later one. Restore applies the rest of the group (it used to stop:
// "batch at S does not follow").
TEST(StateReplicator, RestoreAppliesTheRestOfAWriteGroupAnEarlierObjectBegan) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  SyncPut(db.get(), "base", "in the snapshot");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  ASSERT_TRUE(r->SnapshotNow().ok());
  r->Stop();
  const uint64_t s = db->GetLatestSequenceNumber();
  rocksdb::WriteBatch w1, w2, group;
  w1.Put("w1", "first writer");
  w2.Put("w2", "second writer");
  group.Put("w1", "first writer");
  group.Put("w2", "second writer");
  group.Put("w3", "third writer");
  group.Delete("gone");
  const std::vector<WalBatch> part = {{.seq = s + 1, .count = 1, .rep = w1.Data()},
                                      {.seq = s + 2, .count = 1, .rep = w2.Data()}};
  const std::vector<WalBatch> whole = {{.seq = s + 1, .count = 4, .rep = group.Data()}};
  const StateRun run = r->run();
  ASSERT_TRUE(
      c->PutObject(c->KeyFor(WalObjectName(s + 1, s + 2, run.id)), EncodeWalObject(part, s, Identity().Signer(), &run))
          .ok());
  ASSERT_TRUE(
      c->PutObject(c->KeyFor(WalObjectName(s + 1, s + 4, run.id)), EncodeWalObject(whole, s, Identity().Signer(), &run))
          .ok());
  ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &group).ok());
  TempDir out;
  RestoreReport report;
  EXPECT_EQ(Restored(*c, out / "db", &report), Dump(db.get()));
  EXPECT_EQ(report.final_seq, s + 4);
}

// A second daemon on the same prefix, started on an older copy of the state
// (a restore drill next to the live daemon, a data-dir backup, a VM
// snapshot): its first snapshot used to drop every WAL object beyond its own
// sequence number as "another history", i.e. what the live daemon had
// acknowledged since. Now it refuses and deletes nothing; the store still
// restores the live daemon's newest state.
TEST(StateReplicator, AnOlderCopyOfTheStateNeverDeletesNewerState) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  SyncPut(db.get(), "before", "v");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  TempDir copy;
  RestoreReport report;
  ASSERT_FALSE(Restored(*c, copy / "db", &report).empty());
  EXPECT_EQ(report.store_end, report.final_seq);
  // The live daemon goes on after the copy was made.
  SyncPut(db.get(), "after", "acknowledged by the live daemon");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  const std::vector<std::string> wal_before = Keys(*c, "state/wal/");
  auto cdb = testing::OpenDb(copy / "db");
  ASSERT_NE(cdb, nullptr);
  TempDir dir2;
  auto r2 = Replicator(c, dir2, true);
  absl::Status refused = r2->CheckNoNewerState(cdb->GetLatestSequenceNumber());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_NE(refused.message().find("newer than this data dir"), std::string::npos) << refused;
  // Started anyway (the check at start raced with the live daemon): its
  // first snapshot refuses too, before it uploads or deletes anything.
  r2->Start(cdb.get());
  absl::Status snap = r2->SnapshotNow();
  EXPECT_TRUE(absl::IsFailedPrecondition(snap)) << snap;
  r2->Stop();
  EXPECT_EQ(Keys(*c, "state/wal/"), wal_before);
  r->Stop();
  TempDir out;
  auto restored = Restored(*c, out / "db");
  EXPECT_EQ(restored["after"], "acknowledged by the live daemon");
  EXPECT_EQ(restored, Dump(db.get()));
}

}  // namespace
}  // namespace shredd
