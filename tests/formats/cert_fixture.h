// Test-only: builds a complete signed deletion certificate the way the
// daemon will (fresh libsodium key pair, random salts), plus its manifest.

#ifndef SHREDD_TESTS_VERIFY_CERT_FIXTURE_H_
#define SHREDD_TESTS_VERIFY_CERT_FIXTURE_H_

#include <sodium.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/keys.h"

namespace shredd::verify::testing_fixture {

inline std::string DigestOf(std::string_view content) { return "sha256:" + HexEncode(Sha256(content)); }

inline ItemEntry RandomItem(std::string kind, std::string_view content) {
  ItemEntry e;
  e.kind = std::move(kind);
  e.digest = DigestOf(content);
  e.size = content.size();
  randombytes_buf(e.salt.data(), e.salt.size());
  return e;
}

// The predicate the daemon emits for `commitment` (see docs/FORMATS.md).
inline nlohmann::ordered_json ExamplePredicate(const std::string& certificate_id, const ItemCommitment& commitment) {
  nlohmann::ordered_json p;
  p["certificateId"] = certificate_id;
  p["request"] = {{"id", "order-2026-0042"}, {"reason", "FTC order: delete photos and derived models"}};
  p["method"] = {
      {"technique", "cryptographic-erase"}, {"standard", "NIST SP 800-88 Rev. 1"}, {"sanitization", "purge"}};
  p["destruction"] = {{"vaultBackend", "file"}, {"rootEpochDestroyed", 41}, {"rootEpochInstalled", 42}};
  p["times"] = {{"requested", "2026-11-26T04:20:00Z"},
                {"destroyed", "2026-11-26T04:27:09.123Z"},
                {"issued", "2026-11-26T04:27:09.200Z"}};
  p["items"] = commitment.ItemsPredicate();
  p["derivedModels"] = nlohmann::ordered_json::array();
  p["retainedUnderHold"] = nlohmann::ordered_json::array();
  p["shredd"] = {{"version", "0.1.0"}};
  return p;
}

struct SignedCertificate {
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
  PublicKey pub{};
  std::string certificate_id = "cert-7f3a";
  std::optional<ItemCommitment> commitment;
  std::string statement;
  std::string envelope;
  std::string manifest;

  SecretKeySpan secret() const { return SecretKeySpan(sk.data(), sk.size()); }
};

// Three photos and two models; `log` (if not null) is its predicate.log.
inline SignedCertificate MakeCertificate(std::string id = "cert-7f3a", const nlohmann::ordered_json& log = nullptr) {
  SignedCertificate c;
  c.certificate_id = std::move(id);
  crypto_sign_keypair(c.pub.data(), c.sk.data());
  std::vector<ItemEntry> items = {RandomItem("photo", "photo 1"), RandomItem("photo", "photo 2"),
                                  RandomItem("photo", "photo 3"), RandomItem("model", "face-age-v1"),
                                  RandomItem("model", "face-age-v1-distilled")};
  absl::StatusOr<ItemCommitment> commitment = ItemCommitment::Create(std::move(items));
  EXPECT_TRUE(commitment.ok()) << commitment.status();
  c.commitment = *commitment;
  nlohmann::ordered_json predicate = ExamplePredicate(c.certificate_id, *commitment);
  if (!log.is_null()) predicate["log"] = log;
  absl::StatusOr<std::string> statement = StatementJson(predicate);
  EXPECT_TRUE(statement.ok()) << statement.status();
  c.statement = *statement;
  c.envelope = SignCertificate(c.statement, c.secret());
  c.manifest = commitment->ManifestJson(c.certificate_id);
  return c;
}

}  // namespace shredd::verify::testing_fixture

#endif  // SHREDD_TESTS_VERIFY_CERT_FIXTURE_H_
