// Encodings, DSSE envelopes/PAE and Ed25519 key formats, anchored on
// published vectors: RFC 4648 base64, the DSSE spec's PAE example, and the
// "PeterNeumann" key and signed note from golang.org/x/mod/sumdb/note.

#include <sodium.h>

#include <string>

#include <gtest/gtest.h>

#include "formats/dsse.h"
#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/strict_json.h"

namespace shredd::verify {
namespace {

constexpr char kPeterVkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr char kPeterKeyHex[] = "1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6";
// The note text and its signature line's base64 (4-byte key hash || sig).
constexpr char kPeterText[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr char kPeterSig[] =
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=";
// base64(302a300506032b6570032100 || key): the RFC 8410 SPKI of that key.
constexpr char kPeterPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAGlzZBxQ8OExB6DDFvOEqqIF+xWSaqr8sMTiLNbLXRNY=\n"
    "-----END PUBLIC KEY-----\n";
constexpr char kEcP256Pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXLeZyJoDYjO8Y7F+3WMFHry9s1i0\n"
    "MaKBJuYE4zMGFg47HHfPnCx4ZZAAanBVeL1TZzRPyGI/XuNmQM992hnFOg==\n"
    "-----END PUBLIC KEY-----\n";

PublicKey PeterKey() {
  PublicKey k;
  const std::string raw = *HexDecode(kPeterKeyHex);
  std::copy(raw.begin(), raw.end(), k.begin());
  return k;
}

bool Contains(const absl::Status& s, std::string_view needle) {
  return std::string_view(s.message().data(), s.message().size()).find(needle) != std::string_view::npos;
}

// --- encoding ------------------------------------------------------------

TEST(Encoding, HexRoundTripAndStrictness) {
  EXPECT_EQ(HexEncode(std::string_view("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*HexDecode("00ff10"), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(*HexDecode(""), "");
  EXPECT_FALSE(HexDecode("0").ok());
  EXPECT_FALSE(HexDecode("FF").ok());
  EXPECT_FALSE(HexDecode("0g").ok());
  EXPECT_FALSE(HexDecode(" 0").ok());
}

TEST(Encoding, Base64Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    absl::StatusOr<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
}

TEST(Encoding, Base64RejectsNonCanonicalInput) {
  EXPECT_FALSE(Base64Decode("Zg").ok());      // missing padding
  EXPECT_FALSE(Base64Decode("Zh==").ok());    // non-zero trailing bits
  EXPECT_FALSE(Base64Decode("-_8=").ok());    // URL-safe alphabet
  EXPECT_FALSE(Base64Decode("Zm9v\n").ok());  // whitespace
  EXPECT_FALSE(Base64Decode("Zm9v====").ok());
  EXPECT_FALSE(Base64Decode("Zg==Zg==").ok());  // data after padding
  // Bytes >= 0x80 (libsodium 1.0.18 takes them as base64 characters; found
  // by fuzz/encoding_fuzz.cc): "aGVsbG8=" with one character replaced.
  for (int c = 0x80; c <= 0xff; ++c) {
    std::string text = "aGVsbG8=";
    text[5] = static_cast<char>(c);
    EXPECT_FALSE(Base64Decode(text).ok()) << "byte 0x" << std::hex << c;
  }
}

// --- DSSE ----------------------------------------------------------------

TEST(Dsse, PaeMatchesSpecExample) {
  // From the DSSE protocol specification.
  EXPECT_EQ(PreAuthEncoding("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  EXPECT_EQ(PreAuthEncoding("", ""), "DSSEv1 0  0 ");
  // Lengths count bytes, not characters.
  EXPECT_EQ(PreAuthEncoding("t", "\xc3\xa9"), "DSSEv1 1 t 2 \xc3\xa9");
}

TEST(Dsse, SignEnvelopeSignsThePaeWithTheSigner) {
  std::string seen;
  absl::StatusOr<std::string> env =
      SignEnvelope("text/plain", "hi", "k1", [&](std::string_view m) -> absl::StatusOr<std::string> {
        seen = std::string(m);
        return std::string("\x01\x02");
      });
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(seen, PreAuthEncoding("text/plain", "hi"));
  EXPECT_EQ(*env, SerializeEnvelope(Envelope{"text/plain", "hi", {{"k1", "\x01\x02"}}}));
  // A signer that fails (a vault) fails the envelope; nothing is made up.
  absl::StatusOr<std::string> failed = SignEnvelope(
      "t", "p", "k", [](std::string_view) -> absl::StatusOr<std::string> { return absl::UnavailableError("hsm"); });
  EXPECT_EQ(failed.status(), absl::UnavailableError("hsm"));
}

TEST(Dsse, SerializeIsCompactAndOrdered) {
  Envelope env{"text/plain", "hi", {{"k1", "\x01\x02"}, {"", "\x03"}}};
  EXPECT_EQ(SerializeEnvelope(env), R"({"payloadType":"text/plain","payload":"aGk=",)"
                                    R"("signatures":[{"keyid":"k1","sig":"AQI="},{"sig":"Aw=="}]})");
  absl::StatusOr<Envelope> back = ParseEnvelope(SerializeEnvelope(env));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->payload_type, "text/plain");
  EXPECT_EQ(back->payload, "hi");
  ASSERT_EQ(back->signatures.size(), 2u);
  EXPECT_EQ(back->signatures[0].keyid, "k1");
  EXPECT_EQ(back->signatures[0].sig, "\x01\x02");
  EXPECT_EQ(back->signatures[1].keyid, "");
  EXPECT_EQ(back->signatures[1].sig, "\x03");
}

TEST(Dsse, ParseRejectsMalformedEnvelopes) {
  const std::pair<const char*, const char*> cases[] = {
      {"not json", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"payload":"aGk=","signatures":[{"sig":"AQ=="}]})", "payloadType"},
      {R"({"payloadType":"t","signatures":[{"sig":"AQ=="}]})", "payload"},
      {R"({"payloadType":7,"payload":"aGk=","signatures":[{"sig":"AQ=="}]})", "not a string"},
      {R"({"payloadType":"t","payload":"aGk","signatures":[{"sig":"AQ=="}]})", "base64"},
      {R"({"payloadType":"t","payload":"aGk="})", "signatures"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":{}})", "signatures"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[]})", "no signatures"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":["AQ=="]})", "signatures[0]"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k"}]})", "sig"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"keyid":1,"sig":"AQ=="}]})", "keyid"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"A_=="}]})", "base64"},
  };
  for (const auto& [json, reason] : cases) {
    absl::StatusOr<Envelope> env = ParseEnvelope(json);
    ASSERT_FALSE(env.ok()) << json;
    EXPECT_EQ(env.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(env.status(), reason)) << json << " -> " << env.status();
    // A document already read (a Sigstore bundle's dsseEnvelope) is judged
    // by the same code, with the same message.
    absl::StatusOr<nlohmann::json> doc = ParseStrictJson(json, "envelope");
    if (doc.ok()) {
      EXPECT_EQ(EnvelopeFromJson(*doc).status(), env.status()) << json;
    }
  }
}

