#include "daemon/orders.h"

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/time/clock.h"
#include "daemon/logging.h"
#include "daemon/rocks_util.h"
#include "daemon/strings.h"

namespace shredd {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string OrderKey(std::string_view id) { return StrCat("O", id); }
std::string OrderAd(std::string_view id) { return StrCat("shredd/order/v1", id); }

bool ValidDate(std::string_view s) {
  absl::Time t;
  std::string err;
  return absl::ParseTime("%Y-%m-%d", std::string(s), &t, &err) ||
         absl::ParseTime(absl::RFC3339_full, std::string(s), &t, &err);
}

absl::Status CheckText(std::string_view field, std::string_view v, size_t max) {
  if (v.size() > max) return absl::InvalidArgumentError(StrCat(field, " is longer than ", max, " bytes"));
  for (unsigned char c : v) {
    if (c < 0x20) return absl::InvalidArgumentError(StrCat(field, " contains a control character"));
  }
  return absl::OkStatus();
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
  return s;
}

}  // namespace

std::string_view LegalBasisName(LegalBasis b) {
  switch (b) {
    case LegalBasis::kFtcOrder: return "ftc-order";
    case LegalBasis::kGdprArt17: return "gdpr-art17";
    case LegalBasis::kCcpa: return "ccpa";
    case LegalBasis::kContract: return "contract";
    case LegalBasis::kOther: return "other";
  }
  return "other";
}

absl::StatusOr<LegalBasis> ParseLegalBasis(std::string_view name) {
  for (auto b : {LegalBasis::kFtcOrder, LegalBasis::kGdprArt17, LegalBasis::kCcpa, LegalBasis::kContract,
                 LegalBasis::kOther}) {
    if (LegalBasisName(b) == name) return b;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown legal basis \"", name, "\": expected ftc-order, gdpr-art17, ccpa, contract or other"));
}

std::string_view OrderStateName(OrderState s) {
  switch (s) {
    case OrderState::kPending: return "pending";
    case OrderState::kRunning: return "running";
    case OrderState::kDone: return "done";
    case OrderState::kEmpty: return "empty";
    case OrderState::kFailed: return "failed";
  }
  return "unknown";
}

absl::Status OrderSpec::Validate() const {
  if (id.empty()) return absl::InvalidArgumentError("an order needs an id");
  if (auto s = CheckText("order id", id, 128); !s.ok()) return s;
  if (reference.empty()) return absl::InvalidArgumentError("an order needs a reference (e.g. docket or request id)");
  if (auto s = CheckText("reference", reference, 1024); !s.ok()) return s;
  if (auto s = CheckText("requester", requester, 1024); !s.ok()) return s;
  if (!received.empty() && !ValidDate(received)) {
    return absl::InvalidArgumentError(StrCat("received \"", received, "\" is not a date (YYYY-MM-DD or RFC 3339)"));
  }
  if (!due.empty() && !ValidDate(due)) {
    return absl::InvalidArgumentError(StrCat("due \"", due, "\" is not a date (YYYY-MM-DD or RFC 3339)"));
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

// ---------------------------------------------------------------- OrderBook

absl::StatusOr<std::unique_ptr<OrderBook>> OrderBook::Create(ItemStore* store, Catalog* catalog, Shredder* shredder) {
  std::unique_ptr<OrderBook> book(new OrderBook(store, catalog, shredder));
  // Resume what a stop or crash interrupted, oldest first.
  std::vector<std::pair<std::string, std::string>> resume;  // (received, id)
  std::unique_ptr<rocksdb::Iterator> it(store->db()->NewIterator(rocksdb::ReadOptions()));
  std::vector<std::string> ids;
  for (it->Seek("O"); it->Valid() && it->key().starts_with("O"); it->Next()) ids.push_back(it->key().ToString().substr(1));
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
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

absl::StatusOr<OrderStatus> OrderBook::Load(std::string_view id) {
  std::string sealed;
  rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), OrderKey(id), &sealed);
  if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no order \"", id, "\""));
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
    return st;
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat("order record ", id, " is unreadable: ", e.what()));
  }
}

absl::Status OrderBook::Save(const OrderStatus& st) {
  json j{{"spec", SpecJson(st.spec, true)},
         {"state", static_cast<int>(st.state)},
         {"message", st.message},
         {"planned", st.items_planned},
         {"shredded", st.items_shredded},
         {"certificate", st.certificate_id}};
  rocksdb::WriteBatch batch;
  batch.Put(OrderKey(st.spec.id), store_->SealSystem(j.dump(), OrderAd(st.spec.id)));
  return SyncWrite(store_->db(), &batch);
}

