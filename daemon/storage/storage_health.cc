#include "daemon/storage/storage_health.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "daemon/base/logging.h"
#include "daemon/storage/space_guard.h"

namespace shredd {
namespace {

std::string_view ReasonName(rocksdb::BackgroundErrorReason r) {
  switch (r) {
    case rocksdb::BackgroundErrorReason::kFlush:
      return "flush";
    case rocksdb::BackgroundErrorReason::kCompaction:
      return "compaction";
    case rocksdb::BackgroundErrorReason::kWriteCallback:
      return "write";
    case rocksdb::BackgroundErrorReason::kMemTable:
      return "memtable";
    case rocksdb::BackgroundErrorReason::kManifestWrite:
      return "manifest write";
    case rocksdb::BackgroundErrorReason::kFlushNoWAL:
      return "flush";
    case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL:
      return "manifest write";
  }
  return "other";
}

std::string_view SeverityName(rocksdb::Status::Severity s) {
  switch (s) {
    case rocksdb::Status::Severity::kNoError:
      return "unclassified";
    case rocksdb::Status::Severity::kSoftError:
      return "soft";
    case rocksdb::Status::Severity::kHardError:
      return "hard";
    case rocksdb::Status::Severity::kFatalError:
      return "fatal";
    case rocksdb::Status::Severity::kUnrecoverableError:
      return "unrecoverable";
    default:
      return "unknown";
  }
}

}  // namespace

// ------------------------------------------------------------ info log

void RocksInfoLogger::Logv(const char* format, va_list ap) { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }

void RocksInfoLogger::Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, format, ap);
  if (n < 0) return;
  std::string_view text(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  // The daemon reports a failed open itself (one line, with the reason).
  if (text.find("DB::Open() failed") != std::string_view::npos) return;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  const LogLevel l = level >= rocksdb::InfoLogLevel::ERROR_LEVEL  ? LogLevel::kError
                     : level == rocksdb::InfoLogLevel::WARN_LEVEL ? LogLevel::kWarning
                                                                  : LogLevel::kInfo;
  LogEvent(l, "rocksdb", {{"message", text}});
}

// ------------------------------------------------------------ listener

void StorageHealth::Install(const std::shared_ptr<StorageHealth>& self, rocksdb::Options* options) {
  // SHREDD_ROCKSDB_LOG=info: RocksDB's running commentary too (diagnosis).
  const char* env = std::getenv("SHREDD_ROCKSDB_LOG");
  const auto level = env != nullptr && std::string_view(env) == "info" ? rocksdb::InfoLogLevel::INFO_LEVEL
                                                                       : rocksdb::InfoLogLevel::WARN_LEVEL;
  auto logger = std::make_shared<RocksInfoLogger>();
  logger->SetInfoLogLevel(level);
  options->info_log = logger;
  options->info_log_level = level;
  options->listeners.push_back(self);
}

void StorageHealth::OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status, bool* auto_recovery) {
  // RocksDB would leave the recovery from a no-space error to its
  // SstFileManager, which (in the 7.8 build here) polled for ever and never
  // resumed after space was freed, while refusing manual DB::Resume() calls
  // as "busy". The StorageMonitor's DB::Resume() every few seconds does it
  // instead (tests/integration/test_disk_full.py).
  if (auto_recovery != nullptr) *auto_recovery = false;
}

StorageState StorageHealth::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

void StorageHealth::Changed() {
  version_.fetch_add(1);
  cv_.notify_all();
}

