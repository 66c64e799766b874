// Shredder: executes shred requests as key-tree epochs and issues
// certificates.
//
// Invariant 2 of the design: a certificate is signed only after the old
// roots are destroyed; every committed destruction is certified, if need be
// on the next start.
//
// A destruction runs in three steps, so that an order for millions of items
// works in bounded memory (docs/PERFORMANCE.md):
//  1. Plan: the planner stages every item as two order-scoped records, one
//     by key-tree slot (what to delete) and one by leaf hash (what the
//     manifest lists, already in tree order), unsynced; beyond the first
//     epoch_items items without the WAL, made durable by one memtable flush
//     (synced tables) before step 2. A crash now leaves only staged
//     records, which the next start drops.
//  2. Destroy: the slot records are consumed in chunks of
//     Options::epoch_items, each chunk one key-tree epoch whose batch deletes
//     the chunk's records and (with one range deletion) its slot records and
//     writes "P" (the pending
//     certification: header, first destroyed and last installed epoch); the
//     first chunk's batch also maps the request id ("r"). From the first
//     commit on, the destruction will complete: a crash resumes at the first
//     slot record left.
//  3. Certify: one pass over the leaf records computes the Merkle root
//     (O(log n) memory) and writes the manifest in sealed chunks; the
//     certificate is signed, appended to the log and stored with the
//     manifest header in one synced write that also drops the leaf records.
// Create() finishes steps 2-3 for every "P" left by a crash before the
// daemon serves, and drops staged records of plans that never committed.
//
// A "P" that cannot be finished (the vault does not destroy an old root, or
// certifying fails) stays pending: no certificate exists until the old
// roots are gone. It is finished by a background retry with backoff
// (BackoffRetrier; shredder_pending.cc), by the next shred, or by a
// GetCertificate for it, whichever comes first; each failure is logged and
// counted (shredd_pending_certification_failures_total), and
// shredd_pending_certifications says how many wait. Meanwhile the shred and
// GetCertificate answer UNAVAILABLE naming the certificate.
//
// Records (prefixes: daemon/storage/keyspace.h):
//   "r" request_id             -> certificate id
//   "P" certificate_id         -> pending certification header, sealed under the system key
//   "qs" cert(16) slot(8)      -> staged item (sealed): what its destruction deletes
//   "ql" cert(16) leaf_hash(32)-> staged manifest entry (sealed): kind, size, digest, salt
//   "C" certificate_id         -> DSSE envelope (public)
//   "M" certificate_id         -> private manifest header, sealed under the system key
//   "m" certificate_id seq(4)  -> private manifest items, sealed, in chunks
// With a transparency log, the certificate is the log entry itself (its
// exact envelope bytes), appended in the same write as the "C" record; its
// predicate names the entry's index, and a signed checkpoint covering it
// exists before Shred() returns.
#ifndef SHREDD_DAEMON_SHRED_SHREDDER_H_
#define SHREDD_DAEMON_SHRED_SHREDDER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <nlohmann/json.hpp>

#include "daemon/base/backoff_retry.h"
#include "daemon/items/item_store.h"
#include "daemon/lineage/catalog.h"
#include "daemon/log/transparency_log.h"
#include "daemon/shred/certificate_builder.h"
#include "daemon/shred/pending_record.h"
#include "formats/certificate.h"
#include "formats/compact_range.h"

