#include "daemon/base/coding.h"

#include <string>

#include "absl/time/time.h"
#include <gtest/gtest.h>

namespace shredd {
namespace {

TEST(CodingTest, BigEndianBytes) {
  EXPECT_EQ(BigEndian64(0x0102030405060708ULL), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(BigEndian32(0xA1B2C3D4u), std::string("\xA1\xB2\xC3\xD4", 4));
  std::string s = "k";
  AppendBigEndian64(&s, 258);
  EXPECT_EQ(s, std::string("k\0\0\0\0\0\0\x01\x02", 9));
}

TEST(CodingTest, BigEndianRoundTrips) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x80}, uint64_t{0xFFFFFFFFFFFFFFFF}, uint64_t{1} << 63}) {
    EXPECT_EQ(ReadBigEndian64(BigEndian64(v)), v);
  }
  unsigned char b[4];
  StoreBigEndian32(b, 0xDEADBEEF);
  EXPECT_EQ(LoadBigEndian32(b), 0xDEADBEEFu);
  EXPECT_EQ(b[0], 0xDE);
}

// Keys built with it sort by number.
TEST(CodingTest, BigEndianSortsNumerically) {
  EXPECT_LT(BigEndian64(255), BigEndian64(256));
  EXPECT_LT(BigEndian64(1), BigEndian64(uint64_t{1} << 40));
}

TEST(CodingTest, Rfc3339) {
  const absl::Time t = absl::FromUnixMillis(1767323045678);  // 2026-01-02T03:04:05.678Z
  EXPECT_EQ(FormatRfc3339(t), "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(FormatRfc3339(t, TimePrecision::kSeconds), "2026-01-02T03:04:05Z");
  EXPECT_EQ(FormatRfc3339(absl::FromUnixSeconds(1767323045)), "2026-01-02T03:04:05.000Z");
}

}  // namespace
}  // namespace shredd
