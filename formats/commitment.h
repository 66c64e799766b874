// Custody commitments and the dataset audit (docs/FORMATS.md, "Transparency
// log entries" and "Dataset manifest"; docs/LOG.md, "Audit"): the formulas
// the log entries commit to, and the algorithm that proves from the log that
// every custody entry of a dataset has a later deletion entry. One home for
// both: shredctl's `log audit` runs AuditDataset; the daemon computes the
// commitments it writes into log entries with these functions.
#ifndef SHREDD_FORMATS_COMMITMENT_H_
#define SHREDD_FORMATS_COMMITMENT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "formats/keys.h"

namespace shredd::verify {

// hex SHA-256("shredd-custody-v1 " digest " " salt_hex): the item an
// item-stored or dataset-member entry commits to.
std::string CustodyCommitment(std::string_view digest, std::string_view salt_hex);

// hex SHA-256("shredd-dataset-v1 " name " " dataset_salt_hex).
std::string DatasetCommitment(std::string_view dataset, std::string_view dataset_salt_hex);

// hex SHA-256("shredd-hold-v1 " hold_id " " salt_hex): the legal hold a
// "hold-placed" or "hold-removed" entry records (its id may say too much).
std::string HoldCommitment(std::string_view hold_id, std::string_view salt_hex);

// True iff the log entry (its exact bytes) records the committed item in the
// committed dataset: an "item-stored" entry whose "item" is
// `item_commitment` and whose "datasets" lists `dataset_commitment`, or a
// "dataset-member" entry with both. Any other entry, or one that is not a
// JSON object read strictly (formats/strict_json.h: e.g. a member twice), is
// false (never throws).
bool EntryRecordsMember(std::string_view entry, std::string_view item_commitment, std::string_view dataset_commitment);

// True iff the log entry records some item in the committed dataset (as
// EntryRecordsMember, whatever its "item"): a custody entry of the dataset.
bool EntryRecordsDatasetMember(std::string_view entry, std::string_view dataset_commitment);

// True iff the log entry is the "dataset-registered" entry of the committed
// dataset (written once, when the daemon first uses the name).
bool EntryRegistersDataset(std::string_view entry, std::string_view dataset_commitment);

// What the audit reads, supplied by the caller (shredctl over gRPC or from
// tiles; tests from memory). A failure of the source is returned by
// AuditDataset unchanged; the source itself knows it failed.
class AuditSource {
 public:
  virtual ~AuditSource() = default;
  // The log's latest signed checkpoint, as served (the audit verifies it).
  virtual absl::StatusOr<std::string> Checkpoint() = 0;
  // The exact bytes of the entries from `start` on, in order: at least one,
  // none at or past `end` (start < end).
  virtual absl::StatusOr<std::vector<std::string>> Entries(uint64_t start, uint64_t end) = 0;
  // The private manifest of the certificate with this id.
  virtual absl::StatusOr<std::string> CertificateManifest(const std::string& certificate_id) = 0;
};

struct DatasetAudit {
  struct NotDeleted {
    std::string digest;
    uint64_t custody_index = 0;
  };
  uint64_t tree_size = 0;  // the checkpoint the audit read the whole log under
  uint64_t members = 0;
  uint64_t deleted = 0;
  std::vector<NotDeleted> not_deleted;  // manifest order
};

// Audits `dataset` with its private manifest (untrusted) against the whole
// log under its latest checkpoint, verified under `log_key`
// (docs/LOG.md, "Audit"):
// - every entry of the tree is read, and the tree hash of their leaf hashes
//   must be the checkpoint's root (so each entry is proven); an entry that
//   carries the dataset's commitment must be strict JSON;
// - exactly one entry must register the dataset's commitment
//   (EntryRegistersDataset), before every entry that records an item in
//   the dataset: the manifest's datasetSalt is the daemon's from the start;
// - the entry at each member's memberIndex must record the member
//   (EntryRecordsMember), and every entry that records an item in the
//   dataset must be some member's: a manifest that leaves one out fails;
// - a deletion a member names must be at a later index, be a certificate
//   (verified under log_key's key) with the named id, whose manifest
//   verifies and lists the digest.
// A member without a deletion is listed in not_deleted.
// Errors: the source's status as it returned it; otherwise a check failed
// (a malformed manifest, checkpoint or certificate, a root or commitment
// that does not match, a member left out, or a deletion that does not cover
// the item), with a message naming it.
absl::StatusOr<DatasetAudit> AuditDataset(std::string_view dataset, std::string_view manifest_json,
                                          const NoteVerifier& log_key, AuditSource& source);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_COMMITMENT_H_
