#include "client/completion.h"

#include <iostream>

#include "client/cli_usage.h"
#include "daemon/base/man_page.h"
#include "daemon/base/strings.h"

namespace shredd::cli {
namespace {

// One command path ("", "log", "log monitor") with its subcommands and flags
// (its own and the global ones, which are accepted at every level).
struct Level {
  std::string path;
  const CLI::App* app;
  std::vector<const CLI::App*> subcommands;
  std::vector<const CLI::Option*> flags;
};

void CollectLevels(const CLI::App& app, const std::string& path, std::vector<Level>* out) {
  Level level{path, &app, VisibleSubcommands(app), {}};
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* o : a->get_options()) {
      const bool parents_help = a != &app && o == a->get_help_ptr();
      if (o->nonpositional() && !o->get_group().empty() && !parents_help) level.flags.push_back(o);
    }
  }
  out->push_back(level);
  for (const CLI::App* sub : level.subcommands) {
    CollectLevels(*sub, path.empty() ? sub->get_name() : StrCat(path, " ", sub->get_name()), out);
  }
}

std::vector<Level> Levels(const CLI::App& app) {
  std::vector<Level> levels;
  CollectLevels(app, "", &levels);
  return levels;
}

std::string FlagWords(const Level& l) {
  std::string words;
  for (const CLI::Option* o : l.flags) {
    for (const auto& s : o->get_snames()) StrAppend(&words, words.empty() ? "" : " ", "-", s);
    for (const auto& n : o->get_lnames()) StrAppend(&words, words.empty() ? "" : " ", "--", n);
  }
  return words;
}

std::string CommandWords(const Level& l) {
  std::string words;
  for (const CLI::App* s : l.subcommands) StrAppend(&words, words.empty() ? "" : " ", s->get_name());
  return words;
}

// Flags that take a value: the word after one is never a command.
std::string ValuedFlagWords(const std::vector<Level>& levels) {
  std::set<std::string> names;
  for (const Level& l : levels) {
    for (const CLI::Option* o : l.flags) {
      if (o->get_items_expected_max() == 0) continue;
      for (const auto& s : o->get_snames()) names.insert("-" + s);
      for (const auto& n : o->get_lnames()) names.insert("--" + n);
    }
  }
  std::string words;
  for (const auto& n : names) StrAppend(&words, " ", n);
  return words + " ";
}

std::string SingleQuoted(std::string_view s, std::string_view quote_escape) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += quote_escape;
    else
      out += c;
  }
  return out + "'";
}

std::string Bash(const CLI::App& app) {
  const std::vector<Level> levels = Levels(app);
  std::string out =
      "# bash completion for shredctl (shredctl completion bash; docs/CLI.md)\n"
      "_shredctl() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" path=\"\" w i next\n";
  StrAppend(&out, "  local valued=", SingleQuoted(ValuedFlagWords(levels), "'\\''"), "\n");
  out +=
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    if [[ $w == -* ]]; then\n"
      "      [[ $w != *=* && $valued == *\" $w \"* ]] && ((i++))\n"
      "      continue\n"
      "    fi\n"
      "    next=\"${path:+$path }$w\"\n"
      "    _shredctl_words \"$next\" >/dev/null && path=\"$next\"\n"
      "  done\n"
      "  if [[ $prev == -* && $prev != *=* && $valued == *\" $prev \"* ]]; then COMPREPLY=(); return; fi\n"
      "  local words\n"
      "  words=\"$(_shredctl_words \"$path\")\" || return\n"
      "  local cmds=\"${words%%|*}\" flags=\"${words#*|}\"\n"
      "  if [[ $cur == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
      "  elif [[ -n $cmds ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$cmds\" -- \"$cur\"))\n"
      "  else\n"
      "    COMPREPLY=()\n"
      "  fi\n"
      "}\n"
      "# The commands and flags at a command path, as \"COMMANDS|FLAGS\".\n"
      "_shredctl_words() {\n"
      "  case \"$1\" in\n";
  for (const Level& l : levels) {
    StrAppend(&out, "    ", SingleQuoted(l.path, "'\\''"), ") echo ", SingleQuoted(CommandWords(l), "'\\''"), "'|'",
              SingleQuoted(FlagWords(l), "'\\''"), " ;;\n");
  }
  out +=
      "    *) return 1 ;;\n"
      "  esac\n"
      "}\n"
      "complete -o bashdefault -o default -F _shredctl shredctl\n";
  return out;
}

