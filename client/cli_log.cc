// shredctl log ...: the transparency log (see docs/LOG.md).
//
//   log checkpoint                  the latest signed checkpoint note
//   log entry INDEX                 an entry's exact bytes
//   log proof INDEX                 a c2sp.org/tlog-proof@v1 file for it
//   log verify --entry --proof --vkey      offline inclusion check
//   log monitor --state --vkey      witness: the log only ever grows
//   ... --tiles DIR_OR_URL          verify / monitor from the tiles alone (log_tiles.cc)
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "shredd/v1/log.grpc.pb.h"
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/log_source.h"
#include "daemon/base/strings.h"
#include "formats/dsse.h"
#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/merkle.h"
#include "formats/note.h"
#include "formats/tlog.h"

namespace shredd::cli {
using ::shredd::StrCat;
namespace {

namespace fs = std::filesystem;
namespace v1 = shredd::v1;
using nlohmann::json;

std::string Hex(const verify::Hash& h) { return verify::HexEncode(h); }

// JSON text that never throws: what the daemon sends is not trusted to be
// UTF-8 (invalid sequences become U+FFFD). ASCII only (cli_common.h).
std::string Dump(const json& j) { return DumpJson(j); }

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
}

std::unique_ptr<v1::Log::Stub> LogStub(const Global& g) { return v1::Log::NewStub(Connect(g)); }

}  // namespace

// A verifier key file: one line "<name>+<hash>+<base64>".
verify::NoteVerifier ReadVkey(const std::string& path) {
  std::string text = ReadFileOrThrow(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  if (text.find("-----BEGIN") != std::string::npos) {
    throw Failure{kUsage,
                  StrCat(path,
                         " is a PEM key; the log needs its signed-note verifier key "
                         "(<origin>+<hash>+<base64>, see `shredctl log checkpoint --json`)"),
                  ""};
  }
  auto v = verify::ParseNoteVerifierKey(text);
  if (!v.ok()) throw Failure{kUsage, StrCat("verifier key ", path, ": ", v.status().message()), ""};
  return *v;
}

// Durable replace: a fresh temporary file next to PATH (a unique name,
// created exclusively: never a file or symlink someone left there, and never
// another monitor's) written and fsynced, renamed over PATH, directory
// fsynced. A crash leaves either the old or the new state, never a mix.
void WriteFileDurably(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) throw Failure{kFail, StrCat("cannot write ", tmp, ": ", std::strerror(errno)), ""};
  auto fail = [&](std::string_view what) {
    const int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return Failure{kFail, StrCat("cannot ", what, " ", tmp, ": ", std::strerror(err)), ""};
  };
  if (fchmod(fd, 0644) != 0) throw fail("set the mode of");
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw fail("write");
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) throw fail("sync");
  if (close(fd) != 0) {
    unlink(tmp.c_str());
    throw Failure{kFail, StrCat("cannot write ", tmp, ": ", std::strerror(errno)), ""};
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    throw Failure{kFail, StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(err)), ""};
  }
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

namespace {

v1::GetCheckpointResponse FetchCheckpoint(v1::Log::Stub* stub) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::GetCheckpointResponse resp;
  grpc::Status s = stub->GetCheckpoint(&ctx, v1::GetCheckpointRequest(), &resp);
  if (!s.ok()) throw FromGrpc(s, "fetching the checkpoint failed");
  return resp;
}

// ---------------------------------------------------------------- online

int CmdCheckpoint(const Global& g, const std::string& out) {
  auto stub = LogStub(g);
  v1::GetCheckpointResponse resp = FetchCheckpoint(stub.get());
  if (!out.empty()) WriteFileOrThrow(out, resp.checkpoint(), Privacy::kPublic);
  if (g.json) {
    std::cout << Dump(json{{"checkpoint", resp.checkpoint()},
                           {"origin", resp.origin()},
                           {"treeSize", resp.tree_size()},
                           {"rootHash", verify::HexEncode(resp.root_hash())},
                           {"verifierKey", resp.note_verifier_key()}})
              << "\n";
  } else if (out.empty()) {
    std::cout << resp.checkpoint();
  }
  return kOk;
}

