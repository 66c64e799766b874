#include "daemon/log/tile_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>

#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/s3_client.h"

namespace shredd {
namespace {

constexpr size_t kMaxDeletesPerCall = 1000;  // DeleteObjects' limit

class FileStore final : public TileStore {
 public:
  FileStore(std::string dir, bool guard) : dir_(std::move(dir)), guard_(guard) {}
  const std::string& where() const override { return dir_; }
  bool guard_free_space() const override { return guard_; }
  // The directory is the daemon's alone to write: whoever else can write
  // it can plant symbolic links (config.cc checks it at start as well).
  absl::Status Prepare() override {
    if (auto s = MakeDirs(dir_, 0755); !s.ok()) return s;
    if (auto s = CheckOwnDirectory(dir_, "log tiles dir"); !s.ok()) return s;
    return RemoveTempFiles();
  }

  absl::StatusOr<std::string> Read(const std::string& rel) override { return ReadSmallFile(Path(rel)); }

  absl::StatusOr<std::vector<int64_t>> Sizes(const std::vector<std::string>& rels) override {
    std::vector<int64_t> out;
    out.reserve(rels.size());
    for (const std::string& rel : rels) {
      struct stat st {};
      const bool file = stat(Path(rel).c_str(), &st) == 0 && S_ISREG(st.st_mode);
      out.push_back(file ? static_cast<int64_t>(st.st_size) : -1);
    }
    return out;
  }

  absl::Status Write(const std::string& rel, std::string_view data) override {
    const std::string path = Path(rel);
    const std::string dir = DirName(path);
    if (auto s = MakeDirs(dir, 0755); !s.ok()) return s;
    // A fresh name, created exclusively, never through a link.
    const std::string tmp = StrCat(path, ".tmp-", RandomHex(8));
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("cannot create", tmp, errno);
    absl::Status s = WriteAll(fd, data, tmp);
    if (s.ok() && fdatasync(fd) != 0) s = ErrnoStatus("cannot sync", tmp, errno);
    if (close(fd) != 0 && s.ok()) s = ErrnoStatus("cannot close", tmp, errno);
    if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus("cannot rename to", path, errno);
    if (!s.ok()) {
      unlink(tmp.c_str());
      return s;
    }
    dirty_dirs_.insert(dir);
    return absl::OkStatus();
  }

  // Every directory a file was renamed into or removed from, and the ones
  // created on the way, once (children before parents does not matter).
  absl::Status Sync() override {
    std::set<std::string> all;
    for (const std::string& d : dirty_dirs_) {
      for (std::string p = d; p.size() >= dir_.size(); p = DirName(p)) {
        if (!all.insert(p).second || p == dir_) break;
      }
    }
    for (const std::string& d : all) {
      if (auto s = FsyncDir(d); !s.ok()) return s;
    }
    dirty_dirs_.clear();
    return absl::OkStatus();
  }

  absl::Status RemovePartials(const std::string& full_rel) override {
    const std::string partials = Path(full_rel) + ".p";
    std::error_code ec;
    if (std::filesystem::remove_all(partials, ec) == 0 || ec) {
      return ec ? ErrnoStatus("cannot remove", partials, ec.value()) : absl::OkStatus();
    }
    dirty_dirs_.insert(DirName(partials));
    return Sync();
  }

 private:
  std::string Path(const std::string& rel) const { return StrCat(dir_, "/", rel); }

  // Temp files a crash left between create and rename (never followed
  // through links: the iterator does not enter linked directories).
  absl::Status RemoveTempFiles() {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      std::error_code ignored;
      if (name.find(".tmp") != std::string::npos && std::filesystem::is_regular_file(it->symlink_status(ignored))) {
        std::filesystem::remove(it->path(), ignored);
      }
    }
    return ec ? ErrnoStatus("cannot clean temp files in", dir_, ec.value()) : absl::OkStatus();
  }

