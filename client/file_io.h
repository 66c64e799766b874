// How shredctl reads and writes local files (docs/CLI.md, "Files").
//
// Writing: a file appears whole or not at all. Its bytes go to an unnamed
// file (O_TMPFILE) in the target's directory, which is given its name only
// after fsync; on any failure, and if shredctl is killed, nothing is left
// behind. (On file systems without O_TMPFILE, a named "PATH.part-XXXXXX"
// that is removed on failure.) Private files (plaintext downloads, private
// manifests, receipts) are created 0600; public ones (certificates, proofs,
// keys, log data) 0666 minus the umask. A target that is a directory is
// refused.
//
// Reading for upload: only regular files. A FIFO, socket or device is
// refused naming what it is (opening a FIFO would block); a symlink is
// followed only when asked (`follow`), and the file is checked after it is
// opened, so a path swapped for a symlink or a FIFO in between is refused.
#ifndef SHREDD_CLIENT_FILE_IO_H_
#define SHREDD_CLIENT_FILE_IO_H_

#include <sys/types.h>

#include <string>
#include <string_view>

namespace shredd::cli {

enum class Privacy { kPublic, kPrivate };

class OutputFile {
 public:
  // Throws Failure if `path` is a directory, a block device or a socket, or
  // its directory is not writable; a usage error if it is "-" (stdout is
  // the caller's to choose: `get -o -` means it). See OpenInPlace for what is written how.
  // `direct`: try O_DIRECT (see OutputWriter); direct() says if it took.
  OutputFile(std::string path, Privacy privacy, bool direct = false);
  ~OutputFile();  // not committed: the bytes are discarded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  int fd() const { return fd_; }
  bool direct() const { return direct_; }
  // A FIFO or a character device written in place (no temp file, no sync):
  // bytes already written cannot be taken back on a failure.
  bool in_place() const { return in_place_; }
  // fsync, then give the file its name (replacing an older file), then
  // fsync the directory. Throws Failure.
  void Commit();

 private:
  bool OpenInPlace(Privacy privacy);
  void Discard();
  std::string path_, dir_, named_tmp_;  // named_tmp_: the fallback's temp name
  int fd_ = -1;
  bool direct_ = false, in_place_ = false;
};

// `data` into `path`, atomically, with the file mode `privacy` says. Throws Failure.
void WriteFileOrThrow(const std::string& path, std::string_view data, Privacy privacy);

// "a FIFO", "a directory", "a character device", ... for an lstat mode.
std::string FileTypeName(mode_t mode);

// Opens a regular file for reading (O_CLOEXEC). Throws Failure naming what
// `path` is if it is not a regular file, or a symlink while !follow.
int OpenRegularFile(const std::string& path, bool follow);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_FILE_IO_H_