namespace shredd {

// Request ids the shredder derives itself (keyed, see Shred) start so; only
// callers who may know the content may look certificates up by them.
inline constexpr std::string_view kAutoRequestPrefix = "auto:";
// The request id of an order's destruction: this prefix and the order id.
// Neither prefix is open to request ids that clients give.
inline constexpr std::string_view kOrderRequestPrefix = "order:";

struct ShredSpec {
  std::vector<Sha256> hashes;
  std::string reason;
  std::string request_id;  // empty: derived from the sorted digests
  bool include_receipts = false;
  // Shred only what is named even if models trained on or derived from a
  // named item would be left (see BareShredGuard).
  bool keep_models = false;
  // The sizes the caller declared, by position in `hashes` (may be shorter;
  // 0: none). A stored item of another size is INVALID_ARGUMENT.
  std::vector<uint64_t> sizes = {};
};

// Asked by a bare shred, after its items are found and before anything is
// destroyed, while no upload with lineage can commit: an error refuses the
// shred. The order layer installs one that refuses to leave behind models
// derived from what is named (orders/closure.h, RefuseModelsLeftBehind).
using BareShredGuard = std::function<absl::Status(const std::vector<Sha256>& hashes)>;

// One destruction, as the order machinery hands it to the shredder.
struct ShredJob {
  std::vector<Sha256> hashes;   // the items to destroy (selected + derived)
  std::string request_id;       // idempotency key
  std::string request_binding;  // hex: what a bare shred's request id stands for (RequestBinding); else empty
  std::string reason;
  std::string order_id;                 // empty for a bare shred request
  nlohmann::ordered_json order_public;  // predicate.order (without privateCommitment)
  std::string order_private;            // JSON text: requester, selectors (manifest only)
  nlohmann::ordered_json derived_models = nlohmann::ordered_json::array();
  nlohmann::ordered_json retained = nlohmann::ordered_json::array();
};

// What serving a certificate with its manifest inline holds in memory at
// most, for the daemon's transfer memory budget: the manifest's JSON (~190
// bytes per item) as read, in the reply and serialized; with receipts also
// the parsed manifest and the receipts (~1.6 KB each) as built and in the
// reply. Measured: 16 concurrent fetches of a 20,000-item certificate took
// the daemon from 63 to 193 MiB (~8 MiB each, i.e. ~420 bytes per item).
inline uint64_t CertificateReplyBytes(uint64_t items, bool receipts) {
  constexpr uint64_t kManifestBytes = 3 * 190, kReceiptBytes = 2 * 1600 + 2000;
  return items * (kManifestBytes + (receipts ? kReceiptBytes : 0));
}

// What reading a certificate reads besides its envelope and log proof: an
// auditor's fetch, and a lookup of a certificate id by request id, need
// neither the private manifest nor receipts, and do not read them.
enum class CertificateParts { kEnvelope, kManifest, kManifestAndReceipts };

struct CertificateBundle {
  std::string certificate_id;
  std::string envelope;  // DSSE JSON
  std::string manifest;  // private manifest JSON (empty if manifest_omitted)
  // Set when the manifest has more than Options::inline_manifest_items items: fetch it
  // with StreamManifest (the GetManifest RPC).
  bool manifest_omitted = false;
  uint64_t item_count = 0;
  std::vector<std::string> receipts;
  // c2sp.org/tlog-proof@v1 of the certificate's log entry (the envelope
  // bytes) against a checkpoint that covers it. Empty without a log.
  std::string tlog_proof;
};

struct PublicKeyInfo {
  Ed25519PublicKey raw{};
  std::string spki_pem;
  std::string note_verifier_key;
  std::string key_name;
};

// The destructions left pending by a failure (committed, their old vault
// root not destroyed yet) and the items they staged and have not destroyed:
// those are theirs, which their retries finish and certify. A destruction
// that would stage one is refused (PlanSink::Add); a dry run says which
// items of its plan they hold (OrderBook::Plan).
class PendingReservations {
 public:
  struct Holder {
    std::string certificate_id, order_id;
    std::string Name() const;  // "certificate X" or "certificate X of order "Y""
  };
  // The pending destruction that staged `item`, if one did: one read per
  // pending destruction (none when nothing is pending).
  absl::StatusOr<std::optional<Holder>> HolderOf(const StoredItem& item) const;
  bool empty() const { return holders_.empty(); }

 private:
  friend class Shredder;
  ItemStore* store_ = nullptr;
  std::vector<std::pair<std::string, Holder>> holders_;  // (scope, holder)
};

// Handed to a planner: stages the items one destruction will shred.
class PlanSink {
 public:
  // Stages `item`. Staging the same item twice is harmless (same records).
  // UNAVAILABLE, naming it, if a destruction left pending by a failure
  // staged the item and has not destroyed it yet: it is that
  // destruction's, which its retries finish and certify.
  absl::Status Add(const StoredItem& item);
  uint64_t count() const { return count_; }

