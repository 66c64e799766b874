#include "daemon/items/metadata_codec.h"

#include <string>

#include <gtest/gtest.h>

namespace shredd {
namespace {

ContentDigest Digest(uint8_t seed) {
  ContentDigest d;
  for (size_t i = 0; i < d.hash.size(); ++i) d.hash[i] = static_cast<uint8_t>(seed + i * 13);
  d.size = 1234;
  return d;
}

ItemMetadata Sample() {
  ItemMetadata m;
  m.subject_ids = {"alice", "bob-\xc3\xa9"};
  m.datasets = {"faces-2014", std::string(300, 'd')};  // a length that needs a 2-byte varint
  m.labels = {{"age", "31"}, {"empty", ""}, {"sex", "f"}};
  m.name = "IMG_0001.jpg";
  return m;
}

void ExpectSame(const ItemMetadata& a, const ItemMetadata& b) {
  EXPECT_EQ(a.subject_ids, b.subject_ids);
  EXPECT_EQ(a.datasets, b.datasets);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.name, b.name);
}

TEST(MetadataCodec, BinaryRoundTrip) {
  const ContentDigest d = Digest(7);
  const ItemMetadata m = Sample();
  const std::string enc = EncodeMetadata(d, m);
  ASSERT_FALSE(enc.empty());
  EXPECT_EQ(static_cast<uint8_t>(enc[0]), kMetadataBinaryV1);
  ContentDigest got;
  ItemMetadata gm;
  ASSERT_TRUE(DecodeMetadata(enc, &got, &gm).ok());
  EXPECT_EQ(got.hash, d.hash);
  ExpectSame(gm, m);
}

TEST(MetadataCodec, EmptyFieldsRoundTrip) {
  const ContentDigest d = Digest(1);
  const ItemMetadata m;
  const std::string enc = EncodeMetadata(d, m);
  EXPECT_EQ(enc.size(), 1u + 32u + 4u);  // version, hash, three empty lists and an empty name
  ContentDigest got;
  ItemMetadata gm;
  gm.name = "stale";
  ASSERT_TRUE(DecodeMetadata(enc, &got, &gm).ok());
  EXPECT_EQ(got.hash, d.hash);
  ExpectSame(gm, m);
}

// Records written before the binary encoding hold JSON; they stay readable.
TEST(MetadataCodec, OldJsonRecordsStillDecode) {
  const ContentDigest d = Digest(42);
  const ItemMetadata m = Sample();
  const std::string json = EncodeMetadataJson(d, m);
  ASSERT_EQ(json[0], '{');
  ContentDigest got;
  ItemMetadata gm;
  ASSERT_TRUE(DecodeMetadata(json, &got, &gm).ok());
  EXPECT_EQ(got.hash, d.hash);
  ExpectSame(gm, m);
  // A literal record as the previous versions wrote it.
  const std::string literal = "{\"d\":[\"source\"],\"h\":\"" + std::string(64, 'a') +
                              "\",\"l\":{\"k\":\"v\"},\"n\":\"x.jpg\",\"s\":[\"subj\"]}";
  ASSERT_TRUE(DecodeMetadata(literal, &got, &gm).ok());
  EXPECT_EQ(got.hash[0], 0xaa);
  EXPECT_EQ(gm.datasets, std::vector<std::string>{"source"});
  EXPECT_EQ(gm.subject_ids, std::vector<std::string>{"subj"});
  EXPECT_EQ(gm.labels.at("k"), "v");
  EXPECT_EQ(gm.name, "x.jpg");
}

TEST(MetadataCodec, MalformedIsDataLoss) {
  const std::string enc = EncodeMetadata(Digest(3), Sample());
  ContentDigest d;
  ItemMetadata m;
  // Every truncation, and trailing bytes, are refused.
  for (size_t n = 0; n < enc.size(); ++n) {
    auto s = DecodeMetadata(enc.substr(0, n), &d, &m);
    EXPECT_TRUE(absl::IsDataLoss(s)) << n << ": " << s;
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata(enc + "x", &d, &m)));
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata("\x02" + enc.substr(1), &d, &m)));  // unknown version
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata("[1,2]", &d, &m)));
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata("{\"h\":\"zz\"}", &d, &m)));
  // Duplicate label keys.
  std::string dup(1, static_cast<char>(kMetadataBinaryV1));
  dup += std::string(32, '\0');
  dup += std::string("\x00\x00\x02\x01k\x01v\x01k\x01w\x00", 12);
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata(dup, &d, &m)));
  // The same without the duplicate decodes.
  std::string one(1, static_cast<char>(kMetadataBinaryV1));
  one += std::string(32, '\0');
  one += std::string("\x00\x00\x01\x01k\x01v\x00", 8);
  EXPECT_TRUE(DecodeMetadata(one, &d, &m).ok());
  // Label keys out of order.
  std::string unordered(1, static_cast<char>(kMetadataBinaryV1));
  unordered += std::string(32, '\0');
  unordered += std::string("\x00\x00\x02\x01m\x01v\x01k\x01w\x00", 12);
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata(unordered, &d, &m)));
  // A count larger than the bytes left.
  std::string big(1, static_cast<char>(kMetadataBinaryV1));
  big += std::string(32, '\0');
  big += "\xff\xff\xff\xff\x0f";
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata(big, &d, &m)));
  // A non-canonical varint (0 written in two bytes).
  std::string nc(1, static_cast<char>(kMetadataBinaryV1));
  nc += std::string(32, '\0');
  nc += std::string("\x80\x00\x00\x00\x00", 5);
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetadata(nc, &d, &m)));
}

}  // namespace
}  // namespace shredd
