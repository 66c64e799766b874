// RocksDB <-> absl::Status glue.
#ifndef SHREDD_DAEMON_ROCKS_UTIL_H_
#define SHREDD_DAEMON_ROCKS_UTIL_H_

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <string_view>

#include "absl/status/status.h"

namespace shredd {

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what);
// Commits `batch` with WAL sync: durable when this returns OK.
absl::Status SyncWrite(rocksdb::DB* db, rocksdb::WriteBatch* batch);

}  // namespace shredd

#endif  // SHREDD_DAEMON_ROCKS_UTIL_H_
