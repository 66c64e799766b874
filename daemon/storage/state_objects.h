// The objects the state replicator writes under PREFIX/state/ (one home for
// their names and formats; docs/RECOVERY.md has the table): WAL objects,
// snapshot descriptors, and listing them. Used by the replicator
// (state_replicator.cc) and by restore (state_restore.cc).
#ifndef SHREDD_DAEMON_STORAGE_STATE_OBJECTS_H_
#define SHREDD_DAEMON_STORAGE_STATE_OBJECTS_H_

#include <cstdint>
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

// One write batch of the WAL: its first sequence number and its
// WriteBatch::Data() representation.
struct WalBatch {
  uint64_t seq = 0;
  uint32_t count = 0;  // sequence numbers it uses
  std::string rep;
  uint64_t last() const { return seq + (count == 0 ? 0 : count - 1); }
};

// A WAL object's content. `floor`: every sequence number up to it was in
// the store when the object was written (several objects are in flight at
// once; a restore tells a gap that a crash left, which nothing acknowledged
// can be behind, from a deleted object by it: RECOVERY.md).
struct WalObjectBody {
  uint64_t floor = 0;
  std::vector<WalBatch> batches;
};

// "SHRDWAL2", first and last sequence, floor, batch count, the batches (seq,
// count, length, rep; big-endian), then SHA-256 of all of it.
//
// Builds one in a buffer the caller may reuse (its capacity is kept: a
// fresh multi-MiB buffer per object cost a page fault per 4 KiB), copying
// each batch's bytes once, straight from the WAL reader.
class WalObjectWriter {
 public:
  // Clears *out (keeping its capacity) and leaves room for the header.
  explicit WalObjectWriter(std::string* out);
  void Add(uint64_t seq, uint32_t count, std::string_view rep);
  bool empty() const { return batches_ == 0; }
  uint64_t first() const { return first_; }
  uint64_t last() const { return last_; }
  size_t size() const { return out_->size(); }
  // Fills in the header and appends the checksum. Returns the SHA-256 of
  // the whole object (checksum included), from the same hashing pass: the
  // object store's payload hash (SigV4), so that the body is hashed once.
  Sha256 Finish(uint64_t floor);

 private:
  std::string* out_;
  uint64_t first_ = 0, last_ = 0;
  uint32_t batches_ = 0;
};
std::string EncodeWalObject(std::span<const WalBatch> batches, uint64_t floor);
// DATA_LOSS naming `name` if the checksum or the framing is wrong. Also
// reads "SHRDWAL1" objects (no floor field; written one at a time, so their
// floor is first - 1).
absl::StatusOr<WalObjectBody> DecodeWalObject(std::string_view body, std::string_view name);
// "state/wal/<first>-<last>" (without the prefix).
std::string WalObjectName(uint64_t first, uint64_t last);

inline constexpr std::string_view kSnapshotDescriptorFormat = "shredd-state-snapshot/v1";
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
// DATA_LOSS if it is not a descriptor.
absl::StatusOr<nlohmann::json> ReadDescriptor(S3Client& client, const std::string& key);

struct WalObjectKey {
  std::string key;
  uint64_t first = 0, last = 0;
};
// Every WAL object in the store, by first (then last) sequence number.
absl::StatusOr<std::vector<WalObjectKey>> ListWalObjects(S3Client& client);
absl::Status DeleteKeys(S3Client& client, const std::vector<std::string>& keys);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_STATE_OBJECTS_H_
