// formats/commitment.h: the commitment formulas (known answers computed
// with Python's hashlib from docs/FORMATS.md), which log entries record a
// member, and the dataset audit against an in-memory log signed like the
// daemon's (every proof, signature and commitment is really checked).
#include "formats/commitment.h"

#include <sodium.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/keys.h"
#include "formats/merkle.h"
#include "formats/note.h"
#include "formats/tlog.h"
#include "tests/formats/cert_fixture.h"

namespace shredd::verify {
namespace {

using nlohmann::json;
using testing_fixture::DigestOf;

std::string Repeat(std::string_view two, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += two;
  return s;
}

TEST(Commitment, KnownAnswers) {
  EXPECT_EQ(CustodyCommitment("sha256:" + Repeat("ab", 32), Repeat("cd", 32)),
            "aace96a04deb4f34ec9c868179c07125a0396ddab254f83fc870b09b902195ab");
  EXPECT_EQ(DatasetCommitment("faces-2014", Repeat("ef", 32)),
            "f47acb85ac40401528b464bc3a3cecef3b6a133e10e8294d087289a333eecc8d");
}

TEST(Commitment, EntryRecordsMember) {
  const std::string item = CustodyCommitment("sha256:x", "s"), ds = DatasetCommitment("d", "t");
  EXPECT_TRUE(
      EntryRecordsMember(json{{"type", "item-stored"}, {"item", item}, {"datasets", {"z", ds}}}.dump(), item, ds));
  EXPECT_TRUE(EntryRecordsMember(json{{"type", "dataset-member"}, {"item", item}, {"dataset", ds}}.dump(), item, ds));
  EXPECT_FALSE(EntryRecordsMember(json{{"type", "item-stored"}, {"item", item}, {"datasets", {"z"}}}.dump(), item, ds));
  EXPECT_FALSE(
      EntryRecordsMember(json{{"type", "dataset-member"}, {"item", "other"}, {"dataset", ds}}.dump(), item, ds));
  EXPECT_FALSE(EntryRecordsMember(json{{"type", "lineage"}, {"item", item}, {"dataset", ds}}.dump(), item, ds));
  // Wrong types and garbage are "does not record", never an exception.
  for (const char* bad : {"", "[]", "7", "{\"item\":5}", "{\"type\":\"item-stored\",\"item\":[],\"datasets\":5}",
                          "{\"type\":\"item-stored\",\"datasets\":[1,null]}", "\xff{"}) {
    EXPECT_FALSE(EntryRecordsMember(bad, item, ds)) << bad;
  }
}

TEST(Commitment, EntryRecordsDatasetMember) {
  const std::string ds = DatasetCommitment("d", "t");
  EXPECT_TRUE(EntryRecordsDatasetMember(json{{"type", "item-stored"}, {"item", "x"}, {"datasets", {ds}}}.dump(), ds));
  EXPECT_TRUE(EntryRecordsDatasetMember(json{{"type", "dataset-member"}, {"item", "y"}, {"dataset", ds}}.dump(), ds));
  // Entries that name the dataset without putting an item in it.
  EXPECT_FALSE(EntryRecordsDatasetMember(json{{"type", "dataset-registered"}, {"dataset", ds}}.dump(), ds));
  EXPECT_FALSE(EntryRecordsDatasetMember(
      json{{"type", "lineage"}, {"item", "m"}, {"edges", {{{"type", "trained-on"}, {"dataset", ds}}}}}.dump(), ds));
  EXPECT_FALSE(EntryRecordsDatasetMember(json{{"type", "item-stored"}, {"item", "x"}, {"note", ds}}.dump(), ds));
  EXPECT_FALSE(EntryRecordsDatasetMember("{\"type\":\"item-stored\",\"datasets\":[\"" + ds + "\"]", ds));
}

// A log of JSON entries and one certificate, served in batches with a
// checkpoint signed by the certificate's key, as the daemon serves them.
class AuditTest : public ::testing::Test, public AuditSource {
 protected:
  void SetUp() override {
    UseCertificate("test.log");
    salt_ = std::string(64, '1');
    dataset_salt_ = std::string(64, '2');
    const std::string ds = DatasetCommitment("faces", dataset_salt_);
    // The daemon registers a dataset before its first member.
    entries_.push_back(Registration(ds));
    for (const char* photo : {"photo 1", "photo 2"}) {
      entries_.push_back(json{
          {"type", "item-stored"},
          {"item", CustodyCommitment(DigestOf(photo), salt_)},
          {"datasets", {ds}}}.dump());
    }
    entries_.push_back(cert_.envelope);  // index 3
    // A model trained on the dataset names it, but is not a member.
    entries_.push_back(
        json{{"type", "lineage"}, {"item", "m"}, {"edges", {{{"type", "trained-on"}, {"dataset", ds}}}}}.dump());
  }

