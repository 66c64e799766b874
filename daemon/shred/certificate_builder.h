// CertificateBuilder: the one place a deletion certificate is assembled
// (docs/FORMATS.md "Deletion certificate"): a typed predicate, its JSON in
// the documented member order, the in-toto statement over it, and the DSSE
// envelope signed by the vault's key. The offline verifier that checks
// what this builds is formats/certificate.h.
#ifndef SHREDD_DAEMON_SHRED_CERTIFICATE_BUILDER_H_
#define SHREDD_DAEMON_SHRED_CERTIFICATE_BUILDER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

#include "daemon/keys/vault.h"

namespace shredd {

// Where a certificate sits in the transparency log.
struct LogPosition {
  std::string origin;
  uint64_t index = 0;
};

// predicateType https://shredd.dev/attestations/deletion/v1.
struct DeletionPredicate {
  std::string certificate_id;
  std::string request_id;
  std::string reason;
  // An order's public fields (without privateCommitment), and the salted
  // commitment to its private ones (OrderCommitment).
  std::optional<nlohmann::ordered_json> order;
  std::string order_private_commitment;
  std::string vault_backend;
  uint64_t root_epoch_destroyed = 0;
  uint64_t root_epoch_installed = 0;
  std::string requested, destroyed, issued;  // RFC 3339
  uint64_t photos = 0, models = 0;           // items.byKind; items.count is their sum
  std::string merkle_root_hex;               // items.merkleRoot
  nlohmann::ordered_json derived_models = nlohmann::ordered_json::array();
  nlohmann::ordered_json retained = nlohmann::ordered_json::array();  // retainedUnderHold
  std::optional<LogPosition> log;
};

// The predicate as JSON, members in the documented order.
nlohmann::ordered_json DeletionPredicateJson(const DeletionPredicate& p);

// hex(SHA-256(salt || order_private)): what a certificate says of an order's
// private fields (requester, selectors), which only the manifest reveals.
std::string OrderCommitment(std::string_view salt, std::string_view order_private);

class CertificateBuilder {
 public:
  using Signer = std::function<absl::StatusOr<Ed25519Signature>(std::string_view message)>;
  // `sign` signs with the key whose public half is `key` (the vault's).
  CertificateBuilder(DeletionPredicate predicate, const Ed25519PublicKey& key, Signer sign)
      : predicate_(std::move(predicate)), key_(key), sign_(std::move(sign)) {}

  const DeletionPredicate& predicate() const { return predicate_; }
  // The DSSE envelope (JSON text) of the statement over the predicate, at
  // log position `log` if given. Errors: the signer's.
  absl::StatusOr<std::string> Envelope(std::optional<LogPosition> log) const;

 private:
  DeletionPredicate predicate_;
  Ed25519PublicKey key_;
  Signer sign_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_SHRED_CERTIFICATE_BUILDER_H_
