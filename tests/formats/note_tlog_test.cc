// Signed notes (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint)
// and tlog-proof files (c2sp.org/tlog-proof@v1): known answers from
// golang.org/x/mod/sumdb/note's tests, round trips, and every rejection the
// issue lists (tampered checkpoint, wrong key, unknown key name, wrong index
// or size, truncated proof, bad base64, wrong origin, rollback, fork).

#include <sodium.h>

#include <array>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/merkle.h"
#include "formats/note.h"
#include "formats/tlog.h"

namespace shredd::verify {
namespace {

using SecretKey = std::array<uint8_t, 64>;

// golang.org/x/mod/sumdb/note test key "PeterNeumann".
constexpr char kPeterSkeyB64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";  // 0x01 || seed
constexpr char kPeterVkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr char kEnochVkey[] = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
constexpr char kText[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr char kPeterSig[] =
    "\xe2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
constexpr char kEnochSig[] =
    "\xe2\x80\x94 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

SecretKey KeyFromSeed(std::string_view seed) {
  SecretKey sk;
  PublicKey pk;
  EXPECT_EQ(seed.size(), 32u);
  crypto_sign_seed_keypair(pk.data(), sk.data(), reinterpret_cast<const unsigned char*>(seed.data()));
  return sk;
}

SecretKey PeterKey() {
  auto raw = Base64Decode(kPeterSkeyB64);
  EXPECT_TRUE(raw.ok());
  return KeyFromSeed(std::string_view(*raw).substr(1));
}

SecretKey TestKey(char fill) { return KeyFromSeed(std::string(32, fill)); }

NoteVerifier Vkey(std::string_view vkey) {
  auto v = ParseNoteVerifierKey(vkey);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : NoteVerifier{};
}

NoteVerifier VkeyOf(std::string_view name, const SecretKey& sk) { return Vkey(NoteVerifierKey(name, PublicKeyOf(sk))); }

void ExpectError(const absl::Status& s, absl::StatusCode code, std::string_view needle) {
  EXPECT_EQ(s.code(), code) << s;
  const std::string message(s.message());
  EXPECT_NE(message.find(needle), std::string::npos) << "\"" << message << "\" lacks \"" << needle << "\"";
}

// ---------------------------------------------------------------- notes

TEST(Note, SignsExactlyLikeGoSumdbNote) {
  const std::string want = std::string(kText) + "\n" + kPeterSig;
  const SecretKey sk = PeterKey();
  EXPECT_EQ(NoteVerifierKey("PeterNeumann", PublicKeyOf(sk)), kPeterVkey);
  EXPECT_EQ(SignNoteEd25519(kText, "PeterNeumann", sk), want);
  auto n = OpenNote(want, Vkey(kPeterVkey));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->text, kText);
  ASSERT_EQ(n->signatures.size(), 1u);
  EXPECT_EQ(n->signatures[0].key_id, 0xc74f20a3u);
}

TEST(Note, IgnoresSignaturesByOtherKeys) {
  const std::string both = std::string(kText) + "\n" + kPeterSig + kEnochSig;
  EXPECT_TRUE(OpenNote(both, Vkey(kPeterVkey)).ok());
  EXPECT_TRUE(OpenNote(both, Vkey(kEnochVkey)).ok());
  // A garbage signature by a third, unknown key does not matter.
  const std::string third = std::string(kText) + "\n" + kPeterSig + "\xe2\x80\x94 Mallory AAAAAAAAAAAAAAAA\n";
  EXPECT_TRUE(OpenNote(third, Vkey(kPeterVkey)).ok());
}

TEST(Note, RejectsTamperedText) {
  std::string msg = std::string(kText) + "\n" + kPeterSig;
  msg[3] = 'X';
  ExpectError(OpenNote(msg, Vkey(kPeterVkey)).status(), absl::StatusCode::kUnauthenticated, "does not verify");
  // A bad signature by the known key rejects the note even if another known
  // signature is fine.
  std::string sig = kPeterSig;
  sig[sig.size() - 10] = sig[sig.size() - 10] == 'A' ? 'B' : 'A';
  ExpectError(OpenNote(std::string(kText) + "\n" + sig + kEnochSig, Vkey(kPeterVkey)).status(),
              absl::StatusCode::kUnauthenticated, "does not verify");
}

TEST(Note, RejectsWrongKeyAndUnknownKeyName) {
  const std::string msg = std::string(kText) + "\n" + kPeterSig;
  // Same name, different key: the key IDs differ.
  ExpectError(OpenNote(msg, VkeyOf("PeterNeumann", TestKey('k'))).status(), absl::StatusCode::kUnauthenticated,
              "different key named PeterNeumann");
  ExpectError(OpenNote(msg, Vkey(kEnochVkey)).status(), absl::StatusCode::kUnauthenticated, "unknown key name");
}

TEST(Note, RejectsMalformedNotes) {
  const std::string sig = kPeterSig;
  const NoteVerifier v = Vkey(kPeterVkey);
  struct Case {
    std::string msg;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {std::string(kText) + sig, "no blank line"},
      {std::string(kText) + "\n" + sig.substr(0, sig.size() - 1), "newline"},
      {std::string(kText) + "\n", "no signature lines"},
      {std::string(kText) + "\n" + "- PeterNeumann x08go/ZJ=\n", "does not start with"},
      {std::string(kText) + "\n" + "\xe2\x80\x94 PeterNeumann x08go/ZJ!!==\n", "bad base64"},
      {std::string(kText) + "\n" + "\xe2\x80\x94 PeterNeumann\n", "no signature after the key name"},
      {std::string(kText) + "\n" + "\xe2\x80\x94 PeterNeumann AAAA\n", "too short"},
      {"tab\there\n\n" + sig, "control character"},
      {"bad \xff utf8\n\n" + sig, "UTF-8"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.needle);
    ExpectError(OpenNote(c.msg, v).status(), absl::StatusCode::kInvalidArgument, c.needle);
  }
}

// ---------------------------------------------------------------- checkpoints

constexpr char kOrigin[] = "example.test/log";

std::vector<Hash> Leaves(uint64_t n) {
  std::vector<Hash> out;
  for (uint64_t i = 0; i < n; ++i) out.push_back(LeafHash("entry " + std::to_string(i)));
  return out;
}

std::string SignedCheckpoint(uint64_t size, const SecretKey& sk = TestKey('a'), std::string_view origin = kOrigin) {
  const std::vector<Hash> leaves = Leaves(size);
  return SignNoteEd25519(FormatCheckpointText(origin, size, RootFromLeafHashes(leaves)), origin, sk);
}

TEST(Checkpoint, FormatsAndParses) {
  const Hash root = RootFromLeafHashes(Leaves(5));
  const std::string text = FormatCheckpointText(kOrigin, 5, root);
  EXPECT_EQ(text, std::string(kOrigin) + "\n5\n" +
                      Base64Encode(std::string_view(reinterpret_cast<const char*>(root.data()), 32)) + "\n");
  auto c = ParseCheckpointText(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->origin, kOrigin);
  EXPECT_EQ(c->size, 5u);
  EXPECT_EQ(c->root, root);
  auto ext = ParseCheckpointText(text + "extension line\n");
  ASSERT_TRUE(ext.ok());
  EXPECT_EQ(ext->extensions, std::vector<std::string>{"extension line"});
  // The empty tree, exactly as C2SP and Go write it.
  EXPECT_EQ(FormatCheckpointText("o", 0, EmptyRoot()), "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
}

TEST(Checkpoint, RejectsMalformedText) {
  const std::string r = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
  struct Case {
    std::string text, needle;
  };
  const std::vector<Case> cases = {
      {"o\n5\n", "lines"},
      {"o\n5\n" + r, "newline"},
      {"o\n05\n" + r + "\n", "leading zero"},
      {"o\n-5\n" + r + "\n", "not a decimal"},
      {"o\n99999999999999999999\n" + r + "\n", "too large"},
      {"o\n5\n" + r.substr(0, 43) + "\n", "not valid base64"},
      {"o\n5\nAAAA\n", "not 32"},
      {"\n5\n" + r + "\n", "line 1 is empty"},
      {"o\n5\n" + r + "\n\n", "line 4 is empty"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.needle);
    ExpectError(ParseCheckpointText(c.text).status(), absl::StatusCode::kInvalidArgument, c.needle);
  }
}

TEST(Checkpoint, VerifiesSignatureAndOrigin) {
  const SecretKey sk = TestKey('a');
  const NoteVerifier v = VkeyOf(kOrigin, sk);
  const std::string note = SignedCheckpoint(7, sk);
  auto c = VerifyCheckpoint(note, v);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->size, 7u);
  EXPECT_EQ(c->signed_note, note);
  // Tampered: another size.
  std::string tampered = note;
  tampered.replace(tampered.find("\n7\n"), 3, "\n8\n");
  ExpectError(VerifyCheckpoint(tampered, v).status(), absl::StatusCode::kUnauthenticated, "does not verify");
  // Wrong key (same name), unknown key name.
  ExpectError(VerifyCheckpoint(note, VkeyOf(kOrigin, TestKey('b'))).status(), absl::StatusCode::kUnauthenticated,
              "different key");
  ExpectError(VerifyCheckpoint(note, VkeyOf("other.test/log", sk)).status(), absl::StatusCode::kUnauthenticated,
              "unknown key name");
  // Signed by the right key name, but for another log.
  const std::string foreign = SignNoteEd25519(FormatCheckpointText("other.test/log", 1, LeafHash("x")), kOrigin, sk);
  ExpectError(VerifyCheckpoint(foreign, v).status(), absl::StatusCode::kFailedPrecondition, "wrong origin");
  EXPECT_TRUE(VerifyCheckpoint(foreign, v, "other.test/log").ok());
}

// ---------------------------------------------------------------- tlog-proof

class TlogProofTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSize = 13;
  std::string Entry(uint64_t i) const { return "entry " + std::to_string(i); }
  std::string ProofFile(uint64_t index, uint64_t size = kSize) const {
    TlogProof p;
    p.index = index;
    p.path = InclusionProof(Leaves(size), index);
    p.checkpoint = SignedCheckpoint(kSize, sk_);
    return FormatTlogProof(p);
  }
  SecretKey sk_ = TestKey('a');
  NoteVerifier v_ = VkeyOf(kOrigin, sk_);
};

TEST_F(TlogProofTest, RoundTripsAndVerifiesEveryIndex) {
  for (uint64_t i = 0; i < kSize; ++i) {
    const std::string file = ProofFile(i);
    EXPECT_TRUE(file.starts_with("c2sp.org/tlog-proof@v1\nindex " + std::to_string(i) + "\n")) << file;
    auto p = ParseTlogProof(file);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->index, i);
    EXPECT_EQ(FormatTlogProof(*p), file);
    auto r = VerifyTlogProof(file, Entry(i), v_, i);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->index, i);
    EXPECT_EQ(r->checkpoint.size, kSize);
  }
  TlogProof with_extra = *ParseTlogProof(ProofFile(3));
  with_extra.extra = std::string("opaque\x00bytes", 12);
  const std::string file = FormatTlogProof(with_extra);
  EXPECT_NE(file.find("\nextra "), std::string::npos);
  auto back = ParseTlogProof(file);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->extra, with_extra.extra);
  EXPECT_TRUE(VerifyTlogProof(file, Entry(3), v_).ok());
}

