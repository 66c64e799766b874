#include "daemon/storage/space_guard.h"

#include <sys/statvfs.h>

#include <atomic>
#include <mutex>
#include <utility>

#include "absl/base/thread_annotations.h"

#include "daemon/base/logging.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

struct Guard {
  std::string dir;  // set once, before writes begin
  std::atomic<uint64_t> min_free{0};
  std::atomic<bool> refusing{false};  // writes that add data are refused
  std::mutex listener_mu;
  std::function<void()> listener ABSL_GUARDED_BY(listener_mu);
};

Guard& TheGuard() {
  static Guard* g = new Guard();  // never destroyed: writes may run at exit
  return *g;
}

thread_local int erasure_depth = 0;

bool FreeBytes(const std::string& dir, uint64_t* out) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return false;
  *out = static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
  return true;
}

std::string Refusal(uint64_t free, uint64_t floor, bool erasure) {
  return StrCat("not enough free space: ", free / kMiB, " MiB free on the data dir's filesystem, ",
                erasure ? "erasures keep " : "writes keep ", floor / kMiB, " MiB free ([storage] min_free_mib",
                erasure ? " / 4" : "", "); nothing was written");
}

// Logs and announces a change of whether writes that add data are refused.
void NoteState(Guard& g, bool refusing, uint64_t free, uint64_t min_free) {
  if (g.refusing.exchange(refusing) == refusing) return;
  if (refusing) {
    LogError("storage: writes are stopped",
             {{"during", "free-space guard"},
              {"reason", Refusal(free, min_free, false)},
              {"recovery", "automatic, once space is freed on the data dir's filesystem; erasures go on"}});
  } else {
    LogInfo("storage: writes resumed", {{"by", "free-space guard"}, {"free_mib", free / kMiB}});
  }
  std::lock_guard lock(g.listener_mu);
  if (g.listener) g.listener();
}

}  // namespace

void InstallSpaceGuard(std::string dir, uint64_t min_free_bytes) {
  Guard& g = TheGuard();
  g.dir = std::move(dir);
  g.min_free.store(min_free_bytes, std::memory_order_release);
}

void SetSpaceGuardFloor(uint64_t min_free_bytes) {
  TheGuard().min_free.store(min_free_bytes, std::memory_order_release);
}

void SetSpaceGuardListener(std::function<void()> on_change) {
  Guard& g = TheGuard();
  std::lock_guard lock(g.listener_mu);
  g.listener = std::move(on_change);
}

uint64_t GuardedFreeBytes() {
  Guard& g = TheGuard();
  uint64_t free = 0;
  if (g.dir.empty() || !FreeBytes(g.dir, &free)) return 0;
  return free;
}

absl::Status CheckFreeSpace() {
  Guard& g = TheGuard();
  const uint64_t min_free = g.min_free.load(std::memory_order_acquire);
  if (min_free == 0 || g.dir.empty()) {
    if (g.refusing.load()) NoteState(g, false, 0, 0);  // turned off by a reload
    return absl::OkStatus();
  }
  uint64_t free = 0;
  // Not knowing is no reason to refuse: RocksDB reports real errors.
  if (!FreeBytes(g.dir, &free)) return absl::OkStatus();
  NoteState(g, free < min_free, free, min_free);
  const bool erasure = erasure_depth > 0;
  const uint64_t floor = erasure ? min_free / 4 : min_free;
  if (free >= floor) return absl::OkStatus();
  return absl::ResourceExhaustedError(Refusal(free, floor, erasure));
}

std::optional<std::string> SpaceGuardRefusal() {
  if (auto s = CheckFreeSpace(); !s.ok()) return std::string(s.message());
  return std::nullopt;
}

ErasureWrites::ErasureWrites() { ++erasure_depth; }
ErasureWrites::~ErasureWrites() { --erasure_depth; }

}  // namespace shredd
