// A small blocking queue between two threads of a transfer pipeline (the
// daemon's download prefetch, shredctl's reader and writer threads). It holds
// at most `capacity` items, so a pipeline over a file of any size runs in
// constant memory: the faster side blocks.
#ifndef SHREDD_DAEMON_BASE_BOUNDED_QUEUE_H_
#define SHREDD_DAEMON_BASE_BOUNDED_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

namespace shredd {

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Blocks while the queue is full. Takes `item` (moves from it) and returns
  // true, or returns false and leaves `item` alone if the queue was
  // cancelled or closed.
  bool Push(T& item) {
    std::unique_lock l(mu_);
    space_.wait(l, [&] { return cancelled_ || closed_ || items_.size() < capacity_; });
    if (cancelled_ || closed_) return false;
    items_.push_back(std::move(item));
    l.unlock();
    ready_.notify_one();
    return true;
  }
  bool Push(T&& item) { return Push(item); }

  // Blocks until an item is there. nullopt once the queue is closed and
  // drained, or cancelled.
  std::optional<T> Pop() {
    std::unique_lock l(mu_);
    ready_.wait(l, [&] { return cancelled_ || closed_ || !items_.empty(); });
    return TakeFront(l);
  }

  // An item if one is queued, without waiting.
  std::optional<T> TryPop() {
    std::unique_lock l(mu_);
    return TakeFront(l);
  }

  // The producer is done: Pop drains what is queued, then returns nullopt.
  void Close() {
    {
      std::lock_guard l(mu_);
      closed_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
  }

  // Either side gives up: both Push and Pop return at once. Items still
  // queued stay until Drain() or destruction (callers wipe secrets there).
  void Cancel() {
    {
      std::lock_guard l(mu_);
      cancelled_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
  }

  bool cancelled() {
    std::lock_guard l(mu_);
    return cancelled_;
  }

  // Calls `f` on every item still queued and removes them.
  template <class F>
  void Drain(F f) {
    std::lock_guard l(mu_);
    for (auto& it : items_) f(it);
    items_.clear();
  }

 private:
  // The front item, if any and not cancelled; releases `l` and wakes a
  // producer waiting for space.
  std::optional<T> TakeFront(std::unique_lock<std::mutex>& l) {
    if (cancelled_ || items_.empty()) return std::nullopt;
    std::optional<T> out(std::move(items_.front()));
    items_.pop_front();
    l.unlock();
    space_.notify_one();
    return out;
  }
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<T> items_;
  bool closed_ = false, cancelled_ = false;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_BOUNDED_QUEUE_H_
