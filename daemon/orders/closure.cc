#include "daemon/orders/closure.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/container/flat_hash_set.h"

#include "daemon/base/strings.h"
#include "daemon/items/slot_ordered_lookup.h"
#include "daemon/storage/keyspace.h"

namespace shredd {
namespace {

// Whether `item` matches one of the order's own selectors.
bool SelectedBySpec(const OrderSpec& spec, const StoredItem& item) {
  const auto& m = item.info.metadata;
  for (const auto& h : spec.digests) {
    if (h == item.info.digest.hash) return true;
  }
  for (const auto& s : spec.subject_ids) {
    if (std::find(m.subject_ids.begin(), m.subject_ids.end(), s) != m.subject_ids.end()) return true;
  }
  for (const auto& d : spec.datasets) {
    if (std::find(m.datasets.begin(), m.datasets.end(), d) != m.datasets.end()) return true;
  }
  for (const auto& [k, v] : spec.labels) {
    auto it = m.labels.find(k);
    if (it != m.labels.end() && it->second == v) return true;
  }
  return false;
}

PlannedItem PlannedFor(const ItemKey& key, const StoredItem& item, std::string reason) {
  PlannedItem p;
  p.key = key;
  p.digest = item.info.digest;
  p.kind = item.info.metadata.kind;
  p.reason = std::move(reason);
  return p;
}

// One walk of PlanClosure, in its phases: the selectors (Select, Scan), then
// the lineage (WalkLineage); Consider decides each item's role.
//
// It fails closed: an item that is gone (NOT_FOUND: shredded since an index
// entry or a lineage edge was read) is skipped; one that is there but cannot
// be read (a corrupt record or metadata, a missing DEK, a failed read) fails
// the plan, naming it (ItemStore::UnreadableItem). Skipped, it would be
// neither destroyed nor listed in the certificate or the plan's `unmatched`,
// and its content (its DEK intact) recoverable. Nothing is destroyed before
// the whole closure is planned (Shredder::ExecutePlanned), so the order then
// ends FAILED with nothing destroyed.
//
// Which lineage parents have children, and which targets are held, it
// learns one of two ways: kScan reads every reverse edge and every hold
// once, before the walk (an order touching millions of items then seeks
// only where an edge exists); kSeek asks once per parent or target it
// meets, one seek each (a bare shred's guard, which touches a few items:
// its cost does not grow with the edges and holds of the whole store).
class ClosurePlanner {
 public:
  enum class Lookup { kScan, kSeek };
  ClosurePlanner(ItemStore* store, Catalog* catalog, const OrderSpec& spec, const ClosureVisit& visit,
                 Lookup lookup = Lookup::kScan)
      : store_(store),
        catalog_(catalog),
        spec_(spec),
        visit_(visit),
        lookup_(lookup),
        // Index entries are unique per selector, so one selector needs no
        // key set; several may overlap.
        overlap_(spec.digests.size() + spec.subject_ids.size() + spec.datasets.size() + spec.labels.size() > 1) {}

  absl::Status Run(std::vector<std::string>* unmatched);

 private:
  absl::Status SelectDigests(std::vector<std::string>* unmatched);
  absl::Status SelectIndexed(std::vector<std::string>* unmatched);
  // Chooses the item `key` if stored; false if it is not (gone meanwhile);
  // an error if it cannot be read.
  absl::StatusOr<bool> Select(const ItemKey& key, const std::string& reason);
  // Chooses every item of one lookup index; returns how many matched. An
  // index may list millions of items: they are read and decrypted in
  // batches, on several threads, and visited in key-tree slot order.
  absl::StatusOr<size_t> Scan(char type, const std::string& value, const std::string& reason);
  // Everything trained on or derived from what is chosen, transitively.
  absl::Status WalkLineage();
  // A selected digest that is not stored (shredded, or gone) may still have
  // children: a bare shred does not follow lineage, and the models trained
  // on or derived from what it destroyed keep their edges to it. They are
  // derived as from a stored item.
  absl::Status QueueGoneParent(const Sha256& hash);
  absl::Status VisitChild(const ParentRef& ref, const Edge& e);
  // Queues the item and its datasets as lineage parents, finds a hold on
  // either, and visits the item in its role.
  absl::Status Consider(const StoredItem& item, PlannedItem& p, bool selected);
  // Queues `ref` as a lineage parent if it has children and is not queued.
  absl::Status Queue(const ParentRef& ref);
  absl::StatusOr<bool> HasChildren(const ParentRef& ref);
  // The hold on `target`, or null.
  absl::StatusOr<const Hold*> HoldOn(const ParentRef& target);

