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
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::NewBucketClient;
using testing::RandomBytes;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

// A daemon identity for the tests: signs state objects as the vault would.
struct TestIdentity {
  uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  uint8_t sk[crypto_sign_SECRETKEYBYTES];
  TestIdentity() { crypto_sign_keypair(pk, sk); }
  StateSigner Signer() const {
    return [this](std::string_view m) -> absl::StatusOr<std::string> {
      std::string sig(crypto_sign_BYTES, '\0');
      crypto_sign_detached(reinterpret_cast<uint8_t*>(sig.data()), nullptr, reinterpret_cast<const uint8_t*>(m.data()),
                           m.size(), sk);
      return sig;
    };
  }
  StateTrust Trust(bool allow_unsigned = false) const {
    StateTrust t;
    t.allow_unsigned = allow_unsigned;
    t.verify = [this](std::string_view m, std::string_view sig) {
      return sig.size() == crypto_sign_BYTES &&
             crypto_sign_verify_detached(reinterpret_cast<const uint8_t*>(sig.data()),
                                         reinterpret_cast<const uint8_t*>(m.data()), m.size(), pk) == 0;
    };
    return t;
  }
};
const TestIdentity& Identity() {
  static const TestIdentity id;
  return id;
}

std::unique_ptr<rocksdb::DB> OpenArchivingDb(const std::string& path) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.WAL_ttl_seconds = 3600;
  o.WAL_size_limit_MB = 1024;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, path, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<rocksdb::DB>(db);
}

std::unique_ptr<StateReplicator> Replicator(std::shared_ptr<S3Client> c, const TempDir& dir, bool sync,
                                            int lag_ms = 2000, uint64_t snapshot_wal_bytes = uint64_t{64} << 20,
                                            uint64_t snapshot_table_factor = 2, uint64_t supersede_until = 0) {
  StateReplicatorOptions o;
  o.supersede_until = supersede_until;
  o.sync = sync;
  o.lag = std::chrono::milliseconds(lag_ms);
  o.snapshot_wal_bytes = snapshot_wal_bytes;
  o.snapshot_table_factor = snapshot_table_factor;
  o.scratch_dir = dir / "checkpoint";
  o.wait_timeout = std::chrono::milliseconds(20000);
  o.sign = Identity().Signer();
  auto r = StateReplicator::Create(std::move(c), o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

void SyncPut(rocksdb::DB* db, const std::string& k, const std::string& v, bool wal = true) {
  rocksdb::WriteOptions wo;
  wo.sync = wal;
  wo.disableWAL = !wal;
  ASSERT_TRUE(db->Put(wo, k, v).ok());
}

std::map<std::string, std::string> Dump(rocksdb::DB* db) {
  std::map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) out[it->key().ToString()] = it->value().ToString();
  return out;
}

std::map<std::string, std::string> Restored(S3Client& c, const std::string& dir, RestoreReport* report = nullptr) {
  auto r = RestoreState(c, dir, Identity().Trust());
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  if (report != nullptr) *report = *r;
  auto db = testing::OpenDb(dir);
  return db ? Dump(db.get()) : std::map<std::string, std::string>{};
}

std::vector<std::string> Keys(S3Client& c, const std::string& under) {
  std::vector<std::string> out;
  EXPECT_TRUE(c.ForEachObject(c.KeyFor(under), [&](const S3ObjectVersion& o) {
                 out.push_back(o.key);
                 return absl::OkStatus();
               }).ok());
  return out;
}

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
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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

// A snapshot publishes what it holds (WaitReplicated may then acknowledge
// it) while the WAL objects it covers may still be in flight. If the
// machine dies then and the newest snapshot is damaged, the fallback to the
// one before it stops short of what was acknowledged: DATA_LOSS, not a
// restore that exits 0 without it.
TEST(StateReplicator, AFallbackThatStopsShortOfTheDamagedSnapshotIsDataLoss) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
    if (w.first > (*descs)[descs->size() - 2].seq) covered.push_back(w.key);
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
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
  const std::string tail_key = c->KeyFor(WalObjectName(last + 3, last + 3));
  ASSERT_TRUE(c->PutObject(tail_key, EncodeWalObject(tail, last, Identity().Signer())).ok());
  TempDir out;
  RestoreReport report;
  EXPECT_EQ(Restored(*c, out / "db", &report), Dump(db.get()));
  EXPECT_EQ(report.final_seq, last);
  EXPECT_NE(report.gap.find(StrCat(last + 1, "..", last + 2)), std::string::npos) << report.gap;
  // The same object claiming that last+1 had been in the store when it was
  // sealed: the gap is a deleted object, not a crash.
  ASSERT_TRUE(c->PutObject(tail_key, EncodeWalObject(tail, last + 1, Identity().Signer())).ok());
  TempDir out2;
  auto lost = RestoreState(*c, out2 / "db", Identity().Trust());
  EXPECT_TRUE(absl::IsDataLoss(lost.status())) << lost.status();
  EXPECT_NE(lost.status().message().find("gap"), std::string::npos) << lost.status();
  EXPECT_NE(lost.status().message().find("missing"), std::string::npos) << lost.status();
  // A daemon on the restored state: its first snapshot drops the lost
  // history's tail, which a later restore would otherwise replay. It may:
  // the restore saw that tail and stopped before it (store_end).
  EXPECT_EQ(report.store_end, last + 3);
  ASSERT_TRUE(c->PutObject(tail_key, EncodeWalObject(tail, last, Identity().Signer())).ok());
  auto rdb = testing::OpenDb(out / "db");
  ASSERT_NE(rdb, nullptr);
  TempDir dir2;
  auto r2 = Replicator(c, dir2, true, 2000, uint64_t{64} << 20, 2, report.store_end);
  r2->Start(rdb.get());
  ASSERT_TRUE(r2->SnapshotNow().ok());
  for (const std::string& k : Keys(*c, "state/wal/")) EXPECT_NE(k, tail_key);
  r2->Stop();
}

// A WAL object made of the writers' own batches (the capture) may end in
// the middle of a RocksDB write group; after a failed object the replicator
// re-ships through the WAL reader, which returns the group whole: the store
// then holds the group's first part in one object and the whole group in a
// later one. Restore applies the rest of the group (it used to stop:
// "batch at S does not follow").
TEST(StateReplicator, RestoreAppliesTheRestOfAWriteGroupAnEarlierObjectBegan) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
  ASSERT_TRUE(c->PutObject(c->KeyFor(WalObjectName(s + 1, s + 2)), EncodeWalObject(part, s, Identity().Signer())).ok());
  ASSERT_TRUE(
      c->PutObject(c->KeyFor(WalObjectName(s + 1, s + 4)), EncodeWalObject(whole, s, Identity().Signer())).ok());
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
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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

// Writers in several threads with several WAL objects in flight: each
// acknowledgement (WaitReplicated OK) finds every sequence number up to its
// own in the store, as an unbroken run of WAL objects after a snapshot.
TEST(StateReplicator, AnAcknowledgementWaitsForEveryEarlierObject) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
  auto c = NewBucketClient("p");
  ASSERT_NE(c, nullptr);
  TempDir dir;
  auto db = OpenArchivingDb(dir / "db");
  auto r = Replicator(c, dir, true);
  r->Start(db.get());
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
