#include "client/cli_usage.h"

#include <algorithm>

#include "absl/strings/str_join.h"

#include "daemon/base/strings.h"

namespace shredd::cli {
namespace {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The option named `name` ("--json", "-q") at `app` or, since global flags
// fall through, at one of its parents.
const CLI::Option* FindOption(const CLI::App& app, std::string_view name) {
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* o : a->get_options()) {
      if (name.starts_with("--") && o->check_lname(std::string(name.substr(2)))) return o;
      if (name.size() == 2 && name[0] == '-' && name[1] != '-' && o->check_sname(std::string(name.substr(1)))) {
        return o;
      }
    }
  }
  return nullptr;
}

std::vector<std::string> FlagNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* o : a->get_options()) {
      for (const auto& l : o->get_lnames()) names.push_back("--" + l);
    }
  }
  return names;
}

const CLI::App* FindSubcommand(const CLI::App& app, std::string_view name) {
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (s->check_name(std::string(name))) return s;
  }
  return nullptr;
}

std::vector<std::string> SubcommandNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* s : VisibleSubcommands(app)) names.push_back(s->get_name());
  return names;
}

std::string WithSuggestion(std::string message, std::string_view word, const std::vector<std::string>& candidates) {
  const std::string guess = ClosestMatch(word, candidates);
  if (!guess.empty()) StrAppend(&message, "; did you mean \"", guess, "\"?");
  return message;
}

std::string UnknownCommand(const CLI::App& app, std::string_view word) {
  std::string where = app.get_parent() == nullptr ? "" : StrCat(" for \"", CommandPath(app), "\"");
  std::string message = WithSuggestion(StrCat("unknown command \"", word, "\"", where), word, SubcommandNames(app));
  if (message.find("did you mean") == std::string::npos) {
    StrAppend(&message, " (commands: ", absl::StrJoin(SubcommandNames(app), ", "), ")");
  }
  return message;
}

}  // namespace

std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    if (word.size() >= 2 && c.starts_with(word)) d = std::min<size_t>(d, 1);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  // Close enough to be the same word mistyped: at most a third of it wrong.
  const size_t allowed = std::max<size_t>(1, std::min(word.size(), best.size()) / 3);
  return best_distance <= allowed ? best : "";
}

std::vector<const CLI::App*> VisibleSubcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

std::string CommandPath(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* a = app.get_parent(); a != nullptr; a = a->get_parent()) path = a->get_name() + " " + path;
  return path;
}

std::string DiagnoseUsage(const CLI::App& app, const std::vector<std::string>& args) {
  const CLI::App* cur = &app;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") break;
    if (arg.size() > 1 && arg[0] == '-') {
      const size_t eq = arg.find('=');
      const std::string name = arg.starts_with("--") ? arg.substr(0, eq) : arg.substr(0, 2);
      const CLI::Option* o = FindOption(*cur, name);
      if (o == nullptr) {
        if (!arg.starts_with("--") && arg.size() > 2 && FindOption(*cur, "--" + arg.substr(1)) != nullptr) {
          return StrCat("unknown flag \"", arg, "\"; did you mean \"-", arg, "\"?");
        }
        return WithSuggestion(StrCat("unknown flag \"", name, "\" for \"", CommandPath(*cur), "\""), name,
                              FlagNames(*cur));
      }
      const bool takes_value = o->get_items_expected_max() != 0;
      const bool value_attached = arg.starts_with("--") ? eq != std::string::npos : arg.size() > 2;
      if (takes_value && !value_attached) ++i;
      continue;
    }
    if (const CLI::App* sub = FindSubcommand(*cur, arg)) {
      cur = sub;
      continue;
    }
    const bool has_commands = !cur->get_subcommands([](const CLI::App*) { return true; }).empty();
    const bool has_positionals = !cur->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
    if (has_commands && !has_positionals) return UnknownCommand(*cur, arg);
  }
  if (cur->get_require_subcommand_min() > 0) {
    return StrCat("\"", CommandPath(*cur), "\" needs a command: ", absl::StrJoin(SubcommandNames(*cur), ", "));
  }
  return "";
}

}  // namespace shredd::cli
