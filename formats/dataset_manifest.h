// The private dataset manifest (docs/FORMATS.md, "Dataset manifest"): what
// `shredctl log audit` needs to open the log's custody commitments of every
// item that ever was in a dataset. It comes from the daemon or from a file
// the auditor was handed, so it is untrusted input: the parser checks every
// member's JSON type and never throws.
#ifndef SHREDD_FORMATS_DATASET_MANIFEST_H_
#define SHREDD_FORMATS_DATASET_MANIFEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shredd::verify {

inline constexpr std::string_view kDatasetManifestType = "shredd-dataset-manifest-v1";

// The certificate entry of the log that covers a member's deletion.
struct DatasetDeletion {
  std::string certificate_id;
  uint64_t log_index = 0;
};

struct DatasetMember {
  std::string digest;                       // "sha256:<hex>" as listed (the log entry proves it)
  std::string custody_salt;                 // hex, opens the custody commitment
  uint64_t member_index = 0;                // the entry that put the item in the dataset
  std::optional<DatasetDeletion> deletion;  // absent or null: not deleted
};

struct DatasetManifest {
  std::string dataset;
  std::string dataset_salt;  // hex, opens the dataset commitment
  std::vector<DatasetMember> members;
};

// Parses a dataset manifest under the one-reading rules of strict_json.h.
// InvalidArgument naming the member on any defect: not JSON, another type,
// a missing or mistyped member ("members[3].deletion.logIndex is not a
// non-negative integer"). Members the audit does not use (size, kind,
// custodyIndex) are not checked.
absl::StatusOr<DatasetManifest> ParseDatasetManifest(std::string_view json_text);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_DATASET_MANIFEST_H_
