// Helpers of the state replicator's tests against a real Ceph RGW
// (s3_state_replicator_test.cc, s3_state_restore_test.cc): a daemon identity
// that signs state objects as the vault would, a RocksDB that archives its
// WAL as the daemon's does, a replicator, and restores compared by content.
#ifndef SHREDD_TESTS_UNIT_STORAGE_STATE_TEST_UTIL_H_
#define SHREDD_TESTS_UNIT_STORAGE_STATE_TEST_UTIL_H_

#include <sodium.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "daemon/storage/state_replicator.h"
#include "tests/unit/storage/s3_test_env.h"
#include "tests/unit/test_util.h"

namespace shredd::state_test {

using testing::TempDir;

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
inline const TestIdentity& Identity() {
  static const TestIdentity id;
  return id;
}

inline std::unique_ptr<rocksdb::DB> OpenArchivingDb(const std::string& path) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.WAL_ttl_seconds = 3600;
  o.WAL_size_limit_MB = 1024;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, path, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<rocksdb::DB>(db);
}

inline std::unique_ptr<StateReplicator> Replicator(std::shared_ptr<S3Client> c, const TempDir& dir, bool sync,
                                                   int lag_ms = 2000, uint64_t snapshot_wal_bytes = uint64_t{64} << 20,
                                                   uint64_t snapshot_table_factor = 2, uint64_t supersede_until = 0,
                                                   const std::string& parent_run = "") {
  StateReplicatorOptions o;
  o.supersede_until = supersede_until;
  o.parent_run = parent_run;
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

inline void SyncPut(rocksdb::DB* db, const std::string& k, const std::string& v, bool wal = true) {
  rocksdb::WriteOptions wo;
  wo.sync = wal;
  wo.disableWAL = !wal;
  ASSERT_TRUE(db->Put(wo, k, v).ok());
}

inline std::map<std::string, std::string> Dump(rocksdb::DB* db) {
  std::map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) out[it->key().ToString()] = it->value().ToString();
  return out;
}

inline std::map<std::string, std::string> Restored(S3Client& c, const std::string& dir,
                                                   RestoreReport* report = nullptr) {
  auto r = RestoreState(c, dir, Identity().Trust());
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  if (report != nullptr) *report = *r;
  auto db = testing::OpenDb(dir);
  return db ? Dump(db.get()) : std::map<std::string, std::string>{};
}

inline std::vector<std::string> Keys(S3Client& c, const std::string& under) {
  std::vector<std::string> out;
  EXPECT_TRUE(c.ForEachObject(c.KeyFor(under), [&](const S3ObjectVersion& o) {
                 out.push_back(o.key);
                 return absl::OkStatus();
               }).ok());
  return out;
}

// What most state tests begin with: a bucket prefix, a RocksDB that archives
// its WAL in a temp dir, and a sync replicator started on it. Members go in
// reverse order, as locals would: the replicator, the database, the dir.
// Built in place (TempDir is not to be copied).
struct ReplicatedDb {
  ReplicatedDb() : client(testing::NewBucketClient("p")) {
    if (client == nullptr) return;
    db = OpenArchivingDb(dir / "db");
    replicator = Replicator(client, dir, true);
    if (db != nullptr && replicator != nullptr) replicator->Start(db.get());
  }
  bool ok() const { return client != nullptr && db != nullptr && replicator != nullptr; }
  std::shared_ptr<S3Client> client;
  TempDir dir;
  std::unique_ptr<rocksdb::DB> db;
  std::unique_ptr<StateReplicator> replicator;
};
}  // namespace shredd::state_test

#endif  // SHREDD_TESTS_UNIT_STORAGE_STATE_TEST_UTIL_H_
