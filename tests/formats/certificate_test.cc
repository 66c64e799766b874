// Deletion certificates end to end: build, sign, verify; then every tamper
// case must fail and say why.

#include "formats/certificate.h"

#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/dsse.h"
#include "tests/formats/cert_fixture.h"

namespace shredd::verify {
namespace {

using nlohmann::json;
using testing_fixture::DigestOf;
using testing_fixture::MakeCertificate;
using testing_fixture::SignedCertificate;

std::string Msg(const absl::Status& s) { return std::string(s.message().data(), s.message().size()); }

// EXPECTs that `s` failed and that its message contains `needle`.
void ExpectFailure(const absl::Status& s, std::string_view needle) {
  EXPECT_FALSE(s.ok()) << "expected failure mentioning \"" << needle << "\"";
  EXPECT_NE(Msg(s).find(needle), std::string::npos) << "message \"" << Msg(s) << "\" lacks \"" << needle << "\"";
}

VerifiedCertificate MustVerify(const SignedCertificate& c) {
  absl::StatusOr<VerifiedCertificate> v = VerifyCertificate(c.envelope, c.pub);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : VerifiedCertificate{};
}

// Re-signs a modified statement with the certificate's own key, to check
// the statement checks independently of the signature.
std::string Resign(const SignedCertificate& c, const json& statement) {
  return SignCertificate(statement.dump(), c.secret());
}

// --- item leaves and the commitment -------------------------------------

TEST(ItemLeaf, GoldenVector) {
  // Computed independently with Python's hashlib (see docs/FORMATS.md).
  ItemEntry photo{"photo", DigestOf("photo one"), 9, {}};
  ItemEntry model{"model", DigestOf("model two"), 9, {}};
  for (int i = 0; i < 32; ++i) {
    photo.salt[i] = static_cast<uint8_t>(i);
    model.salt[i] = static_cast<uint8_t>(32 + i);
  }
  EXPECT_EQ(ItemLeafInput(photo),
            "shredd-item-v1 photo "
            "sha256:23f3cc85d36cf7266f1b796aa9cfe6930e0f9458d646f18e31ccdf9d0b"
            "843a1f 9 "
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_EQ(HexEncode(ItemLeafHash(photo)), "2d864fd9133942e941ef135146d74fafb8892c5eeda817073d1e2bc900a830d0");
  EXPECT_EQ(HexEncode(ItemLeafHash(model)), "d66d8caf040c0f97c4b28620b128b2aa3440dbd1c731418ed1bcb3d8719d3737");
  absl::StatusOr<ItemCommitment> c = ItemCommitment::Create({model, photo});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->entries()[0].kind, "photo");  // smaller leaf hash first
  EXPECT_EQ(HexEncode(c->root()), "026c170169c11563f56f3744c5b29d1ce85b53796abf352e4f8bdc63e52a8406");
}

TEST(ItemCommitment, SortsByLeafHashAndCounts) {
  const SignedCertificate c = MakeCertificate();
  const auto& entries = c.commitment->entries();
  ASSERT_EQ(entries.size(), 5u);
  std::vector<Hash> leaves;
  for (const ItemEntry& e : entries) leaves.push_back(ItemLeafHash(e));
  EXPECT_TRUE(std::is_sorted(leaves.begin(), leaves.end()));
  EXPECT_EQ(c.commitment->root(), RootFromLeafHashes(leaves));
  EXPECT_EQ(c.commitment->CountByKind(), (std::map<std::string, uint64_t>{{"photo", 3}, {"model", 2}}));
  EXPECT_EQ(c.commitment->IndexOf(entries[3].digest), 3u);
  EXPECT_FALSE(c.commitment->IndexOf(DigestOf("absent")).has_value());
  EXPECT_EQ(c.commitment->ItemsPredicate().dump(), R"({"count":5,"byKind":{"photo":3,"model":2},"merkleRoot":")" +
                                                       HexEncode(c.commitment->root()) +
                                                       R"(","leafFormat":"shredd-item-v1"})");
}

