#include "daemon/app/watchdog.h"

#include <string>

#include <systemd/sd-daemon.h>

#include "daemon/base/logging.h"

namespace shredd {

std::unique_ptr<ServiceWatchdog> ServiceWatchdog::StartIfEnabled(std::function<absl::Status()> probe) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return nullptr;
  std::unique_ptr<ServiceWatchdog> w(new ServiceWatchdog(std::chrono::microseconds(usec), std::move(probe)));
  w->thread_ = std::thread([p = w.get()] { p->Loop(); });
  return w;
}

ServiceWatchdog::~ServiceWatchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ServiceWatchdog::Loop() {
  const auto period = interval_ / 2;
  bool failing = false;
  for (;;) {
    absl::Status s = probe_();
    if (s.ok()) {
      sd_notify(0, "WATCHDOG=1");
      if (failing) LogInfo("watchdog probe succeeds again");
      failing = false;
    } else if (!failing) {
      // Logged once per failure streak; systemd acts after WatchdogSec.
      LogError("watchdog probe failed, not pinging systemd", {{"reason", std::string(s.message())}});
      failing = true;
    }
    std::unique_lock lock(mu_);
    if (stop_cv_.wait_for(lock, period, [&] { return stop_; })) return;
  }
}

}  // namespace shredd
