// TileStore: where TileWriter (tile_writer.h) puts the log's C2SP
// tlog-tiles: a directory ([log] tiles_dir, FileTileStore) or the object
// store, under PREFIX/tiles/ ([object_store] log_tiles, S3TileStore). Paths
// are relative to the tiles root: "checkpoint", "tile/0/000.p/7", ...
//
// The writer's ordering promise (no reader meets a checkpoint whose tiles
// are missing) rests on two properties every store gives: Write() replaces
// a file whole (a reader sees the old bytes or the new, never a mix), and
// after Sync() returns, every file written before it is durable and
// visible. A directory renames fsynced temporary files and fsyncs the
// directories on Sync(); an object store's PutObject is atomic and durable
// on success, so Sync() has nothing left to do.
//
// Not thread-safe: the writer calls a store under its publish lock.
#ifndef SHREDD_DAEMON_LOG_TILE_STORE_H_
#define SHREDD_DAEMON_LOG_TILE_STORE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shredd {

class S3Client;

class TileStore {
 public:
  virtual ~TileStore() = default;
  // For log lines: the directory, or s3://BUCKET/PREFIX/tiles.
  virtual const std::string& where() const = 0;
  // Makes the tiles root (a directory) or checks nothing (a bucket prefix).
  virtual absl::Status Prepare() = 0;
  // The bytes of `rel`; NOT_FOUND if there is none.
  virtual absl::StatusOr<std::string> Read(const std::string& rel) = 0;
  // The size of each of `rels`, -1 for one that is missing (one listing for
  // a bucket, not a request per file).
  virtual absl::StatusOr<std::vector<int64_t>> Sizes(const std::vector<std::string>& rels) = 0;
  virtual absl::Status Write(const std::string& rel, std::string_view data) = 0;
  virtual absl::Status Sync() = 0;
  // Removes every partial version of the tile or bundle whose full version
  // is `full_rel` ("tile/0/002" -> "tile/0/002.p/*"), once a checkpoint that
  // needs only the full one is published. Readers of an older checkpoint
  // fall back to the full tile (c2sp.org/tlog-tiles).
  virtual absl::Status RemovePartials(const std::string& full_rel) = 0;
  // The directory shares the data dir's filesystem: the free-space guard
  // applies to writes.
  virtual bool guard_free_space() const { return false; }
};

// A directory, created 0755 if missing; files 0644 (they are public).
std::unique_ptr<TileStore> FileTileStore(std::string dir, bool guard_free_space);

// Objects `client`'s PREFIX + "/tiles/" + rel. In a versioned bucket the
// checkpoint's earlier versions are deleted as each new one is written (one
// current checkpoint, not one version per publish), and RemovePartials
// deletes every version of the partial tiles.
std::unique_ptr<TileStore> S3TileStore(std::shared_ptr<S3Client> client);

}  // namespace shredd

#endif  // SHREDD_DAEMON_LOG_TILE_STORE_H_
