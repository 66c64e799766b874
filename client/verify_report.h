// What `shredctl verify` found, and its three renderings (issue 15 part 2):
// text for a terminal, JSON with every check, and a printable HTML report a
// regulator can file.
//
// The summary is built only from the signed statement of a certificate
// whose signature verified; a failed check never shows unverified content.
#ifndef SHREDD_CLIENT_VERIFY_REPORT_H_
#define SHREDD_CLIENT_VERIFY_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shredd::cli {

struct ReportCheck {
  std::string name;  // "signature", "manifest", "receipt", "log inclusion"
  bool ok = false;
  std::string detail;
};

struct ReportLog {
  std::string origin;
  uint64_t index = 0;
  uint64_t tree_size = 0;
  std::string root_hex;
  bool reformatted = false;  // file differs from the logged canonical bytes
};

struct VerifyReport {
  std::string certificate_path;
  std::string keyid;            // "shredd:<hex>" of the key that verified
  std::string key_fingerprint;  // "SHA256:<base64>" of the raw key, as ssh prints
  std::vector<ReportCheck> checks;
  nlohmann::json predicate;  // null unless the signature verified
  std::optional<ReportLog> log;
  std::string covered_item;  // the receipt's item, when its check passed

  bool valid() const;
  // The first failed check, or nullptr.
  const ReportCheck* failure() const;
};

// One object: "valid", "checks" (each {"check","ok","detail"}), "summary",
// plus the flat fields earlier versions printed (certificateId, items,
// byKind, merkleRoot, keyid, manifest, receipt, item, stage, reason).
nlohmann::json ReportJson(const VerifyReport& report);

// A readable summary for a terminal (what, how, when, basis, log).
std::string ReportText(const VerifyReport& report);

// A complete, self-contained HTML document, one printed page per report,
// with no script and no external resource.
std::string ReportHtml(const std::vector<VerifyReport>& reports);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_VERIFY_REPORT_H_
