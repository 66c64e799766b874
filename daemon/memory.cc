#include "daemon/memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace shredd {
namespace {

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

void TuneAllocator() {
  if (!AllocatorTuningEnabled()) return;
  if (!SetByEnvironment("MALLOC_ARENA_MAX", "glibc.malloc.arena_max")) mallopt(M_ARENA_MAX, kMallocArenas);
  if (!SetByEnvironment("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")) {
    mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  }
}

AllocatorStats ReadAllocatorStats() {
  struct mallinfo2 mi = mallinfo2();
  AllocatorStats s;
  s.in_use = mi.uordblks + mi.hblkhd;
  s.free_held = mi.fordblks;
  s.mmapped = mi.hblkhd;
  return s;
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

MemoryTrimmer::MemoryTrimmer(std::chrono::milliseconds interval)
    : interval_(interval), thread_([this] { Loop(); }) {}

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
    malloc_trim(0);
    trim_ns_ += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    ++trims_;
    l.lock();
  }
}

}  // namespace shredd
