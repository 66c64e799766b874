// The TOML hazard guard (daemon/config/toml_guard.h): input that makes toml++ 3.3.0
// reach __builtin_unreachable() is refused before parsing (found by
// fuzz/config_fuzz.cc; under the asan preset, UBSan aborts this test if the
// guard lets one through), while non-ASCII text inside strings and comments
// still loads.
#include "daemon/config/toml_guard.h"

#include <string>

#include <gtest/gtest.h>

#include "daemon/config/config.h"

namespace shredd {
namespace {

TEST(TomlGuard, RefusesWhatTomlppCannotClassify) {
  const std::string hazards[] = {
      "\xc3\xa9 = 1\n",                             // bare key
      "[\xca\x85]\n",                               // table header (the fuzzer's find)
      "[server]\ndata_dir = \"d\" \xc2\xa7\n",      // after a value
      "a = [1, \xc3\xa9]\n",                        // in an array
      "s = \"\"\"\\\n\xc2\xa7\"\"\"\n",             // after a line-ending backslash (#190)
      "s = \"\"\"\\  \r\n   \n\t\xc2\xa7\"\"\"\n",  // same, more whitespace
      "s = \"\"\"\\\xc3\xa9\"\"\"\n",               // escaped non-ASCII, multi-line
      "\xcc\xaa",                                   // upstream #295
      "x = \"ok\"\n\xef\xbb\xbf\n",                 // a BOM-like character mid-file
      "[server]\nvault =-v\"\"\"\xc5\x88\"\"\"\n",  // quote inside a bare token (fuzzer)
      "[server]\nlisten =0~I.\"s\xd0\x9a\"\n",      // same, after a dot (fuzzer)
      "a = 0[\"\xc3\xa9\"]\n",                      // same, after a bracket
  };
  for (const std::string& doc : hazards) {
    absl::Status s = CheckTomlForParserHazards(doc, "t.toml");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << doc;
    EXPECT_NE(s.message().find("non-ASCII"), std::string_view::npos) << s;
    EXPECT_EQ(s.message().find('\xc3'), std::string_view::npos) << s;  // never echoes raw bytes
    EXPECT_NE(s.message().find("t.toml:"), std::string_view::npos) << s;
    absl::StatusOr<DaemonConfig> c = LoadConfigFromString(doc, "t.toml");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << doc;
  }
  EXPECT_NE(CheckTomlForParserHazards("a = 1\nb = 2\n\xc3\xa9 = 3\n", "f").message().find("f:3:"),
            std::string_view::npos);
}

TEST(TomlGuard, AllowsNonAsciiInStringsAndComments) {
  const std::string ok[] = {
      "# donn\xc3\xa9"
      "es\n[server]\ndata_dir = \"/srv/donn\xc3\xa9\x65s\"  # \xc2\xa7\n",
      "[server]\nlog_origin = 'caf\xc3\xa9'\n",
      "[server]\ndata_dir = \"\"\"/d\xc3\xa9\"\"\"\n",
      "[server]\ndata_dir = '''/d\xc3\xa9\\'''\n",
      "[server]\ndata_dir = \"a\\\"\xc3\xa9\"\n",            // escaped quote, then non-ASCII, same string
      "[server]\ndata_dir = \"\"\"a\\\\\xc3\xa9\"\"\"\n",    // escaped backslash, then non-ASCII
      "[server]\ndata_dir = \"\"\"x\"\"\"\"\n# \xc3\xa9\n",  // four closing quotes
  };
  for (const std::string& doc : ok) {
    EXPECT_TRUE(CheckTomlForParserHazards(doc, "t.toml").ok()) << doc;
  }
  absl::StatusOr<DaemonConfig> c = LoadConfigFromString(ok[0], "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_dir, "/srv/donn\xc3\xa9\x65s");
}

}  // namespace
}  // namespace shredd
