// Deterministic fixtures shared by the fuzz targets and by fuzz_seeds (the
// tool that writes the seed corpora): one Ed25519 key derived from a fixed
// seed, one certificate over five items with fixed salts (its manifest and
// receipts), and a small transparency log with signed checkpoints and
// tlog-proofs. Ed25519 signatures are deterministic, so the same bytes come
// out on every build and the committed seed corpora stay valid.
//
// Nothing here is secret: the key exists only to make fuzz inputs that pass
// signature checks, so the fuzzers reach the code behind them.

#ifndef SHREDD_FUZZ_FUZZ_FIXTURE_H_
#define SHREDD_FUZZ_FUZZ_FIXTURE_H_

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/merkle.h"
#include "formats/note.h"
#include "formats/tlog.h"

namespace shredd::fuzz {

// A fuzz target found a property violation (not a crash of the library
// itself): print it and abort so libFuzzer / the replay test reports it.
[[noreturn]] inline void Violation(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}
#define FUZZ_CHECK(cond)                                             \
  do {                                                               \
    if (!(cond)) ::shredd::fuzz::Violation(#cond " (" __FILE__ ")"); \
  } while (0)

inline constexpr std::string_view kLogOrigin = "fuzz.shredd.local/log";
inline constexpr std::string_view kCertificateId = "cert-fuzz-0001";
inline constexpr size_t kLogSize = 13;  // unbalanced on purpose

struct Fixture {
  std::array<uint8_t, 64> sk{};
  verify::PublicKey pub{};
  verify::NoteVerifier verifier;
  std::string vkey;  // note verifier key text
  std::string pem;   // SPKI PEM

  // Certificate.
  std::vector<verify::ItemEntry> items;  // as given (tree order in commitment)
  std::string statement;
  std::string envelope;
  std::string manifest;
  std::vector<std::string> receipts;      // one per tree index
  std::vector<std::string> item_digests;  // tree order
  verify::VerifiedCertificate certificate;

  // Transparency log.
  std::vector<std::string> log_entries;
  std::vector<verify::Hash> log_leaves;
  std::string checkpoint;           // signed, tree of kLogSize
  std::string small_checkpoint;     // signed, tree of 5
  std::vector<std::string> proofs;  // tlog-proof for each entry vs checkpoint

  verify::SecretKeySpan secret() const { return verify::SecretKeySpan(sk.data(), sk.size()); }
};

inline std::string DigestOf(std::string_view content) { return "sha256:" + verify::HexEncode(verify::Sha256(content)); }

inline Fixture BuildFixture() {
  if (sodium_init() < 0) std::abort();
  Fixture f;
  std::array<uint8_t, 32> seed;
  seed.fill(0x5a);
  crypto_sign_seed_keypair(f.pub.data(), f.sk.data(), seed.data());
  f.vkey = verify::NoteVerifierKey(kLogOrigin, f.pub);
  auto v = verify::ParseNoteVerifierKey(f.vkey);
  if (!v.ok()) std::abort();
  f.verifier = *v;
  f.pem = verify::ToSpkiPem(f.pub);

  const char* contents[][2] = {{"photo", "photo 1"},
                               {"photo", "photo 2"},
                               {"photo", "photo 3"},
                               {"model", "face-age-v1"},
                               {"model", "face-age-v1-distilled"}};
  uint8_t salt_byte = 1;
  for (const auto& c : contents) {
    verify::ItemEntry e;
    e.kind = c[0];
    e.digest = DigestOf(c[1]);
    e.size = std::string_view(c[1]).size();
    e.salt.fill(salt_byte++);
    f.items.push_back(e);
  }
  auto commitment = verify::ItemCommitment::Create(f.items);
  if (!commitment.ok()) std::abort();

  // The order's private fields, committed to as the daemon does (FORMATS.md).
  const std::string order_private = R"({"requester":"FTC","selectors":{"datasets":["dating-2014"]}})";
  std::string order_salt(32, '\x07');
  const std::string commitment_hex = verify::HexEncode(verify::Sha256(order_salt + order_private));

  nlohmann::ordered_json p;
  p["certificateId"] = kCertificateId;
  p["request"] = {{"id", "order-fuzz"}, {"reason", "fuzz fixture"}};
  p["order"] = {{"id", "order-fuzz"}, {"basis", "ftc-order"}, {"privateCommitment", commitment_hex}};
  p["method"] = {
      {"technique", "cryptographic-erase"}, {"standard", "NIST SP 800-88 Rev. 1"}, {"sanitization", "purge"}};
  p["destruction"] = {{"vaultBackend", "file"}, {"rootEpochDestroyed", 41}, {"rootEpochInstalled", 42}};
  p["times"] = {{"requested", "2026-11-26T04:20:00Z"},
                {"destroyed", "2026-11-26T04:27:09.123Z"},
                {"issued", "2026-11-26T04:27:09.200Z"}};
  p["items"] = commitment->ItemsPredicate();
  p["derivedModels"] = nlohmann::ordered_json::array();
  p["retainedUnderHold"] = nlohmann::ordered_json::array();
  p["shredd"] = {{"version", "0.1.0"}};
  auto statement = verify::StatementJson(p);
  if (!statement.ok()) std::abort();
  f.statement = *statement;
  f.envelope = verify::SignCertificate(f.statement, f.secret());

  // Manifest with the order's private fields revealed.
  nlohmann::ordered_json m = nlohmann::ordered_json::parse(commitment->ManifestJson(kCertificateId));
  m["order"] = {{"private", order_private}, {"salt", verify::HexEncode(order_salt)}};
  f.manifest = m.dump();
  for (uint64_t i = 0; i < commitment->size(); ++i) {
    f.receipts.push_back(*commitment->ReceiptJson(kCertificateId, i));
    f.item_digests.push_back(commitment->entries()[i].digest);
  }
  auto cert = verify::VerifyCertificate(f.envelope, f.pub);
  if (!cert.ok() || !verify::VerifyManifest(*cert, f.manifest).ok()) {
    std::fprintf(stderr, "fuzz fixture: certificate does not verify\n");
    std::abort();
  }
  f.certificate = *cert;

  // A log of kLogSize entries, checkpoints and inclusion proofs.
  for (size_t i = 0; i < kLogSize; ++i) {
    f.log_entries.push_back("shredd-log-entry-v1 fuzz " + std::to_string(i) + "\n");
    f.log_leaves.push_back(verify::LeafHash(f.log_entries.back()));
  }
  auto sign_checkpoint = [&](size_t n) {
    const verify::Hash root = verify::RootFromLeafHashes(std::span(f.log_leaves).first(n));
    return verify::SignNoteEd25519(verify::FormatCheckpointText(kLogOrigin, n, root), kLogOrigin, f.secret());
  };
  f.checkpoint = sign_checkpoint(kLogSize);
  f.small_checkpoint = sign_checkpoint(5);
  for (size_t i = 0; i < kLogSize; ++i) {
    verify::TlogProof proof;
    proof.index = i;
    proof.path = verify::InclusionProof(f.log_leaves, i);
    proof.checkpoint = f.checkpoint;
    if (i == 3) proof.extra = "custody of sha256:...";
    f.proofs.push_back(verify::FormatTlogProof(proof));
    if (!verify::VerifyTlogProof(f.proofs.back(), f.log_entries[i], f.verifier).ok()) {
      std::fprintf(stderr, "fuzz fixture: tlog-proof %zu does not verify\n", i);
      std::abort();
    }
  }
  return f;
}

// Built once per process (fuzz targets call it from every input).
inline const Fixture& GetFixture() {
  static const Fixture* fixture = new Fixture(BuildFixture());
  return *fixture;
}

inline std::string_view AsView(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

}  // namespace shredd::fuzz

#endif  // SHREDD_FUZZ_FUZZ_FIXTURE_H_
