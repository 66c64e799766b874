// RocksDB <-> absl::Status glue.
#ifndef SHREDD_DAEMON_STORAGE_ROCKS_UTIL_H_
#define SHREDD_DAEMON_STORAGE_ROCKS_UTIL_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

namespace shredd {

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what);
// Every foreground write of the daemon goes through GuardedWrite: it checks
// the free-space guard first (space_guard.h: RESOURCE_EXHAUSTED, nothing
// written, below the floor), then writes `batch` with `wo`, and hands the
// written batch to the database's replicator if it has one (durability.h
// BeginWrite/EndWrite: it ships the batch without reading the WAL back).
absl::Status GuardedWrite(rocksdb::DB* db, const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* batch,
                          std::string_view what);
// Commits `batch` with WAL sync (through GuardedWrite): durable when this
// returns OK.
absl::Status SyncWrite(rocksdb::DB* db, rocksdb::WriteBatch* batch);

// Bounds RocksDB's memory by `budget_bytes` ([storage] memory_budget_mib,
// docs/CONFIG.md). This is the only place that sets RocksDB memory options:
//   - one LRU block cache of `budget_bytes` for data blocks and for index
//     and filter blocks (cache_index_and_filter_blocks; L0's pinned, high
//     priority), instead of RocksDB's default 8 MiB cache plus index and
//     filter blocks held outside any cache for every open table file;
//   - a WriteBufferManager charged to that cache: the memtables take their
//     room from the cache, and are flushed once together they pass half the
//     budget (write_buffer_size itself is not changed);
//   - at most kRocksDbMaxOpenFiles table files open at once (the default,
//     -1, keeps every table reader forever).
// What is not charged comes on top: table reader objects, blocks pinned by
// live iterators, compaction buffers.
inline constexpr int kRocksDbMaxOpenFiles = 512;
void ApplyRocksDbMemoryBudget(uint64_t budget_bytes, rocksdb::Options* options, rocksdb::BlockBasedTableOptions* table);

// Write-path options of the item store's database (bulk ingest, issue 6;
// docs/PERFORMANCE.md "Bulk ingest"):
//   - a whole-key bloom filter on each memtable (2% of its size, charged to
//     the write buffer), so the existence and suppression MultiGets of a
//     batch, which almost always miss, skip the memtable's skip list;
//   - no block compression on levels 0 and 1 (what a bulk ingest writes is
//     mostly ciphertext, sealed records and hashes, which do not compress:
//     flush and the first compactions spent CPU on Snappy for nothing), LZ4
//     below;
//   - level-0 compaction at 8 files instead of 4 (stalls at 30 and 48),
//     which cuts the ingest's compaction writes by about a third.
// Integrated BlobDB for the inline ciphertext was measured and not kept
// (docs/PERFORMANCE.md). With state replication (durability.h) obsolete WAL
// files are archived for the replicator.
void ApplyRocksDbWriteTuning(rocksdb::Options* options);

// RocksDB's memory, from its properties (bytes). `block_cache` includes the
// memtables' reservation in the shared cache.
struct RocksDbMemory {
  uint64_t memtables = 0;           // rocksdb.cur-size-all-mem-tables
  uint64_t table_readers = 0;       // rocksdb.estimate-table-readers-mem (outside the cache)
  uint64_t block_cache = 0;         // rocksdb.block-cache-usage
  uint64_t block_cache_pinned = 0;  // rocksdb.block-cache-pinned-usage
  uint64_t block_cache_capacity = 0;
};
RocksDbMemory ReadRocksDbMemory(rocksdb::DB* db);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_ROCKS_UTIL_H_