TEST(ItemCommitment, RejectsInvalidAndDuplicateItems) {
  ItemEntry good = testing_fixture::RandomItem("photo", "x");
  ItemEntry bad_kind = good;
  bad_kind.kind = "dataset";
  ExpectFailure(ItemCommitment::Create({bad_kind}).status(), "kind");
  for (std::string digest : {good.digest.substr(7), "sha512:" + good.digest.substr(7), good.digest.substr(0, 70),
                             std::string("sha256:") + std::string(64, 'A')}) {
    ItemEntry e = good;
    e.digest = digest;
    ExpectFailure(ItemCommitment::Create({e}).status(), "digest");
  }
  ItemEntry resalted = good;
  resalted.salt[0] ^= 1;
  ExpectFailure(ItemCommitment::Create({good, resalted}).status(), "listed twice");
  absl::StatusOr<ItemCommitment> empty = ItemCommitment::Create({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->root(), EmptyRoot());
  EXPECT_EQ(empty->ReceiptJson("c", 0).status().code(), absl::StatusCode::kOutOfRange);
}

// --- statement layout -----------------------------------------------------

TEST(Statement, LayoutIsInTotoV1) {
  const SignedCertificate c = MakeCertificate();
  const std::string root = HexEncode(c.commitment->root());
  EXPECT_EQ(c.statement.rfind(R"({"_type":"https://in-toto.io/Statement/v1","subject":[)"
                              R"({"name":"shredd-deletion:cert-7f3a","digest":{"sha256":")" +
                                  root +
                                  R"("}}],"predicateType":"https://shredd.dev/attestations/)"
                                  R"(deletion/v1","predicate":{"certificateId":"cert-7f3a",)",
                              0),
            0u)
      << c.statement;
  const json env = json::parse(c.envelope);
  EXPECT_EQ(env["payloadType"], "application/vnd.in-toto+json");
  EXPECT_EQ(env["signatures"][0]["keyid"], KeyId(c.pub));
}

TEST(Statement, RejectsPredicateWithoutIdentity) {
  nlohmann::ordered_json p = {{"items", {{"merkleRoot", "00"}}}};
  ExpectFailure(StatementJson(p).status(), "certificateId");
  p = {{"certificateId", "c"}};
  ExpectFailure(StatementJson(p).status(), "merkleRoot");
  p = {{"certificateId", "c"}, {"items", {{"merkleRoot", "00"}}}, {"request", {{"reason", "\xff\xfe"}}}};
  ExpectFailure(StatementJson(p).status(), "cannot be serialized");
}

// --- certificate verification --------------------------------------------

TEST(VerifyCertificate, AcceptsGenuineCertificate) {
  const SignedCertificate c = MakeCertificate();
  absl::StatusOr<VerifiedCertificate> v = VerifyCertificate(c.envelope, c.pub);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->certificate_id, "cert-7f3a");
  EXPECT_EQ(v->merkle_root, c.commitment->root());
  EXPECT_EQ(v->item_count, 5u);
  EXPECT_EQ(v->count_by_kind, (std::map<std::string, uint64_t>{{"photo", 3}, {"model", 2}}));
  EXPECT_EQ(v->keyid, KeyId(c.pub));
  EXPECT_EQ(v->statement, c.statement);
  EXPECT_EQ(v->predicate["destruction"]["rootEpochDestroyed"], 41);
}

TEST(VerifyCertificate, FlippedPayloadByteFails) {
  const SignedCertificate c = MakeCertificate();
  absl::StatusOr<Envelope> env = ParseEnvelope(c.envelope);
  ASSERT_TRUE(env.ok());
  // Every byte position matters; sample a spread of them.
  for (size_t i = 0; i < env->payload.size(); i += 97) {
    Envelope bad = *env;
    bad.payload[i] ^= 0x01;
    absl::StatusOr<VerifiedCertificate> v = VerifyCertificate(SerializeEnvelope(bad), c.pub);
    ExpectFailure(v.status(), "signature does not verify under the given key");
    EXPECT_EQ(v.status().code(), absl::StatusCode::kUnauthenticated);
  }
}