TEST_F(TlogProofTest, RejectsWrongEntryIndexAndSize) {
  ExpectError(VerifyTlogProof(ProofFile(4), Entry(5), v_).status(), absl::StatusCode::kInvalidArgument,
              "does not prove");
  // The index line altered: the path no longer leads to the root.
  std::string moved = ProofFile(4);
  moved.replace(moved.find("index 4"), 7, "index 5");
  ExpectError(VerifyTlogProof(moved, Entry(5), v_).status(), absl::StatusCode::kInvalidArgument, "does not prove");
  ExpectError(VerifyTlogProof(ProofFile(4), Entry(4), v_, 5).status(), absl::StatusCode::kInvalidArgument,
              "not for index 5");
  // A path computed for another tree size than the checkpoint's.
  ExpectError(VerifyTlogProof(ProofFile(4, 12), Entry(4), v_).status(), absl::StatusCode::kInvalidArgument,
              "does not prove");
  ExpectError(VerifyTlogProof(ProofFile(12, 16), Entry(12), v_).status(), absl::StatusCode::kInvalidArgument,
              "does not prove");
  std::string beyond = ProofFile(4);
  beyond.replace(beyond.find("index 4"), 7, "index 13");
  ExpectError(VerifyTlogProof(beyond, Entry(13), v_).status(), absl::StatusCode::kInvalidArgument, "covers only 13");
}

