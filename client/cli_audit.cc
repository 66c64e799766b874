// shredctl log audit: proves from the whole log that every custody entry
// of a dataset is in its manifest and has a later deletion entry
// (docs/LOG.md, "Audit"). The algorithm and the commitment formulas are
// formats/commitment.h; this file fetches what it reads (from the daemon or
// the log's tiles) and reports.
#include <cctype>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "shredd/v1/log.grpc.pb.h"
#include "shredd/v1/orders.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/log_source.h"
#include "daemon/base/strings.h"
#include "formats/commitment.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/tiles.h"

namespace shredd::cli {
namespace {

namespace v1 = shredd::v1;
using nlohmann::json;
using ::shredd::StrCat;

struct AuditArgs {
  std::string dataset, vkey_path, manifest_path, tiles;
  std::vector<std::string> cert_manifest_paths;  // private manifests of certificates, given locally
};

// The log, from the daemon or from its tiles (--tiles), and the
// certificates' private manifests, from files given with --cert-manifest
// or else from the daemon (connected only when needed: an auditor with the
// tiles and every file needs no daemon). A failure is kept as the Failure
// shredctl ends with (its exit code says daemon, refusal, ...);
// AuditDataset hands the status back unchanged.
class CliAuditSource final : public verify::AuditSource {
 public:
  CliAuditSource(const Global& g, std::string tiles, std::map<std::string, std::string> local_manifests)
      : g_(g), tiles_(std::move(tiles)), local_(std::move(local_manifests)) {}

  absl::StatusOr<std::string> Checkpoint() override {
    if (!tiles_.empty()) {
      auto text = FetchTilesFile(tiles_, std::string(verify::kCheckpointPath));
      if (!text.ok())
        return Fail(Failure{kFail, StrCat("fetching the checkpoint failed: ", text.status().message()), ""});
      return text;
    }
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetCheckpointResponse resp;
    grpc::Status s = Log()->GetCheckpoint(&ctx, v1::GetCheckpointRequest(), &resp);
    if (!s.ok()) return Fail(FromGrpc(s, "fetching the checkpoint failed"));
    return resp.checkpoint();
  }

  absl::StatusOr<std::vector<std::string>> Entries(uint64_t start, uint64_t end) override {
    if (!tiles_.empty()) return BundleEntries(start, end);
    v1::GetEntriesRequest req;
    req.set_start(start);
    req.set_end(end);
    v1::GetEntriesResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = Log()->GetEntries(&ctx, req, &resp);
    if (!s.ok()) return Fail(FromGrpc(s, StrCat("cannot fetch log entries from ", start)));
    return std::vector<std::string>(resp.entries().begin(), resp.entries().end());
  }

  absl::StatusOr<std::string> CertificateManifest(const std::string& id) override {
    if (auto it = local_.find(id); it != local_.end()) return it->second;
    auto shredder = v1::Shredder::NewStub(Channel());
    v1::GetCertificateRequest cr;
    cr.set_certificate_id(id);
    v1::ShredResponse cresp;
    grpc::ClientContext ctx;
    grpc::Status s = shredder->GetCertificate(&ctx, cr, &cresp);
    if (!s.ok()) return Fail(FromGrpc(s, StrCat("cannot fetch the manifest of certificate ", id)));
    if (cresp.manifest_omitted()) {
      // Too large for one reply (over [shred] inline_manifest_items): streamed.
      std::string manifest;
      grpc::Status ms = StreamManifest(shredder.get(), id, [&](std::string_view piece) { manifest += piece; });
      if (!ms.ok()) return Fail(FromGrpc(ms, StrCat("cannot fetch the manifest of certificate ", id)));
      return manifest;
    }
    if (cresp.manifest().empty()) {
      return Fail(Failure{kRefused,
                          StrCat("the daemon gives this caller no private manifest for certificate ", id,
                                 " (auditors get none): pass it with --cert-manifest"),
                          ""});
    }
    return cresp.manifest();
  }

  const std::optional<Failure>& failure() const { return failure_; }

 private:
  static void Deadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  }

  std::shared_ptr<grpc::Channel> Channel() {
    if (!channel_) channel_ = Connect(g_);
    return channel_;
  }

  v1::Log::Stub* Log() {
    if (!log_) log_ = v1::Log::NewStub(Channel());
    return log_.get();
  }

  // From the entry bundle that holds `start`: the rest of it, up to `end`.
  absl::StatusOr<std::vector<std::string>> BundleEntries(uint64_t start, uint64_t end) {
    const uint64_t n = start / verify::kTileWidth;
    auto bundle = ReadEntryBundle(tiles_, n, end);
    if (!bundle.ok()) {
      return Fail(Failure{absl::IsDataLoss(bundle.status()) ? kVerifyFailed : kFail,
                          StrCat("reading the entry bundles failed: ", bundle.status().message()), ""});
    }
    return std::vector<std::string>(bundle->begin() + static_cast<std::ptrdiff_t>(start - n * verify::kTileWidth),
                                    bundle->end());
  }

