// shredd's command line: flags, each overriding the config file's key of
// the same meaning (docs/CONFIG.md), and the function that loads the config
// again on SIGHUP.
#ifndef SHREDD_DAEMON_APP_COMMAND_LINE_H_
#define SHREDD_DAEMON_APP_COMMAND_LINE_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

#include "daemon/config/config.h"

namespace shredd {

struct CommandLine {
  std::string config_path;  // --config; empty: the embedded defaults
  bool check_config = false;
  bool probe = false;  // with --check-config: also ask the object store
  bool new_signing_key = false;
  bool take_over_vault = false;
  // `shredd restore ...`: rebuild --data-dir from the object store, then exit.
  bool restore = false;
  bool allow_unsigned_state = false;  // restore --allow-unsigned-state
  // The config file (if any) with the command line's flags applied.
  std::function<absl::StatusOr<DaemonConfig>()> load;
};

// Parses argv into *out. Returns an exit code if the process should end now
// (--help, --version: 0; a malformed flag: 2, with the reason on stderr).
std::optional<int> ParseCommandLine(int argc, char** argv, CommandLine* out);

// "NAME=role,role" split at the last '=' (a subject DN contains '=' itself);
// false if either side is empty.
bool SplitGrant(const std::string& spec, std::string* name, std::vector<std::string>* roles);

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_COMMAND_LINE_H_
