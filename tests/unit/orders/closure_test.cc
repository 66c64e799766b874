// The closure of an order (daemon/orders/closure.h) over a store with
// damaged or missing records: an item the planner cannot read fails the plan
// (fail closed) instead of being left out of the order, readable and
// uncertified; an item that is gone (NOT_FOUND) is skipped.
#include "daemon/orders/closure.h"

#include <string>

#include "absl/time/clock.h"
#include <gtest/gtest.h>

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/items/item_record.h"
#include "daemon/storage/keyspace.h"
#include "tests/unit/domain_fixture.h"

namespace shredd {
namespace {

using testing::Domain;
using testing::TempDir;

// How an item's records are damaged on disk.
enum class Damage {
  kMetadataByte,  // one byte of the sealed metadata (DATA_LOSS when opened)
  kHeaderByte,    // the record's version byte (DATA_LOSS when its header is read)
  kDekRemoved,    // the wrapped DEK record deleted (DATA_LOSS: data key missing)
};

std::string DamageName(const ::testing::TestParamInfo<Damage>& info) {
  switch (info.param) {
    case Damage::kMetadataByte:
      return "MetadataByte";
    case Damage::kHeaderByte:
      return "HeaderByte";
    case Damage::kDekRemoved:
      return "DekRemoved";
  }
  return "?";
}

void DamageItem(Domain& d, const Sha256& hash, Damage damage) {
  const ItemKey key = d.store()->ItemKeyFor(hash);
  auto item = d.store()->LookupByKey(key);
  ASSERT_TRUE(item.ok()) << item.status();
  rocksdb::DB* db = d.store()->db();
  const std::string record_key =
      StrCat(keyspace::kItem, std::string_view(reinterpret_cast<const char*>(key.data()), 32));
  rocksdb::Status s;
  if (damage == Damage::kDekRemoved) {
    s = db->Delete(rocksdb::WriteOptions(), StrCat(keyspace::kDek, BigEndian64(item->slot)));
  } else {
    std::string rec;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), record_key, &rec).ok());
    ASSERT_GT(rec.size(), kItemRecordHeaderSize + 8);
    rec[damage == Damage::kHeaderByte ? 0 : kItemRecordHeaderSize + 5] ^= 0x5a;
    s = db->Put(rocksdb::WriteOptions(), record_key, rec);
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_FALSE(d.store()->LookupByKey(key).ok());
}

OrderSpec ByDigest(const std::string& id, const Sha256& hash) {
  OrderSpec s;
  s.id = id;
  s.basis = LegalBasis::kFtcOrder;
  s.reference = "FTC " + id;
  s.digests = {hash};
  return s;
}

OrderSpec BySubject(const std::string& id, const std::string& subject) {
  OrderSpec s = ByDigest(id, {});
  s.digests.clear();
  s.subject_ids = {subject};
  return s;
}

ItemMetadata Of(const std::string& subject) {
  ItemMetadata m;
  m.subject_ids = {subject};
  return m;
}

// A photo of alice and a model trained on it (an item edge).
struct Scene {
  Sha256 photo, model;
};

Scene Build(Domain& d) {
  Scene s;
  s.photo = d.Put("alice's photo", Of("alice"));
  s.model = d.PutModel("weights trained on alice's photo");
  LineageSpec edge;
  edge.digest = s.photo;
  EXPECT_TRUE(d.catalog()->AddLineage(s.model, {edge}).ok());
  return s;
}

// A bare Shred of one item (no lineage followed), leaving its models on
// purpose (keep_models: these tests are about what orders do afterwards).
void BareShred(Domain& d, const Sha256& hash) {
  ShredSpec bare;
  bare.hashes = {hash};
  bare.reason = "unit test";
  bare.keep_models = true;
  ASSERT_TRUE(d.shredder()->Shred(bare).ok());
}

// A model derived from `parent` ("fine-tune").
Sha256 PutFineTune(Domain& d, const Sha256& parent) {
  const Sha256 tuned = d.PutModel("fine-tuned weights");
  LineageSpec edge;
  edge.type = EdgeType::kDerivedFrom;
  edge.digest = parent;
  edge.relation = "fine-tune";
  EXPECT_TRUE(d.catalog()->AddLineage(tuned, {edge}).ok());
  return tuned;
}

