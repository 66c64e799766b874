// StateReplicator: ships the daemon's RocksDB (key tree, item records,
// catalog, orders, transparency log) to the object store, so that a fresh
// machine + the vault + the bucket restore everything acknowledged
// (RestoreState; docs/RECOVERY.md).
//
// Objects, under PREFIX/state/ (blobs live directly under PREFIX/; the blob
// GC leaves keys with a further '/' alone):
//   state/sst/<file stem>-<sha256/128 hex>.sst  table files, uploaded once each
//   state/snap/<seq 20>-<ms 13>/<name>          a snapshot's MANIFEST, OPTIONS,
//                                               CURRENT and WAL copies
//   state/desc/<seq 20>-<ms 13>.json            the snapshot descriptor, last;
//                                               the highest one wins
//   state/wal/<first seq 20>-<last seq 20>      a run of write batches (WAL
//                                               shipping), checksummed and signed
// A snapshot is a RocksDB Checkpoint (hard links, on the data dir's
// filesystem). Writes after it are shipped from the WAL (GetUpdatesSince).
// Where the WAL cannot say what happened (writes that skipped it, such as a
// large shred plan's staging; WAL files already deleted), the replicator
// takes a new snapshot instead, so the object store never holds a gap.
#ifndef SHREDD_DAEMON_STORAGE_STATE_REPLICATOR_H_
#define SHREDD_DAEMON_STORAGE_STATE_REPLICATOR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <rocksdb/db.h>
#include <rocksdb/transaction_log.h>

#include "daemon/storage/durability.h"
#include "daemon/storage/s3_client.h"
#include "daemon/storage/state_objects.h"
#include "daemon/storage/wal_capture.h"

namespace shredd {

struct StateReplicatorOptions {
  // true: "sync", every acknowledgement waits for the object store;
  // false: "async", shipped at least every `lag`/2.
  bool sync = false;
  std::chrono::milliseconds lag{2000};
  // A new snapshot after this many bytes of shipped WAL, or after
  // snapshot_table_factor times the database's table files if that is more,
  // or after snapshot_interval. A snapshot re-uploads the tables rewritten
  // since the last one (up to the whole database): the factor caps that at
  // 1/factor of the WAL shipped; a restore then replays up to factor times
  // the database's size of WAL (docs/RECOVERY.md, "Snapshots").
  uint64_t snapshot_wal_bytes = uint64_t{64} << 20;
  uint64_t snapshot_table_factor = 2;
  std::chrono::seconds snapshot_interval{600};
  // Where checkpoints are made: on the database's filesystem (hard links),
  // removed after each upload.
  std::string scratch_dir;
  // How long WaitReplicated waits for a store that answers slowly.
  std::chrono::milliseconds wait_timeout{60000};
  // Signs every WAL object and snapshot descriptor (the daemon's identity;
  // state_objects.h). Empty only in unit tests: unsigned objects.
  StateSigner sign;
  // State in the store newer than this database that it may supersede: the
  // store's end when `shredd restore` stopped short of it (at a gap a crash
  // left; RestoreReport::store_end), read from the marker file
  // `supersede_marker`, which the first snapshot removes once it has
  // dropped that tail. 0: nothing beyond the database's own sequence.
  uint64_t supersede_until = 0;
  std::string supersede_marker;
  // The run whose state this database continues (StateRun::parent of the
  // run this replicator begins; "" if none is known), read from
  // `run_marker`, which the first snapshot overwrites with the new run's id
  // before any WAL object of it is shipped. Empty marker path: not kept.
  std::string parent_run;
  std::string run_marker;
};

class StateReplicator : public Durability {
 public:
  static absl::StatusOr<std::unique_ptr<StateReplicator>> Create(std::shared_ptr<S3Client> client,
                                                                 StateReplicatorOptions options);
  ~StateReplicator() override;
  StateReplicator(const StateReplicator&) = delete;
  StateReplicator& operator=(const StateReplicator&) = delete;

  // Starts the shipping thread on `db` (not owned; must outlive Stop()). Its
  // first task is a snapshot: whatever the store held before, it then
  // describes this database. Returns at once; a store that is down shows in
  // WaitReplicated and last_error().
  void Start(rocksdb::DB* db);
  // Ships what is written (best effort, bounded by wait_timeout), then stops.
  void Stop();

  absl::Status WaitReplicated(uint64_t seq) override;

  // Before anything in the store is deleted at start (the blob garbage
  // collection, the first snapshot's removal of a lost tail):
  // FAILED_PRECONDITION if the store holds state newer than `local_seq` (and
  // than supersede_until). Then another daemon writes to this prefix, or this
  // data dir is an older copy of its state (a backup, a VM snapshot, a restore
  // drill started on the live prefix): starting would delete what the other
  // acknowledged. Nothing is deleted.
  absl::Status CheckNoNewerState(uint64_t local_seq);
  // The database's sequence number when it opened, before this process
  // wrote anything: the run's fork (StateRun). Called before Start;
  // without it, Start takes the sequence number it finds.
  void OpenedAt(uint64_t seq);
  bool acknowledgements_wait() const override { return options_.sync; }
  // In `sync` mode, committed batches are captured as they are written
  // (wal_capture.h) and shipped from there; otherwise no-ops.
  uint64_t BeginWrite() override;
  void EndWrite(uint64_t ticket, const rocksdb::WriteOptions& wo, const rocksdb::WriteBatch& batch, bool ok) override;