TEST_F(TlogProofTest, RejectsTruncatedAndMalformedProofs) {
  const std::string file = ProofFile(6);
  // One path hash dropped.
  std::string short_path = file;
  const size_t first_hash = short_path.find('\n', short_path.find("index 6")) + 1;
  short_path.erase(first_hash, 45);
  ExpectError(VerifyTlogProof(short_path, Entry(6), v_).status(), absl::StatusCode::kInvalidArgument, "too few");
  // Cut anywhere before the checkpoint.
  for (size_t cut : {size_t{10}, first_hash + 20, file.find("\n\n") + 1}) {
    SCOPED_TRACE(cut);
    ExpectError(VerifyTlogProof(file.substr(0, cut), Entry(6), v_).status(), absl::StatusCode::kInvalidArgument,
                "truncated");
  }
  // Cut inside the checkpoint.
  ExpectError(VerifyTlogProof(file.substr(0, file.size() - 20), Entry(6), v_).status(),
              absl::StatusCode::kInvalidArgument, "checkpoint");
  std::string bad_b64 = file;
  bad_b64[first_hash + 3] = '!';
  ExpectError(VerifyTlogProof(bad_b64, Entry(6), v_).status(), absl::StatusCode::kInvalidArgument, "base64");
  std::string header = file;
  header.replace(0, 22, "c2sp.org/tlog-proof@v2");
  ExpectError(VerifyTlogProof(header, Entry(6), v_).status(), absl::StatusCode::kInvalidArgument, "not a tlog-proof");
  std::string index = file;
  index.replace(index.find("index 6"), 7, "index 06");
  ExpectError(VerifyTlogProof(index, Entry(6), v_).status(), absl::StatusCode::kInvalidArgument, "leading zero");
}

