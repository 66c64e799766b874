// shredd: the deletion daemon. See README.md and docs/.
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <iostream>

#include "daemon/app/command_line.h"
#include "daemon/app/memory.h"
#include "daemon/app/path_safety.h"
#include "daemon/app/server.h"
#include "daemon/app/state_replication.h"
#include "daemon/base/data_dir_lock.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/config/config.h"

namespace {

// Before any thread starts: no core dumps (they would hold key material),
// the stop and reload signals blocked (RunDaemon takes them with sigwait;
// every thread inherits the mask).
void HardenProcess() {
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  prctl(PR_SET_DUMPABLE, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// --check-config: the verdict on the config, touching nothing.
int CheckConfig(const shredd::CommandLine& cl, absl::Status s, const std::vector<std::string>& warnings,
                const shredd::DaemonConfig* config) {
  std::string probed;
  if (s.ok() && cl.probe && !config->object_store.url.empty()) {
    auto versioning = shredd::ProbeObjectStore(config->object_store);
    s = versioning.status();
    if (s.ok()) probed = std::string(", and its object store answers (versioning ") + (*versioning ? "on)" : "off)");
  }
  if (!s.ok()) {
    std::cerr << "shredd: " << s.message() << "\n";
    return 1;
  }
  for (const auto& w : warnings) std::cerr << "shredd: warning: " << w << "\n";
  std::cout << "shredd: " << (cl.config_path.empty() ? std::string("the default config") : cl.config_path)
            << " is valid" << probed << "\n";
  if (!config->log_tiles_dir.empty()) {
    std::cout << "shredd: the transparency log is kept as tiles (c2sp.org/tlog-tiles) in " << config->log_tiles_dir
              << "\n";
  }
  if (config->object_store.log_tiles) {
    const auto& o = config->object_store;
    std::cout << "shredd: the transparency log is kept as tiles (c2sp.org/tlog-tiles) in s3://" << o.bucket
              << (o.prefix.empty() ? "" : "/") << o.prefix << "/tiles\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  shredd::TuneAllocator();  // malloc settings must precede any thread (docs/RELIABILITY.md, load)
  HardenProcess();
  if (sodium_init() < 0) {
    std::cerr << "shredd: libsodium failed to initialise\n";
    return 1;
  }
  shredd::CommandLine cl;
  if (auto exit_code = shredd::ParseCommandLine(argc, argv, &cl)) return *exit_code;
  auto config = cl.load();
  absl::Status s = config.status();
  if (s.ok()) s = shredd::ValidateConfig(*config);
  // Where data and vault live, and their modes (daemon/app/path_safety.h).
  std::vector<std::string> warnings;
  if (s.ok()) s = shredd::CheckStoragePaths(*config, &warnings);
  if (cl.check_config) return CheckConfig(cl, s, warnings, config.ok() ? &*config : nullptr);
  if (!s.ok()) {
    std::cerr << "shredd: " << s.message() << "\n";
    return 1;
  }
  if (cl.restore) {
    // Issue 14, part 2: before the data-dir lock (the dir must be empty; the
    // restore refuses anything else).
    if (auto r = shredd::RunRestore(*config, cl.allow_unsigned_state); !r.ok()) {
      std::cerr << "shredd restore: " << r.message() << "\n";
      return 1;
    }
    return 0;
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
  if (!cl.config_path.empty()) options.reload = cl.load;
  options.new_signing_key = cl.new_signing_key;
  options.take_over_vault = cl.take_over_vault;
  s = shredd::RunDaemon(options);
  if (!s.ok()) {
    shredd::LogError(shredd::StdView(s.message()));
    return 1;
  }
  return 0;
}
