// MemoryGate: a daemon-wide budget of bytes for the buffers of calls whose
// memory grows with the number of calls at once (downloads and uploads of
// large items, large inline replies). gRPC's synchronous server runs as many
// calls as clients send, so without it sixteen concurrent 100 MiB downloads
// held 424 MiB (docs/PERFORMANCE.md "Concurrent transfers and the memory
// budget"). A call leases what it will hold before it allocates; when the
// budget is taken, it waits (in arrival order) until enough is returned, its
// deadline passes or its client goes away. A lease larger than the whole
// budget is cut to the budget, so one call always runs alone.
#ifndef SHREDD_DAEMON_BASE_MEMORY_GATE_H_
#define SHREDD_DAEMON_BASE_MEMORY_GATE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string_view>

#include "absl/status/statusor.h"

namespace shredd {

class MemoryGate {
 public:
  // Returns its bytes to the gate when destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& o) noexcept : gate_(o.gate_), bytes_(o.bytes_) { o.gate_ = nullptr; }
    Lease& operator=(Lease&& o) noexcept;
    ~Lease() { Release(); }
    uint64_t bytes() const { return bytes_; }

   private:
    friend class MemoryGate;
    Lease(MemoryGate* gate, uint64_t bytes) : gate_(gate), bytes_(bytes) {}
    void Release();
    MemoryGate* gate_ = nullptr;
    uint64_t bytes_ = 0;
  };

  using Clock = std::chrono::system_clock;

  // budget 0: no limit (every lease is granted at once).
  explicit MemoryGate(uint64_t budget_bytes) : budget_(budget_bytes) {}
  MemoryGate(const MemoryGate&) = delete;
  MemoryGate& operator=(const MemoryGate&) = delete;

  // Waits for `bytes` (at most the budget) to be free, checking `cancelled`
  // every 100 ms. RESOURCE_EXHAUSTED naming `what` once `deadline` passes,
  // CANCELLED once `cancelled` says so.
  absl::StatusOr<Lease> Acquire(uint64_t bytes, Clock::time_point deadline, const std::function<bool()>& cancelled,
                                std::string_view what);

  // Counts `bytes` (at most the budget) as in use at once, past the budget
  // if need be: for memory that exists already and cannot wait (a finished
  // shred's reply on its way to its client). Later Acquire()s wait for it.
  Lease Charge(uint64_t bytes);

  uint64_t budget() const { return budget_; }
  uint64_t in_use() const;
  uint64_t waits() const;  // leases that had to wait, since start

 private:
  void Return(uint64_t bytes);

  const uint64_t budget_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  uint64_t in_use_ = 0;
  std::list<uint64_t> queue_;  // waiting calls' tickets, in arrival order
  uint64_t next_ticket_ = 0;
  uint64_t waits_ = 0;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_MEMORY_GATE_H_
