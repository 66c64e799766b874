// Durability beyond the local disk: the seam between the layers that must
// wait for the daemon's state to be replicated (keys: a shred epoch; log:
// checkpoints and acknowledgements) and the replicator that ships it
// (state_replicator.h, docs/RECOVERY.md).
//
// The replicator of a database registers itself under the database's path
// (the name given to rocksdb::DB::Open) before the database is opened; the
// layers above find it from their rocksdb::DB*. Without a registration every
// wait is a no-op: the state lives on the local disk only, as before.
#ifndef SHREDD_DAEMON_STORAGE_DURABILITY_H_
#define SHREDD_DAEMON_STORAGE_DURABILITY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

namespace shredd {

class Durability {
 public:
  virtual ~Durability() = default;
  // Blocks until every write of the database up to sequence number `seq` is
  // durable in the replica. UNAVAILABLE, with a one-line reason, if it cannot
  // be made so now (the store is down, replication has not started).
  virtual absl::Status WaitReplicated(uint64_t seq) = 0;
  // true ("sync" mode): every acknowledgement waits for replication, not
  // only epochs and checkpoints.
  virtual bool acknowledgements_wait() const = 0;
  // Around every foreground write (GuardedWrite): BeginWrite before
  // db->Write, its ticket to EndWrite after, with the batch (which then holds
  // the sequence number RocksDB gave it), so that the replicator may ship
  // the batch without reading the WAL back (storage/wal_capture.h).
  virtual uint64_t BeginWrite() { return 0; }
  virtual void EndWrite(uint64_t /*ticket*/, const rocksdb::WriteOptions& /*wo*/, const rocksdb::WriteBatch& /*batch*/,
                        bool /*ok*/) {}
};

// Registers `d` (not owned; nullptr: unregisters) for the database at
// `db_path`. Also makes ApplyRocksDbWriteTuning keep archived WAL files
// (the replicator reads them with GetUpdatesSince).
void RegisterDurability(const std::string& db_path, Durability* d);
Durability* DurabilityFor(const rocksdb::DB* db);
// true once any replicator was registered in this process.
bool StateReplicationWanted();

// Everything `db` holds now is in the replica (every mode): before a shred
// epoch destroys the old root, before a checkpoint leaves the daemon. OK
// at once without a replicator. `what` names the caller in the error.
absl::Status WaitStateReplicated(rocksdb::DB* db, std::string_view what);
// The same in "sync" mode only: before an acknowledgement.
absl::Status WaitAcknowledgementReplicated(rocksdb::DB* db);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_DURABILITY_H_
