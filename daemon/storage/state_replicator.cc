#include "daemon/storage/state_replicator.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

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

namespace shredd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kWalMagic = "SHRDWAL1";
constexpr uint64_t kMaxWalObjectBytes = 16 << 20;
constexpr std::string_view kDescFormat = "shredd-state-snapshot/v1";

std::string Pad20(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%020llu", static_cast<unsigned long long>(v));
  return b;
}

std::string Pad13(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%013llu", static_cast<unsigned long long>(v));
  return b;
}

bool ParseU64(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + static_cast<uint64_t>(c - '0');
  }
  *v = r;
  return true;
}

// "<a>-<b><suffix>" at the end of `key` after the last '/'.
bool ParsePair(std::string_view key, std::string_view suffix, uint64_t* a, uint64_t* b) {
  auto slash = key.rfind('/');
  std::string_view name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  if (!name.ends_with(suffix)) return false;
  name.remove_suffix(suffix.size());
  auto dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  return ParseU64(name.substr(0, dash), a) && ParseU64(name.substr(dash + 1), b);
}

std::string ShaHex(std::string_view bytes) { return HexEncode(Sha256Hasher::Of(bytes)); }

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(StrCat("cannot read ", path));
  Sha256Hasher h;
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  if (in.bad()) return absl::InternalError(StrCat("cannot read ", path));
  return HexEncode(h.Finish());
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(StrCat("cannot read ", path));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InternalError(StrCat("cannot read ", path));
  return s;
}

bool IsTableFile(std::string_view name) { return name.ends_with(".sst") || name.ends_with(".blob"); }

}  // namespace

// ---- WAL objects ---------------------------------------------------------------

std::string WalObjectName(uint64_t first, uint64_t last) {
  return StrCat("state/wal/", Pad20(first), "-", Pad20(last));
}

std::string EncodeWalObject(std::span<const WalBatch> batches) {
  std::string out(kWalMagic);
  AppendBigEndian64(&out, batches.empty() ? 0 : batches.front().seq);
  AppendBigEndian64(&out, batches.empty() ? 0 : batches.back().last());
  out += BigEndian32(static_cast<uint32_t>(batches.size()));
  for (const WalBatch& b : batches) {
    AppendBigEndian64(&out, b.seq);
    out += BigEndian32(b.count);
    out += BigEndian32(static_cast<uint32_t>(b.rep.size()));
    out += b.rep;
  }
  const Sha256 sum = Sha256Hasher::Of(out);
  out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return out;
}

absl::StatusOr<std::vector<WalBatch>> DecodeWalObject(std::string_view body, std::string_view name) {
  auto bad = [&](std::string_view why) {
    return absl::DataLossError(StrCat("WAL object ", name, " is damaged: ", why));
  };
  constexpr size_t kHead = 8 + 8 + 8 + 4;
  if (body.size() < kHead + 32 || !body.starts_with(kWalMagic)) return bad("not a shredd WAL object");
  std::string_view data = body.substr(0, body.size() - 32);
  const Sha256 sum = Sha256Hasher::Of(data);
  if (std::string_view(reinterpret_cast<const char*>(sum.data()), 32) != body.substr(body.size() - 32)) {
    return bad("checksum mismatch");
  }
  const uint64_t first = LoadBigEndian64(data.data() + 8), last = LoadBigEndian64(data.data() + 16);
  const uint32_t n = LoadBigEndian32(data.data() + 24);
  std::vector<WalBatch> out;
  size_t pos = kHead;
  for (uint32_t i = 0; i < n; ++i) {
    if (data.size() - pos < 16) return bad("truncated batch header");
    WalBatch b;
    b.seq = LoadBigEndian64(data.data() + pos);
    b.count = LoadBigEndian32(data.data() + pos + 8);
    const uint32_t len = LoadBigEndian32(data.data() + pos + 12);
    pos += 16;
    if (data.size() - pos < len) return bad("truncated batch");
    b.rep.assign(data.substr(pos, len));
    pos += len;
    if (!out.empty() && b.seq != out.back().last() + 1) return bad("batches are not contiguous");
    out.push_back(std::move(b));
  }
  if (pos != data.size()) return bad("trailing bytes");
  if (out.empty() || out.front().seq != first || out.back().last() != last) return bad("header does not match");
  return out;
}