class ClosureFailsClosedTest : public ::testing::TestWithParam<Damage> {};

// A derived model whose record or key cannot be read used to be skipped as
// if it were gone: the order ended DONE with the model neither destroyed nor
// named anywhere, and (its DEK intact) its weights still recoverable.
TEST_P(ClosureFailsClosedTest, AnUnreadableDerivedModelFailsThePlanAndTheOrder) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  DamageItem(d, s.model, GetParam());
  auto plan = d.orders()->Plan(ByDigest("o-plan", s.photo));
  ASSERT_FALSE(plan.ok()) << "planned " << plan->selected_count << " selected, " << plan->derived_count
                          << " derived: the unreadable model was left out";
  EXPECT_TRUE(absl::IsDataLoss(plan.status())) << plan.status();
  EXPECT_NE(plan.status().message().find(ContentDigest{s.model, 0}.HashString()), std::string_view::npos)
      << plan.status();  // names the item (from its custody record)
  // The order fails the same way, and nothing is destroyed.
  ASSERT_TRUE(d.orders()->Submit(ByDigest("o-run", s.photo)).ok());
  auto done = d.orders()->Get("o-run", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, OrderState::kFailed) << done->message;
  EXPECT_NE(done->message.find(ContentDigest{s.model, 0}.HashString()), std::string::npos) << done->message;
  EXPECT_TRUE(done->certificate_id.empty());
  EXPECT_TRUE(d.Readable(s.photo));
  EXPECT_FALSE(d.store()->SuppressedBy(s.photo).has_value());
}

// The same for an item selected by digest (ClosurePlanner::Select) ...
TEST_P(ClosureFailsClosedTest, AnUnreadableItemSelectedByDigestFailsThePlan) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  DamageItem(d, s.photo, GetParam());
  auto plan = d.orders()->Plan(ByDigest("o-plan", s.photo));
  ASSERT_FALSE(plan.ok()) << "planned " << plan->selected_count << " selected, " << plan->derived_count
                          << " derived, unmatched " << plan->unmatched.size();
  EXPECT_TRUE(absl::IsDataLoss(plan.status())) << plan.status();
  EXPECT_TRUE(d.Readable(s.model));
}

// ... and through an index scan (SlotOrderedLookup), in memory and staged.
TEST_P(ClosureFailsClosedTest, AnUnreadableItemSelectedBySubjectFailsThePlan) {
  TempDir dir;
  Domain d(dir.path());
  Build(d);
  const Sha256 other = d.Put("alice's second photo", Of("alice"));
  DamageItem(d, other, GetParam());
  auto plan = d.orders()->Plan(BySubject("o-plan", "alice"));
  ASSERT_FALSE(plan.ok()) << "planned " << plan->selected_count << " selected, " << plan->derived_count
                          << " derived: the unreadable photo was left out";
  EXPECT_TRUE(absl::IsDataLoss(plan.status())) << plan.status();
  EXPECT_NE(plan.status().message().find(ContentDigest{other, 0}.HashString()), std::string_view::npos)
      << plan.status();
}

INSTANTIATE_TEST_SUITE_P(Damages, ClosureFailsClosedTest,
                         ::testing::Values(Damage::kMetadataByte, Damage::kHeaderByte, Damage::kDekRemoved),
                         DamageName);