  absl::Status Fail(Failure f) {
    failure_ = f;
    return absl::UnknownError(f.message);
  }

  const Global& g_;
  const std::string tiles_;
  std::map<std::string, std::string> local_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Log::Stub> log_;
  std::optional<Failure> failure_;
};

verify::NoteVerifier ReadAuditKey(const std::string& path) {
  std::string text = ReadFileOrThrow(path);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  auto verifier = verify::ParseNoteVerifierKey(text);
  if (!verifier.ok()) throw Failure{kUsage, StrCat("--vkey: ", verifier.status().message()), ""};
  return *verifier;
}

std::string DatasetManifestText(const Global& g, const AuditArgs& a) {
  if (!a.manifest_path.empty()) return ReadFileOrThrow(a.manifest_path);
  v1::DatasetManifestRequest req;
  req.set_name(a.dataset);
  grpc::ClientContext ctx;
  // Streamed: a dataset of millions of members has a manifest of hundreds
  // of MB, more than one reply may hold.
  auto reader = v1::Catalog::NewStub(Connect(g))->StreamDatasetManifest(&ctx, req);
  std::string text;
  v1::ManifestChunk chunk;
  while (reader->Read(&chunk)) text += chunk.data();
  grpc::Status s = reader->Finish();
  if (!s.ok()) throw FromGrpc(s, "cannot fetch the dataset manifest");
  return text;
}

// Certificates' private manifests handed over out of band (an auditor gets
// none from the daemon; docs/SECURITY.md), by certificate id.
std::map<std::string, std::string> LocalCertManifests(const std::vector<std::string>& paths) {
  std::map<std::string, std::string> out;
  for (const auto& path : paths) {
    std::string text = ReadFileOrThrow(path);
    auto id = verify::ManifestCertificateId(text);
    if (!id.ok()) {
      throw Failure{kVerifyFailed, StrCat(path, " is not a certificate's private manifest: ", id.status().message()),
                    ""};
    }
    out[*id] = std::move(text);
  }
  return out;
}

int Report(const Global& g, const std::string& dataset, const verify::DatasetAudit& audit) {
  json report{{"dataset", dataset},
              {"treeSize", audit.tree_size},
              {"members", audit.members},
              {"deleted", audit.deleted},
              {"notDeleted", json::array()}};
  std::ostringstream t;
  t << "dataset " << Shown(dataset) << ": " << audit.members << " custody entries, " << audit.deleted
    << " with a later verified deletion entry (the whole log read: " << audit.tree_size
    << " entries under its signed checkpoint)";
  for (const auto& nd : audit.not_deleted) {
    report["notDeleted"].push_back({{"digest", nd.digest}, {"custodyIndex", nd.custody_index}});
    t << "\n  NOT DELETED: " << Shown(nd.digest) << " (custody entry " << nd.custody_index << ")";
  }
  Emit(g, report, t.str());
  return audit.deleted == audit.members ? kOk : kFail;
}

// Every entry used is checked with a tlog-proof against a checkpoint signed
// by the vkey; certificates are verified under the same key. The dataset
// manifest is untrusted: a malformed one is a story that does not check,
// exit 3 like any other (exit 1 would read as "some members not deleted").
int CmdAudit(const Global& g, const AuditArgs& a) {
  const verify::NoteVerifier key = ReadAuditKey(a.vkey_path);
  const std::string manifest = DatasetManifestText(g, a);
  CliAuditSource source(g, a.tiles, LocalCertManifests(a.cert_manifest_paths));
  absl::StatusOr<verify::DatasetAudit> audit = verify::AuditDataset(a.dataset, manifest, key, source);
  if (!audit.ok()) {
    if (source.failure()) throw *source.failure();
    throw Failure{kVerifyFailed, std::string(audit.status().message()), ""};
  }
  return Report(g, a.dataset, *audit);
}

}  // namespace

void AddAuditCommand(Commands cmds) {
  CLI::App* log = cmds.app.get_subcommand("log");
  static AuditArgs aa;
  auto* audit =
      log->add_subcommand("audit", "prove from the log that a dataset's custody entries all have later deletions");
  audit->add_option("--dataset", aa.dataset, "dataset name")->required();
  audit->add_option("--vkey", aa.vkey_path, "the log's note verifier key (shredctl pubkey --format vkey)")
      ->required()
      ->check(CLI::ExistingFile);
  audit->add_option("--manifest", aa.manifest_path, "the dataset's private manifest (default: fetched from the daemon)")
      ->check(CLI::ExistingFile);
  audit->add_option("--tiles", aa.tiles, kTilesOptionHelp);
  audit
      ->add_option("--cert-manifest", aa.cert_manifest_paths,
                   "a certificate's private manifest, instead of fetching it (repeatable; for auditors, who get "
                   "none from the daemon)")
      ->check(CLI::ExistingFile);
  const Global& g = cmds.global;
  auto& action = cmds.action;
  audit->callback([&] { action = [&] { return CmdAudit(g, aa); }; });
}

}  // namespace shredd::cli
