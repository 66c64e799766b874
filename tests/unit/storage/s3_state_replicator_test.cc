// StateReplicator and RestoreState against a real Ceph RGW (fixture "ceph"):
// snapshots plus shipped WAL restore the database exactly; writes that skip
// the WAL are covered by a snapshot; a tampered WAL object or a missing one
// makes the restore fail naming it (a gap a crash left with objects in
// flight is where it stops); a non-empty target is refused; a store
// that is down makes WaitReplicated UNAVAILABLE; the async lag is bounded.
#include <sodium.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/state_replicator.h"
#include "tests/unit/storage/s3_test_env.h"
#include "tests/unit/storage/state_test_util.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::NewBucketClient;
using testing::RandomBytes;
using testing::TempDir;
using Clock = std::chrono::steady_clock;
using namespace state_test;  // NOLINT(google-build-using-namespace)

TEST(StateWalObject, RoundTripsAndCatchesTampering) {
  std::vector<WalBatch> batches = {{.seq = 5, .count = 2, .rep = "ab"}, {.seq = 7, .count = 1, .rep = "cde"}};
  std::string body = EncodeWalObject(batches, 3);
  auto back = DecodeWalObject(body, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->floor, 3u);
  ASSERT_EQ(back->batches.size(), 2u);
  EXPECT_EQ(back->batches[1].seq, 7u);
  EXPECT_EQ(back->batches[1].rep, "cde");
  body[body.size() / 2] ^= 1;
  auto bad = DecodeWalObject(body, "state/wal/7");
  EXPECT_TRUE(absl::IsDataLoss(bad.status()));
  EXPECT_NE(bad.status().message().find("state/wal/7"), std::string::npos) << bad.status();
  EXPECT_EQ(WalObjectName(1, 22), "state/wal/00000000000000000001-00000000000000000022");
  // A floor at or above the first sequence number is a lie.
  EXPECT_TRUE(absl::IsDataLoss(DecodeWalObject(EncodeWalObject(batches, 5), "y").status()));
}

// One hashing pass gives both the object's own checksum and the digest of
// the whole object (the PUT's payload hash); a reused buffer holds nothing
// of the previous object.
TEST(StateWalObject, WriterGivesTheWholeObjectsDigestAndReusesItsBuffer) {
  std::string buf = "leftovers of an earlier, longer object .........................";
  WalObjectWriter w(&buf);
  EXPECT_TRUE(w.empty());
  w.Add(5, 2, "ab");
  w.Add(7, 1, "cde");
  EXPECT_EQ(w.first(), 5u);
  EXPECT_EQ(w.last(), 7u);
  const auto whole = w.Finish(3);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, Sha256Hasher::Of(buf));
  std::vector<WalBatch> batches = {{.seq = 5, .count = 2, .rep = "ab"}, {.seq = 7, .count = 1, .rep = "cde"}};
  EXPECT_EQ(buf, EncodeWalObject(batches, 3));
  auto back = DecodeWalObject(buf, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->batches[0].rep, "ab");
  // Signed, the digest covers the signature too.
  WalObjectWriter signed_writer(&buf);
  signed_writer.Add(5, 2, "ab");
  const auto signed_whole = signed_writer.Finish(3, Identity().Signer());
  ASSERT_TRUE(signed_whole.ok());
  EXPECT_EQ(*signed_whole, Sha256Hasher::Of(buf));
  EXPECT_TRUE(buf.starts_with("SHRDWAL3"));
}

