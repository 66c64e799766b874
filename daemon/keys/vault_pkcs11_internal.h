// INTERNAL to daemon/keys: not part of the library's interface. The
// declarations the two halves of the PKCS#11 vault share:
//   vault_pkcs11_module.cc  the module, session and login plumbing: error
//                           reporting, the vault parameters, the process-wide
//                           module registry, object labels, finding the slot;
//   vault_pkcs11.cc         the Vault implementation (root keys, wrapping, the
//                           signing key) and OpenPkcs11Vault.
// Include it from those two files only, and last: it includes p11-kit's
// pkcs11.h, after which nothing may be included. Everyone else uses
// vault_pkcs11.h.
#ifndef SHREDD_DAEMON_KEYS_VAULT_PKCS11_INTERNAL_H_
#define SHREDD_DAEMON_KEYS_VAULT_PKCS11_INTERNAL_H_

#include <sodium.h>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/base/secret.h"

// Last: p11-kit's pkcs11.h (compat mode) leaves some lower-case helper macros
// defined (iv_len, tag_bits, ...), so nothing may be included after it.
#include <p11-kit/pkcs11.h>

#ifndef CKR_AEAD_DECRYPT_FAILED  // PKCS#11 3.0
#define CKR_AEAD_DECRYPT_FAILED (0x35UL)
#endif

namespace shredd::pkcs11_internal {

// Where the PIN is read from when neither pin= nor pin-file= is given.
constexpr const char* kPinEnv = "SHREDD_PKCS11_PIN";

// ---------------------------------------------------------------------------
// Error reporting

// The name of `rv` ("CKR_PIN_INCORRECT"), for messages.
const char* CkrName(CK_RV rv);

// The status code a failure `rv` is reported with.
absl::StatusCode CodeFor(CK_RV rv);

// "pkcs11: C_Login: CKR_PIN_INCORRECT (0xa0) (context)". Never pass secrets
// in `context`.
absl::Status P11Error(std::string_view function, CK_RV rv, std::string_view context = {});

// ---------------------------------------------------------------------------
// Parameters

struct Params {
  std::string module;
  std::optional<std::string> token;
  std::optional<CK_SLOT_ID> slot;
  std::string instance;  // Label namespace; empty for the default.
  SecretBytes pin;
  bool have_pin = false;
};

// Parses the vault parameters (the part of the spec after "pkcs11:", see
// OpenPkcs11Vault). Without pin= the PIN comes from pin-file=, else from
// $SHREDD_PKCS11_PIN, else there is none (have_pin false).
absl::StatusOr<Params> ParseParams(std::string_view text);

// ---------------------------------------------------------------------------
// Process-wide module registry.
//
// C_Initialize/C_Finalize and the login state are per process and module, so
// vaults that share a module share them. Modules are never dlclose'd: several
// PKCS#11 libraries (and the OpenSSL they link) do not survive unloading.

// A keyed hash of the PIN a slot was logged in with, so that a second vault
// opened with a different PIN is refused even though the token would answer
// CKR_USER_ALREADY_LOGGED_IN without checking it.
using PinTag = std::array<uint8_t, crypto_generichash_BYTES>;

PinTag TagPin(std::span<const uint8_t> pin);

struct Module {
  std::string path;
  void* dl = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;
  // Guarded by RegistryMutex().
  int users = 0;
  bool finalize_when_unused = false;
  struct Login {
    int users = 0;
    PinTag pin_tag{};
  };
  std::map<CK_SLOT_ID, Login> logins;
};

std::mutex& RegistryMutex();

// Loads and (for its first user) initialises the module at `path`; every
// successful call is one reference, given back with ReleaseModule.
absl::StatusOr<Module*> AcquireModule(const std::string& path);

// Gives back one reference; the last one forgets the logins and finalises
// the module if this process initialised it.
void ReleaseModule(Module* m);

// ---------------------------------------------------------------------------
// Labels

// A blank-padded CK_UTF8CHAR[32] label (token, manufacturer) without the
// padding.
std::string TrimLabel(const CK_UTF8CHAR (&label)[32]);

// "shredd-root-" or, with an instance name, "shredd-NAME-root-".
std::string RootLabelPrefix(std::string_view instance);

// "shredd-signing" or, with an instance name, "shredd-NAME-signing".
std::string SigningLabel(std::string_view instance);

// "shredd-owner" or "shredd-NAME-owner": the data object that names the
// daemon the label namespace belongs to (Vault::ClaimOwnership).
std::string OwnerLabel(std::string_view instance);

// Epoch of a root label with the given prefix: canonical decimal only, so
// that "shredd-root-" never matches another instance's "shredd-root-x-1".
std::optional<uint64_t> ParseRootLabel(std::string_view prefix, std::string_view label);

// CKA_ID of the root of `epoch`: the epoch as 8 bytes big-endian.
std::array<uint8_t, 8> EpochId(uint64_t epoch);

// ---------------------------------------------------------------------------
// Slots

// Finds the slot holding the wanted token. Returns its label too.
absl::StatusOr<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>> FindSlot(Module* m, const Params& p);

// The token directory of a SoftHSM2 module with the file object store, read
// from its configuration file (SOFTHSM2_CONF, else the packaged default), or
// "" if the module is not SoftHSM or the directory cannot be determined.
std::string SoftHsmTokenDir(Module* m);

}  // namespace shredd::pkcs11_internal

#endif  // SHREDD_DAEMON_KEYS_VAULT_PKCS11_INTERNAL_H_
