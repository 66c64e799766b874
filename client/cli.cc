#include "client/cli.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shredd/v1/shredd.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "client/cli_common.h"
#include "client/cli_config.h"
#include "client/cli_usage.h"
#include "client/completion.h"
#include "client/order_review.h"
#include "client/progress.h"
#include "client/sigstore_bundle.h"
#include "client/web_verifier.h"
#include "daemon/base/bounded_queue.h"
#include "daemon/base/strings.h"
#include "formats/certificate.h"
#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "proto/raw_wire.h"

namespace shredd::cli {
using ::shredd::StrCat;
namespace {

namespace fs = std::filesystem;
namespace v1 = shredd::v1;
using nlohmann::json;

json InfoJson(const v1::ItemInfo& info) {
  json j;
  j["digest"] = info.digest().hash();
  j["size"] = info.digest().size_bytes();
  j["kind"] = info.metadata().kind() == v1::KIND_MODEL ? "model" : "photo";
  j["subjects"] = std::vector<std::string>(info.metadata().subject_ids().begin(), info.metadata().subject_ids().end());
  j["datasets"] = std::vector<std::string>(info.metadata().datasets().begin(), info.metadata().datasets().end());
  j["labels"] = std::map<std::string, std::string>(info.metadata().labels().begin(), info.metadata().labels().end());
  j["name"] = info.metadata().name();
  j["storedUnixNanos"] = info.stored_unix_nanos();
  return j;
}

// ---------------------------------------------------------------- get

// One GetResponse read as raw bytes: its content as views into gRPC's
// receive buffers when the daemon framed it as usual (proto/raw_wire.h),
// else as protobuf parsed it.
struct Received {
  std::vector<grpc::Slice> slices;  // what `parts` point into
  std::vector<std::string_view> parts;
  std::string parsed;
  size_t size() const {
    size_t n = parsed.size();
    for (std::string_view p : parts) n += p.size();
    return n;
  }
};

bool ParseGetResponse(grpc::ByteBuffer* buffer, Received* out, int64_t* total_size) {
  if (!buffer->Dump(&out->slices).ok()) return false;
  uint64_t total = 0;
  if (raw_wire::SplitBytesField(out->slices, v1::GetResponse::kTotalSizeFieldNumber, v1::GetResponse::kDataFieldNumber,
                                &out->parts, &total)) {
    *total_size = static_cast<int64_t>(total);
    return true;
  }
  v1::GetResponse r;
  if (!r.ParseFromString(raw_wire::Flatten(out->slices))) return false;
  out->slices.clear();
  out->parts.clear();
  out->parsed = std::move(*r.mutable_data());
  *total_size = r.total_size();
  return true;
}

// Store.Get with its replies as raw bytes (the request as usual).
std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> StartRawGet(grpc::Channel* channel, grpc::ClientContext* ctx,
                                                                  const v1::GetRequest& req) {
  static const std::string kMethod = StrCat("/", v1::Store::service_full_name(), "/Get");
  const grpc::internal::RpcMethod method(kMethod.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING);
  return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel, method, ctx, req));
}

// A download under way: its call and its first reply. A call that gRPC
// refused beyond the daemon's [server] max_calls (before any byte, so nothing
// ran) is made again after a backoff, as `put` does.
struct RawGet {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader;
  grpc::ByteBuffer first;
  bool has_first = false;
  std::optional<grpc::Status> ended;  // the call ended before a first reply (Finish() was called)
};

RawGet OpenRawGet(grpc::Channel* channel, const v1::GetRequest& req) {
  for (int attempt = 1;; ++attempt) {
    RawGet get;
    get.ctx = std::make_unique<grpc::ClientContext>();
    get.reader = StartRawGet(channel, get.ctx.get(), req);
    get.has_first = get.reader->Read(&get.first);
    if (get.has_first) return get;
    get.ended = get.reader->Finish();
    if (!RefusedForMaxCalls(*get.ended) || !BackOffForMaxCalls(attempt)) return get;
  }
}