TEST(VerifyCertificate, FlippedSignatureBitFails) {
  const SignedCertificate c = MakeCertificate();
  const Envelope env = *ParseEnvelope(c.envelope);
  for (size_t bit : {0, 100, 300, 511}) {
    Envelope bad = env;
    bad.signatures[0].sig[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    ExpectFailure(VerifyCertificate(SerializeEnvelope(bad), c.pub).status(), "signature does not verify");
  }
  Envelope short_sig = env;
  short_sig.signatures[0].sig.pop_back();
  ExpectFailure(VerifyCertificate(SerializeEnvelope(short_sig), c.pub).status(), "signature does not verify");
}

TEST(VerifyCertificate, WrongKeyFails) {
  const SignedCertificate c = MakeCertificate();
  const SignedCertificate other = MakeCertificate();
  // other.pub has a different keyid, so the only signature is skipped.
  ExpectFailure(VerifyCertificate(c.envelope, other.pub).status(), "no signature is by the given key");
  // Without the keyid hint the signature is tried and fails.
  Envelope env = *ParseEnvelope(c.envelope);
  env.signatures[0].keyid.clear();
  ExpectFailure(VerifyCertificate(SerializeEnvelope(env), other.pub).status(),
                "signature does not verify under the given key");
  EXPECT_TRUE(VerifyCertificate(SerializeEnvelope(env), c.pub).ok());
}

TEST(VerifyCertificate, KeyidMismatchFails) {
  const SignedCertificate c = MakeCertificate();
  Envelope env = *ParseEnvelope(c.envelope);
  env.signatures[0].keyid = "shredd:" + std::string(64, '0');
  absl::Status s = VerifyCertificate(SerializeEnvelope(env), c.pub).status();
  ExpectFailure(s, "no signature is by the given key");
  EXPECT_NE(Msg(s).find(env.signatures[0].keyid), std::string::npos);
}

TEST(VerifyCertificate, PicksTheSignatureOfTheGivenKey) {
  const SignedCertificate c = MakeCertificate();
  const SignedCertificate other = MakeCertificate();
  Envelope env = *ParseEnvelope(c.envelope);
  const Signature ours = env.signatures[0];
  env.signatures = {{KeyId(other.pub), SignEd25519(other.secret(), PreAuthEncoding(env.payload_type, env.payload))},
                    ours};
  EXPECT_TRUE(VerifyCertificate(SerializeEnvelope(env), c.pub).ok());
  EXPECT_TRUE(VerifyCertificate(SerializeEnvelope(env), other.pub).ok());
  // A bad signature under our keyid is not rescued by another key's good one.
  env.signatures[1].sig[0] ^= 1;
  EXPECT_FALSE(VerifyCertificate(SerializeEnvelope(env), c.pub).ok());
}

TEST(VerifyCertificate, ChangedPayloadTypeFails) {
  const SignedCertificate c = MakeCertificate();
  Envelope env = *ParseEnvelope(c.envelope);
  env.payload_type = "application/json";
  ExpectFailure(VerifyCertificate(SerializeEnvelope(env), c.pub).status(), "payloadType");
  // Even a signature made over the other type is refused.
  env.signatures[0].sig = SignEd25519(c.secret(), PreAuthEncoding(env.payload_type, env.payload));
  ExpectFailure(VerifyCertificate(SerializeEnvelope(env), c.pub).status(), "payloadType");
}

TEST(VerifyCertificate, MalformedEnvelopeFails) {
  const SignedCertificate c = MakeCertificate();
  ExpectFailure(VerifyCertificate("", c.pub).status(), "not valid JSON");
  ExpectFailure(VerifyCertificate(c.envelope.substr(0, 40), c.pub).status(), "not valid JSON");
  ExpectFailure(VerifyCertificate(SignCertificate("not json", c.secret()), c.pub).status(),
                "payload is not valid JSON");
}

TEST(VerifyCertificate, SignedButInconsistentStatementsFail) {
  const SignedCertificate c = MakeCertificate();
  const json good = json::parse(c.statement);
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"wrong _type", [](json& s) { s["_type"] = "https://in-toto.io/Statement/v0.1"; }, "_type"},
      {"wrong predicateType", [](json& s) { s["predicateType"] = "x"; }, "predicateType"},
      {"subject root differs", [](json& s) { s["subject"][0]["digest"]["sha256"] = std::string(64, 'a'); },
       "differs from predicate.items.merkleRoot"},
      {"subject name differs", [](json& s) { s["subject"][0]["name"] = "shredd-deletion:other"; }, "subject[0].name"},
      {"two subjects", [](json& s) { s["subject"].push_back(s["subject"][0]); }, "exactly 1"},
      {"count mismatch", [](json& s) { s["predicate"]["items"]["count"] = 6; }, "byKind adds up to 5"},
      {"negative count", [](json& s) { s["predicate"]["items"]["count"] = -5; }, "non-negative"},
      {"fractional kind count", [](json& s) { s["predicate"]["items"]["byKind"]["photo"] = 2.5; }, "non-negative"},
      {"byKind sum wraps around to count",
       [](json& s) {
         s["predicate"]["items"]["byKind"] = {{"photo", UINT64_MAX}, {"model", 6}};
       },
       "overflows"},
      {"leaf format", [](json& s) { s["predicate"]["items"]["leafFormat"] = "v2"; }, "leafFormat"},
      {"bad root hex",
       [](json& s) {
         const std::string r = std::string(64, 'A');
         s["predicate"]["items"]["merkleRoot"] = r;
         s["subject"][0]["digest"]["sha256"] = r;
       },
       "lowercase hex"},
      {"no certificateId", [](json& s) { s["predicate"].erase("certificateId"); }, "certificateId"},
      {"bad time", [](json& s) { s["predicate"]["times"]["destroyed"] = "2026-11-26 04:27:09"; }, "RFC 3339"},
      {"local time", [](json& s) { s["predicate"]["times"]["issued"] = "2026-11-26T04:27:09+01:00"; }, "RFC 3339"},
      {"issued before destroyed", [](json& s) { s["predicate"]["times"]["issued"] = "2026-11-26T04:27:09Z"; },
       "is before predicate.times.destroyed"},
      {"no method", [](json& s) { s["predicate"].erase("method"); }, "method"},
      {"no request id", [](json& s) { s["predicate"]["request"].erase("id"); }, "request"},
      {"derivedModels not array", [](json& s) { s["predicate"]["derivedModels"] = json::object(); }, "derivedModels"},
      {"empty with non-empty root",
       [](json& s) {
         s["predicate"]["items"]["count"] = 0;
         s["predicate"]["items"]["byKind"] = {{"photo", 0}, {"model", 0}};
       },
       "empty-tree root"},
      {"predicate not object", [](json& s) { s["predicate"] = json::array(); }, "predicate"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    json s = good;
    k.mutate(s);
    ExpectFailure(VerifyCertificate(Resign(c, s), c.pub).status(), k.reason);
  }
  // The unmodified statement passes through the same path, and so do
  // equal or fraction-less times in the right order.
  EXPECT_TRUE(VerifyCertificate(Resign(c, good), c.pub).ok());
  json s = good;
  s["predicate"]["times"]["issued"] = "2026-11-26T04:27:09.123Z";
  EXPECT_TRUE(VerifyCertificate(Resign(c, s), c.pub).ok());
  s["predicate"]["times"]["issued"] = "2026-11-26T04:27:10Z";
  EXPECT_TRUE(VerifyCertificate(Resign(c, s), c.pub).ok());
}

