#include "daemon/log/tile_writer.h"

#include <vector>

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

TileWriter::TileWriter(TransparencyLog* log, std::unique_ptr<TileStore> store, Options options)
    : log_(log), store_(std::move(store)), options_(std::move(options)) {}

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
  log_->AddGrowthListener([signal = signal_] {
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
                 {{"tiles", store_->where()}, {"error", std::string(s.message())}});
    } else if (s.ok() && failing) {
      LogInfo("log tiles: written again", {{"tiles", store_->where()}, {"tree_size", stats().published_size}});
    }
    failing = !s.ok();
    l.lock();
    // Coalesce a stream of appends into one publish per interval.
    signal_->cv.wait_for(l, options_.min_interval, [this] { return signal_->stop; });
    if (signal_->stop) return;
  }
}

absl::Status TileWriter::WriteFileLocked(const std::string& rel, std::string_view data) {
  if (auto s = store_->Write(rel, data); !s.ok()) return s;
  std::lock_guard l(stats_mu_);
  ++stats_.files_written;
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
  if (auto s = store_->Prepare(); !s.ok()) return s;
  published_ = 0;
  checkpoint_current_ = false;
  auto text = store_->Read(std::string(verify::kCheckpointPath));
  if (!text.ok()) {
    if (!absl::IsNotFound(text.status())) return text.status();
    LogInfo("log tiles: writing the log's tiles", {{"tiles", store_->where()}, {"tree_size", log_->size()}});
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
    LogWarning("log tiles: the tiles hold a checkpoint of another tree; rewriting them from the log",
               {{"tiles", store_->where()}, {"reason", mismatch}, {"tree_size", log_->size()}});
    return absl::OkStatus();
  }
  return RepairLocked(cp->size);
}

// Whether tile `t` (and, with `bundle`, its entry bundle) holds what the
// log holds: each hash equal to the log's stored hash, each bundle entry's
// leaf hash the log's. One point lookup per hash in the tile.
absl::StatusOr<bool> TileWriter::MatchesLogLocked(const verify::TileRef& t, bool bundle) {
  auto data = store_->Read(verify::HashTilePath(t.level, t.n, t.width));
  if (!data.ok()) return absl::IsNotFound(data.status()) ? absl::StatusOr<bool>(false) : data.status();
  if (data->size() != t.width * kHashBytes) return false;
  const uint64_t first = t.n * verify::kTileWidth;
  for (unsigned i = 0; i < t.width; ++i) {
    auto h = log_->CompleteSubtreeHash(verify::kTileHeight * t.level, first + i);
    if (!h.ok()) return h.status();
    if (std::string_view(*data).substr(i * kHashBytes, kHashBytes) != HashBytes(*h)) return false;
  }
  if (!bundle) return true;
  auto b = store_->Read(verify::EntryBundlePath(t.n, t.width));
  if (!b.ok()) return absl::IsNotFound(b.status()) ? absl::StatusOr<bool>(false) : b.status();
  auto entries = verify::ParseEntryBundle(*b, t.width);
  if (!entries.ok()) return false;
  for (unsigned i = 0; i < t.width; ++i) {
    if (std::string_view(*data).substr(i * kHashBytes, kHashBytes) != HashBytes(verify::LeafHash((*entries)[i]))) {
      return false;
    }
  }
  return true;
}

// Every tile and bundle the published tree of `size` needs, written if
// missing, of the wrong length, or (hash tiles of level >= 1, and the last
// kRepairCheckedLevel0 + 1 level-0 tiles and bundles) holding other bytes
// than the log's (docs/LOG.md "Tiles": what catch-up reads, and why not
// every bundle).
absl::Status TileWriter::RepairLocked(uint64_t size) {
  const std::vector<verify::TileRef> tiles = verify::TilesToPublish(0, size);
  std::vector<std::string> rels;
  for (const verify::TileRef& t : tiles) {
    rels.push_back(verify::HashTilePath(t.level, t.n, t.width));
    rels.push_back(t.level == 0 ? verify::EntryBundlePath(t.n, t.width) : std::string());
  }
  auto sizes = store_->Sizes(rels);
  if (!sizes.ok()) return sizes.status();
  const uint64_t level0_tiles = (size + verify::kTileWidth - 1) / verify::kTileWidth;
  uint64_t repaired = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    const verify::TileRef& t = tiles[i];
    const bool tile_ok = (*sizes)[2 * i] == static_cast<int64_t>(t.width * kHashBytes);
    const bool bundle_ok = t.level != 0 || (*sizes)[2 * i + 1] >= 0;
    bool ok = tile_ok && bundle_ok;
    if (ok && (t.level != 0 || t.n + kRepairCheckedLevel0 + 1 >= level0_tiles)) {
      auto same = MatchesLogLocked(t, t.level == 0);
      if (!same.ok()) return same.status();
      ok = *same;
    }
    if (ok) continue;
    if (auto s = WriteTileLocked(t); !s.ok()) return s;
    ++repaired;
  }
  if (auto s = store_->Sync(); !s.ok()) return s;
  published_ = size;
  checkpoint_current_ = true;  // the store holds the checkpoint of published_
  {
    std::lock_guard l(stats_mu_);
    stats_.published_size = size;
  }
  LogInfo(
      "log tiles: caught up",
      {{"tiles", store_->where()}, {"published_size", size}, {"log_size", log_->size()}, {"tiles_repaired", repaired}});
  return absl::OkStatus();
}

// The tiles of `written` that are full and were partial at `old_size`: their
// partial versions are no longer needed by the latest checkpoint.
void TileWriter::RemovePartialsLocked(const std::vector<verify::TileRef>& written, uint64_t old_size) {
  for (const verify::TileRef& t : written) {
    if (t.width != verify::kTileWidth || verify::TileWidthAt(t.level, t.n, old_size) == 0) continue;
    absl::Status s = store_->RemovePartials(verify::HashTilePath(t.level, t.n, t.width));
    if (s.ok() && t.level == 0) s = store_->RemovePartials(verify::EntryBundlePath(t.n, t.width));
    if (!s.ok()) {
      LogWarning("log tiles: cannot remove partial tiles that a full tile replaced (harmless; left in place)",
                 {{"tiles", store_->where()}, {"error", std::string(s.message())}});
      return;
    }
    std::lock_guard l(stats_mu_);
    ++stats_.partials_removed;
  }
}

absl::Status TileWriter::Publish() {
  std::lock_guard l(publish_mu_);
  if (store_->guard_free_space()) {
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
  const std::vector<verify::TileRef> tiles = verify::TilesToPublish(published_, cp->size);
  for (const verify::TileRef& t : tiles) {
    if (auto s = WriteTileLocked(t); !s.ok()) return s;
  }
  // The tiles are durable before the checkpoint that needs them appears.
  if (auto s = store_->Sync(); !s.ok()) return s;
  if (auto s = WriteFileLocked(std::string(verify::kCheckpointPath), *note); !s.ok()) return s;
  if (auto s = store_->Sync(); !s.ok()) return s;
  const uint64_t old_size = published_;
  published_ = cp->size;
  checkpoint_current_ = true;
  {
    std::lock_guard sl(stats_mu_);
    stats_.published_size = cp->size;
    ++stats_.publishes;
  }
  RemovePartialsLocked(tiles, old_size);
  return absl::OkStatus();
}

}  // namespace shredd
