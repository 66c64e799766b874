#include "daemon/storage/durability.h"

#include <atomic>
#include <map>
#include <shared_mutex>

#include "daemon/base/strings.h"

namespace shredd {
namespace {

struct Registry {
  std::shared_mutex mu;
  std::map<std::string, Durability*, std::less<>> by_path;
  std::atomic<bool> wanted{false};
};

Registry& Reg() {
  static Registry* r = new Registry();  // never destroyed: read by threads until exit
  return *r;
}

}  // namespace

void RegisterDurability(const std::string& db_path, Durability* d) {
  Registry& r = Reg();
  std::unique_lock l(r.mu);
  if (d == nullptr) {
    r.by_path.erase(db_path);
  } else {
    r.by_path[db_path] = d;
    r.wanted.store(true);
  }
}

Durability* DurabilityFor(const rocksdb::DB* db) {
  Registry& r = Reg();
  if (!r.wanted.load(std::memory_order_relaxed)) return nullptr;
  std::shared_lock l(r.mu);
  auto it = r.by_path.find(const_cast<rocksdb::DB*>(db)->GetName());
  return it == r.by_path.end() ? nullptr : it->second;
}

bool StateReplicationWanted() { return Reg().wanted.load(); }

absl::Status WaitStateReplicated(rocksdb::DB* db, std::string_view what) {
  Durability* d = DurabilityFor(db);
  if (d == nullptr) return absl::OkStatus();
  absl::Status s = d->WaitReplicated(db->GetLatestSequenceNumber());
  if (s.ok()) return s;
  return absl::Status(s.code(), StrCat(what, ": the state is not in the object store yet: ", s.message()));
}

absl::Status WaitAcknowledgementReplicated(rocksdb::DB* db) {
  Durability* d = DurabilityFor(db);
  if (d == nullptr || !d->acknowledgements_wait()) return absl::OkStatus();
  return d->WaitReplicated(db->GetLatestSequenceNumber());
}

}  // namespace shredd
