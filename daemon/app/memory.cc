#include "daemon/app/memory.h"

#include <malloc.h>

#if defined(SHREDD_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#if defined(SHREDD_WITH_JEMALLOC)
// jemalloc's compile-time options. See memory.h.
SHREDD_DEFINE_JEMALLOC_CONF()
#endif

namespace shredd {
namespace {

#if defined(SHREDD_WITH_JEMALLOC)
uint64_t JemallocStat(const char* name) {
  size_t v = 0;
  size_t len = sizeof(v);
  if (mallctl(name, &v, &len, nullptr, 0) != 0) return 0;
  return v;
}
#endif

// True if the environment already chooses this malloc setting.
bool SetByEnvironment(const char* env_name, const char* tunable) {
  if (std::getenv(env_name) != nullptr) return true;
  const char* t = std::getenv("GLIBC_TUNABLES");
  return t != nullptr && std::strstr(t, tunable) != nullptr;
}

}  // namespace

bool AllocatorTuningEnabled() {
  const char* v = std::getenv("SHREDD_MALLOC_TUNING");
  return v == nullptr || std::strcmp(v, "off") != 0;
}

bool UsingJemalloc() {
#if defined(SHREDD_WITH_JEMALLOC)
  return true;
#else
  return false;
#endif
}

void TuneAllocator() {
  // jemalloc is configured by malloc_conf above, before main runs.
  if (UsingJemalloc() || !AllocatorTuningEnabled()) return;
  if (!SetByEnvironment("MALLOC_ARENA_MAX", "glibc.malloc.arena_max")) mallopt(M_ARENA_MAX, kMallocArenas);
  if (!SetByEnvironment("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")) {
    mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  }
}

AllocatorStats ReadAllocatorStats() {
  AllocatorStats s;
#if defined(SHREDD_WITH_JEMALLOC)
  // jemalloc's statistics are refreshed by writing its "epoch".
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  mallctl("epoch", &epoch, &len, &epoch, len);
  s.in_use = JemallocStat("stats.allocated");
  const uint64_t resident = JemallocStat("stats.resident");
  s.free_held = resident > s.in_use ? resident - s.in_use : 0;
  s.mmapped = 0;
#else
  struct mallinfo2 mi = mallinfo2();
  s.in_use = mi.uordblks + mi.hblkhd;
  s.free_held = mi.fordblks;
  s.mmapped = mi.hblkhd;
#endif
  return s;
}

void TrimHeap() {
#if defined(SHREDD_WITH_JEMALLOC)
  // Purge every arena's unused dirty pages now ("arena.<MALLCTL_ARENAS_ALL>").
  static_assert(MALLCTL_ARENAS_ALL == 4096);
  mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
#else
  malloc_trim(0);
#endif
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

MemoryTrimmer::MemoryTrimmer(std::chrono::milliseconds interval) : interval_(interval), thread_([this] { Loop(); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MemoryTrimmer::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, interval_, [this] { return stop_; })) {
    l.unlock();
    auto t0 = std::chrono::steady_clock::now();
    TrimHeap();
    trim_ns_ += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    ++trims_;
    l.lock();
  }
}

}  // namespace shredd