  uint64_t replicated_seq() const;
  // The run this replicator writes (its fork is set by Start).
  const StateRun& run() const { return run_; }
  uint64_t bytes_shipped() const { return bytes_shipped_.load(); }
  uint64_t snapshots() const { return snapshots_.load(); }
  uint64_t wal_objects() const { return wal_objects_.load(); }
  // Batches shipped from the write capture (the rest came from the WAL reader).
  uint64_t captured_batches() const { return captured_batches_.load(); }
  absl::Status last_error() const;
  // Takes a snapshot now (from the shipping thread) and waits for it.
  absl::Status SnapshotNow();

 private:
  StateReplicator(std::shared_ptr<S3Client> client, StateReplicatorOptions options);
  void Run();
  absl::Status Step(bool snapshot_due);
  // A WAL object sealed for the store (registered in flights_), not yet put.
  struct SealedWal {
    uint64_t first = 0, last = 0;
    std::string body;
    std::string sha256;   // of the whole body, hex: the PUT's payload hash
    absl::Status sealed;  // not OK: signing failed, the object is not put
  };
  // Reads the WAL after shipped_ into at most `room` sealed objects (up to
  // 16 MiB each); gaps (writes that skipped the WAL, files already gone)
  // come back as FAILED_PRECONDITION ("take a snapshot"), after sealing what
  // came before them.
  absl::Status ShipWal(std::vector<SealedWal>* out, size_t room);
  // The batches `wal_it_` yields after shipped_: a fresh iterator
  // (GetUpdatesSince), or the previous shipment's, read on (`resume`).
  // `full`: stopped at `room` objects.
  absl::Status ShipFromIterator(bool resume, std::vector<SealedWal>* out, size_t room, bool* full);
  // The batches the write capture holds after shipped_ (sync mode), before
  // the WAL reader is asked: sealed into `out` like ShipFromIterator's.
  void ShipFromCapture(uint64_t latest, std::vector<SealedWal>* out, size_t room, bool* full);
  // Seals what `w` holds (in `body`) into `out`, if anything, and starts a
  // new object in a fresh buffer.
  void SealWal(WalObjectWriter& w, std::string& body, std::vector<SealedWal>* out);
  // Object buffers are reused (spare_bodies_).
  std::string TakeWalBuffer();
  void RecycleWalBufferLocked(std::string&& body);
  // Puts them in order (after a failure, the rest fail too), completes
  // their flights and keeps their buffers for reuse. The first error.
  absl::Status PutSealed(std::vector<SealedWal>& sealed);
  void CompleteFlightLocked(uint64_t first, const absl::Status& s);
  bool AllFlightsDoneLocked() const;
  size_t RoomLocked() const;  // objects that may still start
  // After a failed object (rewind_): waits for the others, then reads again
  // after replicated_. The owner of a shipment only.
  void RewindIfNeeded();
  // The first snapshot's cleanup: deletes WAL objects beyond `seq`.
  absl::Status DropWalAfter(uint64_t seq);
  absl::Status RefuseNewerThan(uint64_t newest, uint64_t local_seq) const;
  // A snapshot the WAL waits for (the first one, one asked for, one that
  // covers a gap): shipping continues after its sequence number.
  absl::Status TakeSnapshot();
  // Checkpoint, upload, descriptor, old state removed: the snapshot's
  // sequence number. Touches only the snapshot's own members, so a periodic
  // snapshot runs on a thread of its own while the WAL is shipped.
  absl::StatusOr<uint64_t> MakeSnapshot();
  // Starts a periodic snapshot on a thread of its own if one is due: after
  // SnapshotWalBytes() of WAL or snapshot_interval.
  void MaybeStartPeriodicSnapshot();
  // max(snapshot_wal_bytes, snapshot_table_factor x the database's table files).
  uint64_t SnapshotWalBytes() const;
  // Takes the periodic snapshot's result, if it is done (or `wait`).
  void CollectBackgroundSnapshot(bool wait);
  absl::Status UploadCheckpointFiles(const std::string& dir, const std::string& snap_id, std::string* files_json);
  absl::Status CollectOldState();
  void Published(uint64_t seq);
  // WaitReplicated's waiter ships itself (requires mu_, held in `l`, and
  // !shipping_; releases it meanwhile). UNAVAILABLE if the shipment failed.
  // Returns once its own objects are put (earlier ones may still be in
  // flight).
  absl::Status LeadShipment(std::unique_lock<std::mutex>& l);
  void NoteFailureLocked(const absl::Status& s);
  std::string Key(std::string_view name) const { return client_->KeyFor(name); }

