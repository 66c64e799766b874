// The one rule for text shown to people (formats/text.h): what is
// unsafe, how it is escaped, and how error messages quote input.

#include "formats/text.h"

#include <string>

#include <gtest/gtest.h>

namespace shredd::verify {
namespace {

TEST(Text, SafeTextIsKept) {
  for (std::string s :
       {"", "plain ascii", "FTC C-4765 / docket 2026", "caf\u00e9 \u65e5\u672c \U0001F600", "tab-free, newline-free"}) {
    EXPECT_EQ(FindUnsafeText(s), std::nullopt) << s;
    EXPECT_EQ(EscapeText(s), s);
  }
}

TEST(Text, UnsafeCharactersAreFoundAndEscaped) {
  const std::pair<std::string, std::string> cases[] = {
      {std::string("a\nb"), "a\\nb"},
      {std::string("a\rb"), "a\\rb"},
      {std::string("a\tb"), "a\\tb"},
      {std::string("a\0b", 3), "a\\x00b"},
      {std::string("a\x1b[31mb"), "a\\x1b[31mb"},
      {std::string("a\x7f"), "a\\x7f"},
      {std::string("a\u009b31m"), "a\\u{009B}31m"},
      {std::string("a\u202eexe.txt"), "a\\u{202E}exe.txt"},
      {std::string("a\u2066b\u2069"), "a\\u{2066}b\\u{2069}"},
      {std::string("a\u200fb"), "a\\u{200F}b"},
      {std::string("a\u2028b"), "a\\u{2028}b"},
      {std::string("a\xff"), "a\\xff"},
      {std::string("a\xc0\xaf"), "a\\xc0\\xaf"},                    // overlong '/'
      {std::string("a\xed\xa0\x80"), "a\\xed\\xa0\\x80"},           // a surrogate
      {std::string("a\xe2\x82"), "a\\xe2\\x82"},                    // cut off
      {std::string("a\xf4\x90\x80\x80"), "a\\xf4\\x90\\x80\\x80"},  // > U+10FFFF
  };
  for (const auto& [in, out] : cases) {
    EXPECT_EQ(FindUnsafeText(in), std::optional<size_t>(1)) << out;
    EXPECT_EQ(EscapeText(in), out);
    EXPECT_EQ(FindUnsafeText(EscapeText(in)), std::nullopt) << out;
    EXPECT_EQ(EscapeText(EscapeText(in)), EscapeText(in)) << "escaping is idempotent";
  }
}

TEST(Text, QuoteIsBoundedAndEscaped) {
  EXPECT_EQ(QuoteText("short"), "\"short\"");
  EXPECT_EQ(QuoteText("a\nb"), "\"a\\nb\"");
  const std::string huge(1 << 20, 'x');
  const std::string q = QuoteText(huge);
  EXPECT_LT(q.size(), 80u);
  EXPECT_EQ(q, "\"" + std::string(40, 'x') + "\"... (1048576 bytes)");
  EXPECT_EQ(QuoteText("0123456789", 4), "\"0123\"... (10 bytes)");
}

}  // namespace
}  // namespace shredd::verify