std::string Zsh(const CLI::App& app) {
  const std::vector<Level> levels = Levels(app);
  std::string out =
      "#compdef shredctl\n"
      "# zsh completion for shredctl (shredctl completion zsh; docs/CLI.md)\n"
      "typeset -gA _shredctl_cmds _shredctl_flags\n";
  std::string cmds = "_shredctl_cmds=(\n", flags = "_shredctl_flags=(\n";
  for (const Level& l : levels) {
    StrAppend(&cmds, "  ", SingleQuoted(l.path, "'\\''"), " ", SingleQuoted(CommandWords(l), "'\\''"), "\n");
    StrAppend(&flags, "  ", SingleQuoted(l.path, "'\\''"), " ", SingleQuoted(FlagWords(l), "'\\''"), "\n");
  }
  StrAppend(&out, cmds, ")\n", flags, ")\n");
  StrAppend(&out, "typeset -g _shredctl_valued=", SingleQuoted(ValuedFlagWords(levels), "'\\''"), "\n");
  out +=
      "_shredctl() {\n"
      "  local path_=\"\" w next i\n"
      "  for ((i = 2; i < CURRENT; i++)); do\n"
      "    w=${words[i]}\n"
      "    if [[ $w == -* ]]; then\n"
      "      [[ $w != *=* && $_shredctl_valued == *\" $w \"* ]] && ((i++))\n"
      "      continue\n"
      "    fi\n"
      "    next=\"${path_:+$path_ }$w\"\n"
      "    (( ${+_shredctl_flags[$next]} )) && path_=$next\n"
      "  done\n"
      "  local prev=${words[CURRENT-1]}\n"
      "  if [[ $prev == -* && $prev != *=* && $_shredctl_valued == *\" $prev \"* ]]; then _files; return; fi\n"
      "  if [[ ${words[CURRENT]} == -* ]]; then\n"
      "    compadd -- ${=_shredctl_flags[$path_]}\n"
      "  elif [[ -n ${_shredctl_cmds[$path_]} ]]; then\n"
      "    compadd -- ${=_shredctl_cmds[$path_]}\n"
      "  else\n"
      "    _files\n"
      "  fi\n"
      "}\n"
      "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
      "  _shredctl \"$@\"\n"
      "else\n"
      "  compdef _shredctl shredctl\n"
      "fi\n";
  return out;
}

std::string Fish(const CLI::App& app) {
  const std::vector<Level> levels = Levels(app);
  std::string paths;
  for (const Level& l : levels) {
    if (!l.path.empty()) StrAppend(&paths, " ", SingleQuoted(l.path, "\\'"));
  }
  std::string out = StrCat(
      "# fish completion for shredctl (shredctl completion fish; docs/CLI.md)\n"
      "set -g __shredctl_paths",
      paths, "\nset -g __shredctl_valued (string split -n ' ' -- ", SingleQuoted(ValuedFlagWords(levels), "\\'"),
      ")\n"
      "function __shredctl_path\n"
      "    set -l path ''\n"
      "    set -l skip 0\n"
      "    for w in (commandline -opc)[2..-1]\n"
      "        if test $skip = 1; set skip 0; continue; end\n"
      "        if string match -q -- '-*' $w\n"
      "            if not string match -q -- '*=*' $w; and contains -- $w $__shredctl_valued; set skip 1; end\n"
      "            continue\n"
      "        end\n"
      "        set -l next (string trim -- \"$path $w\")\n"
      "        if contains -- $next $__shredctl_paths; set path $next; end\n"
      "    end\n"
      "    echo $path\n"
      "end\n"
      "complete -c shredctl -e\n");
  for (const Level& l : levels) {
    const std::string when = StrCat("test (__shredctl_path) = ", SingleQuoted(l.path, "\\'"));
    for (const CLI::App* s : l.subcommands) {
      StrAppend(&out, "complete -c shredctl -f -n ", SingleQuoted(when, "\\'"), " -a ",
                SingleQuoted(s->get_name(), "\\'"), " -d ", SingleQuoted(s->get_description(), "\\'"), "\n");
    }
    for (const CLI::Option* o : l.flags) {
      StrAppend(&out, "complete -c shredctl -n ", SingleQuoted(when, "\\'"));
      for (const auto& s : o->get_snames()) StrAppend(&out, " -s ", s);
      for (const auto& n : o->get_lnames()) StrAppend(&out, " -l ", n);
      if (o->get_items_expected_max() != 0) out += " -r";
      StrAppend(&out, " -d ", SingleQuoted(o->get_description(), "\\'"), "\n");
    }
  }
  return out;
}