// A WAL object names the run it belongs to (id, parent, fork), under the
// signature: an object moved into another history by editing its header
// is refused like any other edit. A run's objects must be signed.
TEST(StateWalObject, AnObjectNamesItsRunUnderItsSignature) {
  const std::vector<WalBatch> batches = {{.seq = 5, .count = 2, .rep = "ab"}};
  const StateRun run{.id = NewStateRunId(), .parent = NewStateRunId(), .fork = 4};
  ASSERT_TRUE(IsStateRunId(run.id));
  EXPECT_NE(run.id, run.parent);
  EXPECT_FALSE(IsStateRunId("00000000000000000000000000000000"));
  EXPECT_FALSE(IsStateRunId("ABCDEF00000000000000000000000000"));
  EXPECT_EQ(WalObjectName(1, 22, run.id), StrCat("state/wal/00000000000000000001-00000000000000000022-", run.id));
  const StateTrust trust = Identity().Trust();
  const std::string body = EncodeWalObject(batches, 3, Identity().Signer(), &run);
  EXPECT_TRUE(body.starts_with("SHRDWAL4"));
  auto back = DecodeWalObject(body, "w", &trust);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->run.id, run.id);
  EXPECT_EQ(back->run.parent, run.parent);
  EXPECT_EQ(back->run.fork, 4u);
  EXPECT_EQ(back->batches[0].rep, "ab");
  // A run that began from nothing known: no parent.
  const StateRun first{.id = run.id, .parent = "", .fork = 0};
  auto root = DecodeWalObject(EncodeWalObject(batches, 3, Identity().Signer(), &first), "w", &trust);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->run.parent, "");
  // The run id rewritten (checksum recomputed): not the daemon's signature.
  std::string moved = body;
  moved[8 + 8 + 8 + 8] ^= 1;
  const size_t data = moved.size() - 32 - 64;
  const Sha256 sum = Sha256Hasher::Of(std::string_view(moved).substr(0, data));
  moved.replace(data, 32, reinterpret_cast<const char*>(sum.data()), 32);
  auto refused = DecodeWalObject(moved, "w", &trust);
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  // Unsigned objects have no run.
  std::string buf;
  WalObjectWriter w(&buf, &run);
  w.Add(5, 2, "ab");
  EXPECT_FALSE(w.Finish(3).ok());
}

// The bucket's operator can edit a batch and recompute the checksum; the
// signature is what they cannot make. An object signed by another daemon,
// an unsigned one, and a signed one stripped down to the unsigned format
// are refused unless unsigned objects are allowed.
TEST(StateWalObject, OnlyTheDaemonsSignatureMakesAnObjectTrusted) {
  std::vector<WalBatch> batches = {{.seq = 5, .count = 2, .rep = "hold"}, {.seq = 7, .count = 1, .rep = "cde"}};
  const StateTrust trust = Identity().Trust();
  const std::string good = EncodeWalObject(batches, 3, Identity().Signer());
  ASSERT_TRUE(DecodeWalObject(good, "w", &trust).ok());
  // Edited, checksum recomputed: still refused.
  std::string forged = good;
  forged.replace(forged.find("hold"), 4, "gone");
  const size_t data = forged.size() - 32 - 64;
  const Sha256 sum = Sha256Hasher::Of(std::string_view(forged).substr(0, data));
  forged.replace(data, 32, reinterpret_cast<const char*>(sum.data()), 32);
  EXPECT_TRUE(DecodeWalObject(forged, "w").ok());  // the checksum alone passes it
  auto refused = DecodeWalObject(forged, "state/wal/5-7", &trust);
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("not signed by this vault's identity"), std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("state/wal/5-7"), std::string::npos) << refused.status();
  // Another daemon's signature.
  TestIdentity other;
  EXPECT_TRUE(absl::IsDataLoss(DecodeWalObject(EncodeWalObject(batches, 3, other.Signer()), "w", &trust).status()));
  // Unsigned (an earlier version), and a signed one stripped to that format.
  const std::string unsigned_object = EncodeWalObject(batches, 3);
  auto u = DecodeWalObject(unsigned_object, "w", &trust);
  EXPECT_TRUE(absl::IsDataLoss(u.status()));
  EXPECT_NE(u.status().message().find("--allow-unsigned-state"), std::string::npos) << u.status();
  std::string stripped = good.substr(0, good.size() - 64);
  stripped.replace(0, 8, "SHRDWAL2");
  const Sha256 s2 = Sha256Hasher::Of(std::string_view(stripped).substr(0, stripped.size() - 32));
  stripped.replace(stripped.size() - 32, 32, reinterpret_cast<const char*>(s2.data()), 32);
  EXPECT_TRUE(absl::IsDataLoss(DecodeWalObject(stripped, "w", &trust).status()));
  const StateTrust lenient = Identity().Trust(true);
  EXPECT_TRUE(DecodeWalObject(stripped, "w", &lenient).ok());
  EXPECT_TRUE(DecodeWalObject(unsigned_object, "w", &lenient).ok());
  // Lenient still checks what is signed.
  EXPECT_TRUE(absl::IsDataLoss(DecodeWalObject(forged, "w", &lenient).status()));
}

