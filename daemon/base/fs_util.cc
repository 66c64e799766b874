#include "daemon/base/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "daemon/base/strings.h"

namespace shredd {

absl::Status ErrnoStatus(std::string_view what, std::string_view path, int err) {
  std::string msg = StrCat(what, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    default:
      return absl::InternalError(msg);
  }
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

absl::Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  for (size_t pos = 1;; ++pos) {
    pos = path.find('/', pos);
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus("cannot create directory", prefix, errno);
    }
    if (pos == std::string::npos) break;
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open directory", dir, errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus("cannot fsync directory", dir, err);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteFileDurably(const std::string& path, std::string_view contents, int mode) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus("cannot create", tmp, errno);
  absl::Status s = WriteAll(fd, contents, tmp);
  if (s.ok() && fsync(fd) != 0) s = ErrnoStatus("cannot fsync", tmp, errno);
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus("cannot rename to", path, errno);
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return FsyncDir(DirName(path));
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path, errno);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoStatus("cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_size) {
      close(fd);
      return absl::FailedPreconditionError(StrCat(path, " is larger than ", max_size, " bytes"));
    }
  }
  close(fd);
  return out;
}

absl::Status OverwriteAndUnlink(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus("cannot open for erasure", path, errno);
  }
  struct stat st {};
  absl::Status s;
  if (fstat(fd, &st) != 0) s = ErrnoStatus("cannot stat", path, errno);
  if (s.ok()) {
    std::string zeros(static_cast<size_t>(st.st_size), '\0');
    s = WriteAll(fd, zeros, path);
    if (s.ok() && fsync(fd) != 0) s = ErrnoStatus("cannot fsync", path, errno);
  }
  close(fd);
  if (!s.ok()) return s;
  if (unlink(path.c_str()) != 0) return ErrnoStatus("cannot unlink", path, errno);
  return FsyncDir(DirName(path));
}

absl::Status CheckOwnDirectory(const std::string& path, std::string_view what) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(StrCat(what, " ", path, " does not exist"));
    return ErrnoStatus("cannot stat", path, errno);
  }
  if (S_ISDIR(st.st_mode) && (st.st_mode & 0022) == 0 && st.st_uid == geteuid()) return absl::OkStatus();
  char mode[8];
  snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return absl::FailedPreconditionError(StrCat(what, " ", path,
                                              " must be a directory owned by the daemon's user and writable by no "
                                              "one else (it is ",
                                              S_ISDIR(st.st_mode) ? "" : "not a directory, ", "mode ", mode,
                                              ", owner uid ", st.st_uid, ")"));
}

}  // namespace shredd
