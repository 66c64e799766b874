#include "daemon/app/command_line.h"

#include <charconv>
#include <iostream>
#include <vector>

#include <CLI/CLI.hpp>

#include "daemon/app/path_safety.h"
#include "daemon/base/logging.h"
#include "daemon/base/man_page.h"
#include "daemon/config/san_grant.h"

namespace shredd {

bool SplitGrant(const std::string& spec, std::string* name, std::vector<std::string>* roles) {
  auto eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) return false;
  *name = spec.substr(0, eq);
  std::string list = spec.substr(eq + 1);
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    if (comma > start) roles->push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return !roles->empty();
}

namespace {

// What the flags set before they become overrides of a loaded config.
struct Flags {
  DaemonConfig opt;
  std::string log_format;
  std::vector<std::string> grant_uid, grant_tls;
};

void AddStorageFlags(CLI::App& app, Flags& f) {
  DaemonConfig& opt = f.opt;
  app.add_option("--metrics-listen", opt.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (loopback only)");
  app.add_option("--log-format", f.log_format, "text or json (default: text)");
  app.add_option("--data-dir", opt.data_dir, "RocksDB and ciphertext directory")->capture_default_str();
  app.add_option("--listen", opt.listen, "unix:PATH or tcp:HOST:PORT (loopback); repeatable")->capture_default_str();
  app.add_option("--vault", opt.vault, "root key vault: file:DIR or pkcs11:module=...;token=...;pin=...")
      ->capture_default_str();
  app.add_option("--inline-threshold", opt.inline_threshold, "items up to this many bytes are stored inside RocksDB")
      ->capture_default_str();
  app.add_option("--memory-budget-mib", opt.memory_budget_mib,
                 "RocksDB memory budget in MiB: block cache, index and filter blocks, memtables")
      ->capture_default_str();
  app.add_option("--transfer-memory-mib", opt.transfer_memory_mib,
                 "buffers of concurrent downloads, uploads and large replies in MiB; further calls wait their turn")
      ->capture_default_str();
  app.add_option("--transfer-idle-s", opt.transfer_idle_s,
                 "cancel a download or upload that makes no progress for this long (s; 0: never)")
      ->capture_default_str();
  app.add_option("--stream-window-kib", opt.stream_window_kib,
                 "each call's HTTP/2 receive window in KiB: what gRPC buffers for a call not reading")
      ->capture_default_str();
  app.add_option("--max-calls", opt.max_calls, "calls served at once; further calls are refused (RESOURCE_EXHAUSTED)")
      ->capture_default_str();
  app.add_option("--keepalive-s", opt.keepalive_s,
                 "ping connections this often (s); one whose peer does not answer is dropped and its calls end")
      ->capture_default_str();
  app.add_option(
         "--min-free-mib", opt.min_free_mib,
         "refuse writes below this much free space on the data dir's filesystem (MiB; erasures: a quarter; 0: off)")
      ->capture_default_str();
  app.add_option("--log-origin", opt.log_origin,
                 "transparency log origin, also its checkpoints' key name "
                 "(default: shredd.local/<first 16 hex of the signing key id>)");
  app.add_option("--log-tiles-dir", opt.log_tiles_dir,
                 "keep a C2SP tlog-tiles copy of the transparency log in DIR, for any static web server to publish "
                 "([log] tiles_dir; docs/LOG.md)");
}

// Roles and TLS (docs/SECURITY.md). The config file's [tls] and
// [[roles.*]] set the same fields.
void AddAccessFlags(CLI::App& app, Flags& f) {
  app.add_option("--tls-cert", f.opt.tls_cert, "PEM certificate chain for tcp: listeners (mutual TLS)");
  app.add_option("--tls-key", f.opt.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", f.opt.tls_client_ca, "PEM CA certificates that client certificates must chain to");
  app.add_option("--object-store", f.opt.object_store.url,
                 "s3://BUCKET[/PREFIX]: item ciphertext in an S3-compatible store ([object_store] in docs/CONFIG.md; "
                 "credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)");
  app.add_flag("--object-store-log-tiles", f.opt.object_store.log_tiles,
               "keep a C2SP tlog-tiles copy of the transparency log under the object store's PREFIX/tiles/ "
               "([object_store] log_tiles; docs/LOG.md)");
  app.add_option("--grant-uid", f.grant_uid, "UID=role,role: roles of a local user on the unix socket (repeatable)");
  app.add_option("--grant-tls", f.grant_tls,
                 "[subject:|san:]NAME=role,role: roles of a TLS client by certificate subject DN (RFC 2253) or "
                 "subjectAltName (san:dns:NAME, san:uri:URI, san:email:ADDRESS, san:ip:ADDRESS; untyped, the type "
                 "follows from the shape, docs/CONFIG.md); without a prefix, a NAME containing '=' is a subject "
                 "(repeatable)");
}

absl::Status ParseGrants(Flags& f) {
  for (const auto& g : f.grant_uid) {
    LocalRoleGrant grant;
    std::string uid;
    if (!SplitGrant(g, &uid, &grant.roles) || uid.empty() || uid.find_first_not_of("0123456789") != std::string::npos) {
      return absl::InvalidArgumentError("--grant-uid wants UID=role,role, got \"" + g + "\"");
    }
    // As [[roles.local]] uid: a larger number must not wrap around to
    // another user (4294967296 would be root); (uid_t)-1 is "no uid".
    uint64_t value = 0;
    if (std::from_chars(uid.data(), uid.data() + uid.size(), value).ec != std::errc() || value > 0xfffffffe) {
      return absl::InvalidArgumentError("--grant-uid: uid " + uid + " must be between 0 and 4294967294");
    }
    grant.uid = static_cast<uint32_t>(value);
    f.opt.local_roles.push_back(std::move(grant));
  }
  for (const auto& g : f.grant_tls) {
    TlsRoleGrant grant;
    std::string name;
    if (!SplitGrant(g, &name, &grant.roles)) {
      return absl::InvalidArgumentError("--grant-tls wants [subject:|san:]NAME=role,role, got \"" + g + "\"");
    }
    if (name.starts_with("subject:")) {
      grant.subject = name.substr(8);
    } else if (name.starts_with("san:")) {
      grant.san = name.substr(4);
    } else if (name.find('=') != std::string::npos) {
      grant.subject = name;
    } else {
      grant.san = name;
    }
    if (auto san = ParseSanGrant(grant.san); !grant.san.empty() && !san.ok()) {
      return absl::InvalidArgumentError("--grant-tls \"" + g + "\": " + std::string(san.status().message()));
    }
    f.opt.tls_roles.push_back(std::move(grant));
  }
  if (!f.log_format.empty()) {
    auto format = ParseLogFormat(f.log_format);
    if (!format.ok()) return absl::InvalidArgumentError("--log-format: " + std::string(format.status().message()));
    f.opt.log_format = *format;
  }
  return absl::OkStatus();
}

using Override = std::function<void(DaemonConfig&)>;

// The flags given on the command line, as edits of a loaded config.
std::vector<Override> Overrides(const CLI::App& app, const DaemonConfig& opt) {
  std::vector<Override> overrides;
  auto given = [&app](const char* flag) { return app.count(flag) > 0; };
  if (given("--data-dir")) overrides.push_back([v = opt.data_dir](auto& c) { c.data_dir = v; });
  if (given("--listen")) overrides.push_back([v = opt.listen](auto& c) { c.listen = v; });
  if (given("--vault")) overrides.push_back([v = opt.vault](auto& c) { c.vault = v; });
  if (given("--inline-threshold")) overrides.push_back([v = opt.inline_threshold](auto& c) { c.inline_threshold = v; });
  if (given("--memory-budget-mib")) {
    overrides.push_back([v = opt.memory_budget_mib](auto& c) { c.memory_budget_mib = v; });
  }
  if (given("--transfer-memory-mib")) {
    overrides.push_back([v = opt.transfer_memory_mib](auto& c) { c.transfer_memory_mib = v; });
  }
  if (given("--transfer-idle-s")) overrides.push_back([v = opt.transfer_idle_s](auto& c) { c.transfer_idle_s = v; });
  if (given("--stream-window-kib")) {
    overrides.push_back([v = opt.stream_window_kib](auto& c) { c.stream_window_kib = v; });
  }
  if (given("--max-calls")) overrides.push_back([v = opt.max_calls](auto& c) { c.max_calls = v; });
  if (given("--keepalive-s")) overrides.push_back([v = opt.keepalive_s](auto& c) { c.keepalive_s = v; });
  if (given("--min-free-mib")) overrides.push_back([v = opt.min_free_mib](auto& c) { c.min_free_mib = v; });
  if (given("--log-origin")) overrides.push_back([v = opt.log_origin](auto& c) { c.log_origin = v; });
  if (given("--log-tiles-dir")) overrides.push_back([v = opt.log_tiles_dir](auto& c) { c.log_tiles_dir = v; });
  if (given("--metrics-listen")) overrides.push_back([v = opt.metrics_listen](auto& c) { c.metrics_listen = v; });
  if (given("--log-format")) overrides.push_back([v = opt.log_format](auto& c) { c.log_format = v; });
  if (given("--tls-cert")) overrides.push_back([v = opt.tls_cert](auto& c) { c.tls_cert = v; });
  if (given("--tls-key")) overrides.push_back([v = opt.tls_key](auto& c) { c.tls_key = v; });
  if (given("--tls-client-ca")) overrides.push_back([v = opt.tls_client_ca](auto& c) { c.tls_client_ca = v; });
  if (given("--grant-uid")) overrides.push_back([v = opt.local_roles](auto& c) { c.local_roles = v; });
  if (given("--grant-tls")) overrides.push_back([v = opt.tls_roles](auto& c) { c.tls_roles = v; });
  if (given("--object-store")) {
    overrides.push_back([v = opt.object_store.url](auto& c) {
      c.object_store.url = v;
      c.object_store.bucket.clear();
      c.object_store.prefix.clear();
      (void)ParseObjectStoreUrl(v, &c.object_store.bucket, &c.object_store.prefix);  // ValidateConfig reports
    });
  }
  if (given("--object-store-log-tiles")) overrides.push_back([](auto& c) { c.object_store.log_tiles = true; });
  return overrides;
}

// shredd(8)'s sections after its flags.
ManPage ShreddManPage() {
  ManPage page{"shredd", 8, "the deletion daemon: stores, shreds, certifies", SHREDD_VERSION, {}};
  page.sections.push_back(
      {"CONFIGURATION",
       {"Settings come from the embedded defaults, then the TOML file given with --config (shredd.toml(5); the "
        "package installs /etc/shredd/shredd.toml), then the flags above, each overriding the one before."}});
  page.sections.push_back(
      {"SIGNALS",
       {"TP:SIGHUP\tre-read the config file: roles, log_format and min_free_mib apply at once (a withdrawn role also "
        "stops calls in progress), other keys at the next start",
        "TP:SIGTERM, SIGINT\tstop: finish in-flight calls (up to 10 s), leave a running order checkpointed, exit 0"}});
  page.sections.push_back({"EXIT STATUS",
                           {"TP:0\tstopped cleanly; --check-config: the config is valid",
                            "TP:1\tthe config is wrong, or storage, the vault or a listener failed (one line on "
                            "stderr says which)",
                            "TP:2\ta malformed flag"}});
  page.sections.push_back({"FILES",
                           {"TP:/etc/shredd/shredd.toml\tthe packaged service's config (shredd.toml(5))",
                            "TP:/var/lib/shredd, /var/lib/shredd-vault\tthe packaged service's data dir and file vault",
                            "TP:/run/shredd/shredd.sock\tthe packaged service's socket"}});
  page.sections.push_back(
      {"SEE ALSO",
       {"shredctl(1), shredd.toml(5), systemd.exec(5); docs/SERVICE.md and docs/CONFIG.md in the sources."}});
  return page;
}

}  // namespace

std::optional<int> ParseCommandLine(int argc, char** argv, CommandLine* out) {
  // Without --config, the embedded defaults (docs/CONFIG.md) stand in for the file.
  CLI::App app{
      "shredd: stores photos and model weights, deletes them by cryptographic shredding, "
      "and certifies every deletion"};
  app.add_option("--config", out->config_path, "TOML config file (docs/CONFIG.md); flags override its keys");
  app.add_flag("--check-config", out->check_config,
               "validate the config (file and flags), print why it is wrong if it is, exit 0 or 1; "
               "touches nothing");
  app.add_flag("--probe", out->probe,
               "with --check-config: also ask the object store whether the keys and the bucket work (one read-only "
               "request)");
  Flags f;
  AddStorageFlags(app, f);
  AddAccessFlags(app, f);
  app.add_flag("--new-signing-key", out->new_signing_key,
               "rotate the transparency log's signing key on purpose: only when the vault holds none; the log "
               "continues under the new key and a new default origin (docs/VAULT.md)");
  app.add_flag("--take-over-vault", out->take_over_vault,
               "claim a PKCS#11 vault whose roots another daemon's data dir owns: only when that daemon is gone for "
               "good (this data dir was restored after losing it; docs/VAULT.md)");
  // `shredd restore --object-store s3://B[/P] --data-dir EMPTY --vault V`:
  // the flags are the daemon's own (fallthrough), read the same way.
  CLI::App* restore = app.add_subcommand(
      "restore",
      "rebuild an empty --data-dir from the state replicated to --object-store (docs/RECOVERY.md), check it "
      "against --vault, and exit 0; then start shredd on it");
  restore->fallthrough();
  restore->add_flag("--allow-unsigned-state", out->allow_unsigned_state,
                    "also accept state objects without a signature (written by a shredd before they were signed); "
                    "only if you trust the bucket's operator (docs/RECOVERY.md)");
  app.add_flag_callback(
      "--version",
      [] {
        std::cout << "shredd " << SHREDD_VERSION << "\n";
        std::exit(0);
      },
      "print the version and exit");
  // Hidden: the build writes shredd.8 with it, from the flags --help shows.
  app.add_flag_callback("--man",
                        [&app] {
                          std::cout << RenderManPage(app, ShreddManPage());
                          std::exit(0);
                        })
      ->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  out->restore = restore->parsed();
  if (auto s = ParseGrants(f); !s.ok()) {
    std::cerr << "shredd: " << s.message() << "\n";
    return 2;
  }
  out->load = [path = out->config_path, overrides = Overrides(app, f.opt)]() -> absl::StatusOr<DaemonConfig> {
    DaemonConfig c;
    if (!path.empty()) {
      // At start and on every SIGHUP: the file grants roles.
      if (auto s = CheckConfigFile(path); !s.ok()) return s;
      auto file = LoadConfig(path);
      if (!file.ok()) return file.status();
      c = *std::move(file);
    }
    for (const auto& apply : overrides) apply(c);
    // AWS_* variables override the file's [object_store] region and endpoint,
    // and are the only source of its credentials.
    ApplyObjectStoreEnvironment(&c);
    return c;
  };
  return std::nullopt;
}

}  // namespace shredd
