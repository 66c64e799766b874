#include "daemon/config/toml_guard.h"

#include <cstddef>
#include <string>

// toml++ is used header-only (see config.cc).
#include <toml++/toml.h>

#include "daemon/base/strings.h"

namespace shredd {
namespace {

bool High(char c) { return static_cast<unsigned char>(c) >= 0x80; }
bool AsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// On a *valid* TOML document, finds a non-ASCII character that toml++ would
// classify as whitespace inside a multi-line basic string: right after a
// backslash, or after the whitespace that a line-ending backslash trims.
// On valid TOML, quotes and '#' outside strings only open strings and
// comments, so this small lexer is exact.
size_t MultiLineEscapeHazardLine(std::string_view text) {
  enum class State { kNormal, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };
  State state = State::kNormal;
  size_t line = 1;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (c == '\n') ++line;
    switch (state) {
      case State::kNormal:
        if (c == '#') {
          state = State::kComment;
        } else if (c == '"') {
          if (text.substr(i, 3) == "\"\"\"") {
            state = State::kMultiBasic;
            i += 2;
          } else {
            state = State::kBasic;
          }
        } else if (c == '\'') {
          if (text.substr(i, 3) == "'''") {
            state = State::kMultiLiteral;
            i += 2;
          } else {
            state = State::kLiteral;
          }
        }
        break;
      case State::kComment:
        if (c == '\n') state = State::kNormal;
        break;
      case State::kBasic:
        if (c == '\\') {
          ++i;  // valid TOML: the escaped character is never a newline here
        } else if (c == '"') {
          state = State::kNormal;
        }
        break;
      case State::kLiteral:
        if (c == '\'') state = State::kNormal;
        break;
      case State::kMultiBasic:
        if (c == '\\') {
          if (i + 1 >= n) break;
          if (High(text[i + 1])) return line;
          if (AsciiSpace(text[i + 1])) {
            size_t j = i + 1;
            while (j < n && AsciiSpace(text[j])) {
              if (text[j] == '\n') ++line;
              ++j;
            }
            if (j < n && High(text[j])) return line;
            i = j - 1;
          } else {
            ++i;
          }
        } else if (text.substr(i, 3) == "\"\"\"") {
          i += 2;
          while (i + 1 < n && text[i + 1] == '"') ++i;  // up to two quotes end the content
          state = State::kNormal;
        }
        break;
      case State::kMultiLiteral:
        if (text.substr(i, 3) == "'''") {
          i += 2;
          while (i + 1 < n && text[i + 1] == '\'') ++i;
          state = State::kNormal;
        }
        break;
    }
  }
  return 0;
}

}  // namespace

absl::Status CheckTomlForParserHazards(std::string_view text, std::string_view source) {
  size_t i = 0;
  while (i < text.size() && !High(text[i])) ++i;
  if (i == text.size()) return absl::OkStatus();  // pure ASCII: nothing to fear

  // Parse a copy with every non-ASCII byte replaced by '?', which TOML allows
  // only inside strings and comments. If the copy is valid, every non-ASCII
  // character of the original sits in a string or comment (the parser never
  // classifies those, except the multi-line escapes checked below); if not,
  // report the parser's error without ever showing it a non-ASCII byte.
  std::string ascii(text);
  for (char& c : ascii) {
    if (High(c)) c = '?';
  }
  try {
    (void)toml::parse(ascii, std::string(source));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        StrCat(source, ":", e.source().begin.line, ": ", e.description(),
               " (non-ASCII characters are allowed only inside strings and comments; shown as '?')"));
  }
  if (size_t line = MultiLineEscapeHazardLine(text); line != 0) {
    return absl::InvalidArgumentError(StrCat(source, ":", line,
                                             ": non-ASCII character right after a backslash or a line-ending "
                                             "backslash in a multi-line string (not supported)"));
  }
  return absl::OkStatus();
}

}  // namespace shredd
