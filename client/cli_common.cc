#include "client/cli_common.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "client/verify/encoding.h"
#include "daemon/strings.h"

namespace shredd::cli {

namespace fs = std::filesystem;
using nlohmann::json;
using ::shredd::StrCat;

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::INTERNAL: return "INTERNAL";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::DATA_LOSS: return "DATA_LOSS";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

Failure FromGrpc(const grpc::Status& s, std::string_view what) {
  int code = kFail;
  switch (s.error_code()) {
    case grpc::NOT_FOUND: code = kNotFound; break;
    case grpc::UNAVAILABLE: code = kUnavailable; break;
    case grpc::FAILED_PRECONDITION:
    case grpc::ALREADY_EXISTS:
    case grpc::PERMISSION_DENIED: code = kRefused; break;
    default: break;
  }
  std::string msg = StrCat(what, ": ", s.error_message());
  if (s.error_code() == grpc::UNAVAILABLE) msg += " (is shredd running? check --server / SHREDD_SERVER)";
  return {code, msg, CodeName(s.error_code())};
}

Failure FromStatus(const absl::Status& s, int code) { return {code, std::string(s.message()), ""}; }

std::string ReadFileOrThrow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure{kFail, StrCat("cannot read ", path), ""};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileOrThrow(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Failure{kFail, StrCat("cannot write ", path), ""};
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) throw Failure{kFail, StrCat("cannot write ", path), ""};
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Failure{kFail, StrCat("cannot write ", path, ": ", ec.message()), ""};
}

FileDigest DigestFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Failure{kFail, StrCat("cannot open ", path, ": ", std::strerror(errno)), ""};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(kStreamChunk);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      EVP_MD_CTX_free(ctx);
      throw Failure{kFail, StrCat("cannot read ", path), ""};
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  close(fd);
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return {StrCat("sha256:", verify::HexEncode(std::string_view(reinterpret_cast<char*>(md), 32))), total};
}

bool LooksLikeDigest(std::string_view s) { return s.starts_with("sha256:"); }

std::string DigestArg(const std::string& arg) {
  if (LooksLikeDigest(arg)) return arg;
  if (fs::is_regular_file(arg)) return DigestFile(arg).hash;
  return arg;  // the daemon will say what is wrong with it
}

std::shared_ptr<grpc::Channel> Connect(const Global& g) {
  std::string target = g.server;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(512 * 1024 * 1024);  // manifests of large orders
  args.SetMaxSendMessageSize(8 * 1024 * 1024);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (target.starts_with("tcp:")) {
    target = target.substr(4);
    const bool tls = !g.tls_ca.empty() || !g.tls_cert.empty() || !g.tls_key.empty();
    if (tls) {
      // Mutual TLS: the daemon's CA, and our certificate and key (the daemon
      // takes our roles from the certificate; docs/SECURITY.md).
      if (g.tls_ca.empty()) throw Failure{kUsage, "TLS needs --tls-ca (the CA that signed the daemon's certificate)", ""};
      if (g.tls_cert.empty() != g.tls_key.empty()) throw Failure{kUsage, "--tls-cert and --tls-key go together", ""};
      grpc::SslCredentialsOptions opts;
      opts.pem_root_certs = ReadFileOrThrow(g.tls_ca);
      if (!g.tls_cert.empty()) {
        opts.pem_cert_chain = ReadFileOrThrow(g.tls_cert);
        opts.pem_private_key = ReadFileOrThrow(g.tls_key);
      }
      creds = grpc::SslCredentials(opts);
      if (!g.tls_server_name.empty()) args.SetSslTargetNameOverride(g.tls_server_name);
    }
  }
  return grpc::CreateCustomChannel(target, creds, args);
}

void Emit(const Global& g, const json& j, const std::string& text) {
  if (g.json) {
    std::cout << j.dump() << "\n";
  } else if (!text.empty()) {
    std::cout << text << "\n";
  }
}

}  // namespace shredd::cli