 private:
  friend class Shredder;
  PlanSink(ItemStore* store, std::string scope) : store_(store), scope_(std::move(scope)) {}
  // Seals the pending items' records (on several threads) and writes them.
  absl::Status Flush();
  absl::Status RefuseIfReserved(const StoredItem& item);
  ItemStore* store_;
  // Items sealed and written per batch, and how many are written through
  // the WAL before the rest skip it: a plan of up to one epoch (e.g. a
  // one-item shred) never needs the memtable flush. Both follow
  // Options::epoch_items, so tests with small epochs cover the unlogged path.
  uint64_t batch_items_ = 8192;
  uint64_t logged_items_ = 8192;
  std::string scope_;  // 16 raw bytes of the certificate id
  // Destructions pending after a failure: their staged items are theirs.
  PendingReservations reserved_;
  SecretBytes salt_key_;
  std::vector<StoredItem> pending_;
  uint64_t count_ = 0;
  uint64_t written_ = 0;
  bool unlogged_ = false;  // some records skipped the WAL: flush the memtable before committing
};
// Stages the items of `job` into the sink and may fill job.derived_models and
// job.retained. A non-OK status abandons the destruction (nothing changed).
using Planner = std::function<absl::Status(PlanSink& sink, ShredJob& job)>;

struct ShredderOptions {
  uint64_t epoch_items = 25000;            // items per key-tree epoch in a large destruction
  uint64_t manifest_chunk_items = 1000;    // items per sealed manifest record (bounded by [shred] manifest_chunk_items)
  uint64_t inline_manifest_items = 20000;  // larger manifests are served by StreamManifest only
  // Receipts (ShredSpec / GetCertificate include_receipts) are served for
  // certificates of up to this many items. Each is ~1.6 KB, built in memory
  // with the parsed manifest: 200,000 took the daemon to 1 GB.
  uint64_t receipt_items = 10000;
  BackoffRetrier::Options pending_retry;  // retrying pending certifications
};

class Shredder {
 public:
  using Options = ShredderOptions;
  // Finishes any certification left pending by a crash; one the vault
  // cannot finish now is left to the background retry (only DATA_LOSS fails
  // Create). `catalog` may be null (no lineage records to clean up).
  // `log` may be null (no transparency log: certificates carry no position).
  static absl::StatusOr<std::unique_ptr<Shredder>> Create(ItemStore* store, Catalog* catalog, TransparencyLog* log,
                                                          Options options = {});

  // Shreds the items in one epoch and returns the certificate.
  // NOT_FOUND: a digest is not stored. FAILED_PRECONDITION: a digest was
  // already shredded (names the certificate). A repeated request id returns
  // the certificate already issued for it. FAILED_PRECONDITION if an item
  // is under a legal hold, or if the guard refuses (unless
  // spec.keep_models); nothing is shredded then.
  absl::StatusOr<CertificateBundle> Shred(const ShredSpec& spec);
  // Installed once, before the daemon serves.
  void SetBareShredGuard(BareShredGuard guard) { bare_shred_guard_ = std::move(guard); }
  // Executes a job (one epoch, one certificate). A request id seen before
  // returns that certificate. Digests that are not stored are skipped if
  // `job.order_id` is set (an order re-planned after a concurrent change);
  // for a bare request they are NOT_FOUND.
  absl::StatusOr<CertificateBundle> Execute(ShredJob job, const BareShredGuard& guard = nullptr);
  // Plans and executes one destruction: `planner` stages the items (under
  // the shredder's lock, so nothing else shreds meanwhile). A request id
  // seen before returns that certificate without planning. NOT_FOUND
  // "nothing to shred" if the planner staged nothing.
  absl::StatusOr<CertificateBundle> ExecutePlanned(ShredJob job, const Planner& planner);
  // The destructions pending after a failure now, and what they hold. A
  // snapshot: one may be certified (or begin) right after.
  absl::StatusOr<PendingReservations> Reservations();
  // Shreds key-tree slots that hold no item (an order's subject map key) in
  // one epoch, with `batch` (the records they sealed, deleted), under the
  // shredder's lock so no destruction is in flight. No certificate: nothing
  // personal is certified by it. If the epoch committed but the old root
  // could not be destroyed yet (the new tree not yet in the object store,
  // or the vault refusing), the new tree stands, the error is returned, and
  // the pending retrier destroys the old root as soon as it can (it used to
  // stay until the next certificate).
  absl::Status DestroyKeys(std::span<const uint64_t> slots, rocksdb::WriteBatch* batch);
  // Streams the private manifest of a certificate in pieces (concatenated:
  // the manifest JSON). `sink` returns false to stop.
  absl::Status StreamManifest(std::string_view certificate_id, const std::function<bool(std::string_view)>& sink);
  // By certificate id or request id. NOT_FOUND if none. `before_manifest`,
  // if set, is told the certificate's item count before its manifest (and
  // receipts) are read into memory; an error from it is returned as is
  // (the caller leases memory there: CertificateReplyBytes). With
  // kEnvelope, the manifest is not read (manifest and manifest_omitted stay
  // empty, item_count is set).
  using BeforeManifest = std::function<absl::Status(uint64_t items)>;
  absl::StatusOr<CertificateBundle> GetCertificate(std::string_view certificate_id, std::string_view request_id,
                                                   CertificateParts parts, const BeforeManifest& before_manifest = {});
  absl::StatusOr<PublicKeyInfo> PublicKey();
  // Asks a destruction in progress to stop after its current epoch (for a
  // fast, clean SIGTERM): it returns CANCELLED, its "P" record stays, and the
  // next start finishes it before serving. A destruction that has committed
  // no epoch yet is abandoned (its staged records dropped).
  void RequestStop() { stop_.store(true); }

