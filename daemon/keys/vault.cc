#include "daemon/keys/vault.h"

#include "daemon/base/strings.h"
#include "daemon/keys/vault_file.h"
#include "daemon/keys/vault_pkcs11.h"

namespace shredd {

absl::StatusOr<std::unique_ptr<Vault>> OpenVault(std::string_view spec) {
  if (spec.starts_with("file:")) return OpenFileVault(spec.substr(5));
  if (spec.starts_with("pkcs11:")) return OpenPkcs11Vault(spec.substr(7));
  // The spec may hold a PIN: never echo it.
  return absl::InvalidArgumentError("unknown vault scheme: expected file:PATH or pkcs11:module=...;token=...;pin=...");
}

absl::Status VaultUnavailable(std::string_view what, const absl::Status& s) {
  if (s.ok() || absl::IsCancelled(s)) return s;
  return absl::UnavailableError(StrCat(what, ": ", s.message()));
}

}  // namespace shredd
