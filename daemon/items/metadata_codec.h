// The plaintext of an item's sealed metadata (docs/FORMATS.md, "Item
// metadata record"): content hash, subject ids, datasets, labels, name.
//
// Two encodings are read; new records are written in the binary one:
//  * binary v1: first byte 0x01, then the 32-byte hash and length-prefixed
//    fields (written since the order-at-scale work: no JSON parse per item
//    when a large order is planned);
//  * JSON (first byte '{'), as written before: {"h":hex,"s":[..],"d":[..],
//    "l":{..},"n":".."}. Stores written by older versions hold these.
// The decoder is strict: trailing bytes, truncation, non-canonical varints,
// label keys not in strictly ascending order or an unknown first byte are
// DATA_LOSS (so a binary record has exactly one spelling). Kind, size and the storage fields live in
// the item record's clear header, not here.
#ifndef SHREDD_DAEMON_ITEMS_METADATA_CODEC_H_
#define SHREDD_DAEMON_ITEMS_METADATA_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

#include "daemon/crypto/digest.h"
#include "daemon/items/item.h"

namespace shredd {

inline constexpr uint8_t kMetadataBinaryV1 = 0x01;

// Binary v1 (what the store writes).
std::string EncodeMetadata(const ContentDigest& d, const ItemMetadata& m);
// The JSON form older versions wrote (kept for tests and tools).
std::string EncodeMetadataJson(const ContentDigest& d, const ItemMetadata& m);
// Either form. Sets d->hash (not d->size) and every field of *m but kind.
// DATA_LOSS if the text is neither form or is malformed.
absl::Status DecodeMetadata(std::string_view text, ContentDigest* d, ItemMetadata* m);

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_METADATA_CODEC_H_
