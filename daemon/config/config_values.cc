// Checks of single config values (listen and vault specs, object-store
// URL, endpoint and environment, tiles dir, metrics address, memory
// budget), declared in config.h; split from config.cc, which parses the
// file and checks the config as a whole.
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"
#include "daemon/config/config.h"
#include "daemon/config/san_grant.h"

namespace shredd {
namespace {

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Letters, digits, '-', '.', '_' and a '*' of a wildcard name.
bool IsDnsName(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '*';
  });
}

SanType InferSanType(const std::string& v) {
  if (v.find("://") != std::string::npos) return SanType::kUri;
  if (v.find('@') != std::string::npos) return SanType::kEmail;
  if (IsIpAddress(v)) return SanType::kIp;
  if (v.find(':') != std::string::npos) return SanType::kUri;  // urn:...; no DNS name has a ':'
  return SanType::kDns;
}

absl::Status CheckSanValue(const SanName& n) {
  const std::string what = StrCat(SanTypeName(n.type), " SAN \"", n.value, "\"");
  if (n.value.empty()) return absl::InvalidArgumentError(StrCat(SanTypeName(n.type), ": SAN is empty"));
  // SANs of these types are IA5String: ASCII.
  if (std::any_of(n.value.begin(), n.value.end(), [](unsigned char c) { return c <= ' ' || c >= 0x7f; })) {
    return absl::InvalidArgumentError(  // not echoed: it may hold a line break
        StrCat(SanTypeName(n.type), " SAN has spaces, control characters or non-ASCII characters"));
  }
  switch (n.type) {
    case SanType::kDns:
      if (!IsDnsName(n.value)) {
        return absl::InvalidArgumentError(
            StrCat(what, " is not a DNS name (write uri:, email: or ip: before a SAN of another type)"));
      }
      break;
    case SanType::kIp:
      if (!IsIpAddress(n.value)) return absl::InvalidArgumentError(StrCat(what, " is not an IPv4 or IPv6 address"));
      break;
    case SanType::kEmail:
      if (n.value.find('@') == std::string::npos) return absl::InvalidArgumentError(StrCat(what, " has no '@'"));
      break;
    case SanType::kUri:
      if (n.value.find(':') == std::string::npos) return absl::InvalidArgumentError(StrCat(what, " has no scheme"));
      break;
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view SanTypeName(SanType type) {
  switch (type) {
    case SanType::kDns:
      return "dns";
    case SanType::kUri:
      return "uri";
    case SanType::kEmail:
      return "email";
    case SanType::kIp:
      return "ip";
  }
  return "?";
}

absl::StatusOr<SanName> ParseSanGrant(std::string_view san) {
  SanName out;
  bool typed = false;
  for (SanType t : {SanType::kDns, SanType::kUri, SanType::kEmail, SanType::kIp}) {
    const std::string_view prefix = SanTypeName(t);
    if (san.size() > prefix.size() && san[prefix.size()] == ':' &&
        std::equal(prefix.begin(), prefix.end(), san.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
      out = {t, std::string(san.substr(prefix.size() + 1))};
      typed = true;
      break;
    }
  }
  if (!typed) out = {InferSanType(std::string(san)), std::string(san)};
  if (auto s = CheckSanValue(out); !s.ok()) return s;
  return out;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  if (!host.starts_with("127.")) return false;
  int parts = 0;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view p = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    int v = -1;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || v < 0 || v > 255) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts == 4;
}

absl::Status SplitHostPort(std::string_view hostport, std::string* host, uint16_t* port) {
  size_t colon;
  if (hostport.starts_with("[")) {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos || close + 1 >= hostport.size() || hostport[close + 1] != ':') {
      return absl::InvalidArgumentError(StrCat("\"", hostport, "\" is not [IPV6]:PORT"));
    }
    *host = std::string(hostport.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = hostport.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(StrCat("\"", hostport, "\" is not HOST:PORT"));
    }
    *host = std::string(hostport.substr(0, colon));
    if (host->find(':') != std::string::npos) {
      return absl::InvalidArgumentError(StrCat("\"", hostport, "\": write IPv6 addresses as [ADDR]:PORT"));
    }
  }
  std::string_view p = hostport.substr(colon + 1);
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || v > 65535) {
    return absl::InvalidArgumentError(StrCat("\"", hostport, "\": port must be a number from 0 to 65535"));
  }
  *port = static_cast<uint16_t>(v);
  return absl::OkStatus();
}

