// shredctl put: files and directories named on the command line, or the
// files of a CSV map with each file's subjects, datasets and labels
// (put_map.h); one total at the end (docs/CLI.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>

#include "shredd/v1/shredd.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/progress.h"
#include "client/put_map.h"
#include "daemon/base/strings.h"

namespace shredd::cli {
namespace {

namespace fs = std::filesystem;
namespace v1 = shredd::v1;
using nlohmann::json;
using ::shredd::StrCat;

struct PutOptions {
  std::vector<std::string> paths;
  std::string kind = "photo";
  std::vector<std::string> subjects, datasets, labels;
  std::string map;
  bool follow_symlinks = false, verbose = false;
  bool verify_digest = false;  // large files: hash here too (end to end)
};

struct PutItem {
  std::string path;
  FileDigest digest;
  bool follow = true;           // named on the command line or in the map, or --follow-symlinks
  const MapRow* row = nullptr;  // with --map: the row's own metadata
};

// The flags' metadata, then the map row's (a row's label wins over a flag's).
void FillMetadata(const PutOptions& o, const PutItem& it, v1::ItemMetadata* m) {
  m->set_kind(o.kind == "model" ? v1::KIND_MODEL : v1::KIND_PHOTO);
  auto add = [&](const std::vector<std::string>& subjects, const std::vector<std::string>& datasets,
                 const std::vector<std::string>& labels) {
    for (const auto& s : subjects) m->add_subject_ids(s);
    for (const auto& d : datasets) m->add_datasets(d);
    for (const auto& l : labels) {
      auto eq = l.find('=');
      (*m->mutable_labels())[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
    }
  };
  add(o.subjects, o.datasets, o.labels);
  if (it.row) add(it.row->subjects, it.row->datasets, it.row->labels);
  m->set_name(fs::path(it.path).filename().string());
}

size_t skipped_files = 0;  // for put's total

void NoteSkipped(const Global& g, const std::string& path, std::string_view why) {
  ++skipped_files;
  std::cerr << "shredctl: skipping " << Shown(path) << ": " << why << "\n";
  if (g.json) std::cout << DumpJson(json{{"path", path}, {"status", "skipped"}, {"reason", why}}) << "\n";
}

// The regular files under `dir`, sorted. Symlinks are skipped with a note
// unless `follow` (then followed, each directory walked once); FIFOs,
// sockets and devices are skipped with a note.
std::vector<std::string> WalkDirectory(const Global& g, const std::string& dir, bool follow) {
  std::vector<std::string> files;
  std::set<std::pair<dev_t, ino_t>> walked;
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) walked.insert({st.st_dev, st.st_ino});
  const auto options = follow ? fs::directory_options::follow_directory_symlink : fs::directory_options::none;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, options, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string path = it->path().string();
    if (lstat(path.c_str(), &st) != 0) {
      NoteSkipped(g, path, std::strerror(errno));
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (!follow) {
        NoteSkipped(g, path, "a symbolic link (--follow-symlinks uploads what links point to)");
        continue;
      }
      if (stat(path.c_str(), &st) != 0) {
        NoteSkipped(g, path, "a dangling symbolic link");
        continue;
      }
    }
    if (S_ISDIR(st.st_mode)) {
      if (!walked.insert({st.st_dev, st.st_ino}).second) {
        it.disable_recursion_pending();
        NoteSkipped(g, path, "a directory walked already (a symlink loop)");
      }
    } else if (S_ISREG(st.st_mode)) {
      files.push_back(path);
    } else {
      NoteSkipped(g, path, FileTypeName(st.st_mode));
    }
  }
  if (ec) throw Failure{kFail, StrCat("cannot walk ", dir, ": ", ec.message()), ""};
  std::sort(files.begin(), files.end());
  return files;
}

// The upload's items: files named on the command line (symlinks to them
// followed), and the regular files under directories named there.
std::vector<PutItem> CollectPutItems(const Global& g, const PutOptions& o) {
  std::vector<PutItem> items;
  for (const auto& p : o.paths) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0) {
      const int err = errno;
      struct stat lst;
      if (lstat(p.c_str(), &lst) == 0) throw Failure{kFail, StrCat(p, " is a dangling symbolic link"), ""};
      throw Failure{kFail, StrCat(p, ": ", std::strerror(err)), ""};
    }
    if (S_ISDIR(st.st_mode)) {
      for (auto& f : WalkDirectory(g, p, o.follow_symlinks)) items.push_back({f, {}, o.follow_symlinks});
    } else if (S_ISREG(st.st_mode)) {
      items.push_back({p, {}, true});
    } else {
      throw Failure{
          kFail, StrCat(p, " is ", FileTypeName(st.st_mode), "; only regular files and directories are uploaded"), ""};
    }
  }
  return items;
}