int CmdEntry(const Global& g, uint64_t index, const std::string& out) {
  auto stub = LogStub(g);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::GetEntriesRequest req;
  req.set_start(index);
  req.set_end(index + 1);
  v1::GetEntriesResponse resp;
  grpc::Status s = stub->GetEntries(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, StrCat("fetching entry ", index, " failed"));
  if (resp.entries_size() != 1) throw Failure{kFail, StrCat("the daemon returned no entry ", index), ""};
  const std::string& entry = resp.entries(0);
  if (!out.empty()) WriteFileOrThrow(out, entry, Privacy::kPublic);
  if (g.json) {
    std::cout << Dump(json{{"index", index},
                           {"treeSize", resp.tree_size()},
                           {"leafHash", Hex(verify::LeafHash(entry))},
                           {"entry", verify::Base64Encode(entry)}})
              << "\n";
  } else if (out.empty()) {
    std::cout.write(entry.data(), static_cast<std::streamsize>(entry.size()));
    std::cout.flush();
  }
  return kOk;
}

int CmdProof(const Global& g, uint64_t index, const std::string& out) {
  auto stub = LogStub(g);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::GetTlogProofRequest req;
  req.set_index(index);
  v1::GetTlogProofResponse resp;
  grpc::Status s = stub->GetTlogProof(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, StrCat("fetching the proof for entry ", index, " failed"));
  if (!out.empty()) WriteFileOrThrow(out, resp.proof(), Privacy::kPublic);
  if (g.json) {
    std::cout << Dump(json{{"index", resp.index()}, {"treeSize", resp.tree_size()}, {"proof", resp.proof()}}) << "\n";
  } else if (out.empty()) {
    std::cout << resp.proof();
  }
  return kOk;
}

// ---------------------------------------------------------------- offline

}  // namespace

LoggedEntry LoggedEntryFrom(std::string file) {
  absl::StatusOr<std::string> canonical = verify::CanonicalEnvelope(file);
  if (!canonical.ok()) {
    const bool envelope_like = file.find("\"payloadType\"") != std::string::npos;
    return {std::move(file), "", envelope_like ? std::string(canonical.status().message()) : ""};
  }
  if (*canonical == file) return {std::move(file), "", ""};
  return {*std::move(canonical),
          "the file is not byte-identical to the logged certificate (it was reformatted); its canonical form "
          "(docs/FORMATS.md \"Canonical envelope\") is what the log holds",
          ""};
}

namespace {

int CmdLogVerify(const Global& g, const std::string& entry_path, const std::string& proof_path,
                 const std::string& vkey_path, std::optional<uint64_t> index) {
  const verify::NoteVerifier vkey = ReadVkey(vkey_path);
  const LoggedEntry entry = LoggedEntryFrom(ReadFileOrThrow(entry_path));
  const std::string proof = ReadFileOrThrow(proof_path);
  return ReportLogVerify(g, entry, entry_path, proof, vkey, index);
}

}  // namespace

int ReportLogVerify(const Global& g, const LoggedEntry& entry, const std::string& entry_path, const std::string& proof,
                    const verify::NoteVerifier& vkey, std::optional<uint64_t> index) {
  auto r = verify::VerifyTlogProof(proof, entry.bytes, vkey, index);
  if (!r.ok()) {
    std::string reason(r.status().message());
    if (!entry.not_canonical.empty()) {
      reason +=
          StrCat(" (", entry_path, " looks like a certificate but has no canonical form: ", entry.not_canonical, ")");
    }
    if (g.json) std::cout << Dump(json{{"valid", false}, {"reason", reason}}) << "\n";
    std::cerr << "shredctl: log proof verification FAILED: " << Shown(reason) << "\n";
    return kVerifyFailed;
  }
  const verify::Checkpoint& cp = r->checkpoint;
  json report{{"valid", true},
              {"index", r->index},
              {"treeSize", cp.size},
              {"origin", cp.origin},
              {"rootHash", Hex(cp.root)},
              {"leafHash", Hex(verify::LeafHash(entry.bytes))},
              {"reformatted", !entry.note.empty()}};
  std::string text = StrCat("OK: entry is index ", r->index, " of ", Shown(cp.origin), " (tree size ", cp.size,
                            ", root ", Hex(cp.root), "), checkpoint signed by ", vkey.name);
  if (!entry.note.empty()) text += StrCat("\nnote: ", entry.note);
  Emit(g, report, text);
  return kOk;
}

