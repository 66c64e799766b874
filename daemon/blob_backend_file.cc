#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "daemon/strings.h"
#include "daemon/blob_backend.h"
#include "daemon/digest.h"
#include "daemon/fs_util.h"

namespace shredd {
namespace {

class FileBlobWriter final : public BlobWriter {
 public:
  FileBlobWriter(int fd, std::string tmp, std::string final_path)
      : fd_(fd), tmp_(std::move(tmp)), final_(std::move(final_path)) {}
  ~FileBlobWriter() override {
    if (fd_ >= 0) close(fd_);
    if (!published_) unlink(tmp_.c_str());
  }
  absl::Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("cannot write", tmp_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  absl::Status Publish() override {
    if (fdatasync(fd_) != 0) return ErrnoStatus("cannot sync", tmp_, errno);
    close(fd_);
    fd_ = -1;
    std::string dir = DirName(final_);
    if (auto s = MakeDirs(dir, 0700); !s.ok()) return s;
    if (rename(tmp_.c_str(), final_.c_str()) != 0) return ErrnoStatus("cannot publish", final_, errno);
    published_ = true;
    return FsyncDir(dir);
  }

 private:
  int fd_;
  std::string tmp_, final_;
  bool published_ = false;
};

class FileBlobReader final : public BlobReader {
 public:
  FileBlobReader(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  ~FileBlobReader() override { close(fd_); }
  uint64_t size() const override { return size_; }
  absl::Status ReadAt(uint64_t offset, size_t length, std::string* out) override {
    size_t base = out->size();
    out->resize(base + length);
    size_t done = 0;
    while (done < length) {
      ssize_t n = pread(fd_, out->data() + base + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("cannot read", path_, errno);
      }
      if (n == 0) {
        out->resize(base);
        return absl::DataLossError(StrCat("stored object ", path_, " is truncated"));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

 private:
  int fd_;
  uint64_t size_;
  std::string path_;
};

class FileBlobBackend final : public BlobBackend {
 public:
  explicit FileBlobBackend(std::string root) : root_(std::move(root)) {}

  absl::StatusOr<std::unique_ptr<BlobWriter>> Create(std::string_view id) override {
    std::string tmp = StrCat(root_, "/tmp/", id, ".part");
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoStatus("cannot create", tmp, errno);
    return std::make_unique<FileBlobWriter>(fd, std::move(tmp), Path(id));
  }

  absl::StatusOr<std::unique_ptr<BlobReader>> Open(std::string_view id) override {
    std::string path = Path(id);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return absl::DataLossError(StrCat("stored object ", path, " is missing"));
      return ErrnoStatus("cannot open", path, errno);
    }
    struct stat st {};
    fstat(fd, &st);
    return std::make_unique<FileBlobReader>(fd, static_cast<uint64_t>(st.st_size), std::move(path));
  }

  absl::Status Delete(std::string_view id) override {
    std::string path = Path(id);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("cannot delete", path, errno);
    return absl::OkStatus();
  }

  absl::Status CollectGarbage(const std::function<bool(std::string_view)>& is_live) override {
    for (const auto& name : ListDir(root_ + "/tmp")) unlink(StrCat(root_, "/tmp/", name).c_str());
    for (const auto& sub : ListDir(root_ + "/blobs")) {
      std::string dir = StrCat(root_, "/blobs/", sub);
      for (const auto& name : ListDir(dir)) {
        if (!is_live(name)) unlink(StrCat(dir, "/", name).c_str());
      }
    }
    return absl::OkStatus();
  }

  std::string Path(std::string_view id) const {
    return StrCat(root_, "/blobs/", id.substr(0, 2), "/", id);
  }

 private:
  static std::vector<std::string> ListDir(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") out.emplace_back(n);
    }
    closedir(d);
    return out;
  }

  std::string root_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobBackend>> OpenFileBlobBackend(const std::string& data_dir) {
  if (auto s = MakeDirs(data_dir + "/tmp"); !s.ok()) return s;
  if (auto s = MakeDirs(data_dir + "/blobs"); !s.ok()) return s;
  return std::make_unique<FileBlobBackend>(data_dir);
}

}  // namespace shredd
