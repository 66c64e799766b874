// The objects the state replicator writes under PREFIX/state/ (one home for
// their names and formats; docs/RECOVERY.md has the table): WAL objects,
// snapshot descriptors, and listing them. Used by the replicator
// (state_replicator.cc) and by restore (state_restore.cc).
#ifndef SHREDD_DAEMON_STORAGE_STATE_OBJECTS_H_
#define SHREDD_DAEMON_STORAGE_STATE_OBJECTS_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

#include "daemon/crypto/digest.h"
#include "daemon/storage/s3_client.h"

namespace shredd {

// State objects are signed with the daemon's identity (the vault's Ed25519
// key, the one that signs checkpoints and certificates): the bucket's
// operator is not trusted, and a SHA-256 checksum alone is one they can
// recompute after editing a batch (dropping a hold, a suppression, log
// entries). RECOVERY.md "Signed state".
//
// StateSigner: the 64-byte signature of `message`, or why there is none.
using StateSigner = std::function<absl::StatusOr<std::string>(std::string_view message)>;
// Whether `signature` is the daemon's over `message`.
using StateVerifier = std::function<bool(std::string_view message, std::string_view signature)>;
// What a restore trusts: objects signed under `verify`, and, only if
// `allow_unsigned`, objects written before state objects were signed (or
// stripped of their signature: the bucket's operator is then trusted).
struct StateTrust {
  StateVerifier verify;
  bool allow_unsigned = false;
};
inline constexpr size_t kStateSignatureBytes = 64;

// One write batch of the WAL: its first sequence number and its
// WriteBatch::Data() representation.
struct WalBatch {
  uint64_t seq = 0;
  uint32_t count = 0;  // sequence numbers it uses
  std::string rep;
  uint64_t last() const { return seq + (count == 0 ? 0 : count - 1); }
};

// The part of `b` from sequence number `from` on (b.seq < from <= b.last()):
// each record of a batch uses one sequence number. Restore needs it when a
// write group arrives whole after an object made of its writers' own
// batches delivered its first part (a rewind re-ships through the WAL
// reader, which returns the group as one batch). DATA_LOSS for a batch
// that does not hold its count, or holds what shredd never writes (column
// families other than the default).
absl::StatusOr<WalBatch> WalBatchFrom(const WalBatch& b, uint64_t from);

// The history a state object belongs to (docs/RECOVERY.md "Runs"). Every
// replicator start begins a run: a random id, the run whose state the data
// dir continued (`parent`: the one it shipped last, or the one `shredd
// restore` ended on) and the sequence number it began from (`fork`). Every
// WAL object and snapshot descriptor names its run (signed with it), and
// restore follows one chain of runs, so objects of another history (a lost
// machine's tail put back after a restore abandoned it, a second daemon on
// the same prefix) are never spliced in. Objects written before runs
// existed have the empty id; a run with an empty parent began from them
// (an upgraded daemon) or from nothing.
struct StateRun {
  std::string id;      // 32 lowercase hex digits, or "" (no run)
  std::string parent;  // the same, or ""
  uint64_t fork = 0;
};
// A fresh random run id.
std::string NewStateRunId();
// Whether `id` is a run id as NewStateRunId makes them.
bool IsStateRunId(std::string_view id);

// A WAL object's content. `floor`: every sequence number up to it was in
// the store when the object was written (several objects are in flight at
// once; a restore tells a gap that a crash left, which nothing acknowledged
// can be behind, from a deleted object by it: RECOVERY.md).
struct WalObjectBody {
  uint64_t floor = 0;
  StateRun run;  // empty id for objects written before runs
  bool is_signed = false;
  std::vector<WalBatch> batches;
};

// "SHRDWAL4", first and last sequence, floor, the run (id and parent, 16
// bytes each, zeros for none; fork), batch count, the batches (seq, count,
// length, rep; big-endian), then SHA-256 of all of it, then the daemon's
// Ed25519 signature of WalSignedMessage(that SHA-256). Without a run (unit
// tests of the earlier formats): "SHRDWAL3", the same without the run
// fields; without a run and a signer, "SHRDWAL2": neither.
//
// Builds one in a buffer the caller may reuse (its capacity is kept: a
// fresh multi-MiB buffer per object cost a page fault per 4 KiB), copying
// each batch's bytes once, straight from the WAL reader.
class WalObjectWriter {
 public:
  // Clears *out (keeping its capacity) and leaves room for the header. With
  // `run` (not owned; outlives the writer), "SHRDWAL4": Finish then needs a
  // signer.
  explicit WalObjectWriter(std::string* out, const StateRun* run = nullptr);
  void Add(uint64_t seq, uint32_t count, std::string_view rep);
  bool empty() const { return batches_ == 0; }
  uint64_t first() const { return first_; }
  uint64_t last() const { return last_; }
  size_t size() const { return out_->size(); }
  // Fills in the header and appends the checksum and (with `sign`) the
  // signature. Returns the SHA-256 of the whole object (trailer included),
  // from the same hashing pass: the object store's payload hash (SigV4), so
  // that the body is hashed once. The signer's error if it fails.
  absl::StatusOr<Sha256> Finish(uint64_t floor, const StateSigner& sign = {});

