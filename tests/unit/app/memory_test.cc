// The memory bounds of docs/RELIABILITY.md (load): RocksDB's budget, the
// allocator statistics and the periodic trim.
#include "daemon/app/memory.h"

#if defined(SHREDD_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/write_buffer_manager.h>

#include "daemon/storage/rocks_util.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

TEST(MemoryBudget, OneCacheHoldsBlocksIndexesFiltersAndMemtables) {
  testing::TempDir dir;
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  ApplyRocksDbMemoryBudget(uint64_t{32} << 20, &o, &table);
  EXPECT_TRUE(table.cache_index_and_filter_blocks);
  EXPECT_TRUE(table.pin_l0_filter_and_index_blocks_in_cache);
  ASSERT_NE(table.block_cache, nullptr);
  EXPECT_EQ(table.block_cache->GetCapacity(), size_t{32} << 20);
  ASSERT_NE(o.write_buffer_manager, nullptr);
  EXPECT_EQ(o.write_buffer_manager->buffer_size(), size_t{16} << 20);
  EXPECT_TRUE(o.write_buffer_manager->cost_to_cache());
  EXPECT_EQ(o.max_open_files, kRocksDbMaxOpenFiles);
  // Untouched: the memtable size is the ingest tuning's business.
  EXPECT_EQ(o.write_buffer_size, rocksdb::Options().write_buffer_size);
  EXPECT_NE(table.filter_policy, nullptr);
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, dir / "db", &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value(4000, 'v');
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k" + std::to_string(i), value).ok());
  }
  RocksDbMemory m = ReadRocksDbMemory(db.get());
  EXPECT_EQ(m.block_cache_capacity, uint64_t{32} << 20);
  EXPECT_GT(m.memtables, uint64_t{2000} * 4000);
  // The memtables' reservation is charged to the shared cache (no table
  // exists yet, so that is all the cache holds).
  EXPECT_GE(m.block_cache, m.memtables / 2);
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  std::string got;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "k7", &got).ok());
  EXPECT_EQ(got, value);
  m = ReadRocksDbMemory(db.get());
  EXPECT_LE(m.block_cache, m.block_cache_capacity);
  EXPECT_GT(m.block_cache, 0u);  // the data block just read, and the table's index and filter
  ASSERT_TRUE(db->Close().ok());
}

TEST(MemoryBudget, AllocatorStatsSeeAllocations) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan replaces malloc: glibc's statistics (mallinfo2) then count nothing.
  GTEST_SKIP() << "glibc allocator statistics are not available under AddressSanitizer";
#endif
  AllocatorStats before = ReadAllocatorStats();
  auto* block = static_cast<char*>(std::malloc(8 << 20));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, 8 << 20);
  AllocatorStats during = ReadAllocatorStats();
  EXPECT_GE(during.in_use, before.in_use + (8 << 20));
  EXPECT_LE(during.mmapped, during.in_use);
  std::free(block);
  EXPECT_GT(ResidentBytes(), 0u);
}

#if defined(SHREDD_WITH_JEMALLOC)
// The build links jemalloc and its options (kJemallocConf, given through the
// malloc_conf symbol in memory.cc) are the ones in force.
TEST(MemoryBudget, JemallocRunsWithTheDaemonsOptions) {
  ASSERT_TRUE(UsingJemalloc());
  if (std::getenv("MALLOC_CONF") != nullptr) GTEST_SKIP() << "MALLOC_CONF overrides the compiled options";
  unsigned narenas = 0;
  size_t len = sizeof(narenas);
  ASSERT_EQ(mallctl("opt.narenas", &narenas, &len, nullptr, 0), 0);
  EXPECT_EQ(narenas, 2u);
  bool background = false;
  len = sizeof(background);
  ASSERT_EQ(mallctl("opt.background_thread", &background, &len, nullptr, 0), 0);
  EXPECT_TRUE(background);
  ssize_t muzzy = -2;
  len = sizeof(muzzy);
  ASSERT_EQ(mallctl("opt.muzzy_decay_ms", &muzzy, &len, nullptr, 0), 0);
  EXPECT_EQ(muzzy, 0);
  // A freed 64 MiB block leaves the resident set after a purge.
  const uint64_t base = ResidentBytes();
  auto* block = static_cast<char*>(std::malloc(64 << 20));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, 64 << 20);
  EXPECT_GE(ResidentBytes(), base + (48 << 20));
  std::free(block);
  TrimHeap();
  EXPECT_LT(ResidentBytes(), base + (16 << 20));
}
#endif

TEST(MemoryBudget, TrimmerTrimsPeriodicallyAndStops) {
  auto t0 = std::chrono::steady_clock::now();
  {
    MemoryTrimmer trimmer(std::chrono::milliseconds(20));
    for (int i = 0; i < 200 && trimmer.trims() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GE(trimmer.trims(), 3u);
    EXPECT_GE(trimmer.trim_seconds(), 0.0);
  }
  {
    MemoryTrimmer idle(std::chrono::hours(1));  // stops at once, mid-wait
    EXPECT_EQ(idle.trims(), 0u);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

}  // namespace
}  // namespace shredd
