// CertificateBuilder and the "P" record codec (daemon/shred/): what the
// builder signs is what the offline verifier (formats/certificate.h)
// accepts, field for field; a pending record decodes from what earlier
// versions wrote and never throws on a malformed one.
#include "daemon/shred/certificate_builder.h"

#include <string>

#include <gtest/gtest.h>

#include "daemon/shred/pending_record.h"
#include "formats/certificate.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenFileVaultOrDie;
using testing::TempDir;

DeletionPredicate Sample() {
  DeletionPredicate p;
  p.certificate_id = "0123456789abcdef0123456789abcdef";
  p.request_id = "req-1";
  p.reason = "GDPR Art. 17 request";
  p.order = nlohmann::ordered_json{{"id", "o-1"}, {"legalBasis", "gdpr-art17"}};
  p.order_private_commitment = OrderCommitment("salt", "{\"requester\":\"dpo\"}");
  p.vault_backend = "file";
  p.root_epoch_destroyed = 4;
  p.root_epoch_installed = 5;
  p.requested = "2026-12-06T05:00:00.000Z";
  p.destroyed = "2026-12-06T05:00:01.000Z";
  p.issued = "2026-12-06T05:00:02.000Z";
  p.photos = 2;
  p.models = 1;
  p.merkle_root_hex = std::string(64, 'a');
  return p;
}

TEST(CertificateBuilderTest, PredicateMembersComeInTheDocumentedOrder) {
  auto j = DeletionPredicateJson(Sample());
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"certificateId", "request", "order", "method", "destruction", "times",
                                            "items", "derivedModels", "retainedUnderHold", "shredd"}));
  EXPECT_EQ(j["items"]["count"], 3);
  EXPECT_EQ(j["order"]["privateCommitment"], OrderCommitment("salt", "{\"requester\":\"dpo\"}"));
  // hex(SHA-256("abc")): the commitment is the plain hash of salt || private.
  EXPECT_EQ(OrderCommitment("a", "bc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CertificateBuilderTest, WhatItSignsTheVerifierAccepts) {
  TempDir dir;
  auto vault = OpenFileVaultOrDie(dir / "vault");
  auto pub = vault->SigningPublicKey();
  ASSERT_TRUE(pub.ok()) << pub.status();
  CertificateBuilder builder(Sample(), *pub, [&](std::string_view m) { return vault->Sign(m); });
  auto envelope = builder.Envelope(LogPosition{"log.example", 41});
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  auto verified = verify::VerifyCertificate(*envelope, *pub);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->certificate_id, Sample().certificate_id);
  EXPECT_EQ(verified->item_count, 3u);
  EXPECT_EQ(verified->count_by_kind.at("model"), 1u);
  EXPECT_EQ(verified->predicate["log"]["index"], 41);
  EXPECT_EQ(verified->predicate["request"]["reason"], "GDPR Art. 17 request");
  // Without a log position there is no "log" member.
  auto unlogged = builder.Envelope(std::nullopt);
  ASSERT_TRUE(unlogged.ok());
  auto v2 = verify::VerifyCertificate(*unlogged, *pub);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_FALSE(v2->predicate.contains("log"));
  // A signer that fails makes no envelope.
  CertificateBuilder failing(Sample(), *pub, [](std::string_view) -> absl::StatusOr<Ed25519Signature> {
    return absl::UnavailableError("vault down");
  });
  EXPECT_EQ(failing.Envelope(std::nullopt).status().code(), absl::StatusCode::kUnavailable);
}

TEST(PendingRecordTest, RoundTripsAndDecodesOlderRecords) {
  PendingRecord r;
  r.request_id = "req";
  r.request_binding = std::string(64, 'b');
  r.reason = "why";
  r.requested = "2026-12-06T05:00:00.000Z";
  r.vault = "pkcs11";
  r.order_id = "o-1";
  r.suppressed_by = "order o-1, certificate c";
  r.planned = 7;
  r.destroyed = 3;
  r.destroyed_epoch = 9;
  r.installed_epoch = 10;
  r.order = nlohmann::json{{"id", "o-1"}};
  r.order_private = "{}";
  r.order_salt = std::string(64, '0');
  r.derived_models = nlohmann::json::array({{{"digest", "x"}}});
  auto back = DecodePendingRecord(EncodePendingRecord(r), "c");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->request_id, "req");
  EXPECT_EQ(back->request_binding, r.request_binding);
  EXPECT_EQ(back->suppressed_by, "order o-1, certificate c");
  EXPECT_EQ(back->destroyed_epoch, 9u);
  EXPECT_EQ(back->installed_epoch, 10u);
  EXPECT_EQ(back->order, r.order);
  EXPECT_EQ(back->order_salt, r.order_salt);
  EXPECT_EQ(back->derived_models, r.derived_models);
  // A record from before "suppressedBy" and the epochs (a plan not yet
  // destroyed) decodes with the defaults.
  auto old = DecodePendingRecord(R"({"requestId":"r","reason":"x","requested":"t","vault":"file"})", "c9");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->suppressed_by, "certificate c9");
  EXPECT_FALSE(old->installed_epoch.has_value());
  EXPECT_FALSE(old->order.has_value());
  EXPECT_TRUE(old->retained.is_array());
}

TEST(PendingRecordTest, MalformedRecordsAreDataLossNotAnAbort) {
  for (const char* bad :
       {R"([1,2])", "not json", R"({"installedEpoch":"7"})", R"({"destroyed":-1})", R"({"requestId":5})",
        R"({"order":"o-1"})", R"({"order":{},"orderPrivate":1})", R"({"retained":{}})"}) {
    auto r = DecodePendingRecord(bad, "c");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  auto r = DecodePendingRecord(R"({"installedEpoch":"7"})", "c");
  EXPECT_NE(r.status().message().find("\"installedEpoch\" is not a non-negative integer"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace shredd
