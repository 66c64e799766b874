#include "daemon/orders/orders.h"

#include <algorithm>
#include <deque>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/logging.h"
#include "daemon/base/parallel.h"
#include "daemon/base/strings.h"
#include "daemon/orders/closure.h"
#include "daemon/orders/plan_digest.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"

namespace shredd {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// The shredder's request id for order `id`.
std::string RequestIdOf(std::string_view id) { return StrCat(kOrderRequestPrefix, id); }

std::string OrderKey(std::string_view id) { return StrCat(keyspace::kOrder, id); }
std::string OrderAd(std::string_view id) { return StrCat("shredd/order/v1", id); }

bool ValidDate(std::string_view s) {
  absl::Time t;
  std::string err;
  return absl::ParseTime("%Y-%m-%d", std::string(s), &t, &err) ||
         absl::ParseTime(absl::RFC3339_full, std::string(s), &t, &err);
}

json SpecJson(const OrderSpec& s, bool with_received) {
  std::vector<std::string> digests;
  for (const auto& d : s.digests) digests.push_back(ContentDigest{d, 0}.HashString());
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  json j{{"id", s.id},
         {"basis", LegalBasisName(s.basis)},
         {"reference", s.reference},
         {"requester", s.requester},
         {"due", s.due},
         {"digests", sorted(digests)},
         {"subjects", sorted(s.subject_ids)},
         {"datasets", sorted(s.datasets)},
         {"labels", s.labels}};
  if (with_received) j["received"] = s.received;
  if (s.keep_subject_map) j["keepSubjectMap"] = true;  // absent in records of older orders
  return j;
}

absl::StatusOr<OrderSpec> SpecFromJson(const json& j) {
  OrderSpec s;
  s.id = j.at("id").get<std::string>();
  auto b = ParseLegalBasis(j.at("basis").get<std::string>());
  if (!b.ok()) return b.status();
  s.basis = *b;
  s.reference = j.at("reference").get<std::string>();
  s.requester = j.at("requester").get<std::string>();
  s.due = j.at("due").get<std::string>();
  s.received = j.value("received", "");
  for (const auto& d : j.at("digests")) {
    auto h = ParseDigestHash(d.get<std::string>());
    if (!h.ok()) return h.status();
    s.digests.push_back(*h);
  }
  s.subject_ids = j.at("subjects").get<std::vector<std::string>>();
  s.datasets = j.at("datasets").get<std::vector<std::string>>();
  s.labels = j.at("labels").get<std::map<std::string, std::string>>();
  s.keep_subject_map = j.value("keepSubjectMap", false);
  return s;
}

}  // namespace

std::string_view LegalBasisName(LegalBasis b) {
  switch (b) {
    case LegalBasis::kFtcOrder:
      return "ftc-order";
    case LegalBasis::kGdprArt17:
      return "gdpr-art17";
    case LegalBasis::kCcpa:
      return "ccpa";
    case LegalBasis::kContract:
      return "contract";
    case LegalBasis::kOther:
      return "other";
  }
  return "other";
}

