// TileWriter: keeps a static copy of the transparency log as C2SP
// tlog-tiles (formats/tiles.h) in a TileStore (tile_store.h): a directory
// (--log-tiles-dir, [log] tiles_dir) or the object store under
// PREFIX/tiles/ ([object_store] log_tiles), so that any static web server
// or bucket can serve it and a monitor can follow the log without the
// daemon (docs/LOG.md "Tiles"). One writer, one thread, per store.
//
// After the log grows (its growth listener wakes the writer's thread), the
// writer asks the log for its signed checkpoint (signing one for the current
// size if needed, TransparencyLog::SignedCheckpoint), writes the hash tiles
// and entry bundles the checkpoint's tree needs that are new or wider, then
// the `checkpoint` file, last, after the store made the tiles durable
// (TileStore::Sync), so a reader (or a crash) never meets a checkpoint whose
// tiles are missing. Full tiles never change. Once a checkpoint is out
// whose tree holds a tile in full, the partial versions of that tile and
// its bundle are removed (c2sp.org/tlog-tiles: readers of an older
// checkpoint fall back to the full tile); a failed removal is only logged.
//
// On start it catches up: a `checkpoint` file that verifies under the log's
// key and matches the log's tree at its size is kept, every tile and bundle
// its tree needs is checked (written if missing, of the wrong length, or,
// for the tiles RepairLocked reads, holding other bytes than the log's), and
// publishing continues from there; any other content is
// overwritten from tree size 0 (e.g. a data dir restored from a backup: the
// tiles then show the shorter log, and monitors report the rollback).
//
// The tiles are a copy: a failed write never fails or blocks the log. It is
// logged (once per failure streak, and when writing works again), counted in
// stats() (exported as metrics), and retried every retry_interval. When the store
// is a directory on the data dir's filesystem, the free-space guard
// (daemon/storage/space_guard.h) applies: below [storage] min_free_mib no
// tiles are written (the log's own writes come first), and they are retried.
//
// An entry longer than 65535 bytes cannot go into an entry bundle (its
// length prefix is 16 bits): the bundles holding one are not written
// (counted in stats().oversized_entries, logged); the hash tiles are.
//
// Thread safety: all methods are safe for concurrent use.
#ifndef SHREDD_DAEMON_LOG_TILE_WRITER_H_
#define SHREDD_DAEMON_LOG_TILE_WRITER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/log/tile_store.h"
#include "daemon/log/transparency_log.h"
#include "formats/tiles.h"

namespace shredd {

class TileWriter {
 public:
  // At catch-up, the contents of every hash tile of level >= 1 are compared
  // with the log's hashes, but those of the level-0 tiles and bundles only
  // for the rightmost one and the kRepairCheckedLevel0 full ones before it
  // (the others: their length and presence; docs/LOG.md "Tiles").
  static constexpr uint64_t kRepairCheckedLevel0 = 16;
  struct Options {
    // After a publish, wait this long before the next (one checkpoint and
    // one set of partial tiles per interval under a stream of appends).
    std::chrono::milliseconds min_interval{200};
    std::chrono::milliseconds retry_interval{2000};
  };
  struct Stats {
    uint64_t published_size = 0;  // tree size of the checkpoint file written last
    uint64_t publishes = 0;       // checkpoint files written
    uint64_t files_written = 0;   // tiles, bundles and checkpoints
    uint64_t failures = 0;        // failed publish attempts
    uint64_t oversized_entries = 0;
    uint64_t partials_removed = 0;  // tiles whose partial versions were removed
    bool failing = false;           // the last attempt failed
  };

  // A writer for `log` (not owned; must outlive the writer) into `store`.
  // Writes nothing until Start() or Publish().
  TileWriter(TransparencyLog* log, std::unique_ptr<TileStore> store, Options options);
  ~TileWriter();  // stops the thread
  TileWriter(const TileWriter&) = delete;
  TileWriter& operator=(const TileWriter&) = delete;

  // Registers the log's growth listener and starts the background thread,
  // which catches up at once. Call before appends start.
  void Start();
  // Brings the directory up to the log's current size now, on this thread
  // (catching up first if not done yet). What the thread calls.
  absl::Status Publish();

  Stats stats() const;
  const std::string& where() const { return store_->where(); }

 private:
  struct Signal {
    std::mutex mu;
    std::condition_variable cv;
    bool dirty = true;
    bool stop = false;
  };

  void Run();
  absl::Status CatchUpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::Status WriteTileLocked(const verify::TileRef& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::Status WriteFileLocked(const std::string& rel, std::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::Status RepairLocked(uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::StatusOr<bool> MatchesLogLocked(const verify::TileRef& t, bool bundle)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  void RemovePartialsLocked(const std::vector<verify::TileRef>& written, uint64_t old_size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);

  TransparencyLog* const log_;
  const std::unique_ptr<TileStore> store_;
  const Options options_;
  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  std::thread thread_;

  std::mutex publish_mu_;
  bool caught_up_ ABSL_GUARDED_BY(publish_mu_) = false;
  bool checkpoint_current_ ABSL_GUARDED_BY(publish_mu_) = false;  // the file holds published_'s checkpoint
  uint64_t published_ ABSL_GUARDED_BY(publish_mu_) = 0;

  mutable std::mutex stats_mu_;
  Stats stats_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_LOG_TILE_WRITER_H_
