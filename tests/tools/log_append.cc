// Test-only tool: appends entries to the transparency log of a STOPPED
// daemon's data dir, through the real TransparencyLog, so the integration
// tests (tests/integration/test_log.py) can grow the log before custody
// events are logged by the daemon itself. Never installed; not a daemon flag.
//
// usage: shredd_log_append DATA_DIR VAULT_SPEC COUNT [PREFIX]
// Appends COUNT entries "PREFIX <index>" (in batches of 1..3) and prints the
// new tree size.
#include <sodium.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "daemon/keys/vault.h"
#include "daemon/log/transparency_log.h"

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5 || sodium_init() < 0) {
    std::cerr << "usage: shredd_log_append DATA_DIR VAULT_SPEC COUNT [PREFIX]\n";
    return 2;
  }
  const std::string prefix = argc == 5 ? argv[4] : "test entry";
  const long count = std::strtol(argv[3], nullptr, 10);
  rocksdb::Options o;
  o.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(o, std::string(argv[1]) + "/db", &raw);
  if (!rs.ok()) {
    std::cerr << "shredd_log_append: " << rs.ToString() << "\n";
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  auto vault = shredd::OpenVault(argv[2]);
  if (!vault.ok()) {
    std::cerr << "shredd_log_append: " << vault.status() << "\n";
    return 1;
  }
  auto pub = (*vault)->SigningPublicKey();
  if (!pub.ok()) {
    std::cerr << "shredd_log_append: " << pub.status() << "\n";
    return 1;
  }
  auto log = shredd::TransparencyLog::Open(db.get(), vault->get(), shredd::DefaultLogOrigin(*pub));
  if (!log.ok()) {
    std::cerr << "shredd_log_append: " << log.status() << "\n";
    return 1;
  }
  long done = 0;
  while (done < count) {
    const long n = std::min<long>(count - done, 1 + done % 3);
    rocksdb::WriteBatch batch;
    auto r = (*log)->Append(&batch, [&](uint64_t first) -> absl::StatusOr<std::vector<std::string>> {
      std::vector<std::string> e;
      for (long i = 0; i < n; ++i) e.push_back(prefix + " " + std::to_string(first + static_cast<uint64_t>(i)));
      return e;
    });
    if (!r.ok()) {
      std::cerr << "shredd_log_append: " << r.status() << "\n";
      return 1;
    }
    done += n;
  }
  std::cout << (*log)->size() << "\n";
  return 0;
}