int CmdGet(const Global& g, const std::string& digest, const std::string& out_path, int64_t offset, int64_t length) {
  // Plaintext: a private file (0600) that gets its name only once every
  // byte is written and checked; nothing is left behind on a failure.
  std::optional<OutputFile> file;
  int fd = STDOUT_FILENO;
  bool direct = false, writeback = false;
  if (!out_path.empty()) {
    file.emplace(out_path, Privacy::kPrivate, true);
    fd = file->fd();
    direct = file->direct();
    writeback = !file->in_place();
  }
  auto channel = Connect(g);
  v1::GetRequest req;
  req.mutable_digest()->set_hash(digest);
  req.set_offset(offset);
  req.set_limit(length);
  RawGet get = OpenRawGet(channel.get(), req);
  auto& ctx = *get.ctx;
  auto& reader = get.reader;
  const bool whole = offset == 0 && length == 0;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  // This thread receives; a writer thread hashes and writes (and starts
  // writeback of the output file as it goes), with a bounded queue between.
  BoundedQueue<Received> queue(8);
  bool write_error = false;
  int write_errno = 0;
  std::thread writer([&] {
    OutputWriter out(fd, direct, writeback);
    bool ok = true;
    auto write = [&](std::string_view d) {
      EVP_DigestUpdate(md, d.data(), d.size());
      return out.Write(d);
    };
    while (ok) {
      auto d = queue.Pop();
      if (!d) break;
      for (std::string_view p : d->parts) ok = ok && write(p);
      ok = ok && write(d->parsed);
    }
    if (ok && !out.Finish()) ok = false;
    if (!ok) {
      write_error = true;
      write_errno = errno;
      queue.Cancel();
    }
  });
  grpc::ByteBuffer& buffer = get.first;
  uint64_t received = 0;
  bool malformed = false;
  std::optional<Progress> progress;
  for (bool more = get.has_first; more; more = reader->Read(&buffer)) {
    Received d;
    int64_t total_size = 0;
    if (!ParseGetResponse(&buffer, &d, &total_size)) {
      malformed = true;
      ctx.TryCancel();
      break;
    }
    if (!progress) {
      uint64_t expect = length ? static_cast<uint64_t>(length) : static_cast<uint64_t>(total_size - offset);
      progress.emplace("get", expect, !g.quiet && !out_path.empty());
    }
    const size_t n = d.size();
    if (!queue.Push(d)) {  // the writer failed
      ctx.TryCancel();
      break;
    }
    received += n;
    progress->Add(n);
  }
  queue.Close();
  writer.join();
  grpc::Status s = get.ended ? *get.ended : reader->Finish();
  unsigned char h[32];
  unsigned int hl = 0;
  EVP_DigestFinal_ex(md, h, &hl);
  EVP_MD_CTX_free(md);
  if (progress) progress->Finish();
  auto fail = [](Failure f) { throw f; };  // ~OutputFile discards the bytes
  if (write_error) fail(Failure{kFail, StrCat("cannot write output: ", std::strerror(write_errno)), ""});
  if (malformed) fail(Failure{kFail, "the daemon sent a reply that is not a GetResponse; discarded", "DATA_LOSS"});
  if (!s.ok()) fail(FromGrpc(s, "download failed"));
  if (whole) {
    std::string got = StrCat("sha256:", verify::HexEncode(std::string_view(reinterpret_cast<char*>(h), 32)));
    if (got != digest) {
      fail(Failure{kFail, StrCat("downloaded bytes hash to ", got, ", not ", digest, "; discarded"), "DATA_LOSS"});
    }
  }
  if (file) {
    file->Commit();
    if (g.json) std::cout << DumpJson(json{{"digest", digest}, {"path", out_path}, {"bytes", received}}) << "\n";
  }
  return kOk;
}

// ---------------------------------------------------------------- stat, ls

int CmdStat(const Global& g, const std::string& digest) {
  auto stub = v1::Store::NewStub(Connect(g));
  grpc::ClientContext ctx;
  v1::StatRequest req;
  req.mutable_digest()->set_hash(digest);
  v1::ItemInfo info;
  grpc::Status s = stub->Stat(&ctx, req, &info);
  if (!s.ok()) throw FromGrpc(s, "stat failed");
  json j = InfoJson(info);
  std::ostringstream t;
  t << "digest:   " << Shown(info.digest().hash()) << "\nsize:     " << info.digest().size_bytes()
    << "\nkind:     " << j["kind"].get<std::string>() << "\nname:     " << Shown(info.metadata().name());
  for (const auto& sj : info.metadata().subject_ids()) t << "\nsubject:  " << Shown(sj);
  for (const auto& d : info.metadata().datasets()) t << "\ndataset:  " << Shown(d);
  for (const auto& [k, v] : info.metadata().labels()) t << "\nlabel:    " << Shown(k) << "=" << Shown(v);
  Emit(g, j, t.str());
  return kOk;
}

