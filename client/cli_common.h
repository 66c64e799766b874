// Shared pieces of shredctl's commands: global flags, errors, I/O helpers,
// the channel. Each command group (cli.cc, cli_log.cc, ...) registers its
// subcommands on the CLI11 app and sets `action`.
#ifndef SHREDD_CLIENT_CLI_COMMON_H_
#define SHREDD_CLIENT_CLI_COMMON_H_

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "shredd/v1/shredd.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "client/file_io.h"
#include "daemon/base/direct_buffer.h"

namespace shredd::cli {

enum Exit {
  kOk = 0,
  kFail = 1,
  kUsage = 2,
  kVerifyFailed = 3,
  kNotFound = 4,
  kUnavailable = 5,
  kRefused = 6,
  kForkDetected = 7
};

inline constexpr size_t kStreamChunk = 1 << 20;         // read size for hashing; Put message with a header digest
inline constexpr size_t kUploadMessage = 4 << 20;       // bytes per Put message when hashing while sending
inline constexpr uint64_t kBatchItemMax = 64 * 1024;    // files up to this go through BatchPut
inline constexpr size_t kBatchBytes = 3 * 1024 * 1024;  // below the daemon's 8 MiB message limit
inline constexpr size_t kBatchEntries = 1000;

struct Global {
  std::string server;
  bool json = false;
  bool quiet = false;
  // Mutual TLS for tcp: servers (env SHREDD_TLS_CA, SHREDD_TLS_CERT,
  // SHREDD_TLS_KEY, SHREDD_TLS_SERVER_NAME). Ignored for unix: servers.
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
};

// An error that ends the command: message plus exit code. Thrown by command
// code, caught in Run(), printed as one line.
struct Failure {
  int code;
  std::string message;
  std::string status;  // gRPC status name, if any
};

// What a command group needs to register its subcommands.
struct Commands {
  CLI::App& app;
  Global& global;
  std::function<int()>& action;
};

const char* CodeName(grpc::StatusCode c);
// The exit code for a call that failed with `c` (docs/CLI.md "Exit codes").
int ExitCodeFor(grpc::StatusCode c);
// A status's message with what to do about it where shredctl knows (the
// daemon unreachable, gRPC refusing a call beyond [server] max_calls).
std::string Explain(const grpc::Status& s);
// gRPC's refusal of a call beyond the daemon's [server] max_calls: refused
// before any handler ran, so always safe to make again.
bool RefusedForMaxCalls(const grpc::Status& s);
// Sleeps before attempt `attempt` (1, 2, ...) of a call refused so, or
// returns false once the attempts are used up (about 30 s in all).
bool BackOffForMaxCalls(int attempt);
Failure FromGrpc(const grpc::Status& s, std::string_view what);
Failure FromStatus(const absl::Status& s, int code);
std::string ReadFileOrThrow(const std::string& path);
// Writing files: WriteFileOrThrow and OutputFile in client/file_io.h.

struct FileDigest {
  std::string hash;  // sha256:<hex>
  uint64_t size = 0;
};
// Regular files only (OpenRegularFile); symlinks followed if `follow`.
FileDigest DigestFile(const std::string& path, bool follow = true);
bool LooksLikeDigest(std::string_view s);
// A digest argument: "sha256:<hex>" as given, or the digest of a local file.
std::string DigestArg(const std::string& arg);
std::shared_ptr<grpc::Channel> Connect(const Global& g);
// Streams a local file to Store.Put with `header` (digest and size are
// filled in from `digest`). Throws Failure on errors.
struct PutOutcome {
  bool already_present = false;
};
PutOutcome UploadFile(const Global& g, const std::string& path, const FileDigest& digest, shredd::v1::PutHeader header);
// The same, returning the call's status instead of throwing, and reporting
// each run of bytes sent to `on_bytes`.
struct UploadResult {
  grpc::Status status;
  bool already_present = false;
};
UploadResult StreamFile(const Global& g, const std::string& path, const FileDigest& digest,
                        shredd::v1::PutHeader header, const std::function<void(uint64_t)>& on_bytes);
// Streams `size` bytes of a local file to Store.Put and sets *digest. With
// `client_hash`, hashes them on a reader thread while they are sent and
// declares the digest in a trailer, which the daemon checks (end to end);
// without, asks the daemon to address the item by the digest of what it
// received (PutHeader.daemon_digest: one SHA-256 pass instead of two) and
// takes the digest from its reply. Fails (status INVALID_ARGUMENT, nothing
// stored) if the file does not have `size` bytes any more.
UploadResult StreamFileHashing(const Global& g, const std::string& path, uint64_t size, shredd::v1::PutHeader header,
                               const std::function<void(uint64_t)>& on_bytes, FileDigest* digest, bool follow,
                               bool client_hash);
// Writes a download to a file descriptor. For a file opened with O_DIRECT
// (`direct`): through aligned 8 MiB buffers (DirectIoBuffer), the tail padded and then
// truncated (fresh page-cache pages are what made buffered writes slow on
// the benchmark machine; see docs/PERFORMANCE.md). Otherwise buffered; with
// `writeback`, writeback is started as the file grows, so that the fsync at
// the end does not write all of it at once. Falls back to buffered writes if
// the file system refuses O_DIRECT writes. Without `direct` and `writeback`
// (stdout), plain sequential writes.
class OutputWriter {
 public:
  OutputWriter(int fd, bool direct, bool writeback);
  ~OutputWriter();
  OutputWriter(const OutputWriter&) = delete;
  OutputWriter& operator=(const OutputWriter&) = delete;
  // false on an error (errno set).
  bool Write(std::string_view data);
  bool Finish();