std::string ReadRegularFile(const PutItem& it) {
  int fd = OpenRegularFile(it.path, it.follow);
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw Failure{kFail, StrCat("cannot read ", it.path, ": ", std::strerror(err)), ""};
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

// The items of `put --map`: every row's file, checked before anything is
// stored. Every bad row is reported (exit 2) and nothing is uploaded.
std::vector<PutItem> ItemsFromMap(const PutOptions& o, const PutMap& map) {
  std::vector<std::string> errors = map.errors;
  std::vector<PutItem> items;
  for (const MapRow& row : map.rows) {
    struct stat st;
    if (stat(row.path.c_str(), &st) != 0) {
      errors.push_back(StrCat(o.map, ": line ", row.line, ": ", Shown(row.path), ": ", std::strerror(errno)));
    } else if (!S_ISREG(st.st_mode)) {
      errors.push_back(StrCat(o.map, ": line ", row.line, ": ", Shown(row.path), " is ", FileTypeName(st.st_mode),
                              ", not a regular file"));
    } else {
      items.push_back({row.path, {}, true, &row});
    }
  }
  if (errors.empty()) return items;
  constexpr size_t kShown = 20;
  for (size_t i = 0; i < errors.size() && i < kShown; ++i) std::cerr << "shredctl: " << Shown(errors[i]) << "\n";
  if (errors.size() > kShown) std::cerr << "shredctl: ... and " << errors.size() - kShown << " more\n";
  throw Failure{kUsage, StrCat(o.map, ": ", errors.size(), " problems; nothing was stored"), ""};
}

// What one put did, for its last line.
struct PutTotal {
  size_t stored = 0, present = 0, refused = 0;
  uint64_t bytes = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  void Emit(const Global& g) const {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = secs > 0 ? static_cast<double>(bytes) / secs : 0;
    char text[256];
    std::snprintf(text, sizeof text,
                  "put: %zu stored, %zu already present, %zu refused%s; %.1f MB in %.1f s, %.1f MB/s", stored, present,
                  refused, skipped_files ? StrCat(", ", skipped_files, " skipped").c_str() : "",
                  static_cast<double>(bytes) / 1e6, secs, rate / 1e6);
    cli::Emit(g,
              json{{"status", "total"},
                   {"stored", stored},
                   {"present", present},
                   {"refused", refused},
                   {"skipped", skipped_files},
                   {"bytes", bytes},
                   {"seconds", secs},
                   {"bytesPerSecond", rate}},
              text);
  }
};

// Small files are hashed first and sent in BatchPut requests (each entry
// declares its digest); large ones are hashed while they stream.
void PutSmallFiles(const Global& g, const PutOptions& o, v1::Store::Stub* stub, const std::vector<PutItem>& items,
                   Progress& progress,
                   const std::function<void(const PutItem&, std::string, std::string, grpc::StatusCode)>& report) {
  std::vector<const PutItem*> small;
  for (const auto& it : items)
    if (it.digest.size <= kBatchItemMax) small.push_back(&it);
  size_t i = 0;
  while (i < small.size()) {
    v1::BatchPutRequest req;
    std::vector<const PutItem*> in_batch;
    size_t bytes = 0;
    while (i < small.size() && in_batch.size() < kBatchEntries && bytes + small[i]->digest.size + 512 <= kBatchBytes) {
      const PutItem* it = small[i++];
      auto* e = req.add_entries();
      e->mutable_header()->mutable_digest()->set_hash(it->digest.hash);
      e->mutable_header()->mutable_digest()->set_size_bytes(static_cast<int64_t>(it->digest.size));
      FillMetadata(o, *it, e->mutable_header()->mutable_metadata());
      e->set_data(ReadRegularFile(*it));
      bytes += it->digest.size + 512;
      in_batch.push_back(it);
    }
    v1::BatchPutResponse resp;
    grpc::Status s;
    for (int attempt = 1;; ++attempt) {  // refused beyond max_calls: nothing ran, ask again
      grpc::ClientContext ctx;
      s = stub->BatchPut(&ctx, req, &resp);
      if (!RefusedForMaxCalls(s) || !BackOffForMaxCalls(attempt)) break;
    }
    if (!s.ok()) throw FromGrpc(s, "batch upload failed");
    for (size_t k = 0; k < in_batch.size(); ++k) {
      const auto& r = resp.results(static_cast<int>(k));
      if (r.code() != 0) {
        const auto code = static_cast<grpc::StatusCode>(r.code());
        report(*in_batch[k], "failed", StrCat(CodeName(code), ": ", r.message()), code);
      } else {
        report(*in_batch[k], r.already_present() ? "present" : "stored", "", grpc::OK);
      }
      progress.Add(in_batch[k]->digest.size);
    }
  }
  (void)g;
}

int CmdPut(const Global& g, const PutOptions& o) {
  PutTotal total;
  if (o.kind != "photo" && o.kind != "model") throw Failure{kUsage, "--kind must be photo or model", ""};
  for (const auto& l : o.labels) {
    if (l.find('=') == std::string::npos || l.front() == '=') {
      throw Failure{kUsage, StrCat("--label \"", l, "\" is not key=value"), ""};
    }
  }
  if (o.map.empty() == o.paths.empty()) throw Failure{kUsage, "give files or directories, or --map FILE.csv", ""};
  PutMap map;
  if (!o.map.empty()) map = ParsePutMap(ReadFileOrThrow(o.map), o.map, fs::path(o.map).parent_path().string());
  std::vector<PutItem> items = o.map.empty() ? CollectPutItems(g, o) : ItemsFromMap(o, map);
  uint64_t total_bytes = 0;
  for (auto& it : items) {
    std::error_code ec;
    uint64_t size = fs::file_size(it.path, ec);
    if (ec) throw Failure{kFail, StrCat("cannot stat ", it.path, ": ", ec.message()), ""};
    if (size <= kBatchItemMax) {
      it.digest = DigestFile(it.path, it.follow);
    } else {
      it.digest.size = size;
    }
    total_bytes += it.digest.size;
  }
  auto stub = v1::Store::NewStub(Connect(g));
  Progress progress("put", total_bytes, !g.quiet);
  // Failed items: exit with their code when they all failed alike (content
  // that was shredded: 6), 1 when reasons differ (docs/CLI.md "Exit codes").
  int failed_exit = kOk;
  auto report = [&](const PutItem& it, const std::string& status, const std::string& error, grpc::StatusCode code) {
    json j{{"path", it.path}, {"digest", it.digest.hash}, {"size", it.digest.size}, {"status", status}};
    if (!error.empty()) {
      j["error"] = error;
      ++total.refused;
      const int exit = code == grpc::OK ? kFail : ExitCodeFor(code);
      failed_exit = failed_exit == kOk || failed_exit == exit ? exit : kFail;
      progress.Clear();
      std::cerr << "shredctl: " << Shown(it.path) << ": " << Shown(error) << "\n";
      if (g.json) std::cout << DumpJson(j) << "\n";
      return;
    }
    ++(status == "stored" ? total.stored : total.present);
    total.bytes += it.digest.size;
    if (g.json || o.verbose) {
      progress.Clear();
      Emit(g, j, StrCat(it.digest.hash, " ", it.digest.size, " ", status, " ", Shown(it.path)));
    }
  };
  PutSmallFiles(g, o, stub.get(), items, progress, report);
  for (auto& it : items) {
    if (it.digest.size <= kBatchItemMax) continue;
    v1::PutHeader header;
    FillMetadata(o, it, header.mutable_metadata());
    UploadResult r;
    for (int attempt = 1;; ++attempt) {  // refused beyond max_calls: nothing ran, send it again
      uint64_t sent = 0;
      r = StreamFileHashing(
          g, it.path, it.digest.size, header,
          [&](uint64_t n) {
            sent += n;
            progress.Add(n);
          },
          &it.digest, it.follow, o.verify_digest);
      if (!RefusedForMaxCalls(r.status)) break;
      progress.Rewind(sent);
      if (!BackOffForMaxCalls(attempt)) break;
    }
    if (!r.status.ok()) {
      if (r.status.error_code() == grpc::UNAVAILABLE) throw FromGrpc(r.status, "upload failed");
      report(it, "failed", StrCat(CodeName(r.status.error_code()), ": ", Explain(r.status)), r.status.error_code());
    } else {
      report(it, r.already_present ? "present" : "stored", "", grpc::OK);
    }
  }
  progress.Finish();
  total.Emit(g);
  return failed_exit;
}

}  // namespace