absl::Status CheckListenSpec(std::string_view spec) {
  if (spec.starts_with("unix:")) {
    std::string_view path = spec.substr(5);
    if (path.empty()) return absl::InvalidArgumentError("listen unix: needs a path");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return absl::InvalidArgumentError(StrCat("socket path too long (", path.size(), " bytes, at most ",
                                               sizeof(sockaddr_un{}.sun_path) - 1, "): ", path));
    }
    return absl::OkStatus();
  }
  if (spec.starts_with("tcp:")) {
    std::string host;
    uint16_t port = 0;
    if (auto s = SplitHostPort(spec.substr(4), &host, &port); !s.ok()) {
      return absl::InvalidArgumentError(StrCat("listen ", s.message()));
    }
    if (host.empty()) return absl::InvalidArgumentError(StrCat("listen \"", spec, "\" needs a host"));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      StrCat("unknown listen address \"", spec, "\": expected unix:PATH or tcp:HOST:PORT"));
}

absl::Status CheckVaultSpec(std::string_view spec) {
  // The spec may hold a PIN: never echo it.
  if (spec.starts_with("file:")) {
    if (spec.size() == 5) return absl::InvalidArgumentError("vault file: needs a directory");
    struct stat st {};
    std::string dir(spec.substr(5));
    if (stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(StrCat("vault ", dir, " exists and is not a directory"));
    }
    return absl::OkStatus();
  }
  if (spec.starts_with("pkcs11:")) {
    if (spec.find("module=") == std::string_view::npos) {
      return absl::InvalidArgumentError("vault pkcs11: needs module=PATH (see docs/VAULT.md)");
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown vault scheme: expected file:PATH or pkcs11:module=...;token=...;pin=...");
}

absl::Status ParseObjectStoreUrl(std::string_view url, std::string* bucket, std::string* prefix) {
  if (!url.starts_with("s3://")) {
    return absl::InvalidArgumentError(StrCat("object store url \"", url, "\": expected s3://BUCKET[/PREFIX]"));
  }
  std::string_view rest = url.substr(5);
  const size_t slash = rest.find('/');
  std::string_view b = rest.substr(0, slash);
  std::string_view p = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  // S3's bucket naming rules (no dots: virtual-host style over TLS breaks on them).
  bool ok = b.size() >= 3 && b.size() <= 63 && std::isalnum(static_cast<unsigned char>(b.front())) &&
            std::isalnum(static_cast<unsigned char>(b.back()));
  for (char ch : b)
    ok = ok &&
         (std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) || ch == '-');
  if (!ok) {
    return absl::InvalidArgumentError(StrCat("object store url \"", url, "\": bucket \"", b,
                                             "\" must be 3-63 lowercase letters, digits or '-', starting and ending "
                                             "with a letter or digit"));
  }
  while (p.ends_with("/")) p.remove_suffix(1);
  for (char ch : p) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '/')) {
      return absl::InvalidArgumentError(
          StrCat("object store url \"", url, "\": the prefix may hold only letters, digits, '-', '_', '.' and '/'"));
    }
  }
  if (p.starts_with("/") || p.find("//") != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("object store url \"", url, "\": empty path segment in the prefix"));
  }
  *bucket = std::string(b);
  *prefix = std::string(p);
  return absl::OkStatus();
}

absl::Status CheckObjectStoreEndpoint(std::string_view endpoint) {
  if (endpoint.empty()) return absl::OkStatus();
  std::string_view e = endpoint;
  if (e.starts_with("https://")) {
    e.remove_prefix(8);
  } else if (e.starts_with("http://")) {
    e.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(
        StrCat("object store endpoint \"", endpoint, "\": expected http(s)://HOST[:PORT]"));
  }
  while (e.ends_with("/")) e.remove_suffix(1);
  if (e.empty() || e.find_first_of("/?#@ ") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("object store endpoint \"", endpoint, "\": expected http(s)://HOST[:PORT] without a path"));
  }
  return absl::OkStatus();
}

