// systemd's service watchdog (WatchdogSec=): sends WATCHDOG=1 every half
// interval, each time only after `probe` proves the daemon serves.
#ifndef SHREDD_DAEMON_APP_WATCHDOG_H_
#define SHREDD_DAEMON_APP_WATCHDOG_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

namespace shredd {

class ServiceWatchdog {
 public:
  // Null if systemd asked for no watchdog (WATCHDOG_USEC unset, or
  // WATCHDOG_PID names another process). `probe` runs on the watchdog
  // thread and must return within the interval; a failed probe is logged
  // and no ping is sent, so systemd restarts a daemon that stopped serving.
  static std::unique_ptr<ServiceWatchdog> StartIfEnabled(std::function<absl::Status()> probe);
  ~ServiceWatchdog();  // stops the thread (after a probe in progress)
  ServiceWatchdog(const ServiceWatchdog&) = delete;
  ServiceWatchdog& operator=(const ServiceWatchdog&) = delete;
  std::chrono::microseconds interval() const { return interval_; }

 private:
  ServiceWatchdog(std::chrono::microseconds interval, std::function<absl::Status()> probe)
      : interval_(interval), probe_(std::move(probe)) {}
  void Loop();

  const std::chrono::microseconds interval_;
  const std::function<absl::Status()> probe_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_WATCHDOG_H_
