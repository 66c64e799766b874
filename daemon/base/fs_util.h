// Small POSIX file helpers with explicit durability.
#ifndef SHREDD_DAEMON_BASE_FS_UTIL_H_
#define SHREDD_DAEMON_BASE_FS_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shredd {

absl::Status ErrnoStatus(std::string_view what, std::string_view path, int err);
absl::Status MakeDirs(const std::string& path, int mode = 0700);
absl::Status FsyncDir(const std::string& dir);
// Writes `contents` to `path` atomically and durably: temp file, fsync, rename,
// directory fsync. The file gets `mode`.
// Writes all of `data` to `fd` (retrying short writes and EINTR).
absl::Status WriteAll(int fd, std::string_view data, const std::string& path);
absl::Status WriteFileDurably(const std::string& path, std::string_view contents, int mode = 0600);
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_size = 1 << 20);
// Overwrites the file with zeros, fsyncs, unlinks, and fsyncs the directory.
absl::Status OverwriteAndUnlink(const std::string& path);
std::string DirName(const std::string& path);
// OK if `path` (followed if a link) is a directory owned by this process's
// user that no one else can write; else FAILED_PRECONDITION naming `what`,
// the mode and the owner. NOT_FOUND if it does not exist.
absl::Status CheckOwnDirectory(const std::string& path, std::string_view what);

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_FS_UTIL_H_