TEST_F(TlogProofTest, RejectsTamperedCheckpointAndWrongKey) {
  std::string file = ProofFile(2);
  std::string tampered = file;
  tampered.replace(tampered.find("\n13\n"), 4, "\n14\n");
  ExpectError(VerifyTlogProof(tampered, Entry(2), v_).status(), absl::StatusCode::kUnauthenticated, "does not verify");
  ExpectError(VerifyTlogProof(file, Entry(2), VkeyOf(kOrigin, TestKey('z'))).status(),
              absl::StatusCode::kUnauthenticated, "different key");
}

// ---------------------------------------------------------------- consistency

TEST(CheckpointConsistency, AcceptsGrowthRejectsRollbackAndFork) {
  const SecretKey sk = TestKey('a');
  const NoteVerifier v = VkeyOf(kOrigin, sk);
  const Checkpoint c5 = *VerifyCheckpoint(SignedCheckpoint(5, sk), v);
  const Checkpoint c9 = *VerifyCheckpoint(SignedCheckpoint(9, sk), v);
  const std::vector<Hash> leaves = Leaves(9);
  const std::vector<Hash> proof = ConsistencyProof(leaves, 5);
  EXPECT_TRUE(VerifyCheckpointConsistency(c5, c9, proof).ok());
  EXPECT_TRUE(VerifyCheckpointConsistency(c9, c9, {}).ok());
  ExpectError(VerifyCheckpointConsistency(c9, c5, {}), absl::StatusCode::kFailedPrecondition, "ROLLBACK");
  // A forked log: different entries at the same size.
  Checkpoint fork9 = c9;
  fork9.root = LeafHash("something else");
  ExpectError(VerifyCheckpointConsistency(c9, fork9, {}), absl::StatusCode::kFailedPrecondition, "FORK");
  ExpectError(VerifyCheckpointConsistency(c5, fork9, proof), absl::StatusCode::kFailedPrecondition, "FORK");
  // A truncated proof.
  ExpectError(VerifyCheckpointConsistency(c5, c9, std::span(proof).first(proof.size() - 1)),
              absl::StatusCode::kFailedPrecondition, "FORK");
  // From the empty tree no proof is needed.
  const Checkpoint c0 = *VerifyCheckpoint(SignedCheckpoint(0, sk), v);
  EXPECT_TRUE(VerifyCheckpointConsistency(c0, c9, {}).ok());
  Checkpoint other = c9;
  other.origin = "other.test/log";
  ExpectError(VerifyCheckpointConsistency(c5, other, proof), absl::StatusCode::kInvalidArgument, "different logs");
}

}  // namespace
}  // namespace shredd::verify
