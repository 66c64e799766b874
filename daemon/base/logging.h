// Structured event logs: one line per event on stderr.
//
//   text: shredd: <msg> key=value key="value with spaces"
//   json: {"ts":"2026-01-02T03:04:05.678Z","level":"info","msg":"<msg>","key":value,...}
//
// Under journald (JOURNAL_STREAM names our stderr) text lines carry a
// "<N>" priority prefix so that journald records the level.
//
// What may go into a field: ids the daemon made or the operator chose (order
// ids, certificate ids, epochs), counts, durations, paths and addresses from
// the config. Never: key material, PINs, content digests of items, subject
// ids, labels, dataset or file names. Callers are responsible; there is no
// filter here.
#ifndef SHREDD_DAEMON_BASE_LOGGING_H_
#define SHREDD_DAEMON_BASE_LOGGING_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace shredd {

enum class LogLevel { kInfo, kWarning, kError };

// The config key [server] log_format (parsed in daemon/config/config.h).
enum class LogFormat { kText, kJson };

// One key=value of an event. Numbers stay numbers in JSON.
class LogField {
 public:
  LogField(std::string_view key, std::string_view value) : key_(key), text_(value), quoted_(true) {}
  LogField(std::string_view key, const char* value) : LogField(key, std::string_view(value)) {}
  LogField(std::string_view key, const std::string& value) : LogField(key, std::string_view(value)) {}
  LogField(std::string_view key, bool value) : key_(key), text_(value ? "true" : "false"), quoted_(false) {}
  template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) LogField(std::string_view key, T value)
      : key_(key), text_(std::to_string(value)), quoted_(false) {}
  LogField(std::string_view key, double value);

  std::string_view key() const { return key_; }
  std::string_view text() const { return text_; }
  bool quoted() const { return quoted_; }  // a string, not a number or boolean

 private:
  std::string_view key_;
  std::string text_;
  bool quoted_;
};

// Takes effect for the next line; safe to call from any thread (SIGHUP).
void SetLogFormat(LogFormat format);
LogFormat GetLogFormat();

// Writes one line to stderr with a single write(2), so lines of concurrent
// events never interleave.
void LogEvent(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});
inline void LogInfo(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  LogEvent(LogLevel::kInfo, msg, fields);
}
inline void LogWarning(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  LogEvent(LogLevel::kWarning, msg, fields);
}
inline void LogError(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  LogEvent(LogLevel::kError, msg, fields);
}

// The line LogEvent would write (without the newline), for tests.
std::string FormatLogLine(LogFormat format, LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields, bool journald_prefix = false);

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_LOGGING_H_
