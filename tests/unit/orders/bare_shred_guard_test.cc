// The guard of a bare shred (orders/closure.h, RefuseModelsLeftBehind): a
// bare shred refuses to leave the models trained on or derived from what it
// names, unless told to (keep_models); docs/ORDERS.md, "Bare shreds and
// models".
#include <string>

#include <gtest/gtest.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include "daemon/orders/closure.h"
#include "tests/unit/domain_fixture.h"

namespace shredd {
namespace {

using testing::Domain;
using testing::Photo;
using testing::TempDir;

LineageSpec OnItem(const Sha256& parent, EdgeType type = EdgeType::kTrainedOn) {
  LineageSpec e;
  e.type = type;
  e.digest = parent;
  return e;
}

LineageSpec OnDataset(const std::string& name) {
  LineageSpec e;
  e.dataset = name;
  return e;
}

Sha256 Model(Domain& d, const std::string& data, const LineageSpec& edge) {
  const Sha256 m = d.PutModel(data);
  EXPECT_TRUE(d.catalog()->AddLineage(m, {edge}).ok());
  return m;
}

absl::Status Shred(Domain& d, std::vector<Sha256> hashes, bool keep_models = false) {
  ShredSpec spec;
  spec.hashes = std::move(hashes);
  spec.reason = "unit test";
  spec.keep_models = keep_models;
  return d.shredder()->Shred(spec).status();
}

TEST(BareShredGuardTest, RefusesToLeaveAModelTrainedOnAPhoto) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 photo = d.Put("bob's photo", Photo("bob", ""));
  const Sha256 model = Model(d, "weights", OnItem(photo));
  const absl::Status s = Shred(d, {photo});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find(ContentDigest{model, 0}.HashString()), std::string::npos) << s;
  EXPECT_NE(s.message().find("nothing was shredded"), std::string::npos) << s;
  EXPECT_TRUE(d.Readable(photo));
  // Named with it, nothing is left behind.
  EXPECT_TRUE(Shred(d, {photo, model}).ok());
  EXPECT_FALSE(d.Readable(model));
}

TEST(BareShredGuardTest, FollowsDatasetsAndDerivedModelsTransitively) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 photo = d.Put("bob's photo", Photo("bob", "faces"));
  const Sha256 base = Model(d, "base weights", OnDataset("faces"));
  const Sha256 tuned = Model(d, "tuned weights", OnItem(base, EdgeType::kDerivedFrom));
  absl::Status s = Shred(d, {photo, base});  // the fine-tune would be left
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find(ContentDigest{tuned, 0}.HashString()), std::string::npos) << s;
  s = Shred(d, {photo});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("and 1 more"), std::string::npos) << s;
  EXPECT_TRUE(d.Readable(photo) && d.Readable(base) && d.Readable(tuned));
  EXPECT_TRUE(Shred(d, {photo, base, tuned}).ok());
}

TEST(BareShredGuardTest, AHeldModelCountsAsLeftBehind) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 photo = d.Put("bob's photo", Photo("bob", ""));
  const Sha256 model = Model(d, "weights", OnItem(photo));
  ASSERT_TRUE(d.HoldItem(model, "evidence").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(Shred(d, {photo})));
  EXPECT_TRUE(d.Readable(photo));
}

TEST(BareShredGuardTest, AnItemNoModelComesFromOrKeepModelsShredsOnlyWhatIsNamed) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 plain = d.Put("a photo of no model", Photo("dave", "faces"));
  const Sha256 photo = d.Put("carol's photo", Photo("carol", "faces"));
  const Sha256 on_photo = Model(d, "weights on carol", OnItem(photo));
  const Sha256 tuned = Model(d, "tuned on carol", OnItem(on_photo, EdgeType::kDerivedFrom));
  EXPECT_TRUE(Shred(d, {plain}).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(Shred(d, {photo})));
  EXPECT_TRUE(Shred(d, {photo}, /*keep_models=*/true).ok());
  EXPECT_FALSE(d.Readable(plain) || d.Readable(photo));
  EXPECT_TRUE(d.Readable(on_photo) && d.Readable(tuned));
  // A bare shred of a model is checked the same way: its fine-tune.
  EXPECT_TRUE(absl::IsFailedPrecondition(Shred(d, {on_photo})));
  EXPECT_TRUE(Shred(d, {on_photo, tuned}).ok());
}

// The guard reads the lineage of what the shred names, not the whole
// store's: it used to scan every reverse edge (a seek and a step back per
// parent) and load every hold on each bare shred, ~60 ms with 10,000 models
// (docs/PERFORMANCE.md, "Session 17"). Counted in the database's own
// iterator operations, so the test does not depend on the machine's speed.
TEST(BareShredGuardTest, ReadsOnlyTheLineageOfWhatItNames) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 photo = d.Put("bob's photo", Photo("bob", "faces"));
  const Sha256 model = Model(d, "weights", OnDataset("faces"));
  for (int i = 0; i < 1000; ++i) {  // lineage and holds elsewhere in the store
    const Sha256 base = d.PutModel("base " + std::to_string(i));
    Model(d, "derived " + std::to_string(i), OnItem(base, EdgeType::kDerivedFrom));
    if (i % 100 == 0) {
      ASSERT_TRUE(d.HoldItem(base, "evidence").ok());
    }
  }
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  const absl::Status s = RefuseModelsLeftBehind(d.store(), d.catalog(), {photo});
  const rocksdb::PerfContext& pc = *rocksdb::get_perf_context();
  const uint64_t steps = pc.seek_on_memtable_count + pc.next_on_memtable_count + pc.prev_on_memtable_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;  // it still finds the model
  EXPECT_NE(s.message().find(ContentDigest{model, 0}.HashString()), std::string::npos) << s;
  EXPECT_LT(steps, 100u) << "iterator steps over the memtable";
}

}  // namespace
}  // namespace shredd
