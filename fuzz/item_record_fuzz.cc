// Fuzz target: the item record codec (shredd::DecodeItemRecord,
// daemon/items/item_record.h), the header of every stored item. Records are
// written only by the daemon, but one altered on disk must give DATA_LOSS,
// never a crash or an out-of-bounds read.
// Properties: no crash; an accepted record re-encodes to the same bytes
// whenever its flag byte is 0 or 1 and its reserved byte 0 (the only
// spellings the encoder writes), and its sealed metadata is what follows
// the header.
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/items/item_record.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = shredd::fuzz::AsView(data, size);
  auto header = shredd::DecodeItemRecord(input);
  if (!header.ok()) return 0;
  FUZZ_CHECK(input.size() >= shredd::kItemRecordHeaderSize);
  FUZZ_CHECK(header->chunk_size != 0 && header->object_id.size() == shredd::kObjectIdSize);
  const std::string_view sealed = shredd::SealedMetadataOf(input);
  const std::string again = shredd::EncodeItemRecord(*header, sealed);
  if ((input[2] == 0 || input[2] == 1) && input[3] == 0) FUZZ_CHECK(again == input);
  std::string moved = again;
  shredd::SetItemRecordSlot(&moved, header->slot + 1);
  auto reread = shredd::DecodeItemRecord(moved);
  FUZZ_CHECK(reread.ok() && reread->slot == header->slot + 1 && reread->size == header->size);
  return 0;
}
