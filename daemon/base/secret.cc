#include "daemon/base/secret.h"

#include <mutex>
#include <new>
#include <vector>

namespace shredd::secret_internal {
namespace {

constexpr size_t kSlotsPerBlock = 16384;  // 1 MiB of 64-byte slots per sodium_malloc

struct Pool {
  std::mutex mu;
  std::vector<uint8_t*> blocks;  // never freed: slots may be live until exit
  std::vector<uint8_t*> free;
};

Pool& ThePool() {
  static Pool* pool = new Pool;  // reachable for LSan; outlives static destructors
  return *pool;
}

}  // namespace

uint8_t* AllocPooled() {
  Pool& p = ThePool();
  std::lock_guard lock(p.mu);
  if (p.free.empty()) {
    auto* block = static_cast<uint8_t*>(sodium_malloc(kPooledSize * kSlotsPerBlock));
    if (block == nullptr) throw std::bad_alloc();
    sodium_memzero(block, kPooledSize * kSlotsPerBlock);
    p.blocks.push_back(block);
    p.free.reserve(p.free.size() + kSlotsPerBlock);
    for (size_t i = kSlotsPerBlock; i-- > 0;) p.free.push_back(block + i * kPooledSize);
  }
  uint8_t* slot = p.free.back();
  p.free.pop_back();
  return slot;  // zeroed: fresh, or wiped by FreePooled
}

void FreePooled(uint8_t* slot) {
  sodium_memzero(slot, kPooledSize);
  Pool& p = ThePool();
  std::lock_guard lock(p.mu);
  p.free.push_back(slot);
}

}  // namespace shredd::secret_internal
