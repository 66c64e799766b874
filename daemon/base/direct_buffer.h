// DirectIoBuffer: a buffer for O_DIRECT reads and writes (the daemon's file
// blobs, shredctl's downloads). Its own mapping; from 2 MiB on, aligned to a
// huge page and marked for transparent huge pages (on systems that give them only on
// request), so that an 8 MiB transfer pins 4 pages instead of 2,048 and the
// buffer faults in with 4 faults instead of 2,048 (docs/PERFORMANCE.md,
// "Issue 17, part 4"). Its own mapping keeps the hint off the heap.
#ifndef SHREDD_DAEMON_BASE_DIRECT_BUFFER_H_
#define SHREDD_DAEMON_BASE_DIRECT_BUFFER_H_

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace shredd {

inline constexpr size_t kDirectIoAlign = 4096;  // O_DIRECT offsets, lengths and buffers

class DirectIoBuffer {
 public:
  static constexpr size_t kHugePage = 2 << 20;

  // data() is null if the memory cannot be mapped. Buffers smaller than a
  // huge page are plain page-aligned mappings: a huge page would be cleared
  // whole (2 MiB) on the first touch, which cost small blobs (100 KB) more
  // than their I/O (docs/PERFORMANCE.md "Small blobs").
  explicit DirectIoBuffer(size_t size) : size_(size) {
    if (size < kHugePage) {
      // Populated at once: one call instead of a fault per 4 KiB page.
      void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (m != MAP_FAILED) p_ = static_cast<char*>(m);
      return;
    }
    void* m = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    auto* base = static_cast<char*>(m);
    char* aligned = base + (kHugePage - reinterpret_cast<uintptr_t>(base) % kHugePage) % kHugePage;
    if (aligned > base) munmap(base, aligned - base);
    munmap(aligned + size, kHugePage - (aligned - base));
    (void)madvise(aligned, size, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
    p_ = aligned;
  }
  ~DirectIoBuffer() {
    if (p_ != nullptr) munmap(p_, size_);
  }
  DirectIoBuffer(const DirectIoBuffer&) = delete;
  DirectIoBuffer& operator=(const DirectIoBuffer&) = delete;
  char* data() { return p_; }
  size_t size() const { return size_; }
  // What using the first `n` bytes makes resident: whole huge pages in a
  // buffer that has them.
  static uint64_t Touched(size_t buffer_size, uint64_t n) {
    return buffer_size < kHugePage ? n : std::min<uint64_t>(buffer_size, (n + kHugePage - 1) / kHugePage * kHugePage);
  }

 private:
  size_t size_;
  char* p_ = nullptr;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_DIRECT_BUFFER_H_
