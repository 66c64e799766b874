// Receipt bundles (docs/FORMATS.md "Receipt bundle"): the receipts of
// several items of one certificate in one file, for one data subject
// (`order receipts --by-subject`) or for the items asked for (`receipt
// --item A --item B`). The one home of the format on the client side.
#ifndef SHREDD_CLIENT_RECEIPT_BUNDLE_H_
#define SHREDD_CLIENT_RECEIPT_BUNDLE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace shredd::cli {

inline constexpr std::string_view kReceiptBundleType = "shredd-receipt-bundle-v1";

struct ReceiptBundle {
  std::string certificate_id;
  std::string order_id;               // optional
  std::string subject;                // optional: the data subject it is for
  std::string certificate;            // optional: the DSSE envelope, as the daemon issued it
  std::vector<std::string> receipts;  // receipt JSON texts (shredd-receipt-v1)
};

// Pretty-printed JSON (the receipts sorted by item digest).
std::string ReceiptBundleJson(const ReceiptBundle& bundle);

// The receipt of `digest` ("sha256:<hex>") in `text`, read strictly
// (formats/strict_json.h) once: the document itself when it is not a
// bundle (VerifyReceiptJson judges it), or the bundle's receipt for the
// digest, as read (not re-serialised: a bundle's receipt is judged as the
// same receipt in a file of its own). INVALID_ARGUMENT if the text does not
// parse (the message VerifyReceipt would give) or is a bundle without a
// "receipts" array or with the digest twice; NOT_FOUND if the bundle has no
// receipt for it.
absl::StatusOr<nlohmann::json> ReceiptFor(std::string_view text, std::string_view digest);

// A file name for a subject's bundle: the subject id with every byte
// outside [A-Za-z0-9._@+-] (and a leading '.') percent-encoded, so that
// distinct subjects get distinct names; ids too long for a file name are
// cut and get 16 hex of their SHA-256. Ends in ".receipts.json".
std::string SubjectFileName(std::string_view subject);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_RECEIPT_BUNDLE_H_