// --- manifest ---------------------------------------------------------------

TEST(VerifyManifest, AcceptsGenuineManifest) {
  const SignedCertificate c = MakeCertificate();
  const VerifiedCertificate v = MustVerify(c);
  EXPECT_TRUE(VerifyManifest(v, c.manifest).ok()) << VerifyManifest(v, c.manifest);
  const json m = json::parse(c.manifest);
  EXPECT_EQ(m["type"], "shredd-manifest-v1");
  EXPECT_EQ(m["items"].size(), 5u);
  EXPECT_EQ(c.manifest.rfind(R"({"type":"shredd-manifest-v1","certificateId":"cert-7f3a","merkleRoot":")", 0), 0u);
}

TEST(VerifyManifest, TamperedManifestsFail) {
  const SignedCertificate c = MakeCertificate();
  const VerifiedCertificate v = MustVerify(c);
  const json good = json::parse(c.manifest);
  const SignedCertificate other = MakeCertificate("cert-other");
  const json foreign_item = json::parse(other.manifest)["items"][0];

  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"changed salt",
       [](json& m) {
         std::string salt = m["items"][2]["salt"];
         salt[10] = salt[10] == '0' ? '1' : '0';
         m["items"][2]["salt"] = salt;
       },
       "does not match certificate root"},
      {"changed size", [](json& m) { m["items"][0]["size"] = 12345; }, "does not match certificate root"},
      {"dropped item", [](json& m) { m["items"].erase(m["items"].begin() + 1); },
       "manifest lists 4 items, certificate counts 5"},
      {"extra item",
       [&](json& m) {
         m["items"].push_back(foreign_item);
         std::sort(m["items"].begin(), m["items"].end(), [](const json& a, const json& b) {
           auto leaf = [](const json& j) {
             ItemEntry e{j["kind"], j["digest"], j["size"], *ParseHash(j["salt"].get<std::string>())};
             return ItemLeafHash(e);
           };
           return leaf(a) < leaf(b);
         });
       },
       "manifest lists 6 items"},
      {"reordered items", [](json& m) { std::swap(m["items"][0], m["items"][1]); }, "out of tree order"},
      {"repeated item", [](json& m) { m["items"][1] = m["items"][0]; }, "twice"},
      {"kind relabelled", [](json& m) { m["items"][0]["kind"] = m["items"][0]["kind"] == "photo" ? "model" : "photo"; },
       "of kind"},
      {"uppercase digest",
       [](json& m) {
         std::string d = m["items"][0]["digest"];
         for (size_t i = 7; i < d.size(); ++i) d[i] = static_cast<char>(std::toupper(d[i]));
         m["items"][0]["digest"] = d;
       },
       "sha256:<64 lowercase hex>"},
      {"wrong certificate", [](json& m) { m["certificateId"] = "cert-other"; }, "cert-other"},
      {"wrong root field", [&](json& m) { m["merkleRoot"] = HexEncode(other.commitment->root()); },
       "states Merkle root"},
      {"wrong type", [](json& m) { m["type"] = "shredd-receipt-v1"; }, "type"},
      {"size is a string", [](json& m) { m["items"][0]["size"] = "7"; }, "size"},
      {"items missing", [](json& m) { m.erase("items"); }, "items"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    json m = good;
    k.mutate(m);
    ExpectFailure(VerifyManifest(v, m.dump()), k.reason);
  }
  ExpectFailure(VerifyManifest(v, "{"), "not valid JSON");
  ExpectFailure(VerifyManifest(v, other.manifest), "is for certificate");
}