absl::StatusOr<LegalBasis> ParseLegalBasis(std::string_view name) {
  for (auto b :
       {LegalBasis::kFtcOrder, LegalBasis::kGdprArt17, LegalBasis::kCcpa, LegalBasis::kContract, LegalBasis::kOther}) {
    if (LegalBasisName(b) == name) return b;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown legal basis ", QuoteForError(name), ": expected ftc-order, gdpr-art17, ccpa, contract or other"));
}

std::string_view OrderStateName(OrderState s) {
  switch (s) {
    case OrderState::kPending:
      return "pending";
    case OrderState::kRunning:
      return "running";
    case OrderState::kDone:
      return "done";
    case OrderState::kEmpty:
      return "empty";
    case OrderState::kFailed:
      return "failed";
  }
  return "unknown";
}

absl::Status OrderSpec::Validate() const {
  if (id.empty()) return absl::InvalidArgumentError("an order needs an id");
  if (auto s = CheckIdField("order id", id); !s.ok()) return s;
  if (reference.empty()) return absl::InvalidArgumentError("an order needs a reference (e.g. docket or request id)");
  if (auto s = CheckTextField("reference", reference, kMaxReferenceBytes); !s.ok()) return s;
  if (auto s = CheckTextField("requester", requester, kMaxReferenceBytes); !s.ok()) return s;
  if (!received.empty() && !ValidDate(received)) {
    return absl::InvalidArgumentError(
        StrCat("received ", QuoteForError(received), " is not a date (YYYY-MM-DD or RFC 3339)"));
  }
  if (!due.empty() && !ValidDate(due)) {
    return absl::InvalidArgumentError(StrCat("due ", QuoteForError(due), " is not a date (YYYY-MM-DD or RFC 3339)"));
  }
  if (!expected_plan_digest.empty() && !ParseDigestHash(expected_plan_digest).ok()) {
    return absl::InvalidArgumentError(
        StrCat("expected plan digest ", QuoteForError(expected_plan_digest), " is not sha256:<64 lowercase hex>"));
  }
  if (digests.empty() && subject_ids.empty() && datasets.empty() && labels.empty()) {
    return absl::InvalidArgumentError("an order needs at least one selector (digest, subject, dataset or label)");
  }
  ItemMetadata probe;
  probe.subject_ids = subject_ids;
  probe.datasets = datasets;
  probe.labels = labels;
  return probe.Validate();
}

std::string OrderSpec::CanonicalJson() const { return SpecJson(*this, false).dump(); }

absl::Duration OrderRetry::After(int failed) const {
  absl::Duration pause = first;
  for (int i = 1; i < failed && pause < cap; ++i) pause *= 2;
  return std::min(pause, cap);
}

// ---------------------------------------------------------------- OrderBook

absl::StatusOr<std::unique_ptr<OrderBook>> OrderBook::Create(ItemStore* store, Catalog* catalog, Shredder* shredder,
                                                             OrderRetry retry) {
  std::unique_ptr<OrderBook> book(new OrderBook(store, catalog, shredder, retry));
  shredder->SetBareShredGuard(
      [store, catalog](const std::vector<Sha256>& named) { return RefuseModelsLeftBehind(store, catalog, named); });
  // Resume what a stop or crash interrupted, oldest first.
  std::vector<std::pair<std::string, std::string>> resume;  // (received, id)
  std::unique_ptr<rocksdb::Iterator> it(store->db()->NewIterator(rocksdb::ReadOptions()));
  std::vector<std::string> ids;
  for (it->Seek(keyspace::kOrder); it->Valid() && it->key().starts_with(keyspace::kOrder); it->Next())
    ids.push_back(it->key().ToString().substr(1));
  it.reset();
  for (const auto& id : ids) {
    auto st = book->Load(id);
    if (!st.ok()) return st.status();
    ++book->state_counts_[st->state];
    if (st->state == OrderState::kPending || st->state == OrderState::kRunning) {
      resume.emplace_back(st->spec.received, id);
    }
  }
  std::sort(resume.begin(), resume.end());
  for (auto& [r, id] : resume) book->queue_.push_back(id);
  book->worker_ = std::thread([b = book.get()] { b->Worker(); });
  return book;
}

OrderBook::~OrderBook() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  shredder_->RequestStop();  // a large destruction stops after its current epoch
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

absl::StatusOr<OrderStatus> OrderBook::Load(std::string_view id) {
  std::string sealed;
  rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), OrderKey(id), &sealed);
  if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no order ", QuoteForError(id)));
  if (!rs.ok()) return FromRocks(rs, "reading an order");
  auto plain = store_->OpenSystem(sealed, OrderAd(id));
  if (!plain.ok()) return absl::DataLossError(StrCat("order record ", id, " does not authenticate"));
  try {
    json j = json::parse(*plain);
    auto spec = SpecFromJson(j.at("spec"));
    if (!spec.ok()) return spec.status();
    OrderStatus st;
    st.spec = std::move(*spec);
    st.state = static_cast<OrderState>(j.at("state").get<int>());
    st.message = j.value("message", "");
    st.items_planned = j.value("planned", int64_t{0});
    st.items_shredded = j.value("shredded", int64_t{0});
    st.certificate_id = j.value("certificate", "");
    st.spec.expected_plan_digest = j.value("planDigest", "");
    return st;
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat("order record ", id, " is unreadable: ", e.what()));
  }
}

