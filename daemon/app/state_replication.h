// The daemon's side of state replication (issue 14, part 2; docs/RECOVERY.md):
// the replicator started with the store, and `shredd restore`.
#ifndef SHREDD_DAEMON_APP_STATE_REPLICATION_H_
#define SHREDD_DAEMON_APP_STATE_REPLICATION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <rocksdb/db.h>

#include "daemon/config/config.h"
#include "daemon/storage/s3_client.h"

namespace shredd {

class StateReplicator;
class Vault;

// [object_store] as the S3 client's settings (endpoint, bucket, prefix,
// credentials); callers adjust retries and timeouts.
S3Config S3ConfigFrom(const ObjectStoreConfig& o);

// An S3 client for `o` (credentials from the environment, already in `o`).
// Asks the store whether the bucket keeps versions (one GetBucketVersioning
// call): it answers only if the endpoint is reachable, the keys are accepted
// and the bucket exists. Versioning is reported, not required: a shredded
// item's objects are deleted with every version either way. The error names
// the bucket and says why it is not usable. With no client given, makes one.
absl::StatusOr<bool> ProbeObjectStore(const ObjectStoreConfig& o, S3Client& client);
absl::StatusOr<bool> ProbeObjectStore(const ObjectStoreConfig& o);

absl::StatusOr<std::shared_ptr<S3Client>> MakeObjectStoreClient(const ObjectStoreConfig& o);

// Null when no object store is configured or [object_store] state = "off".
// Otherwise a replicator registered (durability.h) for DATA_DIR/db, not yet
// started: the caller opens the store, checks the vault's signing key
// (TransparencyLog::CheckSigningKey: the replicator signs with it, and
// signing would make one), then calls Start(db). `vault` must outlive it.
absl::StatusOr<std::unique_ptr<StateReplicator>> PrepareStateReplication(const DaemonConfig& config, Vault* vault);
// Unregisters and stops it (ships what is written first).
void StopStateReplication(const DaemonConfig& config, std::unique_ptr<StateReplicator> replicator);

// Prometheus text for the replicator (empty without one): the sequence lag,
// bytes shipped, snapshots, WAL objects, 1/0 for the last attempt's outcome.
std::string StateReplicationMetrics(const StateReplicator* r, rocksdb::DB* db);

// `shredd restore`: rebuilds the empty config.data_dir from the object
// store's state, accepting only state objects signed with the vault's
// identity (and unsigned ones from earlier versions if `allow_unsigned`),
// and checks it against the vault. Prints a summary on stdout.
absl::Status RunRestore(const DaemonConfig& config, bool allow_unsigned);

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_STATE_REPLICATION_H_
