// `shredctl completion bash|zsh|fish`: completion scripts written from the
// app's own commands and flags (docs/CLI.md "Shell completion").
#ifndef SHREDD_CLIENT_COMPLETION_H_
#define SHREDD_CLIENT_COMPLETION_H_

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "client/cli_common.h"

namespace shredd::cli {

// The script for `shell` (bash, zsh or fish); "" for another shell.
std::string CompletionScript(const CLI::App& app, std::string_view shell);

// Registers `completion SHELL` and the hidden `man` (prints shredctl(1)).
void AddCompletionCommands(Commands cmds);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_COMPLETION_H_
