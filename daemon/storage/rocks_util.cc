#include "daemon/storage/rocks_util.h"

#include <rocksdb/cache.h>
#include <rocksdb/write_buffer_manager.h>

#include "daemon/base/strings.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/space_guard.h"

namespace shredd {

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  // Out of space: IOError/NoSpace (ENOSPC), IOError/SpaceLimit (the
  // SstFileManager's limit), and a database whose writes a full disk stopped
  // (it answers every write with that background error, whatever its
  // wrapping; docs/SERVICE.md "Full disk").
  if (s.IsNoSpace() || (s.IsIOError() && s.subcode() == rocksdb::Status::kSpaceLimit) ||
      (s.IsIOError() && msg.find("No space left on device") != std::string::npos)) {
    return absl::ResourceExhaustedError(msg);
  }
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

absl::Status GuardedWrite(rocksdb::DB* db, const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* batch,
                          std::string_view what) {
  if (auto s = CheckFreeSpace(); !s.ok()) return s;
  Durability* d = DurabilityFor(db);
  if (d == nullptr) return FromRocks(db->Write(wo, batch), what);
  const uint64_t ticket = d->BeginWrite();
  const rocksdb::Status s = db->Write(wo, batch);
  d->EndWrite(ticket, wo, *batch, s.ok());
  return FromRocks(s, what);
}

absl::Status SyncWrite(rocksdb::DB* db, rocksdb::WriteBatch* batch) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return GuardedWrite(db, wo, batch, "committing to RocksDB");
}

void ApplyRocksDbMemoryBudget(uint64_t budget_bytes, rocksdb::Options* options,
                              rocksdb::BlockBasedTableOptions* table) {
  rocksdb::LRUCacheOptions cache_options;
  cache_options.capacity = static_cast<size_t>(budget_bytes);
  cache_options.high_pri_pool_ratio = 0.5;  // index and filter partitions
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(cache_options);
  table->block_cache = cache;
  table->cache_index_and_filter_blocks = true;
  table->cache_index_and_filter_blocks_with_high_priority = true;
  table->pin_l0_filter_and_index_blocks_in_cache = true;
  // Partitioned index and filters: with index and filter blocks in a bounded
  // cache, a whole-table filter (~1 MB for a large table) that is evicted is
  // read and checksummed again by the next point lookup; an order planning
  // millions of items spent most of its time doing that. Partitions are
  // 4 KiB, and the small top-level blocks stay pinned.
  table->index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table->partition_filters = true;
  table->metadata_block_size = 4096;
  table->pin_top_level_index_and_filter = true;
  options->write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(static_cast<size_t>(budget_bytes / 2), cache);
  options->max_open_files = kRocksDbMaxOpenFiles;
}

void ApplyRocksDbWriteTuning(rocksdb::Options* options) {
  // Compact level 0 into level 1 at 8 files, not 4: item keys are keyed
  // hashes, so every L0 file overlaps all of L1 and each L0->L1 compaction
  // rewrites the whole of L1; twice the input per rewrite cut the bytes the
  // daemon wrote in a 300,000-item ingest from 2,837 to 1,935 MiB
  // (docs/PERFORMANCE.md, "Issue 17, part 2"). The stall triggers move up
  // with it.
  options->level0_file_num_compaction_trigger = 8;
  options->level0_slowdown_writes_trigger = 30;
  options->level0_stop_writes_trigger = 48;
  options->memtable_whole_key_filtering = true;
  options->memtable_prefix_bloom_size_ratio = 0.02;
  options->compression_per_level = {rocksdb::kNoCompression,  rocksdb::kNoCompression,  rocksdb::kLZ4Compression,
                                    rocksdb::kLZ4Compression, rocksdb::kLZ4Compression, rocksdb::kLZ4Compression,
                                    rocksdb::kLZ4Compression};
  if (StateReplicationWanted()) {
    // The state replicator reads the WAL after the memtables that it holds
    // were flushed (GetUpdatesSince): obsolete WAL files go to archive/ and
    // stay there for an hour or up to 1 GiB. Were they gone before it caught
    // up, it takes a snapshot instead (docs/RECOVERY.md).
    options->WAL_ttl_seconds = 3600;
    options->WAL_size_limit_MB = 1024;
  }
}

RocksDbMemory ReadRocksDbMemory(rocksdb::DB* db) {
  RocksDbMemory m;
  auto prop = [db](const std::string& name) {
    uint64_t v = 0;
    return db->GetIntProperty(name, &v) ? v : 0;
  };
  m.memtables = prop(rocksdb::DB::Properties::kCurSizeAllMemTables);
  m.table_readers = prop(rocksdb::DB::Properties::kEstimateTableReadersMem);
  m.block_cache = prop(rocksdb::DB::Properties::kBlockCacheUsage);
  m.block_cache_pinned = prop(rocksdb::DB::Properties::kBlockCachePinnedUsage);
  m.block_cache_capacity = prop(rocksdb::DB::Properties::kBlockCacheCapacity);
  return m;
}

}  // namespace shredd
