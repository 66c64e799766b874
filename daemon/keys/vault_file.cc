#include "daemon/keys/vault_file.h"

#include <dirent.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"

#include "daemon/base/data_dir_lock.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/aead.h"

namespace shredd {
namespace {

constexpr std::string_view kRootPrefix = "root-";
constexpr std::string_view kRootSuffix = ".key";

// One process per vault directory: a second daemon on the same vault (a
// restore drill next to the running daemon, a copy of the data dir started
// by mistake) would take the other's roots for leftovers of a crash and
// destroy them (KeyTree::Recover), and each shred of one would destroy the
// other's root. So the vault holds an flock on DIR/vault.lock while open.
// Within one process the lock is shared (tests reopen a vault before the
// old object is gone); the flock is released with the last holder.
class VaultLock {
 public:
  static absl::StatusOr<std::shared_ptr<VaultLock>> Take(const std::string& dir) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<VaultLock>> held;
    std::lock_guard lock(mu);
    std::error_code ec;
    const std::string key = std::filesystem::weakly_canonical(dir, ec).string();
    if (auto it = held.find(key); it != held.end()) {
      if (auto alive = it->second.lock()) return alive;
    }
    auto fd = LockDirectory(dir, "vault.lock",
                            StrCat("another process is using the file vault ", dir,
                                   "; two daemons on one vault destroy each other's roots (docs/VAULT.md, "
                                   "\"One daemon per vault\"): stop it first, or restore with a copy of the vault; "
                                   "nothing was changed"));
    if (!fd.ok()) return fd.status();
    auto out = std::make_shared<VaultLock>(*fd);
    held[key] = out;
    return out;
  }
  explicit VaultLock(int fd) : fd_(fd) {}
  ~VaultLock() { close(fd_); }
  VaultLock(const VaultLock&) = delete;
  VaultLock& operator=(const VaultLock&) = delete;

 private:
  const int fd_;
};

class FileVault final : public Vault {
 public:
  FileVault(std::string dir, std::shared_ptr<VaultLock> lock) : dir_(std::move(dir)), lock_(std::move(lock)) {}

  std::string BackendName() const override { return "file"; }
  std::string Describe() const override { return StrCat("file vault at ", dir_); }

  absl::StatusOr<std::vector<uint64_t>> ListRoots() override {
    std::lock_guard lock(mu_);
    return ListRootsLocked();
  }

  absl::Status CreateRoot(uint64_t epoch) override {
    std::lock_guard lock(mu_);
    std::string path = RootPath(epoch);
    if (access(path.c_str(), F_OK) == 0) {
      return absl::AlreadyExistsError(StrCat("root of epoch ", epoch, " already exists"));
    }
    SecretBytes key = SecretBytes::Random(kKeySize);
    std::string_view bytes(reinterpret_cast<const char*>(key.data()), key.size());
    if (auto s = WriteFileDurably(path, bytes, 0600); !s.ok()) return s;
    roots_[epoch] = std::move(key);
    return absl::OkStatus();
  }

  absl::Status DestroyRoot(uint64_t epoch) override {
    std::lock_guard lock(mu_);
    roots_.erase(epoch);  // SecretBytes wipes on destruction
    return OverwriteAndUnlink(RootPath(epoch));
  }

  absl::StatusOr<std::string> WrapWithRoot(uint64_t epoch, std::span<const uint8_t> plaintext,
                                           std::string_view ad) override {
    std::lock_guard lock(mu_);
    auto root = LoadRootLocked(epoch);
    if (!root.ok()) return root.status();
    return SealWithKey(**root, plaintext, ad);
  }

  absl::StatusOr<SecretBytes> UnwrapWithRoot(uint64_t epoch, std::string_view wrapped, std::string_view ad) override {
    std::lock_guard lock(mu_);
    auto root = LoadRootLocked(epoch);
    if (!root.ok()) return root.status();
    return OpenSecret(**root, wrapped, ad);
  }

  absl::StatusOr<Ed25519PublicKey> SigningPublicKey() override {
    std::lock_guard lock(mu_);
    if (auto s = LoadSigningKeyLocked(); !s.ok()) return s;
    return public_key_;
  }

  absl::StatusOr<bool> HasSigningKey() override {
    std::lock_guard lock(mu_);
    if (!signing_secret_.empty()) return true;
    const std::string path = dir_ + "/signing.key";
    if (access(path.c_str(), F_OK) == 0) return true;
    if (errno == ENOENT) return false;
    return ErrnoStatus("cannot check", path, errno);
  }

  absl::StatusOr<Ed25519Signature> Sign(std::string_view message) override {
    std::lock_guard lock(mu_);
    if (auto s = LoadSigningKeyLocked(); !s.ok()) return s;
    Ed25519Signature sig;
    crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                         signing_secret_.data());
    return sig;
  }