int CmdLs(const Global& g, const std::string& kind, const std::string& subject, const std::string& dataset,
          const std::vector<std::string>& labels, int64_t limit) {
  auto stub = v1::Store::NewStub(Connect(g));
  v1::ListRequest req;
  if (kind == "photo")
    req.set_kind(v1::KIND_PHOTO);
  else if (kind == "model")
    req.set_kind(v1::KIND_MODEL);
  else if (!kind.empty())
    throw Failure{kUsage, "--kind must be photo or model", ""};
  req.set_subject_id(subject);
  req.set_dataset(dataset);
  for (const auto& l : labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos) throw Failure{kUsage, StrCat("--label \"", l, "\" is not key=value"), ""};
    (*req.mutable_labels())[l.substr(0, eq)] = l.substr(eq + 1);
  }
  int64_t shown = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListResponse resp;
    grpc::Status s = stub->List(&ctx, req, &resp);
    if (!s.ok()) throw FromGrpc(s, "list failed");
    for (const auto& info : resp.items()) {
      if (limit > 0 && shown >= limit) return kOk;
      json j = InfoJson(info);
      Emit(g, j,
           StrCat(Shown(info.digest().hash()), " ", info.digest().size_bytes(), " ", j["kind"].get<std::string>(), " ",
                  Shown(info.metadata().name())));
      ++shown;
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return kOk;
}

// ---------------------------------------------------------------- shred, certificates, keys

int WriteBundle(const Global& g, v1::Shredder::Stub* stub, const v1::ShredResponse& resp, const std::string& out,
                const std::string& manifest_out) {
  const std::vector<WrittenFile> files = WriteCertificateFiles(stub, resp, out, manifest_out);
  json j{{"certificateId", resp.certificate_id()}};
  for (const WrittenFile& f : files) j[f.key] = f.path;
  if (out.empty()) {
    if (g.json) {
      // The daemon's bytes: kept as a string if they are not JSON.
      json env = json::parse(resp.certificate(), nullptr, false);
      j["envelope"] = env.is_discarded() ? json(resp.certificate()) : std::move(env);
      std::cout << DumpJson(j) << "\n";
    } else {
      std::cout << resp.certificate() << "\n";
      if (!files.empty()) std::cerr << "files written:" << WrittenFilesText(files) << "\n";
    }
    return kOk;
  }
  j["files"] = WrittenFilesJson(files);
  Emit(g, j, StrCat("certificate ", Shown(resp.certificate_id()), "; files written:", WrittenFilesText(files)));
  return kOk;
}

struct ShredArgs {
  std::vector<std::string> digests;
  std::string reason, request_id;
  bool keep_models = false, yes = false;
};

int CmdShred(const Global& g, const ShredArgs& a, const std::string& out, const std::string& manifest_out) {
  auto stub = v1::Shredder::NewStub(Connect(g));
  v1::ShredRequest req;
  for (const auto& d : a.digests) req.add_digests()->set_hash(DigestArg(d));
  ConfirmOrThrow(a.yes, ShredSummary(a.digests, req), "Shred these items? They are destroyed for good.",
                 "not confirmed: nothing was shredded");
  req.set_reason(a.reason);
  req.set_request_id(a.request_id);
  req.set_keep_models(a.keep_models);
  grpc::ClientContext ctx;
  v1::ShredResponse resp;
  grpc::Status s = stub->Shred(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, "shred failed");
  return WriteBundle(g, stub.get(), resp, out, manifest_out);
}

int CmdCertificateGet(const Global& g, const std::string& id, const std::string& request_id, const std::string& out,
                      const std::string& manifest_out) {
  auto stub = v1::Shredder::NewStub(Connect(g));
  v1::GetCertificateRequest req;
  if (!id.empty())
    req.set_certificate_id(id);
  else
    req.set_request_id(request_id);
  grpc::ClientContext ctx;
  v1::ShredResponse resp;
  grpc::Status s = stub->GetCertificate(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, "certificate lookup failed");
  return WriteBundle(g, stub.get(), resp, out, manifest_out);
}