  ItemStore* const store_;
  Catalog* const catalog_;
  const OrderSpec& spec_;
  const ClosureVisit& visit_;
  const Lookup lookup_;
  const bool overlap_;
  // kScan: every hold and every parent with children; kSeek: those asked
  // so far (a parent without children: false).
  std::map<ParentRef, Hold> holds_;
  std::map<ParentRef, std::optional<Hold>> hold_seen_;
  std::set<ParentRef> parents_;  // lineage parents that have children
  std::map<ParentRef, bool> parent_seen_;
  absl::flat_hash_set<ItemKey> seen_;
  std::set<ItemKey> derived_;
  std::set<ParentRef> queued_;
  std::vector<ParentRef> frontier_;
  // Chosen items that have children, and selected digests no longer stored
  // that do (QueueGoneParent).
  std::map<ItemKey, std::pair<ContentDigest, ItemKind>> parent_items_;
};

absl::Status ClosurePlanner::Run(std::vector<std::string>* unmatched) {
  if (auto s = spec_.Validate(); !s.ok()) return s;
  if (lookup_ == Lookup::kScan) {
    auto holds = catalog_->HoldsByTarget();
    if (!holds.ok()) return holds.status();
    holds_ = std::move(*holds);
    parents_ = catalog_->ParentsWithChildren();
  }
  if (auto s = SelectDigests(unmatched); !s.ok()) return s;
  if (auto s = SelectIndexed(unmatched); !s.ok()) return s;
  return WalkLineage();
}

absl::Status ClosurePlanner::SelectDigests(std::vector<std::string>* unmatched) {
  for (const auto& h : spec_.digests) {
    const std::string name = ContentDigest{h, 0}.HashString();
    auto ok = Select(store_->ItemKeyFor(h), "selected by digest");
    if (!ok.ok()) return ok.status();
    if (!*ok) {
      auto by = store_->SuppressedBy(h);
      unmatched->push_back(by ? StrCat("digest ", name, " (already shredded: ", *by, ")")
                              : StrCat("digest ", name, " (not stored)"));
      if (auto q = QueueGoneParent(h); !q.ok()) return q;
    }
  }
  return absl::OkStatus();
}

absl::Status ClosurePlanner::SelectIndexed(std::vector<std::string>* unmatched) {
  for (const auto& s : spec_.subject_ids) {
    auto n = Scan(keyspace::kIndexSubject, s, StrCat("subject ", s));
    if (!n.ok()) return n.status();
    if (*n == 0) unmatched->push_back(StrCat("subject ", s, " (no stored items)"));
  }
  for (const auto& d : spec_.datasets) {
    if (!catalog_->DatasetExists(d)) {
      unmatched->push_back(StrCat("dataset ", d, " (unknown dataset)"));
      continue;
    }
    auto n = Scan(keyspace::kIndexDataset, d, StrCat("dataset ", d));
    if (!n.ok()) return n.status();
    if (auto q = Queue(ParentRef{'d', catalog_->DatasetKey(d)}); !q.ok()) return q;
    if (*n == 0) unmatched->push_back(StrCat("dataset ", d, " (no stored items)"));
  }
  for (const auto& [k, v] : spec_.labels) {
    auto n = Scan(keyspace::kIndexLabel, StrCat(k, "=", v), StrCat("label ", k, "=", v));
    if (!n.ok()) return n.status();
    if (*n == 0) unmatched->push_back(StrCat("label ", k, "=", v, " (no stored items)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ClosurePlanner::Select(const ItemKey& key, const std::string& reason) {
  if (overlap_ && !seen_.insert(key).second) return true;
  auto item = store_->LookupByKey(key);
  if (absl::IsNotFound(item.status())) return false;  // gone meanwhile (a stale index entry)
  if (!item.ok()) return store_->UnreadableItem(key, item.status());
  PlannedItem p = PlannedFor(key, *item, reason);
  if (auto s = Consider(*item, p, true); !s.ok()) return s;
  return true;
}

absl::StatusOr<size_t> ClosurePlanner::Scan(char type, const std::string& value, const std::string& reason) {
  size_t n = 0;
  // The records are read in index (key) order and visited in key-tree slot
  // order, so that their DEKs are read in one sequential pass
  // (items/slot_ordered_lookup.h).
  SlotOrderedLookup lookup(store_);
  auto s = store_->ForEachIndexed(type, value, [&](const ItemKey& k) -> absl::StatusOr<bool> {
    if (overlap_ && !seen_.insert(k).second) {
      ++n;  // matched, and chosen already
      return true;
    }
    if (auto a = lookup.Add(k); !a.ok()) return a;
    return true;
  });
  if (s.ok()) {
    s = lookup.Finish([&](const StoredItem& item) -> absl::Status {
      PlannedItem p = PlannedFor(item.item_key, item, reason);
      if (auto c = Consider(item, p, true); !c.ok()) return c;
      ++n;
      return absl::OkStatus();
    });
  }
  if (!s.ok()) return s;
  return n;
}

absl::Status ClosurePlanner::QueueGoneParent(const Sha256& hash) {
  const ItemKey key = store_->ItemKeyFor(hash);
  const ParentRef ref{'i', key};
  if (queued_.count(ref)) return absl::OkStatus();
  auto has = HasChildren(ref);
  if (!has.ok() || !*has) return has.status();
  // The edges' parent, as a certificate names it (orders.cc, EdgeJson): a
  // model by digest, a photo never. The kind comes from the item's custody
  // record, kept after a shred; without one it is taken for a photo, so
  // that an unknown item's digest stays out of the public certificate.
  std::pair<ContentDigest, ItemKind> parent{ContentDigest{hash, 0}, ItemKind::kPhoto};
  if (auto c = store_->LatestCustody(key); c && c->digest.hash == hash) parent = {c->digest, c->kind};
  parent_items_[key] = parent;
  return Queue(ref);
}

absl::Status ClosurePlanner::Queue(const ParentRef& ref) {
  if (queued_.count(ref)) return absl::OkStatus();
  auto has = HasChildren(ref);
  if (!has.ok()) return has.status();
  if (*has && queued_.insert(ref).second) frontier_.push_back(ref);
  return absl::OkStatus();
}

absl::StatusOr<bool> ClosurePlanner::HasChildren(const ParentRef& ref) {
  if (lookup_ == Lookup::kScan) return parents_.count(ref) > 0;
  if (auto seen = parent_seen_.find(ref); seen != parent_seen_.end()) return seen->second;
  auto has = catalog_->HasChildren(ref);
  if (has.ok()) parent_seen_.emplace(ref, *has);
  return has;
}

absl::StatusOr<const Hold*> ClosurePlanner::HoldOn(const ParentRef& target) {
  if (lookup_ == Lookup::kScan) {
    auto h = holds_.find(target);
    return h == holds_.end() ? nullptr : &h->second;
  }
  auto seen = hold_seen_.find(target);
  if (seen == hold_seen_.end()) {
    auto h = catalog_->HoldOn(target);
    if (!h.ok()) return h.status();
    seen = hold_seen_.emplace(target, std::move(*h)).first;
  }
  return seen->second ? &*seen->second : nullptr;
}

absl::Status ClosurePlanner::WalkLineage() {
  while (!frontier_.empty()) {
    const ParentRef ref = frontier_.back();
    frontier_.pop_back();
    for (const Edge& e : catalog_->ChildrenOf(ref)) {
      if (derived_.count(e.child) || (overlap_ && seen_.count(e.child))) continue;
      if (auto s = VisitChild(ref, e); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ClosurePlanner::VisitChild(const ParentRef& ref, const Edge& e) {
  auto child = store_->LookupByKey(e.child);
  if (absl::IsNotFound(child.status())) return absl::OkStatus();  // the child is gone already
  if (!child.ok()) return store_->UnreadableItem(e.child, child.status());
  if (SelectedBySpec(spec_, *child)) return absl::OkStatus();  // chosen as selected already
  derived_.insert(e.child);
  if (overlap_) seen_.insert(e.child);
  PlannedItem p = PlannedFor(e.child, *child, StrCat(EdgeTypeName(e.type), " "));
  p.edge_type = e.type;
  p.edge_relation = e.relation;
  if (ref.type == 'd') {
    p.edge_dataset = catalog_->DatasetName(ref.key).value_or("?");
    p.reason += StrCat("dataset ", p.edge_dataset);
  } else {
    const auto& [digest, kind] = parent_items_.at(ref.key);
    p.edge_parent = digest;
    p.edge_parent_kind = kind;
    p.reason += StrCat(KindName(kind), " ", digest.HashString());
  }
  return Consider(*child, p, false);
}

absl::Status ClosurePlanner::Consider(const StoredItem& item, PlannedItem& p, bool selected) {
  const ParentRef self{'i', item.item_key};
  if (!queued_.count(self)) {
    auto has = HasChildren(self);
    if (!has.ok()) return has.status();
    if (*has) {
      queued_.insert(self);
      frontier_.push_back(self);
      parent_items_[item.item_key] = {item.info.digest, item.info.metadata.kind};
    }
  }
  auto hold = HoldOn(self);
  if (!hold.ok()) return hold.status();
  for (const auto& d : item.info.metadata.datasets) {
    const ParentRef ref{'d', catalog_->DatasetKey(d)};
    if (auto q = Queue(ref); !q.ok()) return q;
    if (*hold == nullptr) {
      hold = HoldOn(ref);
      if (!hold.ok()) return hold.status();
    }
  }
  ClosureRole role = selected ? ClosureRole::kSelected : ClosureRole::kDerived;
  if (*hold != nullptr) {
    p.hold_id = (*hold)->id;
    p.hold_reason = (*hold)->reason;
    role = ClosureRole::kRetained;
  }
  return visit_(item, p, role);
}

}  // namespace

absl::Status RefuseModelsLeftBehind(ItemStore* store, Catalog* catalog, const std::vector<Sha256>& named) {
  OrderSpec spec;
  spec.id = "bare-shred";
  spec.reference = "models a bare shred would leave";
  spec.digests = named;
  const std::set<Sha256> names(named.begin(), named.end());
  std::optional<PlannedItem> first;
  uint64_t left = 0;
  std::vector<std::string> unmatched;
  // A few named items in a store of any number of edges and holds: one
  // seek per parent and target met (ClosurePlanner::Lookup).
  const ClosureVisit visit = [&](const StoredItem& item, PlannedItem& p, ClosureRole) {
    if (names.count(item.info.digest.hash)) return absl::OkStatus();
    if (!first) first = p;
    ++left;
    return absl::OkStatus();
  };
  auto s = ClosurePlanner(store, catalog, spec, visit, ClosurePlanner::Lookup::kSeek).Run(&unmatched);
  if (!s.ok() || left == 0) return s;
  return absl::FailedPreconditionError(StrCat(
      "model ", first->digest.HashString(), " (", first->reason, ")",
      left > 1 ? StrCat(" and ", left - 1, " more") : std::string(),
      " would be left: trained on or derived from what this shred names, and a bare shred does not follow lineage. "
      "Submit an order naming the items (shredctl order submit --digest) to shred their models with them, name the "
      "models too, or shred with keep_models (shredctl shred --keep-models) to leave them; nothing was shredded"));
}

absl::Status PlanClosure(ItemStore* store, Catalog* catalog, const OrderSpec& spec, std::vector<std::string>* unmatched,
                         const ClosureVisit& visit) {
  return ClosurePlanner(store, catalog, spec, visit).Run(unmatched);
}

}  // namespace shredd
