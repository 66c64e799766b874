#include "client/file_io.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "client/cli_common.h"
#include "daemon/base/strings.h"
#include "formats/encoding.h"

namespace shredd::cli {
namespace {

namespace fs = std::filesystem;

Failure WriteFailure(const std::string& path, std::string_view what, int err) {
  return Failure{kFail, StrCat("cannot write ", path, ": ", what, err ? StrCat(": ", std::strerror(err)) : ""), ""};
}

std::string DirOf(const std::string& path) {
  std::string dir = fs::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

std::string RandomSuffix() {
  unsigned char r[6];
  randombytes_buf(r, sizeof r);
  return verify::HexEncode(std::string_view(reinterpret_cast<const char*>(r), sizeof r));
}

}  // namespace

std::string FileTypeName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

OutputFile::OutputFile(std::string path, Privacy privacy, bool direct) : path_(std::move(path)), dir_(DirOf(path_)) {
  struct stat st;
  if (path_.ends_with('/') || (stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
    throw Failure{kUsage, StrCat(path_, " is a directory; give a file name to write to"), ""};
  }
  if (path_ == "-") {  // never a file named "-" by accident
    throw Failure{kUsage,
                  "-o -: this command writes a file, not stdout (leave out -o to print; ./- names a file \"-\")", ""};
  }
  if (OpenInPlace(privacy)) return;
  const mode_t mode = privacy == Privacy::kPrivate ? 0600 : 0666;
  const int base = O_WRONLY | O_CLOEXEC;
  if (direct) {
    fd_ = open(dir_.c_str(), base | O_TMPFILE | O_DIRECT, mode);
    direct_ = fd_ >= 0;
  }
  if (fd_ < 0) fd_ = open(dir_.c_str(), base | O_TMPFILE, mode);
  if (fd_ < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    // No O_TMPFILE on this file system: a named temp file, removed on failure.
    named_tmp_ = StrCat(path_, ".part-", RandomSuffix());
    fd_ = open(named_tmp_.c_str(), base | O_CREAT | O_EXCL, mode);
    if (fd_ < 0) named_tmp_.clear();
  }
  if (fd_ < 0) throw WriteFailure(path_, "cannot create a file in " + dir_, errno);
  // The umask may only take bits away; private files are exactly 0600.
  if (privacy == Privacy::kPrivate && fchmod(fd_, 0600) != 0) {
    const int err = errno;
    Discard();
    throw WriteFailure(path_, "cannot set its mode", err);
  }
}

// What is already at path_ decides how it is written. A regular file (or
// none) is replaced atomically by a new file; a symbolic link to a regular
// file the same way at the link's target, so the link stays. A FIFO or a
// character device (`-o /dev/null`, `-o /dev/stdout`, a pipe) is written in
// place: renaming a file over it would replace the device node (as root,
// `-o /dev/null` did). A block device or a socket is refused. Private
// output goes into a FIFO only if the caller or root owns it: anyone may
// make a FIFO in /tmp and read what arrives (no O_CREAT here, so the
// kernel's protected_fifos does not apply).
bool OutputFile::OpenInPlace(Privacy privacy) {
  struct stat st, lst;
  if (stat(path_.c_str(), &st) != 0) return false;  // nothing there (or a dangling link): a new file
  if (S_ISREG(st.st_mode)) {
    if (lstat(path_.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
      std::error_code ec;
      std::string target = fs::canonical(path_, ec).string();
      if (!ec) {
        path_ = std::move(target);
        dir_ = DirOf(path_);
      }
    }
    return false;
  }
  if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    throw Failure{
        kUsage, StrCat(path_, " is ", FileTypeName(st.st_mode), "; shredctl writes files, pipes and character devices"),
        ""};
  }
  fd_ = open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) throw WriteFailure(path_, "cannot open", errno);
  in_place_ = true;
  struct stat opened;  // what was opened, not what was stat'ed before
  if (fstat(fd_, &opened) != 0) {
    const int err = errno;
    Discard();
    throw WriteFailure(path_, "cannot stat", err);
  }
  if (privacy == Privacy::kPrivate && S_ISFIFO(opened.st_mode) && opened.st_uid != geteuid() && opened.st_uid != 0) {
    Discard();
    throw Failure{kUsage,
                  StrCat(path_, " is a FIFO owned by uid ", opened.st_uid,
                         "; private output (manifests, content, subject ids) goes only into a FIFO of your own"),
                  ""};
  }
  return true;
}

OutputFile::~OutputFile() { Discard(); }

void OutputFile::Discard() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (!named_tmp_.empty()) unlink(named_tmp_.c_str());
  named_tmp_.clear();
}

void OutputFile::Commit() {
  if (in_place_) {  // a pipe or a device: nothing to sync or name
    Discard();
    return;
  }
  if (fsync(fd_) != 0) {
    const int err = errno;
    Discard();
    throw WriteFailure(path_, "fsync failed", err);
  }
  std::string tmp = named_tmp_;
  if (tmp.empty()) {
    tmp = StrCat(path_, ".tmp-", RandomSuffix());
    const std::string self = StrCat("/proc/self/fd/", fd_);
    if (linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      const int err = errno;
      Discard();
      throw WriteFailure(path_, "cannot link the new file", err);
    }
  }
  close(fd_);
  fd_ = -1;
  named_tmp_.clear();
  if (rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    throw WriteFailure(path_, "cannot rename the new file into place", err);
  }
  if (int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
}

void WriteFileOrThrow(const std::string& path, std::string_view data, Privacy privacy) {
  OutputFile out(path, privacy);
  while (!data.empty()) {
    ssize_t n = write(out.fd(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw WriteFailure(path, "write failed", errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  out.Commit();
}

int OpenRegularFile(const std::string& path, bool follow) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer. O_NOFOLLOW: a
  // symlink (also one swapped in after the directory walk) fails with ELOOP.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
  struct stat st;
  if (fd < 0) {
    const int err = errno;
    if (lstat(path.c_str(), &st) == 0 && (err == ELOOP || !S_ISREG(st.st_mode))) {
      throw Failure{kFail,
                    StrCat(path, " is ", FileTypeName(st.st_mode), "; not uploaded",
                           S_ISLNK(st.st_mode) ? " (--follow-symlinks uploads what links point to)" : ""),
                    ""};
    }
    throw Failure{kFail, StrCat("cannot open ", path, ": ", std::strerror(err)), ""};
  }
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    throw Failure{kFail, StrCat("cannot stat ", path, ": ", std::strerror(err)), ""};
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    throw Failure{kFail, StrCat(path, " is ", FileTypeName(st.st_mode), "; only regular files are uploaded"), ""};
  }
  (void)fcntl(fd, F_SETFL, O_RDONLY);  // back to blocking reads
  return fd;
}

}  // namespace shredd::cli
