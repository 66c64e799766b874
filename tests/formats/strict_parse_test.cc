// The verifier's JSON parsers accept one reading of a file only: no bytes
// after the document (a NUL byte used to end parsing early, so shredctl and
// the README's openssl recipe saw different certificates in one file), and
// no duplicate members (last-wins let two readers disagree). Issue 12, #11.

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/dsse.h"
#include "formats/strict_json.h"
#include "tests/formats/cert_fixture.h"

namespace shredd::verify {
namespace {

using nlohmann::json;
using testing_fixture::MakeCertificate;
using testing_fixture::SignedCertificate;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

void ExpectRefused(const absl::Status& s, std::string_view reason) {
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(Msg(s).find(reason), std::string::npos) << s;
}

constexpr char kEnvelope[] = R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AQ=="}]})";

// `n` arrays around `inner`.
std::string Nested(int n, std::string_view inner) {
  return std::string(n, '[') + std::string(inner) + std::string(n, ']');
}

TEST(StrictJson, CapsNestingAtOneThousand) {
  // A value may be inside kMaxJsonNesting arrays and objects, not one more
  // (as the page counts: client/web/verify_encoding.js).
  EXPECT_TRUE(ParseStrictJson(Nested(1000, "1"), "doc").ok());
  EXPECT_TRUE(ParseStrictJson(Nested(1000, "[]"), "doc").ok());  // the empty array is inside 1000
  EXPECT_TRUE(ParseStrictJson(Nested(999, R"({"a":{}})"), "doc").ok());
  ExpectRefused(ParseStrictJson(Nested(1001, "1"), "doc").status(),
                "doc is not valid JSON: nested more than 1000 arrays and objects deep");
  ExpectRefused(ParseStrictJson(Nested(1000, "[[]]"), "doc").status(), "nested more than 1000");
  ExpectRefused(ParseStrictJson(Nested(999, R"({"a":{"b":1}})"), "doc").status(), "nested more than 1000");
  // Deep enough to overflow the stack of a recursive walk (dump() of what
  // was parsed crashed shredctl verify): refused before it is built.
  ExpectRefused(ParseStrictJson(Nested(500000, ""), "doc").status(), "nested more than 1000");
}

TEST(StrictJson, AcceptsOneDocumentWithSurroundingWhitespace) {
  EXPECT_TRUE(ParseStrictJson(kEnvelope, "envelope").ok());
  EXPECT_TRUE(ParseStrictJson(std::string(" \t\r\n") + kEnvelope + "\n\n", "envelope").ok());
  // The same key in different objects is fine.
  EXPECT_TRUE(ParseStrictJson(R"({"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]})", "doc").ok());
}

TEST(StrictJson, RefusesTrailingBytesAndNul) {
  const std::string env = kEnvelope;
  ExpectRefused(ParseStrictJson(env + std::string("\0", 1), "envelope").status(), "NUL");
  ExpectRefused(ParseStrictJson(env + std::string("\0{\"x\":1}", 8), "envelope").status(), "NUL");
  ExpectRefused(ParseStrictJson(env + "x", "envelope").status(), "envelope");
  ExpectRefused(ParseStrictJson(env + env, "envelope").status(), "envelope");
}

TEST(StrictJson, RefusesDuplicateMembersAtAnyDepth) {
  ExpectRefused(ParseStrictJson(R"({"a":1,"a":2})", "doc").status(), "duplicate member \"a\"");
  ExpectRefused(ParseStrictJson(R"({"o":{"b":1,"c":2,"b":1}})", "doc").status(), "duplicate member \"b\"");
  ExpectRefused(ParseStrictJson(R"([{"k":[{"z":1,"z":1}]}])", "doc").status(), "duplicate member \"z\"");
  // Escapes spell the same key.
  ExpectRefused(ParseStrictJson(R"({"ab":1,"a\u0062":2})", "doc").status(), "duplicate member");
}

TEST(Dsse, EnvelopeWithTrailingNulAndMoreIsRefused) {
  const std::string env = kEnvelope;
  ASSERT_TRUE(ParseEnvelope(env).ok());
  EXPECT_TRUE(ParseEnvelope(env + "\n").ok());
  ExpectRefused(ParseEnvelope(env + std::string("\0junk", 5)).status(), "NUL");
  ExpectRefused(ParseEnvelope(env + " {}").status(), "envelope");
}

TEST(Dsse, DuplicateEnvelopeMembersAreRefused) {
  const char* cases[] = {
      R"({"payloadType":"t","payload":"aGk=","payload":"aG8=","signatures":[{"sig":"AQ=="}]})",
      R"({"payloadType":"t","payloadType":"u","payload":"aGk=","signatures":[{"sig":"AQ=="}]})",
      R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AQ=="}],"signatures":[{"sig":"Ag=="}]})",
      R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AQ==","sig":"Ag=="}]})",
      R"({"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"a","keyid":"b","sig":"AQ=="}]})",
  };
  for (const char* text : cases) {
    SCOPED_TRACE(text);
    ExpectRefused(ParseEnvelope(text).status(), "duplicate member");
  }
}

