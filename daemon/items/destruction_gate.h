// DestructionGate: keeps the commits that could slip past a destruction out
// of it.
//
// A destruction decides what it destroys when it plans (the items, the index
// entries of their metadata, the models derived from them through lineage)
// and destroys it epoch by epoch afterwards. Two kinds of commit made in
// between would escape it:
//   - a merge into a stored item (a tag, a re-upload with more metadata, a
//     dataset registration): the item is destroyed, but the index entries
//     the merge added were not planned and outlive it;
//   - a commit that names lineage parents (a model trained on an item or a
//     dataset being destroyed): the model was not derived when the closure
//     was planned, and stays readable, uncertified, with a shredded parent.
// So a destruction holds the gate from its plan to its certificate, and such
// commits pass it first (before their stripe lock: lock order). They wait
// for a destruction in progress; a destruction waits for the commits inside
// and, once it waits, lets no new one in (so a stream of tags cannot starve
// it). New items without lineage never pass it: bulk ingest goes on during
// an order.
//
// A destruction that fails after its first epoch committed (a vault or
// object store failure) stays pending, staged, and is finished later by
// the shredder's retrier with what it planned. Until then the gate is not
// open but refuses: commits are turned away (UNAVAILABLE) instead of let
// in, and so are legal holds (catalog.h), which could otherwise be placed
// on an item the pending destruction goes on to destroy.
// docs/ORDERS.md "Writes during a destruction".
#ifndef SHREDD_DAEMON_ITEMS_DESTRUCTION_GATE_H_
#define SHREDD_DAEMON_ITEMS_DESTRUCTION_GATE_H_

#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace shredd {

class DestructionGate {
 public:
  // How long a commit waits for a destruction before it gives up
  // (ABORTED, nothing stored): a 3,000,000-item order takes ~2 minutes here.
  static constexpr absl::Duration kCommitWait = absl::Minutes(10);

  // A commit inside the gate (movable; empty when default-constructed).
  class Commit {
   public:
    Commit() = default;
    Commit(Commit&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)) {}
    Commit& operator=(Commit&& o) noexcept;
    Commit(const Commit&) = delete;
    Commit& operator=(const Commit&) = delete;
    ~Commit();
    bool held() const { return gate_ != nullptr; }

   private:
    friend class DestructionGate;
    explicit Commit(DestructionGate* gate) : gate_(gate) {}
    DestructionGate* gate_ = nullptr;
  };

  // A destruction holding the gate (not movable: a scope).
  class Destruction {
   public:
    explicit Destruction(DestructionGate* gate);
    ~Destruction();
    Destruction(const Destruction&) = delete;
    Destruction& operator=(const Destruction&) = delete;

   private:
    DestructionGate* const gate_;
  };

  // Enters as a commit, waiting up to `wait` for a destruction in progress
  // (or waiting) to end; an empty Commit if it did not. Does not look at
  // PendingCertificate(): the caller refuses (ItemStore::PassDestructionGate).
  Commit EnterCommit(absl::Duration wait = kCommitWait);

  // The certificate of a destruction left pending by a failure ("" when
  // none is). Set by the shredder while it still holds the gate, so a
  // commit that waited for that destruction sees it once it enters.
  void SetPending(std::string certificate_id);
  std::string PendingCertificate();

 private:
  bool Open() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !destroying_ && destructions_waiting_ == 0; }
  bool Drained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return commits_ == 0 && !destroying_; }

  absl::Mutex mu_;
  int commits_ ABSL_GUARDED_BY(mu_) = 0;
  int destructions_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  bool destroying_ ABSL_GUARDED_BY(mu_) = false;
  std::string pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_ITEMS_DESTRUCTION_GATE_H_
