// Usage errors a person can act on: an unknown command or flag is named,
// with the closest valid one suggested (`unknown command "lss"; did you
// mean "ls"?`), and a group without its command lists the commands it has.
// Built from the same CLI11 definitions as --help (docs/CLI.md).
#ifndef SHREDD_CLIENT_CLI_USAGE_H_
#define SHREDD_CLIENT_CLI_USAGE_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace shredd::cli {

// What each exit code means (the Exit enum in cli_common.h; docs/CLI.md
// "Exit codes", shredctl(1) EXIT STATUS).
inline constexpr std::pair<int, const char*> kExitCodes[] = {
    {0, "success"},
    {1, "failure (I/O, daemon error, items of a put that failed for different reasons)"},
    {2, "usage error (an unknown command or flag, a bad value, a malformed client config file)"},
    {3, "verification failed (verify, log verify, log monitor, log audit)"},
    {4, "not found (unknown or shredded digest, unknown certificate or order)"},
    {5, "daemon unreachable (also: TLS handshake refused)"},
    {6, "refused: failed precondition (e.g. content was shredded), already exists, permission denied"},
    {7, "FORK/ROLLBACK DETECTED (log monitor)"},
};

// Every command's --help ends with this (the global flags are accepted
// after any command, but CLI11 lists only a command's own).
inline constexpr char kGlobalFlagsFooter[] =
    "Global flags, before or after any command: --server ADDR, --tls-ca FILE, --tls-cert FILE, --tls-key FILE, "
    "--tls-server-name NAME, --json, -q/--quiet (see shredctl --help; settings in force: shredctl config show)";

// The closest of `candidates` to `word` (edit distance, a prefix counts as
// close), or "" if none is close enough to be a useful guess.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

// Walks the command line against the app's commands and flags (global flags
// are accepted at every level) and names the first unknown command or flag,
// or a command group given without a command. "" if the walk finds none of
// these: the caller then shows CLI11's own reason.
std::string DiagnoseUsage(const CLI::App& app, const std::vector<std::string>& args);

// The visible subcommands of `app` (hidden ones have an empty group).
std::vector<const CLI::App*> VisibleSubcommands(const CLI::App& app);
// "shredctl log monitor" for the app of `log monitor`.
std::string CommandPath(const CLI::App& app);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_CLI_USAGE_H_
