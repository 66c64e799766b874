// Fuzz target: the dataset manifest that `shredctl log audit` reads (from
// the daemon or an auditor's file: untrusted), the log entries it matches
// against commitments, and the certificate id of a private manifest given
// with --cert-manifest.
// Properties: nothing throws or crashes; a parsed manifest re-serialized
// with the same fields parses to the same fields; an entry built to record
// a member is recognised (as a member, and as one of the dataset's) and a
// changed commitment is not.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/commitment.h"
#include "formats/dataset_manifest.h"
#include "formats/manifest.h"
#include "fuzz/fuzz_fixture.h"

namespace {

using nlohmann::json;
using shredd::verify::DatasetManifest;

std::string Serialize(const DatasetManifest& m) {
  json doc{{"type", "shredd-dataset-manifest-v1"},
           {"dataset", m.dataset},
           {"datasetSalt", m.dataset_salt},
           {"members", json::array()}};
  for (const auto& mem : m.members) {
    json j{{"digest", mem.digest},
           {"custodySalt", mem.custody_salt},
           {"memberIndex", mem.member_index},
           {"deletion", nullptr}};
    if (mem.deletion)
      j["deletion"] = {{"certificateId", mem.deletion->certificate_id}, {"logIndex", mem.deletion->log_index}};
    doc["members"].push_back(j);
  }
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const std::string_view input = fuzz::AsView(data, size);
  (void)verify::ManifestCertificateId(input);
  (void)verify::EntryRecordsMember(input, "item", "dataset");
  // What an entry that mentions the commitment is, is decided by parsing it.
  FUZZ_CHECK(!verify::EntryRecordsDatasetMember(input, "dataset") || input.find("dataset") != std::string_view::npos);
  absl::StatusOr<DatasetManifest> m = verify::ParseDatasetManifest(input);
  if (!m.ok()) return 0;
  // Strings the parser accepted are UTF-8, so they survive a round trip.
  absl::StatusOr<DatasetManifest> again = verify::ParseDatasetManifest(Serialize(*m));
  FUZZ_CHECK(again.ok() && again->dataset == m->dataset && again->dataset_salt == m->dataset_salt &&
             again->members.size() == m->members.size());
  const std::string ds = verify::DatasetCommitment(m->dataset, m->dataset_salt);
  for (const auto& mem : m->members) {
    const std::string item = verify::CustodyCommitment(mem.digest, mem.custody_salt);
    const std::string entry = json{{"type", "dataset-member"}, {"item", item}, {"dataset", ds}}.dump();
    FUZZ_CHECK(verify::EntryRecordsMember(entry, item, ds));
    FUZZ_CHECK(!verify::EntryRecordsMember(entry, item + "0", ds));
    FUZZ_CHECK(verify::EntryRecordsDatasetMember(entry, ds) && !verify::EntryRecordsDatasetMember(entry, ds + "0"));
  }
  return 0;
}
