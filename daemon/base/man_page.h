// Man pages written from a CLI11 app: the same definitions --help prints,
// so the page and the help cannot drift apart (docs/CLI.md "Manual pages";
// tests/integration/test_cli_manual.py compares them).
#ifndef SHREDD_DAEMON_BASE_MAN_PAGE_H_
#define SHREDD_DAEMON_BASE_MAN_PAGE_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace shredd {

struct ManPage {
  std::string name;  // shredctl
  int section = 1;
  std::string summary;  // the NAME line after "\-"
  std::string version;
  // Sections after OPTIONS and COMMANDS, each a heading and paragraphs
  // (plain text; a paragraph starting "TP:" is a tagged item "TAG\tTEXT").
  std::vector<std::pair<std::string, std::vector<std::string>>> sections;
};

// roff (man(7)) text: NAME, SYNOPSIS, DESCRIPTION, OPTIONS (the app's
// flags), COMMANDS (every visible subcommand, with its arguments and
// flags, as a subsection titled by its path), then `page.sections`.
std::string RenderManPage(const CLI::App& app, const ManPage& page);

// Text escaped for roff: backslashes, hyphens, a leading '.' or '\''.
std::string RoffEscape(std::string_view text);

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_MAN_PAGE_H_
