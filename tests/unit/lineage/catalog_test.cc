// Catalog (daemon/catalog.h): datasets, lineage and legal holds, without a
// server. The lineage rules are the ones the promises rest on: only models
// get lineage (defect 3), parents must exist and be alive, no cycles.
#include "daemon/lineage/catalog.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/base/strings.h"
#include "daemon/storage/keyspace.h"
#include "tests/unit/domain_fixture.h"

namespace shredd {
namespace {

using testing::Domain;
using testing::TempDir;

ItemMetadata InDataset(const std::string& name) {
  ItemMetadata m;
  m.datasets = {name};
  return m;
}

LineageSpec TrainedOn(const std::string& dataset) {
  LineageSpec s;
  s.type = EdgeType::kTrainedOn;
  s.dataset = dataset;
  return s;
}

LineageSpec DerivedFrom(const Sha256& parent) {
  LineageSpec s;
  s.type = EdgeType::kDerivedFrom;
  s.digest = parent;
  s.relation = "fine-tuned";
  return s;
}

// Stores `n` small items in `dataset`, in batches.
void FillDataset(Domain& d, const std::string& dataset, int n) {
  std::vector<std::string> data;
  for (int i = 0; i < n; ++i) data.push_back("member " + std::to_string(i));
  for (int i = 0; i < n; i += 5000) {
    std::vector<ItemStore::BatchEntry> batch;
    for (int j = i; j < std::min(n, i + 5000); ++j) {
      ItemStore::BatchEntry e;
      e.declared = {Sha256Hasher::Of(data[j]), data[j].size()};
      e.metadata = InDataset(dataset);
      e.data = data[j];
      batch.push_back(std::move(e));
    }
    for (const auto& r : d.store()->PutBatch(batch)) ASSERT_TRUE(r.ok()) << r.status();
  }
}

// A dataset's manifest is written in pieces of about the size asked for,
// whole members each: the daemon never holds the document of a dataset of
// millions (it built it as one JSON value, ~1 KB per member in memory).
TEST(CatalogTest, ADatasetManifestIsWrittenInBoundedPiecesThatMakeTheWholeDocument) {
  TempDir dir;
  Domain d(dir.path());
  FillDataset(d, "faces", 300);
  ASSERT_TRUE(d.shredder()->Shred({.hashes = {Sha256Hasher::Of("member 7")}, .reason = "test", .request_id = ""}).ok());
  std::vector<std::string> pieces;
  ASSERT_TRUE(d.catalog()
                  ->WriteDatasetManifest("faces", 1024,
                                         [&](std::string_view p) {
                                           pieces.emplace_back(p);
                                           return true;
                                         })
                  .ok());
  EXPECT_GT(pieces.size(), 30u);
  std::string whole;
  for (const auto& p : pieces) {
    EXPECT_LT(p.size(), 1024u + 512u);  // one member past the piece size at most
    whole += p;
  }
  auto one = d.catalog()->DatasetManifest("faces");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(whole, *one);
  auto doc = nlohmann::json::parse(whole);
  EXPECT_EQ(doc.dump(), whole);  // exactly what one JSON value dumps: the format did not change
  EXPECT_EQ(doc["type"], "shredd-dataset-manifest-v1");
  ASSERT_EQ(doc["members"].size(), 300u);
  int deleted = 0;
  for (const auto& m : doc["members"]) deleted += m["deletion"].is_null() ? 0 : 1;
  EXPECT_EQ(deleted, 1);
  // A reader that goes away stops it.
  int calls = 0;
  auto s = d.catalog()->WriteDatasetManifest("faces", 1024, [&](std::string_view) { return ++calls < 3; });
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_EQ(calls, 3);
}

TEST(CatalogTest, ADatasetTooLargeForOneReplyPointsToTheStream) {
  TempDir dir;
  Domain d(dir.path());
  FillDataset(d, "big", static_cast<int>(Catalog::kWholeManifestMembers) + 1);
  auto one = d.catalog()->DatasetManifest("big");
  EXPECT_TRUE(absl::IsFailedPrecondition(one.status())) << one.status();
  EXPECT_NE(one.status().message().find("StreamDatasetManifest"), std::string::npos);
  uint64_t bytes = 0;
  EXPECT_TRUE(d.catalog()
                  ->WriteDatasetManifest("big", 1 << 20,
                                         [&](std::string_view p) {
                                           bytes += p.size();
                                           return true;
                                         })
                  .ok());
  EXPECT_GT(bytes, 100000u * 200);
}

TEST(CatalogTest, DatasetsAreRegisteredWithTheirItemsAndListed) {
  TempDir dir;
  Domain d(dir.path());
  d.Put("a", InDataset("faces-2026"));
  Sha256 b = d.Put("b");
  EXPECT_TRUE(d.catalog()->DatasetExists("faces-2026"));
  EXPECT_FALSE(d.catalog()->DatasetExists("faces-2027"));
  auto reg = d.catalog()->RegisterDataset("faces-2027", {b});
  ASSERT_TRUE(reg.ok()) << reg.status();
  Sha256 unknown = Sha256Hasher::Of("never stored");
  auto bad = d.catalog()->RegisterDataset("faces-2028", {unknown});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound) << bad.status();
  EXPECT_FALSE(d.catalog()->DatasetExists("faces-2028"));  // a refused call registers nothing
  auto list = d.catalog()->ListDatasets();
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> names;
  for (const auto& ds : *list) names.push_back(ds.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"faces-2026", "faces-2027"}));
  EXPECT_EQ(d.catalog()->DatasetName(d.catalog()->DatasetKey("faces-2026")), "faces-2026");
}

