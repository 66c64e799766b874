#include "daemon/app/path_safety.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {

std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0%03o", static_cast<unsigned>(mode & 0777));
  return buf;
}

// "" if no file: vault.
std::string FileVaultDir(std::string_view spec) {
  return spec.starts_with("file:") ? std::string(spec.substr(5)) : std::string();
}

absl::Status CheckOverlap(const DaemonConfig& c, const std::string& vault_dir) {
  auto data = CanonicalPath(c.data_dir);
  if (!data.ok()) return data.status();
  auto vault = CanonicalPath(vault_dir);
  if (!vault.ok()) return vault.status();
  const std::string where =
      StrCat(" (vault ", vault_dir, " is ", *vault, ", data dir ", c.data_dir, " is ", *data, ")");
  if (PathWithin(*vault, *data)) {
    return absl::FailedPreconditionError(
        StrCat("refusing a vault inside the data dir", where,
               ": every copy or backup of the data dir would hold the root key, and shredding could not be trusted. "
               "Put the vault outside the data dir (docs/CONFIG.md)"));
  }
  if (PathWithin(*data, *vault)) {
    return absl::FailedPreconditionError(
        StrCat("refusing a data dir inside the vault", where,
               ": every copy or backup of the data dir's parent would hold the root key with the data. "
               "Keep the two apart (docs/CONFIG.md)"));
  }
  return absl::OkStatus();
}

absl::Status CheckVaultModes(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return absl::OkStatus();  // created 0700 at start
  if (st.st_uid != geteuid()) {
    // Its owner can read every key, whatever the modes say (and a daemon
    // run as root over another user's vault would create root-owned keys
    // that user's daemon then cannot read).
    return absl::FailedPreconditionError(StrCat("refusing vault directory ", dir, " owned by uid ", st.st_uid,
                                                ": the daemon runs as uid ", geteuid(),
                                                " and the vault must be its own. Run the daemon as the vault's "
                                                "owner, or chown the vault to the daemon's user"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(StrCat("refusing vault directory ", dir, " with mode ", ModeString(st.st_mode),
                                                ": its group or other users can reach the root and signing keys. "
                                                "Run: chmod 700 ",
                                                dir));
  }
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus("cannot list vault", dir, errno);
  absl::Status s;
  while (dirent* e = readdir(d)) {
    const std::string path = StrCat(dir, "/", e->d_name);
    struct stat f {};
    if (lstat(path.c_str(), &f) != 0 || !S_ISREG(f.st_mode) || (f.st_mode & 077) == 0) continue;
    s = absl::FailedPreconditionError(StrCat("refusing vault file ", path, " with mode ", ModeString(f.st_mode),
                                             ": its group or other users can read a key. Run: chmod 600 ", path));
    break;
  }
  closedir(d);
  return s;
}

// The config file decides every role; see CheckConfigFile.
bool TrustedOwner(uid_t uid) { return uid == 0 || uid == geteuid(); }

std::string ModeAndOwner(const struct stat& st) {
  return StrCat("mode ", ModeString(st.st_mode), ", owner uid ", st.st_uid);
}

// Every directory above `path` (absolute): owned by root or us, and not
// writable by others unless sticky.
absl::Status CheckConfigDirs(const std::string& config, const std::string& path) {
  std::string dir;
  const std::vector<std::string> parts = Components(path);
  for (size_t i = 0; i < parts.size(); ++i) {
    dir = i == 0 ? "/" : StrCat(dir, i == 1 ? "" : "/", parts[i - 1]);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) continue;  // the file's own check (or LoadConfig) reports it
    const bool writable = (st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0;
    if (TrustedOwner(st.st_uid) && !writable) continue;
    return absl::FailedPreconditionError(
        StrCat("refusing config file ", config, ": directory ", dir, " (", ModeAndOwner(st), ") lets ",
               writable ? "its group or other users" : StrCat("uid ", st.st_uid),
               " replace the file, so they could grant themselves any role. Keep the config where only root or "
               "the daemon's user (uid ",
               geteuid(), ") can write", writable ? StrCat(", or run: chmod go-w ", dir) : std::string()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckConfigFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!TrustedOwner(st.st_uid)) {
    return absl::FailedPreconditionError(StrCat("refusing config file ", path, " (", ModeAndOwner(st), "): uid ",
                                                st.st_uid,
                                                " owns it and could grant themselves any role. Run: chown root ", path,
                                                " (or chown it to the daemon's user, uid ", geteuid(), ")"));
  }
  if ((st.st_mode & 022) != 0) {
    return absl::FailedPreconditionError(StrCat("refusing config file ", path, " (", ModeAndOwner(st),
                                                "): its group or other users can write it, so they could grant "
                                                "themselves any role. Run: chmod go-w ",
                                                path));
  }
  std::string absolute = path;
  if (!path.starts_with("/")) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == nullptr) return ErrnoStatus("cannot read the working directory", "", errno);
    absolute = StrCat(cwd, "/", path);
  }
  if (auto s = CheckConfigDirs(path, absolute); !s.ok()) return s;
  auto real = CanonicalPath(path);
  if (!real.ok()) return real.status();
  return CheckConfigDirs(path, *real);
}

absl::StatusOr<std::string> CanonicalPath(std::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("empty path");
  std::string abs(path);
  if (!path.starts_with("/")) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == nullptr) return ErrnoStatus("cannot read the working directory", "", errno);
    abs = StrCat(cwd, "/", path);
  }
  const std::vector<std::string> parts = Components(abs);
  // The longest prefix that exists, resolved by the kernel.
  size_t known = parts.size();
  std::string base;
  for (;; --known) {
    std::string prefix = "/";
    for (size_t i = 0; i < known; ++i) prefix += (i ? "/" : "") + parts[i];
    char resolved[PATH_MAX];
    if (realpath(prefix.c_str(), resolved) != nullptr) {
      base = resolved;
      break;
    }
    if (known == 0) return ErrnoStatus("cannot resolve", "/", errno);
  }
  std::vector<std::string> out = Components(base);
  for (size_t i = known; i < parts.size(); ++i) {
    if (parts[i] == ".") continue;
    if (parts[i] == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(parts[i]);
  }
  std::string result;
  for (const auto& p : out) result += "/" + p;
  return result.empty() ? std::string("/") : result;
}

bool PathWithin(std::string_view inner, std::string_view outer) {
  if (outer == "/") return true;
  return inner == outer || (inner.starts_with(outer) && inner.size() > outer.size() && inner[outer.size()] == '/');
}

absl::Status CheckStoragePaths(const DaemonConfig& c, std::vector<std::string>* warnings) {
  const std::string vault_dir = FileVaultDir(c.vault);
  if (!vault_dir.empty()) {
    if (auto s = CheckOverlap(c, vault_dir); !s.ok()) return s;
    if (auto s = CheckVaultModes(vault_dir); !s.ok()) return s;
  }
  struct stat st {};
  if (warnings != nullptr && stat(c.data_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    warnings->push_back(StrCat("data dir ", c.data_dir, " has mode ", ModeString(st.st_mode),
                               ": its group or other users can read (or change) the ciphertext and the key tree's "
                               "wrapped keys; run chmod 700 ",
                               c.data_dir, " unless that is intended (docs/CONFIG.md)"));
  }
  return absl::OkStatus();
}

}  // namespace shredd