// Gone is not unreadable: an item shredded since it was indexed or linked is
// skipped, and the order runs.
TEST(ClosureTest, AShreddedItemIsSkipped) {
  TempDir dir;
  Domain d(dir.path());
  Build(d);
  const Sha256 other = d.Put("alice's second photo", Of("alice"));
  BareShred(d, other);
  auto plan = d.orders()->Plan(BySubject("o-plan", "alice"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->selected_count, 1u);
  EXPECT_EQ(plan->derived_count, 1u);
}

// A dry run does not hold the shredder's lock: an item shredded between the
// reading of its record and of its key (gone from the key tree) is gone, not
// an item that cannot be read (ItemStore::OpenRecords, as LookupByKey).
TEST(ClosureTest, AnItemShreddedBetweenItsRecordAndItsKeyIsGone) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 a = d.Put("alice's photo", Of("alice")), b = d.Put("bob's photo", Of("bob"));
  const ItemKey keys[] = {d.store()->ItemKeyFor(a), d.store()->ItemKeyFor(b)};
  auto records = d.store()->ReadRecords(keys);
  ASSERT_TRUE(records[0].ok() && records[1].ok());
  BareShred(d, a);
  std::vector<ItemStore::RawItem> raws{*records[0], *records[1]};
  auto opened = d.store()->OpenRecords(raws);
  EXPECT_TRUE(absl::IsNotFound(opened[0].status())) << opened[0].status();
  EXPECT_TRUE(opened[1].ok()) << opened[1].status();
}

// A bare shred does not follow lineage: the models trained on or derived
// from the item it destroys keep their edges to it. An order naming the
// shredded digest used to stop there ("already shredded") and derive
// nothing, so those models stayed readable, out of every order.
TEST(ClosureTest, AnOrderNamingAShreddedPhotoDerivesItsModels) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  const Sha256 tuned = PutFineTune(d, s.model);
  BareShred(d, s.photo);
  auto plan = d.orders()->Plan(ByDigest("o-plan", s.photo));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->selected_count, 0u);
  ASSERT_EQ(plan->derived_count, 2u);
  ASSERT_EQ(plan->unmatched.size(), 1u);
  EXPECT_NE(plan->unmatched[0].find("already shredded"), std::string::npos) << plan->unmatched[0];
  for (const PlannedItem& p : plan->derived) {
    ASSERT_TRUE(p.edge_parent.has_value());
    if (p.digest.hash == s.model) {
      EXPECT_EQ(p.edge_parent->hash, s.photo);
      EXPECT_EQ(p.edge_parent_kind, ItemKind::kPhoto);  // from its custody record
    } else {
      EXPECT_EQ(p.digest.hash, tuned);
      EXPECT_EQ(p.edge_parent->hash, s.model);
    }
  }
  ASSERT_TRUE(d.orders()->Submit(ByDigest("o-run", s.photo)).ok());
  auto done = d.orders()->Get("o-run", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kDone) << done->message;
  EXPECT_FALSE(d.Readable(s.model));
  EXPECT_FALSE(d.Readable(tuned));
  auto cert = d.shredder()->GetCertificate(done->certificate_id, "", CertificateParts::kManifest);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto verified = d.Verify(cert->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->item_count, 2u);
  EXPECT_EQ(verified->statement.find(HexEncode(s.photo)), std::string::npos);  // a photo is never named
  ASSERT_EQ(verified->predicate["derivedModels"].size(), 2u);
  const std::string model = ContentDigest{s.model, 0}.HashString();
  const nlohmann::json photo_edge = {{"type", "trained-on"}, {"item", "photo"}};
  for (const auto& m : verified->predicate["derivedModels"]) {
    if (m["digest"] == model) {
      EXPECT_EQ(m["pulledInBy"], photo_edge) << m.dump();
    } else {
      EXPECT_EQ(m["pulledInBy"]["model"], model) << m.dump();
    }
  }
}

// The same for a shredded model: its digest and kind (from its custody
// record) name the edge, as for a stored one.
TEST(ClosureTest, AnOrderNamingAShreddedModelDerivesTheModelsDerivedFromIt) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  const Sha256 tuned = PutFineTune(d, s.model);
  BareShred(d, s.model);
  auto plan = d.orders()->Plan(ByDigest("o-plan", s.model));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->derived.size(), 1u);
  EXPECT_EQ(plan->derived[0].digest.hash, tuned);
  ASSERT_TRUE(plan->derived[0].edge_parent.has_value());
  EXPECT_EQ(plan->derived[0].edge_parent->hash, s.model);
  EXPECT_EQ(plan->derived[0].edge_parent_kind, ItemKind::kModel);
  EXPECT_TRUE(d.Readable(s.photo));  // not part of it
}

}  // namespace
}  // namespace shredd
