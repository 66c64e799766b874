#include "client/put_map.h"

#include <map>
#include <set>

#include "client/cli_common.h"
#include "daemon/base/strings.h"

namespace shredd::cli {
namespace {

using ::shredd::StrCat;

struct Record {
  size_t line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 records (CRLF or LF between them), each with the line it starts
// on. A quote that does not open or close a quoted field, or a quoted field
// left open, is an error naming its line.
std::vector<Record> SplitRecords(std::string_view text, const std::string& name, std::vector<std::string>* errors) {
  std::vector<Record> out;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a BOM, as spreadsheets write it
  Record rec{1, {""}};
  size_t line = 1, quote_line = 0;
  bool quoted = false, after_quote = false, bad = false;
  auto end_record = [&] {
    if (!bad && !(rec.fields.size() == 1 && rec.fields[0].empty() && !after_quote)) out.push_back(std::move(rec));
    rec = Record{line, {""}};
    bad = after_quote = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        rec.fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
        after_quote = true;
      } else {
        if (c == '\n') ++line;
        rec.fields.back() += c;
      }
      continue;
    }
    if (c == ',') {
      rec.fields.emplace_back();
      after_quote = false;
    } else if (c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
      if (c == '\r') ++i;
      ++line;
      end_record();
    } else if (c == '"' && rec.fields.back().empty() && !after_quote) {
      quoted = true;
      quote_line = line;
    } else if (c == '"' || after_quote) {
      if (!bad)
        errors->push_back(StrCat(name, ": line ", line,
                                 ": a quote inside an unquoted field or after a quoted one (RFC 4180: quote the whole "
                                 "field, double the quotes in it)"));
      bad = true;
    } else {
      rec.fields.back() += c;
    }
  }
  if (quoted) {
    errors->push_back(StrCat(name, ": line ", quote_line, ": a quoted field is never closed"));
  } else {
    end_record();
  }
  return out;
}

// A cell's values: split at ';', none empty, none with characters the
// daemon refuses in text fields (control, bidi, line separators, not UTF-8).
std::vector<std::string> Values(const std::string& cell, std::string_view column, const std::string& where,
                                std::vector<std::string>* errors) {
  std::vector<std::string> out;
  if (cell.empty()) return out;
  size_t start = 0;
  for (;;) {
    size_t semi = cell.find(';', start);
    std::string v = cell.substr(start, semi == std::string::npos ? std::string::npos : semi - start);
    if (v.empty()) {
      errors->push_back(StrCat(where, ": an empty value in ", column, " (values are separated by one ';')"));
    } else if (Shown(v) != v) {
      errors->push_back(
          StrCat(where, ": ", column, " value \"", Shown(v), "\" holds control or formatting characters"));
    } else if (column == "labels" && (v.find('=') == std::string::npos || v.front() == '=')) {
      errors->push_back(StrCat(where, ": label \"", Shown(v), "\" is not key=value"));
    }
    out.push_back(std::move(v));
    if (semi == std::string::npos) return out;
    start = semi + 1;
  }
}

}  // namespace

PutMap ParsePutMap(std::string_view text, const std::string& name, const std::string& dir) {
  PutMap map;
  std::vector<Record> records = SplitRecords(text, name, &map.errors);
  if (records.empty()) {
    map.errors.push_back(StrCat(name, ": no header row (expected path,subjects,datasets,labels)"));
    return map;
  }
  const size_t record_errors = map.errors.size();  // bad quoting: those rows are dropped, the rest checked
  static const std::set<std::string> kColumns = {"path", "subjects", "datasets", "labels"};
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < records[0].fields.size(); ++i) {
    const std::string& h = records[0].fields[i];
    if (!kColumns.count(h)) {
      map.errors.push_back(StrCat(name, ": line ", records[0].line, ": unknown column \"", Shown(h),
                                  "\" (columns: path, subjects, datasets, labels)"));
    } else if (!col.emplace(h, i).second) {
      map.errors.push_back(StrCat(name, ": line ", records[0].line, ": column \"", h, "\" appears twice"));
    }
  }
  if (!col.count("path")) map.errors.push_back(StrCat(name, ": line ", records[0].line, ": no \"path\" column"));
  if (map.errors.size() > record_errors) return map;  // a bad header: the rows mean nothing
  std::map<std::string, size_t> seen;                 // path -> line
  for (size_t r = 1; r < records.size(); ++r) {
    const Record& rec = records[r];
    const std::string where = StrCat(name, ": line ", rec.line);
    if (rec.fields.size() != records[0].fields.size()) {
      map.errors.push_back(
          StrCat(where, ": ", rec.fields.size(), " fields, the header has ", records[0].fields.size()));
      continue;
    }
    MapRow row;
    row.line = rec.line;
    const std::string& path = rec.fields[col["path"]];
    if (path.empty()) {
      map.errors.push_back(StrCat(where, ": no path"));
      continue;
    }
    row.path = path.front() == '/' || dir.empty() ? path : StrCat(dir, "/", path);
    if (auto [it, fresh] = seen.emplace(row.path, rec.line); !fresh) {
      map.errors.push_back(StrCat(where, ": ", Shown(path), " is listed already on line ", it->second));
    }
    auto cell = [&](const char* c) { return col.count(c) ? rec.fields[col[c]] : std::string(); };
    row.subjects = Values(cell("subjects"), "subjects", where, &map.errors);
    row.datasets = Values(cell("datasets"), "datasets", where, &map.errors);
    row.labels = Values(cell("labels"), "labels", where, &map.errors);
    map.rows.push_back(std::move(row));
  }
  if (map.rows.empty() && map.errors.empty()) map.errors.push_back(StrCat(name, ": no rows after the header"));
  return map;
}

}  // namespace shredd::cli
