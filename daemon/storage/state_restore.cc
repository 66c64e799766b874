// Restore of the daemon's state from the object store (RestoreState,
// state_replicator.h; docs/RECOVERY.md).
#include <filesystem>
#include <map>
#include <set>
#include <span>

#include <rocksdb/write_batch.h>

#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/state_objects.h"
#include "daemon/storage/state_replicator.h"

namespace shredd {
namespace {

namespace fs = std::filesystem;

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

// A gap before `next` (the store holds everything up to `cur`, then `next`
// starts later): a crash with several WAL objects in flight leaves one, and
// nothing acknowledged is behind it, since an acknowledgement waits for
// every earlier object. OK (restore stops at `cur`) if no later object of
// the same run says that the sequence after `cur` was in the store when it
// was written; DATA_LOSS if one does (an object was deleted from the store).
absl::Status CheckGapIsACrash(S3Client& client, std::span<const WalObjectKey> later, uint64_t cur,
                              const StateTrust& trust) {
  for (const WalObjectKey& w : later) {
    std::string body;
    if (auto s = client.GetObject(w.key, 0, 0, &body); !s.ok()) return s;
    auto decoded = DecodeWalObject(body, w.key, &trust);
    if (!decoded.ok()) return decoded.status();
    if (decoded->floor > cur) {
      return absl::DataLossError(StrCat("the state in the object store has a gap: it holds sequence numbers up to ",
                                        cur, ", and the next WAL object, ", later.front().key, ", starts at ",
                                        later.front().first, "; ", w.key, " was written when sequence ", decoded->floor,
                                        " was in the store, so an object is missing"));
    }
  }
  return absl::OkStatus();
}

// The WAL objects in the store, by run (RECOVERY.md "Runs"), and what each
// run's objects say about where it began.
class RunIndex {
 public:
  RunIndex(S3Client& client, const StateTrust& trust, const std::vector<WalObjectKey>& all)
      : client_(client), trust_(trust) {
    for (const WalObjectKey& w : all) by_run_[w.run].push_back(w);
  }
  const std::vector<WalObjectKey>& Objects(const std::string& run) { return by_run_[run]; }
  // The runs that began from `run` at a sequence number >= `from`, by
  // their fork. Reads one object of every other run (signed: its header is
  // the daemon's word).
  absl::StatusOr<std::multimap<uint64_t, std::string>> ChildrenOf(const std::string& run, uint64_t from) {
    std::multimap<uint64_t, std::string> out;
    for (const auto& [id, objects] : by_run_) {
      if (id.empty() || id == run || objects.empty()) continue;
      auto header = Header(id, objects.front());
      if (!header.ok()) return header.status();
      if (header->parent == run && header->fork >= from) out.emplace(header->fork, id);
    }
    return out;
  }
  // The WAL objects beyond `from` of the runs not followed.
  uint64_t CountOthers(const std::set<std::string>& followed, uint64_t from) const {
    uint64_t n = 0;
    for (const auto& [id, objects] : by_run_) {
      if (followed.contains(id)) continue;
      for (const WalObjectKey& w : objects) n += w.last > from ? 1 : 0;
    }
    return n;
  }

 private:
  absl::StatusOr<StateRun> Header(const std::string& id, const WalObjectKey& w) {
    if (auto it = headers_.find(id); it != headers_.end()) return it->second;
    std::string body;
    if (auto s = client_.GetObject(w.key, 0, 0, &body); !s.ok()) return s;
    auto decoded = DecodeWalObject(body, w.key, &trust_);
    if (!decoded.ok()) return decoded.status();
    if (decoded->run.id != id) {
      return absl::DataLossError(StrCat("WAL object ", w.key, " is named for run ", id, " but belongs to run ",
                                        decoded->run.id.empty() ? "(none)" : decoded->run.id));
    }
    return headers_[id] = decoded->run;
  }

