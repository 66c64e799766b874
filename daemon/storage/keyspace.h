// The daemon's RocksDB keyspace: the first bytes of every key it writes, in
// one place. All records live in the default column family of one database
// (<data_dir>/db); the layer that owns a record builds the rest of its key
// and describes its value (see the header named beside each group).
//
// ON-DISK FORMAT. These bytes are in every existing data directory: a value
// here must never change, and a prefix, once used, is never reused for
// something else (a new record type takes a new prefix). No prefix is a
// prefix of another, so a scan over one prefix never meets another record
// type (tests/unit/keyspace_test.cc checks both).
#ifndef SHREDD_DAEMON_STORAGE_KEYSPACE_H_
#define SHREDD_DAEMON_STORAGE_KEYSPACE_H_

#include <string_view>

namespace shredd::keyspace {

// Key tree (daemon/keys/key_tree.h).
inline constexpr std::string_view kEpoch = "te";  // committed root epoch (one key, no suffix)
inline constexpr std::string_view kNode = "n";    // level(1) index(8): node key wrapped under its parent
inline constexpr std::string_view kDek = "k";     // slot(8): DEK wrapped under its bucket key

// Transparency log (daemon/log/transparency_log.h).
inline constexpr std::string_view kLogSize = "Ls";        // tree size (one key, no suffix)
inline constexpr std::string_view kLogEntry = "Le";       // index(8): entry bytes
inline constexpr std::string_view kLogHash = "Lh";        // level(1) index(8): subtree hash
inline constexpr std::string_view kLogLeafIndex = "Li";   // leaf hash(32): first index with it
inline constexpr std::string_view kLogCheckpoint = "Lc";  // size(8): signed checkpoint note

// Items (daemon/items/item_store.h).
inline constexpr std::string_view kItem = "i";               // item_key(32): item record
inline constexpr std::string_view kInline = "c";             // object_id(16): inline ciphertext
inline constexpr std::string_view kObject = "o";             // object_id(16): item key of a blob-backed item
inline constexpr std::string_view kBlobDrop = "b";           // object_id(16): blob of a shredded item, still to delete
inline constexpr std::string_view kBlobIntent = "u";         // object_id(16): an upload begun, not yet committed
inline constexpr std::string_view kIndex = "x";              // type(1) keyed_hash(32) item_key(32): lookup index
inline constexpr std::string_view kSuppression = "s";        // item_key(32): shredded, by which certificate
inline constexpr std::string_view kCustody = "Y";            // item_key(32) index(8): sealed custody record
inline constexpr std::string_view kMember = "Z";             // dataset_key(32) item_key(32) index(8): membership
                                                             // (older stores: no index, one per item and dataset)
inline constexpr std::string_view kLiftedSuppression = "V";  // item_key(32) custody index(8): the suppression
                                                             // of a stored custody, kept when lifted
inline constexpr std::string_view kDataset = "D";            // dataset_key(32): sealed dataset record
inline constexpr std::string_view kSlotScratch = "w";        // scope(8) slot(8): item key + record, an order scan's
                                                             // scratch (items/slot_ordered_lookup.h; dropped at start)
// The type byte after kIndex.
inline constexpr char kIndexSubject = 's';
inline constexpr char kIndexDataset = 'd';
inline constexpr char kIndexLabel = 'l';

// Lineage (daemon/lineage/catalog.h).
inline constexpr std::string_view kEdgeForward = "E";  // child(32) ptype(1) parent(32)
inline constexpr std::string_view kEdgeReverse = "e";  // ptype(1) parent(32) child(32)
inline constexpr std::string_view kHold = "H";         // hold_id: sealed hold
inline constexpr std::string_view kHoldLookup = "h";   // ptype(1) target(32) hold_id
inline constexpr std::string_view kLift = "U";         // hold_id: sealed record of a lifted hold

// Shredding (daemon/shred/shredder.h).
inline constexpr std::string_view kRequest =
    "r";  // request_id: certificate id [" " binding] (shred/shredder_records.h)
inline constexpr std::string_view kPending = "P";        // certificate_id: pending certification
inline constexpr std::string_view kStagedItem = "qs";    // cert(16) slot(8): staged item
inline constexpr std::string_view kStagedLeaf = "ql";    // cert(16) leaf_hash(32): staged manifest entry
inline constexpr std::string_view kCertificate = "C";    // certificate_id: DSSE envelope
inline constexpr std::string_view kManifest = "M";       // certificate_id: private manifest header
inline constexpr std::string_view kManifestChunk = "m";  // certificate_id seq(4): manifest items

// Orders (daemon/orders/orders.h).
inline constexpr std::string_view kOrder = "O";       // order_id: sealed order record
inline constexpr std::string_view kSubjectMap = "J";  // order_id "\0" ...: an order's subject map (subject_map.h)

// Every prefix above, for the test that keeps them apart.
inline constexpr std::string_view kAll[] = {
    kEpoch,        kNode,          kDek,
    kLogSize,      kLogEntry,      kLogHash,
    kLogLeafIndex, kLogCheckpoint, kBlobDrop,
    kItem,         kInline,        kObject,
    kIndex,        kSuppression,   kCustody,
    kMember,       kDataset,       kSlotScratch,
    kEdgeForward,  kEdgeReverse,   kHold,
    kHoldLookup,   kLift,          kRequest,
    kPending,      kStagedItem,    kStagedLeaf,
    kCertificate,  kManifest,      kManifestChunk,
    kOrder,        kSubjectMap,    kLiftedSuppression,
    kBlobIntent,
};

}  // namespace shredd::keyspace

#endif  // SHREDD_DAEMON_STORAGE_KEYSPACE_H_
