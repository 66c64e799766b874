// Offline verification of shredd's transparency log: C2SP tlog-checkpoints
// (c2sp.org/tlog-checkpoint), tlog-proof files (c2sp.org/tlog-proof@v1),
// inclusion of an entry and consistency between two checkpoints. No network,
// no gRPC: everything a regulator needs is the entry, the proof file and the
// log's verifier key.
//
//   checkpoint note text:  <origin>\n<tree size, decimal>\n<base64 root>\n[extension lines\n]
//   tlog-proof file:       c2sp.org/tlog-proof@v1\n[extra <base64>\n]index <N>\n
//                          <base64 hash>\n ... (inclusion path, leaf to root)
//                          \n<signed checkpoint, verbatim>
//
// Entries are hashed as RFC 6962 leaves: LeafHash(entry) = H(0x00 || entry).
// Everything here is a pure function of its arguments and thread-safe.

#ifndef SHREDD_FORMATS_TLOG_H_
#define SHREDD_FORMATS_TLOG_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "formats/keys.h"
#include "formats/merkle.h"

namespace shredd::verify {

inline constexpr std::string_view kTlogProofHeader = "c2sp.org/tlog-proof@v1";
// Longest inclusion path accepted: a tree of 2^63 entries needs 63 hashes.
inline constexpr size_t kMaxProofHashes = 64;

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;  // opaque extension lines, if any
  std::string signed_note;              // the whole signed note it came from (empty if unsigned)
};

// "<origin>\n<size>\n<base64 root>\n". Requires a valid origin (non-empty,
// no newline).
std::string FormatCheckpointText(std::string_view origin, uint64_t size, const Hash& root);

// Parses checkpoint note text (not a signed note). InvalidArgument naming the
// line if: fewer than three lines, an empty line, a size with leading zeros
// or not decimal or above 2^63-1, a root that is not base64 of 32 bytes, or
// a missing final newline.
absl::StatusOr<Checkpoint> ParseCheckpointText(std::string_view text);

// Opens a signed checkpoint: verifies the note signature under `verifier`
// (see OpenNote), parses the text, and checks that its origin equals
// `expected_origin` (empty: the verifier's key name, which C2SP and shredd
// make equal to the origin). Errors: InvalidArgument (malformed),
// Unauthenticated (signature, wrong key, unknown key name),
// FailedPrecondition ("wrong origin").
absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view signed_note, const NoteVerifier& verifier,
                                            std::string_view expected_origin = {});

struct TlogProof {
  std::optional<std::string> extra;  // decoded; unauthenticated
  uint64_t index = 0;
  std::vector<Hash> path;  // leaf's sibling first, up to the root's child
  std::string checkpoint;  // the signed checkpoint note, verbatim
};

// Serializes `proof` as a c2sp.org/tlog-proof@v1 file.
std::string FormatTlogProof(const TlogProof& proof);

// Parses a tlog-proof file without verifying anything. InvalidArgument
// naming the problem: wrong first line, bad "extra" or "index" line, a path
// line that is not base64 of 32 bytes, more than kMaxProofHashes hashes, or
// a truncated file (no blank line and checkpoint after the path).
absl::StatusOr<TlogProof> ParseTlogProof(std::string_view text);

struct VerifiedInclusion {
  uint64_t index = 0;
  Checkpoint checkpoint;
};

// Verifies a tlog-proof file for `entry` (exact bytes) offline: the
// checkpoint's signature and origin (as VerifyCheckpoint), that the index is
// inside the checkpointed tree, and that the path leads from LeafHash(entry)
// at that index to the checkpoint's root. If `expected_index` is given, the
// proof must be for that index. Errors: as VerifyCheckpoint, plus
// InvalidArgument for a malformed proof and "does not prove" failures
// (wrong entry, index, tree size or a truncated path).
absl::StatusOr<VerifiedInclusion> VerifyTlogProof(std::string_view proof_file, std::string_view entry,
                                                  const NoteVerifier& verifier,
                                                  std::optional<uint64_t> expected_index = std::nullopt,
                                                  std::string_view expected_origin = {});

// Checks that `newer` extends `older` (both already verified): same origin,
// newer.size >= older.size, and `proof` is a valid RFC 9162 consistency proof
// between their roots (equal sizes need equal roots and an empty proof).
// FailedPrecondition with a message starting "ROLLBACK" (newer is smaller)
// or "FORK" (same size, different root; or a proof that does not verify);
// InvalidArgument if the origins differ.
absl::Status VerifyCheckpointConsistency(const Checkpoint& older, const Checkpoint& newer, std::span<const Hash> proof);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_TLOG_H_