absl::Status OrderBook::Save(const OrderStatus& st) {
  json j{{"spec", SpecJson(st.spec, true)}, {"state", static_cast<int>(st.state)}, {"message", st.message},
         {"planned", st.items_planned},     {"shredded", st.items_shredded},       {"certificate", st.certificate_id}};
  if (!st.spec.expected_plan_digest.empty()) j["planDigest"] = st.spec.expected_plan_digest;
  rocksdb::WriteBatch batch;
  batch.Put(OrderKey(st.spec.id), store_->SealSystem(j.dump(), OrderAd(st.spec.id)));
  return SyncWrite(store_->db(), &batch);
}

absl::StatusOr<OrderPlan> OrderBook::Plan(const OrderSpec& spec, size_t list_limit) {
  OrderPlan plan;
  // Each list is a max-heap by item key while the closure streams in, cut to
  // list_limit: it keeps the smallest keys whatever the closure's order.
  auto by_key = [](const PlannedItem& a, const PlannedItem& b) { return a.key < b.key; };
  auto keep = [&](std::vector<PlannedItem>& list, PlannedItem&& p) {
    if (list.size() < list_limit) {
      list.push_back(std::move(p));
      std::push_heap(list.begin(), list.end(), by_key);
    } else if (list_limit > 0 && by_key(p, list.front())) {
      std::pop_heap(list.begin(), list.end(), by_key);
      list.back() = std::move(p);
      std::push_heap(list.begin(), list.end(), by_key);
    }
  };
  PlanDigest digest;
  auto reserved = shredder_->Reservations();
  if (!reserved.ok()) return reserved.status();
  auto s = PlanClosure(store_, catalog_, spec, &plan.unmatched,
                       [&](const StoredItem& item, PlannedItem& p, ClosureRole role) -> absl::Status {
                         digest.Add(p, role);
                         if (role != ClosureRole::kRetained && !reserved->empty()) {
                           if (auto h = NoteHeldByPending(*reserved, item, list_limit, plan); !h.ok()) return h;
                         }
                         p.name = item.info.metadata.name;
                         p.subject_ids = item.info.metadata.subject_ids;
                         if (role == ClosureRole::kRetained) {
                           ++plan.retained_count;
                           keep(plan.retained, std::move(p));
                         } else if (role == ClosureRole::kSelected) {
                           ++plan.selected_count;
                           if (p.kind == ItemKind::kModel) ++plan.selected_models;
                           keep(plan.selected, std::move(p));
                         } else {
                           ++plan.derived_count;
                           keep(plan.derived, std::move(p));
                         }
                         return absl::OkStatus();
                       });
  if (!s.ok()) return s;
  plan.digest = digest.Finish(spec);
  std::sort_heap(plan.selected.begin(), plan.selected.end(), by_key);
  std::sort_heap(plan.derived.begin(), plan.derived.end(), by_key);
  std::sort_heap(plan.retained.begin(), plan.retained.end(), by_key);
  return plan;
}

absl::Status OrderBook::NoteHeldByPending(const PendingReservations& reserved, const StoredItem& item,
                                          size_t list_limit, OrderPlan& plan) {
  auto holder = reserved.HolderOf(item);
  if (!holder.ok() || !*holder) return holder.status();
  auto held = std::find_if(plan.held_by_pending.begin(), plan.held_by_pending.end(),
                           [&](const PendingHeld& h) { return h.holder.certificate_id == (*holder)->certificate_id; });
  if (held == plan.held_by_pending.end())
    held = plan.held_by_pending.insert(held, PendingHeld{.holder = **holder, .count = 0, .digests = {}});
  ++held->count;
  if (held->digests.size() < list_limit) held->digests.push_back(item.info.digest);
  return absl::OkStatus();
}

absl::StatusOr<OrderStatus> OrderBook::Submit(OrderSpec spec) {
  auto accepted = Accept(std::move(spec));
  if (!accepted.ok()) return accepted;
  if (auto s = WaitAcknowledgementReplicated(store_->db()); !s.ok()) return s;
  return accepted;
}

