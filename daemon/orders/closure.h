// The closure planner: which items an order destroys. Its own selectors
// (digests, subjects, datasets, labels) choose items; lineage then pulls in
// every model trained on or derived from what is chosen, transitively; a
// legal hold on an item or one of its datasets retains it instead.
#ifndef SHREDD_DAEMON_ORDERS_CLOSURE_H_
#define SHREDD_DAEMON_ORDERS_CLOSURE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

#include "daemon/items/item_store.h"
#include "daemon/lineage/catalog.h"
#include "daemon/orders/orders.h"

namespace shredd {

enum class ClosureRole { kSelected, kDerived, kRetained };
using ClosureVisit = std::function<absl::Status(const StoredItem& item, PlannedItem& planned, ClosureRole role)>;

// Calls `visit` once per item the order selects, pulls in by lineage, or
// retains under a hold, streaming (no per-item state except a key set when
// several selectors may overlap, 44 bytes an item: docs/PERFORMANCE.md).
// Appends what matched nothing to `unmatched`. INVALID_ARGUMENT for a
// malformed spec; an error of `visit` or of a read ends the walk.
absl::Status PlanClosure(ItemStore* store, Catalog* catalog, const OrderSpec& spec, std::vector<std::string>* unmatched,
                         const ClosureVisit& visit);

// The guard of a bare shred (shredder.h, BareShredGuard): FAILED_PRECONDITION
// naming a model if a model trained on or derived from a named item (through
// the item or one of its datasets, transitively, as an order would derive
// it) is not named too (docs/ORDERS.md, "Bare shreds and models").
absl::Status RefuseModelsLeftBehind(ItemStore* store, Catalog* catalog, const std::vector<Sha256>& named);

}  // namespace shredd

#endif  // SHREDD_DAEMON_ORDERS_CLOSURE_H_
