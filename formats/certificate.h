// shredd deletion certificates: building the blinded item commitment, the
// private manifest and per-item receipts (daemon side), and verifying all
// three offline (CLI and tests). docs/FORMATS.md is the byte-exact spec.
//
// A certificate is a DSSE envelope (payloadType kCertificatePayloadType)
// whose payload is an in-toto Statement v1 with one subject
//   {"name": "shredd-deletion:<certificateId>",
//    "digest": {"sha256": "<merkleRoot hex>"}}
// and a predicate of type kDeletionPredicateType. The Merkle root commits to
// the shredded items through blinded leaves
//   "shredd-item-v1 <kind> <digest> <size> <salt hex>"
// so the public certificate reveals only how many items of each kind were
// shredded, never which (invariant 6). Holders of the manifest (all leaves)
// or a receipt (one leaf + audit path) can prove membership.
//
// Errors: malformed input -> InvalidArgument; signature failures ->
// Unauthenticated. Every message names what failed.

#ifndef SHREDD_FORMATS_CERTIFICATE_H_
#define SHREDD_FORMATS_CERTIFICATE_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

#include "formats/dsse.h"
#include "formats/keys.h"
#include "formats/merkle.h"

namespace shredd::verify {

inline constexpr std::string_view kCertificatePayloadType = "application/vnd.in-toto+json";
inline constexpr std::string_view kStatementType = "https://in-toto.io/Statement/v1";
inline constexpr std::string_view kDeletionPredicateType = "https://shredd.dev/attestations/deletion/v1";
inline constexpr std::string_view kSubjectNamePrefix = "shredd-deletion:";
inline constexpr std::string_view kLeafFormat = "shredd-item-v1";
inline constexpr std::string_view kManifestType = "shredd-manifest-v1";
inline constexpr std::string_view kReceiptType = "shredd-receipt-v1";
inline constexpr std::string_view kKindPhoto = "photo";
inline constexpr std::string_view kKindModel = "model";

// One shredded item as committed to by a certificate.
struct ItemEntry {
  std::string kind;                // kKindPhoto or kKindModel
  std::string digest;              // "sha256:" + 64 lowercase hex of the plaintext
  uint64_t size = 0;               // plaintext length in bytes
  std::array<uint8_t, 32> salt{};  // fresh random bytes per item and order
};

// OK iff kind is "photo" or "model" and digest is "sha256:" + 64 lowercase
// hex. Otherwise InvalidArgument.
absl::Status ValidateItemEntry(const ItemEntry& entry);

// "shredd-item-v1 <kind> <digest> <size decimal> <salt lowercase hex>".
// Requires ValidateItemEntry(entry).ok().
std::string ItemLeafInput(const ItemEntry& entry);

// LeafHash(ItemLeafInput(entry)).
Hash ItemLeafHash(const ItemEntry& entry);

// The Merkle commitment over a certificate's items, in tree order (leaf
// hash ascending). Immutable once created; thread-compatible.
class ItemCommitment {
 public:
  // Validates every entry, sorts them into tree order and builds the tree.
  // Fails with InvalidArgument on an invalid entry or if two entries share a
  // digest (one content is one item). An empty list is allowed; its root is
  // EmptyRoot().
  static absl::StatusOr<ItemCommitment> Create(std::vector<ItemEntry> entries);

  const Hash& root() const { return tree_.root(); }
  uint64_t size() const { return entries_.size(); }
  const std::vector<ItemEntry>& entries() const { return entries_; }

  // {"photo": n, "model": m}; both kinds always present.
  std::map<std::string, uint64_t> CountByKind() const;

  // Tree index of the entry with `digest`, if any. O(n).
  std::optional<uint64_t> IndexOf(std::string_view digest) const;

  // The predicate's "items" object:
  // {"count":N,"byKind":{"photo":P,"model":M},"merkleRoot":"<hex>",
  //  "leafFormat":"shredd-item-v1"}.
  nlohmann::ordered_json ItemsPredicate() const;

  // The private manifest (compact JSON, see docs/FORMATS.md).
  std::string ManifestJson(std::string_view certificate_id) const;

  // The receipt for the entry at tree `index` (compact JSON). OutOfRange if
  // index >= size(). O(log n).
  absl::StatusOr<std::string> ReceiptJson(std::string_view certificate_id, uint64_t index) const;

