// The map of `shredctl put --map FILE.csv`: which files to store, each with
// its subjects, datasets and labels (docs/CLI.md, "put --map").
#ifndef SHREDD_CLIENT_PUT_MAP_H_
#define SHREDD_CLIENT_PUT_MAP_H_

#include <string>
#include <string_view>
#include <vector>

namespace shredd::cli {

struct MapRow {
  size_t line = 0;                                      // where the record starts, from 1
  std::string path;                                     // relative paths: against the map file's directory
  std::vector<std::string> subjects, datasets, labels;  // labels as "k=v"
};

struct PutMap {
  std::vector<MapRow> rows;
  std::vector<std::string> errors;  // "map.csv: line 7: ...", every bad row
};

// Parses `text` (the contents of the map file `name`, in directory `dir`).
// RFC 4180 quoting; a header row naming `path` and any of `subjects`,
// `datasets`, `labels`; `;` between several values of a cell. Reports every
// bad row rather than stopping at the first; checks no file.
PutMap ParsePutMap(std::string_view text, const std::string& name, const std::string& dir);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_PUT_MAP_H_