  // The certificate at index 3, issued as that entry of log `origin`
  // (the checkpoint is test.log's, signed by the certificate's key).
  void UseCertificate(const std::string& origin) {
    cert_ = testing_fixture::MakeCertificate("cert-a", {{"origin", origin}, {"index", 3}});
    key_ = *ParseNoteVerifierKey(NoteVerifierKey("test.log", cert_.pub));
    if (entries_.size() > 3) entries_[3] = cert_.envelope;
  }

  static std::string Registration(const std::string& ds) {
    return json{{"type", "dataset-registered"}, {"dataset", ds}, {"time", "2026-11-26T04:20:00.000Z"}}.dump();
  }

  absl::StatusOr<std::string> Checkpoint() override {
    if (!source_error_.ok()) return source_error_;
    std::vector<Hash> leaves;
    for (const std::string& e : entries_) leaves.push_back(LeafHash(e));
    return SignNoteEd25519(FormatCheckpointText("test.log", leaves.size(), RootFromLeafHashes(leaves)), "test.log",
                           signer_ ? signer_->secret() : cert_.secret());
  }
  absl::StatusOr<std::vector<std::string>> Entries(uint64_t start, uint64_t end) override {
    ++entry_calls_;
    std::vector<std::string> out;
    for (uint64_t i = start; i < end && out.size() < 2; ++i) out.push_back(entries_[i]);  // two per call
    if (auto it = served_instead_.find(start); it != served_instead_.end()) out[0] = it->second;
    return out;
  }
  absl::StatusOr<std::string> CertificateManifest(const std::string& id) override {
    if (id != "cert-a") return absl::NotFoundError("no such certificate");
    return cert_.manifest;
  }

  json Manifest(bool deleted) const {
    json m{{"type", "shredd-dataset-manifest-v1"},
           {"dataset", "faces"},
           {"datasetSalt", dataset_salt_},
           {"members", json::array()}};
    for (int i = 0; i < 2; ++i) {
      json mem{{"digest", DigestOf(i == 0 ? "photo 1" : "photo 2")},
               {"custodySalt", salt_},
               {"memberIndex", i + 1},
               {"deletion", nullptr}};
      if (deleted) mem["deletion"] = {{"certificateId", "cert-a"}, {"logIndex", 3}};
      m["members"].push_back(mem);
    }
    return m;
  }

  absl::StatusOr<DatasetAudit> Run(const json& m) { return AuditDataset("faces", m.dump(), key_, *this); }

  testing_fixture::SignedCertificate cert_;
  std::optional<testing_fixture::SignedCertificate> signer_;
  NoteVerifier key_;
  std::string salt_, dataset_salt_;
  std::vector<std::string> entries_;
  std::map<uint64_t, std::string> served_instead_;  // first entry of a batch, served altered
  int entry_calls_ = 0;
  absl::Status source_error_;
};

void ExpectFailure(const absl::StatusOr<DatasetAudit>& r, std::string_view needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find(needle), std::string::npos) << r.status();
}

TEST_F(AuditTest, NothingDeletedIsListed) {
  absl::StatusOr<DatasetAudit> r = Run(Manifest(false));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->members, 2u);
  EXPECT_EQ(r->deleted, 0u);
  ASSERT_EQ(r->not_deleted.size(), 2u);
  EXPECT_EQ(r->not_deleted[1].digest, DigestOf("photo 2"));
  EXPECT_EQ(r->not_deleted[1].custody_index, 2u);
}

TEST_F(AuditTest, DeletionsCoveredByTheCertificate) {
  absl::StatusOr<DatasetAudit> r = Run(Manifest(true));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->deleted, 2u);
  EXPECT_TRUE(r->not_deleted.empty());
  EXPECT_EQ(r->tree_size, 5u);
  EXPECT_EQ(entry_calls_, 3);  // the whole log, as the source batches it
}

