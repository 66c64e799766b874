// A one-line progress bar on stderr for long transfers. Silent when stderr is
// not a terminal, and for transfers that finish within half a second.
#ifndef SHREDD_CLIENT_PROGRESS_H_
#define SHREDD_CLIENT_PROGRESS_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace shredd::cli {

class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  ~Progress();
  void Add(uint64_t n);
  // Takes back bytes counted for an attempt that is made again.
  void Rewind(uint64_t n) { done_ -= std::min(n, done_); }
  // Erases the bar, if drawn, so that a line can be printed; the next Add
  // draws it again.
  void Clear();
  void Finish();

 private:
  void Draw(bool final);
  std::string label_;
  uint64_t total_, done_ = 0;
  bool enabled_, drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_PROGRESS_H_
