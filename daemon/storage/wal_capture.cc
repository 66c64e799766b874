#include "daemon/storage/wal_capture.h"

#include <algorithm>

namespace shredd {
namespace {

// WriteBatch::Data()'s header: fixed64 sequence number, little-endian
// (RocksDB's EncodeFixed64), then fixed32 count.
uint64_t BatchSequence(std::string_view rep) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(rep[static_cast<size_t>(i)]);
  return v;
}

}  // namespace

uint64_t WalCapture::Begin() {
  std::lock_guard l(mu_);
  const uint64_t t = next_ticket_++;
  open_.insert(t);
  return t;
}

void WalCapture::End(uint64_t ticket, const rocksdb::WriteBatch* batch) {
  Batch b;
  uint64_t seq = 0;
  if (batch != nullptr && batch->Data().size() >= 12 && batch->Count() > 0) {
    seq = BatchSequence(batch->Data());
    b.count = batch->Count();
    if (seq > 0) b.rep = batch->Data();  // the one copy, outside the lock
  }
  std::lock_guard l(mu_);
  open_.erase(ticket);
  cv_.notify_all();
  // A batch without a sequence number, or one overlapping another, is not
  // trusted: the WAL reader ships that range.
  if (seq <= floor_ || bytes_ + b.rep.size() > max_bytes_) return;
  auto next = batches_.lower_bound(seq);
  if (next != batches_.end() && next->first <= seq + b.count - 1) return;
  if (next != batches_.begin() && std::prev(next)->first + std::prev(next)->second.count > seq) return;
  bytes_ += b.rep.size();
  batches_.emplace(seq, std::move(b));
}

uint64_t WalCapture::RunEndLocked(uint64_t after) const {
  uint64_t cur = after;
  for (auto it = batches_.find(cur + 1); it != batches_.end() && it->first == cur + 1; ++it) {
    cur = it->first + it->second.count - 1;
  }
  return cur;
}

void WalCapture::DropLocked(uint64_t upto) {
  floor_ = std::max(floor_, upto);
  while (!batches_.empty() && batches_.begin()->first <= upto) {
    bytes_ -= batches_.begin()->second.rep.size();
    batches_.erase(batches_.begin());
  }
}

uint64_t WalCapture::TakeRun(uint64_t after, uint64_t upto, std::chrono::milliseconds wait, const Take& take) {
  std::unique_lock l(mu_);
  DropLocked(after);
  const uint64_t begun_before = next_ticket_;
  cv_.wait_for(l, wait, [&] { return RunEndLocked(after) >= upto || open_.empty() || *open_.begin() >= begun_before; });
  uint64_t cur = after;
  for (;;) {
    auto it = batches_.find(cur + 1);
    if (it == batches_.end()) break;
    Batch b = std::move(it->second);
    bytes_ -= b.rep.size();
    batches_.erase(it);
    cur += b.count;
    floor_ = cur;
    l.unlock();
    const bool more = take(cur - b.count + 1, b.count, b.rep);
    l.lock();
    if (!more) break;
  }
  return cur;
}

size_t WalCapture::bytes() const {
  std::lock_guard l(mu_);
  return bytes_;
}

}  // namespace shredd