 private:
  ItemCommitment(std::vector<ItemEntry> entries, MerkleTree tree)
      : entries_(std::move(entries)), tree_(std::move(tree)) {}

  std::vector<ItemEntry> entries_;
  MerkleTree tree_;
};

// A receipt (compact JSON, docs/FORMATS.md): `entry` is leaf `index` of a
// tree of `tree_size` leaves with root `root`; `path` its RFC 6962
// inclusion path. Used by ItemCommitment::ReceiptJson and by
// ReceiptFromManifestFile (manifest.h).
std::string ReceiptJsonFor(std::string_view certificate_id, const Hash& root, uint64_t tree_size, uint64_t index,
                           const ItemEntry& entry, std::span<const Hash> path);

// Wraps `predicate` (built by the daemon; its "certificateId" and
// "items"."merkleRoot" must be strings) into the in-toto Statement and
// returns it as compact UTF-8 JSON. The subject is derived from those two
// fields, so it cannot disagree with the predicate. InvalidArgument if they
// are missing or if a string in the predicate is not valid UTF-8.
absl::StatusOr<std::string> StatementJson(const nlohmann::ordered_json& predicate);

// Signs `statement_json` as a DSSE envelope (SignEnvelope, payloadType
// kCertificatePayloadType) with one Ed25519 signature made by `sign` under
// the key `key` (keyid KeyId(key)); returns the envelope JSON or the
// signer's error. The daemon passes its vault's Sign here.
absl::StatusOr<std::string> SignCertificate(std::string_view statement_json, const PublicKey& key, EnvelopeSigner sign);

// The same with a secret key in memory (tests, tools, benchmarks).
std::string SignCertificate(std::string_view statement_json, SecretKeySpan secret_key);

// What VerifyCertificate established.
struct VerifiedCertificate {
  std::string certificate_id;
  Hash merkle_root{};
  uint64_t item_count = 0;
  std::map<std::string, uint64_t> count_by_kind;  // as listed in byKind
  std::string keyid;                              // KeyId of the key that verified
  std::string statement;                          // the signed payload bytes
  nlohmann::json predicate;
};

// Verifies a certificate envelope against `key`:
//  * the envelope parses and payloadType is kCertificatePayloadType;
//  * some signature verifies over PAE under `key`. Signatures whose keyid is
//    set and differs from KeyId(key) are skipped; fails if none is left or
//    none of those verifies;
//  * the payload is a JSON Statement with _type kStatementType, predicateType
//    kDeletionPredicateType, and exactly one subject named
//    "shredd-deletion:<certificateId>" whose digest.sha256 equals
//    predicate.items.merkleRoot;
//  * the predicate has the v1 fields with the right JSON types, times are
//    RFC 3339 UTC, items.leafFormat is "shredd-item-v1", items.count equals
//    the sum of items.byKind, and a zero count has root EmptyRoot().
absl::StatusOr<VerifiedCertificate> VerifyCertificate(std::string_view envelope_json, const PublicKey& key);

// Verifies a private manifest against a verified certificate: type,
// certificateId and merkleRoot match; every item is well-formed; items are
// in strictly ascending leaf-hash order (hence no duplicate leaves) with no
// repeated digest; count and per-kind counts match the certificate; and the
// Merkle root recomputed from the items equals the certificate's root.
// Implemented by the streaming verifier in manifest.h (bounded memory;
// VerifyManifestFile reads a manifest file in pieces).
absl::Status VerifyManifest(const VerifiedCertificate& certificate, std::string_view manifest_json);

// Verifies that `receipt_json` proves that the item with `item_digest`
// ("sha256:<hex>") is committed to by `certificate`: type, certificateId,
// merkleRoot and treeSize (== item count) match; item.digest == item_digest;
// and the inclusion path for leafIndex verifies against the root.
absl::Status VerifyReceipt(const VerifiedCertificate& certificate, std::string_view receipt_json,
                           std::string_view item_digest);

// VerifyReceipt of a receipt already read strictly (strict_json.h), e.g.
// one of a receipt bundle's: the same checks, on the values as read (never
// a re-serialisation of them, which would read -0 as 0).
absl::Status VerifyReceiptJson(const VerifiedCertificate& certificate, const nlohmann::json& receipt,
                               std::string_view item_digest);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_CERTIFICATE_H_
