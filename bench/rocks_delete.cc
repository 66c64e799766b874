// Peer for the order benchmark: a bare RocksDB batched delete of N keys
// (written first), synced, timed. Prints {"keys","seconds","keys_per_s"}.
// Usage: bench_rocks_delete DIR N
#include <chrono>
#include <cstdio>
#include <string>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DIR N\n", argv[0]);
    return 2;
  }
  const uint64_t n = std::stoull(argv[2]);
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(o, argv[1], &db).ok()) return 1;
  std::string value(100, 'v');  // about the size of a wrapped key + item record
  for (uint64_t i = 0; i < n;) {
    rocksdb::WriteBatch b;
    for (int k = 0; k < 10000 && i < n; ++k, ++i) {
      char key[16];
      std::snprintf(key, sizeof key, "k%015llu", static_cast<unsigned long long>(i));
      b.Put(key, value);
    }
    db->Write(rocksdb::WriteOptions(), &b);
  }
  db->Flush(rocksdb::FlushOptions());
  auto t0 = std::chrono::steady_clock::now();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  for (uint64_t i = 0; i < n;) {
    rocksdb::WriteBatch b;
    for (int k = 0; k < 100000 && i < n; ++k, ++i) {
      char key[16];
      std::snprintf(key, sizeof key, "k%015llu", static_cast<unsigned long long>(i));
      b.Delete(key);
    }
    if (!db->Write(wo, &b).ok()) return 1;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"keys\":%llu,\"seconds\":%.3f,\"keys_per_s\":%.0f}\n", static_cast<unsigned long long>(n), s,
              static_cast<double>(n) / s);
  delete db;
  return 0;
}