TEST_F(AuditTest, AManifestThatLeavesOutACustodyEntryFails) {
  // The vendor drops the member it still holds: the audit must not pass.
  json m = Manifest(true);
  m["members"].erase(1);
  ExpectFailure(Run(m), "leaves out 1 of the log's custody entries for dataset \"faces\" (the first is log entry 2)");
  // A later dataset-member entry is a custody entry too.
  entries_.push_back(json{{"type", "dataset-member"},
                          {"item", CustodyCommitment(DigestOf("photo 3"), salt_)},
                          {"dataset", DatasetCommitment("faces", dataset_salt_)}}
                         .dump());
  ExpectFailure(Run(Manifest(true)),
                "leaves out 1 of the log's custody entries for dataset \"faces\" "
                "(the first is log entry 5)");
}

TEST_F(AuditTest, EntriesThatDoNotMatchTheCheckpointFail) {
  // The source serves another entry for index 0: their tree hash is not
  // the signed root, and that is the failure reported (not that the entry
  // does not record its member: served entries that are not the log prove
  // nothing either way).
  served_instead_[0] = json{{"type", "item-stored"}, {"item", "x"}, {"datasets", json::array()}}.dump();
  ExpectFailure(Run(Manifest(false)), "the log's entries do not match its checkpoint: their tree of size 5 has root");
}

TEST_F(AuditTest, TheDatasetSaltMustBeTheOneTheLogRegistered) {
  // A vendor that makes up a salt opens a commitment no custody entry
  // carries: with no members it would audit as an empty dataset, all deleted.
  json m = Manifest(true);
  m["datasetSalt"] = std::string(64, '9');
  m["members"] = json::array();
  ExpectFailure(Run(m), "no dataset-registered entry of the log has the commitment of dataset \"faces\"");
  // Registered twice is not the daemon's log either.
  entries_.push_back(Registration(DatasetCommitment("faces", dataset_salt_)));
  ExpectFailure(Run(Manifest(true)), "the log registers dataset \"faces\" 2 times (log entries 0 and 5)");
}

TEST_F(AuditTest, TheRegistrationMustComeBeforeTheCustodyEntries) {
  // The daemon registers a dataset in the commit of its first member, ahead
  // of it; a registration appended after custody entries of the commitment
  // does not vouch for them. Here: photo 1, registration, photo 2.
  std::swap(entries_[0], entries_[1]);
  json m = Manifest(true);
  m["members"][0]["memberIndex"] = 0;
  ExpectFailure(Run(m),
                "log entry 0 puts an item in dataset \"faces\" before its dataset-registered entry (log entry 1)");
  // The same when the early entry is one the manifest leaves out.
  m["members"].erase(0);
  ExpectFailure(Run(m),
                "log entry 0 puts an item in dataset \"faces\" before its dataset-registered entry (log entry 1)");
  // Registered after every custody entry: photo 1, photo 2, cert, lineage, registration.
  std::swap(entries_[0], entries_[1]);
  std::rotate(entries_.begin(), entries_.begin() + 1, entries_.end());
  m = Manifest(false);
  for (int i = 0; i < 2; ++i) m["members"][i]["memberIndex"] = i;
  ExpectFailure(Run(m),
                "log entry 0 puts an item in dataset \"faces\" before its dataset-registered entry (log entry 4)");
}

TEST_F(AuditTest, ARegisteredDatasetWithNoMembersAuditsEmpty) {
  // `dataset register NAME` with no items registers it alone.
  const std::string ds = DatasetCommitment("empty", dataset_salt_);
  entries_.push_back(Registration(ds));
  json m{{"type", "shredd-dataset-manifest-v1"},
         {"dataset", "empty"},
         {"datasetSalt", dataset_salt_},
         {"members", json::array()}};
  absl::StatusOr<DatasetAudit> r = AuditDataset("empty", m.dump(), key_, *this);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->members, 0u);
}