void ApplyObjectStoreEnvironment(DaemonConfig* c, const std::function<const char*(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> std::string_view {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v == nullptr ? std::string_view() : std::string_view(v);
  };
  ObjectStoreConfig& o = c->object_store;
  if (auto r = env("AWS_REGION"); !r.empty()) {
    o.region = std::string(r);
  } else if (auto d = env("AWS_DEFAULT_REGION"); !d.empty()) {
    o.region = std::string(d);
  }
  if (auto e = env("AWS_ENDPOINT_URL_S3"); !e.empty()) {
    o.endpoint = std::string(e);
  } else if (auto g = env("AWS_ENDPOINT_URL"); !g.empty()) {
    o.endpoint = std::string(g);
  }
  if (o.url.empty()) return;  // no secrets held when they are not needed
  auto secret = [](std::string_view v) -> std::shared_ptr<const SecretBytes> {
    if (v.empty()) return nullptr;
    return std::make_shared<const SecretBytes>(
        SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(v.data()), v.size()}));
  };
  o.access_key_id = std::string(env("AWS_ACCESS_KEY_ID"));
  o.secret_access_key = secret(env("AWS_SECRET_ACCESS_KEY"));
  o.session_token = secret(env("AWS_SESSION_TOKEN"));
}

absl::Status CheckMemoryBudgetMib(uint64_t mib) {
  if (mib < kMinMemoryBudgetMib || mib > kMaxMemoryBudgetMib) {
    return absl::InvalidArgumentError(StrCat("storage.memory_budget_mib must be between ", kMinMemoryBudgetMib, " and ",
                                             kMaxMemoryBudgetMib, " (MiB), got ", mib));
  }
  return absl::OkStatus();
}

absl::Status CheckLogTilesDir(const std::string& tiles_dir, const std::string& data_dir, bool check_files) {
  if (tiles_dir.empty()) return absl::OkStatus();
  // The tiles are public: never inside the data dir (which holds sealed
  // secrets), nor the data dir inside them.
  // Compared with symbolic links resolved (as far as the paths exist): a
  // link must not carry one inside the other.
  std::error_code ec;
  const std::filesystem::path t = std::filesystem::weakly_canonical(std::filesystem::absolute(tiles_dir, ec), ec);
  const std::filesystem::path d = std::filesystem::weakly_canonical(std::filesystem::absolute(data_dir, ec), ec);
  auto within = [](const std::filesystem::path& inner, const std::filesystem::path& outer) {
    auto rel = inner.lexically_relative(outer);
    return !rel.empty() && *rel.begin() != "..";
  };
  if (within(t, d) || within(d, t)) {
    return absl::InvalidArgumentError(StrCat("log.tiles_dir ", tiles_dir,
                                             " must be outside the data dir (the tiles are public, the data dir "
                                             "is not), and the data dir outside it"));
  }
  // Anyone else who can write it can plant links the daemon would write
  // through (docs/LOG.md "Tiles"). Created by the daemon if absent.
  if (!check_files) return absl::OkStatus();
  absl::Status own = CheckOwnDirectory(tiles_dir, "log.tiles_dir");
  if (!own.ok() && !absl::IsNotFound(own)) {
    return absl::InvalidArgumentError(
        StrCat(own.message(),
               ": anyone who can write it can plant links the daemon would write through; serve it "
               "read-only (a web server needs read access, not write)"));
  }
  return absl::OkStatus();
}

absl::Status CheckMetricsListen(std::string_view spec) {
  if (spec.empty()) return absl::OkStatus();
  std::string host;
  uint16_t port = 0;
  if (auto s = SplitHostPort(spec, &host, &port); !s.ok())
    return absl::InvalidArgumentError(StrCat("metrics_listen ", s.message()));
  if (!IsLoopbackHost(host)) {
    return absl::InvalidArgumentError(StrCat("metrics_listen ", spec,
                                             ": the metrics endpoint has no TLS and serves loopback only "
                                             "(127.0.0.1, [::1] or localhost)"));
  }
  return absl::OkStatus();
}

}  // namespace shredd