// ---------------------------------------------------------------- monitor
// (RunMonitor: shared by the gRPC and the tiles source, log_source.h)

namespace {

// One monitor at a time per state file (STATE.lock, held for the whole run):
// two runs that overlap (cron, a slow or hostile server) used to read the
// same state and write in turn, so the slower one could put back an older
// checkpoint than the faster one stored, and a fork that conflicts only
// with the lost one then passed. The second run waits, then reads the state
// the first one left.
class MonitorLock {
 public:
  explicit MonitorLock(const std::string& state_path) {
    const std::string path = state_path + ".lock";
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Failure{kFail, StrCat("cannot open ", path, ": ", std::strerror(errno)), ""};
    while (flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd_);
      throw Failure{kFail, StrCat("cannot lock ", path, ": ", std::strerror(err)), ""};
    }
  }
  ~MonitorLock() { close(fd_); }
  MonitorLock(const MonitorLock&) = delete;
  MonitorLock& operator=(const MonitorLock&) = delete;

 private:
  int fd_ = -1;
};

// A checkpoint that conflicts with the stored one: exit 7, the state kept,
// the served checkpoint saved next to it (whatever happens to that save: a
// full disk must not turn a detected fork into a plain failure). A fork
// (same size, another root; or a larger tree the proof does not extend
// from the stored one) is proven by the two signed checkpoints and the
// proof; a smaller tree is not: an old checkpoint replayed (a stale cache,
// a man in the middle) looks just like a rolled-back log.
int ReportConflict(const Global& g, json report, const std::string& state_path, const verify::Checkpoint& old,
                   const verify::Checkpoint& latest, const absl::Status& why) {
  const bool rollback = latest.size < old.size;
  const std::string saved = state_path + ".conflict";
  std::string not_saved;
  try {
    WriteFileDurably(saved, latest.signed_note);
  } catch (const Failure& f) {
    not_saved = f.message;
  }
  report["status"] = "fork-or-rollback";
  report["kind"] = rollback ? "rollback" : "fork";
  report["reason"] = std::string(why.message());
  if (not_saved.empty()) report[rollback ? "served" : "evidence"] = saved;
  if (!not_saved.empty()) report["saveError"] = not_saved;
  if (g.json) std::cout << Dump(report) << "\n";
  std::string where =
      !not_saved.empty() ? StrCat("the conflicting checkpoint could NOT be saved: ", not_saved)
      : rollback
          ? StrCat("the smaller checkpoint served is in ", saved,
                   "; not by itself proof of a fork: a rolled-back log and an old checkpoint replayed (a stale "
                   "cache, a man in the middle) look the same")
          : StrCat("the conflicting signed checkpoint is in ", saved, ": with the state, evidence anyone can check");
  std::cerr << "shredctl: FORK/ROLLBACK DETECTED: " << Shown(why.message()) << " (kept " << Shown(state_path) << "; "
            << Shown(where) << ")\n";
  return kForkDetected;
}

}  // namespace

