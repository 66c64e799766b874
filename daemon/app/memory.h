// Keeping the daemon's resident memory flat under sustained load
// (docs/RELIABILITY.md, section 4).
//
// Two sources of growth are bounded here:
//   - the allocator keeping freed memory. The daemon is linked with jemalloc
//     (Debian's libjemalloc2; CMake option SHREDD_JEMALLOC, off under the
//     sanitizers): its size classes and per-arena extents fragment far less
//     than glibc malloc under gRPC's pattern of 1 MiB content chunks
//     allocated on one thread and freed on another, and its background
//     thread returns unused pages after kJemallocConf's decay time. With
//     glibc malloc (SHREDD_JEMALLOC=OFF) TuneAllocator() caps the arenas and
//     pins the mmap threshold instead (glibc otherwise raises it past 1 MiB
//     after the first such chunk is freed). Either way MemoryTrimmer hands
//     free pages back to the kernel periodically.
//   - RocksDB: its memory is bounded by [storage] memory_budget_mib
//     (ApplyRocksDbMemoryBudget in rocks_util.h).
#ifndef SHREDD_DAEMON_APP_MEMORY_H_
#define SHREDD_DAEMON_APP_MEMORY_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"

#include "daemon/base/jemalloc_conf.h"

namespace shredd {

// False if the environment says SHREDD_MALLOC_TUNING=off: then neither
// TuneAllocator() nor the daemon's MemoryTrimmer do anything (the
// allocator's defaults; for comparisons, see docs/SERVICE.md). jemalloc's
// options are fixed at link time; MALLOC_CONF overrides them.
bool AllocatorTuningEnabled();

// True if this build's allocator is jemalloc (SHREDD_WITH_JEMALLOC).
bool UsingJemalloc();

// jemalloc options (its malloc_conf): two arenas like glibc's setting below;
// a background thread purges pages unused for about 1 s (dirty) straight
// back to the kernel (muzzy decay 0: no MADV_FREE stage, so RSS shows it at
// once). 1 s rather than 5 s took 17 MiB off the peak of a 3M-item order.
// Issue 17 tried 5 s without the oversize arena (oversize_threshold:0):
// half the page faults, but 295 instead of 239 MiB at the peak of a 3M
// order and no CPU saved, so not kept (docs/PERFORMANCE.md).
// lg_extent_max_active_fit:30 lets a freed extent of any size serve a
// smaller request (by default only one at most 64 times larger): freed
// neighbours coalesce into large dirty extents, and gRPC's 64 KiB receive
// buffers were then cut from fresh memory instead, each page faulted in
// (halved the page faults and ~25 % of the daemon's CPU of a 1 GiB upload).
// The string: kJemallocConf (daemon/base/jemalloc_conf.h); shredctl uses it
// too (on its side of a 1 GiB download: 31,000-94,000 page faults with
// glibc malloc, 8,800 with these options).

// Allocator settings. Call first thing in main, before any thread starts.
// Each setting is skipped if the environment sets it already
// (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, or GLIBC_TUNABLES naming it),
// so an operator can still override them.
//   - at most kMallocArenas arenas;
//   - allocations of kMmapThreshold bytes or more are served by mmap and
//     unmapped when freed (a fixed threshold also stops glibc from raising
//     it dynamically).
inline constexpr int kMallocArenas = 2;
inline constexpr int kMmapThreshold = 256 * 1024;
void TuneAllocator();

// What malloc holds. glibc (mallinfo2): every arena plus mmapped chunks;
// jemalloc: stats.allocated, and stats.resident minus that (free pages not
// yet purged, and the allocator's own metadata).
struct AllocatorStats {
  uint64_t in_use = 0;     // allocated and not yet freed, including mmapped chunks
  uint64_t free_held = 0;  // freed but kept by the allocator (glibc: resident or not; jemalloc: resident)
  uint64_t mmapped = 0;    // glibc: in chunks served by mmap (part of in_use); jemalloc: 0
};
AllocatorStats ReadAllocatorStats();

// The process's resident set size (VmRSS), in bytes; 0 if unreadable.
uint64_t ResidentBytes();

// Hands free pages back to the kernel now: malloc_trim(0) under glibc (free
// pages inside the arenas, not only at their top), a purge of every arena
// under jemalloc.
void TrimHeap();

// A thread that calls TrimHeap() every `interval`. Runs with or without
// systemd; stops when destroyed.
class MemoryTrimmer {
 public:
  static constexpr std::chrono::seconds kDefaultInterval{10};
  explicit MemoryTrimmer(std::chrono::milliseconds interval = kDefaultInterval);
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  uint64_t trims() const { return trims_.load(); }
  // Total time spent in malloc_trim (it holds each arena's lock in turn).
  double trim_seconds() const { return static_cast<double>(trim_ns_.load()) / 1e9; }

 private:
  void Loop();

  const std::chrono::milliseconds interval_;
  std::atomic<uint64_t> trims_{0};
  std::atomic<uint64_t> trim_ns_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_MEMORY_H_