  // How far the destruction with request id `request_id` is (GetOrder's
  // progress while an order runs): items staged and items destroyed so far,
  // as of its last committed epoch. nullopt if no destruction with that id
  // committed an epoch since the daemon started.
  struct Progress {
    uint64_t planned = 0, destroyed = 0;
  };
  std::optional<Progress> ProgressOf(std::string_view request_id) const;

  // How far the destruction with request id `request_id` durably got, from
  // its records (never from the status a call returned: UNAVAILABLE also
  // comes from a busy database or a vault that failed before any key was
  // destroyed): not begun (no epoch committed: nothing destroyed; a plan
  // abandoned before its first epoch too), committed and waiting for its
  // certificate (keys destroyed), or certified. An error if the records
  // cannot be read.
  enum class Phase { kNotBegun, kPending, kCertified };
  absl::StatusOr<Phase> PhaseOf(std::string_view request_id);

 private:
  Shredder(ItemStore* store, Catalog* catalog, TransparencyLog* log, Options options)
      : store_(store), catalog_(catalog), log_(log), options_(options) {}
  absl::StatusOr<std::string> TlogProofFor(std::string_view envelope);
  // FAILED_PRECONDITION naming the hold if `item` is held.
  absl::Status RefuseIfHeld(const StoredItem& item);
  // --- pending certifications (shredder_pending.cc) ---
  // At start-up: drops staged records of plans that never committed, then
  // tries to finish every pending certification. Only DATA_LOSS fails it;
  // other failures are left to the background retry.
  absl::Status CompletePending();
  // Finishes every pending certification (or only `only`), destroying any
  // old root left in the vault. Requires mu_. The first failure, if any.
  absl::Status FinishPendingLocked(std::string_view only = {});
  // The background retry's attempt: takes mu_ and finishes what is pending.
  absl::Status RetryPending();
  bool HasPending(std::string_view certificate_id);
  absl::StatusOr<std::vector<std::string>> PendingIds();
  // Drops the staged records of plans whose "P" record never committed.
  absl::Status DropUncommittedPlans(const std::vector<std::string>& pending_ids);
  // After Destroy or Certify of a fresh destruction failed: if it committed
  // (its "P" record exists), logs and counts the failure, starts the
  // background retry, and returns UNAVAILABLE naming the certificate;
  // otherwise returns `s`.
  absl::Status AfterFailure(const std::string& certificate_id, const absl::Status& s);
  void NotePendingFailure(std::string_view certificate_id, const absl::Status& s);
  // Counts the "P" records into pending_count_ and the metric.
  absl::Status UpdatePendingCount();
  // The certificate of `certificate_id`, finishing it first if pending.
  // Requires mu_.
  absl::StatusOr<CertificateBundle> LoadFinishingLocked(const std::string& certificate_id);
  // A request id used before (its "r" record: `certificate_id`, `binding`)
  // asked for again by `job`: ALREADY_EXISTS unless `job` is the same
  // request. Records without a binding (earlier versions) compare the
  // reason only. Requires mu_.
  absl::Status RefuseAnotherRequestLocked(const ShredJob& job, const std::string& certificate_id,
                                          std::string_view binding);
  // Destroys the staged items chunk by chunk. `fresh`: the pending record of
  // a destruction not committed yet (written with the first chunk); null to
  // resume one from its "P" record.
  absl::Status Destroy(const std::string& certificate_id, const PendingRecord* fresh = nullptr);
  // One chunk of a destruction: its key-tree slots, the deletions and
  // suppressions in `batch` (with the drop records of its blob objects), how
  // many blob objects it drops, and
  // the key after its last staged record (where the next chunk starts).
  struct DestroyChunk {
    // `batch`: one batch for all chunks of a destruction, cleared per chunk
    // (it keeps its capacity): a ~40 MiB batch is neither grown by doubling
    // nor faulted in afresh for every chunk (docs/PERFORMANCE.md).
    explicit DestroyChunk(rocksdb::WriteBatch& reused) : batch(reused) { batch.Clear(); }
    rocksdb::WriteBatch& batch;
    std::vector<uint64_t> slots;
    uint64_t blobs = 0;
    std::string end;
  };
  // Reads up to epoch_items staged records from `resume` (in [begin, end))
  // into `chunk`; no slots: nothing is left.
  absl::Status ReadChunk(const std::string& begin, const std::string& end, const std::string& resume,
                         const std::string& by, DestroyChunk* chunk);
  absl::Status StageChunkOps(std::vector<std::pair<std::string, std::string>>& raw, size_t prefix_size,
                             const std::string& by, bool range_delete, DestroyChunk* chunk);
  absl::StatusOr<CertificateBundle> Certify(const std::string& certificate_id);
  // The sealed pending-certification record ("P"), opened and parsed.
  absl::StatusOr<PendingRecord> LoadPending(const std::string& certificate_id);
  // --- certifying (shredder_certify.cc), the phases of Certify ---
  struct FoldedManifest {
    verify::CompactRange range;  // the items' leaves, in tree order
    uint64_t photos = 0, models = 0;
    uint32_t chunks = 0;  // sealed manifest chunks written
    std::string root_hex;
  };
  struct OpenedEntry {
    verify::ItemEntry entry;
    ItemKind kind = ItemKind::kPhoto;
    verify::Hash leaf{};
  };
  absl::Status DestroyOldRoots(const PendingRecord& pending);
  // Destroys every root older than the current epoch, once the current tree
  // is in the object store (durability.h).
  absl::Status DestroyStaleRoots();
  absl::StatusOr<FoldedManifest> FoldManifest(const std::string& certificate_id, rocksdb::WriteBatch* batch);
  absl::StatusOr<std::vector<OpenedEntry>> OpenEntries(size_t prefix_size,
                                                       const std::vector<std::pair<std::string, std::string>>& raw);
  absl::StatusOr<DeletionPredicate> PredicateFor(const std::string& certificate_id, const PendingRecord& pending,
                                                 const FoldedManifest& folded, absl::Time destroyed);
  // FAILED_PRECONDITION before any key is destroyed if the certificate
  // could not be one log entry.
  absl::Status CheckCertificateFits(const std::string& certificate_id, const PendingRecord& pending);
  absl::StatusOr<CertificateBuilder> BuilderFor(const std::string& certificate_id, const PendingRecord& pending,
                                                const FoldedManifest& folded, absl::Time destroyed);
  absl::StatusOr<CertificateBundle> CommitCertificate(const std::string& certificate_id, const PendingRecord& pending,
                                                      const FoldedManifest& folded, const CertificateBuilder& builder,
                                                      rocksdb::WriteBatch* batch);
  absl::Status DropStaged(std::string_view scope, bool sync);
  absl::StatusOr<CertificateBundle> Load(const std::string& certificate_id, CertificateParts parts,
                                         const BeforeManifest& before_manifest = {});

  ItemStore* const store_;
  Catalog* const catalog_;
  TransparencyLog* const log_;
  const Options options_;
  std::atomic<bool> stop_{false};
  BareShredGuard bare_shred_guard_;
  std::timed_mutex mu_;                     // one shred at a time (timed: see GetCertificate)
  std::atomic<uint64_t> pending_count_{0};  // "P" records, as last counted
  // Old roots may be left (a DestroyKeys epoch, or a start that kept them
  // for the object store): RetryPending destroys them. True at start.
  std::atomic<bool> stale_roots_{true};
  mutable std::mutex progress_mu_;
  std::string progress_request_ ABSL_GUARDED_BY(progress_mu_);  // the last destruction's request id
  Progress progress_ ABSL_GUARDED_BY(progress_mu_);
  // Last member: stopped before what its attempts use.
  std::unique_ptr<BackoffRetrier> retrier_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_SHRED_SHREDDER_H_
