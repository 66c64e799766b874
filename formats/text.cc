#include "formats/text.h"

#include <cstdint>

#include "absl/strings/str_format.h"

#include "formats/str_util.h"

namespace shredd::verify {
namespace {

// One decoded character: its code point and length, or length 0 if the
// bytes at `s` are not well-formed UTF-8.
struct Char {
  char32_t cp = 0;
  size_t len = 0;
};

Char Decode(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return {c, 1};
  size_t len = 0;
  char32_t cp = 0, min = 0;
  if ((c & 0xE0) == 0xC0)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return {};
  if (s.size() < len) return {};
  for (size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xC0) != 0x80) return {};
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {cp, len};
}

bool UnsafeCodePoint(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

void AppendEscaped(std::string* out, std::string_view s) {
  while (!s.empty()) {
    const Char ch = Decode(s);
    if (ch.len == 0) {
      *out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(s[0]));
      s.remove_prefix(1);
      continue;
    }
    if (!UnsafeCodePoint(ch.cp)) {
      out->append(s.substr(0, ch.len));
    } else if (ch.cp == '\n') {
      *out += "\\n";
    } else if (ch.cp == '\r') {
      *out += "\\r";
    } else if (ch.cp == '\t') {
      *out += "\\t";
    } else if (ch.cp < 0x80) {
      *out += absl::StrFormat("\\x%02x", static_cast<unsigned>(ch.cp));
    } else {
      *out += absl::StrFormat("\\u{%04X}", static_cast<unsigned>(ch.cp));
    }
    s.remove_prefix(ch.len);
  }
}

}  // namespace

std::optional<size_t> FindUnsafeText(std::string_view s) {
  size_t at = 0;
  while (at < s.size()) {
    const Char ch = Decode(s.substr(at));
    if (ch.len == 0 || UnsafeCodePoint(ch.cp)) return at;
    at += ch.len;
  }
  return std::nullopt;
}

std::string EscapeText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  AppendEscaped(&out, s);
  return out;
}

std::string QuoteText(std::string_view s, size_t max_bytes) {
  std::string out = "\"";
  AppendEscaped(&out, s.substr(0, max_bytes));  // a character cut in two shows as \xNN
  out += "\"";
  if (s.size() > max_bytes) out += internal::Cat("... (", s.size(), " bytes)");
  return out;
}

std::string MarkupEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace shredd::verify
