// The item record codec (daemon/items/item_record.h): the layout existing
// data dirs hold, and DATA_LOSS (never a crash) for an altered record.
#include "daemon/items/item_record.h"

#include <string>

#include <gtest/gtest.h>

namespace shredd {
namespace {

ItemRecordHeader Sample() {
  return ItemRecordHeader{ItemKind::kModel,  true, 1 << 20, 0x0102030405060708, 5000000000, 1700000000123456789,
                          "0123456789abcdef"};
}

TEST(ItemRecord, RoundTrips) {
  const std::string rec = EncodeItemRecord(Sample(), "sealed metadata");
  auto h = DecodeItemRecord(rec);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->kind, ItemKind::kModel);
  EXPECT_TRUE(h->in_blob);
  EXPECT_EQ(h->chunk_size, 1u << 20);
  EXPECT_EQ(h->slot, 0x0102030405060708u);
  EXPECT_EQ(h->size, 5000000000u);
  EXPECT_EQ(h->stored_unix_nanos, 1700000000123456789);
  EXPECT_EQ(h->object_id, "0123456789abcdef");
  EXPECT_EQ(SealedMetadataOf(rec), "sealed metadata");
}

// The bytes of the layout documented in item_record.h, as data dirs written
// by earlier versions hold them.
TEST(ItemRecord, LayoutIsTheOnDiskFormat) {
  const std::string rec = EncodeItemRecord(Sample(), "m");
  ASSERT_EQ(rec.size(), kItemRecordHeaderSize + 1);
  EXPECT_EQ(rec.substr(0, 4), std::string("\x01\x02\x01\x00", 4));
  EXPECT_EQ(rec.substr(4, 4), std::string("\x00\x10\x00\x00", 4));
  EXPECT_EQ(rec.substr(8, 8), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(rec.substr(32, 16), "0123456789abcdef");
  EXPECT_EQ(rec.back(), 'm');
}

TEST(ItemRecord, SlotAndMetadataAreReplacedInPlace) {
  std::string rec = EncodeItemRecord(Sample(), "old");
  SetItemRecordSlot(&rec, 42);
  ReplaceSealedMetadata(&rec, "new and longer");
  auto h = DecodeItemRecord(rec);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->slot, 42u);
  EXPECT_EQ(h->size, 5000000000u);
  EXPECT_EQ(SealedMetadataOf(rec), "new and longer");
}

TEST(ItemRecord, AlteredRecordsAreDataLoss) {
  const std::string rec = EncodeItemRecord(Sample(), "m");
  auto expect_loss = [](const std::string& r, const std::string& why) {
    auto h = DecodeItemRecord(r);
    ASSERT_FALSE(h.ok()) << why;
    EXPECT_TRUE(absl::IsDataLoss(h.status())) << h.status();
    EXPECT_NE(h.status().message().find(why), std::string::npos) << h.status();
  };
  expect_loss("", "truncated");
  expect_loss(rec.substr(0, kItemRecordHeaderSize - 1), "truncated");
  std::string v2 = rec;
  v2[0] = 2;
  expect_loss(v2, "version");
  std::string kind = rec;
  kind[1] = 3;
  expect_loss(kind, "kind");
  std::string chunk = rec;
  chunk.replace(4, 4, std::string(4, '\0'));
  expect_loss(chunk, "chunk size 0");
}

}  // namespace
}  // namespace shredd
