#include "daemon/base/logging.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"

namespace shredd {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

// True if stderr is the stream journald gave us (JOURNAL_STREAM=dev:ino).
bool StderrIsJournal() {
  static const bool journal = [] {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
  }();
  return journal;
}

std::string_view LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// sd-daemon(3) priority prefixes: <3> error, <4> warning, <6> info.
std::string_view JournalPrefix(LogLevel l) {
  switch (l) {
    case LogLevel::kInfo:
      return "<6>";
    case LogLevel::kWarning:
      return "<4>";
    case LogLevel::kError:
      return "<3>";
  }
  return "<6>";
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void AppendText(std::string* out, std::string_view v) {
  if (!NeedsQuotes(v)) {
    out->append(v);
    return;
  }
  // JSON string escaping keeps the line one line and unambiguous.
  out->append(nlohmann::json(std::string(v)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

LogField::LogField(std::string_view key, double value) : key_(key), quoted_(false) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  text_ = buf;
}

void SetLogFormat(LogFormat format) { g_format.store(format, std::memory_order_relaxed); }
LogFormat GetLogFormat() { return g_format.load(std::memory_order_relaxed); }

std::string FormatLogLine(LogFormat format, LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields, bool journald_prefix) {
  std::string line;
  if (format == LogFormat::kJson) {
    nlohmann::ordered_json j;
    j["ts"] = FormatRfc3339(absl::Now());
    j["level"] = LevelName(level);
    j["msg"] = msg;
    for (const auto& f : fields) {
      std::string key(f.key());
      if (key == "ts" || key == "level" || key == "msg") key = "field_" + key;
      if (f.quoted()) {
        j[key] = f.text();
      } else {
        auto v = nlohmann::ordered_json::parse(f.text(), nullptr, false);
        if (v.is_discarded()) {
          j[key] = f.text();  // e.g. a NaN duration: JSON has no number for it
        } else {
          j[key] = std::move(v);
        }
      }
    }
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return line;
  }
  if (journald_prefix) line.append(JournalPrefix(level));
  line.append("shredd: ");
  if (level == LogLevel::kWarning) line.append("warning: ");
  line.append(msg);
  for (const auto& f : fields) {
    line.push_back(' ');
    line.append(f.key());
    line.push_back('=');
    if (f.quoted()) {
      AppendText(&line, f.text());
    } else {
      line.append(f.text());
    }
  }
  return line;
}

void LogEvent(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  std::string line = FormatLogLine(GetLogFormat(), level, msg, fields, StderrIsJournal());
  line.push_back('\n');
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace shredd
