#include "client/cli_common.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include <openssl/evp.h>

#include "client/sigstore_bundle.h"
#include "daemon/base/bounded_queue.h"
#include "daemon/base/strings.h"
#include "formats/encoding.h"
#include "formats/text.h"

namespace shredd::cli {

namespace fs = std::filesystem;
using nlohmann::json;
using ::shredd::StrCat;

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::INTERNAL:
      return "INTERNAL";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

int ExitCodeFor(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK:
      return kOk;
    case grpc::NOT_FOUND:
      return kNotFound;
    case grpc::UNAVAILABLE:
      return kUnavailable;
    case grpc::FAILED_PRECONDITION:
    case grpc::ALREADY_EXISTS:
    case grpc::PERMISSION_DENIED:
      return kRefused;
    default:
      return kFail;
  }
}

std::string Explain(const grpc::Status& s) {
  std::string msg = s.error_message();
  if (s.error_code() == grpc::UNAVAILABLE)
    msg += " (is shredd running? check --server, SHREDD_SERVER or shredctl config show)";
  // gRPC's own refusal when the daemon serves [server] max_calls calls already.
  if (RefusedForMaxCalls(s))
    msg += " (the daemon is serving its [server] max_calls calls at once; retry, or run fewer at once)";
  // gRPC's status for a call the daemon cancelled (it sends no message then).
  if (s.error_code() == grpc::CANCELLED && msg == "Cancelled")
    msg +=
        " (by the daemon: a transfer that moves nothing for [storage] transfer_idle_s is ended, e.g. output left "
        "unread; or it is shutting down)";
  return msg;
}

bool RefusedForMaxCalls(const grpc::Status& s) {
  return s.error_code() == grpc::RESOURCE_EXHAUSTED && s.error_message() == "Server Threadpool Exhausted";
}

bool BackOffForMaxCalls(int attempt) {
  constexpr int kAttempts = 12;  // 0.1 + 0.2 + ... capped at 4 s: ~30 s in all
  if (attempt > kAttempts) return false;
  const int cap_ms = std::min(4000, 100 << std::min(attempt - 1, 6));
  // Full jitter, so that many refused clients do not come back in step.
  std::this_thread::sleep_for(std::chrono::milliseconds(cap_ms / 2 + std::rand() % (cap_ms / 2 + 1)));
  return true;
}

Failure FromGrpc(const grpc::Status& s, std::string_view what) {
  return {ExitCodeFor(s.error_code()), StrCat(what, ": ", Explain(s)), CodeName(s.error_code())};
}

Failure FromStatus(const absl::Status& s, int code) { return {code, std::string(s.message()), ""}; }

