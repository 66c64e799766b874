// Fuzz target: the pending-certification record codec
// (shredd::DecodePendingRecord, daemon/shred/pending_record.h), read at
// start-up to finish a destruction whose certificate is pending. A record
// altered on disk must give DATA_LOSS, never an exception or a crash.
// Properties: no crash, no exception; an accepted record re-encodes to a
// record that decodes to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/shred/pending_record.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = shredd::fuzz::AsView(data, size);
  auto record = shredd::DecodePendingRecord(input, "cert-fuzz");
  if (!record.ok()) return 0;
  auto again = shredd::DecodePendingRecord(shredd::EncodePendingRecord(*record), "cert-fuzz");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->request_id == record->request_id && again->reason == record->reason &&
             again->planned == record->planned && again->destroyed == record->destroyed &&
             again->destroyed_epoch == record->destroyed_epoch && again->installed_epoch == record->installed_epoch &&
             again->order_id == record->order_id && again->order == record->order &&
             again->derived_models == record->derived_models && again->retained == record->retained);
  return 0;
}