  const std::shared_ptr<S3Client> client_;
  const StateReplicatorOptions options_;
  StateRun run_;  // fork set by OpenedAt or Start, then fixed
  bool fork_known_ = false;
  rocksdb::DB* db_ = nullptr;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool snapshot_requested_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t snapshot_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t replicated_ ABSL_GUARDED_BY(mu_) = 0;  // everything <= is in the store
  uint64_t wanted_ ABSL_GUARDED_BY(mu_) = 0;      // the highest seq a waiter waits for
  uint64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_failure_ ABSL_GUARDED_BY(mu_){};
  // Someone (the shipping thread, or a waiter leading a group commit) owns
  // the members below: one shipment at a time.
  bool shipping_ ABSL_GUARDED_BY(mu_) = false;
  // Waiters may lead: a snapshot exists and the last attempt did not fail
  // or meet a gap (those are the shipping thread's to handle).
  bool leader_ok_ ABSL_GUARDED_BY(mu_) = false;
  // WAL objects being put, by first sequence number; up to kMaxInFlight at
  // once (each by the leader that sealed it). replicated_ only advances over
  // the unbroken run of those done.
  struct Flight {
    uint64_t last = 0;
    bool done = false;
    absl::Status status;
  };
  static constexpr size_t kMaxInFlight = 4;
  std::map<uint64_t, Flight> flights_ ABSL_GUARDED_BY(mu_);
  uint64_t dispatched_ ABSL_GUARDED_BY(mu_) = 0;  // sealed into objects up to here
  bool rewind_ ABSL_GUARDED_BY(mu_) = false;      // an object failed: read again
  static constexpr size_t kMaxKeptWalBuffer = 8 << 20;
  std::vector<std::string> spare_bodies_ ABSL_GUARDED_BY(mu_);  // emptied WAL object buffers

  // The owner of a shipment only (shipping_).
  bool have_base_ = false;  // a snapshot of this database is in the store
  uint64_t shipped_ = 0;
  // The WAL iterator of the previous shipment, positioned after shipped_: it
  // reads on in the WAL file. A new one must read its first WAL file from
  // the start to find shipped_ (at every shipment, that made shipping cost
  // grow with the WAL file: 10-250 ms per shipment in a bulk ingest).
  std::unique_ptr<rocksdb::TransactionLogIterator> wal_it_;
  uint64_t wal_since_snapshot_ = 0;
  std::chrono::steady_clock::time_point last_snapshot_{};
  std::future<absl::Status> background_;  // a periodic snapshot in progress
  // Snapshot code only (one snapshot at a time).
  bool listed_tables_ = false;
  std::set<std::string> uploaded_tables_;                              // object keys
  std::map<std::string, std::pair<uint64_t, std::string>> table_sha_;  // file name -> (size, sha256 hex)

  // Sync mode: the batches written, as they are committed (else null).
  std::unique_ptr<WalCapture> capture_;
  std::atomic<uint64_t> bytes_shipped_{0}, snapshots_{0}, wal_objects_{0}, captured_batches_{0};
};

struct RestoreReport {
  std::string descriptor;  // the object key of the snapshot used
  // How far the state in the store went, by name (NewestStateSequence):
  // beyond final_seq only if the restore stopped at a gap a crash left.
  uint64_t store_end = 0;
  uint64_t snapshot_seq = 0;
  uint64_t wal_objects = 0;
  uint64_t batches = 0;
  uint64_t final_seq = 0;
  std::vector<std::string> skipped;  // newer snapshots found damaged: "KEY: reason"
  uint64_t skipped_seq = 0;          // the newest skipped snapshot's sequence number (by its name)
  // Non-empty if the WAL objects stop at a gap a crash left (writes after
  // it were never acknowledged): which sequence numbers are missing.
  std::string gap;
  // The run the restored state continues (the daemon started on it begins a
  // run with this parent), and how many runs began after the snapshot's.
  std::string run;
  uint64_t runs = 0;
  // WAL objects beyond the snapshot of runs not followed: another history
  // (a lost tail a restore abandoned and someone put back, a second daemon).
  uint64_t other_objects = 0;
};

// Rebuilds `db_dir` (must not exist or be empty: FAILED_PRECONDITION
// otherwise) from the latest intact snapshot in the store (a damaged newer
// one is skipped and named in `skipped`) and the WAL objects after it,
// checking every file's SHA-256, every WAL object's checksum and every
// descriptor's and WAL object's signature against `trust` (DATA_LOSS naming
// the object; a snapshot whose descriptor fails is skipped like a damaged
// one) and the sequence's continuity: it stops at a gap that
// a crash with objects in flight left (named in `gap`), and fails DATA_LOSS,
// naming the gap, if an object after it shows that the missing ones had
// been in the store; then opens the database to check it. NOT_FOUND if the store holds
// no snapshot.
absl::StatusOr<RestoreReport> RestoreState(S3Client& client, const std::string& db_dir, const StateTrust& trust);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_STATE_REPLICATOR_H_