// shredctl(1)'s sections after its commands.
ManPage ShredctlManPage() {
  ManPage page{"shredctl", 1, "store, shred and verify with shredd", SHREDD_VERSION, {}};
  page.sections.push_back(
      {"CONFIGURATION",
       {"Each setting is taken from the first of: its flag, its environment variable, the client config file, the "
        "default. The config file is $SHREDCTL_CONFIG if set, else $XDG_CONFIG_HOME/shredd/shredctl.toml "
        "(~/.config/shredd/shredctl.toml). Its keys are the long flags' names: server, tls-ca, tls-cert, tls-key, "
        "tls-server-name (strings; relative paths are relative to the file), json, quiet (true or false). "
        "shredctl config show prints each setting in force and where it came from.",
        "The default server is unix:./var/shredd/shredd.sock (the quick-start daemon) if that socket exists, "
        "else unix:/run/shredd/shredd.sock (the packaged service) if that one does."}});
  page.sections.push_back({"ENVIRONMENT",
                           {"TP:SHREDD_SERVER\tthe daemon's address (--server)",
                            "TP:SHREDD_TLS_CA, SHREDD_TLS_CERT, SHREDD_TLS_KEY, SHREDD_TLS_SERVER_NAME\tmutual TLS "
                            "(--tls-ca, --tls-cert, --tls-key, --tls-server-name)",
                            "TP:SHREDCTL_CONFIG\tthe client config file to use"}});
  std::vector<std::string> codes;
  for (const auto& [code, meaning] : kExitCodes) codes.push_back(StrCat("TP:", code, "\t", meaning));
  page.sections.push_back({"EXIT STATUS", codes});
  page.sections.push_back({"SEE ALSO", {"shredd(8), shredd.toml(5); docs/CLI.md in the shredd sources."}});
  return page;
}

}  // namespace

std::string CompletionScript(const CLI::App& app, std::string_view shell) {
  if (shell == "bash") return Bash(app);
  if (shell == "zsh") return Zsh(app);
  if (shell == "fish") return Fish(app);
  return "";
}

void AddCompletionCommands(Commands cmds) {
  static std::string shell;
  auto* c = cmds.app.add_subcommand("completion", "print a shell completion script (bash, zsh or fish)");
  c->add_option("shell", shell, "bash, zsh or fish")->required();
  c->footer(
      StrCat("bash: source <(shredctl completion bash)   zsh: source <(shredctl completion zsh)   "
             "fish: shredctl completion fish | source\n",
             kGlobalFlagsFooter));
  c->callback([&app = cmds.app, &action = cmds.action] {
    action = [&app] {
      const std::string script = CompletionScript(app, shell);
      if (script.empty())
        throw Failure{kUsage, StrCat("no completion for shell \"", shell, "\" (bash, zsh, fish)"), ""};
      std::cout << script;
      return kOk;
    };
  });
  // Hidden (no group): the build writes shredctl.1 with it (client/CMakeLists.txt).
  auto* man = cmds.app.add_subcommand("man", "print the manual page shredctl(1) in roff");
  man->group("");
  man->callback([&app = cmds.app, &action = cmds.action] {
    action = [&app] {
      std::cout << RenderManPage(app, ShredctlManPage());
      return kOk;
    };
  });
}

}  // namespace shredd::cli