  S3Client& client_;
  const StateTrust& trust_;
  std::map<std::string, std::vector<WalObjectKey>> by_run_;
  std::map<std::string, StateRun> headers_;
};

// The one run that began from here, if any (DATA_LOSS if several did: two
// daemons continued the same state).
absl::StatusOr<std::string> ChildAt(const std::multimap<uint64_t, std::string>& children, uint64_t cur,
                                    const std::string& run) {
  auto [lo, hi] = children.equal_range(cur);
  if (lo == hi) return std::string();
  if (std::next(lo) != hi) {
    return absl::DataLossError(StrCat("the object store holds two histories that began from run ",
                                      run.empty() ? "(none)" : run, " at sequence number ", cur, ": runs ", lo->second,
                                      " and ", std::next(lo)->second,
                                      " (two daemons wrote to this prefix from the same state; one writer per "
                                      "prefix, docs/RECOVERY.md)"));
  }
  return lo->second;
}

absl::Status ApplyBatch(rocksdb::DB* db, WalBatch& b, const WalObjectKey& w, uint64_t* cur) {
  if (b.seq <= *cur) {  // the rest of a write group whose first part an earlier object held
    auto rest = WalBatchFrom(b, *cur + 1);
    if (!rest.ok()) return absl::DataLossError(StrCat("WAL object ", w.key, ": ", rest.status().message()));
    b = std::move(*rest);
  }
  if (b.seq != *cur + 1) {
    return absl::DataLossError(StrCat("WAL object ", w.key, ": batch at ", b.seq, " does not follow ", *cur));
  }
  rocksdb::WriteBatch wb(std::move(b.rep));
  if (wb.Count() != b.count) return absl::DataLossError(StrCat("WAL object ", w.key, ": a batch is damaged"));
  if (auto s = FromRocks(db->Write(rocksdb::WriteOptions(), &wb), "replaying the WAL"); !s.ok()) return s;
  *cur = db->GetLatestSequenceNumber();
  if (*cur != b.last()) {
    return absl::InternalError(StrCat("replaying ", w.key, " reached sequence ", *cur, ", not ", b.last()));
  }
  return absl::OkStatus();
}

// Applies the batches of one run after the database's sequence number, in
// order, up to its end, a gap that a crash left (CheckGapIsACrash), or the
// point where a run began from it (`children`, by fork): that run is
// returned, and followed next. Objects of other runs are never applied.
absl::StatusOr<std::string> ReplayRun(S3Client& client, rocksdb::DB* db, const StateTrust& trust,
                                      const std::string& run, std::span<const WalObjectKey> wal,
                                      const std::multimap<uint64_t, std::string>& children, RestoreReport* report) {
  uint64_t cur = db->GetLatestSequenceNumber();
  auto child = ChildAt(children, cur, run);
  for (size_t i = 0; child.ok() && child->empty() && i < wal.size(); ++i) {
    const WalObjectKey& w = wal[i];
    if (w.last <= cur) continue;
    if (w.first > cur + 1) {
      if (auto s = CheckGapIsACrash(client, wal.subspan(i), cur, trust); !s.ok()) return s;
      report->gap = StrCat("sequence numbers ", cur + 1, "..", w.first - 1, " (before ", w.key, ")");
      break;
    }
    std::string body;
    if (auto s = client.GetObject(w.key, 0, 0, &body); !s.ok()) return s;
    auto decoded = DecodeWalObject(body, w.key, &trust);
    if (!decoded.ok()) return decoded.status();
    std::vector<WalBatch>& batches = decoded->batches;
    // An unsigned object (an earlier format, or a signature removed) names no
    // run: with --allow-unsigned-state its name is trusted for it.
    const bool run_ok = decoded->run.id == run || (!decoded->is_signed && trust.allow_unsigned);
    if (batches.front().seq != w.first || batches.back().last() != w.last || !run_ok) {
      return absl::DataLossError(StrCat("WAL object ", w.key, " does not hold what its name says"));
    }
    for (WalBatch& b : batches) {
      if (b.last() <= cur) continue;
      if (auto inside = children.upper_bound(cur); inside != children.end() && inside->first < b.last()) {
        return absl::DataLossError(StrCat("run ", inside->second, " began at sequence number ", inside->first,
                                          ", inside a write batch of ", w.key));
      }
      if (auto s = ApplyBatch(db, b, w, &cur); !s.ok()) return s;
      ++report->batches;
      child = ChildAt(children, cur, run);
      if (!child.ok() || !child->empty()) break;
    }
    ++report->wal_objects;
  }
  if (child.ok() && !child->empty()) report->gap.clear();  // the run that began here supersedes the rest
  return child;
}

// Follows the chain of runs from the snapshot's: each run's objects up to
// where a run began from it, then that run's.
absl::Status ReplayWal(S3Client& client, rocksdb::DB* db, std::string run, const StateTrust& trust,
                       RestoreReport* report) {
  auto wal = ListWalObjects(client);
  if (!wal.ok()) return wal.status();
  RunIndex index(client, trust, *wal);
  std::set<std::string> followed;
  for (;;) {
    followed.insert(run);
    auto children = index.ChildrenOf(run, db->GetLatestSequenceNumber());
    if (!children.ok()) return children.status();
    auto next = ReplayRun(client, db, trust, run, index.Objects(run), *children, report);
    if (!next.ok()) return next.status();
    if (next->empty()) break;
    // Runs get fresh random ids and their parents before they exist: a
    // chain that comes back to a run it followed is not one daemons wrote.
    if (followed.contains(*next)) {
      return absl::DataLossError(StrCat("the runs in the object store form a cycle at run ", *next));
    }
    run = *std::move(next);
    ++report->runs;
  }
  report->run = run;
  report->final_seq = db->GetLatestSequenceNumber();
  report->other_objects = index.CountOthers(followed, report->snapshot_seq);
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
                               const StateTrust& trust, RestoreReport* report) {
  auto desc = ReadDescriptor(client, desc_key, &trust);
  if (!desc.ok()) return desc.status();
  report->descriptor = desc_key;
  report->snapshot_seq = (*desc)["sequence"].get<uint64_t>();
  report->run = DescriptorRun(*desc);
  return DownloadSnapshot(client, *desc, desc_key, db_dir);
}

// Downloads the newest snapshot that is intact. One that is damaged or
// incomplete (DATA_LOSS, NOT_FOUND) is skipped, and named in the report, for
// the one before it: the store keeps two, with the WAL after the older one.
absl::Status DownloadNewestIntact(S3Client& client, const std::vector<SnapshotDescriptor>& descs,
                                  const std::string& db_dir, const StateTrust& trust, RestoreReport* report) {
  for (auto it = descs.rbegin(); it != descs.rend(); ++it) {
    absl::Status s = DownloadDescribed(client, it->key, db_dir, trust, report);
    if (s.ok() || (!absl::IsDataLoss(s) && !absl::IsNotFound(s))) return s;
    report->skipped.push_back(StrCat(it->key, ": ", s.message()));
    report->skipped_seq = std::max(report->skipped_seq, it->seq);
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

absl::StatusOr<RestoreReport> RestoreState(S3Client& client, const std::string& db_dir, const StateTrust& trust) {
  if (auto s = CheckEmptyDir(db_dir); !s.ok()) return s;
  auto descs = ListDescriptors(client);
  if (!descs.ok()) return descs.status();
  if (descs->empty()) {
    return absl::NotFoundError(
        StrCat("no state snapshot under s3://", client.config().bucket, "/", client.KeyFor("state/desc/")));
  }
  RestoreReport report;
  auto end = NewestStateSequence(client);
  if (!end.ok()) return end.status();
  report.store_end = *end;
  if (auto s = MakeDirs(db_dir, 0700); !s.ok()) return s;
  if (auto s = DownloadNewestIntact(client, *descs, db_dir, trust, &report); !s.ok()) return s;
  rocksdb::Options options;
  options.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  if (auto s = FromRocks(rocksdb::DB::Open(options, db_dir, &raw), "opening the restored snapshot"); !s.ok()) return s;
  std::unique_ptr<rocksdb::DB> db(raw);
  absl::Status s = ReplayWal(client, db.get(), report.run, trust, &report);
  if (!s.ok() && !report.skipped.empty()) {
    s = absl::Status(s.code(), StrCat(s.message(), " (after skipping a damaged snapshot: ", report.skipped[0], ")"));
  }
  if (s.ok() && report.final_seq < report.skipped_seq) {
    // The damaged snapshot's state was acknowledged (a snapshot publishes
    // what it holds), and the WAL after the one before it stops short.
    s = absl::DataLossError(StrCat("the newest snapshot is damaged (", report.skipped[0],
                                   ") and the WAL after the previous one reaches only sequence number ",
                                   report.final_seq, ", not its ", report.skipped_seq,
                                   ": acknowledged state is in no intact object"));
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
