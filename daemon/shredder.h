// Shredder: executes shred requests as key-tree epochs and issues
// certificates.
//
// Invariant 2 of the design: a certificate is signed only after the old root
// is destroyed; every committed destruction is certified, if need be on the
// next start. The epoch batch carries a pending-certification record ("P")
// and the request-id mapping ("r"), so a crash after commit leaves exactly
// what is needed to finish: Create() completes every pending certification
// before the daemon serves.
//
// Records:
//   "r" request_id           -> certificate id
//   "P" certificate_id       -> pending certification, sealed under the system key
//   "C" certificate_id       -> DSSE envelope (public)
//   "M" certificate_id       -> private manifest, sealed under the system key
// With a transparency log, the certificate is the log entry itself (its
// exact envelope bytes), appended in the same write as the "C" record; its
// predicate names the entry's index, and a signed checkpoint covering it
// exists before Shred() returns.
#ifndef SHREDD_DAEMON_SHREDDER_H_
#define SHREDD_DAEMON_SHREDDER_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

#include "daemon/catalog.h"
#include "daemon/item_store.h"
#include "daemon/transparency_log.h"

namespace shredd {

struct ShredSpec {
  std::vector<Sha256> hashes;
  std::string reason;
  std::string request_id;  // empty: derived from the sorted digests
  bool include_receipts = false;
};

// One destruction, as the order machinery hands it to the shredder.
struct ShredJob {
  std::vector<Sha256> hashes;  // the items to destroy (selected + derived)
  std::string request_id;      // idempotency key
  std::string reason;
  std::string order_id;                // empty for a bare shred request
  nlohmann::ordered_json order_public; // predicate.order (without privateCommitment)
  std::string order_private;           // JSON text: requester, selectors (manifest only)
  nlohmann::ordered_json derived_models = nlohmann::ordered_json::array();
  nlohmann::ordered_json retained = nlohmann::ordered_json::array();
};

struct CertificateBundle {
  std::string certificate_id;
  std::string envelope;  // DSSE JSON
  std::string manifest;  // private manifest JSON
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

class Shredder {
 public:
  // Finishes any certification left pending by a crash. `catalog` may be
  // null (no lineage records to clean up).
  // `log` may be null (no transparency log: certificates carry no position).
  static absl::StatusOr<std::unique_ptr<Shredder>> Create(ItemStore* store, Catalog* catalog,
                                                          TransparencyLog* log);

  // Shreds the items in one epoch and returns the certificate.
  // NOT_FOUND: a digest is not stored. FAILED_PRECONDITION: a digest was
  // already shredded (names the certificate). A repeated request id returns
  // the certificate already issued for it.
  absl::StatusOr<CertificateBundle> Shred(const ShredSpec& spec);
  // Executes a job (one epoch, one certificate). A request id seen before
  // returns that certificate. Digests that are not stored are skipped if
  // `job.order_id` is set (an order re-planned after a concurrent change);
  // for a bare request they are NOT_FOUND.
  absl::StatusOr<CertificateBundle> Execute(ShredJob job);
  // By certificate id or request id. NOT_FOUND if none.
  absl::StatusOr<CertificateBundle> GetCertificate(std::string_view certificate_id,
                                                   std::string_view request_id, bool include_receipts);
  absl::StatusOr<PublicKeyInfo> PublicKey();

 private:
  Shredder(ItemStore* store, Catalog* catalog, TransparencyLog* log)
      : store_(store), catalog_(catalog), log_(log) {}
  absl::StatusOr<std::string> TlogProofFor(std::string_view envelope);
  absl::Status CompletePending();
  absl::StatusOr<CertificateBundle> Certify(const std::string& certificate_id);
  absl::StatusOr<CertificateBundle> Load(const std::string& certificate_id, bool include_receipts);

  ItemStore* const store_;
  Catalog* const catalog_;
  TransparencyLog* const log_;
  std::mutex mu_;  // one shred at a time
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_SHREDDER_H_