TEST(VerifyCertificate, GenuineCertificateFollowedByNulAndAnotherFails) {
  const SignedCertificate c = MakeCertificate();
  const SignedCertificate other = MakeCertificate("cert-other");
  ASSERT_TRUE(VerifyCertificate(c.envelope, c.pub).ok());
  EXPECT_TRUE(VerifyCertificate(c.envelope + "\n", c.pub).ok());
  const std::string smuggled = c.envelope + std::string("\0", 1) + other.envelope;
  ExpectRefused(VerifyCertificate(smuggled, c.pub).status(), "NUL");
}

TEST(VerifyCertificate, SignedStatementWithDuplicateMembersFails) {
  const SignedCertificate c = MakeCertificate();
  // Signed by the right key, but "certificateId" appears twice: a reader
  // taking the first and one taking the last would name different ids.
  std::string statement = c.statement;
  const std::string needle = "\"certificateId\":\"cert-7f3a\"";
  const size_t at = statement.find(needle);
  ASSERT_NE(at, std::string::npos) << statement;
  statement.insert(at, "\"certificateId\":\"cert-evil\",");
  const std::string envelope = SignCertificate(statement, c.secret());
  ExpectRefused(VerifyCertificate(envelope, c.pub).status(), "duplicate member \"certificateId\"");
  // Sanity: the same statement without the duplicate verifies.
  EXPECT_TRUE(VerifyCertificate(SignCertificate(c.statement, c.secret()), c.pub).ok());
}

TEST(VerifyReceipt, TrailingBytesAndDuplicateMembersFail) {
  const SignedCertificate c = MakeCertificate();
  const absl::StatusOr<VerifiedCertificate> v = VerifyCertificate(c.envelope, c.pub);
  ASSERT_TRUE(v.ok()) << v.status();
  const std::string digest = c.commitment->entries()[1].digest;
  const std::string good = *c.commitment->ReceiptJson(c.certificate_id, 1);
  ASSERT_TRUE(VerifyReceipt(*v, good, digest).ok());
  EXPECT_TRUE(VerifyReceipt(*v, good + "\n", digest).ok());
  ExpectRefused(VerifyReceipt(*v, good + std::string("\0x", 2), digest), "NUL");
  ExpectRefused(VerifyReceipt(*v, good + "x", digest), "receipt");
  // A duplicate top-level member.
  std::string dup = good;
  dup.insert(1, "\"leafIndex\":0,");
  ExpectRefused(VerifyReceipt(*v, dup, digest), "duplicate member \"leafIndex\"");
  // A duplicate member inside the item.
  std::string dup_item = good;
  const size_t item = dup_item.find("\"item\":{");
  ASSERT_NE(item, std::string::npos) << good;
  dup_item.insert(item + 8, "\"digest\":\"" + c.commitment->entries()[0].digest + "\",");
  ExpectRefused(VerifyReceipt(*v, dup_item, digest), "duplicate member \"digest\"");
}

}  // namespace
}  // namespace shredd::verify
