#include "client/progress.h"

#include <unistd.h>

#include <cstdio>

namespace shredd::cli {

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled && isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() { Finish(); }

void Progress::Add(uint64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - start_ < std::chrono::milliseconds(500) || now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  Draw(false);
}

void Progress::Clear() {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\x1b[K", stderr);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (enabled_ && drawn_) {
    Draw(true);
    std::fputc('\n', stderr);
  }
  enabled_ = false;
}

void Progress::Draw(bool final) {
  drawn_ = true;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  int width = 30, filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(static_cast<size_t>(width), '.');
  double mbps = secs > 0 ? static_cast<double>(done_) / secs / 1e6 : 0;
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %.0f/%.0f MB %.0f MB/s", label_.c_str(), bar.c_str(), frac * 100,
               static_cast<double>(done_) / 1e6, static_cast<double>(total_) / 1e6, mbps);
  std::fflush(stderr);
}

}  // namespace shredd::cli