TEST(CatalogTest, LineageLinksModelsToDatasetsAndModels) {
  TempDir dir;
  Domain d(dir.path());
  d.Put("photo", InDataset("train"));
  Sha256 base = d.PutModel("base weights");
  Sha256 tuned = d.PutModel("tuned weights");
  ASSERT_TRUE(d.catalog()->AddLineage(base, {TrainedOn("train")}).ok());
  ASSERT_TRUE(d.catalog()->AddLineage(tuned, {DerivedFrom(base)}).ok());
  const ItemKey base_key = d.store()->ItemKeyFor(base), tuned_key = d.store()->ItemKeyFor(tuned);
  auto parents = d.catalog()->ParentsOf(tuned_key);
  ASSERT_EQ(parents.size(), 1u);
  EXPECT_EQ(parents[0].type, EdgeType::kDerivedFrom);
  EXPECT_EQ(parents[0].parent, (ParentRef{'i', base_key}));
  EXPECT_EQ(parents[0].relation, "fine-tuned");
  auto children = d.catalog()->ChildrenOf(ParentRef{'d', d.catalog()->DatasetKey("train")});
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(children[0].child, base_key);
  auto with_children = d.catalog()->ParentsWithChildren();
  EXPECT_EQ(with_children.size(), 2u);
}