std::string ReadFileOrThrow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure{kFail, StrCat("cannot read ", path), ""};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FileDigest DigestFile(const std::string& path, bool follow) {
  int fd = OpenRegularFile(path, follow);
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
      if (g.tls_ca.empty())
        throw Failure{kUsage, "TLS needs --tls-ca (the CA that signed the daemon's certificate)", ""};
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

std::string Shown(std::string_view s) { return verify::EscapeText(s); }

std::string DumpJson(const json& j) { return j.dump(-1, ' ', true, json::error_handler_t::replace); }

void Emit(const Global& g, const json& j, const std::string& text) {
  if (g.json) {
    std::cout << DumpJson(j) << "\n";
  } else if (!text.empty()) {
    std::string_view rest = text;
    for (size_t nl; (nl = rest.find('\n')) != std::string_view::npos; rest.remove_prefix(nl + 1)) {
      std::cout << Shown(rest.substr(0, nl)) << "\n";
    }
    std::cout << Shown(rest) << "\n";
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
  int fd = OpenRegularFile(path, true);
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

UploadResult StreamFileHashing(const Global& g, const std::string& path, uint64_t size, shredd::v1::PutHeader header,
                               const std::function<void(uint64_t)>& on_bytes, FileDigest* digest, bool follow,
                               bool client_hash) {
  int fd = OpenRegularFile(path, follow);
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  auto stub = shredd::v1::Store::NewStub(Connect(g));
  grpc::ClientContext ctx;
  shredd::v1::PutResponse resp;
  auto writer = stub->Put(&ctx, &resp);
  shredd::v1::PutRequest req;
  header.mutable_digest()->clear_hash();  // declared in the trailer, or the daemon's
  header.mutable_digest()->set_size_bytes(static_cast<int64_t>(size));
  header.set_daemon_digest(!client_hash);
  *req.mutable_header() = std::move(header);
  bool ok = writer->Write(req);
  // Reader thread: read and hash; this thread: serialise and send.
  BoundedQueue<std::string> queue(4);
  // Sent buffers go back to the reader: no zero-filling and page-faulting
  // of a fresh 4 MiB buffer per message.
  BoundedQueue<std::string> spare(8);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  std::string read_error;
  std::thread reader([&] {
    uint64_t left = size;
    while (left > 0) {
      const size_t want = std::min<uint64_t>(kUploadMessage, left);
      std::string buf = spare.TryPop().value_or(std::string());
      buf.resize(want);
      size_t got = 0;
      while (got < buf.size()) {
        ssize_t n = read(fd, buf.data() + got, buf.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          read_error = StrCat("cannot read ", path, ": ", std::strerror(errno));
          break;
        }
        if (n == 0) {
          read_error = StrCat(path, " shrank while it was being uploaded");
          break;
        }
        got += static_cast<size_t>(n);
      }
      if (!read_error.empty()) break;
      if (client_hash) EVP_DigestUpdate(md, buf.data(), buf.size());
      left -= buf.size();
      if (!queue.Push(buf)) break;  // the call ended early
    }
    if (read_error.empty() && left == 0) {
      char extra;
      ssize_t n;
      do n = read(fd, &extra, 1);
      while (n < 0 && errno == EINTR);
      if (n > 0) read_error = StrCat(path, " grew while it was being uploaded");
    }
    queue.Close();
  });
  while (ok) {
    auto buf = queue.Pop();
    if (!buf) break;
    const uint64_t n = buf->size();
    req.set_data(std::move(*buf));
    ok = writer->Write(req);
    if (ok && on_bytes) on_bytes(n);
    std::string used = std::move(*req.mutable_data());
    (void)spare.Push(used);  // never blocks: at most 6 buffers exist
  }
  queue.Cancel();
  reader.join();
  close(fd);
  unsigned char h[32];
  unsigned int hl = 0;
  EVP_DigestFinal_ex(md, h, &hl);
  EVP_MD_CTX_free(md);
  digest->hash = StrCat("sha256:", verify::HexEncode(std::string_view(reinterpret_cast<char*>(h), 32)));
  digest->size = size;
  if (!read_error.empty()) {
    digest->hash.clear();  // of the bytes read so far: meaningless
    // Never declare a digest for bytes we could not read: the daemon stores nothing.
    ctx.TryCancel();
    (void)writer->Finish();
    return {grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, StrCat(read_error, "; nothing was stored")), false};
  }
  if (ok && client_hash) {
    req.Clear();
    req.mutable_trailer()->mutable_digest()->set_hash(digest->hash);
    req.mutable_trailer()->mutable_digest()->set_size_bytes(static_cast<int64_t>(size));
    ok = writer->Write(req);
  }
  if (ok) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!client_hash) digest->hash = status.ok() ? resp.digest().hash() : std::string();
  return {status, resp.already_present()};
}

namespace {
constexpr size_t kDirectAlign = kDirectIoAlign, kDirectBuffer = 8 << 20;
}

OutputWriter::OutputWriter(int fd, bool direct, bool writeback) : fd_(fd), direct_(direct), writeback_(writeback) {
  if (direct_) {
    for (auto& b : bufs_) b = std::make_unique<DirectIoBuffer>(kDirectBuffer);
    if (bufs_[0]->data() == nullptr || bufs_[1]->data() == nullptr) {
      direct_ = false;
      int fl = fcntl(fd_, F_GETFL);
      if (fl >= 0) (void)fcntl(fd_, F_SETFL, fl & ~O_DIRECT);
    }
  }
}

OutputWriter::~OutputWriter() { (void)WaitForWrite(); }

int OutputWriter::WriteAt(const char* p, size_t n, uint64_t at) {
  while (n > 0) {
    ssize_t w = pwrite(fd_, p, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL && direct_ && !fell_back_) {
      fell_back_ = true;  // O_DIRECT refused: buffered through the same buffers
      int fl = fcntl(fd_, F_GETFL);
      if (fl < 0 || fcntl(fd_, F_SETFL, fl & ~O_DIRECT) != 0) return errno;
      continue;
    }
    if (w < 0) return errno;
    p += w;
    n -= static_cast<size_t>(w);
    at += static_cast<uint64_t>(w);
  }
  return 0;
}

bool OutputWriter::WriteAll(const char* p, size_t n) {
  if (writeback_) {  // our own file: positional writes
    if (int e = WriteAt(p, n, written_); e != 0) {
      errno = e;
      return false;
    }
    written_ += n;
    return true;
  }
  while (n > 0) {  // stdout: at whatever offset the descriptor has
    ssize_t w = write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
  return true;
}

bool OutputWriter::WaitForWrite() {
  if (!in_flight_.valid()) return true;
  if (int e = in_flight_.get(); e != 0) {
    errno = e;
    return false;
  }
  return true;
}

bool OutputWriter::Flush(size_t length) {
  if (!WaitForWrite()) return false;
  if (int e = WriteAt(buffer(), length, written_); e != 0) {
    errno = e;
    return false;
  }
  written_ += length;
  fill_ = 0;
  return true;
}

bool OutputWriter::StartFullBufferWrite() {
  if (!WaitForWrite()) return false;
  in_flight_ =
      std::async(std::launch::async, [this, p = buffer(), at = written_] { return WriteAt(p, kDirectBuffer, at); });
  written_ += kDirectBuffer;
  current_ ^= 1;
  fill_ = 0;
  return true;
}

bool OutputWriter::Write(std::string_view data) {
  if (direct_) {
    while (!data.empty()) {
      size_t n = std::min(data.size(), kDirectBuffer - fill_);
      std::memcpy(buffer() + fill_, data.data(), n);
      fill_ += n;
      data.remove_prefix(n);
      if (fill_ == kDirectBuffer && !StartFullBufferWrite()) return false;
    }
    return true;
  }
  if (!WriteAll(data.data(), data.size())) return false;
  if (!writeback_) return true;
  constexpr uint64_t kStep = 8 << 20, kWindow = 64 << 20;
  if (written_ - started_ < kStep) return true;
  (void)sync_file_range(fd_, static_cast<off_t>(started_), static_cast<off_t>(written_ - started_),
                        SYNC_FILE_RANGE_WRITE);
  started_ = written_;
  if (started_ - waited_ > kWindow) {
    uint64_t upto = started_ - kWindow / 2;
    (void)sync_file_range(fd_, static_cast<off_t>(waited_), static_cast<off_t>(upto - waited_),
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    waited_ = upto;
  }
  return true;
}

bool OutputWriter::Finish() {
  if (!direct_) return true;
  if (fill_ == 0) return WaitForWrite();
  const uint64_t length = written_ + fill_;
  size_t padded = (fill_ + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  std::memset(buffer() + fill_, 0, padded - fill_);
  if (!Flush(padded)) return false;
  if (ftruncate(fd_, static_cast<off_t>(length)) != 0) return false;
  written_ = length;
  return true;
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

grpc::Status StreamManifest(shredd::v1::Shredder::Stub* stub, const std::string& certificate_id,
                            const std::function<void(std::string_view)>& sink) {
  grpc::ClientContext ctx;
  shredd::v1::GetCertificateRequest req;
  req.set_certificate_id(certificate_id);
  auto reader = stub->GetManifest(&ctx, req);
  shredd::v1::ManifestChunk chunk;
  while (reader->Read(&chunk)) sink(chunk.data());
  return reader->Finish();
}

// A manifest too large for one message, streamed into its file.
void StreamManifestTo(shredd::v1::Shredder::Stub* stub, const std::string& certificate_id, const std::string& path) {
  OutputFile f(path, Privacy::kPrivate);
  bool written = true;
  grpc::Status ms = StreamManifest(stub, certificate_id, [&](std::string_view piece) {
    OutputWriter w(f.fd(), false, false);
    written = written && w.Write(piece);
  });
  if (!ms.ok()) throw FromGrpc(ms, "manifest download failed");
  if (!written) throw Failure{kFail, StrCat("cannot write ", path, ": ", std::strerror(errno)), ""};
  f.Commit();
}

namespace {

std::string DefaultManifestPath(const std::string& cert_path) {
  std::string base = cert_path;
  if (base.ends_with(".json")) base.resize(base.size() - 5);
  return base + ".manifest.json";
}

}  // namespace

std::vector<WrittenFile> WriteCertificateFiles(shredd::v1::Shredder::Stub* stub, const shredd::v1::ShredResponse& resp,
                                               const std::string& out, std::string manifest_out) {
  std::vector<WrittenFile> files;
  if (out.empty() && manifest_out.empty()) return files;
  if (manifest_out.empty()) manifest_out = DefaultManifestPath(out);
  if (!out.empty()) {
    WriteFileOrThrow(out, resp.certificate(), Privacy::kPublic);
    files.push_back({"certificate", out, false, "the signed deletion certificate"});
  }
  if (!out.empty() && !resp.tlog_proof().empty()) {
    WriteFileOrThrow(TlogProofPath(out), resp.tlog_proof(), Privacy::kPublic);
    files.push_back({"tlogProof", TlogProofPath(out), false, "its transparency-log inclusion proof"});
  }
  // An auditor gets no private manifest (docs/SECURITY.md): write none.
  const bool has_manifest = !resp.manifest().empty() || resp.manifest_omitted();
  if (!resp.manifest().empty()) {
    WriteFileOrThrow(manifest_out, resp.manifest(), Privacy::kPrivate);
  } else if (resp.manifest_omitted()) {
    StreamManifestTo(stub, resp.certificate_id(), manifest_out);
  }
  if (has_manifest) {
    files.push_back({"manifest", manifest_out, true,
                     "every deleted item's digest and salt; for the regulator and the operator only"});
  }
  // Last: the private manifest is on disk whatever happens here.
  if (!out.empty()) {
    files.push_back({"sigstoreBundle", WriteSigstoreBundle(out, resp.certificate()), false,
                     "the certificate as a Sigstore bundle (cosign, sigstore-js)"});
  }
  return files;
}

std::string WrittenFilesText(const std::vector<WrittenFile>& files) {
  size_t width = 0;
  for (const WrittenFile& f : files) width = std::max(width, Shown(f.path).size());
  std::string text;
  for (const WrittenFile& f : files) {
    std::string path = Shown(f.path);
    path.resize(width, ' ');
    StrAppend(&text, "\n  ", path, "  ", f.is_private ? "PRIVATE (mode 0600): " : "public: ", f.what);
  }
  return text;
}

nlohmann::json WrittenFilesJson(const std::vector<WrittenFile>& files) {
  nlohmann::json j = nlohmann::json::array();
  for (const WrittenFile& f : files) j.push_back({{"path", f.path}, {"private", f.is_private}, {"contents", f.what}});
  return j;
}

std::vector<WrittenFile> WriteCertificate(const Global& g, const std::string& certificate_id, const std::string& out,
                                          const std::string& manifest_out) {
  auto stub = shredd::v1::Shredder::NewStub(Connect(g));
  shredd::v1::GetCertificateRequest req;
  req.set_certificate_id(certificate_id);
  grpc::ClientContext ctx;
  shredd::v1::ShredResponse resp;
  grpc::Status s = stub->GetCertificate(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, "certificate lookup failed");
  return WriteCertificateFiles(stub.get(), resp, out, manifest_out);
}

}  // namespace shredd::cli
