// PKCS#11 vault backend (an HSM; SoftHSM2 in tests).
#ifndef SHREDD_DAEMON_KEYS_VAULT_PKCS11_H_
#define SHREDD_DAEMON_KEYS_VAULT_PKCS11_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

#include "daemon/keys/vault.h"

namespace shredd {

// `params` is the part of the vault spec after "pkcs11:", e.g.
// "module=/usr/lib/softhsm/libsofthsm2.so;token=shredd;pin=1234".
absl::StatusOr<std::unique_ptr<Vault>> OpenPkcs11Vault(std::string_view params);

}  // namespace shredd

#endif  // SHREDD_DAEMON_KEYS_VAULT_PKCS11_H_