TEST(CatalogTest, LineageViewWalksBothWaysAndMarksShreddedEnds) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 photo = d.Put("photo", InDataset("train"));
  Sha256 base = d.PutModel("base");
  Sha256 tuned = d.PutModel("tuned");
  ASSERT_TRUE(d.catalog()->AddLineage(base, {TrainedOn("train")}).ok());
  ASSERT_TRUE(d.catalog()->AddLineage(tuned, {DerivedFrom(base)}).ok());
  // A photo of the dataset feeds the model trained on it, via the dataset.
  auto of_photo = d.catalog()->Lineage(photo);
  ASSERT_TRUE(of_photo.ok()) << of_photo.status();
  EXPECT_EQ(of_photo->kind, ItemKind::kPhoto);
  EXPECT_TRUE(of_photo->comes_from.empty());
  ASSERT_EQ(of_photo->feeds.size(), 1u);
  EXPECT_EQ(of_photo->feeds[0].digest->hash, base);
  EXPECT_EQ(of_photo->feeds[0].via_dataset, "train");
  // The base model comes from the dataset and feeds the tuned one.
  auto of_base = d.catalog()->Lineage(base);
  ASSERT_TRUE(of_base.ok()) << of_base.status();
  ASSERT_EQ(of_base->comes_from.size(), 1u);
  EXPECT_EQ(of_base->comes_from[0].dataset, "train");
  ASSERT_EQ(of_base->feeds.size(), 1u);
  EXPECT_EQ(of_base->feeds[0].digest->hash, tuned);
  EXPECT_EQ(of_base->feeds[0].kind, ItemKind::kModel);
  // Once the parent is shredded, the tuned model's edge shows a shredded end.
  ShredSpec spec;
  spec.hashes = {base};
  spec.reason = "test";
  spec.keep_models = true;  // a bare shred leaving the tuned model on purpose
  auto cert = d.shredder()->Shred(spec);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(d.catalog()->Lineage(base).status().code(), absl::StatusCode::kNotFound);
  auto of_tuned = d.catalog()->Lineage(tuned);
  ASSERT_TRUE(of_tuned.ok()) << of_tuned.status();
  ASSERT_EQ(of_tuned->comes_from.size(), 1u);
  EXPECT_TRUE(of_tuned->comes_from[0].shredded);
  EXPECT_FALSE(of_tuned->comes_from[0].digest.has_value());
}

TEST(CatalogTest, LineageIsRefusedWhereItWouldBreakAPromise) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 photo = d.Put("a photo", InDataset("train"));
  Sha256 model = d.PutModel("weights");
  // Only models have lineage: a photo's digest must never land among
  // derivedModels of a certificate (issue 12, defect 3).
  absl::Status s = d.catalog()->AddLineage(photo, {TrainedOn("train")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("kind model"), std::string::npos) << s;
  // A model derives from models only, not from a photo.
  s = d.catalog()->AddLineage(model, {DerivedFrom(photo)});
  EXPECT_FALSE(s.ok());
  // Unknown parents, and cycles.
  s = d.catalog()->AddLineage(model, {TrainedOn("no-such-dataset")});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  s = d.catalog()->AddLineage(model, {DerivedFrom(model)});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  // None of the refused calls left an edge.
  EXPECT_TRUE(d.catalog()->ParentsOf(d.store()->ItemKeyFor(model)).empty());
  EXPECT_TRUE(d.catalog()->ParentsOf(d.store()->ItemKeyFor(photo)).empty());
}

// An upload's lineage is checked before its bytes (StoreService::Put), but
// an AddLineage may commit while they arrive: here n (stored, uploaded
// again with "derived from m") passes that check, then m is declared
// derived from n. The upload's commit checks again, under the lock
// AddLineage holds: it used to commit what the early check had prepared,
// and n <-> m was a cycle in a catalog that must be a DAG.
TEST(CatalogTest, AnUploadsLineageIsCheckedAgainAsItCommits) {
  TempDir dir;
  Domain d(dir.path());
  const std::string weights = "weights of n";
  const Sha256 n = d.PutModel(weights);
  const Sha256 m = d.PutModel("weights of m");
  ItemMetadata model;
  model.kind = ItemKind::kModel;
  auto up = d.store()->BeginUpload({n, weights.size()}, model);
  ASSERT_TRUE(up.ok()) << up.status();
  auto early = d.catalog()->PrepareLineage(n, ItemKind::kModel, {DerivedFrom(m)});
  ASSERT_TRUE(early.ok()) << early.status();
  d.store()->SetUploadExtras(up->get(), early->records, early->edges_json, early->parent_items);
  ASSERT_TRUE((*up)->Append(weights).ok());
  ASSERT_TRUE(d.catalog()->AddLineage(m, {DerivedFrom(n)}).ok());
  auto committed = d.catalog()->CommitUpload(up->get(), ItemKind::kModel, {DerivedFrom(m)});
  EXPECT_EQ(committed.status().code(), absl::StatusCode::kFailedPrecondition) << committed.status();
  EXPECT_NE(committed.status().message().find("lineage cycle"), std::string::npos) << committed.status();
  EXPECT_TRUE(d.catalog()->ParentsOf(d.store()->ItemKeyFor(n)).empty());
  EXPECT_EQ(d.catalog()->ParentsOf(d.store()->ItemKeyFor(m)).size(), 1u);
}

