// SecretBytes: the one type that holds key material.
//
// Backed by sodium_malloc (guard pages, canary, mlock'ed where allowed), kept
// PROT_NOACCESS while idle is not attempted (keys are used constantly on the hot
// path); zeroed on destruction. Move-only; never converts to std::string and
// has no operator<<, so it cannot end up in a log line.
//
// Secrets of up to kPooledSize bytes (every key, DEK and subkey) come from a
// pool of slots carved out of large sodium_malloc'ed blocks: sodium_malloc
// costs an mmap, two mprotects and an mlock per call (and a munmap per free),
// which dominated per-item costs at millions of items (docs/PERFORMANCE.md).
// A pooled slot is wiped when released; the blocks are mlock'ed like any
// sodium_malloc region and live until the process exits.
#ifndef SHREDD_DAEMON_BASE_SECRET_H_
#define SHREDD_DAEMON_BASE_SECRET_H_

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <utility>
#include <vector>

namespace shredd {

namespace secret_internal {
inline constexpr size_t kPooledSize = 64;
// A zeroed kPooledSize-byte slot in secure memory. Thread-safe.
uint8_t* AllocPooled();
// Wipes the slot and returns it to the pool. Thread-safe.
void FreePooled(uint8_t* slot);
}  // namespace secret_internal

class SecretBytes {
 public:
  SecretBytes() = default;
  // Allocates `size` zeroed bytes. Aborts (std::bad_alloc) if sodium_malloc fails.
  explicit SecretBytes(size_t size) : size_(size) {
    if (size == 0) return;
    if (size <= secret_internal::kPooledSize) {
      data_ = secret_internal::AllocPooled();
      return;
    }
    data_ = static_cast<uint8_t*>(sodium_malloc(size));
    if (data_ == nullptr) throw std::bad_alloc();
    sodium_memzero(data_, size);
  }
  // Copies `bytes` into secure memory. The caller wipes its own copy.
  static SecretBytes CopyOf(std::span<const uint8_t> bytes) {
    SecretBytes s(bytes.size());
    if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
    return s;
  }
  // Fresh random bytes from the OS CSPRNG.
  static SecretBytes Random(size_t size) {
    SecretBytes s(size);
    randombytes_buf(s.data_, size);
    return s;
  }
  ~SecretBytes() { Reset(); }

  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  SecretBytes& operator=(SecretBytes&& o) noexcept {
    if (this != &o) {
      Reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  // Explicit copy, so every duplication of key material is visible in review.
  SecretBytes Clone() const { return CopyOf(span()); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  std::span<uint8_t> mutable_span() { return {data_, size_}; }
  // Borrowing view for crypto calls; the view must not outlive this object.
  operator std::span<const uint8_t>() const { return span(); }  // NOLINT(google-explicit-constructor)

  // Wipes and frees now (sodium_free zeroes before unmapping).
  void Reset() {
    if (data_ != nullptr) {
      if (size_ <= secret_internal::kPooledSize) {
        secret_internal::FreePooled(data_);
      } else {
        sodium_free(data_);
      }
    }
    data_ = nullptr;
    size_ = 0;
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Many fixed-size 32-byte keys in a few sodium_malloc'ed pages. sodium_malloc
// costs three pages per call, so a key tree with 10^5 nodes cannot give each
// key its own allocation. Slots are wiped when released and on destruction.
// Not thread-safe; the owner serialises access.
class SecretKeyPool {
 public:
  static constexpr size_t kKeySize = 32;
  static constexpr size_t kKeysPerBlock = 4096;

  SecretKeyPool() = default;
  SecretKeyPool(const SecretKeyPool&) = delete;
  SecretKeyPool& operator=(const SecretKeyPool&) = delete;

  // Returns a slot holding a copy of `key` (32 bytes).
  uint32_t Add(std::span<const uint8_t> key) {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      if (next_ % kKeysPerBlock == 0) blocks_.emplace_back(kKeySize * kKeysPerBlock);
      slot = next_++;
    }
    std::memcpy(Mutable(slot), key.data(), kKeySize);
    return slot;
  }
  void Release(uint32_t slot) {
    sodium_memzero(Mutable(slot), kKeySize);
    free_.push_back(slot);
  }
  std::span<const uint8_t> Get(uint32_t slot) const {
    return {blocks_[slot / kKeysPerBlock].data() + (slot % kKeysPerBlock) * kKeySize, kKeySize};
  }
  size_t live() const { return next_ - free_.size(); }

 private:
  uint8_t* Mutable(uint32_t slot) { return blocks_[slot / kKeysPerBlock].data() + (slot % kKeysPerBlock) * kKeySize; }
  std::vector<SecretBytes> blocks_;
  std::vector<uint32_t> free_;
  uint32_t next_ = 0;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_SECRET_H_
