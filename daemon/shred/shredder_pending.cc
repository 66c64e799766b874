// Pending certifications: finishing them at start-up, and again, with
// backoff, whenever finishing one failed (docs/VAULT.md "When a root cannot
// be destroyed"). See the Shredder class comment.
#include <optional>

#include "daemon/base/logging.h"
#include "daemon/base/metrics.h"
#include "daemon/base/strings.h"
#include "daemon/shred/shredder.h"
#include "daemon/storage/space_guard.h"

namespace shredd {

absl::Status Shredder::CompletePending() {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  auto ids = PendingIds();
  if (!ids.ok()) return ids.status();
  if (auto s = DropUncommittedPlans(*ids); !s.ok()) return s;
  std::lock_guard lock(mu_);
  absl::Status s = FinishPendingLocked();
  if (absl::IsDataLoss(s)) return s;  // a damaged record: the operator must look
  retrier_->Kick();  // a failure (logged and counted) is retried while serving; old roots go (stale_roots_)
  return absl::OkStatus();
}

absl::Status Shredder::FinishPendingLocked(std::string_view only) {
  auto ids = PendingIds();
  if (!ids.ok()) return ids.status();
  std::optional<DestructionGate::Destruction> no_commits;  // as in ExecutePlanned
  if (!ids->empty()) no_commits.emplace(&store_->destruction_gate());
  absl::Status first;
  for (const std::string& id : *ids) {
    if (!only.empty() && id != only) continue;
    absl::Status s = Destroy(id);
    if (!s.ok()) {
      s = absl::Status(s.code(), StrCat("finishing the destruction: ", s.message()));
    } else if (auto c = Certify(id); !c.ok()) {
      s = absl::Status(c.status().code(), StrCat("certifying: ", c.status().message()));
    } else {
      LogInfo("certificate issued", {{"certificate", id}, {"items", c->item_count}, {"was_pending", true}});
    }
    if (!s.ok()) {
      NotePendingFailure(id, s);
      if (first.ok()) first = s;
    }
  }
  if (auto s = UpdatePendingCount(); first.ok() && !s.ok()) return s;
  return first;
}

absl::Status Shredder::UpdatePendingCount() {
  auto ids = PendingIds();
  if (!ids.ok()) return ids.status();
  pending_count_.store(ids->size());
  store_->destruction_gate().SetPending(ids->empty() ? "" : ids->front());
  Metrics().pending_certifications.Set(static_cast<int64_t>(ids->size()));
  return absl::OkStatus();
}

absl::Status Shredder::RetryPending() {
  ErasureWrites erasure;                      // deletion keeps working on a nearly full disk (space_guard.h)
  if (stop_.load()) return absl::OkStatus();  // stopping: the next start finishes it
  std::lock_guard lock(mu_);
  absl::Status s = FinishPendingLocked();
  if (stale_roots_.load()) {
    absl::Status r = DestroyStaleRoots();
    if (r.ok()) stale_roots_.store(false);
    if (s.ok()) s = r;
  }
  return s;
}

void Shredder::NotePendingFailure(std::string_view cert_id, const absl::Status& s) {
  Metrics().pending_certification_failures.Add();
  LogError("certification pending: its destruction committed but is not finished; retrying",
           {{"certificate", cert_id}, {"reason", StdView(s.message())}});
}

absl::Status Shredder::AfterFailure(const std::string& cert_id, const absl::Status& s) {
  if (absl::IsCancelled(s) || !HasPending(cert_id)) return s;  // nothing committed, or stopping
  NotePendingFailure(cert_id, s);
  // Before the gate opens (the caller still holds it): no commit and no
  // hold may slip in before the retrier finishes what was planned.
  store_->destruction_gate().SetPending(cert_id);
  (void)UpdatePendingCount();
  retrier_->Kick();
  return absl::UnavailableError(StrCat("certificate ", cert_id, " is not issued yet: the destruction committed, but ",
                                       s.message(),
                                       ". The daemon retries by itself; ask again with the same request "
                                       "or GetCertificate"));
}

absl::StatusOr<CertificateBundle> Shredder::LoadFinishingLocked(const std::string& cert_id) {
  if (HasPending(cert_id)) (void)FinishPendingLocked(cert_id);
  return Load(cert_id, CertificateParts::kManifest);
}

}  // namespace shredd
