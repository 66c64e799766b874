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

// True iff the log entry (its exact bytes) records the committed item in the
// committed dataset: an "item-stored" entry whose "item" is
// `item_commitment` and whose "datasets" lists `dataset_commitment`, or a
// "dataset-member" entry with both. Any other entry, or one that is not a
// JSON object, is false (never throws).
bool EntryRecordsMember(std::string_view entry, std::string_view item_commitment, std::string_view dataset_commitment);

// What the audit reads, supplied by the caller (shredctl over gRPC; tests
// from memory). A failure of the source is returned by AuditDataset
// unchanged; the source itself knows it failed.
class AuditSource {
 public:
  virtual ~AuditSource() = default;
  struct ProvenEntry {
    std::string entry;  // the entry's exact bytes
    std::string proof;  // a c2sp.org/tlog-proof@v1 file for it
  };
  virtual absl::StatusOr<ProvenEntry> Entry(uint64_t index) = 0;
  // The private manifest of the certificate with this id.
  virtual absl::StatusOr<std::string> CertificateManifest(const std::string& certificate_id) = 0;
};

struct DatasetAudit {
  struct NotDeleted {
    std::string digest;
    uint64_t custody_index = 0;
  };
  uint64_t members = 0;
  uint64_t deleted = 0;
  std::vector<NotDeleted> not_deleted;  // manifest order
};

// Audits `dataset` with its private manifest (untrusted). For each member:
// the entry at memberIndex, proven under `log_key` (VerifyTlogProof), must
// record the member (EntryRecordsMember); a deletion it names must be at a
// later index, be a certificate (proven the same way and verified under
// log_key's key) with the named id, whose manifest verifies and lists the
// digest. A member without a deletion is listed in not_deleted.
// Errors: the source's status as it returned it; otherwise a check failed
// (a malformed manifest, proof, signature, commitment, or a deletion that
// does not cover the item), with a message naming it.
absl::StatusOr<DatasetAudit> AuditDataset(std::string_view dataset, std::string_view manifest_json,
                                          const NoteVerifier& log_key, AuditSource& source);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_COMMITMENT_H_