int CmdPubkey(const Global& g, const std::string& format, const std::string& out) {
  auto stub = v1::Shredder::NewStub(Connect(g));
  grpc::ClientContext ctx;
  v1::GetPublicKeyResponse resp;
  grpc::Status s = stub->GetPublicKey(&ctx, v1::GetPublicKeyRequest(), &resp);
  if (!s.ok()) throw FromGrpc(s, "cannot fetch the public key");
  std::string text;
  if (format == "pem")
    text = resp.spki_pem();
  else if (format == "vkey")
    text = resp.note_verifier_key() + "\n";
  else if (format == "hex")
    text = verify::HexEncode(resp.ed25519_public_key()) + "\n";
  else
    throw Failure{kUsage, "--format must be pem, vkey or hex", ""};
  if (!out.empty()) {
    WriteFileOrThrow(out, text, Privacy::kPublic);
  } else if (g.json) {
    std::cout << DumpJson(json{{"keyName", resp.key_name()},
                               {"pem", resp.spki_pem()},
                               {"vkey", resp.note_verifier_key()},
                               {"hex", verify::HexEncode(resp.ed25519_public_key())}})
              << "\n";
  } else {
    std::cout << text;
  }
  return kOk;
}

// ---------------------------------------------------------------- offline: verify, receipt

// Global flags. They are accepted before or after the command (the app
// falls through to them); what no flag gives comes from the environment,
// the client config file or the default (client/cli_config.h).
void AddGlobalOptions(CLI::App& app, Global& g) {
  app.add_option("--server", g.server,
                 "daemon address: unix:PATH or tcp:HOST:PORT (env SHREDD_SERVER; default unix:./var/shredd/shredd.sock "
                 "if it exists, else unix:/run/shredd/shredd.sock)");
  app.add_option("--tls-ca", g.tls_ca, "tcp: servers: PEM CA of the daemon's certificate (env SHREDD_TLS_CA)");
  app.add_option("--tls-cert", g.tls_cert, "tcp: servers: PEM client certificate (env SHREDD_TLS_CERT)");
  app.add_option("--tls-key", g.tls_key, "tcp: servers: PEM key of --tls-cert (env SHREDD_TLS_KEY)");
  app.add_option("--tls-server-name", g.tls_server_name,
                 "name to check the daemon's certificate against instead of HOST (env SHREDD_TLS_SERVER_NAME)");
  app.add_flag("--json", g.json, "machine-readable output (one JSON object per line)");
  app.add_flag("-q,--quiet", g.quiet, "no progress bar");
  app.add_flag_callback(
      "--version",
      [] {
        std::cout << "shredctl " << SHREDD_VERSION << "\n";
        std::exit(0);
      },
      "print the version and exit");
}

// put, get, stat, ls. Option storage is static: the callbacks run after
// this returns, while the app lives.
void AddItemCommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  AddPutCommand(app, g, action);  // cli_put.cc

  static std::string digest, out, kind, subject, dataset;
  static int64_t offset = 0, length = 0, limit = 0;
  static std::vector<std::string> labels;
  auto* c_get = app.add_subcommand("get", "download an item (or a byte range)");
  c_get->add_option("digest", digest, "sha256:<hex>")->required();
  c_get->add_option("-o,--output", out,
                    "write to FILE instead of stdout (- : stdout; a new file, named once checked; a pipe or a device "
                    "is written as the bytes come)");
  c_get->add_option("--offset", offset, "first byte")->check(CLI::NonNegativeNumber);
  c_get->add_option("--length", length, "number of bytes (0 = to the end)")->check(CLI::NonNegativeNumber);
  c_get->callback([&] {
    if (out == "-") out.clear();  // the usual spelling of stdout
    action = [&] { return CmdGet(g, digest, out, offset, length); };
  });

  auto* c_stat = app.add_subcommand("stat", "show an item's size and metadata");
  c_stat->add_option("digest", digest, "sha256:<hex>")->required();
  c_stat->callback([&] { action = [&] { return CmdStat(g, digest); }; });

  auto* c_ls = app.add_subcommand("ls", "list items");
  c_ls->add_option("--kind", kind, "photo or model");
  c_ls->add_option("--subject", subject, "only items of this subject id");
  c_ls->add_option("--dataset", dataset, "only items in this dataset");
  c_ls->add_option("--label", labels, "only items with label key=value (repeatable)");
  c_ls->add_option("--limit", limit, "at most N items")->check(CLI::NonNegativeNumber);
  c_ls->callback([&] { action = [&] { return CmdLs(g, kind, subject, dataset, labels, limit); }; });
}

