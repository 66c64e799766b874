// ParallelFor: splits [0, n) into contiguous ranges run on a few threads (the
// caller's included). For CPU-bound per-item work on the order path (sealing
// and unsealing millions of small records); not a general scheduler.
#ifndef SHREDD_DAEMON_BASE_PARALLEL_H_
#define SHREDD_DAEMON_BASE_PARALLEL_H_

#include <algorithm>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace shredd {

inline size_t ParallelWorkers() {
  const unsigned hw = std::thread::hardware_concurrency();
  return std::clamp<size_t>(hw == 0 ? 1 : hw, 1, 4);
}

// Calls fn(begin, end) for disjoint ranges covering [0, n); returns when all
// are done. Ranges smaller than `min_per_thread` items are not split off.
inline void ParallelFor(size_t n, const std::function<void(size_t, size_t)>& fn, size_t min_per_thread = 256) {
  const size_t workers = std::min(ParallelWorkers(), std::max<size_t>(1, n / std::max<size_t>(1, min_per_thread)));
  if (workers <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  const size_t per = (n + workers - 1) / workers;
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) {
    const size_t b = w * per, e = std::min(n, b + per);
    if (b < e) threads.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, per));
  for (auto& t : threads) t.join();
}

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_PARALLEL_H_
