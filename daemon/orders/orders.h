// Deletion orders: plan the closure (selected items plus every model derived
// from them, minus legal holds), then execute it as one shred with one
// certificate, in the background, surviving restarts.
//
// Records (prefix in daemon/storage/keyspace.h): "O" order_id -> order record, sealed under the system key (it
// holds selectors such as subject ids). State machine:
//   PENDING -> RUNNING -> DONE (certified) | EMPTY (matched nothing) | FAILED
// PENDING and RUNNING orders are resumed on start-up; the shred runs with
// request id "order:<id>", so a destruction that committed before a crash is
// certified, never repeated.
#ifndef SHREDD_DAEMON_ORDERS_ORDERS_H_
#define SHREDD_DAEMON_ORDERS_ORDERS_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "daemon/items/item_store.h"
#include "daemon/lineage/catalog.h"
#include "daemon/orders/subject_map.h"
#include "daemon/shred/shredder.h"

namespace shredd {

enum class LegalBasis { kFtcOrder = 1, kGdprArt17 = 2, kCcpa = 3, kContract = 4, kOther = 5 };
std::string_view LegalBasisName(LegalBasis b);  // "ftc-order", "gdpr-art17", ...
absl::StatusOr<LegalBasis> ParseLegalBasis(std::string_view name);

struct OrderSpec {
  std::string id;
  LegalBasis basis = LegalBasis::kOther;
  std::string reference;
  std::string requester;
  std::string received;  // RFC 3339; filled with the submission time if empty
  std::string due;
  std::vector<Sha256> digests;
  std::vector<std::string> subject_ids;
  std::vector<std::string> datasets;
  std::map<std::string, std::string> labels;
  // Keep the order's subject map for per-subject receipts (subject_map.h).
  bool keep_subject_map = false;
  // The reviewed plan's digest (plan_digest.h); empty: none. Not part of
  // the order's identity: CanonicalJson leaves it out.
  std::string expected_plan_digest;

  absl::Status Validate() const;
  // Canonical form for idempotency checks (selectors sorted, received excluded
  // if it was defaulted).
  std::string CanonicalJson() const;
};

struct PlannedItem {
  ItemKey key{};
  ContentDigest digest;
  ItemKind kind = ItemKind::kPhoto;
  std::string reason;
  // For derived models: the edge that pulled it in.
  std::optional<EdgeType> edge_type;
  std::string edge_relation;
  std::optional<ContentDigest> edge_parent;
  ItemKind edge_parent_kind = ItemKind::kPhoto;
  std::string edge_dataset;
  // Set if retained under a legal hold.
  std::string hold_id, hold_reason;
  // For the reviewer: the item's original file name and subjects.
  std::string name;
  std::vector<std::string> subject_ids;
};

// A dry run's result. The lists hold at most kPlanListLimit items each (the
// smallest item keys, sorted), so a plan over millions of items fits in a
// reply and in memory; the counts are exact.
inline constexpr size_t kPlanListLimit = 10000;
// Items of a plan that a destruction left pending after a failure staged
// (PendingReservations): the order cannot run until it is certified.
struct PendingHeld {
  PendingReservations::Holder holder;
  uint64_t count = 0;
  std::vector<ContentDigest> digests;  // the first list_limit met
};
struct OrderPlan {
  std::vector<PlannedItem> selected, derived, retained;
  std::vector<std::string> unmatched;
  std::vector<PendingHeld> held_by_pending;  // one per pending destruction holding some
  uint64_t selected_count = 0, derived_count = 0, retained_count = 0;
  uint64_t selected_models = 0;  // of selected_count
  std::string digest;            // plan_digest.h, over the whole closure
  bool truncated() const {
    return selected.size() < selected_count || derived.size() < derived_count || retained.size() < retained_count;
  }
  bool empty() const { return selected_count == 0 && derived_count == 0; }
};

enum class OrderState { kPending = 1, kRunning = 2, kDone = 3, kEmpty = 4, kFailed = 5 };
std::string_view OrderStateName(OrderState s);

struct OrderStatus {
  OrderSpec spec;
  OrderState state = OrderState::kPending;
  std::string message;
  int64_t items_planned = 0;
  int64_t items_shredded = 0;
  std::string certificate_id;
  // Of a PENDING order, kept in memory only (OrderRetry): its attempts that
  // failed in a row before destroying anything with a passing error, and
  // when the next one starts (InfinitePast: none is waiting).
  int failed_attempts = 0;
  absl::Time next_attempt = absl::InfinitePast();
};

// How an order whose attempt failed before destroying anything with a
// passing error (UNAVAILABLE: the vault down, a pending destruction holding
// its items) is tried again: after `first`, then after twice the previous
// pause, at most `cap`. An attempt that gets past the failure (the order
// ends, or its keys are destroyed) starts the count again; so does a
// restart (docs/ORDERS.md).
struct OrderRetry {
  absl::Duration first = absl::Seconds(2);
  absl::Duration cap = absl::Seconds(60);
  // The pause after `failed` attempts failed in a row (failed >= 1).
  absl::Duration After(int failed) const;
};

class OrderBook {
 public:
  // Starts the background worker and resumes unfinished orders.
  static absl::StatusOr<std::unique_ptr<OrderBook>> Create(ItemStore* store, Catalog* catalog, Shredder* shredder,
                                                           OrderRetry retry = {});
  ~OrderBook();  // stops the worker after the order in progress
  OrderBook(const OrderBook&) = delete;
  OrderBook& operator=(const OrderBook&) = delete;

