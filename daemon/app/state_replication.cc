#include "daemon/app/state_replication.h"

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

#include "daemon/app/metrics_server.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/keys/vault.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/s3_client.h"
#include "daemon/storage/state_replicator.h"
#include "formats/keys.h"

namespace shredd {
namespace {

std::string DbPath(const DaemonConfig& c) { return c.data_dir + "/db"; }

// Written by `shredd restore` when it stopped short of the store's end (at a
// gap a crash left): the sequence number up to which the restored daemon may
// supersede the store's state (StateReplicatorOptions::supersede_until).
std::string SupersedeMarkerPath(const DaemonConfig& c) { return c.data_dir + "/restore-supersedes"; }

absl::StatusOr<uint64_t> ReadSupersedeMarker(const std::string& path) {
  auto text = ReadSmallFile(path, 64);
  if (absl::IsNotFound(text.status())) return 0;
  if (!text.ok()) return text.status();
  uint64_t until = 0;
  if (!absl::SimpleAtoi(*text, &until)) return absl::DataLossError(StrCat(path, " is not a sequence number"));
  return until;
}

// The run whose state the data dir continues (StateReplicatorOptions::
// run_marker): written by the first snapshot of each start, and by `shredd
// restore` (the run it ended on).
std::string RunMarkerPath(const DaemonConfig& c) { return c.data_dir + "/state-run"; }

absl::StatusOr<std::string> ReadRunMarker(const std::string& path) {
  auto text = ReadSmallFile(path, 64);
  if (absl::IsNotFound(text.status())) return std::string();
  if (!text.ok()) return text.status();
  std::string id(absl::StripAsciiWhitespace(*text));
  if (!IsStateRunId(id)) {
    return absl::DataLossError(StrCat(path, " does not hold a state run id (32 lowercase hex digits)"));
  }
  return id;
}

}  // namespace

S3Config S3ConfigFrom(const ObjectStoreConfig& o) {
  S3Config c;
  c.endpoint = o.endpoint;
  c.region = o.region;
  c.bucket = o.bucket;
  c.prefix = o.prefix;
  c.path_style = o.path_style;
  c.ca_file = o.ca_file;
  auto creds = std::make_shared<S3Credentials>();
  creds->access_key_id = o.access_key_id;
  if (o.secret_access_key) creds->secret_access_key = o.secret_access_key->Clone();
  if (o.session_token) creds->session_token = o.session_token->Clone();
  c.credentials = std::move(creds);
  return c;
}

absl::StatusOr<bool> ProbeObjectStore(const ObjectStoreConfig& o, S3Client& client) {
  auto versioning = client.GetBucketVersioning();
  if (!versioning.ok()) {
    return absl::Status(versioning.status().code(),
                        StrCat("object store s3://", o.bucket, o.prefix.empty() ? "" : "/", o.prefix,
                               " is not usable: ", versioning.status().message()));
  }
  return *versioning;
}

absl::StatusOr<bool> ProbeObjectStore(const ObjectStoreConfig& o) {
  auto client = S3Client::Create(S3ConfigFrom(o));
  if (!client.ok()) return client.status();
  return ProbeObjectStore(o, **client);
}

absl::StatusOr<std::shared_ptr<S3Client>> MakeObjectStoreClient(const ObjectStoreConfig& o) {
  if (o.access_key_id.empty() || o.secret_access_key == nullptr) {
    return absl::InvalidArgumentError(
        StrCat("object store ", o.url, ": no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"));
  }
  S3Config c = S3ConfigFrom(o);
  // State shipments are small and retried by the replicator itself: give up
  // sooner than blob uploads, so that a store that is down shows quickly.
  c.max_attempts = 3;
  c.connect_timeout = std::chrono::milliseconds(2000);
  c.stall_timeout = std::chrono::milliseconds(10000);
  auto client = S3Client::Create(std::move(c));
  if (!client.ok()) return client.status();
  return std::shared_ptr<S3Client>(std::move(*client));
}

StateSigner StateSignerFor(Vault* vault) {
  return [vault](std::string_view message) -> absl::StatusOr<std::string> {
    auto sig = vault->Sign(message);
    if (!sig.ok()) return sig.status();
    return std::string(reinterpret_cast<const char*>(sig->data()), sig->size());
  };
}

absl::StatusOr<std::unique_ptr<StateReplicator>> PrepareStateReplication(const DaemonConfig& config, Vault* vault) {
  const ObjectStoreConfig& o = config.object_store;
  if (o.url.empty() || o.state == "off") return std::unique_ptr<StateReplicator>();
  auto client = MakeObjectStoreClient(o);
  if (!client.ok()) return client.status();
  StateReplicatorOptions ro;
  ro.sync = o.state == "sync";
  ro.lag = std::chrono::milliseconds(o.state_lag_ms);
  ro.scratch_dir = config.data_dir + "/state-checkpoint";
  ro.sign = StateSignerFor(vault);
  ro.supersede_marker = SupersedeMarkerPath(config);
  auto until = ReadSupersedeMarker(ro.supersede_marker);
  if (!until.ok()) return until.status();
  ro.supersede_until = *until;
  ro.run_marker = RunMarkerPath(config);
  auto parent = ReadRunMarker(ro.run_marker);
  if (!parent.ok()) return parent.status();
  ro.parent_run = *parent;
  auto r = StateReplicator::Create(std::move(*client), ro);
  if (!r.ok()) return r.status();
  RegisterDurability(DbPath(config), r->get());
  LogInfo("state replication", {{"object_store", o.url},
                                {"mode", o.state},
                                {"lag_ms", o.state_lag_ms},
                                {"run", (*r)->run().id},
                                {"parent_run", ro.parent_run}});
  return r;
}

void StopStateReplication(const DaemonConfig& config, std::unique_ptr<StateReplicator> replicator) {
  if (!replicator) return;
  replicator->Stop();
  RegisterDurability(DbPath(config), nullptr);
}

namespace {

// What a restore trusts: objects signed with the vault's identity (and,
// with --allow-unsigned-state, unsigned ones). The vault's key is read,
// never made: a vault without one is the wrong vault.
absl::StatusOr<StateTrust> TrustOf(Vault& vault, bool allow_unsigned) {
  auto has = vault.HasSigningKey();
  if (!has.ok()) return has.status();
  if (!*has) {
    return absl::FailedPreconditionError(StrCat(vault.Describe(),
                                                " holds no signing key, so nothing in the object store can be "
                                                "checked against it: wrong vault (the state is signed with the "
                                                "daemon's identity, docs/RECOVERY.md)"));
  }
  auto key = vault.SigningPublicKey();
  if (!key.ok()) return key.status();
  StateTrust trust;
  trust.allow_unsigned = allow_unsigned;
  trust.verify = [pk = *key](std::string_view message, std::string_view signature) {
    return verify::VerifyEd25519(pk, message, signature).ok();
  };
  return trust;
}

// The restored key tree needs the vault's root of its epoch.
absl::Status CheckAgainstVault(const DaemonConfig& config, Vault* vault) {
  auto roots = vault->ListRoots();
  if (!roots.ok()) return roots.status();
  rocksdb::Options options;
  rocksdb::DB* raw = nullptr;
  if (auto s = FromRocks(rocksdb::DB::OpenForReadOnly(options, DbPath(config), &raw), "opening the restored state");
      !s.ok()) {
    return s;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value;
  auto s = FromRocks(db->Get(rocksdb::ReadOptions(), keyspace::kEpoch, &value), "reading the restored key tree");
  if (!s.ok()) return s;
  if (value.size() != 8) return absl::DataLossError("the restored key tree's epoch record is malformed");
  uint64_t epoch = 0;
  for (unsigned char c : value) epoch = (epoch << 8) | c;
  if (!std::binary_search(roots->begin(), roots->end(), epoch)) {
    return absl::FailedPreconditionError(StrCat("the restored state needs the root key of epoch ", epoch, " but ",
                                                vault->Describe(),
                                                " does not hold it: wrong vault, or a state older than the vault"));
  }
  std::cout << "shredd restore: key tree epoch " << epoch << " matches " << vault->Describe() << "\n";
  return absl::OkStatus();
}

}  // namespace

std::string StateReplicationMetrics(const StateReplicator* r, rocksdb::DB* db) {
  if (r == nullptr) return "";
  Exposition e;
  const uint64_t latest = db->GetLatestSequenceNumber(), done = r->replicated_seq();
  e.AddGauge("shredd_state_replication_lag_sequence",
             "RocksDB sequence numbers written but not yet in the object store (state replication).",
             static_cast<double>(latest > done ? latest - done : 0));
  e.AddCounter("shredd_state_replication_bytes_total", "Bytes of state shipped to the object store.",
               r->bytes_shipped());
  e.AddCounter("shredd_state_snapshots_total", "State snapshots put in the object store.", r->snapshots());
  e.AddCounter("shredd_state_wal_objects_total", "WAL objects put in the object store.", r->wal_objects());
  e.AddCounter("shredd_state_wal_batches_captured_total",
               "Write batches shipped as they were written (sync mode), not read back from the WAL.",
               r->captured_batches());
  e.AddGauge("shredd_state_replication_healthy", "1 if the last state shipment succeeded, 0 if it failed.",
             r->last_error().ok() ? 1.0 : 0.0);
  return e.text();
}

absl::Status RunRestore(const DaemonConfig& config, bool allow_unsigned) {
  const ObjectStoreConfig& o = config.object_store;
  if (o.url.empty()) return absl::InvalidArgumentError("restore needs --object-store s3://BUCKET[/PREFIX]");
  std::error_code ec;
  if (std::filesystem::exists(config.data_dir, ec) && !std::filesystem::is_empty(config.data_dir, ec)) {
    return absl::FailedPreconditionError(
        StrCat("--data-dir ", config.data_dir, " is not empty: restore only into an empty or new directory"));
  }
  auto client = MakeObjectStoreClient(o);
  if (!client.ok()) return client.status();
  auto vault = OpenVault(config.vault);
  if (!vault.ok()) return vault.status();
  auto trust = TrustOf(**vault, allow_unsigned);
  if (!trust.ok()) return trust.status();
  auto report = RestoreState(**client, DbPath(config), *trust);
  if (!report.ok()) {
    std::filesystem::remove_all(DbPath(config), ec);  // nothing half-restored is left to start on
    return report.status();
  }
  for (const std::string& k : report->skipped) {
    std::cout << "shredd restore: skipped a damaged snapshot, using the one before it: " << k << "\n";
  }
  if (!report->gap.empty()) {
    std::cout << "shredd restore: stopped at a gap a crash left (WAL objects that were in flight; nothing after it "
                 "was acknowledged): "
              << report->gap << "\n";
  }
  if (report->other_objects > 0) {
    std::cout << "shredd restore: left out " << report->other_objects
              << " WAL objects of other histories (a tail an earlier restore abandoned, or another daemon's writes "
                 "to this prefix; docs/RECOVERY.md \"Runs\")\n";
  }
  if (!report->run.empty()) {
    if (auto s = WriteFileDurably(RunMarkerPath(config), report->run); !s.ok()) return s;
  }
  if (report->store_end > report->final_seq) {
    // The daemon started on it may drop that tail, and nothing newer.
    if (auto s = WriteFileDurably(SupersedeMarkerPath(config), StrCat(report->store_end)); !s.ok()) return s;
  }
  std::cout << "shredd restore: snapshot " << report->descriptor << " (sequence " << report->snapshot_seq << ") + "
            << report->wal_objects << " WAL objects (" << report->batches << " batches): state at sequence "
            << report->final_seq << " in " << DbPath(config) << "\n";
  return CheckAgainstVault(config, vault->get());
}

}  // namespace shredd