TEST(VerifyManifest, DuplicateDigestWithFreshSaltFails) {
  // Same content twice under different salts gives distinct leaves; the
  // manifest must still refuse it (one content is one item).
  SignedCertificate c = MakeCertificate();
  ItemEntry a = testing_fixture::RandomItem("photo", "same bytes");
  ItemEntry b = a;
  b.salt[0] ^= 0xff;
  std::vector<Hash> leaves = {ItemLeafHash(a), ItemLeafHash(b)};
  if (leaves[1] < leaves[0]) std::swap(a, b);
  std::sort(leaves.begin(), leaves.end());
  VerifiedCertificate v;
  v.certificate_id = "dup";
  v.merkle_root = RootFromLeafHashes(leaves);
  v.item_count = 2;
  v.count_by_kind = {{"photo", 2}, {"model", 0}};
  auto item = [](const ItemEntry& e) {
    return json{{"kind", e.kind}, {"digest", e.digest}, {"size", e.size}, {"salt", HexEncode(e.salt)}};
  };
  const json m = {{"type", "shredd-manifest-v1"},
                  {"certificateId", "dup"},
                  {"merkleRoot", HexEncode(v.merkle_root)},
                  {"items", {item(a), item(b)}}};
  ExpectFailure(VerifyManifest(v, m.dump()), "twice");
}

TEST(VerifyManifest, UnsortedTreeFailsEvenIfRootMatches) {
  // An issuer that skipped the sort would sign a root over leaves in
  // insertion order, leaking that order; the manifest check refuses it.
  ItemEntry a = testing_fixture::RandomItem("photo", "first");
  ItemEntry b = testing_fixture::RandomItem("photo", "second");
  if (ItemLeafHash(a) < ItemLeafHash(b)) std::swap(a, b);  // descending
  VerifiedCertificate v;
  v.certificate_id = "unsorted";
  v.merkle_root = NodeHash(ItemLeafHash(a), ItemLeafHash(b));
  v.item_count = 2;
  v.count_by_kind = {{"photo", 2}, {"model", 0}};
  auto item = [](const ItemEntry& e) {
    return json{{"kind", e.kind}, {"digest", e.digest}, {"size", e.size}, {"salt", HexEncode(e.salt)}};
  };
  const json m = {{"type", "shredd-manifest-v1"},
                  {"certificateId", "unsorted"},
                  {"merkleRoot", HexEncode(v.merkle_root)},
                  {"items", {item(a), item(b)}}};
  absl::Status s = VerifyManifest(v, m.dump());
  ExpectFailure(s, "out of tree order");
  EXPECT_EQ(Msg(s).find("does not match"), std::string::npos) << Msg(s);
}