void StorageHealth::OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* bg_error) {
  if (bg_error == nullptr || bg_error->ok()) return;
  errors_.fetch_add(1);
  const auto severity = bg_error->severity();
  const std::string what = bg_error->ToString();
  if (severity == rocksdb::Status::Severity::kSoftError) {
    // Background work (compaction) stops; writes go on.
    LogWarning("storage: background work stopped", {{"during", ReasonName(reason)}, {"reason", what}});
    return;
  }
  // Anything else may stop writes; the monitor's DB::Resume() finds out
  // (it answers OK at once for a database that takes writes). Logged when
  // writes stop; the failures of each resume attempt are only counted.
  const bool recoverable = severity < rocksdb::Status::Severity::kFatalError;
  // (DB::Resume() refuses fatal and unrecoverable errors: only a restart helps.)
  std::lock_guard lock(mu_);
  if (state_.writable || (state_.recoverable && !recoverable)) {
    LogError("storage: writes are stopped",
             {{"during", ReasonName(reason)},
              {"severity", SeverityName(severity)},
              {"reason", what},
              {"recovery", recoverable ? "automatic, once the cause is gone (e.g. space freed in the data dir)"
                                       : "none: restart the daemon"}});
  }
  state_.writable = false;
  state_.recoverable = state_.recoverable && recoverable;
  state_.reason = what;
  Changed();
}
void StorageHealth::OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) {
  if (info.new_bg_error.ok()) {
    MarkWritable("RocksDB's recovery");
    return;
  }
  std::lock_guard lock(mu_);
  state_.reason = info.new_bg_error.ToString();
  Changed();
}

void StorageHealth::MarkWritable(std::string_view how) {
  std::lock_guard lock(mu_);
  if (state_.writable) return;
  LogInfo("storage: writes resumed", {{"by", how}, {"after", state_.reason}});
  state_ = StorageState{};
  Changed();
}

void StorageHealth::WaitForChange(std::chrono::milliseconds timeout, uint64_t seen) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return version_.load() != seen; });
}

void StorageHealth::Wake() {
  std::lock_guard lock(mu_);
  Changed();
}

// ------------------------------------------------------------ monitor

StorageMonitor::StorageMonitor(rocksdb::DB* db, StorageHealth* health, OnChange on_change,
                               std::chrono::milliseconds resume_interval)
    : db_(db), health_(health), on_change_(std::move(on_change)), resume_interval_(resume_interval) {
  SetSpaceGuardListener([health] { health->Wake(); });
  thread_ = std::thread([this] { Loop(); });
}

StorageMonitor::~StorageMonitor() {
  SetSpaceGuardListener(nullptr);
  stop_.store(true);
  health_->Wake();
  if (thread_.joinable()) thread_.join();
}

void StorageMonitor::Loop() {
  StorageState reported;  // writable: what the daemon says when it starts serving
  auto next_resume_log = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    const uint64_t seen = health_->version();
    StorageState st = health_->state();
    // The free-space guard refusing writes (space_guard.h) is a stop too,
    // one that needs no DB::Resume: it ends when space is freed.
    bool guard_stop = false;
    if (st.writable) {
      if (auto refusal = SpaceGuardRefusal()) {
        st.writable = false;
        st.reason = *refusal;
        guard_stop = true;
      }
    }
    // A stop is reported before the first DB::Resume(), which comes one
    // resume interval later: on a disk that stays full every write stops the
    // database again at once, and reporting only after a failed Resume left
    // health saying SERVING through most of it.
    const bool changed = st.writable != reported.writable || st.recoverable != reported.recoverable;
    if (changed) {
      if (guard_stop) health_->set_guard_stopped(true);
      on_change_(st);
      if (!guard_stop) health_->set_guard_stopped(false);
      reported = st;
    }
    if (!st.writable && st.recoverable && !changed && !guard_stop) {
      // OK: writes work (again). Busy: RocksDB's own recovery is running.
      rocksdb::Status s = db_->Resume();
      if (s.ok()) {
        health_->MarkWritable("DB::Resume");
        continue;
      }
      // Logged at most once a minute: on a disk still full every attempt fails.
      const auto now = std::chrono::steady_clock::now();
      if (!s.IsBusy() && now >= next_resume_log) {
        next_resume_log = now + std::chrono::minutes(1);
        LogWarning("storage: resuming writes failed; retrying every few seconds", {{"reason", s.ToString()}});
      }
    }
    health_->WaitForChange(st.writable ? std::chrono::milliseconds(60000) : resume_interval_, seen);
  }
}

}  // namespace shredd