TEST(Dsse, EnvelopeFromJsonReadsTheValuesAsParsed) {
  // Escapes, key order and members it does not read change nothing.
  const std::string text =
      R"({"signatures":[{"sig":"AQ==","keyid":"\u006b"}],"n":-0,"payload":"aGk=","payloadType":"a\/b\u00e9"})";
  absl::StatusOr<nlohmann::json> doc = ParseStrictJson(text, "envelope");
  ASSERT_TRUE(doc.ok()) << doc.status();
  absl::StatusOr<Envelope> env = EnvelopeFromJson(*doc);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->payload_type, "a/b\xc3\xa9");
  EXPECT_EQ(env->payload, "hi");
  ASSERT_EQ(env->signatures.size(), 1u);
  EXPECT_EQ(env->signatures[0].keyid, "k");
  EXPECT_EQ(SerializeEnvelope(*env), SerializeEnvelope(*ParseEnvelope(text)));
}

TEST(Dsse, CanonicalEnvelopeIsTheIssuedBytesWhateverTheSpelling) {
  const std::string issued = SerializeEnvelope({"text/plain", "hi", {{"k1", "\x01\x02"}, {"", "\x03"}}});
  const std::string spellings[] = {
      issued,
      issued + "\n",
      R"( { "signatures" : [ { "sig" : "AQI=", "keyid" : "k1" }, {"sig":"Aw=="} ],
            "payload" : "aGk=",
            "payloadType" : "text/plain" } )",
      R"({"payloadType":"text\/plain","payload":"aGk=","signatures":[{"keyid":"\u006b1","sig":"AQI="},{"sig":"Aw=="}]})",
  };
  for (const std::string& text : spellings) {
    absl::StatusOr<std::string> c = CanonicalEnvelope(text);
    ASSERT_TRUE(c.ok()) << text << " -> " << c.status();
    EXPECT_EQ(*c, issued) << text;
  }
  // A change to anything signed or logged changes the canonical bytes.
  absl::StatusOr<std::string> other_sig = CanonicalEnvelope(
      R"({"payloadType":"text/plain","payload":"aGk=","signatures":[{"keyid":"k1","sig":"AQM="},{"sig":"Aw=="}]})");
  ASSERT_TRUE(other_sig.ok()) << other_sig.status();
  EXPECT_NE(*other_sig, issued);
}

