// DirectIoBuffer: a buffer for O_DIRECT reads and writes (the daemon's file
// blobs, shredctl's downloads). Its own mapping, aligned to a 2 MiB huge page
// and marked for transparent huge pages (on systems that give them only on
// request), so that an 8 MiB transfer pins 4 pages instead of 2,048 and the
// buffer faults in with 4 faults instead of 2,048 (docs/PERFORMANCE.md,
// "Issue 17, part 4"). Its own mapping keeps the hint off the heap.
#ifndef SHREDD_DAEMON_BASE_DIRECT_BUFFER_H_
#define SHREDD_DAEMON_BASE_DIRECT_BUFFER_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace shredd {

inline constexpr size_t kDirectIoAlign = 4096;  // O_DIRECT offsets, lengths and buffers

class DirectIoBuffer {
 public:
  // data() is null if the memory cannot be mapped.
  explicit DirectIoBuffer(size_t size) : size_(size) {
    constexpr size_t kHugePage = 2 << 20;
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

 private:
  size_t size_;
  char* p_ = nullptr;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_DIRECT_BUFFER_H_
