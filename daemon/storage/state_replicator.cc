#include "daemon/storage/state_replicator.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/time/clock.h"
#include <nlohmann/json.hpp>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include "daemon/base/coding.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/state_objects.h"

namespace shredd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxWalObjectBytes = 16 << 20;
// The write capture keeps at most this much (in sync mode, shipments follow
// the writes closely: a few group commits' batches); beyond, and for what it
// does not hold, the WAL reader ships.
constexpr size_t kMaxCapturedBytes = 32 << 20;
// How long a shipment waits for batches already written whose writers have
// not yet handed them over (they are between db->Write and EndWrite).
constexpr std::chrono::milliseconds kCaptureWait{200};

// A checkpoint file, mapped read-only: hashed and uploaded straight from
// the page cache. (Reading table files into fresh buffers was 8-10 % of the
// daemon's CPU in a sync bulk ingest, its periodic snapshot: zeroing the
// buffer, a page fault per 4 KiB, the copy; and the hash read them again.)
// Checkpoint files are hard links to files RocksDB no longer writes.
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(StrCat("cannot read ", path, ": ", std::strerror(errno)));
    struct stat st {};
    void* p = nullptr;
    int err = 0;
    if (::fstat(fd, &st) != 0) {
      p = MAP_FAILED;
      err = errno;
    } else if (st.st_size > 0) {
      p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      err = errno;
    }
    ::close(fd);
    if (p == MAP_FAILED) return absl::InternalError(StrCat("cannot map ", path, ": ", std::strerror(err)));
    auto f = std::unique_ptr<MappedFile>(new MappedFile);
    f->data_ = static_cast<const char*>(p);
    f->size_ = p == nullptr ? 0 : static_cast<size_t>(st.st_size);
    if (f->size_ > 0) ::madvise(p, f->size_, MADV_SEQUENTIAL);
    return f;
  }
  ~MappedFile() {
    if (size_ > 0) ::munmap(const_cast<char*>(data_), size_);
  }
  std::string_view bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

bool IsTableFile(std::string_view name) { return name.ends_with(".sst") || name.ends_with(".blob"); }

}  // namespace

// ---- the replicator ---------------------------------------------------------------

StateReplicator::StateReplicator(std::shared_ptr<S3Client> client, StateReplicatorOptions options)
    : client_(std::move(client)), options_(std::move(options)) {
  run_.id = NewStateRunId();
  run_.parent = options_.parent_run;
  if (options_.sync) capture_ = std::make_unique<WalCapture>(kMaxCapturedBytes);
}

uint64_t StateReplicator::BeginWrite() { return capture_ ? capture_->Begin() : 0; }

void StateReplicator::EndWrite(uint64_t ticket, const rocksdb::WriteOptions& wo, const rocksdb::WriteBatch& batch,
                               bool ok) {
  if (capture_) capture_->End(ticket, ok && !wo.disableWAL ? &batch : nullptr);
}

absl::StatusOr<std::unique_ptr<StateReplicator>> StateReplicator::Create(std::shared_ptr<S3Client> client,
                                                                         StateReplicatorOptions options) {
  if (client == nullptr) return absl::InvalidArgumentError("state replication needs an object store client");
  if (options.scratch_dir.empty()) return absl::InvalidArgumentError("state replication needs a scratch dir");
  if (options.snapshot_table_factor < 1) return absl::InvalidArgumentError("snapshot_table_factor must be >= 1");
  if (options.lag.count() < 10 || options.lag.count() > 3600 * 1000) {
    return absl::InvalidArgumentError(StrCat("state replication lag must be 10 ms .. 1 h, got ", options.lag.count()));
  }
  return std::unique_ptr<StateReplicator>(new StateReplicator(std::move(client), std::move(options)));
}

StateReplicator::~StateReplicator() { Stop(); }

