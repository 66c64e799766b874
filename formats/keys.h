// Ed25519 public keys in the spellings shredd publishes, and Ed25519
// signing/verification (libsodium).
//
// A key is published three ways, all naming the same 32 raw bytes:
//   * SPKI PEM ("-----BEGIN PUBLIC KEY-----", OID 1.3.101.112, RFC 8410):
//     for openssl and most crypto libraries;
//   * C2SP signed-note verifier key "<name>+<8 hex key hash>+<base64>"
//     (c2sp.org/signed-note): for golang.org/x/mod/sumdb/note and tlog tools;
//   * KeyId "shredd:<hex SHA-256 of the raw key>": the DSSE keyid hint.

#ifndef SHREDD_FORMATS_KEYS_H_
#define SHREDD_FORMATS_KEYS_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shredd::verify {

// Raw Ed25519 public key (RFC 8032 encoding).
using PublicKey = std::array<uint8_t, 32>;

// libsodium's 64-byte Ed25519 secret key (seed || public key). Callers keep
// it in sodium_malloc'ed memory; this library never copies it.
using SecretKeySpan = std::span<const uint8_t, 64>;

// "-----BEGIN PUBLIC KEY-----\n<base64 DER SPKI>\n-----END PUBLIC KEY-----\n"
std::string ToSpkiPem(const PublicKey& key);

// Parses the first PEM "PUBLIC KEY" block in `pem`. Fails with
// InvalidArgument if there is none or if it is not an Ed25519 key.
absl::StatusOr<PublicKey> ParseSpkiPem(std::string_view pem);

// Parses either an SPKI PEM (if `text` contains "-----BEGIN") or a C2SP
// signed-note verifier key (surrounding whitespace is ignored).
absl::StatusOr<PublicKey> ParsePublicKey(std::string_view text);

// "shredd:" + 64 lowercase hex of SHA-256(raw key).
std::string KeyId(const PublicKey& key);

// C2SP signed-note key hash: the first 4 bytes, big-endian, of
// SHA-256(name || "\n" || 0x01 || key), 0x01 being the Ed25519 type byte.
uint32_t NoteKeyHash(std::string_view name, const PublicKey& key);

// "<name>+<8 lowercase hex of NoteKeyHash>+<base64(0x01 || key)>".
// Requires a valid key name (see ParseNoteVerifierKey).
std::string NoteVerifierKey(std::string_view name, const PublicKey& key);

struct NoteVerifier {
  std::string name;
  uint32_t key_hash = 0;
  PublicKey key{};
};

// Parses a verifier key. Fails with InvalidArgument if the name is empty or
// contains '+', whitespace or control characters, if the hash is not 8 hex
// digits, if the key is not base64(0x01 || 32 bytes), or if the hash does not
// match NoteKeyHash(name, key).
absl::StatusOr<NoteVerifier> ParseNoteVerifierKey(std::string_view vkey);

// OK iff `signature` (64 bytes) is a valid Ed25519 signature of `message`
// under `key`. Otherwise Unauthenticated (bad signature) or InvalidArgument
// (wrong signature length).
absl::Status VerifyEd25519(const PublicKey& key, std::string_view message, std::string_view signature);

// The public half of a libsodium secret key.
PublicKey PublicKeyOf(SecretKeySpan secret_key);

// Ed25519 signature (64 raw bytes) of `message`.
std::string SignEd25519(SecretKeySpan secret_key, std::string_view message);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_KEYS_H_