absl::StatusOr<OrderStatus> OrderBook::Accept(OrderSpec spec) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  if (auto s = spec.Validate(); !s.ok()) return s;
  // A reviewed plan is checked before anything is stored (and again when
  // the order runs: Run).
  std::optional<OrderPlan> now;
  if (!spec.expected_plan_digest.empty()) {
    auto planned = Plan(spec, 0);
    if (!planned.ok()) return planned.status();
    now = std::move(*planned);
  }
  std::lock_guard lock(mu_);
  auto existing = Load(spec.id);
  if (existing.ok()) {
    if (existing->spec.CanonicalJson() != spec.CanonicalJson()) {
      return absl::AlreadyExistsError(StrCat(
          "order \"", spec.id, "\" already exists with different fields: ", SpecJson(existing->spec, true).dump()));
    }
    return *existing;
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  if (!spec.expected_plan_digest.empty()) {
    if (auto c = CheckReviewedPlan(spec, now->digest, now->selected_count, now->derived_count, now->retained_count);
        !c.ok())
      return c;
  }
  if (spec.received.empty()) spec.received = FormatRfc3339(absl::Now(), TimePrecision::kSeconds);
  OrderStatus st;
  st.spec = std::move(spec);
  st.state = OrderState::kPending;
  if (auto s = Save(st); !s.ok()) return s;
  ++state_counts_[OrderState::kPending];
  LogInfo("order accepted", {{"order", st.spec.id}, {"state", OrderStateName(st.state)}});
  queue_.push_back(st.spec.id);
  changed_.notify_all();
  return st;
}

absl::StatusOr<OrderStatus> OrderBook::Get(std::string_view id, std::optional<absl::Time> wait_until) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto st = Load(id);
    if (!st.ok()) return st;
    if (st->state == OrderState::kRunning) AddLiveProgressLocked(*st);
    AddRetryLocked(*st);
    bool finished =
        st->state == OrderState::kDone || st->state == OrderState::kEmpty || st->state == OrderState::kFailed;
    if (finished || !wait_until || absl::Now() >= *wait_until) return st;
    changed_.wait_for(lock, std::min(absl::ToChronoNanoseconds(*wait_until - absl::Now()),
                                     std::chrono::nanoseconds(std::chrono::milliseconds(500))));
  }
}

absl::Status OrderBook::ForEachSubject(
    std::string_view id,
    const std::function<bool(const std::string& subject, const std::vector<SubjectMapItem>& items)>& visit) {
  auto st = Load(id);
  if (!st.ok()) return st.status();
  if (st->state != OrderState::kDone) {
    return absl::FailedPreconditionError(StrCat("order ", QuoteForError(id), " is ", OrderStateName(st->state),
                                                ": its subject map is served once it is done (certified)"));
  }
  return shredd::ForEachSubject(store_, id, visit);
}

absl::StatusOr<int64_t> OrderBook::ReleaseSubjectMap(std::string_view id) {
  std::lock_guard release(release_mu_);
  auto st = Load(id);
  if (!st.ok()) return st.status();
  if (st->state == OrderState::kPending || st->state == OrderState::kRunning) {
    return absl::FailedPreconditionError(StrCat("order ", QuoteForError(id), " is ", OrderStateName(st->state),
                                                ": release its subject map once it is done"));
  }
  // Retried after an error once its epoch committed: answered as then.
  auto released = SubjectMapReleased(store_, id);
  if (!released.ok()) return released.status();
  if (*released) return **released;
  int64_t subjects = 0;
  if (auto s = shredd::ForEachSubject(store_, id,
                                      [&](const std::string&, const std::vector<SubjectMapItem>&) {
                                        ++subjects;
                                        return true;
                                      });
      !s.ok()) {
    return s;
  }
  rocksdb::WriteBatch batch;
  auto slot = StageSubjectMapRelease(store_, id, subjects, &batch);
  if (!slot.ok()) return slot.status();
  const uint64_t slots[] = {*slot};
  if (auto s = shredder_->DestroyKeys(slots, &batch); !s.ok()) return s;
  LogInfo("order subject map released", {{"order", std::string(id)}, {"subjects", subjects}});
  return subjects;
}

