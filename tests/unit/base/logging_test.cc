// Structured log lines: text and JSON forms.
#include "daemon/base/logging.h"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace shredd {
namespace {

TEST(LoggingTest, TextAndJsonLines) {
  std::string t = FormatLogLine(LogFormat::kText, LogLevel::kInfo, "shred epoch",
                                {{"order", "ftc-1"}, {"items", 3}, {"seconds", 0.5}, {"note", "two words"}});
  EXPECT_EQ(t, "shredd: shred epoch order=ftc-1 items=3 seconds=0.5 note=\"two words\"");
  EXPECT_EQ(FormatLogLine(LogFormat::kText, LogLevel::kWarning, "w", {}, /*journald_prefix=*/true),
            "<4>shredd: warning: w");
  std::string j =
      FormatLogLine(LogFormat::kJson, LogLevel::kError, "x\ny", {{"n", uint64_t{7}}, {"ok", true}, {"msg", "m"}});
  EXPECT_TRUE(j.starts_with("{\"ts\":\"")) << j;
  EXPECT_NE(j.find("\"level\":\"error\",\"msg\":\"x\\ny\",\"n\":7,\"ok\":true,\"field_msg\":\"m\"}"), std::string::npos)
      << j;
  EXPECT_EQ(j.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace shredd