// --- receipts ---------------------------------------------------------------

TEST(VerifyReceipt, EveryItemHasAValidReceipt) {
  const SignedCertificate c = MakeCertificate();
  const VerifiedCertificate v = MustVerify(c);
  for (uint64_t i = 0; i < c.commitment->size(); ++i) {
    absl::StatusOr<std::string> r = c.commitment->ReceiptJson(c.certificate_id, i);
    ASSERT_TRUE(r.ok()) << r.status();
    const std::string& digest = c.commitment->entries()[i].digest;
    EXPECT_TRUE(VerifyReceipt(v, *r, digest).ok()) << VerifyReceipt(v, *r, digest);
    const json j = json::parse(*r);
    EXPECT_EQ(j["leafIndex"], i);
    EXPECT_EQ(j["treeSize"], 5);
  }
}

TEST(VerifyReceipt, TamperedReceiptsFail) {
  const SignedCertificate c = MakeCertificate();
  const VerifiedCertificate v = MustVerify(c);
  const std::string digest = c.commitment->entries()[1].digest;
  const json good = json::parse(*c.commitment->ReceiptJson(c.certificate_id, 1));
  const SignedCertificate other = MakeCertificate("cert-other");

  // A receipt for an item the certificate does not hold.
  const std::string foreign = *other.commitment->ReceiptJson(other.certificate_id, 1);
  json relabelled = json::parse(foreign);
  relabelled["certificateId"] = c.certificate_id;
  relabelled["merkleRoot"] = HexEncode(c.commitment->root());
  const std::string foreign_digest = other.commitment->entries()[1].digest;
  ExpectFailure(VerifyReceipt(v, relabelled.dump(), foreign_digest), "does not prove inclusion");
  ExpectFailure(VerifyReceipt(v, foreign, foreign_digest), "is for certificate");
  // Asking about an item the genuine receipt does not cover.
  ExpectFailure(VerifyReceipt(v, good.dump(), DigestOf("some other photo")), "receipt is for item");

  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"truncated path", [](json& r) { r["inclusionPath"].erase(r["inclusionPath"].end() - 1); }, "too few hashes"},
      {"extended path", [](json& r) { r["inclusionPath"].push_back(r["merkleRoot"]); }, "too many hashes"},
      {"wrong index", [](json& r) { r["leafIndex"] = 0; }, "does not prove inclusion"},
      {"index out of range", [](json& r) { r["leafIndex"] = 5; }, "outside a tree of size 5"},
      {"wrong tree size", [](json& r) { r["treeSize"] = 6; }, "treeSize 6"},
      {"changed salt",
       [](json& r) {
         std::string salt = r["item"]["salt"];
         salt[0] = salt[0] == 'f' ? 'e' : 'f';
         r["item"]["salt"] = salt;
       },
       "leads to root"},
      {"changed path hash",
       [](json& r) {
         std::string h = r["inclusionPath"][0];
         h[63] = h[63] == '0' ? '1' : '0';
         r["inclusionPath"][0] = h;
       },
       "leads to root"},
      {"path hash not hex", [](json& r) { r["inclusionPath"][0] = "zz"; }, "inclusionPath[0]"},
      {"wrong type", [](json& r) { r["type"] = "shredd-manifest-v1"; }, "type"},
      {"missing item", [](json& r) { r.erase("item"); }, "item"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    json r = good;
    k.mutate(r);
    ExpectFailure(VerifyReceipt(v, r.dump(), digest), k.reason);
  }
}

}  // namespace
}  // namespace shredd::verify

namespace shredd::verify {
namespace {

// The daemon signs through a signer (its vault): the envelope it gets is the
// one a key in memory makes, and it verifies.
TEST(SignCertificate, WithASignerEqualsWithTheKey) {
  const testing_fixture::SignedCertificate c = testing_fixture::MakeCertificate();
  int calls = 0;
  absl::StatusOr<std::string> env =
      SignCertificate(c.statement, c.pub, [&](std::string_view pae) -> absl::StatusOr<std::string> {
        ++calls;
        return SignEd25519(c.secret(), pae);
      });
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(*env, c.envelope);  // Ed25519 is deterministic
  EXPECT_TRUE(VerifyCertificate(*env, c.pub).ok());
}

}  // namespace
}  // namespace shredd::verify