 private:
  std::string* out_;
  const StateRun* run_;
  uint64_t first_ = 0, last_ = 0;
  uint32_t batches_ = 0;
};
std::string EncodeWalObject(std::span<const WalBatch> batches, uint64_t floor, const StateSigner& sign = {},
                            const StateRun* run = nullptr);
// What a WAL object's signature signs: a domain tag and its checksum.
std::string WalSignedMessage(std::string_view checksum);
// DATA_LOSS naming `name` if the checksum or the framing is wrong, or (with
// `trust`) the signature is not the daemon's or is missing where `trust`
// requires one. Also reads "SHRDWAL2" (unsigned) and "SHRDWAL1" objects (no
// floor field; written one at a time, so their floor is first - 1).
absl::StatusOr<WalObjectBody> DecodeWalObject(std::string_view body, std::string_view name,
                                              const StateTrust* trust = nullptr);
// "state/wal/<first>-<last>-<run id>" (without the prefix); objects
// written before runs: "state/wal/<first>-<last>".
std::string WalObjectName(uint64_t first, uint64_t last, std::string_view run_id = {});

// v2: signed ("signature": hex of the daemon's Ed25519 signature of
// DescriptorSignedMessage(the descriptor without it)); v1: unsigned.
inline constexpr std::string_view kSnapshotDescriptorFormat = "shredd-state-snapshot/v2";
inline constexpr std::string_view kSnapshotDescriptorFormatV1 = "shredd-state-snapshot/v1";
// "<seq 20>-<ms 13>": a snapshot's id, in its descriptor's name and its
// files' prefix.
std::string SnapshotId(uint64_t seq, uint64_t ms);
std::string ShaHex(std::string_view bytes);

struct SnapshotDescriptor {
  std::string key;
  uint64_t seq = 0, ms = 0;
};
// Every descriptor in the store, oldest first.
absl::StatusOr<std::vector<SnapshotDescriptor>> ListDescriptors(S3Client& client);
// The descriptor's bytes as stored, signed when `sign` is set (v2; else v1).
absl::StatusOr<std::string> EncodeDescriptor(nlohmann::json desc, const StateSigner& sign);
// DATA_LOSS if it is not a descriptor, or (with `trust`) not signed as
// `trust` requires.
absl::StatusOr<nlohmann::json> ParseDescriptor(std::string_view body, std::string_view key,
                                               const StateTrust* trust = nullptr);
// The run a parsed descriptor belongs to ("" if written before runs).
std::string DescriptorRun(const nlohmann::json& desc);
absl::StatusOr<nlohmann::json> ReadDescriptor(S3Client& client, const std::string& key,
                                              const StateTrust* trust = nullptr);

struct WalObjectKey {
  std::string key;
  uint64_t first = 0, last = 0;
  std::string run;  // as the name says ("" for objects without a run): checked against the body at restore
};
// Every WAL object in the store, by first (then last) sequence number.
absl::StatusOr<std::vector<WalObjectKey>> ListWalObjects(S3Client& client);
absl::Status DeleteKeys(S3Client& client, const std::vector<std::string>& keys);
// The highest sequence number any snapshot descriptor or WAL object in the
// store names (0 if none): how far the state in the store goes, by name.
absl::StatusOr<uint64_t> NewestStateSequence(S3Client& client);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_STATE_OBJECTS_H_
