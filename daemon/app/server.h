// The shredd daemon: opens the vault and the store, serves gRPC until told to stop.
#ifndef SHREDD_DAEMON_APP_SERVER_H_
#define SHREDD_DAEMON_APP_SERVER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/config/config.h"

namespace shredd {

// What the daemon runs with: the config (file merged with command-line
// flags, see daemon/config/config.h; the [tls] and [[roles.*]] fields are read by
// auth), plus how to read it again on SIGHUP.
struct DaemonOptions : DaemonConfig {
  // Reads the config again: the same file, then the same command-line
  // overrides. Empty (no --config): SIGHUP has nothing to re-read.
  std::function<absl::StatusOr<DaemonConfig>()> reload;
  // --new-signing-key: a deliberate rotation of the log's signing key (only
  // on the command line, never in the file; see TransparencyLog::CheckSigningKey).
  bool new_signing_key = false;
  // --take-over-vault: claim a vault whose roots another daemon's data dir
  // owns (Vault::ClaimOwnership; only on the command line).
  bool take_over_vault = false;
};

// Runs until SIGTERM or SIGINT; SIGHUP reloads the config (roles and
// log_format apply at once, other keys need a restart; a config that does
// not load is logged and the running one kept). The caller blocks SIGTERM,
// SIGINT and SIGHUP before any thread starts.
// Sends READY=1 to systemd once storage is open and every socket is bound,
// RELOADING=1/READY=1 around a reload, STOPPING=1 when a stop signal
// arrives, and WATCHDOG=1 every WatchdogSec/2 while the daemon answers a
// health check over gRPC and reads RocksDB.
absl::Status RunDaemon(const DaemonOptions& options);

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_SERVER_H_