void OrderBook::DropSubjectMapOfFailed(const std::string& id) {
  rocksdb::WriteBatch batch;
  auto slot = StageSubjectMapRelease(store_, id, std::nullopt, &batch);
  if (absl::IsNotFound(slot.status())) return;  // none was begun
  absl::Status s = slot.status();
  if (s.ok()) {
    const uint64_t slots[] = {*slot};
    s = shredder_->DestroyKeys(slots, &batch);
  }
  if (s.ok()) {
    LogInfo("subject map of a failed order dropped", {{"order", id}});
  } else {
    // Left as it was: `order subject-map release` can still drop it.
    LogWarning("subject map of a failed order not dropped", {{"order", id}, {"reason", std::string(s.message())}});
  }
}

void OrderBook::AddLiveProgressLocked(OrderStatus& st) {
  if (planning_.first == st.spec.id) st.items_planned = std::max(st.items_planned, planning_.second);
  if (auto p = shredder_->ProgressOf(RequestIdOf(st.spec.id))) {
    st.items_planned = static_cast<int64_t>(p->planned);
    st.items_shredded = static_cast<int64_t>(p->destroyed);
  }
}

void OrderBook::AddRetryLocked(OrderStatus& st) {
  if (st.state != OrderState::kPending) return;  // the count is of a pending order's attempts
  if (auto f = failed_attempts_.find(st.spec.id); f != failed_attempts_.end()) st.failed_attempts = f->second;
  if (auto d = deferred_.find(st.spec.id); d != deferred_.end() && st.failed_attempts > 0) st.next_attempt = d->second;
}

absl::Time OrderBook::DeferFailedAttempt(const std::string& id) {
  std::lock_guard lock(mu_);
  const absl::Time next = absl::Now() + retry_.After(++failed_attempts_[id]);
  deferred_[id] = next;
  return next;
}

std::map<OrderState, int64_t> OrderBook::CountByState() {
  std::lock_guard lock(mu_);
  return state_counts_;
}

std::string OrderBook::NextOrder() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return "";
    absl::Time due = absl::InfiniteFuture();
    for (auto it = deferred_.begin(); it != deferred_.end();) {
      if (it->second <= absl::Now()) {
        queue_.push_back(it->first);
        it = deferred_.erase(it);
      } else {
        due = std::min(due, it->second);
        ++it;
      }
    }
    if (!queue_.empty()) {
      std::string id = std::move(queue_.front());
      queue_.pop_front();
      return id;
    }
    if (due == absl::InfiniteFuture()) {
      changed_.wait(lock);
    } else {
      changed_.wait_for(lock, absl::ToChronoNanoseconds(due - absl::Now()));
    }
  }
}

void OrderBook::Worker() {
  for (;;) {
    std::string id = NextOrder();
    if (id.empty()) return;
    const Next next = Run(id);
    {
      std::lock_guard lock(mu_);
      // Past a passing failure (ended, or its keys destroyed): its backoff
      // starts again. A retried one was deferred by DeferFailedAttempt.
      if (next != Next::kRetry) failed_attempts_.erase(id);
      // Keys destroyed and the certificate waiting for the vault (the
      // shredder retries by itself): asked again shortly, other orders
      // first.
      if (next == Next::kRecheck) deferred_[id] = absl::Now() + absl::FromChrono(kPendingRecheck);
    }
    changed_.notify_all();
  }
}

void OrderBook::Update(OrderStatus& st, OrderState state, std::string message) {
  std::lock_guard lock(mu_);
  const OrderState before = st.state;
  st.state = state;
  st.message = std::move(message);
  if (!Save(st).ok()) return;
  --state_counts_[before];
  ++state_counts_[state];
  // The order id and the state only: messages may name selectors.
  if (state == OrderState::kFailed) {
    LogWarning("order state", {{"order", st.spec.id}, {"state", OrderStateName(state)}});
  } else {
    LogInfo("order state", {{"order", st.spec.id}, {"state", OrderStateName(state)}});
  }
}

