// main() for fuzz targets built without libFuzzer (gcc, the default build):
// replays every file of the given corpus files/directories through
// LLVMFuzzerTestOneInput, plus --mutations=N cheap deterministic mutations
// of each (truncations, byte flips, insertions, deletions), so the normal
// test suite exercises the parsers with the committed corpus.
//
//   fuzz_dsse [--mutations=N] CORPUS_DIR_OR_FILE...
//
// Exits 0 if every input ran (a crash or a property violation aborts), 2 on
// usage errors or if no input file was found (an empty corpus is a failure,
// not a pass).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Run(const std::string& input) {
  // A fresh heap copy of exactly `size` bytes, as libFuzzer does, so ASan
  // catches reads past the end.
  std::vector<uint8_t> copy(input.begin(), input.end());
  LLVMFuzzerTestOneInput(copy.empty() ? nullptr : copy.data(), copy.size());
}

std::string Mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  switch (pick(6)) {
    case 0:  // truncate
      if (!s.empty()) s.resize(pick(s.size()));
      break;
    case 1:  // flip a bit
      if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
      break;
    case 2: {  // insert an interesting byte
      static const char kBytes[] = {'\0', '\n', '"', '\\', '{', '}', '[',    ']',    ',',    ':',
                                    '=',  '+',  '-', '0',  '9', ' ', '\x7f', '\xff', '\xe2', 'A'};
      s.insert(s.begin() + static_cast<ptrdiff_t>(pick(s.size() + 1)), kBytes[pick(sizeof kBytes)]);
      break;
    }
    case 3:  // delete a byte
      if (!s.empty()) s.erase(pick(s.size()), 1);
      break;
    case 4: {  // duplicate a slice
      if (s.empty()) break;
      const size_t from = pick(s.size());
      const size_t len = 1 + pick(std::min<size_t>(64, s.size() - from));
      s.insert(pick(s.size() + 1), s.substr(from, len));
      break;
    }
    default:  // replace a digit run with a huge number
      for (size_t i = pick(s.size() + 1); i < s.size(); ++i) {
        if (s[i] >= '0' && s[i] <= '9') {
          s.insert(i, "18446744073709551616");
          break;
        }
      }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 0;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--mutations=", 0) == 0) {
      mutations = std::strtol(arg.c_str() + 12, nullptr, 10);
      continue;
    }
    if (arg.rfind("-", 0) == 0) {
      std::fprintf(stderr, "%s: unknown option %s (libFuzzer options need the clang fuzz build)\n", argv[0],
                   arg.c_str());
      return 2;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else if (std::filesystem::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "%s: no such file or directory: %s\n", argv[0], arg.c_str());
      return 2;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "%s: no corpus files given\n", argv[0]);
    return 2;
  }
  std::sort(files.begin(), files.end());
  size_t runs = 0;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    const std::string input((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Run(input);
    ++runs;
    std::mt19937_64 rng(std::hash<std::string>{}(input));
    std::string m = input;
    for (long k = 0; k < mutations; ++k) {
      // Stack up to four mutations, then restart from the original.
      m = (k % 4 == 0) ? Mutate(input, rng) : Mutate(m, rng);
      Run(m);
      ++runs;
    }
  }
  std::printf("%s: %zu corpus files, %zu inputs, no crash, no property violation\n", argv[0], files.size(), runs);
  return 0;
}
