#include "formats/commitment.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/dataset_manifest.h"
#include "formats/encoding.h"
#include "formats/manifest.h"
#include "formats/merkle.h"
#include "formats/str_util.h"
#include "formats/tlog.h"

namespace shredd::verify {

using internal::Cat;
using nlohmann::json;

std::string CustodyCommitment(std::string_view digest, std::string_view salt_hex) {
  return HexEncode(Sha256(Cat("shredd-custody-v1 ", digest, " ", salt_hex)));
}

std::string DatasetCommitment(std::string_view dataset, std::string_view dataset_salt_hex) {
  return HexEncode(Sha256(Cat("shredd-dataset-v1 ", dataset, " ", dataset_salt_hex)));
}

namespace {

// A string member of a log entry, or "" (entries are the daemon's word).
std::string_view StringOf(const json& e, const char* name) {
  auto it = e.find(name);
  return it != e.end() && it->is_string() ? std::string_view(it->get_ref<const std::string&>()) : "";
}

absl::Status Failed(std::string what) { return absl::InvalidArgumentError(std::move(what)); }

// One audit: the checks of docs/LOG.md, "Audit", member by member, with the
// certificates already verified kept by id (their digests).
class Audit {
 public:
  Audit(std::string_view dataset, const NoteVerifier& key, AuditSource& source)
      : dataset_(dataset), key_(key), source_(source) {}

  absl::StatusOr<DatasetAudit> Run(std::string_view manifest_json) {
    absl::StatusOr<DatasetManifest> m = ParseDatasetManifest(manifest_json);
    if (!m.ok()) return m.status();
    if (m->dataset != dataset_) {
      return Failed(Cat("the manifest is for dataset \"", m->dataset, "\", not \"", dataset_, "\""));
    }
    dataset_commitment_ = DatasetCommitment(dataset_, m->dataset_salt);
    DatasetAudit report;
    for (const DatasetMember& member : m->members) {
      ++report.members;
      if (absl::Status s = CheckCustody(member); !s.ok()) return s;
      if (!member.deletion) {
        report.not_deleted.push_back({member.digest, member.member_index});
        continue;
      }
      if (absl::Status s = CheckDeletion(member); !s.ok()) return s;
      ++report.deleted;
    }
    return report;
  }

 private:
  // Entry `index`, proven to be in the log that `key_` signs.
  absl::StatusOr<std::string> ProvenEntry(uint64_t index) {
    absl::StatusOr<AuditSource::ProvenEntry> e = source_.Entry(index);
    if (!e.ok()) return e.status();
    absl::StatusOr<VerifiedInclusion> v = VerifyTlogProof(e->proof, e->entry, key_, index);
    if (!v.ok()) return Failed(Cat("log entry ", index, ": ", v.status().message()));
    return std::move(e->entry);
  }

  // 1. The custody entry that put the item in the dataset commits to it.
  absl::Status CheckCustody(const DatasetMember& member) {
    absl::StatusOr<std::string> entry = ProvenEntry(member.member_index);
    if (!entry.ok()) return entry.status();
    if (!EntryRecordsMember(*entry, CustodyCommitment(member.digest, member.custody_salt), dataset_commitment_)) {
      return Failed(
          Cat("log entry ", member.member_index, " does not record ", member.digest, " in dataset ", dataset_));
    }
    return absl::OkStatus();
  }

  // 2. A later certificate entry covers it.
  absl::Status CheckDeletion(const DatasetMember& member) {
    const DatasetDeletion& del = *member.deletion;
    if (del.log_index <= member.member_index) {
      return Failed(Cat("the deletion of ", member.digest, " (log entry ", del.log_index,
                        ") is not later than its custody entry ", member.member_index));
    }
    auto it = covered_.find(del.certificate_id);
    if (it == covered_.end()) {
      absl::StatusOr<std::set<std::string>> digests = CertificateDigests(del);
      if (!digests.ok()) return digests.status();
      it = covered_.emplace(del.certificate_id, *std::move(digests)).first;
    }
    if (!it->second.contains(member.digest)) {
      return Failed(Cat("certificate ", del.certificate_id, " does not cover ", member.digest));
    }
    return absl::OkStatus();
  }

  // The digests the certificate at the deletion's log entry covers.
  absl::StatusOr<std::set<std::string>> CertificateDigests(const DatasetDeletion& del) {
    absl::StatusOr<std::string> envelope = ProvenEntry(del.log_index);
    if (!envelope.ok()) return envelope.status();
    absl::StatusOr<VerifiedCertificate> cert = VerifyCertificate(*envelope, key_.key);
    if (!cert.ok()) return Failed(Cat("certificate at log entry ", del.log_index, ": ", cert.status().message()));
    if (cert->certificate_id != del.certificate_id) {
      return Failed(Cat("certificate at log entry ", del.log_index, " is \"", cert->certificate_id, "\", not \"",
                        del.certificate_id, "\" as the manifest says"));
    }
    absl::StatusOr<std::string> manifest = source_.CertificateManifest(del.certificate_id);
    if (!manifest.ok()) return manifest.status();
    absl::StatusOr<std::vector<std::string>> digests = VerifyManifestDigests(*cert, *manifest);
    if (!digests.ok()) {
      return Failed(Cat("manifest of certificate ", del.certificate_id, ": ", digests.status().message()));
    }
    return std::set<std::string>(digests->begin(), digests->end());
  }

  std::string dataset_;
  const NoteVerifier& key_;
  AuditSource& source_;
  std::string dataset_commitment_;
  std::map<std::string, std::set<std::string>> covered_;  // certificate id -> digests
};

}  // namespace

bool EntryRecordsMember(std::string_view entry, std::string_view item_commitment, std::string_view dataset_commitment) {
  const json e = json::parse(entry, nullptr, /*allow_exceptions=*/false);
  if (!e.is_object() || StringOf(e, "item") != item_commitment) return false;
  const std::string_view type = StringOf(e, "type");
  if (type == "dataset-member") return StringOf(e, "dataset") == dataset_commitment;
  if (type != "item-stored") return false;
  auto datasets = e.find("datasets");
  if (datasets == e.end() || !datasets->is_array()) return false;
  return std::any_of(datasets->begin(), datasets->end(), [&](const json& d) {
    return d.is_string() && d.get_ref<const std::string&>() == dataset_commitment;
  });
}

absl::StatusOr<DatasetAudit> AuditDataset(std::string_view dataset, std::string_view manifest_json,
                                          const NoteVerifier& log_key, AuditSource& source) {
  return Audit(dataset, log_key, source).Run(manifest_json);
}

}  // namespace shredd::verify