TEST(StateSnapshotDescriptor, SignedDescriptorsVerifyAndEditedOnesDoNot) {
  const nlohmann::json desc = {
      {"sequence", 42},
      {"created", "2026-12-07T00:00:00Z"},
      {"files", {{{"name", "000010.sst"}, {"key", "p/state/sst/x.sst"}, {"size", 3}, {"sha256", "ab"}}}}};
  const StateTrust trust = Identity().Trust();
  auto body = EncodeDescriptor(desc, Identity().Signer());
  ASSERT_TRUE(body.ok()) << body.status();
  auto back = ParseDescriptor(*body, "d", &trust);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)["sequence"].get<uint64_t>(), 42u);
  EXPECT_EQ((*back)["files"][0]["sha256"], "ab");
  // A file swapped for one the operator made (its SHA-256 in the descriptor).
  auto edited = nlohmann::json::parse(*body);
  edited["files"][0]["sha256"] = "cd";
  auto refused = ParseDescriptor(edited.dump(), "state/desc/d.json", &trust);
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("state/desc/d.json"), std::string::npos) << refused.status();
  // The signature removed and the format set back to v1.
  edited = nlohmann::json::parse(*body);
  edited.erase("signature");
  edited["format"] = "shredd-state-snapshot/v1";
  EXPECT_TRUE(absl::IsDataLoss(ParseDescriptor(edited.dump(), "d", &trust).status()));
  const StateTrust lenient = Identity().Trust(true);
  EXPECT_TRUE(ParseDescriptor(edited.dump(), "d", &lenient).ok());
  // Unsigned ones, as earlier versions wrote them.
  auto v1 = EncodeDescriptor(desc, {});
  ASSERT_TRUE(v1.ok());
  EXPECT_TRUE(absl::IsDataLoss(ParseDescriptor(*v1, "d", &trust).status()));
  EXPECT_TRUE(ParseDescriptor(*v1, "d", &lenient).ok());
  EXPECT_TRUE(ParseDescriptor(*v1, "d").ok());
}

// Objects of the first format (one in flight at a time, no floor field)
// still restore: their floor is the sequence number before them.
TEST(StateWalObject, TheRestOfAWriteGroupStartsWhereAsked) {
  rocksdb::WriteBatch group;  // a write group: three writers' records
  group.Put("a", "1");
  group.Delete("b");
  group.DeleteRange("c", "d");
  group.Put("e", "5");
  const WalBatch b{.seq = 10, .count = 4, .rep = group.Data()};
  auto rest = WalBatchFrom(b, 12);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->seq, 12u);
  EXPECT_EQ(rest->count, 2u);
  EXPECT_EQ(rest->last(), b.last());
  rocksdb::WriteBatch expect;
  expect.DeleteRange("c", "d");
  expect.Put("e", "5");
  EXPECT_EQ(rocksdb::WriteBatch(rest->rep).Count(), 2u);
  // The same records, as RocksDB lays them out (sequence number aside).
  EXPECT_EQ(rest->rep.substr(12), expect.Data().substr(12));
  EXPECT_FALSE(WalBatchFrom(b, 10).ok());
  EXPECT_FALSE(WalBatchFrom(b, 14).ok());
  WalBatch lying = b;
  lying.count = 5;
  EXPECT_TRUE(absl::IsDataLoss(WalBatchFrom(lying, 12).status()));
}

TEST(StateWalObject, ReadsTheFirstFormat) {
  std::string v1 = "SHRDWAL1";
  for (uint64_t v : {uint64_t{5}, uint64_t{5}}) {
    for (int i = 7; i >= 0; --i) v1.push_back(static_cast<char>(v >> (8 * i)));
  }
  v1 += std::string("\0\0\0\1", 4);
  v1 += std::string("\0\0\0\0\0\0\0\5\0\0\0\1\0\0\0\2", 16) + "ab";
  const Sha256 sum = Sha256Hasher::Of(v1);
  v1.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  auto back = DecodeWalObject(v1, "old");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->floor, 4u);
  ASSERT_EQ(back->batches.size(), 1u);
  EXPECT_EQ(back->batches[0].rep, "ab");
}

