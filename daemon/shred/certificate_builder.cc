#include "daemon/shred/certificate_builder.h"

#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "formats/certificate.h"
#include "formats/dsse.h"
#include "formats/keys.h"

namespace shredd {

using ordered_json = nlohmann::ordered_json;

ordered_json DeletionPredicateJson(const DeletionPredicate& p) {
  ordered_json pred;
  pred["certificateId"] = p.certificate_id;
  pred["request"] = {{"id", p.request_id}, {"reason", p.reason}};
  if (p.order) {
    pred["order"] = *p.order;
    pred["order"]["privateCommitment"] = p.order_private_commitment;
  }
  pred["method"] = {
      {"technique", "cryptographic-erase"}, {"standard", "NIST SP 800-88 Rev. 1"}, {"sanitization", "purge"}};
  pred["destruction"] = {{"vaultBackend", p.vault_backend},
                         {"rootEpochDestroyed", p.root_epoch_destroyed},
                         {"rootEpochInstalled", p.root_epoch_installed}};
  pred["times"] = {{"requested", p.requested}, {"destroyed", p.destroyed}, {"issued", p.issued}};
  pred["items"] = {{"count", p.photos + p.models},
                   {"byKind", {{verify::kKindPhoto, p.photos}, {verify::kKindModel, p.models}}},
                   {"merkleRoot", p.merkle_root_hex},
                   {"leafFormat", verify::kLeafFormat}};
  pred["derivedModels"] = p.derived_models;
  pred["retainedUnderHold"] = p.retained;
  pred["shredd"] = {{"version", SHREDD_VERSION}};
  if (p.log) pred["log"] = {{"origin", p.log->origin}, {"index", p.log->index}};
  return pred;
}

std::string OrderCommitment(std::string_view salt, std::string_view order_private) {
  return HexEncode(Sha256Hasher::Of(StrCat(salt, order_private)));
}

absl::StatusOr<std::string> CertificateBuilder::Envelope(std::optional<LogPosition> log) const {
  DeletionPredicate p = predicate_;
  p.log = std::move(log);
  auto statement = verify::StatementJson(DeletionPredicateJson(p));
  if (!statement.ok()) return statement.status();
  // The one envelope signer of formats/, with the vault's signature.
  return verify::SignCertificate(*statement, key_, [this](std::string_view pae) -> absl::StatusOr<std::string> {
    auto sig = sign_(pae);
    if (!sig.ok()) return sig.status();
    return std::string(reinterpret_cast<const char*>(sig->data()), sig->size());
  });
}

}  // namespace shredd