absl::StatusOr<OrderPlan> OrderBook::Plan(const OrderSpec& spec) {
  if (auto s = spec.Validate(); !s.ok()) return s;
  OrderPlan plan;
  std::map<ItemKey, PlannedItem> chosen;  // selected + derived, by item key
  std::map<ItemKey, StoredItem> items;    // decrypted records we looked at
  std::vector<ParentRef> frontier;
  std::set<ParentRef> seen_refs;
  auto select = [&](const ItemKey& key, std::string reason) -> bool {
    if (chosen.count(key)) return true;
    auto item = store_->LookupByKey(key);
    if (!item.ok()) return false;
    PlannedItem p;
    p.key = key;
    p.digest = item->info.digest;
    p.kind = item->info.metadata.kind;
    p.reason = std::move(reason);
    chosen.emplace(key, std::move(p));
    frontier.push_back({'i', key});
    for (const auto& d : item->info.metadata.datasets) frontier.push_back({'d', catalog_->DatasetKey(d)});
    items.emplace(key, std::move(*item));
    return true;
  };
  for (const auto& h : spec.digests) {
    const std::string name = ContentDigest{h, 0}.HashString();
    if (!select(store_->ItemKeyFor(h), StrCat("selected by digest"))) {
      auto by = store_->SuppressedBy(h);
      plan.unmatched.push_back(by ? StrCat("digest ", name, " (already shredded: ", *by, ")")
                                  : StrCat("digest ", name, " (not stored)"));
    }
  }
  for (const auto& s : spec.subject_ids) {
    size_t n = 0;
    for (const auto& k : store_->ItemsIndexedBy('s', s)) n += select(k, StrCat("subject ", s));
    if (n == 0) plan.unmatched.push_back(StrCat("subject ", s, " (no stored items)"));
  }
  for (const auto& d : spec.datasets) {
    if (!catalog_->DatasetExists(d)) {
      plan.unmatched.push_back(StrCat("dataset ", d, " (unknown dataset)"));
      continue;
    }
    size_t n = 0;
    for (const auto& k : store_->ItemsIndexedBy('d', d)) n += select(k, StrCat("dataset ", d));
    frontier.push_back({'d', catalog_->DatasetKey(d)});
    if (n == 0) plan.unmatched.push_back(StrCat("dataset ", d, " (no stored items)"));
  }
  for (const auto& [k, v] : spec.labels) {
    size_t n = 0;
    for (const auto& key : store_->ItemsIndexedBy('l', StrCat(k, "=", v))) n += select(key, StrCat("label ", k, "=", v));
    if (n == 0) plan.unmatched.push_back(StrCat("label ", k, "=", v, " (no stored items)"));
  }
  std::set<ItemKey> selected_keys;
  for (const auto& [k, p] : chosen) selected_keys.insert(k);
  // Closure over lineage: everything trained on or derived from what is chosen.
  while (!frontier.empty()) {
    ParentRef ref = frontier.back();
    frontier.pop_back();
    if (!seen_refs.insert(ref).second) continue;
    for (const Edge& e : catalog_->ChildrenOf(ref)) {
      if (chosen.count(e.child)) continue;
      std::string why = StrCat(EdgeTypeName(e.type), " ");
      PlannedItem edge_info;
      edge_info.edge_type = e.type;
      edge_info.edge_relation = e.relation;
      if (ref.type == 'd') {
        edge_info.edge_dataset = catalog_->DatasetName(ref.key).value_or("?");
        why += StrCat("dataset ", edge_info.edge_dataset);
      } else {
        const PlannedItem& parent = chosen.at(ref.key);
        edge_info.edge_parent = parent.digest;
        edge_info.edge_parent_kind = parent.kind;
        why += StrCat(KindName(parent.kind), " ", parent.digest.HashString());
      }
      if (!select(e.child, why)) continue;  // the child is gone already
      PlannedItem& c = chosen.at(e.child);
      c.edge_type = edge_info.edge_type;
      c.edge_relation = edge_info.edge_relation;
      c.edge_parent = edge_info.edge_parent;
      c.edge_parent_kind = edge_info.edge_parent_kind;
      c.edge_dataset = edge_info.edge_dataset;
    }
  }
  for (auto& [k, p] : chosen) {
    if (auto hold = catalog_->HoldFor(items.at(k))) {
      p.hold_id = hold->id;
      p.hold_reason = hold->reason;
      plan.retained.push_back(std::move(p));
    } else if (selected_keys.count(k)) {
      plan.selected.push_back(std::move(p));
    } else {
      plan.derived.push_back(std::move(p));
    }
  }
  return plan;
}