TEST(CatalogTest, HoldsBindItemsAndDatasetsUntilRemoved) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 a = d.Put("a", InDataset("evidence"));
  Sha256 b = d.Put("b");
  Hold on_dataset;
  on_dataset.id = "hold-dataset";
  on_dataset.dataset = "evidence";
  on_dataset.reason = "litigation 42";
  ASSERT_TRUE(d.catalog()->AddHold(on_dataset).ok());
  Hold on_item;
  on_item.digest = ContentDigest{b, 0};
  on_item.reason = "regulator inquiry";
  auto item_hold = d.catalog()->AddHold(on_item);
  ASSERT_TRUE(item_hold.ok()) << item_hold.status();
  EXPECT_EQ(item_hold->digest->size, 1u);  // filled from the stored item
  // The same hold again (a retry) answers it; another under its id is refused.
  auto again = d.catalog()->AddHold(on_dataset);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, "hold-dataset");
  Hold other = on_dataset;
  other.reason = "another case";
  EXPECT_EQ(d.catalog()->AddHold(other).status().code(), absl::StatusCode::kAlreadyExists);
  other = on_dataset;
  other.dataset = "";
  other.digest = ContentDigest{b, 0};
  EXPECT_EQ(d.catalog()->AddHold(other).status().code(), absl::StatusCode::kAlreadyExists);
  Hold no_reason;
  no_reason.dataset = "evidence";
  EXPECT_EQ(d.catalog()->AddHold(no_reason).status().code(), absl::StatusCode::kInvalidArgument);
  Hold nowhere;
  nowhere.dataset = "unknown";
  nowhere.reason = "x";
  EXPECT_EQ(d.catalog()->AddHold(nowhere).status().code(), absl::StatusCode::kNotFound);

  auto held_a = d.catalog()->HoldFor(*d.store()->Lookup(a));
  ASSERT_TRUE(held_a.ok() && held_a->has_value());
  EXPECT_EQ((*held_a)->id, "hold-dataset");
  ASSERT_TRUE(d.catalog()->HoldFor(*d.store()->Lookup(b))->has_value());
  auto list = d.catalog()->ListHolds();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);

  ASSERT_TRUE(d.catalog()->RemoveHold("hold-dataset").ok());
  EXPECT_FALSE(d.catalog()->HoldFor(*d.store()->Lookup(a))->has_value());
  // A removal again (a retry) answers OK, like an AddHold retry, and logs
  // nothing; it used to be NOT_FOUND. An id never placed is NOT_FOUND.
  const uint64_t log_after = d.log()->size();
  EXPECT_TRUE(d.catalog()->RemoveHold("hold-dataset").ok());
  EXPECT_EQ(d.log()->size(), log_after);
  EXPECT_FALSE(d.catalog()->HoldFor(*d.store()->Lookup(a))->has_value());
  const absl::Status never = d.catalog()->RemoveHold("hold-never-placed");
  EXPECT_EQ(never.code(), absl::StatusCode::kNotFound) << never;
  EXPECT_EQ(d.log()->size(), log_after);
  list = d.catalog()->ListHolds();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);  // the item's hold is untouched
}

