// BackoffRetrier: runs an attempt on its own thread until it succeeds,
// waiting longer after each failure (exponential backoff), and again
// whenever kicked.
#ifndef SHREDD_DAEMON_BASE_BACKOFF_RETRY_H_
#define SHREDD_DAEMON_BASE_BACKOFF_RETRY_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

namespace shredd {

class BackoffRetrier {
 public:
  struct Options {
    std::chrono::milliseconds initial{500};  // wait after the first failure
    std::chrono::milliseconds max{30000};    // the wait doubles up to this
  };
  // `attempt` returns OK when there is nothing (left) to do; the thread then
  // sleeps until Kick(). It starts idle.
  BackoffRetrier(std::function<absl::Status()> attempt, Options options);
  ~BackoffRetrier();  // stops (after an attempt in progress) and joins
  BackoffRetrier(const BackoffRetrier&) = delete;
  BackoffRetrier& operator=(const BackoffRetrier&) = delete;

  // Attempts as soon as possible, with the backoff reset.
  void Kick();
  // Attempts made so far (for tests).
  uint64_t attempts() const;

 private:
  void Loop();

  const std::function<absl::Status()> attempt_;
  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_BACKOFF_RETRY_H_
