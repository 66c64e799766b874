// shredctl's settings: the global flags, the environment and the client
// config file (docs/CLI.md "Config file"), each setting taken from the first
// of these that has it: flag, environment, file, default.
#ifndef SHREDD_CLIENT_CLI_CONFIG_H_
#define SHREDD_CLIENT_CLI_CONFIG_H_

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "client/cli_common.h"

namespace shredd::cli {

// The quick-start daemon's socket (scripts/start.sh, relative to the current
// directory) and the packaged service's (systemd/shredd.service).
inline constexpr char kQuickStartSocket[] = "./var/shredd/shredd.sock";
inline constexpr char kServiceSocket[] = "/run/shredd/shredd.sock";

// One setting in force and where it came from ("flag --server",
// "env SHREDD_SERVER", "file PATH:LINE", "default ...").
struct Setting {
  std::string key;  // the config file's key = the long flag's name
  std::string value;
  std::string source;
};

// The client config file in use: $SHREDCTL_CONFIG if set (then it must
// exist), else $XDG_CONFIG_HOME/shredd/shredctl.toml (XDG_CONFIG_HOME
// defaulting to ~/.config) if it exists; "" if none.
std::string ClientConfigPath();

// Called once the command line is parsed: fills every setting of `g` that
// no flag gave from the environment, the config file or the default, and
// says where each came from. Throws Failure (exit 2) for a config file that
// cannot be read, is not TOML, or has an unknown key or a wrong type, naming
// the file and line.
std::vector<Setting> ResolveSettings(const CLI::App& app, Global& g);

// `shredctl config show`: each setting in force and its source.
void AddConfigCommand(Commands cmds);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_CLI_CONFIG_H_
