// The destruction gate (daemon/items/destruction_gate.h): no merge into a
// stored item and no commit with lineage runs between a destruction's plan
// and its certificate. Each test starts such a commit on another thread
// while the destruction is planning (inside the planner), and checks that it
// did not finish before the destruction did and that nothing of it escaped:
// without the gate, a tag committed meanwhile left its index entries behind
// after the item was destroyed, and a model trained on a photo being
// destroyed was committed with a lineage edge to it, and never shredded.
#include "daemon/items/destruction_gate.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/storage/keyspace.h"
#include "tests/unit/domain_fixture.h"

namespace shredd {
namespace {

using testing::Domain;
using testing::TempDir;

// Runs `commit` on another thread once the destruction of `victim` has
// planned it, gives the commit time to finish (it must not), then lets the
// destruction go on. Returns the commit's status.
absl::Status CommitDuringDestruction(Domain& d, const Sha256& victim, const std::function<absl::Status()>& commit,
                                     bool* finished_early) {
  std::atomic<bool> done{false};
  absl::Status result;
  std::thread t;
  ShredJob job;
  job.request_id = "gate-test";
  job.reason = "unit test";
  job.hashes = {victim};
  auto cert = d.shredder()->ExecutePlanned(job, [&](PlanSink& sink, ShredJob&) -> absl::Status {
    auto item = d.store()->Lookup(victim);
    if (!item.ok()) return item.status();
    if (auto s = sink.Add(*item); !s.ok()) return s;
    t = std::thread([&] {
      result = commit();
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    *finished_early = done.load();
    return absl::OkStatus();
  });
  t.join();
  EXPECT_TRUE(cert.ok()) << cert.status();
  EXPECT_FALSE(d.Readable(victim));
  return result;
}

TEST(DestructionGateTest, ATagDuringADestructionWaitsAndLeavesNoIndexEntryBehind) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 x = d.Put("x's photo");
  ItemMetadata tag;
  tag.datasets = {"tagged-late"};
  tag.subject_ids = {"subject-late"};
  bool early = true;
  absl::Status s = CommitDuringDestruction(
      d, x, [&] { return d.store()->AddMetadata(x, tag, {}).status(); }, &early);
  EXPECT_FALSE(early) << "the tag committed while the destruction was planning";
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;  // after the destruction: x was shredded
  EXPECT_EQ(d.store()->CountIndexed(keyspace::kIndexDataset, "tagged-late"), 0u);
  EXPECT_EQ(d.store()->CountIndexed(keyspace::kIndexSubject, "subject-late"), 0u);
}

TEST(DestructionGateTest, LineageToAPhotoBeingDestroyedWaitsAndIsRefused) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 photo = d.Put("a photo"), model = d.PutModel("model weights");
  LineageSpec trained_on;
  trained_on.digest = photo;
  bool early = true;
  absl::Status s = CommitDuringDestruction(
      d, photo, [&] { return d.catalog()->AddLineage(model, {trained_on}); }, &early);
  EXPECT_FALSE(early) << "the lineage edge committed while the destruction was planning";
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(d.catalog()->ParentsOf(d.store()->ItemKeyFor(model)).empty());
}

TEST(DestructionGateTest, ADestructionWaitsForCommitsInsideAndKeepsNewOnesOut) {
  DestructionGate gate;
  auto inside = gate.EnterCommit();
  ASSERT_TRUE(inside.held());
  std::atomic<bool> destroying{false};
  std::thread destruction([&] {
    DestructionGate::Destruction scope(&gate);
    destroying = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(destroying.load()) << "the destruction began with a commit inside";
  // A destruction waits: a new commit does not get in, so commits cannot
  // starve it.
  EXPECT_FALSE(gate.EnterCommit(absl::Milliseconds(50)).held());
  inside = DestructionGate::Commit();
  auto after = gate.EnterCommit(absl::Seconds(10));
  EXPECT_TRUE(after.held());
  EXPECT_TRUE(destroying.load());  // it ran before the commit got in
  destruction.join();
}

}  // namespace
}  // namespace shredd