int RunMonitor(const Global& g, const std::string& state_path, const std::string& vkey_path, LogSource& source) {
  const verify::NoteVerifier vkey = ReadVkey(vkey_path);
  const MonitorLock lock(state_path);
  std::optional<verify::Checkpoint> old;
  std::error_code ec;
  if (fs::exists(state_path, ec)) {
    auto c = verify::VerifyCheckpoint(ReadFileOrThrow(state_path), vkey);
    if (!c.ok()) {
      throw Failure{kVerifyFailed,
                    StrCat("state file ", state_path, " does not hold a checkpoint valid under ", vkey.name, ": ",
                           c.status().message()),
                    ""};
    }
    old = std::move(*c);
  }
  auto latest = verify::VerifyCheckpoint(source.Checkpoint(), vkey);
  if (!latest.ok()) {
    if (g.json) {
      std::cout << Dump(json{{"status", "invalid-checkpoint"}, {"reason", std::string(latest.status().message())}})
                << "\n";
    }
    std::cerr << "shredctl: " << source.Whose() << " checkpoint does NOT verify: " << Shown(latest.status().message())
              << "\n";
    return kVerifyFailed;
  }
  // A rollback or a same-size fork is proven by the two signed checkpoints
  // alone: it is reported even when the source's tiles for the older tree
  // are gone (a log removes partial tiles once they are full).
  const bool proven_by_checkpoints =
      old && (latest->size < old->size || (latest->size == old->size && latest->root != old->root));
  if (!proven_by_checkpoints) source.Check(*latest);
  json report{
      {"origin", latest->origin}, {"treeSize", latest->size}, {"rootHash", Hex(latest->root)}, {"state", state_path}};
  if (!old) {
    WriteFileDurably(state_path, latest->signed_note);
    report["status"] = "first";
    report["trustOnFirstUse"] = true;
    Emit(g, report,
         StrCat("trust on first use: no earlier checkpoint in ", Shown(state_path), "; stored ", Shown(latest->origin),
                " at tree size ", latest->size, " (root ", Hex(latest->root),
                "). Later runs check that the log only grows from here."));
    return kOk;
  }
  report["previousTreeSize"] = old->size;
  report["previousRootHash"] = Hex(old->root);
  std::vector<verify::Hash> proof;
  if (latest->size > old->size && old->size > 0) proof = source.ConsistencyProof(old->size, *latest);
  if (auto s = verify::VerifyCheckpointConsistency(*old, *latest, proof); !s.ok()) {
    return ReportConflict(g, report, state_path, *old, *latest, s);
  }
  if (latest->size == old->size) {
    report["status"] = "unchanged";
    Emit(g, report, StrCat("unchanged: ", Shown(latest->origin), " still at tree size ", latest->size));
    return kOk;
  }
  WriteFileDurably(state_path, latest->signed_note);
  report["status"] = "grown";
  Emit(g, report,
       StrCat("consistent: ", Shown(latest->origin), " grew from ", old->size, " to ", latest->size,
              " entries (consistency proof verified); stored the new checkpoint in ", state_path));
  return kOk;
}

namespace {

// The daemon over gRPC.
class GrpcLogSource : public LogSource {
 public:
  explicit GrpcLogSource(const Global& g) : stub_(LogStub(g)) {}
  std::string Whose() const override { return "the daemon's"; }
  std::string Checkpoint() override { return FetchCheckpoint(stub_.get()).checkpoint(); }
  std::vector<verify::Hash> ConsistencyProof(uint64_t m, const verify::Checkpoint& latest) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::GetConsistencyProofRequest req;
    req.set_first(m);
    req.set_second(latest.size);
    v1::GetConsistencyProofResponse pr;
    grpc::Status s = stub_->GetConsistencyProof(&ctx, req, &pr);
    if (!s.ok()) throw FromGrpc(s, StrCat("fetching the consistency proof ", m, " -> ", latest.size, " failed"));
    std::vector<verify::Hash> proof;
    for (const auto& h : pr.hashes()) {
      if (h.size() != 32) throw Failure{kFail, "the daemon sent a malformed consistency proof hash", ""};
      verify::Hash x;
      std::memcpy(x.data(), h.data(), 32);
      proof.push_back(x);
    }
    return proof;
  }

 private:
  std::unique_ptr<v1::Log::Stub> stub_;
};