 private:
  std::string RootPath(uint64_t epoch) const { return StrCat(dir_, "/", kRootPrefix, epoch, kRootSuffix); }

  absl::StatusOr<std::vector<uint64_t>> ListRootsLocked() {
    DIR* d = opendir(dir_.c_str());
    if (d == nullptr) return ErrnoStatus("cannot list vault", dir_, errno);
    std::vector<uint64_t> out;
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      if (!name.starts_with(kRootPrefix) || !name.ends_with(kRootSuffix)) continue;
      name.remove_prefix(kRootPrefix.size());
      name.remove_suffix(kRootSuffix.size());
      uint64_t epoch = 0;
      auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), epoch);
      if (ec == std::errc() && p == name.data() + name.size()) out.push_back(epoch);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::StatusOr<const SecretBytes*> LoadRootLocked(uint64_t epoch) {
    if (auto it = roots_.find(epoch); it != roots_.end()) return &it->second;
    auto bytes = ReadSmallFile(RootPath(epoch), 64);
    if (!bytes.ok()) {
      if (absl::IsNotFound(bytes.status())) {
        return absl::NotFoundError(StrCat("vault holds no root for epoch ", epoch, " (destroyed or never created)"));
      }
      return bytes.status();
    }
    if (bytes->size() != kKeySize) {
      sodium_memzero(bytes->data(), bytes->size());
      return absl::DataLossError(StrCat("root key file of epoch ", epoch, " is corrupt"));
    }
    SecretBytes key = SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()});
    sodium_memzero(bytes->data(), bytes->size());
    return &(roots_[epoch] = std::move(key));
  }

  absl::Status LoadSigningKeyLocked() {
    if (!signing_secret_.empty()) return absl::OkStatus();
    std::string path = dir_ + "/signing.key";
    auto seed = ReadSmallFile(path, 64);
    SecretBytes seed_bytes;
    if (seed.ok()) {
      if (seed->size() != crypto_sign_SEEDBYTES) {
        return absl::DataLossError(StrCat(path, " is corrupt (expected a 32-byte seed)"));
      }
      seed_bytes = SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(seed->data()), seed->size()});
      sodium_memzero(seed->data(), seed->size());
    } else if (absl::IsNotFound(seed.status())) {
      seed_bytes = SecretBytes::Random(crypto_sign_SEEDBYTES);
      std::string_view v(reinterpret_cast<const char*>(seed_bytes.data()), seed_bytes.size());
      if (auto s = WriteFileDurably(path, v, 0600); !s.ok()) return s;
    } else {
      return seed.status();
    }
    signing_secret_ = SecretBytes(crypto_sign_SECRETKEYBYTES);
    crypto_sign_seed_keypair(public_key_.data(), signing_secret_.data(), seed_bytes.data());
    return absl::OkStatus();
  }

  const std::string dir_;
  const std::shared_ptr<VaultLock> lock_;
  std::mutex mu_;
  std::map<uint64_t, SecretBytes> roots_ ABSL_GUARDED_BY(mu_);
  SecretBytes signing_secret_ ABSL_GUARDED_BY(mu_);
  Ed25519PublicKey public_key_ ABSL_GUARDED_BY(mu_) = {};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Vault>> OpenFileVault(std::string_view dir) {
  std::string d(dir);
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  if (auto s = MakeDirs(d, 0700); !s.ok()) return s;
  // One process per vault, before anything in it is touched (below: the
  // leftovers of a root being created could be another daemon's).
  auto lock = VaultLock::Take(d);
  if (!lock.ok()) return lock.status();
  // A crash inside WriteFileDurably leaves "<name>.tmp" with key bytes: a root
  // (or signing seed) whose creation never completed, so nothing was ever
  // sealed under it. Destroy such leftovers like a root (found by
  // tests/soak/crash_torture.py: the vault held root-N.key and
  // root-(N+1).key.tmp after a kill -9 during a shred).
  if (DIR* dp = opendir(d.c_str())) {
    std::vector<std::string> stale;
    while (dirent* e = readdir(dp)) {
      std::string_view name = e->d_name;
      if (name.ends_with(".tmp") && (name.starts_with(kRootPrefix) || name == "signing.key.tmp")) {
        stale.push_back(StrCat(d, "/", name));
      }
    }
    closedir(dp);
    for (const std::string& path : stale) {
      if (auto s = OverwriteAndUnlink(path); !s.ok()) return s;
    }
  }
  return std::make_unique<FileVault>(std::move(d), *std::move(lock));
}

}  // namespace shredd
