#include "daemon/log/tile_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "daemon/base/fs_util.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/storage/space_guard.h"
#include "formats/keys.h"
#include "formats/note.h"
#include "formats/tlog.h"

namespace shredd {
namespace {

constexpr size_t kHashBytes = 32;

std::string_view HashBytes(const verify::Hash& h) {
  return std::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

}  // namespace

TileWriter::TileWriter(TransparencyLog* log, Options options) : log_(log), options_(std::move(options)) {}

TileWriter::~TileWriter() {
  {
    std::lock_guard l(signal_->mu);
    signal_->stop = true;
  }
  signal_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TileWriter::Start() {
  // The listener holds the signal, not the writer: it is safe to call after
  // the writer is gone.
  log_->SetGrowthListener([signal = signal_] {
    {
      std::lock_guard l(signal->mu);
      signal->dirty = true;
    }
    signal->cv.notify_one();
  });
  thread_ = std::thread([this] { Run(); });
}

TileWriter::Stats TileWriter::stats() const {
  std::lock_guard l(stats_mu_);
  return stats_;
}

void TileWriter::Run() {
  std::unique_lock l(signal_->mu);
  bool failing = false;
  for (;;) {
    const auto wait = failing ? options_.retry_interval : std::chrono::milliseconds(60000);
    signal_->cv.wait_for(l, wait, [this] { return signal_->dirty || signal_->stop; });
    if (signal_->stop) return;
    if (!signal_->dirty && !failing) continue;
    signal_->dirty = false;
    l.unlock();
    absl::Status s = Publish();
    {
      std::lock_guard sl(stats_mu_);
      stats_.failing = !s.ok();
      if (!s.ok()) ++stats_.failures;
    }
    if (!s.ok() && !failing) {
      LogWarning("log tiles: writing the tiles failed; the log itself is not affected, retrying",
                 {{"dir", options_.dir}, {"error", std::string(s.message())}});
    } else if (s.ok() && failing) {
      LogInfo("log tiles: written again", {{"dir", options_.dir}, {"tree_size", stats().published_size}});
    }
    failing = !s.ok();
    l.lock();
    // Coalesce a stream of appends into one publish per interval.
    signal_->cv.wait_for(l, options_.min_interval, [this] { return signal_->stop; });
    if (signal_->stop) return;
  }
}

bool TileWriter::Present(const std::string& rel, int64_t size) const {
  struct stat st {};
  const std::string path = StrCat(options_.dir, "/", rel);
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return size < 0 || st.st_size == size;
}

absl::Status TileWriter::WriteFileLocked(const std::string& rel, std::string_view data) {
  const std::string path = StrCat(options_.dir, "/", rel);
  const std::string dir = DirName(path);
  if (auto s = MakeDirs(dir, 0755); !s.ok()) return s;
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create", tmp, errno);
  absl::Status s = WriteAll(fd, data, tmp);
  if (s.ok() && fdatasync(fd) != 0) s = ErrnoStatus("cannot sync", tmp, errno);
  if (close(fd) != 0 && s.ok()) s = ErrnoStatus("cannot close", tmp, errno);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus("cannot rename to", path, errno);
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  dirty_dirs_.insert(dir);
  std::lock_guard l(stats_mu_);
  ++stats_.files_written;
  return absl::OkStatus();
}

absl::Status TileWriter::SyncDirsLocked() {
  // Children before parents does not matter for fsync; every directory a
  // file was renamed into, and the ones created on the way, once.
  std::set<std::string> all;
  for (const std::string& d : dirty_dirs_) {
    for (std::string p = d; p.size() >= options_.dir.size(); p = DirName(p)) {
      if (!all.insert(p).second || p == options_.dir) break;
    }
  }
  for (const std::string& d : all) {
    if (auto s = FsyncDir(d); !s.ok()) return s;
  }
  dirty_dirs_.clear();
  return absl::OkStatus();
}

absl::Status TileWriter::WriteTileLocked(const verify::TileRef& t) {
  const uint64_t first = t.n * verify::kTileWidth;
  std::string hashes;
  hashes.reserve(t.width * kHashBytes);
  if (t.level == 0) {
    std::vector<std::string> entries;
    entries.reserve(t.width);
    for (uint64_t i = first; i < first + t.width; ++i) {
      auto e = log_->Entry(i);
      if (!e.ok()) return e.status();
      hashes += HashBytes(verify::LeafHash(*e));
      entries.push_back(*std::move(e));
    }
    auto bundle = verify::EncodeEntryBundle(entries);
    if (bundle.ok()) {
      if (auto s = WriteFileLocked(verify::EntryBundlePath(t.n, t.width), *bundle); !s.ok()) return s;
    } else {
      LogWarning(
          "log tiles: an entry is too long for an entry bundle (at most 65535 bytes); this bundle is not "
          "written, the entries are served over gRPC (GetEntries)",
          {{"bundle", verify::EntryBundlePath(t.n, t.width)}, {"error", std::string(bundle.status().message())}});
      std::lock_guard l(stats_mu_);
      ++stats_.oversized_entries;
    }
  } else {
    for (uint64_t i = first; i < first + t.width; ++i) {
      auto h = log_->CompleteSubtreeHash(verify::kTileHeight * t.level, i);
      if (!h.ok()) return h.status();
      hashes += HashBytes(*h);
    }
  }
  return WriteFileLocked(verify::HashTilePath(t.level, t.n, t.width), hashes);
}

absl::Status TileWriter::CatchUpLocked() {
  if (auto s = MakeDirs(options_.dir, 0755); !s.ok()) return s;
  published_ = 0;
  checkpoint_current_ = false;
  const std::string cp_path = StrCat(options_.dir, "/", verify::kCheckpointPath);
  auto text = ReadSmallFile(cp_path);
  if (!text.ok()) {
    if (!absl::IsNotFound(text.status())) return text.status();
    LogInfo("log tiles: writing the log's tiles", {{"dir", options_.dir}, {"tree_size", log_->size()}});
    return absl::OkStatus();
  }
  auto verifier = verify::ParseNoteVerifierKey(log_->NoteVerifierKey());
  if (!verifier.ok()) return verifier.status();
  auto cp = verify::VerifyCheckpoint(*text, *verifier, log_->origin());
  std::string mismatch;
  if (!cp.ok()) {
    mismatch = std::string(cp.status().message());
  } else if (cp->size > log_->size()) {
    mismatch = StrCat("its tree size ", cp->size, " is beyond the log's ", log_->size());
  } else {
    auto root = log_->Root(cp->size);
    if (!root.ok()) return root.status();
    if (*root != cp->root) mismatch = StrCat("its root differs from the log's at tree size ", cp->size);
  }
  if (!mismatch.empty()) {
    LogWarning("log tiles: the directory holds a checkpoint of another tree; rewriting it from the log",
               {{"dir", options_.dir}, {"reason", mismatch}, {"tree_size", log_->size()}});
    return absl::OkStatus();
  }
  // Every tile and bundle the published tree needs, written if missing.
  uint64_t repaired = 0;
  for (const verify::TileRef& t : verify::TilesToPublish(0, cp->size)) {
    const bool tile_ok = Present(verify::HashTilePath(t.level, t.n, t.width), t.width * kHashBytes);
    const bool bundle_ok = t.level != 0 || Present(verify::EntryBundlePath(t.n, t.width), -1);
    if (tile_ok && bundle_ok) continue;
    if (auto s = WriteTileLocked(t); !s.ok()) return s;
    ++repaired;
  }
  if (auto s = SyncDirsLocked(); !s.ok()) return s;
  published_ = cp->size;
  checkpoint_current_ = true;  // the file holds the checkpoint of published_
  {
    std::lock_guard l(stats_mu_);
    stats_.published_size = cp->size;
  }
  LogInfo(
      "log tiles: caught up",
      {{"dir", options_.dir}, {"published_size", cp->size}, {"log_size", log_->size()}, {"tiles_repaired", repaired}});
  return absl::OkStatus();
}

absl::Status TileWriter::Publish() {
  std::lock_guard l(publish_mu_);
  if (options_.guard_free_space) {
    if (auto s = CheckFreeSpace(); !s.ok()) return s;
  }
  if (!caught_up_) {
    if (auto s = CatchUpLocked(); !s.ok()) return s;
    caught_up_ = true;
  }
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) return note.status();
  auto parsed = verify::ParseNote(*note);
  if (!parsed.ok()) return parsed.status();
  auto cp = verify::ParseCheckpointText(parsed->text);
  if (!cp.ok()) return cp.status();
  if (cp->size == published_ && checkpoint_current_) return absl::OkStatus();
  if (cp->size < published_) published_ = 0;  // cannot happen within one run; rewrite to be safe
  for (const verify::TileRef& t : verify::TilesToPublish(published_, cp->size)) {
    if (auto s = WriteTileLocked(t); !s.ok()) return s;
  }
  // The tiles are durable before the checkpoint that needs them appears.
  if (auto s = SyncDirsLocked(); !s.ok()) return s;
  if (auto s = WriteFileLocked(std::string(verify::kCheckpointPath), *note); !s.ok()) return s;
  if (auto s = SyncDirsLocked(); !s.ok()) return s;
  published_ = cp->size;
  checkpoint_current_ = true;
  std::lock_guard sl(stats_mu_);
  stats_.published_size = cp->size;
  ++stats_.publishes;
  return absl::OkStatus();
}

}  // namespace shredd