int CmdMonitor(const Global& g, const std::string& state_path, const std::string& vkey_path, const std::string& tiles) {
  if (!tiles.empty()) {
    auto source = TilesLogSource(tiles);
    return RunMonitor(g, state_path, vkey_path, *source);
  }
  GrpcLogSource source(g);
  return RunMonitor(g, state_path, vkey_path, source);
}

}  // namespace

void AddLogCommands(Commands cmds) {
  CLI::App* log = cmds.app.add_subcommand("log", "the transparency log: checkpoints, entries, proofs, monitoring");
  log->require_subcommand(1);
  Global& g = cmds.global;
  std::function<int()>& action = cmds.action;

  // Option storage: shared by the callbacks, which the app owns, so it
  // lives exactly as long as the app.
  struct Opts {
    uint64_t index = 0;
    std::optional<uint64_t> verify_index;
    std::string out, entry, proof, vkey, state, tiles;
  };
  auto op = std::make_shared<Opts>();
  Opts& o = *op;

  auto* c_cp = log->add_subcommand("checkpoint", "print the latest signed checkpoint (C2SP signed note)");
  c_cp->add_option("-o,--output", o.out, "also write it to FILE");
  c_cp->callback([op, &g, &action] { action = [op, &g] { return CmdCheckpoint(g, op->out); }; });

  auto* c_entry = log->add_subcommand("entry", "print an entry's exact bytes");
  c_entry->add_option("index", o.index, "entry index (from 0)")->required();
  c_entry->add_option("-o,--output", o.out, "write to FILE instead of stdout");
  c_entry->callback([op, &g, &action] { action = [op, &g] { return CmdEntry(g, op->index, op->out); }; });

  auto* c_proof =
      log->add_subcommand("proof", "print a c2sp.org/tlog-proof@v1 for an entry, against the latest checkpoint");
  c_proof->add_option("index", o.index, "entry index (from 0)")->required();
  c_proof->add_option("-o,--output", o.out, "write to FILE instead of stdout");
  c_proof->callback([op, &g, &action] { action = [op, &g] { return CmdProof(g, op->index, op->out); }; });

  auto* c_verify = log->add_subcommand(
      "verify", "verify an entry against a tlog-proof, or against the log's tiles (no daemon needed)");
  c_verify->add_option("--entry", o.entry, "the entry's exact bytes")->required()->check(CLI::ExistingFile);
  auto* proof_opt = c_verify->add_option("--proof", o.proof, "the tlog-proof file")->check(CLI::ExistingFile);
  auto* tiles_opt = c_verify->add_option("--tiles", o.tiles, kTilesOptionHelp);
  proof_opt->excludes(tiles_opt);
  c_verify->add_option("--vkey", o.vkey, "the log's signed-note verifier key")->required()->check(CLI::ExistingFile);
  c_verify->add_option("--index", o.verify_index, "require the proof to be for this index");
  c_verify->callback([op, &g, &action] {
    if (op->proof.empty() && op->tiles.empty()) throw CLI::ValidationError("--proof or --tiles is required");
    action = [op, &g] {
      if (!op->tiles.empty()) return CmdLogVerifyTiles(g, op->entry, op->tiles, op->vkey, op->verify_index);
      return CmdLogVerify(g, op->entry, op->proof, op->vkey, op->verify_index);
    };
  });

  auto* c_mon =
      log->add_subcommand("monitor", "check that the log only grew since the last run (exit 7 on a fork or rollback)");
  c_mon->add_option("--state", o.state, "file holding the last checkpoint seen (created on first use)")->required();
  c_mon->add_option("--vkey", o.vkey, "the log's signed-note verifier key")->required()->check(CLI::ExistingFile);
  c_mon->add_option("--tiles", o.tiles, kTilesOptionHelp);
  c_mon->callback([op, &g, &action] { action = [op, &g] { return CmdMonitor(g, op->state, op->vkey, op->tiles); }; });
}

}  // namespace shredd::cli
