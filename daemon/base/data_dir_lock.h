// One daemon per data dir. Taken before the vault or RocksDB is opened:
// RocksDB's own LOCK is taken only after it has rotated the info LOG, so a
// second daemon started on a running one's data dir used to rotate the
// running daemon's LOG away before it failed.
#ifndef SHREDD_DAEMON_BASE_DATA_DIR_LOCK_H_
#define SHREDD_DAEMON_BASE_DATA_DIR_LOCK_H_

#include <string>

#include "absl/status/statusor.h"

namespace shredd {

// Creates `data_dir` (0700) if needed and takes an exclusive flock on
// `data_dir`/shredd.lock, held until the process exits (the descriptor is
// returned; close-on-exec). FAILED_PRECONDITION naming the holder's pid if
// another process holds it.
absl::StatusOr<int> LockDataDir(const std::string& data_dir);

// The same for any directory: an exclusive flock on `dir`/`file` (created
// 0600, never through a link), its descriptor returned, the pid written
// into it. FAILED_PRECONDITION "<busy>" (plus the holder's pid) if another
// open file description holds it.
absl::StatusOr<int> LockDirectory(const std::string& dir, std::string_view file, std::string_view busy);

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_DATA_DIR_LOCK_H_
