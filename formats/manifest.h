// Streaming verification of private manifests (docs/FORMATS.md, "Private
// manifest") in bounded memory.
//
// A manifest of n items is read in pieces (4 MiB by default) by RapidJSON's
// SAX Reader with a handler that keeps no document tree (manifest_reader.h
// says how it is configured and what it accepts: exactly what
// nlohmann::json::parse accepted, except a repeated member that the verifier
// reads and a raw NUL after the document). Per item it checks the item,
// hashes its leaf, folds the leaf into an RFC 6962 root (O(log n) hashes)
// and checks that leaf hashes strictly ascend. To find a repeated digest it
// keeps only the first 8 bytes of every digest (8n bytes: 24 MB at
// 3,000,000 items), sorts them at the end, and only if two prefixes collide
// reads the manifest a second time to compare the full digests of the
// colliding items (the second pass also recomputes the root and counts, so a
// file that changed in between is refused).
//
// Memory: one read piece, O(log n) hashes, 8 bytes per item, the header
// strings (type, certificateId, merkleRoot, order.private, order.salt) and
// the string being parsed.
//
// When a manifest has several faults, the error reported is the one the old
// DOM verifier reported: invalid JSON first, then the header, then the first
// malformed item, counts, repeated digests, per-kind counts, root and tree
// order, and last the order's private fields.

#ifndef SHREDD_FORMATS_MANIFEST_H_
#define SHREDD_FORMATS_MANIFEST_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "formats/certificate.h"

namespace shredd::verify {

inline constexpr size_t kManifestReadBuffer = 4 << 20;

// Statistics of one verification, for benchmarks and progress reports.
struct ManifestStats {
  uint64_t items = 0;              // items seen (first pass)
  uint64_t bytes = 0;              // manifest bytes read (first pass)
  int passes = 0;                  // 1, or 2 after a digest-prefix collision
  uint64_t prefix_collisions = 0;  // adjacent equal 8-byte digest prefixes
};

// Verifies the manifest stored in the file at `path`, reading it in pieces
// of `buffer_bytes`. Same checks and messages as VerifyManifest(); fails with
// NotFound / Internal-style errors (naming the path) if it cannot be read.
absl::Status VerifyManifestFile(const VerifiedCertificate& certificate, const std::string& path,
                                ManifestStats* stats = nullptr, size_t buffer_bytes = kManifestReadBuffer);

// Verifies an in-memory manifest with the same scanner (no copy is made).
// VerifyManifest() in certificate.h is this function.
absl::Status VerifyManifestText(const VerifiedCertificate& certificate, std::string_view manifest_json,
                                ManifestStats* stats = nullptr);

// The receipt (docs/FORMATS.md) of the item with `digest` ("sha256:<hex>"),
// derived from a private manifest in two streaming passes: the first finds
// the item's tree index and checks the manifest (well formed, items in tree
// order, root equal to its stated merkleRoot; no certificate is needed: the
// receipt is checked against one by VerifyReceipt), the second folds the
// subtree hashes of the item's inclusion path. Memory: one read piece and
// O(log^2 n) hashes, so a 3,000,000-item manifest needs a few MiB.
// NotFound if the manifest does not list the digest; InvalidArgument for a
// malformed manifest or one that changed between the passes.
absl::StatusOr<std::string> ReceiptFromManifestFile(const std::string& path, std::string_view digest,
                                                    size_t buffer_bytes = kManifestReadBuffer);
absl::StatusOr<std::string> ReceiptFromManifestText(std::string_view manifest_json, std::string_view digest);
// The receipts of many items in one pass: digest -> receipt JSON for each of
// `digests` the manifest lists (the others are absent from the map). Holds
// the whole tree in memory (64 bytes an item: 192 MB for 3,000,000 items).
// InvalidArgument for a malformed manifest or one whose items do not hash
// to its merkleRoot.
absl::StatusOr<std::map<std::string, std::string>> ReceiptsFromManifestFile(const std::string& path,
                                                                            const std::set<std::string>& digests);

// VerifyManifestText, then the digests of the manifest's items in tree
// order (a second pass over the text; for the dataset audit).
absl::StatusOr<std::vector<std::string>> VerifyManifestDigests(const VerifiedCertificate& certificate,
                                                               std::string_view manifest_json);

// The certificateId of a private manifest that is well formed (as for
// ReceiptFromManifestText: items in tree order, root equal to its stated
// merkleRoot), to match a manifest handed over out of band with its
// certificate. InvalidArgument naming the defect otherwise.
absl::StatusOr<std::string> ManifestCertificateId(std::string_view manifest_json);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_MANIFEST_H_
