// OrderBook (daemon/orders.h) without a server: the closure of an order
// (selected items, models derived from them, holds retained), its execution
// as one certificate, idempotent submission, and orders that match nothing.
#include "daemon/orders/orders.h"

#include <string>

#include "absl/time/clock.h"
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/orders/subject_map.h"
#include "tests/unit/domain_fixture.h"

namespace shredd {
namespace {

using testing::Domain;
using testing::Photo;
using testing::TempDir;

OrderSpec ForSubject(const std::string& id, const std::string& subject) {
  OrderSpec s;
  s.id = id;
  s.basis = LegalBasis::kGdprArt17;
  s.requester = "dpo@example.com";
  s.reference = "DSR-2026-" + id;
  s.subject_ids = {subject};
  return s;
}

struct Scene {
  Sha256 alice1, alice2, bob, model, unrelated_model;
};

Scene Build(Domain& d) {
  Scene s;
  s.alice1 = d.Put("alice 1", Photo("alice", "train"));
  s.alice2 = d.Put("alice 2", Photo("alice", "other"));
  s.bob = d.Put("bob", Photo("bob", "train"));
  s.model = d.PutModel("model trained on train");
  s.unrelated_model = d.PutModel("model trained elsewhere");
  LineageSpec edge;
  edge.dataset = "train";
  EXPECT_TRUE(d.catalog()->AddLineage(s.model, {edge}).ok());
  return s;
}

TEST(OrdersTest, PlanSelectsTheSubjectDerivesItsModelsAndRetainsHolds) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  ASSERT_TRUE(d.HoldItem(s.alice2, "litigation", "hold-alice2").ok());
  auto plan = d.orders()->Plan(ForSubject("o-plan", "alice"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->selected_count, 1u);
  ASSERT_EQ(plan->selected.size(), 1u);
  EXPECT_EQ(plan->selected[0].digest.hash, s.alice1);
  EXPECT_EQ(plan->derived_count, 1u);  // alice 1 is in "train", the model was trained on it
  ASSERT_EQ(plan->derived.size(), 1u);
  EXPECT_EQ(plan->derived[0].digest.hash, s.model);
  EXPECT_EQ(plan->derived[0].edge_dataset, "train");
  EXPECT_EQ(plan->retained_count, 1u);
  EXPECT_EQ(plan->retained[0].hold_id, "hold-alice2");
  // A dry run changes nothing.
  EXPECT_TRUE(d.Readable(s.alice1));
  EXPECT_TRUE(d.Readable(s.model));
}

// An order that fails after it began its subject map (here: the reviewed
// plan no longer matches when it runs) drops the map: it used to stay, under
// a live key, linking the subject to items a resubmitted order then shredded.
TEST(OrdersTest, AFailedOrderDropsTheSubjectMapItBegan) {
  TempDir dir;
  Domain d(dir.path());
  std::vector<ItemStore::BatchEntry> batch;
  std::vector<std::string> data;
  for (int i = 0; i < 4200; ++i) data.push_back("carol " + std::to_string(i));  // > one flush of map entries
  for (const auto& x : data) {
    ItemStore::BatchEntry e;
    e.declared = {Sha256Hasher::Of(x), x.size()};
    e.metadata = Photo("carol", "faces");
    e.data = x;
    batch.push_back(std::move(e));
  }
  for (const auto& r : d.store()->PutBatch(batch)) ASSERT_TRUE(r.ok()) << r.status();
  OrderSpec spec = ForSubject("o-fail", "carol");
  spec.keep_subject_map = true;
  auto plan = d.orders()->Plan(spec, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  spec.expected_plan_digest = plan->digest;
  // Held at the destruction gate (a commit inside it), the order waits
  // before planning; a new photo of carol then changes its closure.
  auto gate = d.store()->PassDestructionGate();
  ASSERT_TRUE(gate.ok());
  ASSERT_TRUE(d.orders()->Submit(spec).ok());
  for (int i = 0; i < 100 && d.orders()->Get("o-fail", std::nullopt)->state != OrderState::kRunning; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::SleepFor(absl::Milliseconds(100));
  d.Put("carol, later", Photo("carol", "faces"));
  *gate = DestructionGate::Commit();
  auto done = d.orders()->Get("o-fail", absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kFailed) << done->message;
  auto s = ForEachSubject(d.store(), "o-fail", [](const std::string&, const std::vector<SubjectMapItem>&) {
    ADD_FAILURE() << "a failed order's subject map is still readable";
    return false;
  });
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(d.Readable(Sha256Hasher::Of(data[0])));  // nothing was destroyed
}

TEST(OrdersTest, AnOrderRunsToOneVerifiedCertificate) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  auto submitted = d.orders()->Submit(ForSubject("o-run", "alice"));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto done = d.orders()->Get("o-run", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kDone) << done->message;
  EXPECT_EQ(done->items_shredded, 3);  // alice's two photos and the model
  for (const Sha256& h : {s.alice1, s.alice2, s.model}) EXPECT_FALSE(d.Readable(h));
  for (const Sha256& h : {s.bob, s.unrelated_model}) EXPECT_TRUE(d.Readable(h));
  auto cert = d.shredder()->GetCertificate(done->certificate_id, "", CertificateParts::kManifest);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto verified = d.Verify(cert->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->item_count, 3u);
  EXPECT_EQ(verified->count_by_kind.at("photo"), 2u);
  EXPECT_EQ(verified->count_by_kind.at("model"), 1u);
}

// Waits (up to 10 s) until the order's message holds `text`.
OrderStatus AwaitMessage(Domain& d, const std::string& id, const std::string& text) {
  OrderStatus st;
  for (int i = 0; i < 500; ++i) {
    auto got = d.orders()->Get(id, std::nullopt);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return st;
    st = *got;
    if (st.message.find(text) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return st;
}

// A destruction that fails before any key is destroyed, with a passing
// error (the vault does not answer), is tried again. Meanwhile the order
// says nothing was destroyed: it used to say "keys destroyed; the
// certificate is pending", read off the UNAVAILABLE code alone. Once the
// vault answers it completes.
TEST(OrdersTest, AnOrderThatFailsBeforeAnyDestructionSaysSoAndIsTriedAgain) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  d.outage()->FailCreateRoot(1 << 30);
  ASSERT_TRUE(d.orders()->Submit(ForSubject("o-outage", "alice")).ok());
  OrderStatus st = AwaitMessage(d, "o-outage", "vault outage");
  EXPECT_EQ(st.state, OrderState::kPending) << st.message;
  EXPECT_NE(st.message.find("nothing was destroyed yet"), std::string::npos) << st.message;
  EXPECT_EQ(st.message.find("keys destroyed"), std::string::npos) << st.message;
  for (const Sha256& h : {s.alice1, s.alice2, s.model}) EXPECT_TRUE(d.Readable(h));
  d.outage()->FailCreateRoot(0);
  auto done = d.orders()->Get("o-outage", absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kDone) << done->message;
  EXPECT_EQ(done->items_shredded, 3);
  for (const Sha256& h : {s.alice1, s.alice2, s.model}) EXPECT_FALSE(d.Readable(h));
}

// The pause before an order is tried again after a passing failure: 2 s,
// doubling, at most 60 s (docs/ORDERS.md).
TEST(OrdersTest, TheRetryPauseDoublesUpToItsCap) {
  OrderRetry retry;
  std::vector<int64_t> seconds;
  for (int failed = 1; failed <= 8; ++failed) seconds.push_back(absl::ToInt64Seconds(retry.After(failed)));
  EXPECT_EQ(seconds, (std::vector<int64_t>{2, 4, 8, 16, 32, 60, 60, 60}));
  EXPECT_EQ(retry.After(100000), absl::Seconds(60));
}

// An order against a vault that stays down plans its whole closure again on
// every attempt: it used to be every 2 s, for as long as the outage lasted.
// Its attempts now come after pauses that double (here from 0.1 s: at about
// 0, 0.1, 0.3, 0.7 and 1.5 s, five in two seconds; at a fixed 0.1 s, twenty),
// its status says how many failed and when the next one is, and once the
// vault answers it completes and the count is gone.
TEST(OrdersTest, AnOrderThatKeepsFailingBeforeAnyDestructionIsTriedLessAndLessOften) {
  TempDir dir;
  const OrderRetry retry{absl::Milliseconds(100), absl::Seconds(10)};
  Domain d(dir.path(), {}, retry);
  Scene s = Build(d);
  d.outage()->FailCreateRoot(1 << 30);
  ASSERT_TRUE(d.orders()->Submit(ForSubject("o-backoff", "alice")).ok());
  AwaitMessage(d, "o-backoff", "vault outage");
  absl::SleepFor(absl::Seconds(2));
  OrderStatus st;
  for (int i = 0; i < 100 && st.next_attempt == absl::InfinitePast(); ++i) {  // not while an attempt runs
    auto got = d.orders()->Get("o-backoff", std::nullopt);
    ASSERT_TRUE(got.ok()) << got.status();
    st = *got;
    if (st.next_attempt == absl::InfinitePast()) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(st.state, OrderState::kPending) << st.message;
  EXPECT_GE(st.failed_attempts, 2);
  EXPECT_LE(st.failed_attempts, 6);
  EXPECT_NE(st.message.find("tried again at"), std::string::npos) << st.message;
  ASSERT_NE(st.next_attempt, absl::InfinitePast());
  EXPECT_LE(st.next_attempt - absl::Now(), retry.After(st.failed_attempts));
  for (const Sha256& h : {s.alice1, s.alice2, s.model}) EXPECT_TRUE(d.Readable(h));
  d.outage()->FailCreateRoot(0);
  auto done = d.orders()->Get("o-backoff", absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kDone) << done->message;
  EXPECT_EQ(done->failed_attempts, 0);
  EXPECT_EQ(done->next_attempt, absl::InfinitePast());
}

// A destruction left pending by a failure keeps the items it staged and has
// not destroyed yet: an order that includes one cannot run until it is
// certified. The dry run says so, naming the pending certificate and the
// items; it used to plan them as if nothing held them.
TEST(OrdersTest, APlanSaysWhichOfItsItemsAPendingDestructionHolds) {
  TempDir dir;
  Shredder::Options o;
  o.epoch_items = 1;
  o.pending_retry.initial = o.pending_retry.max = std::chrono::hours(1);  // retried when asked only
  Domain d(dir.path(), o);
  Sha256 a = d.Put("alice a", Photo("alice", "")), b = d.Put("alice b", Photo("alice", ""));
  Sha256 c = d.Put("alice c", Photo("alice", ""));
  d.outage()->FailCreateRoot(1 << 30, 1);  // the first epoch's root, then none
  ShredSpec shred;
  shred.hashes = {a, b};
  shred.reason = "test";
  shred.request_id = "req-pending";
  auto first = d.shredder()->Shred(shred);
  ASSERT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
  ASSERT_FALSE(d.Readable(a));
  ASSERT_TRUE(d.Readable(b));  // staged, not destroyed yet
  auto plan = d.orders()->Plan(ForSubject("o-waits", "alice"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->selected_count, 2u);  // b and c
  ASSERT_EQ(plan->held_by_pending.size(), 1u);
  const PendingHeld& held = plan->held_by_pending[0];
  EXPECT_NE(first.status().message().find("certificate " + held.holder.certificate_id + " is not issued yet"),
            std::string::npos)
      << held.holder.certificate_id << " " << first.status();
  EXPECT_EQ(held.holder.order_id, "");
  EXPECT_EQ(held.count, 1u);
  ASSERT_EQ(held.digests.size(), 1u);
  EXPECT_EQ(held.digests[0].hash, b);
  // Certified: nothing holds the plan's items any more.
  d.outage()->FailCreateRoot(0);
  ASSERT_TRUE(d.shredder()->GetCertificate("", "req-pending", CertificateParts::kEnvelope).ok());
  auto after = d.orders()->Plan(ForSubject("o-waits", "alice"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->selected_count, 1u);  // c
  EXPECT_TRUE(after->held_by_pending.empty());
  EXPECT_TRUE(d.Readable(c));
}

// Keys destroyed, the old root not: the order says so (RUNNING, its
// certificate pending), from its destruction's record, and ends DONE.
TEST(OrdersTest, AnOrderWhoseCertificateIsPendingSaysItsKeysAreDestroyed) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  d.outage()->FailDestroyRoot(true);
  ASSERT_TRUE(d.orders()->Submit(ForSubject("o-pending", "alice")).ok());
  OrderStatus st = AwaitMessage(d, "o-pending", "vault outage");
  EXPECT_EQ(st.state, OrderState::kRunning) << st.message;
  EXPECT_NE(st.message.find("keys destroyed; the certificate is pending"), std::string::npos) << st.message;
  EXPECT_FALSE(d.Readable(s.alice1));
  d.outage()->FailDestroyRoot(false);
  auto done = d.orders()->Get("o-pending", absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, OrderState::kDone) << done->message;
}

// A model the order reaches through lineage but a hold retains: its
// certificate entry says which edge pulled it in, as a derived model's does
// (it named only the hold).
TEST(OrdersTest, ARetainedModelSaysWhichEdgePulledItIn) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  ASSERT_TRUE(d.HoldItem(s.model, "the model is evidence", "hold-model").ok());
  ASSERT_TRUE(d.orders()->Submit(ForSubject("o-held", "alice")).ok());
  auto done = d.orders()->Get("o-held", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kDone) << done->message;
  EXPECT_TRUE(d.Readable(s.model));
  auto cert = d.shredder()->GetCertificate(done->certificate_id, "", CertificateParts::kEnvelope);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto verified = d.Verify(cert->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
  const auto& held = verified->predicate["retainedUnderHold"];
  ASSERT_EQ(held.size(), 1u) << held.dump();
  EXPECT_EQ(held[0].value("holdId", ""), "hold-model");
  EXPECT_EQ(held[0].value("digest", ""), (ContentDigest{s.model, 0}.HashString()));
  ASSERT_TRUE(held[0].contains("pulledInBy")) << held.dump();
  EXPECT_EQ(held[0]["pulledInBy"], (nlohmann::json{{"type", "trained-on"}, {"dataset", "train"}})) << held.dump();
  EXPECT_TRUE(verified->predicate["derivedModels"].empty());
}

// The reviewed plan covers what the certificate will say a hold retains:
// a hold removed and placed again under the same id with another reason
// changes the plan's digest, and the reviewed order is refused (the digest
// covered the hold's id only).
TEST(OrdersTest, AHoldReasonChangedSinceTheReviewRefusesTheReviewedOrder) {
  TempDir dir;
  Domain d(dir.path());
  Scene s = Build(d);
  ASSERT_TRUE(d.HoldItem(s.alice2, "litigation", "hold-alice2").ok());
  OrderSpec spec = ForSubject("o-reviewed", "alice");
  auto reviewed = d.orders()->Plan(spec, 0);
  ASSERT_TRUE(reviewed.ok()) << reviewed.status();
  spec.expected_plan_digest = reviewed->digest;
  ASSERT_TRUE(d.catalog()->RemoveHold("hold-alice2").ok());
  ASSERT_TRUE(d.HoldItem(s.alice2, "litigation settled; kept for the auditor", "hold-alice2").ok());
  auto now = d.orders()->Plan(spec, 0);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_NE(now->digest, reviewed->digest);
  auto refused = d.orders()->Submit(spec);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("changed since it was reviewed"), std::string::npos) << refused.status();
  EXPECT_TRUE(d.Readable(s.alice1));
}

// The same change after the submission, before the order runs (here the
// vault is down, so the accepted order waits): its execution plans the
// closure again, finds another digest and fails, destroying nothing.
TEST(OrdersTest, AHoldReasonChangedAfterTheSubmissionFailsTheReviewedOrderWhenItRuns) {
  TempDir dir;
  Domain d(dir.path(), {}, OrderRetry{absl::Milliseconds(50), absl::Milliseconds(200)});
  Scene s = Build(d);
  ASSERT_TRUE(d.HoldItem(s.alice2, "litigation", "hold-alice2").ok());
  OrderSpec spec = ForSubject("o-reviewed-late", "alice");
  auto reviewed = d.orders()->Plan(spec, 0);
  ASSERT_TRUE(reviewed.ok()) << reviewed.status();
  spec.expected_plan_digest = reviewed->digest;
  d.outage()->FailCreateRoot(1 << 30);
  ASSERT_TRUE(d.orders()->Submit(spec).ok());  // the plan is still the reviewed one
  OrderStatus st = AwaitMessage(d, "o-reviewed-late", "vault outage");
  ASSERT_EQ(st.state, OrderState::kPending) << st.message;
  ASSERT_TRUE(d.catalog()->RemoveHold("hold-alice2").ok());
  ASSERT_TRUE(d.HoldItem(s.alice2, "litigation settled; kept for the auditor", "hold-alice2").ok());
  d.outage()->FailCreateRoot(0);
  auto done = d.orders()->Get("o-reviewed-late", absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state, OrderState::kFailed) << done->message;
  EXPECT_NE(done->message.find("changed since it was reviewed"), std::string::npos) << done->message;
  EXPECT_TRUE(done->certificate_id.empty());
  for (const Sha256& h : {s.alice1, s.alice2, s.model}) EXPECT_TRUE(d.Readable(h));
}

TEST(OrdersTest, SubmissionIsIdempotentAndAChangedOrderIsRefused) {
  TempDir dir;
  Domain d(dir.path());
  Build(d);
  OrderSpec spec = ForSubject("o-idem", "bob");
  spec.received = "2026-12-01T00:00:00Z";
  auto first = d.orders()->Submit(spec);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = d.orders()->Submit(spec);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->spec.id, "o-idem");
  OrderSpec changed = spec;
  changed.subject_ids = {"alice"};
  auto refused = d.orders()->Submit(changed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists) << refused.status();
  OrderSpec invalid = spec;
  invalid.id = "";
  EXPECT_EQ(d.orders()->Submit(invalid).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OrdersTest, AnOrderThatMatchesNothingEndsEmptyWithoutACertificate) {
  TempDir dir;
  Domain d(dir.path());
  Build(d);
  const uint64_t log_before = d.log()->size();
  auto submitted = d.orders()->Submit(ForSubject("o-empty", "nobody"));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto done = d.orders()->Get("o-empty", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, OrderState::kEmpty);
  EXPECT_TRUE(done->certificate_id.empty());
  EXPECT_EQ(d.log()->size(), log_before);
}

}  // namespace
}  // namespace shredd