// ---- the replicator ---------------------------------------------------------------

StateReplicator::StateReplicator(std::shared_ptr<S3Client> client, StateReplicatorOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<StateReplicator>> StateReplicator::Create(std::shared_ptr<S3Client> client,
                                                                         StateReplicatorOptions options) {
  if (client == nullptr) return absl::InvalidArgumentError("state replication needs an object store client");
  if (options.scratch_dir.empty()) return absl::InvalidArgumentError("state replication needs a scratch dir");
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
  work_cv_.notify_all();
  const uint64_t failures = failures_;
  const auto deadline = Clock::now() + options_.wait_timeout;
  while (replicated_ < seq) {
    if (stop_) return absl::UnavailableError("state replication stopped");
    if (failures_ != failures) {
      return absl::UnavailableError(StrCat("state replication is failing: ", last_error_.message()));
    }
    if (done_cv_.wait_until(l, deadline) == std::cv_status::timeout && replicated_ < seq) {
      return absl::UnavailableError(
          StrCat("state replication did not reach sequence ", seq, " within ", options_.wait_timeout.count(), " ms"));
    }
  }
  return absl::OkStatus();
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
      std::lock_guard l(mu_);
      snapshot_due = snapshot_requested_;
      if (stop_) break;
    }
    absl::Status s = Step(snapshot_due);
    std::unique_lock l(mu_);
    if (!s.ok()) {
      ++failures_;
      last_error_ = s;
      last_failure_ = Clock::now();
      done_cv_.notify_all();
      LogWarning("state replication failed; retrying", {{"reason", StdView(s.message())}});
      work_cv_.wait_for(l, backoff, [this] { return stop_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      continue;
    }
    backoff = std::chrono::milliseconds(200);
    if (snapshot_due) {
      snapshot_requested_ = false;
      ++snapshot_generation_;
      done_cv_.notify_all();
    }
    work_cv_.wait_for(l, tick, [this] { return stop_ || snapshot_requested_ || wanted_ > replicated_; });
  }
  // Stopping: one last shipment of what was written (bounded by the
  // client's retries).
  if (have_base_) {
    if (auto s = ShipWal(); !s.ok())
      LogWarning("state replication: last shipment failed", {{"reason", StdView(s.message())}});
  }
  CollectBackgroundSnapshot(true);
}

absl::Status StateReplicator::Step(bool snapshot_due) {
  CollectBackgroundSnapshot(false);
  if (!have_base_ || snapshot_due) return TakeSnapshot();
  absl::Status s = ShipWal();
  if (absl::IsFailedPrecondition(s)) {
    // The WAL cannot bring the store up to date (writes skipped it, or the
    // files are gone): a snapshot does.
    LogInfo("state replication: taking a snapshot", {{"reason", StdView(s.message())}});
    return TakeSnapshot();
  }
  if (!s.ok()) return s;
  if (!background_.valid() && (wal_since_snapshot_ >= options_.snapshot_wal_bytes ||
                               Clock::now() - last_snapshot_ >= options_.snapshot_interval)) {
    // The WAL is shipped meanwhile: waiters do not wait for the snapshot
    // (taken this way, it stalled a bulk ingest for seconds each time).
    wal_since_snapshot_ = 0;
    last_snapshot_ = Clock::now();
    background_ = std::async(std::launch::async, [this] { return MakeSnapshot().status(); });
  }
  return absl::OkStatus();
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

absl::Status StateReplicator::UploadWal(std::vector<WalBatch>& run, uint64_t* bytes) {
  if (run.empty()) return absl::OkStatus();
  const std::string body = EncodeWalObject(run);
  auto put = client_->PutObject(Key(WalObjectName(run.front().seq, run.back().last())), body);
  if (!put.ok()) return put.status();
  shipped_ = run.back().last();
  bytes_shipped_.fetch_add(body.size());
  wal_since_snapshot_ += body.size();
  wal_objects_.fetch_add(1);
  run.clear();
  *bytes = 0;
  Published(shipped_);
  return absl::OkStatus();
}

absl::Status StateReplicator::ShipWal() {
  const uint64_t latest = db_->GetLatestSequenceNumber();
  if (latest <= shipped_) return absl::OkStatus();
  const bool resumed = wal_it_ != nullptr;
  absl::Status s = ShipFromIterator(resumed);
  if (s.ok() && resumed && shipped_ < latest) {
    // The old iterator ended at its last WAL file; later ones need a new one.
    s = ShipFromIterator(false);
  }
  if (s.ok() && shipped_ < latest) {
    s = absl::FailedPreconditionError(
        StrCat("sequence ", shipped_ + 1, "..", latest,
               " is not in the WAL (writes that skipped it; reading it: ", wal_it_->status().ToString(), ")"));
  }
  if (!s.ok()) wal_it_.reset();
  return s;
}

absl::Status StateReplicator::ShipFromIterator(bool resume) {
  if (resume) {
    wal_it_->Next();
  } else {
    wal_it_.reset();
    rocksdb::Status rs = db_->GetUpdatesSince(shipped_ + 1, &wal_it_);
    if (!rs.ok()) return absl::FailedPreconditionError(StrCat("the WAL after ", shipped_, ": ", rs.ToString()));
  }
  rocksdb::TransactionLogIterator* it = wal_it_.get();
  std::vector<WalBatch> run;
  uint64_t bytes = 0, expected = shipped_ + 1;
  for (; it->Valid(); it->Next()) {
    rocksdb::BatchResult br = it->GetBatch();
    WalBatch b{.seq = br.sequence, .count = br.writeBatchPtr->Count(), .rep = {}};
    if (b.count == 0) continue;
    if (b.last() < expected) continue;  // shipped already (or in the snapshot)
    if (b.seq != expected) {
      if (auto s = UploadWal(run, &bytes); !s.ok()) return s;
      return absl::FailedPreconditionError(
          StrCat("the WAL jumps from sequence ", expected - 1, " to ", b.seq, " (writes that skipped the WAL)"));
    }
    b.rep = br.writeBatchPtr->Data();
    bytes += b.rep.size();
    expected = b.last() + 1;
    run.push_back(std::move(b));
    if (bytes >= kMaxWalObjectBytes) {
      if (auto s = UploadWal(run, &bytes); !s.ok()) return s;
    }
  }
  // An iterator stops at the end of the WAL files it knows, OK or not (the
  // WAL went on in a new file): ShipWal checks what was reached.
  return UploadWal(run, &bytes);
}

absl::Status StateReplicator::TakeSnapshot() {
  CollectBackgroundSnapshot(true);
  wal_it_.reset();  // positioned for the old shipped_
  auto seq = MakeSnapshot();
  if (!seq.ok()) return seq.status();
  have_base_ = true;
  shipped_ = std::max(shipped_, *seq);
  wal_since_snapshot_ = 0;
  last_snapshot_ = Clock::now();
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
  const std::string snap_id = StrCat(Pad20(seq), "-", Pad13(ms));
  std::string files_json;
  absl::Status s = UploadCheckpointFiles(options_.scratch_dir, snap_id, &files_json);
  fs::remove_all(options_.scratch_dir, ec);
  if (!s.ok()) return s;
  nlohmann::json desc = {{"format", kDescFormat},
                         {"sequence", seq},
                         {"created", FormatRfc3339(absl::FromUnixMillis(static_cast<int64_t>(ms)))},
                         {"files", nlohmann::json::parse(files_json)}};
  const std::string body = desc.dump();
  if (auto put = client_->PutObject(Key(StrCat("state/desc/", snap_id, ".json")), body); !put.ok()) {
    return put.status();
  }
  bytes_shipped_.fetch_add(body.size());
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
    if (IsTableFile(name)) {
      auto cached = table_sha_.find(name);
      if (cached != table_sha_.end() && cached->second.first == size) {
        sha = cached->second.second;
      } else {
        auto h = FileSha256(path);
        if (!h.ok()) return h.status();
        sha = *h;
        table_sha_[name] = {size, sha};
      }
      const std::string stem = name.substr(0, name.rfind('.'));
      key = Key(StrCat("state/sst/", stem, "-", sha.substr(0, 32), name.substr(name.rfind('.'))));
      if (!uploaded_tables_.contains(key)) {
        auto body = ReadWholeFile(path);
        if (!body.ok()) return body.status();
        if (auto put = client_->PutObject(key, *body); !put.ok()) return put.status();
        bytes_shipped_.fetch_add(body->size());
        uploaded_tables_.insert(key);
      }
    } else {
      auto body = ReadWholeFile(path);
      if (!body.ok()) return body.status();
      sha = ShaHex(*body);
      key = Key(StrCat("state/snap/", snap_id, "/", name));
      if (auto put = client_->PutObject(key, *body); !put.ok()) return put.status();
      bytes_shipped_.fetch_add(body->size());
    }
    files.push_back({{"name", name}, {"key", key}, {"size", size}, {"sha256", sha}});
  }
  *files_json = files.dump();
  return absl::OkStatus();
}

}  // namespace shredd

