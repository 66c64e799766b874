// shredd: the deletion daemon. See README.md and docs/.
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <functional>
#include <iostream>

#include <CLI/CLI.hpp>

#include "daemon/app/memory.h"
#include "daemon/app/path_safety.h"
#include "daemon/app/server.h"
#include "daemon/base/data_dir_lock.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/config/config.h"

int main(int argc, char** argv) {
  // malloc settings must precede any thread (docs/RELIABILITY.md, load).
  shredd::TuneAllocator();
  // No core dumps: they would hold key material.
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  prctl(PR_SET_DUMPABLE, 0);
  if (sodium_init() < 0) {
    std::cerr << "shredd: libsodium failed to initialise\n";
    return 1;
  }
  // Stop and reload signals are taken by sigwait in RunDaemon; block them
  // before any thread starts so every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Flags override the config file key by key; without --config, the
  // embedded defaults (docs/CONFIG.md) stand in for the file.
  shredd::DaemonConfig opt;
  std::string config_path, log_format;
  bool check_config = false;
  bool new_signing_key = false;
  CLI::App app{
      "shredd: stores photos and model weights, deletes them by cryptographic shredding, "
      "and certifies every deletion"};
  app.add_option("--config", config_path, "TOML config file (docs/CONFIG.md); flags override its keys");
  app.add_flag("--check-config", check_config,
               "validate the config (file and flags), print why it is wrong if it is, exit 0 or 1; "
               "touches nothing");
  app.add_option("--metrics-listen", opt.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (loopback only)");
  app.add_option("--log-format", log_format, "text or json (default: text)");
  app.add_option("--data-dir", opt.data_dir, "RocksDB and ciphertext directory")->capture_default_str();
  app.add_option("--listen", opt.listen, "unix:PATH or tcp:HOST:PORT (loopback); repeatable")->capture_default_str();
  app.add_option("--vault", opt.vault, "root key vault: file:DIR or pkcs11:module=...;token=...;pin=...")
      ->capture_default_str();
  app.add_option("--inline-threshold", opt.inline_threshold, "items up to this many bytes are stored inside RocksDB")
      ->capture_default_str();
  app.add_option("--memory-budget-mib", opt.memory_budget_mib,
                 "RocksDB memory budget in MiB: block cache, index and filter blocks, memtables")
      ->capture_default_str();
  app.add_option(
         "--min-free-mib", opt.min_free_mib,
         "refuse writes below this much free space on the data dir's filesystem (MiB; erasures: a quarter; 0: off)")
      ->capture_default_str();
  app.add_option("--log-origin", opt.log_origin,
                 "transparency log origin, also its checkpoints' key name "
                 "(default: shredd.local/<first 16 hex of the signing key id>)");
  // Roles and TLS (docs/SECURITY.md). The config file's [tls] and
  // [[roles.*]] set the same fields.
  app.add_option("--tls-cert", opt.tls_cert, "PEM certificate chain for tcp: listeners (mutual TLS)");
  app.add_option("--tls-key", opt.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", opt.tls_client_ca, "PEM CA certificates that client certificates must chain to");
  app.add_option("--object-store", opt.object_store.url,
                 "s3://BUCKET[/PREFIX]: item ciphertext in an S3-compatible store ([object_store] in docs/CONFIG.md; "
                 "credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)");
  std::vector<std::string> grant_uid, grant_tls;
  app.add_option("--grant-uid", grant_uid, "UID=role,role: roles of a local user on the unix socket (repeatable)");
  app.add_option("--grant-tls", grant_tls,
                 "[subject:|san:]NAME=role,role: roles of a TLS client by certificate subject DN (RFC 2253) or "
                 "subjectAltName; without a prefix, a NAME containing '=' is a subject (repeatable)");
  app.add_flag("--new-signing-key", new_signing_key,
               "rotate the transparency log's signing key on purpose: only when the vault holds none; the log "
               "continues under the new key and a new default origin (docs/VAULT.md)");
  app.add_flag_callback(
      "--version",
      [] {
        std::cout << "shredd " << SHREDD_VERSION << "\n";
        std::exit(0);
      },
      "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  // NAME=role,role, split at the last '=' (a subject DN contains '=' itself).
  auto split_grant = [](const std::string& spec, std::string* name, std::vector<std::string>* roles) {
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
  };
  for (const auto& g : grant_uid) {
    shredd::LocalRoleGrant grant;
    std::string uid;
    if (!split_grant(g, &uid, &grant.roles) || uid.find_first_not_of("0123456789") != std::string::npos) {
      std::cerr << "shredd: --grant-uid wants UID=role,role, got \"" << g << "\"\n";
      return 2;
    }
    grant.uid = static_cast<uint32_t>(std::stoul(uid));
    opt.local_roles.push_back(std::move(grant));
  }
  for (const auto& g : grant_tls) {
    shredd::TlsRoleGrant grant;
    std::string name;
    if (!split_grant(g, &name, &grant.roles)) {
      std::cerr << "shredd: --grant-tls wants [subject:|san:]NAME=role,role, got \"" << g << "\"\n";
      return 2;
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
    opt.tls_roles.push_back(std::move(grant));
  }

  if (!log_format.empty()) {
    auto f = shredd::ParseLogFormat(log_format);
    if (!f.ok()) {
      std::cerr << "shredd: --log-format: " << f.status().message() << "\n";
      return 2;
    }
    opt.log_format = *f;
  }

  // The flags given on the command line, as edits of a loaded config.
  std::vector<std::function<void(shredd::DaemonConfig&)>> overrides;
  auto given = [&app](const char* flag) { return app.count(flag) > 0; };
  if (given("--data-dir")) overrides.push_back([v = opt.data_dir](auto& c) { c.data_dir = v; });
  if (given("--listen")) overrides.push_back([v = opt.listen](auto& c) { c.listen = v; });
  if (given("--vault")) overrides.push_back([v = opt.vault](auto& c) { c.vault = v; });
  if (given("--inline-threshold")) overrides.push_back([v = opt.inline_threshold](auto& c) { c.inline_threshold = v; });
  if (given("--memory-budget-mib")) {
    overrides.push_back([v = opt.memory_budget_mib](auto& c) { c.memory_budget_mib = v; });
  }
  if (given("--min-free-mib")) overrides.push_back([v = opt.min_free_mib](auto& c) { c.min_free_mib = v; });
  if (given("--log-origin")) overrides.push_back([v = opt.log_origin](auto& c) { c.log_origin = v; });
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
      (void)shredd::ParseObjectStoreUrl(v, &c.object_store.bucket, &c.object_store.prefix);  // ValidateConfig reports
    });
  }
  auto load = [config_path, overrides]() -> absl::StatusOr<shredd::DaemonConfig> {
    shredd::DaemonConfig c;
    if (!config_path.empty()) {
      auto file = shredd::LoadConfig(config_path);
      if (!file.ok()) return file.status();
      c = *std::move(file);
    }
    for (const auto& apply : overrides) apply(c);
    // AWS_* variables override the file's [object_store] region and endpoint,
    // and are the only source of its credentials.
    shredd::ApplyObjectStoreEnvironment(&c);
    return c;
  };

  auto config = load();
  absl::Status s = config.status();
  if (s.ok()) s = shredd::ValidateConfig(*config);
  // Where data and vault live, and their modes (daemon/app/path_safety.h).
  std::vector<std::string> warnings;
  if (s.ok()) s = shredd::CheckStoragePaths(*config, &warnings);
  if (check_config) {
    if (!s.ok()) {
      std::cerr << "shredd: " << s.message() << "\n";
      return 1;
    }
    for (const auto& w : warnings) std::cerr << "shredd: warning: " << w << "\n";
    std::cout << "shredd: " << (config_path.empty() ? std::string("the default config") : config_path) << " is valid\n";
    return 0;
  }
  if (!s.ok()) {
    std::cerr << "shredd: " << s.message() << "\n";
    return 1;
  }
  if (!config->object_store.url.empty()) {
    // Parsed and checked (--check-config accepts it), not used yet: refuse
    // rather than keep the ciphertext on local disk against the config.
    std::cerr << "shredd: [object_store] / --object-store is not supported by this build yet (issue 14)\n";
    return 1;
  }
  shredd::SetLogFormat(config->log_format);
  for (const auto& w : warnings) shredd::LogWarning(w);
  // Before the vault and RocksDB are opened; held until exit.
  if (auto lock = shredd::LockDataDir(config->data_dir); !lock.ok()) {
    shredd::LogError(shredd::StdView(lock.status().message()));
    return 1;
  }
  shredd::DaemonOptions options;
  static_cast<shredd::DaemonConfig&>(options) = *std::move(config);
  if (!config_path.empty()) options.reload = load;
  options.new_signing_key = new_signing_key;
  s = shredd::RunDaemon(options);
  if (!s.ok()) {
    shredd::LogError(shredd::StdView(s.message()));
    return 1;
  }
  return 0;
}
