// The "P" record of a destruction (daemon/storage/keyspace.h): what the
// certificate will say, written with the first shred epoch and kept until
// the certificate commits. It is JSON sealed under the system key, an
// on-disk format: the member names below must not change (records written
// by earlier versions must still decode).
//
// Decoding never throws: a record whose members have the wrong JSON types
// is DATA_LOSS naming the member (it authenticated, so only a bug or a
// version skew can produce one), where nlohmann's typed accessors would
// abort the daemon.
#ifndef SHREDD_DAEMON_SHRED_PENDING_RECORD_H_
#define SHREDD_DAEMON_SHRED_PENDING_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace shredd {

struct PendingRecord {
  std::string request_id;  // "requestId"
  // What a request id given by the client was first used for (hex of
  // RequestBinding in shredder_records.h; "requestBinding"); empty for the
  // daemon's own ids and in records of earlier versions.
  std::string request_binding;
  std::string reason;         // "reason"
  std::string requested;      // "requested": RFC 3339
  std::string vault;          // "vault": the vault backend's name
  std::string order_id;       // "orderId": empty for a bare shred
  std::string suppressed_by;  // "suppressedBy": what shredded items say
  uint64_t planned = 0;       // "planned": items staged
  uint64_t destroyed = 0;     // "destroyed": items destroyed so far
  // Set by the first committed epoch ("destroyedEpoch"), and each epoch
  // ("installedEpoch").
  std::optional<uint64_t> destroyed_epoch;
  std::optional<uint64_t> installed_epoch;
  // An order's public fields ("order"), its private fields as JSON text
  // ("orderPrivate") and the salt of their commitment ("orderSalt", hex).
  std::optional<nlohmann::json> order;
  std::string order_private;
  std::string order_salt;
  nlohmann::json derived_models = nlohmann::json::array();  // "derivedModels"
  nlohmann::json retained = nlohmann::json::array();        // "retained"
};

std::string EncodePendingRecord(const PendingRecord& record);
// DATA_LOSS if `text` is not a JSON object or a member has the wrong type.
// Members a record may lack (written by earlier versions) keep the
// defaults above; "suppressedBy" defaults to "certificate <cert_id>".
absl::StatusOr<PendingRecord> DecodePendingRecord(std::string_view text, std::string_view cert_id);

}  // namespace shredd

#endif  // SHREDD_DAEMON_SHRED_PENDING_RECORD_H_