namespace shredd {
namespace {

struct Descriptor {
  std::string key;
  uint64_t seq = 0, ms = 0;
};

// Every descriptor in the store, oldest first.
absl::StatusOr<std::vector<Descriptor>> ListDescriptors(S3Client& client) {
  std::vector<Descriptor> out;
  auto s = client.ForEachObject(client.KeyFor("state/desc/"), [&out](const S3ObjectVersion& o) {
    Descriptor d{.key = o.key};
    if (ParsePair(o.key, ".json", &d.seq, &d.ms)) out.push_back(std::move(d));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end(), [](const Descriptor& a, const Descriptor& b) {
    return std::tie(a.seq, a.ms, a.key) < std::tie(b.seq, b.ms, b.key);
  });
  return out;
}

absl::StatusOr<nlohmann::json> ReadDescriptor(S3Client& client, const std::string& key) {
  std::string body;
  if (auto s = client.GetObject(key, 0, 0, &body); !s.ok()) return s;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kDescFormat || !j.contains("files") ||
      !j["files"].is_array() || !j.contains("sequence") || !j["sequence"].is_number_unsigned()) {
    return absl::DataLossError(StrCat("state snapshot descriptor ", key, " is malformed"));
  }
  return j;
}

struct WalObject {
  std::string key;
  uint64_t first = 0, last = 0;
};

absl::StatusOr<std::vector<WalObject>> ListWalObjects(S3Client& client) {
  std::vector<WalObject> out;
  auto s = client.ForEachObject(client.KeyFor("state/wal/"), [&out](const S3ObjectVersion& o) {
    WalObject w{.key = o.key};
    if (ParsePair(o.key, "", &w.first, &w.last)) out.push_back(std::move(w));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end(), [](const WalObject& a, const WalObject& b) {
    return std::tie(a.first, a.last) < std::tie(b.first, b.last);
  });
  return out;
}

absl::Status DeleteKeys(S3Client& client, const std::vector<std::string>& keys) {
  std::vector<S3ObjectVersion> batch;
  for (size_t i = 0; i < keys.size(); ++i) {
    batch.push_back({.key = keys[i]});
    if (batch.size() == 1000 || i + 1 == keys.size()) {
      if (auto s = client.DeleteObjects(batch); !s.ok()) return s;
      batch.clear();
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Keeps the two newest snapshots (the older one is the fallback if the newest
// is damaged) and the WAL objects after the older one; deletes the rest.
absl::Status StateReplicator::CollectOldState() {
  auto descs = ListDescriptors(*client_);
  if (!descs.ok()) return descs.status();
  if (descs->size() <= 2) return absl::OkStatus();
  const std::vector<Descriptor> keep(descs->end() - 2, descs->end());
  std::set<std::string> referenced;
  for (const Descriptor& d : keep) {
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
  for (const WalObject& w : *wal) {
    if (w.last <= keep.front().seq) doomed.push_back(w.key);
  }
  // Descriptors first: a snapshot never names a file that is already gone.
  if (auto d = DeleteKeys(*client_, doomed); !d.ok()) return d;
  for (const std::string& k : doomed) uploaded_tables_.erase(k);
  return absl::OkStatus();
}

// ---- restore -------------------------------------------------------------------

namespace {

absl::Status DownloadSnapshot(S3Client& client, const nlohmann::json& desc, const std::string& desc_key,
                              const std::string& db_dir) {
  for (const auto& f : desc["files"]) {
    const std::string name = f.value("name", ""), key = f.value("key", ""), sha = f.value("sha256", "");
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." || key.empty()) {
      return absl::DataLossError(StrCat("state snapshot descriptor ", desc_key, " names a bad file"));
    }
    std::string body;
    if (auto s = client.GetObject(key, 0, 0, &body); !s.ok()) {
      return absl::Status(s.code(), StrCat("snapshot ", desc_key, ": ", s.message()));
    }
    if (body.size() != f.value("size", uint64_t{0}) || ShaHex(body) != sha) {
      return absl::DataLossError(StrCat("state object ", key, " does not match its SHA-256 in ", desc_key));
    }
    if (auto s = WriteFileDurably(db_dir + "/" + name, body, 0600); !s.ok()) return s;
  }
  return FsyncDir(db_dir);
}

// Applies the batches after the database's sequence number, in order.
absl::Status ReplayWal(S3Client& client, rocksdb::DB* db, RestoreReport* report) {
  auto wal = ListWalObjects(client);
  if (!wal.ok()) return wal.status();
  uint64_t cur = db->GetLatestSequenceNumber();
  for (const WalObject& w : *wal) {
    if (w.last <= cur) continue;
    if (w.first > cur + 1) {
      return absl::DataLossError(StrCat("the state in the object store has a gap: it holds sequence numbers up to ",
                                        cur, ", and the next WAL object, ", w.key, ", starts at ", w.first));
    }
    std::string body;
    if (auto s = client.GetObject(w.key, 0, 0, &body); !s.ok()) return s;
    auto batches = DecodeWalObject(body, w.key);
    if (!batches.ok()) return batches.status();
    if (batches->front().seq != w.first || batches->back().last() != w.last) {
      return absl::DataLossError(StrCat("WAL object ", w.key, " does not hold what its name says"));
    }
    for (WalBatch& b : *batches) {
      if (b.last() <= cur) continue;
      if (b.seq != cur + 1) {
        return absl::DataLossError(StrCat("WAL object ", w.key, ": batch at ", b.seq, " does not follow ", cur));
      }
      rocksdb::WriteBatch wb(std::move(b.rep));
      if (wb.Count() != b.count) return absl::DataLossError(StrCat("WAL object ", w.key, ": a batch is damaged"));
      if (auto s = FromRocks(db->Write(rocksdb::WriteOptions(), &wb), "replaying the WAL"); !s.ok()) return s;
      cur = db->GetLatestSequenceNumber();
      if (cur != b.last()) {
        return absl::InternalError(StrCat("replaying ", w.key, " reached sequence ", cur, ", not ", b.last()));
      }
      ++report->batches;
    }
    ++report->wal_objects;
  }
  report->final_seq = cur;
  return absl::OkStatus();
}

// Removes what a failed snapshot download left in `dir` (keeps `dir`).
absl::Status EmptyDir(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    fs::remove_all(e.path(), ec);
    if (ec) return absl::InternalError(StrCat("removing ", e.path().string(), ": ", ec.message()));
  }
  if (ec) return absl::InternalError(StrCat("listing ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status DownloadDescribed(S3Client& client, const std::string& desc_key, const std::string& db_dir,
                               RestoreReport* report) {
  auto desc = ReadDescriptor(client, desc_key);
  if (!desc.ok()) return desc.status();
  report->descriptor = desc_key;
  report->snapshot_seq = (*desc)["sequence"].get<uint64_t>();
  return DownloadSnapshot(client, *desc, desc_key, db_dir);
}

// Downloads the newest snapshot that is intact. One that is damaged or
// incomplete (DATA_LOSS, NOT_FOUND) is skipped, and named in the report, for
// the one before it: the store keeps two, with the WAL after the older one.
absl::Status DownloadNewestIntact(S3Client& client, const std::vector<Descriptor>& descs, const std::string& db_dir,
                                  RestoreReport* report) {
  for (auto it = descs.rbegin(); it != descs.rend(); ++it) {
    absl::Status s = DownloadDescribed(client, it->key, db_dir, report);
    if (s.ok() || (!absl::IsDataLoss(s) && !absl::IsNotFound(s))) return s;
    report->skipped.push_back(StrCat(it->key, ": ", s.message()));
    if (auto e = EmptyDir(db_dir); !e.ok()) return e;
  }
  std::string why;
  for (const std::string& k : report->skipped) why += StrCat(why.empty() ? "" : "; ", k);
  return absl::DataLossError(StrCat("no intact state snapshot in the object store (", why, ")"));
}

absl::Status CheckEmptyDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return absl::OkStatus();
  if (!fs::is_directory(dir, ec)) return absl::FailedPreconditionError(StrCat(dir, " is not a directory"));
  if (!fs::is_empty(dir, ec)) {
    return absl::FailedPreconditionError(StrCat(dir, " is not empty: restore only into an empty or new directory"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RestoreReport> RestoreState(S3Client& client, const std::string& db_dir) {
  if (auto s = CheckEmptyDir(db_dir); !s.ok()) return s;
  auto descs = ListDescriptors(client);
  if (!descs.ok()) return descs.status();
  if (descs->empty()) {
    return absl::NotFoundError(
        StrCat("no state snapshot under s3://", client.config().bucket, "/", client.KeyFor("state/desc/")));
  }
  RestoreReport report;
  if (auto s = MakeDirs(db_dir, 0700); !s.ok()) return s;
  if (auto s = DownloadNewestIntact(client, *descs, db_dir, &report); !s.ok()) return s;
  rocksdb::Options options;
  options.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  if (auto s = FromRocks(rocksdb::DB::Open(options, db_dir, &raw), "opening the restored snapshot"); !s.ok()) return s;
  std::unique_ptr<rocksdb::DB> db(raw);
  absl::Status s = ReplayWal(client, db.get(), &report);
  if (!s.ok() && !report.skipped.empty()) {
    s = absl::Status(s.code(), StrCat(s.message(), " (after skipping a damaged snapshot: ", report.skipped[0], ")"));
  }
  if (s.ok()) s = FromRocks(db->FlushWAL(true), "syncing the restored database");
  if (s.ok()) s = FromRocks(db->Close(), "closing the restored database");
  if (!s.ok()) return s;
  db.reset();
  // Opens once more, as the daemon will.
  if (auto r = FromRocks(rocksdb::DB::Open(options, db_dir, &raw), "opening the restored database"); !r.ok()) return r;
  db.reset(raw);
  if (db->GetLatestSequenceNumber() != report.final_seq) {
    return absl::InternalError("the restored database lost writes when reopened");
  }
  (void)db->Close();
  return report;
}

}  // namespace shredd
