#include "daemon/base/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"

#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"

namespace shredd {

absl::StatusOr<int> LockDirectory(const std::string& dir, std::string_view file, std::string_view busy) {
  const std::string path = StrCat(dir, "/", file);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoStatus("opening the lock", path, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (err != EWOULDBLOCK) return ErrnoStatus("locking", path, err);
    std::string pid(buf, n > 0 ? static_cast<size_t>(n) : 0);
    absl::StripAsciiWhitespace(&pid);
    return absl::FailedPreconditionError(
        StrCat(busy, pid.empty() ? "" : StrCat(" (pid ", pid, ")"), ": it holds ", path));
  }
  const std::string me = StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) < 0) {
    // Only informational; the lock is what counts.
  }
  return fd;
}

absl::StatusOr<int> LockDataDir(const std::string& data_dir) {
  if (auto s = MakeDirs(data_dir, 0700); !s.ok()) return s;
  auto fd = LockDirectory(data_dir, "shredd.lock", StrCat("another shredd is running on data dir ", data_dir));
  if (!fd.ok() && absl::IsFailedPrecondition(fd.status())) {
    return absl::FailedPreconditionError(
        StrCat(fd.status().message(), "; stop it first (nothing was opened or changed)"));
  }
  return fd;
}

}  // namespace shredd