void AddPutCommand(CLI::App& app, const Global& g, std::function<int()>& action) {
  static PutOptions put;
  auto* c_put = app.add_subcommand("put", "upload files or directories (recursively), or the files of a CSV map");
  c_put->add_option("paths", put.paths, "files or directories");
  c_put
      ->add_option("--map", put.map,
                   "CSV file: path,subjects,datasets,labels per row (docs/CLI.md); stores every row's file")
      ->check(CLI::ExistingFile);
  c_put->add_option("--kind", put.kind, "photo or model")->capture_default_str();
  c_put->add_option("--subject", put.subjects, "data subject id (repeatable)")->allow_extra_args(false);
  c_put->add_option("--dataset", put.datasets, "dataset name (repeatable)")->allow_extra_args(false);
  c_put->add_option("--label", put.labels, "label key=value (repeatable)")->allow_extra_args(false);
  c_put->add_flag("--follow-symlinks", put.follow_symlinks,
                  "in directories, upload what symbolic links point to (default: skip links, with a note)");
  c_put->add_flag("-v,--verbose", put.verbose, "one line per file (--json always has them)");
  c_put->add_flag("--verify-digest", put.verify_digest,
                  "large files: also hash them here and have the daemon check the digest (end to end; one more "
                  "SHA-256 pass). Default: the daemon's digest of what it received is the address (docs/CLI.md)");
  c_put->callback([&] { action = [&] { return CmdPut(g, put); }; });
}

}  // namespace shredd::cli
