// Transparency-log append rate through the real TransparencyLog on a fresh
// RocksDB: N entries of ~300 bytes (the size of a custody entry) appended in
// synced batches of B, as bulk ingest appends them, and a run of single-entry
// synced appends (one certificate or one upload at a time).
// Usage: bench_log_append DIR [N] [B]   -> one JSON line
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "daemon/keys/vault.h"
#include "daemon/log/transparency_log.h"

namespace {
double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || sodium_init() < 0) {
    std::fprintf(stderr, "usage: bench_log_append DIR [N] [B]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 1000000;
  const long b = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 1000;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(o, dir + "/db", &raw).ok()) return 1;
  std::unique_ptr<rocksdb::DB> db(raw);
  auto vault = shredd::OpenVault("file:" + dir + "/vault");
  if (!vault.ok()) return 1;
  auto pub = (*vault)->SigningPublicKey();
  if (!pub.ok()) return 1;
  auto log = shredd::TransparencyLog::Open(db.get(), vault->get(), shredd::DefaultLogOrigin(*pub));
  if (!log.ok()) return 1;
  const std::string pad(220, 'x');
  auto append = [&](long count) -> bool {
    rocksdb::WriteBatch batch;
    auto r = (*log)->Append(&batch, [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
      std::vector<std::string> e;
      e.reserve(count);
      for (long i = 0; i < count; ++i) {
        e.push_back("{\"type\":\"item-stored\",\"index\":" + std::to_string(first + i) + ",\"pad\":\"" + pad + "\"}");
      }
      return e;
    });
    return r.ok();
  };
  double t0 = Now();
  for (long done = 0; done < n; done += b) {
    if (!append(std::min(b, n - done))) return 1;
  }
  const double batched = Now() - t0;
  const long singles = 2000;
  t0 = Now();
  for (long i = 0; i < singles; ++i) {
    if (!append(1)) return 1;
  }
  const double single = Now() - t0;
  std::printf(
      "{\"entries\":%ld,\"batch\":%ld,\"seconds\":%.3f,\"entries_per_s\":%.0f,\"single_appends\":%ld,"
      "\"single_ms\":%.3f}\n",
      n, b, batched, n / batched, singles, 1000 * single / singles);
  return 0;
}
