#include "client/cli_config.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include <toml++/toml.h>

#include "daemon/base/strings.h"
#include "daemon/config/toml_guard.h"

namespace shredd::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every setting: its config-file key (= the long flag's name), its
// environment variable (if any) and where it lives in Global.
struct Definition {
  const char* key;
  const char* env;
  std::string Global::*text;  // a string setting, or
  bool Global::*flag;         // a boolean one
};
constexpr Definition kDefinitions[] = {
    {"server", "SHREDD_SERVER", &Global::server, nullptr},
    {"tls-ca", "SHREDD_TLS_CA", &Global::tls_ca, nullptr},
    {"tls-cert", "SHREDD_TLS_CERT", &Global::tls_cert, nullptr},
    {"tls-key", "SHREDD_TLS_KEY", &Global::tls_key, nullptr},
    {"tls-server-name", "SHREDD_TLS_SERVER_NAME", &Global::tls_server_name, nullptr},
    {"json", nullptr, nullptr, &Global::json},
    {"quiet", nullptr, nullptr, &Global::quiet},
};

bool IsPathKey(std::string_view key) { return key == "tls-ca" || key == "tls-cert" || key == "tls-key"; }

std::string Env(const char* name) {
  const char* v = name != nullptr ? std::getenv(name) : nullptr;
  return v != nullptr ? v : "";
}

[[noreturn]] void BadFile(std::string_view what) { throw Failure{kUsage, std::string(what), ""}; }

// A value of the file, with the line it is on.
struct FileValue {
  std::string text;
  bool flag = false;
  int line = 0;
};

// "~/x" from $HOME; a relative path from the config file's directory.
std::string FilePath(const std::string& value, const std::string& config_path) {
  if (value.starts_with("~/")) return (fs::path(Env("HOME")) / value.substr(2)).string();
  if (value.empty() || fs::path(value).is_absolute()) return value;
  return (fs::path(config_path).parent_path() / value).lexically_normal().string();
}

std::map<std::string, FileValue> ReadConfigFile(const std::string& path) {
  std::string text;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) BadFile(StrCat("the config file ", path, " does not exist or is not a file"));
  try {
    text = ReadFileOrThrow(path);
  } catch (const Failure&) {
    BadFile(StrCat("cannot read the config file ", path));
  }
  if (absl::Status s = CheckTomlForParserHazards(text, path); !s.ok()) BadFile(std::string(s.message()));
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    BadFile(StrCat(path, ":", e.source().begin.line, ": ", e.description()));
  }
  std::map<std::string, FileValue> values;
  for (auto&& [key, node] : root) {
    const std::string k(key.str());
    const int line = static_cast<int>(key.source().begin.line);
    const Definition* def = nullptr;
    for (const Definition& d : kDefinitions) {
      if (k == d.key) def = &d;
    }
    if (def == nullptr) {
      BadFile(StrCat(path, ":", line, ": ", k,
                     ": unknown key (known: server, tls-ca, tls-cert, tls-key, tls-server-name, json, quiet)"));
    }
    FileValue v;
    v.line = line;
    if (def->text != nullptr) {
      if (!node.is_string()) BadFile(StrCat(path, ":", line, ": ", k, ": expected a string"));
      v.text = node.as_string()->get();
      if (IsPathKey(k)) v.text = FilePath(v.text, path);
    } else {
      if (!node.is_boolean()) BadFile(StrCat(path, ":", line, ": ", k, ": expected true or false"));
      v.flag = node.as_boolean()->get();
      v.text = v.flag ? "true" : "false";
    }
    values[k] = v;
  }
  return values;
}

// The default server: the quick-start socket if it is there, else the
// packaged service's if that is, else the quick-start one (whose absence the
// connection error then names).
Setting DefaultServer() {
  std::error_code ec;
  if (fs::exists(kQuickStartSocket, ec)) {
    return {"server", StrCat("unix:", kQuickStartSocket), "default: the quick-start daemon's socket"};
  }
  if (fs::exists(kServiceSocket, ec)) {
    return {"server", StrCat("unix:", kServiceSocket),
            StrCat("default: the packaged service's socket (", kQuickStartSocket, " is absent)")};
  }
  return {"server", StrCat("unix:", kQuickStartSocket),
          StrCat("default (neither ", kQuickStartSocket, " nor ", kServiceSocket, " exists)")};
}

}  // namespace

std::string ClientConfigPath() {
  if (std::string explicit_path = Env("SHREDCTL_CONFIG"); !explicit_path.empty()) return explicit_path;
  std::string base = Env("XDG_CONFIG_HOME");
  if (base.empty() || !fs::path(base).is_absolute()) {
    if (Env("HOME").empty()) return "";
    base = (fs::path(Env("HOME")) / ".config").string();
  }
  const std::string path = (fs::path(base) / "shredd" / "shredctl.toml").string();
  std::error_code ec;
  return fs::exists(path, ec) ? path : "";
}

std::vector<Setting> ResolveSettings(const CLI::App& app, Global& g) {
  const std::string path = ClientConfigPath();
  const auto file = path.empty() ? std::map<std::string, FileValue>() : ReadConfigFile(path);
  std::vector<Setting> settings;
  for (const Definition& d : kDefinitions) {
    Setting s{d.key, "", ""};
    auto set = [&](const std::string& value) {
      if (d.text != nullptr) g.*d.text = value;
      if (d.flag != nullptr) g.*d.flag = value == "true";
    };
    if (app.count(StrCat("--", d.key)) > 0) {
      s.value = d.text != nullptr ? g.*d.text : (g.*d.flag ? "true" : "false");
      s.source = StrCat("flag --", d.key);
    } else if (!Env(d.env).empty()) {
      s.value = Env(d.env);
      s.source = StrCat("env ", d.env);
    } else if (auto it = file.find(d.key); it != file.end()) {
      s.value = it->second.text;
      s.source = StrCat("file ", path, ":", it->second.line);
    } else if (std::string_view(d.key) == "server") {
      s = DefaultServer();
    } else {
      s.value = d.text != nullptr ? "" : "false";
      s.source = "default";
    }
    set(s.value);
    settings.push_back(std::move(s));
  }
  return settings;
}

void AddConfigCommand(Commands cmds) {
  auto* config = cmds.app.add_subcommand("config", "show the settings in force and where each came from");
  config->require_subcommand(1);
  auto* show = config->add_subcommand(
      "show", "each setting (server, TLS files, output) with its source: flag, environment, config file or default");
  show->callback([&app = cmds.app, &g = cmds.global, &action = cmds.action] {
    action = [&app, &g] {
      Global copy = g;
      const std::vector<Setting> settings = ResolveSettings(app, copy);
      const std::string path = ClientConfigPath();
      json j{{"configFile", path}, {"settings", json::object()}};
      std::string text = StrCat("config file: ", path.empty() ? "(none)" : path);
      for (const Setting& s : settings) {
        j["settings"][s.key] = {{"value", s.value}, {"source", s.source}};
        std::string key = s.key, value = s.value.empty() ? "(not set)" : Shown(s.value);
        key.resize(std::max<size_t>(key.size(), 16), ' ');
        value.resize(std::max<size_t>(value.size(), 32), ' ');
        StrAppend(&text, "\n", key, value, "  ", Shown(s.source));
      }
      Emit(g, j, text);
      return kOk;
    };
  });
}

}  // namespace shredd::cli
