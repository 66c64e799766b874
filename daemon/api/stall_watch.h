// Transfers that stop moving give their memory back.
//
// A download whose client stops reading (`shredctl get D | less`, and the
// user walks away) blocks in Write on HTTP/2 flow control, and an upload
// whose client stops sending blocks in Read; either holds its transfer
// memory lease (daemon/base/memory_gate.h) for as long as its client lives,
// so a few idle pagers would stall every other transfer. (Manifest and
// subject-map streams hold no lease, but a call slot of [server] max_calls
// and a RocksDB iterator.) A watched call
// that makes no progress for `limit` is cancelled (gRPC TryCancel: its
// client sees CANCELLED), its handler returns and its lease with it.
// Counted in shredd_transfers_stalled_total and logged.
#ifndef SHREDD_DAEMON_API_STALL_WATCH_H_
#define SHREDD_DAEMON_API_STALL_WATCH_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/server_context.h>

namespace shredd {

class StallWatch {
  struct Entry;

 public:
  // `limit` zero: nothing is ever cancelled (Watch still works).
  explicit StallWatch(std::chrono::milliseconds limit);
  ~StallWatch();
  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;

  // Watches one call while it lives; Moved() after each message. Inert
  // (never stalled) when made by Watch(nullptr, ...).
  class Watched {
   public:
    Watched(Watched&& o) noexcept : watch_(o.watch_), it_(o.it_) { o.watch_ = nullptr; }
    Watched& operator=(Watched&&) = delete;
    ~Watched();
    void Moved();
    bool stalled() const;  // cancelled by the watch

   private:
    friend class StallWatch;
    Watched(StallWatch* watch, std::list<Entry>::iterator it) : watch_(watch), it_(it) {}
    StallWatch* watch_;
    std::list<Entry>::iterator it_;
  };
  static Watched Watch(StallWatch* watch, grpc::ServerContextBase* ctx, std::string what);

 private:
  struct Entry {
    grpc::ServerContextBase* ctx;
    std::string what;
    std::atomic<int64_t> last_ns;
    std::atomic<bool> stalled{false};
  };
  static int64_t NowNs();
  void Run();

  const std::chrono::milliseconds limit_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::list<Entry> entries_;
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_STALL_WATCH_H_