  // Dry run. INVALID_ARGUMENT for a malformed spec. Lists at most
  // `list_limit` items per category (see OrderPlan).
  absl::StatusOr<OrderPlan> Plan(const OrderSpec& spec, size_t list_limit = kPlanListLimit);
  // Accepts and queues an order. Same id and spec: the existing status.
  // Same id, another spec: ALREADY_EXISTS naming the original.
  // Acknowledged (either way) only once the order is in the object store in
  // "sync" state replication (docs/RECOVERY.md): an order acknowledged and
  // then lost with the machine would be silently gone.
  absl::StatusOr<OrderStatus> Submit(OrderSpec spec);
  // NOT_FOUND if unknown. With `wait_until`, blocks until the order finishes
  // or the time passes.
  absl::StatusOr<OrderStatus> Get(std::string_view id, std::optional<absl::Time> wait_until);
  // The subject map of a DONE order (subject_map.h), one subject at a time.
  // FAILED_PRECONDITION if the order is not DONE; NOT_FOUND if it kept no
  // map or the map was released.
  absl::Status ForEachSubject(
      std::string_view id,
      const std::function<bool(const std::string& subject, const std::vector<SubjectMapItem>& items)>& visit);
  // Destroys the subject map of a finished order (its key shredded in an
  // epoch); returns how many subjects it held. Released already (a retry
  // after an error, or twice): the same count, nothing done. NOT_FOUND if
  // it kept none.
  absl::StatusOr<int64_t> ReleaseSubjectMap(std::string_view id);
  // Every order in one of `states` (all if empty), by received time then id
  // (order_list.cc).
  absl::StatusOr<std::vector<OrderStatus>> List(const std::vector<OrderState>& states);
  // Orders known to the daemon, by state (for the shredd_orders gauge).
  std::map<OrderState, int64_t> CountByState();

