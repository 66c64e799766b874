// Where the data dir and a file vault may live, and who may read them
// (docs/CONFIG.md "Unsafe layouts"). Checked by `--check-config` and before
// the daemon opens anything; reads the filesystem, writes nothing.
//
//   - refused: a file vault inside the data dir, containing it, or the same
//     directory (a copy or backup of the data dir would hold the root key:
//     invariant 1). Paths are compared canonically (see CanonicalPath), so
//     symlinks and ".." do not hide an overlap.
//   - refused: a file vault directory, or a key file in it, that its group or
//     other users may read, write or search (mode & 077): the root key and
//     the signing key are the daemon's only secrets.
//   - refused: a config file that a user other than root and the daemon's
//     own could change (CheckConfigFile): it decides who holds which role.
//   - warned: a data dir that its group or others may read or write. It holds
//     only ciphertext, sealed records and keyed hashes (readable, it leaks
//     sizes and counts; writable, tampering is detected as DATA_LOSS), and
//     some sites share it with a backup group on purpose.
#ifndef SHREDD_DAEMON_APP_PATH_SAFETY_H_
#define SHREDD_DAEMON_APP_PATH_SAFETY_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/config/config.h"

namespace shredd {

// An absolute path without symlinks, "." or "..": the realpath of the
// longest prefix of `path` that exists, then the rest of it normalised
// lexically. Relative paths are taken from the working directory.
absl::StatusOr<std::string> CanonicalPath(std::string_view path);

// True if `inner` is `outer` or lies below it (both canonical).
bool PathWithin(std::string_view inner, std::string_view outer);

// The checks above. FAILED_PRECONDITION with the reason for a refused
// layout; `warnings` (if not null) gets one line per warning.
absl::Status CheckStoragePaths(const DaemonConfig& config, std::vector<std::string>* warnings);

// The --config file, read at start and on every SIGHUP, grants roles: like
// sshd and sudo, refuse one that another local user could change or replace.
// The file must be owned by root or the daemon's effective uid and not be
// writable by its group or others; so must every directory on its path (as
// given and after symlinks), except that a directory others may write is
// allowed with the sticky bit (/tmp). FAILED_PRECONDITION naming the file or
// directory, its mode and owner, and the chmod or chown that fixes it. A
// file that does not exist passes (LoadConfig reports it).
absl::Status CheckConfigFile(const std::string& path);

}  // namespace shredd

#endif  // SHREDD_DAEMON_APP_PATH_SAFETY_H_