TEST(StateReplicator, SnapshotPlusWalRestoresEverything) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  for (int i = 0; i < 100; ++i) SyncPut(db.get(), StrCat("before", i), RandomBytes(100));
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  EXPECT_EQ(r->snapshots(), 1u);
  for (int i = 0; i < 300; ++i) {
    rocksdb::WriteBatch b;
    b.Put(StrCat("k", i), RandomBytes(200));
    b.Delete(StrCat("before", i % 100));
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &b).ok());
    if (i % 50 == 0) {
      ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
    }
  }
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  EXPECT_EQ(r->replicated_seq(), db->GetLatestSequenceNumber());
  EXPECT_GE(r->wal_objects(), 2u);
  EXPECT_EQ(r->snapshots(), 1u) << "the WAL carried the writes";
  RestoreReport rep;
  TempDir out;
  EXPECT_EQ(Restored(*c, out / "db", &rep), Dump(db.get()));
  EXPECT_EQ(rep.final_seq, db->GetLatestSequenceNumber());
  EXPECT_GE(rep.wal_objects, 2u);
  for (const auto& k : Keys(*c, "")) EXPECT_TRUE(k.starts_with("p/state/")) << k;
  r->Stop();
}

// Shipments read on where the previous one stopped, also when the WAL goes
// on in a new file (a memtable flush switches files) between them: no
// snapshot is needed, and the restore has every write.
TEST(StateReplicator, ShippingFollowsTheWalIntoNewFiles) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  SyncPut(db.get(), "first", "1");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 20; ++i) SyncPut(db.get(), StrCat("r", round, "-", i), RandomBytes(300));
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) << round;
    if (round % 2 == 1) {
      ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
    }
  }
  EXPECT_EQ(r->snapshots(), 1u) << "the WAL carried every write";
  EXPECT_GE(r->wal_objects(), 4u);
  TempDir out;
  EXPECT_EQ(Restored(*c, out / "db"), Dump(db.get()));
  r->Stop();
}

// Periodic snapshots (here after every 4 KiB of WAL) are taken while the
// WAL goes on being shipped; whichever snapshot a restore starts from, the
// WAL objects after it bring it up to date.
TEST(StateReplicator, PeriodicSnapshotsRunBesideTheWal) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true, 2000, 4096);
  r->Start(db.get());
  for (int i = 0; i < 60; ++i) {
    SyncPut(db.get(), StrCat("k", i), RandomBytes(1000));
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) << i;
  }
  ASSERT_TRUE(r->SnapshotNow().ok());  // waits for a periodic one in progress, then takes one
  EXPECT_GE(r->snapshots(), 3u) << "periodic snapshots were taken";
  for (int i = 60; i < 70; ++i) SyncPut(db.get(), StrCat("k", i), RandomBytes(1000));
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  TempDir out;
  EXPECT_EQ(Restored(*c, out / "db"), Dump(db.get()));
  r->Stop();
}

// A periodic snapshot re-uploads the tables rewritten since the last one:
// it waits for snapshot_table_factor (2) times the database's table bytes of
// WAL (the 4 KiB minimum is far below), so its upload stays at most half
// the WAL's, and a restore from it plus that WAL is still exact.
TEST(StateReplicator, PeriodicSnapshotsWaitForTwiceTheTablesOfWal) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  for (int i = 0; i < 200; ++i) SyncPut(db.get(), StrCat("old", i), RandomBytes(1000));
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  uint64_t tables = 0;
  ASSERT_TRUE(db->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &tables));
  ASSERT_GT(tables, 200u * 1000);
  auto r = Replicator(c, dir, true, 2000, 4096);
  r->Start(db.get());
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  ASSERT_EQ(r->snapshots(), 1u);
  const uint64_t shipped_at_start = r->bytes_shipped();
  auto wal_shipped = [&] { return r->bytes_shipped() - shipped_at_start; };
  auto wait_for_snapshots = [&](uint64_t n) {
    for (int i = 0; i < 200 && r->snapshots() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return r->snapshots();
  };
  int i = 0;
  for (; wal_shipped() < tables * 3 / 2; ++i) {
    SyncPut(db.get(), StrCat("new", i), RandomBytes(1000));
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) << i;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(r->snapshots(), 1u) << "a snapshot after " << wal_shipped() << " bytes of WAL, tables " << tables;
  for (; wal_shipped() < tables * 2 + 8192; ++i) {
    SyncPut(db.get(), StrCat("new", i), RandomBytes(1000));
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) << i;
  }
  EXPECT_EQ(wait_for_snapshots(2), 2u) << "no snapshot after " << wal_shipped() << " bytes of WAL, tables " << tables;
  SyncPut(db.get(), "last", "1");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  RestoreReport rep;
  TempDir out;
  EXPECT_EQ(Restored(*c, out / "db", &rep), Dump(db.get()));
  EXPECT_GT(rep.snapshot_seq, 200u) << "restored from the periodic snapshot";
  r->Stop();
}