TEST(Dsse, CanonicalEnvelopeRefusesWhatHasNoCanonicalForm) {
  const std::pair<std::string, const char*> cases[] = {
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AQ=="}],"note":"x"})", "\"note\""},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AQ==","by":"x"}]})", "\"by\""},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"","sig":"AQ=="}]})", "empty \"keyid\""},
      {R"({"payloadType":"t\u00e9","payload":"aGk=","signatures":[{"sig":"AQ=="}]})", "printable ASCII"},
      {R"({"payloadType":"t\"","payload":"aGk=","signatures":[{"sig":"AQ=="}]})", "printable ASCII"},
      {R"({"payloadType":"t","payload":"aGl=","signatures":[{"sig":"AQ=="}]})", "base64"},
      {R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AR=="}]})", "base64"},
      {R"({"payloadType":"t","payload":"aGk=","payload":"aGk=","signatures":[{"sig":"AQ=="}]})", "duplicate member"},
      {std::string(R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AQ=="}]})") + std::string(1, '\0') +
           "{}",
       "NUL byte"},
  };
  for (const auto& [json, reason] : cases) {
    absl::StatusOr<std::string> c = CanonicalEnvelope(json);
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(c.status(), reason)) << json << " -> " << c.status();
  }
}

// --- keys ----------------------------------------------------------------

TEST(Keys, NoteVerifierKeyKnownVector) {
  absl::StatusOr<NoteVerifier> v = ParseNoteVerifierKey(kPeterVkey);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->name, "PeterNeumann");
  EXPECT_EQ(v->key_hash, 0xc74f20a3u);
  EXPECT_EQ(HexEncode(v->key), kPeterKeyHex);
  EXPECT_EQ(NoteKeyHash("PeterNeumann", PeterKey()), 0xc74f20a3u);
  EXPECT_EQ(NoteVerifierKey("PeterNeumann", PeterKey()), kPeterVkey);
}