namespace {

// The shred job of an order: its public fields go into the certificate, its
// selectors and requester only into the private manifest.
ShredJob JobFor(const OrderSpec& spec, const std::string& request_id) {
  ShredJob job;
  job.request_id = request_id;
  job.order_id = spec.id;
  job.reason = StrCat(LegalBasisName(spec.basis), ": ", spec.reference);
  job.order_public = {{"id", spec.id},
                      {"basis", LegalBasisName(spec.basis)},
                      {"reference", spec.reference},
                      {"received", spec.received},
                      {"due", spec.due}};
  json priv = SpecJson(spec, false);
  job.order_private = json{{"requester", spec.requester},
                           {"selectors",
                            {{"digests", priv["digests"]},
                             {"subjects", priv["subjects"]},
                             {"datasets", priv["datasets"]},
                             {"labels", priv["labels"]}}}}
                          .dump();
  return job;
}

// How a derived model was pulled in, as the certificate says it: a dataset
// or a model is named, a photo never; "relation" only when the edge has one.
ordered_json EdgeJson(const PlannedItem& p) {
  ordered_json edge{{"type", EdgeTypeName(*p.edge_type)}};
  if (!p.edge_relation.empty()) edge["relation"] = p.edge_relation;  // trained-on edges have none
  if (!p.edge_dataset.empty()) {
    edge["dataset"] = p.edge_dataset;
  } else if (p.edge_parent && p.edge_parent_kind == ItemKind::kModel) {
    edge["model"] = p.edge_parent->HashString();
  } else {
    edge["item"] = "photo";  // personal: named only in the private manifest
  }
  return edge;
}

}  // namespace

absl::Status OrderBook::PlanInto(const OrderSpec& spec, PlanSink& sink, ShredJob& job, RunCounts* counts,
                                 SubjectMapWriter* subjects) {
  std::vector<std::string> unmatched;
  PlanDigest digest;
  const bool reviewed = !spec.expected_plan_digest.empty();
  uint64_t derived = 0;
  auto s =
      PlanClosure(store_, catalog_, spec, &unmatched,
                  [&](const StoredItem& item, PlannedItem& p, ClosureRole role) -> absl::Status {
                    if (reviewed) digest.Add(p, role);
                    if (role == ClosureRole::kRetained) {
                      ordered_json r{{"kind", KindName(p.kind)}, {"holdId", p.hold_id}, {"reason", p.hold_reason}};
                      if (p.kind == ItemKind::kModel) r["digest"] = p.digest.HashString();
                      if (p.edge_type) r["pulledInBy"] = EdgeJson(p);  // a model reached by lineage
                      job.retained.push_back(std::move(r));
                      ++counts->retained;
                      return absl::OkStatus();
                    }
                    if (role == ClosureRole::kDerived) {
                      ++derived;
                      job.derived_models.push_back(
                          {{"digest", p.digest.HashString()}, {"size", p.digest.size}, {"pulledInBy", EdgeJson(p)}});
                    }
                    if (subjects != nullptr) {
                      if (auto s = subjects->Add(item); !s.ok()) return s;
                    }
                    if (++counts->planned % 8192 == 0) {
                      std::lock_guard lock(mu_);
                      planning_ = {spec.id, counts->planned};
                      if (stopping_) return absl::CancelledError("stopping");
                    }
                    return sink.Add(item);
                  });
  if (!s.ok() || !reviewed) return s;
  // The closure staged for destruction is the one the submitter reviewed,
  // or nothing is destroyed.
  return CheckReviewedPlan(spec, digest.Finish(spec), static_cast<uint64_t>(counts->planned) - derived, derived,
                           static_cast<uint64_t>(counts->retained));
}

OrderBook::Next OrderBook::Run(const std::string& id) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  auto loaded = Load(id);
  if (!loaded.ok()) return Next::kNone;
  OrderStatus st = std::move(*loaded);
  // A destruction that committed before (a crash, or a certification that
  // failed) is certified, never planned again.
  const std::string request_id = RequestIdOf(id);
  auto phase = shredder_->PhaseOf(request_id);
  if (!phase.ok()) return Unknown(st, phase.status());
  if (*phase != Shredder::Phase::kNotBegun) return Certify(st);
  Update(st, OrderState::kRunning, "planning and destroying keys");
  std::unique_ptr<SubjectMapWriter> subjects;
  if (st.spec.keep_subject_map) {
    auto w = SubjectMapWriter::Open(store_, id);
    if (!w.ok()) {
      Update(st, OrderState::kFailed, StrCat("subject map: ", w.status().message()));
      return Next::kNone;
    }
    subjects = std::move(*w);
  }
  RunCounts counts;
  // Planning streams the closure into the shredder's staged records (under
  // its lock); the destruction then runs in chunks and ends in one
  // certificate.
  auto cert = shredder_->ExecutePlanned(JobFor(st.spec, request_id), [&](PlanSink& sink, ShredJob& j) -> absl::Status {
    auto s = PlanInto(st.spec, sink, j, &counts, subjects.get());
    if (s.ok() && subjects) s = subjects->Flush();
    if (absl::IsCancelled(s)) counts.stopped = true;
    if (!s.ok()) return s;
    // Stopping: leave the order checkpointed (RUNNING, nothing destroyed);
    // the next start plans and runs it again.
    std::lock_guard lock(mu_);
    if (stopping_) {
      counts.stopped = true;
      return absl::CancelledError("stopping");
    }
    return absl::OkStatus();
  });
  return Finish(st, cert, counts);
}