  const std::string dir_;
  const bool guard_;
  std::set<std::string> dirty_dirs_;
};

class S3Store final : public TileStore {
 public:
  explicit S3Store(std::shared_ptr<S3Client> client)
      : client_(std::move(client)),
        root_(client_->KeyFor("tiles/")),
        where_(StrCat("s3://", client_->config().bucket, "/", root_.substr(0, root_.size() - 1))) {}
  const std::string& where() const override { return where_; }
  absl::Status Prepare() override { return absl::OkStatus(); }

  absl::StatusOr<std::string> Read(const std::string& rel) override {
    std::string out;
    if (auto s = client_->GetObject(Key(rel), 0, 0, &out); !s.ok()) return s;
    return out;
  }

  absl::StatusOr<std::vector<int64_t>> Sizes(const std::vector<std::string>& rels) override {
    std::map<std::string, int64_t, std::less<>> listed;
    auto s = client_->ForEachObject(root_, [&](const S3ObjectVersion& o) {
      listed.emplace(o.key.substr(root_.size()), static_cast<int64_t>(o.size));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    std::vector<int64_t> out;
    out.reserve(rels.size());
    for (const std::string& rel : rels) {
      auto it = listed.find(rel);
      out.push_back(it == listed.end() ? -1 : it->second);
    }
    return out;
  }

  absl::Status Write(const std::string& rel, std::string_view data) override {
    auto version = client_->PutObject(Key(rel), data);
    if (!version.ok()) return version.status();
    if (rel == kCheckpoint) return DropOlderCheckpoints(*version);
    return absl::OkStatus();
  }

  absl::Status Sync() override { return absl::OkStatus(); }

  absl::Status RemovePartials(const std::string& full_rel) override {
    std::vector<S3ObjectVersion> all;
    auto s = client_->ForEachVersion(Key(full_rel + ".p/"), [&](const S3ObjectVersion& v) {
      all.push_back(v);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return DeleteAll(all);
  }

 private:
  static constexpr std::string_view kCheckpoint = "checkpoint";

  std::string Key(const std::string& rel) const { return root_ + rel; }

  // One current checkpoint: the version written before this one goes. The
  // first write of a run lists the key's versions (earlier runs, a crash
  // between a put and this delete) and deletes all others.
  absl::Status DropOlderCheckpoints(const std::string& version) {
    if (version.empty()) return absl::OkStatus();  // not versioned
    const std::string key = Key(std::string(kCheckpoint));
    std::vector<S3ObjectVersion> old;
    if (!listed_checkpoint_versions_) {
      auto s = client_->ForEachVersion(key, [&](const S3ObjectVersion& v) {
        if (v.key == key && v.version_id != version) old.push_back(v);
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
      listed_checkpoint_versions_ = true;
    } else if (!last_checkpoint_version_.empty() && last_checkpoint_version_ != version) {
      old.push_back(S3ObjectVersion{.key = key, .version_id = last_checkpoint_version_});
    }
    last_checkpoint_version_ = version;
    return DeleteAll(old);
  }

  absl::Status DeleteAll(const std::vector<S3ObjectVersion>& objects) {
    for (size_t i = 0; i < objects.size(); i += kMaxDeletesPerCall) {
      const size_t n = std::min(kMaxDeletesPerCall, objects.size() - i);
      if (auto s = client_->DeleteObjects(std::span(objects).subspan(i, n)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::shared_ptr<S3Client> client_;
  const std::string root_;  // PREFIX/tiles/
  const std::string where_;
  bool listed_checkpoint_versions_ = false;
  std::string last_checkpoint_version_;
};

}  // namespace

std::unique_ptr<TileStore> FileTileStore(std::string dir, bool guard_free_space) {
  return std::make_unique<FileStore>(std::move(dir), guard_free_space);
}

std::unique_ptr<TileStore> S3TileStore(std::shared_ptr<S3Client> client) {
  return std::make_unique<S3Store>(std::move(client));
}

}  // namespace shredd