 private:
  // Plan's note of an item of the closure a pending destruction holds.
  static absl::Status NoteHeldByPending(const PendingReservations& reserved, const StoredItem& item, size_t list_limit,
                                        OrderPlan& plan);
  // Submit up to its local synced write.
  absl::StatusOr<OrderStatus> Accept(OrderSpec spec);
  OrderBook(ItemStore* store, Catalog* catalog, Shredder* shredder, OrderRetry retry)
      : store_(store), catalog_(catalog), shredder_(shredder), retry_(retry) {}
  void Worker();
  // The next order to run, once one is queued or a deferred one is due;
  // empty when stopping.
  std::string NextOrder();
  // What the worker does with an order after running it: nothing (it
  // ended, or stays for the next start), ask again after kPendingRecheck
  // (its keys are destroyed but its certificate is pending, a vault failure
  // the shredder retries; RUNNING), or try it again when its backoff ends
  // (it failed before destroying anything with a passing error; PENDING,
  // deferred by DeferFailedAttempt).
  enum class Next { kNone, kRecheck, kRetry };
  Next Run(const std::string& id);
  struct RunCounts {
    int64_t planned = 0, retained = 0;
    bool stopped = false;  // the daemon is stopping: the order stays RUNNING
  };
  // Run's planning phase: streams the order's closure into the shredder's
  // `sink`, adding derived models and retained items to `job`.
  absl::Status PlanInto(const OrderSpec& spec, PlanSink& sink, ShredJob& job, RunCounts* counts,
                        SubjectMapWriter* subjects);
  // Run's last phase: the order's state from the shred's outcome.
  Next Finish(OrderStatus& st, const absl::StatusOr<CertificateBundle>& cert, const RunCounts& counts);
  // An order whose destruction committed: DONE with its certificate, or
  // RUNNING (kRecheck) while the certificate is pending.
  Next Certify(OrderStatus& st);
  // A destruction that failed: the state from how far it durably got
  // (Shredder::PhaseOf). Keys destroyed: RUNNING, its certificate pending;
  // nothing destroyed and the failure passing (UNAVAILABLE): PENDING, tried
  // again after its backoff (kRetry); otherwise FAILED.
  Next AfterFailure(OrderStatus& st, const absl::Status& failure);
  // The destruction's records cannot be read: RUNNING, asked again.
  Next Unknown(OrderStatus& st, const absl::Status& why);
  // Counts a failed attempt of order `id` and defers its next one by
  // retry_.After(count); when that is.
  absl::Time DeferFailedAttempt(const std::string& id);
  // The in-memory retry state of `st`'s order (OrderStatus). Requires mu_.
  void AddRetryLocked(OrderStatus& st);
  // The subject map an order that failed had begun (subject ids and the
  // digests of their items): deleted, and its key destroyed. It names
  // items the order did not destroy, no one may fetch it (the order is not
  // DONE), and a resubmission keeps its own.
  void DropSubjectMapOfFailed(const std::string& id);
  // Sets and saves the order's state, counts it, logs the change.
  void Update(OrderStatus& st, OrderState state, std::string message);
  static constexpr std::chrono::seconds kPendingRecheck{2};
  // A running order's progress, which its record only gets when it ends:
  // items planned so far (every 8192) and, once epochs commit, items
  // planned and destroyed (Shredder::ProgressOf). Requires mu_.
  void AddLiveProgressLocked(OrderStatus& st);
  absl::StatusOr<OrderStatus> Load(std::string_view id);
  absl::Status Save(const OrderStatus& status);

  ItemStore* const store_;
  Catalog* const catalog_;
  Shredder* const shredder_;
  const OrderRetry retry_;
  std::mutex mu_;
  std::condition_variable changed_;  // an order changed state or was queued
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  // Orders asked again later (Next), by id: when they are queued again.
  std::map<std::string, absl::Time> deferred_ ABSL_GUARDED_BY(mu_);
  // Attempts of an order that failed in a row before destroying anything.
  std::map<std::string, int> failed_attempts_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<OrderState, int64_t> state_counts_ ABSL_GUARDED_BY(mu_);
  std::mutex release_mu_;                                          // one subject-map release at a time
  std::pair<std::string, int64_t> planning_ ABSL_GUARDED_BY(mu_);  // order id, items planned so far
  std::thread worker_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ORDERS_ORDERS_H_