OrderBook::Next OrderBook::Finish(OrderStatus& st, const absl::StatusOr<CertificateBundle>& cert,
                                  const RunCounts& counts) {
  if (counts.stopped || (!cert.ok() && absl::IsCancelled(cert.status()))) {
    // RUNNING stays: the next start finishes a destruction that committed
    // an epoch (before serving) or plans the order again.
    LogInfo("order left for the next start", {{"order", st.spec.id}});
    return Next::kNone;
  }
  st.items_planned = counts.planned;
  if (!cert.ok() && counts.planned == 0 && absl::IsNotFound(cert.status())) {
    Update(st, OrderState::kEmpty,
           counts.retained == 0 ? "selectors matched nothing: no certificate"
                                : "every match is under a legal hold: no certificate");
    return Next::kNone;
  }
  if (!cert.ok()) return AfterFailure(st, cert.status());
  st.certificate_id = cert->certificate_id;
  st.items_shredded = st.items_planned;
  Update(st, OrderState::kDone, "certified");
  return Next::kNone;
}

OrderBook::Next OrderBook::Certify(OrderStatus& st) {
  auto done = shredder_->GetCertificate("", RequestIdOf(st.spec.id), CertificateParts::kEnvelope);
  if (!done.ok()) {
    Update(st, OrderState::kRunning, StrCat("keys destroyed; the certificate is pending: ", done.status().message()));
    return Next::kRecheck;
  }
  st.certificate_id = done->certificate_id;
  st.items_shredded = static_cast<int64_t>(done->item_count);
  Update(st, OrderState::kDone, "certified");
  return Next::kNone;
}

OrderBook::Next OrderBook::AfterFailure(OrderStatus& st, const absl::Status& failure) {
  // What the order's state says comes from how far its destruction
  // durably got, not from the failure's code.
  auto phase = shredder_->PhaseOf(RequestIdOf(st.spec.id));
  if (!phase.ok()) return Unknown(st, failure);
  if (*phase != Shredder::Phase::kNotBegun) {
    // Committed, not yet certified (Shredder: a pending certification):
    // FAILED would say nothing was destroyed. RUNNING until it is issued.
    Update(st, OrderState::kRunning, StrCat("keys destroyed; the certificate is pending: ", failure.message()));
    return Next::kRecheck;
  }
  if (absl::IsUnavailable(failure)) {
    // A passing failure (the vault or the database busy, a destruction of
    // the same items pending) before any key was destroyed: tried again,
    // each time after a longer pause (a re-plan of the whole closure).
    const absl::Time next = DeferFailedAttempt(st.spec.id);
    Update(st, OrderState::kPending,
           StrCat("nothing was destroyed yet: ", failure.message(), "; the order is tried again at ",
                  FormatRfc3339(next, TimePrecision::kSeconds)));
    return Next::kRetry;
  }
  Update(st, OrderState::kFailed, std::string(failure.message()));
  if (st.spec.keep_subject_map) DropSubjectMapOfFailed(st.spec.id);
  return Next::kNone;
}

OrderBook::Next OrderBook::Unknown(OrderStatus& st, const absl::Status& why) {
  // The destruction's records cannot be read: neither "nothing destroyed"
  // nor "keys destroyed" can be said. Asked again.
  Update(st, OrderState::kRunning,
         StrCat("whether its keys were destroyed cannot be read now (", why.message(), "); asked again shortly"));
  return Next::kRecheck;
}

}  // namespace shredd
