#include "client/verify_report.h"

#include <string>
#include <utility>
#include <vector>

#include "client/cli_common.h"
#include "daemon/base/strings.h"
#include "formats/text.h"

namespace shredd::cli {

using nlohmann::json;

namespace {

// A member of the signed predicate as text; "" when absent or not a scalar.
std::string Field(const json& obj, const char* name) {
  if (!obj.is_object()) return "";
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null() || it->is_object() || it->is_array()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

const json& Member(const json& obj, const char* name) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(name);
  return it == obj.end() ? kNull : *it;
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return StrCat(n, " ", n == 1 ? one : many);
}

// "trained-on dataset okc-2014", "derived-from model sha256:..., fine-tune".
std::string EdgeText(const json& edge) {
  std::string t = Field(edge, "type");
  if (!Field(edge, "dataset").empty()) StrAppend(&t, " dataset ", Field(edge, "dataset"));
  if (!Field(edge, "model").empty()) StrAppend(&t, " model ", Field(edge, "model"));
  if (!Field(edge, "item").empty()) StrAppend(&t, " a ", Field(edge, "item"));
  if (!Field(edge, "relation").empty()) StrAppend(&t, " (", Field(edge, "relation"), ")");
  return t;
}

using Section = std::pair<std::string, std::vector<std::string>>;

std::vector<std::string> WhatLines(const json& p) {
  const json& items = Member(p, "items");
  const json& by_kind = Member(items, "byKind");
  uint64_t photos = Member(by_kind, "photo").is_number_unsigned() ? by_kind["photo"].get<uint64_t>() : 0;
  uint64_t models = Member(by_kind, "model").is_number_unsigned() ? by_kind["model"].get<uint64_t>() : 0;
  std::vector<std::string> lines{StrCat(Plural(photos, "photo", "photos"), " and ", Plural(models, "model", "models"),
                                        " deleted (", Field(items, "count"), " items, Merkle root ",
                                        Field(items, "merkleRoot"), ")")};
  const json& derived = Member(p, "derivedModels");
  if (derived.is_array() && !derived.empty()) {
    lines.push_back(StrCat(Plural(derived.size(), "model", "models"), " pulled in by lineage:"));
    for (const json& m : derived) {
      lines.push_back(
          StrCat("  ", Field(m, "digest"), " (", Field(m, "size"), " bytes): ", EdgeText(Member(m, "pulledInBy"))));
    }
  }
  const json& held = Member(p, "retainedUnderHold");
  if (held.is_array() && !held.empty()) {
    lines.push_back(StrCat(Plural(held.size(), "item", "items"), " matched but kept under a legal hold:"));
    for (const json& h : held) {
      lines.push_back(StrCat("  ", Field(h, "kind"), Field(h, "digest").empty() ? "" : " " + Field(h, "digest"),
                             ": hold ", Field(h, "holdId"), ", ", Field(h, "reason"),
                             h.is_object() && h.contains("pulledInBy")
                                 ? StrCat("; pulled in by ", EdgeText(Member(h, "pulledInBy")))
                                 : std::string()));
    }
  }
  return lines;
}

std::vector<std::string> HowLines(const json& p) {
  const json& m = Member(p, "method");
  const json& d = Member(p, "destruction");
  std::vector<std::string> lines{StrCat(Field(m, "technique"), ", ", Field(m, "standard"), " ",
                                        Field(m, "sanitization"), " (keys destroyed, not overwritten data)")};
  const json& first = Member(d, "rootEpochDestroyed");
  const json& now = Member(d, "rootEpochInstalled");
  std::string epochs = StrCat("root key epoch ", Field(d, "rootEpochDestroyed"));
  if (first.is_number_unsigned() && now.is_number_unsigned() && now.get<uint64_t>() > first.get<uint64_t>() + 1) {
    epochs = StrCat("root key epochs ", first.get<uint64_t>(), " to ", now.get<uint64_t>() - 1);
  }
  lines.push_back(StrCat("vault backend ", Field(d, "vaultBackend"), "; ", epochs, " destroyed (epoch ",
                         Field(d, "rootEpochInstalled"), " in force at issue)"));
  return lines;
}

std::vector<std::string> WhenLines(const json& p) {
  const json& t = Member(p, "times");
  return {StrCat("requested ", Field(t, "requested")), StrCat("destroyed ", Field(t, "destroyed")),
          StrCat("issued    ", Field(t, "issued"))};
}

std::vector<std::string> BasisLines(const json& p) {
  const json& o = Member(p, "order");
  const json& r = Member(p, "request");
  std::vector<std::string> lines;
  if (o.is_object()) {
    lines.push_back(
        StrCat("order ", Field(o, "id"), ": legal basis ", Field(o, "basis"), ", reference ", Field(o, "reference")));
    lines.push_back(StrCat("received ", Field(o, "received"), ", due ", Field(o, "due")));
  }
  lines.push_back(StrCat("request ", Field(r, "id"), Field(r, "reason").empty() ? "" : ": " + Field(r, "reason")));
  return lines;
}

std::vector<std::string> LogLines(const VerifyReport& r) {
  const json& l = Member(r.predicate, "log");
  std::vector<std::string> lines;
  if (l.is_object()) lines.push_back(StrCat("entry ", Field(l, "index"), " of log ", Field(l, "origin")));
  if (r.log) {
    lines.push_back(StrCat("included in the checkpoint of size ", r.log->tree_size, ", root ", r.log->root_hex));
    if (r.log->reformatted) {
      lines.push_back("the certificate file was reformatted; its canonical form is the logged entry");
    }
  } else if (l.is_object()) {
    lines.push_back("inclusion not checked (give --proof CERT.tlog-proof)");
  }
  if (lines.empty()) lines.push_back("not in a transparency log");
  return lines;
}

std::vector<Section> Summary(const VerifyReport& r) {
  const json& p = r.predicate;
  std::vector<Section> s{
      {"What", WhatLines(p)}, {"How", HowLines(p)},
      {"When", WhenLines(p)}, {"Basis", BasisLines(p)},
      {"Log", LogLines(r)},   {"Signed by", {StrCat("key ", r.keyid), StrCat("fingerprint ", r.key_fingerprint)}}};
  if (!r.covered_item.empty()) {
    s.push_back({"Receipt", {StrCat("the item ", r.covered_item, " is covered by this deletion")}});
  }
  return s;
}

constexpr std::string_view kHtmlStyle = R"(
body{font:11pt/1.4 "DejaVu Sans",Arial,sans-serif;color:#111;margin:0}
section.report{padding:18mm 16mm;page-break-after:always;break-after:page}
section.report:last-child{page-break-after:auto;break-after:auto}
h1{font-size:16pt;margin:0 0 4pt}
.verdict{font-size:14pt;font-weight:bold;padding:4pt 8pt;display:inline-block;border:2px solid}
.valid{color:#0a5d1f;border-color:#0a5d1f}.invalid{color:#9b1111;border-color:#9b1111}
table{border-collapse:collapse;width:100%;margin:8pt 0}
th,td{text-align:left;vertical-align:top;padding:3pt 6pt;border-bottom:1px solid #ccc}
th{width:18%}td.mono,.mono{font-family:"DejaVu Sans Mono",monospace;font-size:9pt;word-break:break-all}
.ok{color:#0a5d1f}.fail{color:#9b1111}
@page{size:A4;margin:0}
)";

std::string HtmlSection(const VerifyReport& r) {
  const bool valid = r.valid();
  std::string h = StrCat("<section class=\"report\">\n<h1>Deletion certificate ",
                         verify::MarkupEscape(Field(r.predicate, "certificateId")), "</h1>\n<p class=\"mono\">",
                         verify::MarkupEscape(r.certificate_path), "</p>\n<p class=\"verdict ",
                         valid ? "valid\" data-result=\"valid\">VALID" : "invalid\" data-result=\"invalid\">INVALID",
                         "</p>\n<h2>Checks</h2>\n<table class=\"checks\">\n");
  for (const ReportCheck& c : r.checks) {
    StrAppend(&h, "<tr><th>", verify::MarkupEscape(c.name), "</th><td class=\"", c.ok ? "ok\">passed" : "fail\">FAILED",
              "</td><td class=\"mono\">", verify::MarkupEscape(c.detail), "</td></tr>\n");
  }
  h += "</table>\n";
  if (valid) {
    h += "<h2>Summary</h2>\n<table class=\"summary\">\n";
    for (const auto& [title, lines] : Summary(r)) {
      StrAppend(&h, "<tr><th>", verify::MarkupEscape(title), "</th><td>");
      for (const std::string& line : lines) StrAppend(&h, verify::MarkupEscape(line), "<br>");
      h += "</td></tr>\n";
    }
    h += "</table>\n";
  }
  return h + "</section>\n";
}

}  // namespace

bool VerifyReport::valid() const { return !checks.empty() && failure() == nullptr; }

const ReportCheck* VerifyReport::failure() const {
  for (const ReportCheck& c : checks) {
    if (!c.ok) return &c;
  }
  return nullptr;
}

json ReportJson(const VerifyReport& r) {
  json j{{"certificate", r.certificate_path}, {"valid", r.valid()}, {"checks", json::array()}};
  for (const ReportCheck& c : r.checks) {
    j["checks"].push_back({{"check", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    if (c.ok && (c.name == "manifest" || c.name == "receipt")) j[c.name] = "ok";
  }
  if (const ReportCheck* f = r.failure()) {
    j["stage"] = f->name == "signature" ? "certificate" : f->name;
    j["reason"] = f->detail;
  }
  if (r.predicate.is_object()) {
    const json& items = Member(r.predicate, "items");
    j["certificateId"] = Field(r.predicate, "certificateId");
    j["items"] = Member(items, "count");
    j["byKind"] = Member(items, "byKind");
    j["merkleRoot"] = Field(items, "merkleRoot");
    j["keyid"] = r.keyid;
    j["keyFingerprint"] = r.key_fingerprint;
    json summary = json::object();
    for (const char* name :
         {"order", "request", "method", "destruction", "times", "derivedModels", "retainedUnderHold", "log"}) {
      if (r.predicate.contains(name)) summary[name] = r.predicate[name];
    }
    j["summary"] = std::move(summary);
  }
  if (!r.covered_item.empty()) j["item"] = r.covered_item;
  if (r.log) {
    j["logInclusion"] = {{"origin", r.log->origin},
                         {"index", r.log->index},
                         {"treeSize", r.log->tree_size},
                         {"rootHash", r.log->root_hex},
                         {"reformatted", r.log->reformatted}};
  }
  return j;
}

std::string ReportText(const VerifyReport& r) {
  if (const ReportCheck* f = r.failure()) {
    return StrCat("INVALID: ", Shown(r.certificate_path), ": ", f->name, " check failed: ", Shown(f->detail));
  }
  std::string t = StrCat("VALID deletion certificate ", Shown(Field(r.predicate, "certificateId")));
  for (const ReportCheck& c : r.checks) StrAppend(&t, "\n  ", c.name, " OK: ", Shown(c.detail));
  for (const auto& [title, lines] : Summary(r)) {
    for (size_t i = 0; i < lines.size(); ++i) {
      std::string label = i == 0 ? title : "";
      label.resize(10, ' ');
      StrAppend(&t, "\n", label, Shown(lines[i]));
    }
  }
  return t;
}

std::string ReportHtml(const std::vector<VerifyReport>& reports) {
  std::string h = StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
      "<title>shredd deletion certificate report</title>\n<style>",
      kHtmlStyle, "</style></head><body>\n");
  for (const VerifyReport& r : reports) h += HtmlSection(r);
  return h + "</body></html>\n";
}

}  // namespace shredd::cli
