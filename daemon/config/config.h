// The daemon's configuration: a TOML file (--config), command-line flags that
// override it, and embedded defaults. Every key is documented with its
// default in docs/CONFIG.md; systemd/shredd.toml is the commented example.
//
//   [server]  data_dir, vault, listen, log_origin, inline_threshold,
//             metrics_listen, log_format
//   [storage] memory_budget_mib
//   [log]     tiles_dir
//   [tls]     cert, key, client_ca
//   [object_store] url, endpoint, region, path_style, ca_file, part_size_mib,
//             concurrency (credentials: from the environment only)
//   [[roles.local]]  uid, roles        (unix socket callers, by SO_PEERCRED uid)
//   [[roles.tls]]    subject, san, roles  (TCP clients, by certificate)
//
// Parsing never touches the filesystem beyond reading the file itself;
// ValidateConfig() reads (never writes) the TLS files it names.
#ifndef SHREDD_DAEMON_CONFIG_CONFIG_H_
#define SHREDD_DAEMON_CONFIG_CONFIG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/base/logging.h"  // LogFormat
#include "daemon/base/secret.h"

namespace shredd {

// Bounds of [storage] memory_budget_mib (MiB): 16 MiB .. 1 TiB.
inline constexpr uint64_t kMinMemoryBudgetMib = 16;
inline constexpr uint64_t kMaxMemoryBudgetMib = 1024 * 1024;
// Bounds of [storage] transfer_memory_mib (MiB): the buffers of concurrent
// large transfers and replies (daemon/base/memory_gate.h).
inline constexpr uint64_t kMinTransferMemoryMib = 16;
inline constexpr uint64_t kMaxTransferMemoryMib = 1024 * 1024;
inline constexpr uint64_t kMaxTransferIdleS = 86400;  // [storage] transfer_idle_s: 0 (off) .. a day

// Bounds of [server] stream_window_kib: the HTTP/2 receive window of each
// call, which is what gRPC buffers for a call whose handler is not reading
// (an upload waiting for transfer memory); 64 KiB (HTTP/2's initial window)
// .. 64 MiB.
inline constexpr uint64_t kMinStreamWindowKib = 64;
inline constexpr uint64_t kMaxStreamWindowKib = 64 * 1024;
// Bounds of [server] max_calls: calls served at once; further calls are
// refused with RESOURCE_EXHAUSTED by gRPC ("Server Threadpool Exhausted").
inline constexpr uint64_t kMinMaxCalls = 8;
inline constexpr uint64_t kMaxMaxCalls = 65536;
// Bounds of [server] keepalive_s: how often the daemon pings a connection
// (and how long, up to 20 s, it waits for the answer) before it drops it.
inline constexpr uint64_t kMinKeepaliveS = 1;
inline constexpr uint64_t kMaxKeepaliveS = 7200;

// [shred] manifest_chunk_items: each chunk of a private manifest is one
// RocksDB value of ~190 bytes per item, and RocksDB holds a value whole in
// one block wherever it reads it (compaction holds the current block of every
// input file). 20,000 items (3.7 MB values; the default until session 11) took
// a 3,000,000-item order's peak RSS to 280 MiB, 1,000 to 187 MiB
// (docs/PERFORMANCE.md, "The order's RSS and the manifest chunks").
inline constexpr int64_t kMaxManifestChunkItems = 20000;
// [shred] inline_manifest_items: a GetCertificate or Shred reply with the
// manifest inline costs the daemon ~5x the manifest's JSON while it is built
// and sent (~190 bytes per item): one reply for 200,000 items took ~100 MB,
// six at once 540 MB. 20,000 items by default (~19 MB per call); larger
// manifests stream (GetManifest, one chunk at a time).
inline constexpr int64_t kMaxInlineManifestItems = 200000;

// The roles of docs/CONFIG.md. Anything else in a config is an error.
inline constexpr std::string_view kRoleNames[] = {"writer", "deleter", "auditor", "admin"};
bool IsRoleName(std::string_view name);

// [[roles.local]]: a caller on the unix socket whose SO_PEERCRED uid is `uid`
// holds `roles`. At most one grant per uid.
struct LocalRoleGrant {
  uint32_t uid = 0;
  std::vector<std::string> roles;  // each in kRoleNames, non-empty, no duplicates
};

// [[roles.tls]]: a TCP client whose certificate matches holds `roles`. At
// least one of `subject` and `san` is set; when both are, both must match.
// `subject` is the certificate subject as an RFC 4514-style string
// ("CN=regulator,O=FTC"); `san` one subjectAltName value of one type,
// matched only by a certificate SAN of that type: written with a prefix
// (`dns:`, `uri:`, `email:`, `ip:`, any case), or untyped and then typed by
// its shape (`://` URI, `@` e-mail, an address IP, another `:` URI, else
// DNS): ParseSanGrant in daemon/config/san_grant.h; docs/CONFIG.md,
// "[[roles.tls]]".
struct TlsRoleGrant {
  std::string subject;
  std::string san;
  std::vector<std::string> roles;
};

// [object_store]: item ciphertext in an S3-compatible bucket (issue 14).
// RunDaemon builds an S3Client from this for the blob backend
// (OpenS3BlobBackend, through ItemStore::Options), the state replicator
// and, with log_tiles, the log's tiles (daemon/app/server.cc).
struct ObjectStoreConfig {
  std::string url;             // "s3://BUCKET[/PREFIX]"; empty: ciphertext stays under data_dir
  std::string bucket, prefix;  // from url (prefix without leading or trailing '/')
  // "http(s)://HOST[:PORT]"; empty: AWS (https://s3.REGION.amazonaws.com).
  // AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL in the environment win.
  std::string endpoint;
  std::string region = "us-east-1";  // AWS_REGION (or AWS_DEFAULT_REGION) wins
  bool path_style = false;           // true: http://HOST/BUCKET/KEY (Ceph RGW, MinIO)
  std::string ca_file;               // PEM CA bundle for https; empty: the system's
  uint64_t part_size_mib = 16;       // multipart part size, 5..5120
  uint64_t concurrency = 4;          // parts in flight per upload, 1..64
  // Replication of the daemon's own state (RocksDB) under PREFIX/state/
  // (docs/RECOVERY.md): "sync" (an acknowledged write is in the store before
  // the reply), "async" (shipped within state_lag_ms), "off".
  std::string state = "sync";
  uint64_t state_lag_ms = 2000;  // async: 10..600000
  // Keep the transparency log's C2SP tlog-tiles under PREFIX/tiles/
  // (docs/LOG.md "Tiles"), as [log] tiles_dir does in a directory.
  bool log_tiles = false;
  // From the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  // AWS_SESSION_TOKEN), never from the file or a flag, never printed. Shared
  // pointers so that DaemonConfig stays copyable.
  std::string access_key_id;
  std::shared_ptr<const SecretBytes> secret_access_key;
  std::shared_ptr<const SecretBytes> session_token;  // null: none
};

struct DaemonConfig {
  // [server]
  std::string data_dir = "./var/shredd/data";
  std::string vault = "file:./var/shredd/vault";  // may hold a PKCS#11 PIN: never log it
  std::vector<std::string> listen = {"unix:./var/shredd/shredd.sock"};
  // Origin of the transparency log (its checkpoints' first line and note key
  // name). Empty: "shredd.local/" + the first 16 hex of the signing KeyId.
  std::string log_origin;
  // [log] tiles_dir: a directory the daemon keeps a C2SP tlog-tiles copy of
  // the transparency log in (docs/LOG.md "Tiles"); empty: none.
  std::string log_tiles_dir;
  uint64_t inline_threshold = 64 * 1024;
  std::string metrics_listen;  // "HOST:PORT" on loopback; empty: no metrics endpoint
  LogFormat log_format = LogFormat::kText;
  // [server] stream_window_kib: each call's fixed HTTP/2 receive window
  // (gRPC's BDP probing, which grows it without bound, is off), so a call
  // whose handler is not reading holds at most this much in gRPC.
  uint64_t stream_window_kib = 512;
  // [server] max_calls: calls served at once; with stream_window_kib it
  // bounds what gRPC buffers for calls (docs/CONFIG.md).
  uint64_t max_calls = 128;
  // [server] keepalive_s: a connection whose peer has vanished (a client
  // machine lost mid-upload) is found and dropped within about this plus
  // min(this, 20) seconds, and its calls end, returning what they leased.
  uint64_t keepalive_s = 60;
  // [storage]: RocksDB's memory budget in MiB (block cache, index and filter
  // blocks, memtables); kMinMemoryBudgetMib..kMaxMemoryBudgetMib.
  uint64_t memory_budget_mib = 64;
  // [storage] min_free_mib: writes that add data are refused below this much
  // free space on the data dir's filesystem, erasures below a quarter of it
  // (daemon/storage/space_guard.h); 0 turns the guard off. Reloaded on SIGHUP.
  uint64_t min_free_mib = 256;
  // [storage] transfer_memory_mib: what the buffers of downloads, uploads
  // and large inline replies may hold at once; calls beyond it wait their
  // turn (daemon/base/memory_gate.h). kMinTransferMemoryMib..kMaxTransferMemoryMib.
  uint64_t transfer_memory_mib = 96;
  // [storage] transfer_idle_s: a download or upload that moves no message
  // for this long is cancelled, returning its transfer memory (a pager left
  // open on `shredctl get`); 0: never (daemon/api/stall_watch.h).
  uint64_t transfer_idle_s = 300;
  // [tls]: PEM file paths; all three or none.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // [shred]: how large destructions are split (docs/PERFORMANCE.md)
  uint64_t shred_epoch_items = 25000;            // items per key-tree epoch
  uint64_t shred_manifest_chunk_items = 1000;    // items per stored manifest chunk (one RocksDB value each)
  uint64_t shred_inline_manifest_items = 20000;  // larger manifests: GetManifest only (kMaxInlineManifestItems)
  // [object_store]
  ObjectStoreConfig object_store;
  // [[roles.local]], [[roles.tls]]
  std::vector<LocalRoleGrant> local_roles;
  std::vector<TlsRoleGrant> tls_roles;

