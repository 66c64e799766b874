// Keeping the daemon's resident memory flat under sustained load
// (docs/RELIABILITY.md, section 4).
//
// Two sources of growth are bounded here:
//   - glibc malloc keeping freed memory: gRPC's threads allocate and free the
//     1 MiB content chunks in different arenas (by default 8 per core), and
//     after the first such chunk is freed glibc raises its mmap threshold, so
//     later chunks come from the arenas and fragment them. TuneAllocator()
//     caps the arenas and pins the mmap threshold; MemoryTrimmer hands free
//     pages back to the kernel periodically.
//   - RocksDB: its memory is bounded by [storage] memory_budget_mib
//     (ApplyRocksDbMemoryBudget in rocks_util.h).
#ifndef SHREDD_DAEMON_MEMORY_H_
#define SHREDD_DAEMON_MEMORY_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace shredd {

// False if the environment says SHREDD_MALLOC_TUNING=off: then neither
// TuneAllocator() nor the daemon's MemoryTrimmer do anything (glibc's
// defaults; for comparisons, see docs/SERVICE.md).
bool AllocatorTuningEnabled();

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

// What malloc holds (mallinfo2: every arena, plus mmapped chunks).
struct AllocatorStats {
  uint64_t in_use = 0;     // allocated and not yet freed, including mmapped chunks
  uint64_t free_held = 0;  // freed but kept in the arenas (resident or not)
  uint64_t mmapped = 0;    // in chunks served by mmap (part of in_use)
};
AllocatorStats ReadAllocatorStats();

// The process's resident set size (VmRSS), in bytes; 0 if unreadable.
uint64_t ResidentBytes();

// A thread that calls malloc_trim(0) every `interval`: free pages inside the
// arenas (not only at their top) go back to the kernel. Runs with or without
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
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_MEMORY_H_