// The shredder stages a large plan without the WAL, then flushes: the
// replicator notices the gap and covers it with a snapshot.
TEST(StateReplicator, WritesThatSkipTheWalAreCoveredByASnapshot) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  SyncPut(db.get(), "a", "1");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  const uint64_t snaps = r->snapshots();
  for (int i = 0; i < 50; ++i) SyncPut(db.get(), StrCat("staged", i), "x", /*wal=*/false);
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  SyncPut(db.get(), "P", "pending record");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) << r->last_error();
  EXPECT_EQ(r->snapshots(), snaps + 1);
  SyncPut(db.get(), "after", "2");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  TempDir out;
  auto restored = Restored(*c, out / "db");
  EXPECT_EQ(restored, Dump(db.get()));
  EXPECT_EQ(restored.count("staged49"), 1u);
  EXPECT_EQ(restored.count("after"), 1u);
  r->Stop();
}

// Writers in several threads with several WAL objects in flight: each
// acknowledgement (WaitReplicated OK) finds every sequence number up to its
// own in the store, as an unbroken run of WAL objects after a snapshot.
TEST(StateReplicator, AnAcknowledgementWaitsForEveryEarlierObject) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  auto covered = [&](uint64_t seq) {
    uint64_t upto = 0;
    auto descs = ListDescriptors(*c);
    if (!descs.ok() || descs->empty()) return false;
    upto = descs->back().seq;
    auto wal = ListWalObjects(*c);
    if (!wal.ok()) return false;
    for (const WalObjectKey& w : *wal) {
      if (w.first <= upto + 1 && w.last > upto) upto = w.last;
    }
    return upto >= seq;
  };
  std::vector<std::thread> writers;
  std::atomic<int> acked{0}, uncovered{0};
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        SyncPut(db.get(), StrCat("t", t, "-", i), RandomBytes(200 << 10));
        const uint64_t seq = db->GetLatestSequenceNumber();
        if (!r->WaitReplicated(seq).ok()) continue;
        ++acked;
        if (!covered(seq)) ++uncovered;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(acked.load(), 32);
  EXPECT_EQ(uncovered.load(), 0);
  r->Stop();
  TempDir out;
  EXPECT_EQ(Restored(*c, out / "db"), Dump(db.get()));
}

// In sync mode the daemon's writes (GuardedWrite) hand their batches to the
// replicator as they are committed, and it ships them from there instead of
// reading the WAL back; a write that skipped the WAL still ends in a
// snapshot (the WAL reader finds the gap), and the restore is exact.
TEST(StateReplicator, BatchesWrittenThroughGuardedWriteShipFromTheCapture) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  const std::string path = dir / "db";
  auto db = OpenArchivingDb(path);
  auto r = Replicator(c, dir, true);
  RegisterDurability(path, r.get());
  absl::Cleanup unregister = [&] { RegisterDurability(path, nullptr); };
  r->Start(db.get());
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  auto write = [&](const std::string& key, bool wal) {
    rocksdb::WriteBatch b;
    b.Put(key, RandomBytes(300));
    b.Put(key + "-index", "");
    rocksdb::WriteOptions wo;
    wo.disableWAL = !wal;
    return GuardedWrite(db.get(), wo, &b, "test");
  };
  std::vector<std::thread> writers;
  std::atomic<int> failed{0};
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 30; ++i) {
        if (!write(StrCat("t", t, "-", i), true).ok()) ++failed;
        if (!r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) ++failed;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(r->captured_batches(), 110u) << "nearly every batch came from the capture";
  EXPECT_EQ(r->snapshots(), 1u);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write(StrCat("staged", i), false).ok());
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  ASSERT_TRUE(write("after", true).ok());
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok()) << r->last_error();
  EXPECT_EQ(r->snapshots(), 2u) << "the writes that skipped the WAL are covered by a snapshot";
  ASSERT_TRUE(write("last", true).ok());
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  TempDir out;
  auto restored = Restored(*c, out / "db");
  EXPECT_EQ(restored, Dump(db.get()));
  EXPECT_EQ(restored.count("staged19"), 1u);
  EXPECT_EQ(restored.count("last"), 1u);
  r->Stop();
}