TEST_F(AuditTest, ACertificateAppendedAgainIsNotALaterDeletion) {
  // photo 3 (which cert-a also covers) is stored after cert-a was issued;
  // a copy of cert-a appended after it must not pass for its deletion.
  json m = Manifest(true);
  entries_.push_back(json{{"type", "item-stored"},
                          {"item", CustodyCommitment(DigestOf("photo 3"), salt_)},
                          {"datasets", {DatasetCommitment("faces", dataset_salt_)}}}
                         .dump());     // index 5
  entries_.push_back(cert_.envelope);  // index 6
  m["members"].push_back({{"digest", DigestOf("photo 3")},
                          {"custodySalt", salt_},
                          {"memberIndex", 5},
                          {"deletion", {{"certificateId", "cert-a"}, {"logIndex", 6}}}});
  ExpectFailure(Run(m),
                "certificate cert-a at log entry 6 was issued as log entry 3: a copy appended again is not a later "
                "deletion");
}

TEST_F(AuditTest, ACertificateOfAnotherLogIsNotThisLogsDeletion) {
  UseCertificate("other.log");
  ExpectFailure(Run(Manifest(true)),
                "certificate cert-a at log entry 3 names log \"other.log\", not this log \"test.log\"");
  EXPECT_TRUE(Run(Manifest(false)).ok());  // nothing claimed deleted, nothing to check
}

TEST_F(AuditTest, AnEntryOfTheDatasetThatIsNotStrictJsonFails) {
  // Read last-wins, this custody entry lists no dataset and the manifest
  // may leave it out; another reader sees it in the dataset.
  const std::string ds = DatasetCommitment("faces", dataset_salt_);
  const std::string item = CustodyCommitment(DigestOf("photo 3"), salt_);
  entries_.push_back(R"({"type":"item-stored","kind":"photo","item":")" + item + R"(","datasets":[")" + ds +
                     R"("],"datasets":[]})");
  ExpectFailure(Run(Manifest(true)),
                "log entry 5 has a duplicate member \"datasets\" in one object (it carries the commitment of dataset "
                "\"faces\")");
  EXPECT_FALSE(EntryRecordsMember(entries_.back(), item, ds));
  EXPECT_FALSE(EntryRecordsDatasetMember(entries_.back(), ds));
}

TEST_F(AuditTest, ManifestIndexesMustBeInTheTreeAndDistinct) {
  json m = Manifest(false);
  m["members"][1]["memberIndex"] = 1;
  ExpectFailure(Run(m), "members[0] and members[1] both name log entry 1");
  m = Manifest(true);
  m["members"][1]["deletion"]["logIndex"] = 5;
  ExpectFailure(Run(m), "the manifest names log entry 5, beyond the log's checkpoint (tree size 5)");
}

TEST_F(AuditTest, RefusesWhatDoesNotCheck) {
  json m = Manifest(true);
  m["members"][0]["custodySalt"] = std::string(64, '0');
  ExpectFailure(Run(m), "log entry 1 does not record");
  m = Manifest(true);
  m["members"][1]["deletion"]["logIndex"] = 2;
  ExpectFailure(Run(m), "is not later than its custody entry 2");
  m = Manifest(true);
  m["members"][1]["digest"] = DigestOf("photo 9");
  ExpectFailure(Run(m), "does not record");
  m = Manifest(true);
  m["members"][0]["deletion"]["certificateId"] = "cert-b";
  ExpectFailure(Run(m), "not \"cert-b\"");
  m = Manifest(true);
  m["dataset"] = "other";
  ExpectFailure(Run(m), "for dataset \"other\"");
  m = Manifest(true);
  m["members"][1]["deletion"]["logIndex"] = 4;  // not a certificate
  ExpectFailure(Run(m), "certificate at log entry 4: ");
  signer_ = testing_fixture::MakeCertificate("another key");
  ExpectFailure(Run(Manifest(false)), "the log's checkpoint: ");
}

TEST_F(AuditTest, MalformedManifestNamesTheMember) {
  json m = Manifest(true);
  m["members"][0]["deletion"]["logIndex"] = "2";
  ExpectFailure(Run(m), "members[0].deletion.logIndex is not a non-negative integer");
  ExpectFailure(AuditDataset("faces", "[", key_, *this), "not valid JSON");
  ExpectFailure(AuditDataset("faces", "[]", key_, *this), "is not a JSON object");
}

TEST_F(AuditTest, SourceFailureIsReturnedUnchanged) {
  source_error_ = absl::UnavailableError("daemon down");
  absl::StatusOr<DatasetAudit> r = Run(Manifest(false));
  EXPECT_EQ(r.status(), absl::UnavailableError("daemon down"));
}

}  // namespace
}  // namespace shredd::verify