TEST(Keys, NoteSignatureFromGoTestsVerifies) {
  const std::string sig_line = *Base64Decode(kPeterSig);
  ASSERT_EQ(sig_line.size(), 4u + 64u);
  EXPECT_EQ(HexEncode(sig_line.substr(0, 4)), "c74f20a3");
  const std::string sig = sig_line.substr(4);
  EXPECT_TRUE(VerifyEd25519(PeterKey(), kPeterText, sig).ok());
  std::string altered = kPeterText;
  altered[0] = 'i';
  absl::Status s = VerifyEd25519(PeterKey(), altered, sig);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(Contains(s, "does not verify"));
  EXPECT_EQ(VerifyEd25519(PeterKey(), kPeterText, sig.substr(1)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Keys, NoteVerifierKeyRejectsManglings) {
  const std::string good = kPeterVkey;
  const char* const bad[] = {
      "",
      "PeterNeumann",
      "PeterNeumann+c74f20a3",
      "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // no name
      "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
      "PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
  };
  for (const char* k : bad) {
    EXPECT_FALSE(ParseNoteVerifierKey(k).ok()) << k;
  }
  // Every single-character change breaks it (as golang's note_test checks).
  for (size_t i = 0; i < good.size(); ++i) {
    std::string k = good;
    ++k[i];
    EXPECT_FALSE(ParseNoteVerifierKey(k).ok()) << k;
  }
}

TEST(Keys, SpkiPemKnownVectorAndRoundTrip) {
  EXPECT_EQ(ToSpkiPem(PeterKey()), kPeterPem);
  absl::StatusOr<PublicKey> parsed = ParseSpkiPem(kPeterPem);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, PeterKey());

  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  PublicKey key;
  std::copy(pk, pk + 32, key.begin());
  EXPECT_EQ(*ParseSpkiPem(ToSpkiPem(key)), key);
  EXPECT_EQ(PublicKeyOf(SecretKeySpan(sk, 64)), key);
  absl::StatusOr<NoteVerifier> v = ParseNoteVerifierKey(NoteVerifierKey("shredd.example/log", key));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->key, key);
  EXPECT_EQ(v->name, "shredd.example/log");
}

TEST(Keys, SpkiPemRejectsOtherKeysAndGarbage) {
  absl::StatusOr<PublicKey> ec = ParseSpkiPem(kEcP256Pem);
  ASSERT_FALSE(ec.ok());
  EXPECT_TRUE(Contains(ec.status(), "not Ed25519")) << ec.status();
  EXPECT_FALSE(ParseSpkiPem("").ok());
  EXPECT_FALSE(ParseSpkiPem("-----BEGIN PUBLIC KEY-----\nAAAA\n"
                            "-----END PUBLIC KEY-----\n")
                   .ok());
  std::string truncated = kPeterPem;
  truncated.erase(30, 8);
  EXPECT_FALSE(ParseSpkiPem(truncated).ok());
}

TEST(Keys, ParsePublicKeyAcceptsPemAndVkey) {
  EXPECT_EQ(*ParsePublicKey(kPeterPem), PeterKey());
  EXPECT_EQ(*ParsePublicKey(std::string(kPeterVkey) + "\n"), PeterKey());
  EXPECT_EQ(*ParsePublicKey(std::string("  ") + kPeterVkey), PeterKey());
  EXPECT_FALSE(ParsePublicKey(kPeterKeyHex).ok());
  EXPECT_FALSE(ParsePublicKey(kEcP256Pem).ok());
}

TEST(Keys, KeyIdIsSha256OfRawKey) {
  // Computed independently: hashlib.sha256(raw key).hexdigest().
  EXPECT_EQ(KeyId(PeterKey()),
            "shredd:c7a9d541f116ae828b693ee8c89482bbe3ec786faa1df159677bd651"
            "50394f0f");
}

TEST(Keys, SignThenVerifyRoundTrip) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  PublicKey key;
  std::copy(pk, pk + 32, key.begin());
  const std::string sig = SignEd25519(SecretKeySpan(sk, 64), "message");
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_TRUE(VerifyEd25519(key, "message", sig).ok());
  EXPECT_FALSE(VerifyEd25519(key, "messagf", sig).ok());
  EXPECT_FALSE(VerifyEd25519(PeterKey(), "message", sig).ok());
}

}  // namespace
}  // namespace shredd::verify