void StateReplicator::Start(rocksdb::DB* db) {
  std::lock_guard l(mu_);
  if (started_) return;
  db_ = db;
  if (!fork_known_) run_.fork = db->GetLatestSequenceNumber();
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void StateReplicator::Stop() {
  {
    std::lock_guard l(mu_);
    if (!started_ || stop_) return;
    stop_ = true;
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Leaders still putting their objects use this object until they are done.
  std::unique_lock l(mu_);
  done_cv_.wait(l, [this] { return AllFlightsDoneLocked(); });
}

uint64_t StateReplicator::replicated_seq() const {
  std::lock_guard l(mu_);
  return replicated_;
}

absl::Status StateReplicator::last_error() const {
  std::lock_guard l(mu_);
  return last_error_;
}

void StateReplicator::Published(uint64_t seq) {
  std::lock_guard l(mu_);
  replicated_ = std::max(replicated_, seq);
  last_error_ = absl::OkStatus();
  done_cv_.notify_all();
}

bool StateReplicator::AllFlightsDoneLocked() const {
  return std::all_of(flights_.begin(), flights_.end(), [](const auto& f) { return f.second.done; });
}

size_t StateReplicator::RoomLocked() const { return kMaxInFlight - std::min(kMaxInFlight, flights_.size()); }

absl::Status StateReplicator::WaitReplicated(uint64_t seq) {
  std::unique_lock l(mu_);
  if (replicated_ >= seq) return absl::OkStatus();
  if (!started_ || stop_) return absl::UnavailableError("state replication to the object store is not running");
  // While the store is down, fail at once rather than queue every caller
  // behind the retries (the next attempt is at most a few seconds away).
  if (!last_error_.ok() && Clock::now() - last_failure_ < std::chrono::seconds(1)) {
    return absl::UnavailableError(StrCat("state replication is failing: ", last_error_.message()));
  }
  wanted_ = std::max(wanted_, seq);
  const uint64_t failures = failures_;
  const auto deadline = Clock::now() + options_.wait_timeout;
  while (replicated_ < seq) {
    if (stop_) return absl::UnavailableError("state replication stopped");
    if (failures_ != failures) {
      return absl::UnavailableError(StrCat("state replication is failing: ", last_error_.message()));
    }
    if (!shipping_ && leader_ok_ && !rewind_ && dispatched_ < seq && RoomLocked() > 0) {
      if (auto s = LeadShipment(l); !s.ok()) return s;
      continue;
    }
    if (!leader_ok_) work_cv_.notify_all();
    if (done_cv_.wait_until(l, deadline) == std::cv_status::timeout && replicated_ < seq) {
      return absl::UnavailableError(
          StrCat("state replication did not reach sequence ", seq, " within ", options_.wait_timeout.count(), " ms"));
    }
  }
  return absl::OkStatus();
}

// Group commit with a leader: the waiter reads everything written so far
// from the WAL itself and puts it (one object covers every waiter, as one
// fsync does), instead of waking the shipping thread and being woken by it:
// two thread hand-offs less per shipment, which a loaded machine makes
// expensive. It gives up the reading as soon as its objects are sealed, so
// the next waiter can lead the next objects while these are in flight (up
// to kMaxInFlight). Snapshots, retries after a failure and gaps stay with
// the shipping thread.
absl::Status StateReplicator::LeadShipment(std::unique_lock<std::mutex>& l) {
  shipping_ = true;
  const size_t room = RoomLocked();
  l.unlock();
  std::vector<SealedWal> sealed;
  absl::Status s = have_base_ ? ShipWal(&sealed, room) : absl::FailedPreconditionError("no snapshot yet");
  if (s.ok()) MaybeStartPeriodicSnapshot();
  l.lock();
  shipping_ = false;
  done_cv_.notify_all();  // the next leader may read on while these are put
  l.unlock();
  absl::Status put = PutSealed(sealed);
  l.lock();
  if (absl::IsFailedPrecondition(s) || (s.ok() && sealed.empty())) {
    // A snapshot is needed (or nothing could be read): the shipping
    // thread's work. Waiters no longer lead until it has run.
    leader_ok_ = false;
    s = absl::OkStatus();
    work_cv_.notify_all();
  } else if (!s.ok()) {
    leader_ok_ = false;  // the shipping thread retries, with backoff
    NoteFailureLocked(s);
    work_cv_.notify_all();
  }
  if (s.ok()) s = put;
  return s.ok() ? s : absl::UnavailableError(StrCat("state replication is failing: ", s.message()));
}

void StateReplicator::NoteFailureLocked(const absl::Status& s) {
  ++failures_;
  last_error_ = s;
  last_failure_ = Clock::now();
  done_cv_.notify_all();
}

absl::Status StateReplicator::PutSealed(std::vector<SealedWal>& sealed) {
  absl::Status first_error;
  for (SealedWal& w : sealed) {
    absl::Status s = !first_error.ok() ? absl::AbortedError("an earlier WAL object failed")
                     : !w.sealed.ok()
                         ? w.sealed
                         : client_->PutObject(Key(WalObjectName(w.first, w.last, run_.id)), w.body, w.sha256).status();
    if (s.ok()) {
      bytes_shipped_.fetch_add(w.body.size());
      wal_objects_.fetch_add(1);
    } else if (first_error.ok()) {
      first_error = s;
    }
    std::lock_guard l(mu_);
    CompleteFlightLocked(w.first, s);
    RecycleWalBufferLocked(std::move(w.body));
  }
  return first_error;
}

// Only an unbroken run of objects counts as replicated: an acknowledgement
// waits until every object before its own is in the store too, so that a
// gap a crash leaves (RestoreState stops there) has nothing acknowledged
// after it.
void StateReplicator::CompleteFlightLocked(uint64_t first, const absl::Status& s) {
  auto it = flights_.find(first);
  if (it == flights_.end()) return;
  it->second.done = true;
  it->second.status = s;
  if (!s.ok()) {
    rewind_ = true;
    leader_ok_ = false;
    NoteFailureLocked(s);
    work_cv_.notify_all();
  }
  while (!flights_.empty() && flights_.begin()->second.done && flights_.begin()->second.status.ok()) {
    replicated_ = std::max(replicated_, flights_.begin()->second.last);
    last_error_ = absl::OkStatus();
    flights_.erase(flights_.begin());
  }
  done_cv_.notify_all();
}

// After a failed object: once every object in flight is done, reading
// starts again after what is known to be in the store (objects after the
// failed one that did arrive are shipped again, in other objects that
// overlap them: restore skips what it has).
void StateReplicator::RewindIfNeeded() {
  std::unique_lock l(mu_);
  if (!rewind_) return;
  done_cv_.wait(l, [this] { return AllFlightsDoneLocked(); });
  flights_.clear();
  rewind_ = false;
  dispatched_ = replicated_;
  shipped_ = replicated_;
  wal_it_.reset();
}

absl::Status StateReplicator::SnapshotNow() {
  std::unique_lock l(mu_);
  if (!started_ || stop_) return absl::UnavailableError("state replication is not running");
  const uint64_t gen = snapshot_generation_, failures = failures_;
  snapshot_requested_ = true;
  work_cv_.notify_all();
  while (snapshot_generation_ == gen) {
    if (stop_) return absl::UnavailableError("state replication stopped");
    if (failures_ != failures) return last_error_;
    done_cv_.wait(l);
  }
  return absl::OkStatus();
}

void StateReplicator::Run() {
  auto backoff = std::chrono::milliseconds(200);
  const auto tick = std::max(options_.lag / 2, std::chrono::milliseconds(5));
  for (;;) {
    bool snapshot_due;
    {
      std::unique_lock l(mu_);
      done_cv_.wait(l, [this] { return !shipping_; });  // a leader reading the WAL
      snapshot_due = snapshot_requested_;
      if (stop_) break;
      shipping_ = true;
    }
    absl::Status s = Step(snapshot_due);
    std::unique_lock l(mu_);
    shipping_ = false;
    done_cv_.notify_all();
    if (!s.ok()) {
      leader_ok_ = false;  // retries with backoff are the shipping thread's
      NoteFailureLocked(s);
      LogWarning("state replication failed; retrying", {{"reason", StdView(s.message())}});
      work_cv_.wait_for(l, backoff, [this] { return stop_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      continue;
    }
    backoff = std::chrono::milliseconds(200);
    leader_ok_ = true;
    if (snapshot_due) {
      snapshot_requested_ = false;
      ++snapshot_generation_;
      done_cv_.notify_all();
    }
    // Waiters ship themselves while leader_ok_ (LeadShipment).
    work_cv_.wait_for(l, tick, [this] {
      return stop_ || snapshot_requested_ || (!leader_ok_ && wanted_ > replicated_ && RoomLocked() > 0);
    });
  }
  // Stopping: one last shipment of what was written (bounded by the
  // client's retries). Leaders no longer start (stop_).
  {
    std::unique_lock l(mu_);
    done_cv_.wait(l, [this] { return !shipping_; });
  }
  if (have_base_) {
    RewindIfNeeded();
    std::vector<SealedWal> sealed;
    absl::Status s = ShipWal(&sealed, kMaxInFlight);
    if (auto p = PutSealed(sealed); s.ok()) s = p;
    if (!s.ok()) LogWarning("state replication: last shipment failed", {{"reason", StdView(s.message())}});
  }
  CollectBackgroundSnapshot(true);
}

absl::Status StateReplicator::Step(bool snapshot_due) {
  RewindIfNeeded();
  CollectBackgroundSnapshot(false);
  if (!have_base_ || snapshot_due) return TakeSnapshot();
  size_t room;
  {
    std::lock_guard l(mu_);
    room = RoomLocked();
  }
  std::vector<SealedWal> sealed;
  absl::Status s = ShipWal(&sealed, room);
  if (auto p = PutSealed(sealed); !p.ok()) return p;
  if (absl::IsFailedPrecondition(s)) {
    // The WAL cannot bring the store up to date (writes skipped it, or the
    // files are gone): a snapshot does.
    LogInfo("state replication: taking a snapshot", {{"reason", StdView(s.message())}});
    return TakeSnapshot();
  }
  if (!s.ok()) return s;
  MaybeStartPeriodicSnapshot();
  return absl::OkStatus();
}

uint64_t StateReplicator::SnapshotWalBytes() const {
  // A snapshot re-uploads every table a compaction rewrote since the last
  // one, up to the whole database: after `factor` times as much WAL as the
  // database holds, snapshots cost at most 1/factor of what the WAL costs,
  // and a restore replays at most `factor` times the database's size of WAL.
  uint64_t tables = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &tables)) tables = 0;
  return std::max(options_.snapshot_wal_bytes, options_.snapshot_table_factor * tables);
}

void StateReplicator::MaybeStartPeriodicSnapshot() {
  CollectBackgroundSnapshot(false);
  if (background_.valid()) return;
  if (wal_since_snapshot_ < SnapshotWalBytes() && Clock::now() - last_snapshot_ < options_.snapshot_interval) return;
  // The WAL is shipped meanwhile: waiters do not wait for the snapshot
  // (taken this way, it stalled a bulk ingest for seconds each time).
  wal_since_snapshot_ = 0;
  last_snapshot_ = Clock::now();
  background_ = std::async(std::launch::async, [this] { return MakeSnapshot().status(); });
}

void StateReplicator::CollectBackgroundSnapshot(bool wait) {
  if (!background_.valid()) return;
  if (!wait && background_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  absl::Status s = background_.get();
  if (s.ok()) return;
  // The WAL objects carry the state meanwhile; try again after half the WAL.
  wal_since_snapshot_ = options_.snapshot_wal_bytes / 2;
  LogWarning("state replication: a periodic snapshot failed", {{"reason", StdView(s.message())}});
}

void StateReplicator::SealWal(WalObjectWriter& w, std::string& body, std::vector<SealedWal>* out) {
  if (w.empty()) return;
  const uint64_t first = w.first(), last = w.last();
  uint64_t floor;
  {
    std::lock_guard l(mu_);
    floor = std::min(replicated_, first - 1);
    flights_[first] = Flight{.last = last, .done = false, .status = absl::OkStatus()};
    dispatched_ = std::max(dispatched_, last);
  }
  auto whole = w.Finish(floor, options_.sign);
  out->push_back({.first = first,
                  .last = last,
                  .body = std::move(body),
                  .sha256 = whole.ok() ? HexEncode(*whole) : "",
                  .sealed = whole.ok()
                                ? absl::OkStatus()
                                : absl::UnavailableError(StrCat("signing a WAL object: ", whole.status().message()))});
  shipped_ = last;
  wal_since_snapshot_ += out->back().body.size();
  body = TakeWalBuffer();
  w = WalObjectWriter(&body, &run_);
}

std::string StateReplicator::TakeWalBuffer() {
  std::lock_guard l(mu_);
  if (spare_bodies_.empty()) return {};
  std::string b = std::move(spare_bodies_.back());
  spare_bodies_.pop_back();
  return b;
}

void StateReplicator::RecycleWalBufferLocked(std::string&& body) {
  // Only buffers of the usual size (a group commit's few MiB) are kept, and
  // at most one per object in flight: idle, they hold at most 32 MiB (only
  // the pages an object touched are resident).
  if (body.capacity() <= kMaxKeptWalBuffer && spare_bodies_.size() < kMaxInFlight) {
    spare_bodies_.push_back(std::move(body));
  }
}

absl::Status StateReplicator::ShipWal(std::vector<SealedWal>* out, size_t room) {
  const uint64_t latest = db_->GetLatestSequenceNumber();
  if (latest <= shipped_ || room == 0) return absl::OkStatus();
  bool full = false;
  if (capture_) {
    ShipFromCapture(latest, out, room, &full);
    if (full || shipped_ >= latest) return absl::OkStatus();
  }
  const bool resumed = wal_it_ != nullptr;
  absl::Status s = ShipFromIterator(resumed, out, room, &full);
  if (s.ok() && !full && resumed && shipped_ < latest) {
    // The old iterator ended at its last WAL file; later ones need a new one.
    s = ShipFromIterator(false, out, room, &full);
  }
  if (s.ok() && !full && shipped_ < latest) {
    s = absl::FailedPreconditionError(
        StrCat("sequence ", shipped_ + 1, "..", latest,
               " is not in the WAL (writes that skipped it; reading it: ", wal_it_->status().ToString(), ")"));
  }
  if (!s.ok()) wal_it_.reset();
  return s;
}

absl::Status StateReplicator::ShipFromIterator(bool resume, std::vector<SealedWal>* out, size_t room, bool* full) {
  if (resume) {
    wal_it_->Next();
  } else {
    wal_it_.reset();
    rocksdb::Status rs = db_->GetUpdatesSince(shipped_ + 1, &wal_it_);
    if (!rs.ok()) return absl::FailedPreconditionError(StrCat("the WAL after ", shipped_, ": ", rs.ToString()));
  }
  rocksdb::TransactionLogIterator* it = wal_it_.get();
  std::string body = TakeWalBuffer();
  WalObjectWriter w(&body, &run_);
  absl::Cleanup give_back = [this, &body] {
    std::lock_guard l(mu_);
    RecycleWalBufferLocked(std::move(body));
  };
  uint64_t expected = shipped_ + 1;
  for (; it->Valid(); it->Next()) {
    rocksdb::BatchResult br = it->GetBatch();
    const uint32_t count = br.writeBatchPtr->Count();
    const uint64_t last = br.sequence + (count == 0 ? 0 : count - 1);
    if (count == 0) continue;
    if (last < expected) continue;  // shipped already (or in the snapshot)
    if (br.sequence != expected) {
      SealWal(w, body, out);
      return absl::FailedPreconditionError(
          StrCat("the WAL jumps from sequence ", expected - 1, " to ", br.sequence, " (writes that skipped the WAL)"));
    }
    w.Add(br.sequence, count, br.writeBatchPtr->Data());
    expected = last + 1;
    if (w.size() >= kMaxWalObjectBytes) {
      SealWal(w, body, out);
      if (out->size() >= room) {
        *full = true;  // the iterator stays on the last batch sealed
        return absl::OkStatus();
      }
    }
  }
  // An iterator stops at the end of the WAL files it knows, OK or not (the
  // WAL went on in a new file): ShipWal checks what was reached.
  SealWal(w, body, out);
  return absl::OkStatus();
}

void StateReplicator::ShipFromCapture(uint64_t latest, std::vector<SealedWal>* out, size_t room, bool* full) {
  std::string body = TakeWalBuffer();
  WalObjectWriter w(&body, &run_);
  absl::Cleanup give_back = [this, &body] {
    std::lock_guard l(mu_);
    RecycleWalBufferLocked(std::move(body));
  };
  uint64_t batches = 0;
  const uint64_t before = shipped_;
  capture_->TakeRun(shipped_, latest, kCaptureWait, [&](uint64_t seq, uint32_t count, std::string_view rep) {
    w.Add(seq, count, rep);
    ++batches;
    if (w.size() < kMaxWalObjectBytes) return true;
    SealWal(w, body, out);
    if (out->size() < room) return true;
    *full = true;
    return false;
  });
  SealWal(w, body, out);
  captured_batches_.fetch_add(batches);
  // The WAL reader, if it is needed next, starts after what was shipped.
  if (shipped_ != before) wal_it_.reset();
}

absl::Status StateReplicator::TakeSnapshot() {
  CollectBackgroundSnapshot(true);
  wal_it_.reset();  // positioned for the old shipped_
  if (!have_base_) {
    // Not even a snapshot on top of another daemon's newer state.
    if (auto s = CheckNoNewerState(db_->GetLatestSequenceNumber()); !s.ok()) return s;
  }
  auto seq = MakeSnapshot();
  if (!seq.ok()) return seq.status();
  if (!have_base_) {
    // WAL objects beyond this database's sequence number are the tail of
    // another history (the lost machine's objects after a gap, restore
    // stopped before them): a later restore must never replay them.
    if (auto s = DropWalAfter(*seq); !s.ok()) return s;
    // From now on this data dir continues this run: a later start (or a
    // restore that ends here) names it as its parent.
    if (!options_.run_marker.empty()) {
      if (auto s = WriteFileDurably(options_.run_marker, run_.id); !s.ok()) return s;
    }
  }
  // The first snapshot's WAL objects start right after the fork, not after
  // the snapshot: what this start wrote before the snapshot (leftover
  // roots, upload intents dropped) is then in objects as well, so a restore
  // that falls back to the parent run's snapshot can cross into this run
  // at its fork (RECOVERY.md "Runs"). A restore from this snapshot skips them.
  shipped_ = std::max(shipped_, have_base_ ? *seq : std::min(*seq, run_.fork));
  have_base_ = true;
  {
    std::lock_guard l(mu_);
    dispatched_ = std::max(dispatched_, shipped_);
  }
  wal_since_snapshot_ = 0;
  last_snapshot_ = Clock::now();
  return absl::OkStatus();
}

void StateReplicator::OpenedAt(uint64_t seq) {
  std::lock_guard l(mu_);
  if (started_) return;
  run_.fork = seq;
  fork_known_ = true;
}

absl::Status StateReplicator::CheckNoNewerState(uint64_t local_seq) {
  auto newest = NewestStateSequence(*client_);
  if (!newest.ok()) return newest.status();
  return RefuseNewerThan(*newest, local_seq);
}

absl::Status StateReplicator::RefuseNewerThan(uint64_t newest, uint64_t local_seq) const {
  if (newest <= std::max(local_seq, options_.supersede_until)) return absl::OkStatus();
  return absl::FailedPreconditionError(StrCat(
      "the object store holds state up to sequence number ", newest, " under s3://", client_->config().bucket, "/",
      client_->KeyFor("state/"), ", newer than this data dir's ", local_seq,
      ": another daemon writes to this prefix, or this data dir is an older copy of its state (a backup, a VM "
      "snapshot, a restore drill on the live prefix). Nothing was deleted. If another daemon runs on this prefix, "
      "stop this one (a drill needs a prefix of its own); otherwise restore the newest state into an empty data dir "
      "(shredd restore) and start on that"));
}

absl::Status StateReplicator::DropWalAfter(uint64_t seq) {
  auto wal = ListWalObjects(*client_);
  if (!wal.ok()) return wal.status();
  std::vector<std::string> stale;
  uint64_t newest = 0;
  for (const WalObjectKey& w : *wal) {
    if (w.last > seq) stale.push_back(w.key);
    newest = std::max(newest, w.last);
  }
  // Only the tail `shredd restore` stopped before: never what another
  // daemon wrote since (CheckNoNewerState, again: it may have written since
  // the start).
  if (auto s = RefuseNewerThan(newest, seq); !s.ok()) return s;
  if (!stale.empty()) {
    LogWarning("state replication: removing WAL objects of another history",
               {{"objects", stale.size()}, {"after_sequence", seq}});
    if (auto s = DeleteKeys(*client_, stale); !s.ok()) return s;
  }
  if (!options_.supersede_marker.empty() && unlink(options_.supersede_marker.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus("cannot remove", options_.supersede_marker, errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> StateReplicator::MakeSnapshot() {
  std::error_code ec;
  fs::remove_all(options_.scratch_dir, ec);
  if (auto s = MakeDirs(DirName(options_.scratch_dir)); !s.ok()) return s;
  rocksdb::Checkpoint* raw = nullptr;
  if (auto s = FromRocks(rocksdb::Checkpoint::Create(db_, &raw), "state snapshot"); !s.ok()) return s;
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  uint64_t seq = 0;
  // log_size_for_flush 0: the memtables are flushed first, so the snapshot
  // is table files plus (almost) empty WAL copies.
  if (auto s = FromRocks(cp->CreateCheckpoint(options_.scratch_dir, 0, &seq), "making a RocksDB checkpoint"); !s.ok()) {
    return s;
  }
  const uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  const std::string snap_id = SnapshotId(seq, ms);
  std::string files_json;
  absl::Status s = UploadCheckpointFiles(options_.scratch_dir, snap_id, &files_json);
  fs::remove_all(options_.scratch_dir, ec);
  if (!s.ok()) return s;
  auto body = EncodeDescriptor({{"sequence", seq},
                                {"run", run_.id},
                                {"created", FormatRfc3339(absl::FromUnixMillis(static_cast<int64_t>(ms)))},
                                {"files", nlohmann::json::parse(files_json)}},
                               options_.sign);
  if (!body.ok()) return absl::UnavailableError(StrCat("signing a state snapshot: ", body.status().message()));
  if (auto put = client_->PutObject(Key(StrCat("state/desc/", snap_id, ".json")), *body); !put.ok()) {
    return put.status();
  }
  bytes_shipped_.fetch_add(body->size());
  snapshots_.fetch_add(1);
  Published(seq);
  LogInfo("state snapshot in the object store", {{"sequence", seq}});
  if (auto gc = CollectOldState(); !gc.ok()) {
    LogWarning("state replication: removing old snapshots failed", {{"reason", StdView(gc.message())}});
  }
  return seq;
}

absl::Status StateReplicator::UploadCheckpointFiles(const std::string& dir, const std::string& snap_id,
                                                    std::string* files_json) {
  if (!listed_tables_) {
    auto s = client_->ForEachObject(Key("state/sst/"), [this](const S3ObjectVersion& o) {
      uploaded_tables_.insert(o.key);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    listed_tables_ = true;
  }
  nlohmann::json files = nlohmann::json::array();
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(dir)) entries.push_back(e);
  std::sort(entries.begin(), entries.end());
  for (const auto& e : entries) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string(), path = e.path().string();
    const uint64_t size = e.file_size();
    std::string key, sha;
    std::unique_ptr<MappedFile> file;
    if (IsTableFile(name)) {
      auto cached = table_sha_.find(name);
      if (cached != table_sha_.end() && cached->second.first == size) {
        sha = cached->second.second;
      } else {
        auto f = MappedFile::Open(path);
        if (!f.ok()) return f.status();
        file = *std::move(f);
        sha = ShaHex(file->bytes());
        table_sha_[name] = {size, sha};
      }
      const std::string stem = name.substr(0, name.rfind('.'));
      key = Key(StrCat("state/sst/", stem, "-", sha.substr(0, 32), name.substr(name.rfind('.'))));
      if (!uploaded_tables_.contains(key)) {
        if (file == nullptr) {
          auto f = MappedFile::Open(path);
          if (!f.ok()) return f.status();
          file = *std::move(f);
        }
        // Signed over the SHA-256 in its name (the store checks it).
        if (auto put = client_->PutObject(key, file->bytes(), sha); !put.ok()) return put.status();
        bytes_shipped_.fetch_add(file->bytes().size());
        uploaded_tables_.insert(key);
      }
    } else {
      auto f = MappedFile::Open(path);
      if (!f.ok()) return f.status();
      sha = ShaHex((*f)->bytes());
      key = Key(StrCat("state/snap/", snap_id, "/", name));
      if (auto put = client_->PutObject(key, (*f)->bytes(), sha); !put.ok()) return put.status();
      bytes_shipped_.fetch_add((*f)->bytes().size());
    }
    files.push_back({{"name", name}, {"key", key}, {"size", size}, {"sha256", sha}});
  }
  *files_json = files.dump();
  return absl::OkStatus();
}

// Keeps the two newest snapshots (the older one is the fallback if the newest
// is damaged) and the WAL objects after the older one; deletes the rest.
absl::Status StateReplicator::CollectOldState() {
  auto descs = ListDescriptors(*client_);
  if (!descs.ok()) return descs.status();
  if (descs->size() <= 2) return absl::OkStatus();
  const std::vector<SnapshotDescriptor> keep(descs->end() - 2, descs->end());
  std::set<std::string> referenced;
  for (const SnapshotDescriptor& d : keep) {
    auto j = ReadDescriptor(*client_, d.key);
    if (!j.ok()) return j.status();
    for (const auto& f : (*j)["files"]) referenced.insert(f.value("key", ""));
  }
  std::vector<std::string> doomed;
  for (auto it = descs->begin(); it != descs->end() - 2; ++it) {
    doomed.push_back(it->key);
    const std::string snap_id = it->key.substr(it->key.rfind('/') + 1, it->key.size() - it->key.rfind('/') - 6);
    auto s = client_->ForEachObject(Key(StrCat("state/snap/", snap_id, "/")), [&doomed](const S3ObjectVersion& o) {
      doomed.push_back(o.key);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  auto s = client_->ForEachObject(Key("state/sst/"), [&](const S3ObjectVersion& o) {
    if (!referenced.contains(o.key)) doomed.push_back(o.key);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  auto wal = ListWalObjects(*client_);
  if (!wal.ok()) return wal.status();
  for (const WalObjectKey& w : *wal) {
    if (w.last <= keep.front().seq) doomed.push_back(w.key);
  }
  // Descriptors first: a snapshot never names a file that is already gone.
  if (auto d = DeleteKeys(*client_, doomed); !d.ok()) return d;
  for (const std::string& k : doomed) uploaded_tables_.erase(k);
  return absl::OkStatus();
}

}  // namespace shredd