TEST(StateReplicator, RestoreRefusesANonEmptyDirAndAnEmptyStore) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir out;
  auto none = RestoreState(*c, out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  std::filesystem::create_directories(out / "db");
  std::FILE* f = std::fopen((out / "db/x").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto full = RestoreState(*c, out / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsFailedPrecondition(full.status())) << full.status();
  EXPECT_NE(full.status().message().find("not empty"), std::string::npos);
}

TEST(StateReplicator, AStoreThatIsDownIsUnavailable) {
  SHREDD_REQUIRE_CEPH();
  S3Config cfg = testing::CephConfig("shredd-test-down", "p");
  cfg.endpoint = "http://127.0.0.1:9";  // discard: nothing listens
  cfg.max_attempts = 1;
  cfg.connect_timeout = std::chrono::milliseconds(500);
  auto c = S3Client::Create(cfg);
  ASSERT_TRUE(c.ok());
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(std::shared_ptr<S3Client>(std::move(*c)), dir, true);
  EXPECT_TRUE(absl::IsUnavailable(r->WaitReplicated(1))) << "not started";
  r->Start(db.get());
  SyncPut(db.get(), "a", "1");
  const auto t0 = Clock::now();
  absl::Status s = r->WaitReplicated(db->GetLatestSequenceNumber());
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << "one line";
  EXPECT_EQ(r->replicated_seq(), 0u);
  r->Stop();
}

// "async": how long after a write is it in the store? Reported, and bounded
// by the lag (default 2 s) plus an upload.
TEST(StateReplicator, AsyncLagIsBounded) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, false, 2000);
  r->Start(db.get());
  SyncPut(db.get(), "first", "x");
  while (r->replicated_seq() < db->GetLatestSequenceNumber()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  double worst = 0, total = 0;
  const int n = 8;
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(137 * i % 900));
    SyncPut(db.get(), StrCat("k", i), RandomBytes(1000));
    const uint64_t seq = db->GetLatestSequenceNumber();
    const auto t0 = Clock::now();
    while (r->replicated_seq() < seq) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    worst = std::max(worst, ms);
    total += ms;
  }
  std::printf("async state replication lag (lag 2000 ms): mean %.0f ms, worst %.0f ms over %d writes\n", total / n,
              worst, n);
  EXPECT_LT(worst, 2000 + 1000);
  r->Stop();
}

// "sync": what one acknowledged write costs (printed for docs/RECOVERY.md).
TEST(StateReplicator, SyncWriteLatency) {
  SHREDD_REQUIRE_CEPH();
  ReplicatedDb fixture;
  ASSERT_TRUE(fixture.ok());
  auto& [c, dir, db, r] = fixture;
  SyncPut(db.get(), "first", "x");
  ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  const int n = 50;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) SyncPut(db.get(), StrCat("l", i), RandomBytes(500));
  const double local = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / n;
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    SyncPut(db.get(), StrCat("s", i), RandomBytes(500));
    ASSERT_TRUE(r->WaitReplicated(db->GetLatestSequenceNumber()).ok());
  }
  const double replicated = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / n;
  std::printf("one synced write: local %.2f ms, with sync state replication %.2f ms\n", local, replicated);
  r->Stop();
}

}  // namespace
}  // namespace shredd