 private:
  // O_DIRECT: one buffer fills while the other, full, is written on a
  // thread of its own (the hash and the disk overlap).
  char* buffer() { return bufs_[current_]->data(); }
  bool Flush(size_t length);  // buffer()[0, length), after the write in flight
  bool StartFullBufferWrite();
  bool WaitForWrite();
  int WriteAt(const char* p, size_t n, uint64_t at);  // 0 or errno
  bool WriteAll(const char* p, size_t n);
  int fd_;
  bool direct_, writeback_, fell_back_ = false;
  std::unique_ptr<DirectIoBuffer> bufs_[2];  // O_DIRECT only
  int current_ = 0;
  std::future<int> in_flight_;  // errno of the other buffer's write
  size_t fill_ = 0;
  uint64_t written_ = 0, started_ = 0, waited_ = 0;
};
// CERT.json -> CERT.tlog-proof (where `shred -o` puts the log proof).
std::string TlogProofPath(const std::string& cert_path);
// Streams a certificate's private manifest (GetManifest, any size) into
// `sink`, piece by piece; the call's status.
grpc::Status StreamManifest(shredd::v1::Shredder::Stub* stub, const std::string& certificate_id,
                            const std::function<void(std::string_view)>& sink);
// Streams a certificate's private manifest into the file `path` (0600).
void StreamManifestTo(shredd::v1::Shredder::Stub* stub, const std::string& certificate_id, const std::string& path);
// One file `shred -o` / `order wait -o` wrote, and whether it is private.
struct WrittenFile {
  std::string key;  // its --json member: certificate, tlogProof, manifest, sigstoreBundle
  std::string path;
  bool is_private = false;
  std::string what;
};
// The one way certificates reach files: OUT (public), OUT's .tlog-proof
// (public), the manifest (private, 0600; MANIFEST_OUT or OUT's
// .manifest.json; streamed when too large for one reply; none for an
// auditor) and, last, OUT's .sigstore.json (public). Returns what was
// written, for the user to be told.
std::vector<WrittenFile> WriteCertificateFiles(shredd::v1::Shredder::Stub* stub, const shredd::v1::ShredResponse& resp,
                                               const std::string& out, std::string manifest_out);
std::string WrittenFilesText(const std::vector<WrittenFile>& files);  // one indented line per file
nlohmann::json WrittenFilesJson(const std::vector<WrittenFile>& files);
// Fetches a certificate (and manifest) and writes them like `shred -o`.
std::vector<WrittenFile> WriteCertificate(const Global& g, const std::string& certificate_id, const std::string& out,
                                          const std::string& manifest_out);
// Command groups (cli_orders.cc, ...).
void AddOrderCommands(Commands cmds);
// cli_put.cc: shredctl put (files, directories or a CSV map).
void AddPutCommand(CLI::App& app, const Global& g, std::function<int()>& action);
void AddAuditCommand(Commands cmds);  // `log audit`; after AddLogCommands
// `order receipts` under the `order` command (cli_receipts.cc).
void AddOrderReceiptsCommand(CLI::App* order, const Global& g, std::function<int()>& action);
// `receipt --manifest M --item X...` (cli_receipts.cc).
int CmdReceipt(const Global& g, const std::string& manifest_path, const std::vector<std::string>& items,
               const std::string& out);

// Text from the daemon, a file or an argument, made safe for a terminal:
// control, bidi and line-separator characters and bytes that are not UTF-8
// are shown escaped ("\n", "\x1b", "\u{202E}"; formats/text.h).
// Every such string in human-readable output goes through it.
std::string Shown(std::string_view s);
inline std::string Shown(absl::string_view s) { return Shown(std::string_view(s.data(), s.size())); }
inline std::string Shown(const std::string& s) { return Shown(std::string_view(s)); }
inline std::string Shown(const char* s) { return Shown(std::string_view(s)); }

// Prints `j` (with --json: ASCII-only JSON, so nothing in it can drive a
// terminal) or `text` (otherwise; nothing if empty; each line escaped again
// as a backstop, see Shown).
void Emit(const Global& g, const nlohmann::json& j, const std::string& text);
// JSON text that never throws on strings that are not UTF-8 (they become
// U+FFFD) and holds only ASCII.
std::string DumpJson(const nlohmann::json& j);

// Command groups in their own files.
void AddLogCommands(Commands cmds);    // cli_log.cc: shredctl log ...
void AddVerifyCommand(Commands cmds);  // cli_verify.cc: shredctl verify

// The bytes the log holds for an entry file (cli_log.cc). A certificate is
// logged as its canonical envelope (docs/FORMATS.md), so any JSON spelling
// of it proves the same inclusion; `note` says when the file is not those
// bytes. Other entries are logged verbatim. `not_canonical` keeps the reason
// a would-be certificate has no canonical form, for failure messages.
struct LoggedEntry {
  std::string bytes;
  std::string note;
  std::string not_canonical;
};
LoggedEntry LoggedEntryFrom(std::string file);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_CLI_COMMON_H_
