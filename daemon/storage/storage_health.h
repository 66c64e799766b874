// Whether RocksDB takes writes, and getting them back after a full disk.
//
// When a write or a flush fails (ENOSPC, EIO, ...) RocksDB records a
// "background error" and refuses every later write with it until the error
// is cleared: a full disk stops all writes, while reads go on. This file
//   - routes RocksDB's info log to shredd's logger (RocksInfoLogger), so that
//     RocksDB does not write its own LOG file into the data dir (on a full
//     disk that file's writer aborted the process);
//   - records background errors and their recovery (StorageHealth, a
//     RocksDB EventListener), logging both;
//   - runs StorageMonitor, a thread that, while writes are stopped, asks
//     RocksDB to resume (DB::Resume) every few seconds (RocksDB's own
//     no-space recovery is turned off: it never resumed here) and reports each change
//     of state (the daemon sets its gRPC health status and systemd STATUS from
//     it, see server.cc and docs/SERVICE.md "Full disk").
#ifndef SHREDD_DAEMON_STORAGE_STORAGE_HEALTH_H_
#define SHREDD_DAEMON_STORAGE_STORAGE_HEALTH_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>

namespace shredd {

// RocksDB's info log, as shredd log lines ("rocksdb" events): warnings and
// errors only (RocksDB's info level is a running commentary of flushes and
// compactions).
class RocksInfoLogger final : public rocksdb::Logger {
 public:
  RocksInfoLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void LogHeader(const char*, va_list) override {}  // the options dump at open
  void Logv(const char* format, va_list ap) override;
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override;
};

struct StorageState {
  bool writable = true;
  // False once RocksDB reports an error it cannot recover from without a
  // restart (severity fatal or unrecoverable).
  bool recoverable = true;
  std::string reason;  // RocksDB's message, e.g. "IO error: No space left on device: ..."
};

class StorageHealth final : public rocksdb::EventListener {
 public:
  // Sets `options`' info log and listener. `self` must be
  // this object (RocksDB keeps a shared_ptr to its listeners).
  static void Install(const std::shared_ptr<StorageHealth>& self, rocksdb::Options* options);

  StorageState state() const;
  uint64_t errors() const { return errors_.load(); }  // background errors seen
  // Marks writes as working again (DB::Resume succeeded); logs it.
  void MarkWritable(std::string_view how);
  // Waits until the state changes from version `seen`, Wake() is called,
  // or `timeout` passes.
  void WaitForChange(std::chrono::milliseconds timeout, uint64_t seen);
  void Wake();
  uint64_t version() const { return version_.load(); }
  // Whether the free-space guard (space_guard.h) stops writes that add data,
  // as last reported to health checks by the StorageMonitor: set before it
  // reports NOT_SERVING, cleared after it reports SERVING again, so a probe
  // that sees NOT_SERVING also sees why.
  bool guard_stopped() const { return guard_stopped_.load(); }
  void set_guard_stopped(bool stopped) { guard_stopped_.store(stopped); }

  // rocksdb::EventListener
  const char* Name() const override { return "shredd.StorageHealth"; }
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* bg_error) override;
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status bg_error,
                            bool* auto_recovery) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  void Changed();  // requires mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  StorageState state_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> version_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<bool> guard_stopped_{false};
};

// Watches a StorageHealth; see the file comment.
class StorageMonitor {
 public:
  using OnChange = std::function<void(const StorageState&)>;
  // `db` and `health` must outlive the monitor. `on_change` runs on the
  // monitor's thread after every change of state (writes stop, resume).
  StorageMonitor(rocksdb::DB* db, StorageHealth* health, OnChange on_change,
                 std::chrono::milliseconds resume_interval = std::chrono::seconds(2));
  ~StorageMonitor();  // stops the thread
  StorageMonitor(const StorageMonitor&) = delete;
  StorageMonitor& operator=(const StorageMonitor&) = delete;

 private:
  void Loop();

  rocksdb::DB* const db_;
  StorageHealth* const health_;
  const OnChange on_change_;
  const std::chrono::milliseconds resume_interval_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_STORAGE_HEALTH_H_
