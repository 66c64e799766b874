#include "daemon/base/man_page.h"

#include "daemon/base/strings.h"

namespace shredd {
namespace {

// "--server ADDR" / "-o, --output FILE" in bold and italics.
std::string OptionTag(const CLI::Option& o) {
  std::string tag;
  for (const auto& s : o.get_snames()) StrAppend(&tag, tag.empty() ? "" : ", ", "\\fB", RoffEscape("-" + s), "\\fR");
  for (const auto& l : o.get_lnames()) StrAppend(&tag, tag.empty() ? "" : ", ", "\\fB", RoffEscape("--" + l), "\\fR");
  if (o.get_items_expected_max() != 0) {
    std::string value = o.get_type_name().empty() ? "VALUE" : o.get_type_name();
    StrAppend(&tag, " \\fI", RoffEscape(value), "\\fR");
  }
  return tag;
}

void Options(const CLI::App& app, std::string* out) {
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_group().empty()) continue;  // hidden
    std::string tag = o->get_positional() ? StrCat("\\fI", RoffEscape(o->get_name()), "\\fR") : OptionTag(*o);
    std::string text = o->get_description();
    if (!o->get_default_str().empty()) StrAppend(&text, " (default: ", o->get_default_str(), ")");
    StrAppend(out, ".TP\n", tag, "\n", RoffEscape(text), "\n");
  }
}

std::string Path(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* a = app.get_parent(); a != nullptr && a->get_parent() != nullptr; a = a->get_parent()) {
    path = a->get_name() + " " + path;
  }
  return path;
}

void Commands(const CLI::App& app, std::string* out) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
    StrAppend(out, ".SS \"", RoffEscape(Path(*sub)), "\"\n", RoffEscape(sub->get_description()), "\n");
    Options(*sub, out);
    Commands(*sub, out);
  }
}

}  // namespace

std::string RoffEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string RenderManPage(const CLI::App& app, const ManPage& page) {
  std::string upper = page.name;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string out = StrCat(".TH ", upper, " ", page.section, " \"\" \"shredd ", page.version, "\" \"shredd\"\n");
  StrAppend(&out, ".SH NAME\n", page.name, " \\- ", RoffEscape(page.summary), "\n");
  StrAppend(&out, ".SH SYNOPSIS\n\\fB", page.name, "\\fR [\\fIOPTIONS\\fR]");
  if (!app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); }).empty()) {
    out += app.get_require_subcommand_min() > 0 ? " \\fICOMMAND\\fR ..." : " [\\fICOMMAND\\fR ...]";
  }
  StrAppend(&out, "\n.SH DESCRIPTION\n", RoffEscape(app.get_description()), "\n");
  StrAppend(&out, ".SH OPTIONS\n");
  Options(app, &out);
  std::string commands;
  Commands(app, &commands);
  if (!commands.empty()) StrAppend(&out, ".SH COMMANDS\n", commands);
  for (const auto& [heading, paragraphs] : page.sections) {
    StrAppend(&out, ".SH ", heading, "\n");
    for (const auto& p : paragraphs) {
      if (p.starts_with("TP:")) {
        const size_t tab = p.find('\t');
        StrAppend(&out, ".TP\n\\fB", RoffEscape(p.substr(3, tab - 3)), "\\fR\n", RoffEscape(p.substr(tab + 1)), "\n");
      } else {
        StrAppend(&out, ".PP\n", RoffEscape(p), "\n");
      }
    }
  }
  return out;
}

}  // namespace shredd