namespace shredd::cli {

UploadResult StreamFile(const Global& g, const std::string& path, const FileDigest& digest,
                        shredd::v1::PutHeader header, const std::function<void(uint64_t)>& on_bytes) {
  auto stub = shredd::v1::Store::NewStub(Connect(g));
  grpc::ClientContext ctx;
  shredd::v1::PutResponse resp;
  auto writer = stub->Put(&ctx, &resp);
  shredd::v1::PutRequest req;
  header.mutable_digest()->set_hash(digest.hash);
  header.mutable_digest()->set_size_bytes(static_cast<int64_t>(digest.size));
  *req.mutable_header() = std::move(header);
  bool ok = writer->Write(req);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Failure{kFail, StrCat("cannot open ", path, ": ", std::strerror(errno)), ""};
  std::string buf(kStreamChunk, '\0');
  while (ok) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    req.Clear();
    req.set_data(buf.data(), static_cast<size_t>(n));
    ok = writer->Write(req);
    if (on_bytes) on_bytes(static_cast<uint64_t>(n));
  }
  close(fd);
  writer->WritesDone();
  return {writer->Finish(), resp.already_present()};
}

PutOutcome UploadFile(const Global& g, const std::string& path, const FileDigest& digest,
                      shredd::v1::PutHeader header) {
  UploadResult r = StreamFile(g, path, digest, std::move(header), {});
  if (!r.status.ok()) throw FromGrpc(r.status, StrCat("upload of ", path, " failed"));
  return {r.already_present};
}

std::string TlogProofPath(const std::string& cert_path) {
  std::string base = cert_path;
  if (base.ends_with(".json")) base.resize(base.size() - 5);
  return base + ".tlog-proof";
}

int WriteCertificate(const Global& g, const std::string& certificate_id, const std::string& out,
                     std::string manifest_out) {
  auto stub = shredd::v1::Shredder::NewStub(Connect(g));
  shredd::v1::GetCertificateRequest req;
  req.set_certificate_id(certificate_id);
  grpc::ClientContext ctx;
  shredd::v1::ShredResponse resp;
  grpc::Status s = stub->GetCertificate(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, "certificate lookup failed");
  if (manifest_out.empty() && !out.empty()) {
    manifest_out = out;
    if (manifest_out.ends_with(".json")) manifest_out.resize(manifest_out.size() - 5);
    manifest_out += ".manifest.json";
  }
  if (!out.empty()) WriteFileOrThrow(out, resp.certificate());
  // An auditor gets no private manifest (docs/SECURITY.md): write none.
  if (!manifest_out.empty() && !resp.manifest().empty()) WriteFileOrThrow(manifest_out, resp.manifest());
  if (!manifest_out.empty() && resp.manifest_omitted()) {
    // Too large for one message: stream it into the file.
    grpc::ClientContext mctx;
    shredd::v1::GetCertificateRequest mreq;
    mreq.set_certificate_id(resp.certificate_id());
    auto reader = stub->GetManifest(&mctx, mreq);
    const std::string tmp = manifest_out + ".part";
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Failure{kFail, StrCat("cannot write ", tmp), ""};
    shredd::v1::ManifestChunk chunk;
    while (reader->Read(&chunk)) f.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    grpc::Status ms = reader->Finish();
    f.close();
    if (!ms.ok() || !f) {
      std::remove(tmp.c_str());
      if (!ms.ok()) throw FromGrpc(ms, "manifest download failed");
      throw Failure{kFail, StrCat("cannot write ", manifest_out), ""};
    }
    if (std::rename(tmp.c_str(), manifest_out.c_str()) != 0) throw Failure{kFail, StrCat("cannot write ", manifest_out), ""};
  }
  if (!out.empty() && !resp.tlog_proof().empty()) WriteFileOrThrow(TlogProofPath(out), resp.tlog_proof());
  if (out.empty()) std::cout << resp.certificate() << "\n";
  return kOk;
}

}  // namespace shredd::cli
