// Measures one shred epoch (1 item) against key trees of different sizes,
// to show that epoch cost depends on the path, not on the number of items.
// Usage: keytree_epoch [N ...]   (default: 10 1000000)
// Uses a file vault and RocksDB in a temp dir; every epoch is fsync'd and
// rotates the vault root, as in the daemon.
#include <sodium.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "daemon/keys/key_tree.h"
#include "daemon/keys/vault.h"
#include "daemon/storage/rocks_util.h"

using namespace shredd;

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  std::vector<uint64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::stoull(argv[i]));
  if (sizes.empty()) sizes = {10, 1000000};
  std::printf("| items stored | epochs | median ms | min ms | max ms | keys re-wrapped | nodes re-keyed |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (uint64_t n : sizes) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "shredd-bench-XXXXXX").string();
    std::string dir = mkdtemp(tmpl.data());
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(o, dir + "/db", &raw).ok()) return 1;
    std::unique_ptr<rocksdb::DB> db(raw);
    auto vault = OpenVault("file:" + dir + "/vault");
    auto tree = KeyTree::Open(db.get(), vault->get());
    if (!tree.ok()) return 1;
    std::vector<uint64_t> slots;
    SecretBytes dek = SecretBytes::Random(32);
    for (uint64_t done = 0; done < n;) {
      rocksdb::WriteBatch batch;
      KeyTree::PendingNodes pending;
      {
        auto lease = (*tree)->BeginWrite();
        for (int i = 0; i < 10000 && done < n; ++i, ++done) {
          uint64_t s = *(*tree)->AllocateSlot();
          auto p = (*tree)->AddDek(lease, s, dek, &batch);
          pending.node_ids.insert(pending.node_ids.end(), p->node_ids.begin(), p->node_ids.end());
          slots.push_back(s);
        }
        if (!SyncWrite(db.get(), &batch).ok()) return 1;
      }
      (*tree)->Committed(pending);
    }
    std::mt19937_64 rng(42);
    std::vector<double> ms;
    uint64_t rewrapped = 0, rekeyed = 0;
    const int epochs = std::min<int>(25, static_cast<int>(n));
    for (int e = 0; e < epochs; ++e) {
      size_t i = rng() % slots.size();
      uint64_t victim = slots[i];
      slots.erase(slots.begin() + static_cast<long>(i));
      rocksdb::WriteBatch batch;
      std::vector<uint64_t> doomed = {victim};
      auto t0 = std::chrono::steady_clock::now();
      auto r = (*tree)->Shred(doomed, &batch);
      auto t1 = std::chrono::steady_clock::now();
      if (!r.ok()) {
        std::fprintf(stderr, "shred failed: %s\n", std::string(r.status().message()).c_str());
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      rewrapped = std::max(rewrapped, r->keys_rewrapped);
      rekeyed = std::max(rekeyed, r->nodes_rekeyed);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("| %llu | %d | %.2f | %.2f | %.2f | %llu | %llu |\n", static_cast<unsigned long long>(n), epochs,
                ms[ms.size() / 2], ms.front(), ms.back(), static_cast<unsigned long long>(rewrapped),
                static_cast<unsigned long long>(rekeyed));
    std::fflush(stdout);
    tree->reset();
    db.reset();
    std::filesystem::remove_all(dir);
  }
  return 0;
}
