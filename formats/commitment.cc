#include "formats/commitment.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/compact_range.h"
#include "formats/dataset_manifest.h"
#include "formats/encoding.h"
#include "formats/manifest.h"
#include "formats/merkle.h"
#include "formats/str_util.h"
#include "formats/strict_json.h"
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

std::string HoldCommitment(std::string_view hold_id, std::string_view salt_hex) {
  return HexEncode(Sha256(Cat("shredd-hold-v1 ", hold_id, " ", salt_hex)));
}

namespace {

// A string member of a log entry, or "" (entries are the daemon's word).
std::string_view StringOf(const json& e, const char* name) {
  auto it = e.find(name);
  return it != e.end() && it->is_string() ? std::string_view(it->get_ref<const std::string&>()) : "";
}

absl::Status Failed(std::string what) { return absl::InvalidArgumentError(std::move(what)); }

// The entry as a JSON object if it is one, read strictly (no member twice:
// last-wins would let the audit and another reader see different lists).
std::optional<json> StrictObject(std::string_view entry) {
  absl::StatusOr<json> e = ParseStrictJson(entry, "log entry");
  if (!e.ok() || !e->is_object()) return std::nullopt;
  return *std::move(e);
}

// The entry as a JSON object if it is one and `text` occurs in it (a cheap
// filter: most entries of a big log are other items' custody entries).
std::optional<json> ObjectMentioning(std::string_view entry, std::string_view text) {
  if (entry.find(text) == std::string_view::npos) return std::nullopt;
  return StrictObject(entry);
}

bool RecordsDataset(const json& e, std::string_view dataset_commitment) {
  const std::string_view type = StringOf(e, "type");
  if (type == "dataset-member") return StringOf(e, "dataset") == dataset_commitment;
  if (type != "item-stored") return false;
  auto datasets = e.find("datasets");
  if (datasets == e.end() || !datasets->is_array()) return false;
  return std::any_of(datasets->begin(), datasets->end(), [&](const json& d) {
    return d.is_string() && d.get_ref<const std::string&>() == dataset_commitment;
  });
}

// A certificate entry the manifest names as a deletion: verified as the
// log is read, its manifest fetched once the log checked.
struct Covering {
  std::optional<VerifiedCertificate> cert;
  std::optional<std::set<std::string>> digests;
};

// One audit: the checks of docs/LOG.md, "Audit". The manifest is indexed by
// log index, the whole log is read once in order (each entry checked as it
// goes by and folded into the tree hash), then each member's deletion is
// checked against the certificates read.
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
    manifest_ = *std::move(m);
    dataset_commitment_ = DatasetCommitment(dataset_, manifest_.dataset_salt);
    if (absl::Status s = IndexManifest(); !s.ok()) return s;
    absl::StatusOr<Checkpoint> cp = LatestCheckpoint();
    if (!cp.ok()) return cp.status();
    origin_ = cp->origin;
    if (absl::Status s = ReadLog(*cp); !s.ok()) return s;
    DatasetAudit report;
    report.tree_size = cp->size;
    for (const DatasetMember& member : manifest_.members) {
      ++report.members;
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
  // Members by the log entry that put them in the dataset (one entry puts
  // one item in), and the log entries named as deletions.
  absl::Status IndexManifest() {
    for (size_t i = 0; i < manifest_.members.size(); ++i) {
      const DatasetMember& member = manifest_.members[i];
      if (auto [it, added] = by_index_.emplace(member.member_index, i); !added) {
        return Failed(Cat("dataset manifest members[", it->second, "] and members[", i, "] both name log entry ",
                          member.member_index));
      }
      if (!member.deletion) continue;
      if (member.deletion->log_index <= member.member_index) {
        return Failed(Cat("the deletion of ", member.digest, " (log entry ", member.deletion->log_index,
                          ") is not later than its custody entry ", member.member_index));
      }
      covering_.emplace(member.deletion->log_index, Covering{});
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Checkpoint> LatestCheckpoint() {
    absl::StatusOr<std::string> note = source_.Checkpoint();
    if (!note.ok()) return note.status();
    absl::StatusOr<Checkpoint> cp = VerifyCheckpoint(*note, key_);
    if (!cp.ok()) return Failed(Cat("the log's checkpoint: ", cp.status().message()));
    const uint64_t last = std::max(by_index_.empty() ? 0 : by_index_.rbegin()->first + 1,
                                   covering_.empty() ? 0 : covering_.rbegin()->first + 1);
    if (last > cp->size) {
      return Failed(
          Cat("the manifest names log entry ", last - 1, ", beyond the log's checkpoint (tree size ", cp->size, ")"));
    }
    return cp;
  }

  // Every entry of the tree, in order; then, in this order of precedence:
  // its root against the checkpoint (entries that are not the signed log
  // prove nothing), an entry that did not check, a custody entry left out.
  absl::Status ReadLog(const Checkpoint& cp) {
    CompactRange tree;
    while (tree.size() < cp.size) {
      absl::StatusOr<std::vector<std::string>> batch = source_.Entries(tree.size(), cp.size);
      if (!batch.ok()) return batch.status();
      if (batch->empty() || batch->size() > cp.size - tree.size()) {
        return Failed(
            Cat("the log served ", batch->size(), " entries from index ", tree.size(), " of a tree of ", cp.size));
      }
      for (const std::string& entry : *batch) {
        Visit(tree.size(), entry);
        tree.Append(LeafHash(entry));
      }
    }
    if (tree.Root() != cp.root) {
      return Failed(Cat("the log's entries do not match its checkpoint: their tree of size ", cp.size, " has root ",
                        HexEncode(tree.Root()), ", the signed checkpoint says ", HexEncode(cp.root)));
    }
    if (!entry_failure_.ok()) return entry_failure_;
    if (absl::Status s = CheckRegistered(); !s.ok()) return s;
    if (unlisted_ > 0) {
      return Failed(Cat("the manifest leaves out ", unlisted_, " of the log's custody entries for dataset \"", dataset_,
                        "\" (the first is log entry ", first_unlisted_, "): it is not the dataset's whole history"));
    }
    return absl::OkStatus();
  }

  // 1. An entry that records an item in the dataset is a member's, and
  //    commits to that member; 2. a deletion's entry is a certificate.
  void Visit(uint64_t index, std::string_view entry) {
    if (entry.find(dataset_commitment_) != std::string_view::npos) {
      if (absl::StatusOr<json> e = ParseStrictJson(entry, Cat("log entry ", index)); !e.ok()) {
        EntryFailed(Cat(e.status().message(), " (it carries the commitment of dataset \"", dataset_, "\")"));
      }
    }
    if (auto it = by_index_.find(index); it != by_index_.end()) {
      const DatasetMember& member = manifest_.members[it->second];
      if (!EntryRecordsMember(entry, CustodyCommitment(member.digest, member.custody_salt), dataset_commitment_)) {
        EntryFailed(Cat("log entry ", index, " does not record ", member.digest, " in dataset ", dataset_));
      }
    } else if (EntryRecordsDatasetMember(entry, dataset_commitment_)) {
      if (unlisted_++ == 0) first_unlisted_ = index;
    }
    if (registered_at_.empty() && !early_custody_ && EntryRecordsDatasetMember(entry, dataset_commitment_)) {
      early_custody_ = index;
    }
    if (EntryRegistersDataset(entry, dataset_commitment_)) registered_at_.push_back(index);
    if (auto it = covering_.find(index); it != covering_.end()) {
      absl::StatusOr<VerifiedCertificate> cert = VerifyCertificate(entry, key_.key);
      if (cert.ok()) {
        it->second.cert = *std::move(cert);
      } else {
        EntryFailed(Cat("certificate at log entry ", index, ": ", cert.status().message()));
      }
    }
  }

  // The dataset commitment the manifest opens is the one the daemon
  // registered, once: its salt is not the vendor's to choose at audit time
  // (a made-up salt matches no custody entry and would audit as empty).
  // And registered before the dataset's first custody entry, as the daemon
  // writes it (in the same commit, ahead of it): a registration appended
  // after the fact does not make earlier entries the dataset's history.
  absl::Status CheckRegistered() const {
    if (registered_at_.empty()) {
      return Failed(Cat("no dataset-registered entry of the log has the commitment of dataset \"", dataset_,
                        "\" under the manifest's datasetSalt (", dataset_commitment_,
                        "): it is not the salt the daemon registered the dataset under"));
    }
    if (registered_at_.size() > 1) {
      return Failed(Cat("the log registers dataset \"", dataset_, "\" ", registered_at_.size(), " times (log entries ",
                        registered_at_[0], " and ", registered_at_[1], ")"));
    }
    if (early_custody_) {
      return Failed(Cat("log entry ", *early_custody_, " puts an item in dataset \"", dataset_,
                        "\" before its dataset-registered entry (log entry ", registered_at_[0],
                        "): one appended after the fact does not vouch for the entries before it"));
    }
    return absl::OkStatus();
  }

  void EntryFailed(std::string what) {
    if (entry_failure_.ok()) entry_failure_ = Failed(std::move(what));
  }

  // The digests the certificate at log entry `index` covers, from its
  // private manifest (fetched once per certificate).
  absl::StatusOr<const std::set<std::string>*> Covered(Covering& c) {
    if (!c.digests) {
      absl::StatusOr<std::string> manifest = source_.CertificateManifest(c.cert->certificate_id);
      if (!manifest.ok()) return manifest.status();
      absl::StatusOr<std::vector<std::string>> digests = VerifyManifestDigests(*c.cert, *manifest);
      if (!digests.ok()) {
        return Failed(Cat("manifest of certificate ", c.cert->certificate_id, ": ", digests.status().message()));
      }
      c.digests.emplace(digests->begin(), digests->end());
    }
    return &*c.digests;
  }

  // The certificate names the entry it was issued as (predicate.log): a
  // copy of an older certificate appended again later is not a later
  // deletion, and one issued for another log is not this log's.
  absl::Status CheckLoggedAt(const VerifiedCertificate& cert, uint64_t index) const {
    auto log = cert.predicate.find("log");
    if (log == cert.predicate.end() || !log->is_object()) {
      return Failed(
          Cat("certificate ", cert.certificate_id, " at log entry ", index, " names no log entry (no predicate.log)"));
    }
    if (StringOf(*log, "origin") != origin_) {
      return Failed(Cat("certificate ", cert.certificate_id, " at log entry ", index, " names log \"",
                        StringOf(*log, "origin"), "\", not this log \"", origin_, "\""));
    }
    auto named = log->find("index");
    if (named == log->end() || !named->is_number_unsigned() || named->get<uint64_t>() != index) {
      return Failed(Cat("certificate ", cert.certificate_id, " at log entry ", index, " was issued as log entry ",
                        named == log->end() ? std::string("(none)") : named->dump(),
                        ": a copy appended again is not a later deletion"));
    }
    return absl::OkStatus();
  }

  // 3. The certificate entry read at the deletion's index covers the item
  //    (IndexManifest checked that it is later than the custody entry).
  absl::Status CheckDeletion(const DatasetMember& member) {
    const DatasetDeletion& del = *member.deletion;
    Covering& c = covering_.at(del.log_index);  // ReadLog verified its certificate
    if (c.cert->certificate_id != del.certificate_id) {
      return Failed(Cat("certificate at log entry ", del.log_index, " is \"", c.cert->certificate_id, "\", not \"",
                        del.certificate_id, "\" as the manifest says"));
    }
    if (absl::Status s = CheckLoggedAt(*c.cert, del.log_index); !s.ok()) return s;
    absl::StatusOr<const std::set<std::string>*> digests = Covered(c);
    if (!digests.ok()) return digests.status();
    if (!(*digests)->contains(member.digest)) {
      return Failed(Cat("certificate ", del.certificate_id, " does not cover ", member.digest));
    }
    return absl::OkStatus();
  }

  std::string dataset_;
  const NoteVerifier& key_;
  AuditSource& source_;
  DatasetManifest manifest_;
  std::string dataset_commitment_;
  std::string origin_;                     // the log's, from its checkpoint
  std::map<uint64_t, size_t> by_index_;    // memberIndex -> position in manifest_.members
  std::map<uint64_t, Covering> covering_;  // log index of a deletion -> its certificate
  absl::Status entry_failure_;             // the first entry that did not check
  uint64_t unlisted_ = 0, first_unlisted_ = 0;
  std::vector<uint64_t> registered_at_;    // the dataset-registered entries of the dataset
  std::optional<uint64_t> early_custody_;  // the first custody entry of the dataset before any registration
};

}  // namespace

bool EntryRecordsMember(std::string_view entry, std::string_view item_commitment, std::string_view dataset_commitment) {
  const std::optional<json> e = StrictObject(entry);
  return e && StringOf(*e, "item") == item_commitment && RecordsDataset(*e, dataset_commitment);
}

bool EntryRecordsDatasetMember(std::string_view entry, std::string_view dataset_commitment) {
  auto e = ObjectMentioning(entry, dataset_commitment);
  return e && RecordsDataset(*e, dataset_commitment);
}

bool EntryRegistersDataset(std::string_view entry, std::string_view dataset_commitment) {
  auto e = ObjectMentioning(entry, dataset_commitment);
  return e && StringOf(*e, "type") == "dataset-registered" && StringOf(*e, "dataset") == dataset_commitment;
}

absl::StatusOr<DatasetAudit> AuditDataset(std::string_view dataset, std::string_view manifest_json,
                                          const NoteVerifier& log_key, AuditSource& source) {
  return Audit(dataset, log_key, source).Run(manifest_json);
}

}  // namespace shredd::verify
