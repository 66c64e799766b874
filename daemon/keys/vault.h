// Vault: where the root of the key tree and the daemon's signing identity live.
//
// Everything shredd writes to disk is ciphertext under keys that chain up to
// the root key held here. Destroying a root (DestroyRoot) is the one erasure
// that must be trustworthy; see docs/VAULT.md for what each backend guarantees.
//
// Roots are numbered by epoch. The key tree asks the vault to create the root
// of epoch e+1 while e still exists, commits its re-wrapped records, and only
// then destroys e. A vault may therefore hold two roots for a short time; on
// start-up the key tree destroys every root other than the committed one.
//
// Thread safety: implementations are safe for concurrent use.
#ifndef SHREDD_DAEMON_KEYS_VAULT_H_
#define SHREDD_DAEMON_KEYS_VAULT_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/base/secret.h"

namespace shredd {

using Ed25519PublicKey = std::array<uint8_t, 32>;
using Ed25519Signature = std::array<uint8_t, 64>;

class Vault {
 public:
  virtual ~Vault() = default;

  // Short backend name as it appears in certificates: "file" or "pkcs11".
  virtual std::string BackendName() const = 0;
  // Human-readable location (path or token label), never a secret.
  virtual std::string Describe() const = 0;

  // Epochs of the roots the vault currently holds, ascending.
  virtual absl::StatusOr<std::vector<uint64_t>> ListRoots() = 0;
  // Creates a fresh random 256-bit root for `epoch` and makes it durable before
  // returning. ALREADY_EXISTS if that epoch exists.
  virtual absl::Status CreateRoot(uint64_t epoch) = 0;
  // Destroys the root of `epoch` durably (as far as the backend can; see
  // docs/VAULT.md). OK if it does not exist.
  virtual absl::Status DestroyRoot(uint64_t epoch) = 0;

  // Authenticated encryption of a small secret (a child key) under the root of
  // `epoch`, bound to `associated_data`. The output is self-contained (nonce,
  // ciphertext, tag). NOT_FOUND if the root does not exist.
  virtual absl::StatusOr<std::string> WrapWithRoot(uint64_t epoch, std::span<const uint8_t> plaintext,
                                                   std::string_view associated_data) = 0;
  // Inverse of WrapWithRoot. DATA_LOSS if the ciphertext or associated data
  // was altered; NOT_FOUND if the root does not exist (e.g. destroyed).
  virtual absl::StatusOr<SecretBytes> UnwrapWithRoot(uint64_t epoch, std::string_view wrapped,
                                                     std::string_view associated_data) = 0;

  // The daemon's Ed25519 identity; created on first use and kept for life.
  virtual absl::StatusOr<Ed25519PublicKey> SigningPublicKey() = 0;
  // Whether the signing identity exists already (without creating it): a
  // data dir with a log must not get a new one silently
  // (TransparencyLog::CheckSigningKey).
  virtual absl::StatusOr<bool> HasSigningKey() = 0;
  // Pure Ed25519 (RFC 8032) signature over `message`.
  virtual absl::StatusOr<Ed25519Signature> Sign(std::string_view message) = 0;

  // Claims the vault's roots for the daemon whose data dir has the id
  // `owner` (docs/VAULT.md "One daemon per vault"), before the key tree
  // touches a root. FAILED_PRECONDITION, nothing changed, if the vault
  // names another daemon and !take_over. A backend that one process holds
  // by construction (the file vault's lock) accepts any owner.
  virtual absl::Status ClaimOwnership(std::string_view owner, bool take_over) {
    (void)owner;
    (void)take_over;
    return absl::OkStatus();
  }
};

// Opens a vault from a spec: "file:PATH" or
// "pkcs11:module=PATH;token=LABEL;pin=PIN" (pin may be given as pin-file=PATH
// or via the SHREDD_PKCS11_PIN environment variable).
absl::StatusOr<std::unique_ptr<Vault>> OpenVault(std::string_view spec);

// A failure of the vault while the daemon serves, as its callers see it. The
// vault is the daemon's own: a refusal of it (file permissions, an
// immutable file, a write-protected or removed token, a full disk) is a
// passing failure of the service, UNAVAILABLE with `what` and the vault's
// reason, never a verdict on the caller (PERMISSION_DENIED, UNAUTHENTICATED)
// and never one that makes an order fail for good. A cancellation stays one.
absl::Status VaultUnavailable(std::string_view what, const absl::Status& s);

}  // namespace shredd

#endif  // SHREDD_DAEMON_KEYS_VAULT_H_