// A destruction keeps holds stable from planning to its last epoch
// (docs/ORDERS.md "Legal holds"): a removal waits for it, as an addition
// does. It used to go through at once, and the certificate issued after it
// cited, under retainedUnderHold, a hold the log showed removed before.
TEST(CatalogTest, ARemovalWaitsForADestructionInProgress) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 a = d.Put("held photo");
  ASSERT_TRUE(d.HoldItem(a, "litigation", "hold-a").ok());
  std::atomic<bool> removed{false};
  std::thread remover;
  {
    auto destruction = d.catalog()->HoldsStable();  // what a destruction holds, planning to last epoch
    remover = std::thread([&] {
      EXPECT_TRUE(d.catalog()->RemoveHold("hold-a").ok());
      removed = true;
    });
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_FALSE(removed.load()) << "RemoveHold went through during a destruction";
    auto held = d.catalog()->HoldFor(*d.store()->Lookup(a));
    ASSERT_TRUE(held.ok()) << held.status();
    EXPECT_TRUE(held->has_value());
  }
  remover.join();
  EXPECT_TRUE(removed.load());
  EXPECT_FALSE(d.catalog()->HoldFor(*d.store()->Lookup(a))->has_value());
}

// A destruction pending after a failure is still to be certified, citing
// the holds it planned with: a removal is refused until it is (as an
// addition is), nothing changes, and it goes through once certified.
TEST(CatalogTest, NoHoldIsRemovedWhileADestructionIsPending) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 a = d.Put("a"), kept = d.Put("kept");
  ASSERT_TRUE(d.HoldItem(kept, "litigation", "hold-kept").ok());
  d.outage()->FailDestroyRoot(true);  // the epoch commits, its old root stays: the certificate waits
  auto shred = d.shredder()->Shred({.hashes = {a}, .reason = "test", .request_id = "req-pending"});
  ASSERT_EQ(shred.status().code(), absl::StatusCode::kUnavailable) << shred.status();
  const uint64_t log_before = d.log()->size();
  const absl::Status removal = d.catalog()->RemoveHold("hold-kept");
  EXPECT_EQ(removal.code(), absl::StatusCode::kUnavailable) << removal;
  EXPECT_NE(removal.message().find("legal holds"), std::string::npos) << removal;
  EXPECT_NE(removal.message().find("a destruction is pending"), std::string::npos) << removal;
  auto held = d.catalog()->HoldFor(*d.store()->Lookup(kept));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_TRUE(held->has_value());
  EXPECT_EQ(d.log()->size(), log_before);  // no hold-removed entry
  d.outage()->FailDestroyRoot(false);
  auto issued = d.shredder()->GetCertificate("", "req-pending", CertificateParts::kManifest);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_TRUE(d.catalog()->RemoveHold("hold-kept").ok());
  EXPECT_FALSE(d.catalog()->HoldFor(*d.store()->Lookup(kept))->has_value());
}

// A hold record that cannot be read (damaged, or a read error) holds what
// its lookup key names: every reader fails closed instead of skipping it.
TEST(CatalogTest, AHoldThatCannotBeReadStillHolds) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 a = d.Put("held photo", InDataset("evidence"));
  Hold on_item;
  on_item.id = "hold-item";
  on_item.digest = ContentDigest{a, 0};
  on_item.reason = "litigation";
  ASSERT_TRUE(d.catalog()->AddHold(on_item).ok());
  ASSERT_TRUE(d.store()->db()->Put(rocksdb::WriteOptions(), StrCat(keyspace::kHold, "hold-item"), "garbage").ok());
  auto held = d.catalog()->HoldFor(*d.store()->Lookup(a));
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(held.status().message().find("hold-item"), std::string::npos) << held.status();
  EXPECT_EQ(d.catalog()->HoldsByTarget().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(d.shredder()->Shred({.hashes = {a}, .reason = "test", .request_id = ""}).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(d.store()->Lookup(a).ok());  // not destroyed
}

}  // namespace
}  // namespace shredd