// shred, certificate, pubkey, and the offline verify and receipt.
void AddCertificateCommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  static std::string out, manifest_out, request_id, format = "pem";
  static ShredArgs shred;
  auto* c_shred = app.add_subcommand("shred", "shred items and write the deletion certificate");
  c_shred->add_option("digests", shred.digests, "sha256:<hex> or a local file whose digest to use")->required();
  c_shred->add_option("--reason", shred.reason, "why (goes into the certificate)");
  c_shred->add_option("--request-id", shred.request_id, "idempotency key (default: derived from the digests)");
  c_shred->add_option("-o,--output", out, "write the certificate to FILE (default: stdout)");
  c_shred->add_option("--manifest", manifest_out, "write the private manifest to FILE (default: next to -o)");
  c_shred->add_flag("--keep-models", shred.keep_models,
                    "shred only what is named even if models trained on or derived from it would be left "
                    "(by default the daemon refuses; an order shreds them too)");
  c_shred->add_flag("-y,--yes", shred.yes, "do not ask for confirmation on a terminal");
  c_shred->callback([&] { action = [&] { return CmdShred(g, shred, out, manifest_out); }; });

  static std::string cert_id;
  auto* c_cert = app.add_subcommand("certificate", "fetch a certificate issued earlier");
  c_cert->add_option("id", cert_id, "certificate id");
  c_cert->add_option("--request-id", request_id, "look up by request id instead");
  c_cert->add_option("-o,--output", out, "write the certificate to FILE");
  c_cert->add_option("--manifest", manifest_out, "write the private manifest to FILE");
  c_cert->callback([&] {
    if (cert_id.empty() == request_id.empty()) throw CLI::ValidationError("give a certificate id or --request-id");
    action = [&] { return CmdCertificateGet(g, cert_id, request_id, out, manifest_out); };
  });

  auto* c_pub = app.add_subcommand("pubkey", "print the daemon's signing key");
  c_pub->add_option("--format", format, "pem (SPKI), vkey (C2SP signed-note verifier key) or hex")
      ->capture_default_str();
  c_pub->add_option("-o,--output", out, "write to FILE");
  c_pub->callback([&] { action = [&] { return CmdPubkey(g, format, out); }; });

  static std::string manifest_path;
  static std::vector<std::string> receipt_items;
  auto* c_receipt =
      app.add_subcommand("receipt", "derive items' receipts from a private manifest (offline; several: one bundle)");
  c_receipt->add_option("--manifest", manifest_path, "private manifest")->required()->check(CLI::ExistingFile);
  c_receipt->add_option("--item", receipt_items, "a file or sha256:<hex> (repeatable)")->required();
  c_receipt->add_option("-o,--output", out, "write to FILE");
  c_receipt->callback([&] { action = [&] { return CmdReceipt(g, manifest_path, receipt_items, out); }; });
}

}  // namespace

int Run(int argc, char** argv) {
  if (sodium_init() < 0) {
    std::cerr << "shredctl: libsodium failed to initialise\n";
    return kFail;
  }
  Global g;
  CLI::App app{"shredctl: store, shred and verify with shredd", "shredctl"};
  app.require_subcommand(1);
  // Inherited by every subcommand: a flag a command does not know is tried
  // as a global one, so `shredctl ls --json` works like `shredctl --json ls`.
  app.fallthrough();
  AddGlobalOptions(app, g);
  app.footer(kGlobalFlagsFooter);  // inherited by every command's --help

  std::function<int()> action;
  AddOrderCommands({app, g, action});
  AddLogCommands({app, g, action});
  AddAuditCommand({app, g, action});
  AddItemCommands(app, g, action);
  AddCertificateCommands(app, g, action);
  AddVerifyCommand({app, g, action});
  AddWebVerifierCommand({app, g, action});
  AddConfigCommand({app, g, action});
  AddCompletionCommands({app, g, action});

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string why = DiagnoseUsage(app, std::vector<std::string>(argv + 1, argv + argc));
    if (why.empty()) why = e.what();
    std::cerr << "shredctl: " << Shown(why) << " (see shredctl --help)\n";
    return kUsage;
  }
  try {
    // Scripts for shells and the manual need no settings (a broken config
    // file must not break every new shell).
    if (!app.got_subcommand("completion") && !app.got_subcommand("man")) (void)ResolveSettings(app, g);
    return action();
  } catch (const Failure& f) {
    std::cerr << "shredctl: " << Shown(f.message) << "\n";
    if (g.json) {
      json j{{"error", f.message}};
      if (!f.status.empty()) j["code"] = f.status;
      std::cout << DumpJson(j) << "\n";
    }
    return f.code;
  } catch (const std::exception& e) {
    // A backstop, not the way errors travel: every parser of untrusted
    // input returns a status. Whatever escaped still ends in one line and
    // a documented exit code instead of std::terminate (exit 134).
    std::cerr << "shredctl: internal error: " << Shown(e.what()) << "\n";
    return kFail;
  }
}

}  // namespace shredd::cli
