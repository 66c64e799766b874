// The file vault: a directory, kept outside the data dir, holding the root
// key of each live epoch and the daemon's signing seed. See docs/VAULT.md for
// what overwrite-and-unlink erasure can and cannot guarantee.
#ifndef SHREDD_DAEMON_KEYS_VAULT_FILE_H_
#define SHREDD_DAEMON_KEYS_VAULT_FILE_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

#include "daemon/keys/vault.h"

namespace shredd {

// Opens (creating if needed, mode 0700) the vault directory `dir`.
absl::StatusOr<std::unique_ptr<Vault>> OpenFileVault(std::string_view dir);

}  // namespace shredd

#endif  // SHREDD_DAEMON_KEYS_VAULT_FILE_H_
