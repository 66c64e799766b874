// Restore of the daemon's state from the object store (RestoreState,
// state_replicator.h; docs/RECOVERY.md).
#include <filesystem>
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
// every earlier object. OK (restore stops at `cur`) if no later object says
// that the sequence after `cur` was in the store when it was written;
// DATA_LOSS if one does (an object was deleted from the store).
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

// Applies the batches after the database's sequence number, in order, up
// to the end or to a gap that a crash left (CheckGapIsACrash).
absl::Status ReplayWal(S3Client& client, rocksdb::DB* db, const StateTrust& trust, RestoreReport* report) {
  auto wal = ListWalObjects(client);
  if (!wal.ok()) return wal.status();
  uint64_t cur = db->GetLatestSequenceNumber();
  for (size_t i = 0; i < wal->size(); ++i) {
    const WalObjectKey& w = (*wal)[i];
    if (w.last <= cur) continue;
    if (w.first > cur + 1) {
      if (auto s = CheckGapIsACrash(client, std::span(*wal).subspan(i), cur, trust); !s.ok()) return s;
      report->gap = StrCat("sequence numbers ", cur + 1, "..", w.first - 1, " (before ", w.key, ")");
      break;
    }
    std::string body;
    if (auto s = client.GetObject(w.key, 0, 0, &body); !s.ok()) return s;
    auto decoded = DecodeWalObject(body, w.key, &trust);
    if (!decoded.ok()) return decoded.status();
    std::vector<WalBatch>& batches = decoded->batches;
    if (batches.front().seq != w.first || batches.back().last() != w.last) {
      return absl::DataLossError(StrCat("WAL object ", w.key, " does not hold what its name says"));
    }
    for (WalBatch& b : batches) {
      if (b.last() <= cur) continue;
      if (b.seq <= cur) {  // the rest of a write group whose first part an earlier object held
        auto rest = WalBatchFrom(b, cur + 1);
        if (!rest.ok()) return absl::DataLossError(StrCat("WAL object ", w.key, ": ", rest.status().message()));
        b = std::move(*rest);
      }
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
                               const StateTrust& trust, RestoreReport* report) {
  auto desc = ReadDescriptor(client, desc_key, &trust);
  if (!desc.ok()) return desc.status();
  report->descriptor = desc_key;
  report->snapshot_seq = (*desc)["sequence"].get<uint64_t>();
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
  absl::Status s = ReplayWal(client, db.get(), trust, &report);
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
