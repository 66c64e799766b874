#include "formats/keys.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "formats/encoding.h"
#include "formats/merkle.h"
#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;

namespace {

constexpr uint8_t kNoteEd25519Type = 0x01;

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// Printable ASCII without '+': a strict subset of what c2sp.org/signed-note
// allows (non-empty, no Unicode spaces, no '+').
bool IsValidNoteName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '+') return false;
  }
  return true;
}

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no details";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

}  // namespace

std::string ToSpkiPem(const PublicKey& key) {
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size()));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (pkey == nullptr || bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) {
    std::abort();  // only on allocation failure
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<PublicKey> ParseSpkiPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        Cat("no PEM PUBLIC KEY (SubjectPublicKeyInfo) block could be read: ", OpenSslError()));
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        Cat("public key is ", OBJ_nid2sn(EVP_PKEY_get_base_id(pkey.get())), ", not Ed25519"));
  }
  PublicKey key;
  size_t len = key.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), key.data(), &len) != 1 || len != key.size()) {
    return absl::InvalidArgumentError(Cat("cannot extract raw Ed25519 public key: ", OpenSslError()));
  }
  return key;
}

absl::StatusOr<PublicKey> ParsePublicKey(std::string_view text) {
  if (absl::StrContains(Sv(text), "-----BEGIN")) return ParseSpkiPem(text);
  const absl::string_view stripped = absl::StripAsciiWhitespace(Sv(text));
  absl::StatusOr<NoteVerifier> v = ParseNoteVerifierKey(std::string_view(stripped.data(), stripped.size()));
  if (!v.ok()) {
    return absl::InvalidArgumentError(
        Cat("public key is neither an SPKI PEM nor a valid signed-note verifier "
            "key: ",
            v.status().message()));
  }
  return v->key;
}

std::string KeyId(const PublicKey& key) {
  return Cat("shredd:", HexEncode(Sha256(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()))));
}

uint32_t NoteKeyHash(std::string_view name, const PublicKey& key) {
  std::string input(name);
  input.push_back('\n');
  input.push_back(static_cast<char>(kNoteEd25519Type));
  input.append(reinterpret_cast<const char*>(key.data()), key.size());
  const Hash h = Sha256(input);
  return (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | uint32_t{h[3]};
}

std::string NoteVerifierKey(std::string_view name, const PublicKey& key) {
  std::string typed_key(1, static_cast<char>(kNoteEd25519Type));
  typed_key.append(reinterpret_cast<const char*>(key.data()), key.size());
  return absl::StrFormat("%s+%08x+%s", Sv(name), NoteKeyHash(name, key), Base64Encode(typed_key));
}

absl::StatusOr<NoteVerifier> ParseNoteVerifierKey(std::string_view vkey) {
  // "<name>+<hash>+<key>"; the base64 key may itself contain '+'.
  const size_t plus1 = vkey.find('+');
  const size_t plus2 = plus1 == std::string_view::npos ? plus1 : vkey.find('+', plus1 + 1);
  if (plus2 == std::string_view::npos) {
    return absl::InvalidArgumentError("verifier key must be <name>+<hash>+<base64 key>");
  }
  const std::string_view name = vkey.substr(0, plus1);
  const std::string_view hash_hex = vkey.substr(plus1 + 1, plus2 - plus1 - 1);
  const std::string_view key_b64 = vkey.substr(plus2 + 1);
  if (!IsValidNoteName(name)) {
    return absl::InvalidArgumentError(
        Cat("invalid key name \"", absl::CHexEscape(Sv(name)), "\": must be non-empty printable ASCII without '+'"));
  }
  uint32_t want_hash = 0;
  bool hash_ok = hash_hex.size() == 8;
  for (char c : hash_hex) {
    const char lc = absl::ascii_tolower(c);
    if (lc >= '0' && lc <= '9') {
      want_hash = (want_hash << 4) | static_cast<uint32_t>(lc - '0');
    } else if (lc >= 'a' && lc <= 'f') {
      want_hash = (want_hash << 4) | static_cast<uint32_t>(lc - 'a' + 10);
    } else {
      hash_ok = false;
    }
  }
  if (!hash_ok) {
    return absl::InvalidArgumentError(
        Cat("verifier key hash \"", absl::CHexEscape(Sv(hash_hex)), "\" is not 8 hex digits"));
  }
  absl::StatusOr<std::string> typed_key = Base64Decode(key_b64);
  if (!typed_key.ok()) {
    return absl::InvalidArgumentError(Cat("verifier key material: ", typed_key.status().message()));
  }
  if (typed_key->size() != 33 || static_cast<uint8_t>((*typed_key)[0]) != kNoteEd25519Type) {
    return absl::InvalidArgumentError("verifier key is not an Ed25519 key (want 0x01 followed by 32 bytes)");
  }
  NoteVerifier v;
  v.name = std::string(name);
  std::memcpy(v.key.data(), typed_key->data() + 1, v.key.size());
  v.key_hash = NoteKeyHash(name, v.key);
  if (v.key_hash != want_hash) {
    return absl::InvalidArgumentError(
        absl::StrFormat("verifier key hash %08x does not match name and key (computed %08x)", want_hash, v.key_hash));
  }
  return v;
}

absl::Status VerifyEd25519(const PublicKey& key, std::string_view message, std::string_view signature) {
  if (signature.size() != crypto_sign_BYTES) {
    return absl::InvalidArgumentError(Cat("Ed25519 signature must be 64 bytes, got ", signature.size()));
  }
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                  reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                                  key.data()) != 0) {
    return absl::UnauthenticatedError("signature does not verify under the given key");
  }
  return absl::OkStatus();
}

PublicKey PublicKeyOf(SecretKeySpan secret_key) {
  PublicKey key;
  crypto_sign_ed25519_sk_to_pk(key.data(), secret_key.data());
  return key;
}

std::string SignEd25519(SecretKeySpan secret_key, std::string_view message) {
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(), secret_key.data());
  return sig;
}

}  // namespace shredd::verify