absl::StatusOr<OrderStatus> OrderBook::Submit(OrderSpec spec) {
  if (auto s = spec.Validate(); !s.ok()) return s;
  std::lock_guard lock(mu_);
  auto existing = Load(spec.id);
  if (existing.ok()) {
    if (existing->spec.CanonicalJson() != spec.CanonicalJson()) {
      return absl::AlreadyExistsError(StrCat("order \"", spec.id, "\" already exists with different fields: ",
                                             SpecJson(existing->spec, true).dump()));
    }
    return *existing;
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  if (spec.received.empty()) spec.received = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
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
    bool finished = st->state == OrderState::kDone || st->state == OrderState::kEmpty ||
                    st->state == OrderState::kFailed;
    if (finished || !wait_until || absl::Now() >= *wait_until) return st;
    changed_.wait_for(lock, std::min(absl::ToChronoNanoseconds(*wait_until - absl::Now()),
                                     std::chrono::nanoseconds(std::chrono::milliseconds(500))));
  }
}

std::map<OrderState, int64_t> OrderBook::CountByState() {
  std::lock_guard lock(mu_);
  return state_counts_;
}

void OrderBook::Worker() {
  for (;;) {
    std::string id;
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    Run(id);
    changed_.notify_all();
  }
}

void OrderBook::Run(const std::string& id) {
  auto loaded = Load(id);
  if (!loaded.ok()) return;
  OrderStatus st = std::move(*loaded);
  auto update = [&](OrderState state, std::string message) {
    std::lock_guard lock(mu_);
    const OrderState before = st.state;
    st.state = state;
    st.message = std::move(message);
    if (!Save(st).ok()) return;
    --state_counts_[before];
    ++state_counts_[state];
    // The order id and the state only: messages may name selectors.
    if (state == OrderState::kFailed) {
      LogWarning("order state", {{"order", id}, {"state", OrderStateName(state)}});
    } else {
      LogInfo("order state", {{"order", id}, {"state", OrderStateName(state)}});
    }
  };
  // A destruction that committed before a crash is certified, not re-planned.
  const std::string request_id = StrCat("order:", id);
  auto done = shredder_->GetCertificate("", request_id, false);
  if (done.ok()) {
    st.certificate_id = done->certificate_id;
    update(OrderState::kDone, "certified");
    return;
  }
  update(OrderState::kRunning, "planning");
  auto plan = Plan(st.spec);
  if (!plan.ok()) {
    update(OrderState::kFailed, std::string(plan.status().message()));
    return;
  }
  st.items_planned = static_cast<int64_t>(plan->selected.size() + plan->derived.size());
  if (plan->empty()) {
    update(OrderState::kEmpty, plan->retained.empty() ? "selectors matched nothing: no certificate"
                                                      : "every match is under a legal hold: no certificate");
    return;
  }
  {
    // Stopping: leave the order checkpointed (RUNNING, nothing destroyed);
    // the next start plans and runs it again.
    std::lock_guard lock(mu_);
    if (stopping_) {
      LogInfo("order left for the next start", {{"order", id}});
      return;
    }
  }
  update(OrderState::kRunning, "destroying keys");
  ShredJob job;
  job.request_id = request_id;
  job.order_id = id;
  job.reason = StrCat(LegalBasisName(st.spec.basis), ": ", st.spec.reference);
  for (const auto& p : plan->selected) job.hashes.push_back(p.digest.hash);
  for (const auto& p : plan->derived) job.hashes.push_back(p.digest.hash);
  job.order_public = {{"id", st.spec.id},
                      {"basis", LegalBasisName(st.spec.basis)},
                      {"reference", st.spec.reference},
                      {"received", st.spec.received},
                      {"due", st.spec.due}};
  json priv = SpecJson(st.spec, false);
  job.order_private = json{{"requester", st.spec.requester},
                           {"selectors", {{"digests", priv["digests"]},
                                          {"subjects", priv["subjects"]},
                                          {"datasets", priv["datasets"]},
                                          {"labels", priv["labels"]}}}}.dump();
  for (const auto& p : plan->derived) {
    ordered_json edge{{"type", EdgeTypeName(*p.edge_type)}, {"relation", p.edge_relation}};
    if (!p.edge_dataset.empty()) {
      edge["dataset"] = p.edge_dataset;
    } else if (p.edge_parent && p.edge_parent_kind == ItemKind::kModel) {
      edge["model"] = p.edge_parent->HashString();
    } else {
      edge["item"] = "photo";  // personal: named only in the private manifest
    }
    job.derived_models.push_back({{"digest", p.digest.HashString()}, {"size", p.digest.size}, {"pulledInBy", edge}});
  }
  for (const auto& p : plan->retained) {
    ordered_json r{{"kind", KindName(p.kind)}, {"holdId", p.hold_id}, {"reason", p.hold_reason}};
    if (p.kind == ItemKind::kModel) r["digest"] = p.digest.HashString();
    job.retained.push_back(std::move(r));
  }
  auto cert = shredder_->Execute(std::move(job));
  if (!cert.ok()) {
    update(OrderState::kFailed, std::string(cert.status().message()));
    return;
  }
  st.certificate_id = cert->certificate_id;
  st.items_shredded = st.items_planned;
  update(OrderState::kDone, "certified");
}

}  // namespace shredd
