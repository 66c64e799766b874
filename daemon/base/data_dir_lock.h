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

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_DATA_DIR_LOCK_H_