  // Not in the file: limits of the gRPC server.
  int max_message_bytes = 8 * 1024 * 1024;
};

// Parses a config file. Keys absent from the file keep their defaults.
// INVALID_ARGUMENT, with "PATH:LINE: " and the key, for a syntax error, an
// unknown key, a wrong type or a bad value; NOT_FOUND / PERMISSION_DENIED if
// the file cannot be read. Does not run the cross-key checks of
// ValidateConfig() (flags may still change the values).
absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path);
// The same over text; `source` names it in messages.
absl::StatusOr<DaemonConfig> LoadConfigFromString(std::string_view toml, std::string_view source = "config");

// Checks a complete config (file merged with flags): every value on its own
// (as LoadConfig does) and the rules between keys (TLS all-or-none, TCP
// beyond loopback only with TLS, one grant per uid). With `check_files`, also
// reads the TLS files and checks they hold a certificate chain, a private key
// matching it, and CA certificates. Writes nothing.
absl::Status ValidateConfig(const DaemonConfig& config, bool check_files = true);

// Single-value checks, shared with the flag parser.
absl::Status CheckListenSpec(std::string_view spec);     // unix:PATH | tcp:HOST:PORT
absl::Status CheckVaultSpec(std::string_view spec);      // file:PATH | pkcs11:... (never echoes the spec)
absl::Status CheckMetricsListen(std::string_view spec);  // "" | loopback HOST:PORT
absl::Status CheckMemoryBudgetMib(uint64_t mib);
// "" or a directory outside `data_dir` (lexically), which is not inside it
// either; with `check_files`, also one that (if it exists) the daemon's
// user owns and no one else can write.
absl::Status CheckLogTilesDir(const std::string& tiles_dir, const std::string& data_dir, bool check_files = true);
inline constexpr uint64_t kMaxMinFreeMib = 1024 * 1024;  // kMinMemoryBudgetMib..kMaxMemoryBudgetMib
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name);
std::string_view LogFormatName(LogFormat f);
// True for 127.0.0.0/8, ::1 and localhost.
bool IsLoopbackHost(std::string_view host);
// Splits "HOST:PORT" / "[V6]:PORT". INVALID_ARGUMENT if malformed.
absl::Status SplitHostPort(std::string_view hostport, std::string* host, uint16_t* port);

// Splits "s3://BUCKET[/PREFIX]". INVALID_ARGUMENT naming the problem (scheme,
// bucket name rules, characters of the prefix).
absl::Status ParseObjectStoreUrl(std::string_view url, std::string* bucket, std::string* prefix);
// "" or http(s)://HOST[:PORT] without a path.
absl::Status CheckObjectStoreEndpoint(std::string_view endpoint);
// Applies the AWS conventions: AWS_REGION / AWS_DEFAULT_REGION and
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL override the config's region and
// endpoint; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are
// the credentials (read only when object_store.url is set). `getenv` is
// injectable for tests.
void ApplyObjectStoreEnvironment(DaemonConfig* config, const std::function<const char*(const char*)>& getenv = nullptr);

// Keys whose new value a SIGHUP cannot apply (the daemon keeps the old value
// and logs that a restart is needed): names like "server.data_dir".
std::vector<std::string> KeysNeedingRestart(const DaemonConfig& running, const DaemonConfig& loaded);

}  // namespace shredd

#endif  // SHREDD_DAEMON_CONFIG_CONFIG_H_
