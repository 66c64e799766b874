#include "daemon/api/auth.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/server_credentials.h>

#include "daemon/base/logging.h"
#include "daemon/base/strings.h"

namespace shredd::auth {
namespace {

constexpr RoleSet W = kWriter, D = kDeleter, A = kAuditor, ADM = kAdmin;

struct RoleName {
  Role role;
  const char* name;
};
constexpr RoleName kRoleTable[] = {
    {kWriter, "writer"}, {kDeleter, "deleter"}, {kAuditor, "auditor"}, {kAdmin, "admin"}};

// "/shredd.v1.Orders/SubmitOrder" -> "Orders.SubmitOrder".
std::string ShortMethod(std::string_view method) {
  std::string s(method);
  if (s.starts_with("/")) s.erase(0, 1);
  if (s.starts_with("shredd.v1.")) s.erase(0, 10);
  std::replace(s.begin(), s.end(), '/', '.');
  return s;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  }
  return out + "\"";
}

// Per-call verdicts, written by the interceptor and read by the handler.
struct Verdict {
  grpc::Status status;
  Caller caller;
  // What Reauthorized needs to decide again under a newer policy.
  const Authorizer* authorizer = nullptr;
  std::string method;
  uint64_t generation = 0;
};
absl::Mutex g_verdicts_mu;
absl::flat_hash_map<const grpc::ServerContextBase*, Verdict>& Verdicts() {
  static auto* m = new absl::flat_hash_map<const grpc::ServerContextBase*, Verdict>();
  return *m;
}

class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(const Authorizer* authorizer, grpc::experimental::ServerRpcInfo* info)
      : authorizer_(authorizer), info_(info) {}
  ~AuthInterceptor() override {
    if (!registered_) return;
    absl::MutexLock lock(&g_verdicts_mu);
    Verdicts().erase(info_->server_context());
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA) &&
        !registered_) {
      const grpc::ServerContextBase* ctx = info_->server_context();
      Verdict v;
      v.authorizer = authorizer_;
      v.method = info_->method();
      v.generation = authorizer_->generation();
      v.caller = authorizer_->Identify(*ctx);
      v.status = Decide(info_->method(), v.caller);
      if (!v.status.ok()) {
        LogWarning("permission denied", {{"method", ShortMethod(info_->method())},
                                         {"caller", v.caller.who},
                                         {"caller_roles", RoleNames(v.caller.roles, ",")}});
      }
      {
        absl::MutexLock lock(&g_verdicts_mu);
        Verdicts()[ctx] = std::move(v);
      }
      registered_ = true;
    }
    methods->Proceed();
  }

 private:
  const Authorizer* const authorizer_;
  grpc::experimental::ServerRpcInfo* const info_;
  bool registered_ = false;
};

constexpr int kTcpEstablished = 0x01, kTcpTimeWait = 0x06, kTcpListen = 0x0A;

// IPv4 as ::ffff:a.b.c.d.
Endpoint MappedV4(const void* v4, int port) {
  Endpoint e;
  e.addr[10] = e.addr[11] = 0xff;
  std::memcpy(&e.addr[12], v4, 4);
  e.port = port;
  return e;
}

// "0100007F:15B3" (IPv4) or 32 hex digits and a port (IPv6): each 32-bit word
// is the in-memory u32 printed with %08X, the port %04X.
bool ParseProcEndpoint(const std::string& text, Endpoint* out) {
  const size_t colon = text.find(':');
  if (colon != 8 && colon != 32) return false;
  unsigned char bytes[16];
  for (size_t i = 0; i < colon; i += 8) {
    uint32_t w = static_cast<uint32_t>(std::strtoul(text.substr(i, 8).c_str(), nullptr, 16));
    std::memcpy(bytes + i / 2, &w, 4);
  }
  const int port = static_cast<int>(std::strtol(text.c_str() + colon + 1, nullptr, 16));
  if (colon == 8) {
    *out = MappedV4(bytes, port);
  } else {
    std::memcpy(out->addr.data(), bytes, 16);
    out->port = port;
  }
  return true;
}

bool IsLoopback(const Endpoint& e) {
  static const unsigned char kV6Loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(e.addr.data(), kV6Loopback, 16) == 0) return true;
  return std::memcmp(e.addr.data(), kMappedPrefix, 12) == 0 && e.addr[12] == 127;
}

// "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555" (brackets possibly
// percent-encoded: "ipv6:%5B::1%5D:5555").
std::optional<Endpoint> ParsePeer(std::string_view peer) {
  std::string p;
  for (size_t i = 0; i < peer.size(); ++i) {
    if (peer[i] == '%' && i + 2 < peer.size()) {
      std::string hex(peer.substr(i + 1, 2));
      for (char& h : hex) h = static_cast<char>(std::toupper(static_cast<unsigned char>(h)));
      const char c = hex == "5B" ? '[' : hex == "5D" ? ']' : hex == "25" ? '%' : 0;
      if (c != 0) {
        p += c;
        i += 2;
        continue;
      }
    }
    p += peer[i];
  }
  const size_t colon = p.rfind(':');
  if (colon == std::string::npos || !(p.starts_with("ipv4:") || p.starts_with("ipv6:"))) return std::nullopt;
  int port = 0;
  const char* digits = p.c_str() + colon + 1;
  if (std::from_chars(digits, p.c_str() + p.size(), port).ec != std::errc() || port <= 0 || port > 65535) {
    return std::nullopt;
  }
  std::string host = p.substr(5, colon - 5);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (auto pct = host.find('%'); pct != std::string::npos) host.resize(pct);  // zone id
  Endpoint e;
  e.port = port;
  in_addr a4{};
  if (p.starts_with("ipv4:")) {
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1) return std::nullopt;
    e = MappedV4(&a4, port);
  } else if (inet_pton(AF_INET6, host.c_str(), e.addr.data()) != 1) {
    return std::nullopt;
  }
  if (!IsLoopback(e)) return std::nullopt;
  return e;
}

std::vector<internal::TcpSocket> ReadTcpTables() {
  std::vector<internal::TcpSocket> all = internal::ReadTcpTable("/proc/net/tcp");
  std::vector<internal::TcpSocket> v6 = internal::ReadTcpTable("/proc/net/tcp6");
  all.insert(all.end(), v6.begin(), v6.end());
  return all;
}

// Inodes of the sockets this process holds ("socket:[12345]" in /proc/self/fd).
absl::flat_hash_set<uint64_t> OwnSocketInodes() {
  absl::flat_hash_set<uint64_t> out;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char target[64];
    const std::string link = StrCat("/proc/self/fd/", e->d_name);
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    unsigned long long inode = 0;
    if (std::sscanf(target, "socket:[%llu]", &inode) == 1) out.insert(inode);
  }
  closedir(d);
  return out;
}

// The client certificate's SANs by type. gRPC's x509_subject_alternative_name
// property lists DNS names, URIs, e-mail addresses and IP addresses alike;
// the peer_* properties keep them apart.
std::vector<SanName> CertificateSans(const grpc::AuthContext& ac) {
  std::vector<SanName> out;
  for (auto [property, type] : {std::pair{GRPC_PEER_DNS_PROPERTY_NAME, SanType::kDns},
                                {GRPC_PEER_URI_PROPERTY_NAME, SanType::kUri},
                                {GRPC_PEER_EMAIL_PROPERTY_NAME, SanType::kEmail},
                                {GRPC_PEER_IP_PROPERTY_NAME, SanType::kIp}}) {
    for (const auto& v : ac.FindPropertyValues(property)) out.push_back({type, std::string(v.data(), v.size())});
  }
  return out;
}

}  // namespace

namespace internal {

std::vector<TcpSocket> ReadTcpTable(const char* file) {
  std::vector<TcpSocket> out;
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string sl, local, remote, st, txrx, trwhen, retr, uid, timeout, inode;
    if (!(ls >> sl >> local >> remote >> st >> txrx >> trwhen >> retr >> uid >> timeout >> inode)) continue;
    TcpSocket s;
    if (!ParseProcEndpoint(local, &s.local) || !ParseProcEndpoint(remote, &s.remote)) continue;
    s.state = static_cast<int>(std::strtol(st.c_str(), nullptr, 16));
    s.uid = static_cast<uid_t>(std::strtoul(uid.c_str(), nullptr, 10));
    s.inode = std::strtoull(inode.c_str(), nullptr, 10);
    out.push_back(s);
  }
  return out;
}

std::optional<uid_t> PeerUid(const std::vector<TcpSocket>& sockets, const Endpoint& peer,
                             const std::vector<Endpoint>& listeners) {
  // The daemon's end. Two of our ports may have accepted connections from
  // the same client port (ports are shared across destinations): ambiguous.
  std::optional<Endpoint> ours;
  for (const auto& s : sockets) {
    if (s.remote != peer || s.state == kTcpListen || s.state == kTcpTimeWait) continue;
    if (std::find(listeners.begin(), listeners.end(), s.local) == listeners.end()) continue;
    if (ours && *ours != s.local) return std::nullopt;
    ours = s.local;
  }
  if (!ours) return std::nullopt;
  std::optional<uid_t> found;
  for (const auto& s : sockets) {
    if (s.local != peer || s.remote != *ours || s.state != kTcpEstablished) continue;
    if (found) return std::nullopt;  // cannot happen (one 4-tuple, one socket); no roles if it does
    found = s.uid;
  }
  return found;
}

}  // namespace internal

absl::StatusOr<RoleSet> ParseRoles(const std::vector<std::string>& names) {
  RoleSet out = 0;
  for (const auto& n : names) {
    bool found = false;
    for (const auto& rn : kRoleTable) {
      if (n == rn.name) {
        out |= rn.role;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(StrCat("unknown role \"", n, "\" (roles: writer, deleter, auditor, admin)"));
    }
  }
  return out;
}

std::string RoleNames(RoleSet roles, std::string_view sep) {
  std::vector<std::string> names;
  for (const auto& rn : kRoleTable) {
    if (roles & rn.role) names.push_back(rn.name);
  }
  // sep " or ": "writer, deleter or admin"; otherwise names joined by sep.
  const bool alternatives = sep == " or ";
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += alternatives ? (i + 1 == names.size() ? " or " : ", ") : std::string(sep);
    out += names[i];
  }
  return out;
}

const std::vector<MethodRule>& MethodTable() {
  // Keep in step with docs/SECURITY.md. auth_test.cc checks that every RPC
  // in proto/ has an entry.
  static const std::vector<MethodRule> table = {
      // Store: content and metadata in plaintext -> writer and admin only.
      {"/shredd.v1.Store/Put", W | ADM},
      {"/shredd.v1.Store/BatchPut", W | ADM},
      {"/shredd.v1.Store/Get", W | ADM},
      {"/shredd.v1.Store/Stat", W | ADM},
      {"/shredd.v1.Store/FindMissing", W | ADM},  // a membership oracle for digests
      {"/shredd.v1.Store/List", W | ADM},
      // Catalog.
      {"/shredd.v1.Catalog/RegisterDataset", W | ADM},
      {"/shredd.v1.Catalog/UpdateItem", W | ADM},
      {"/shredd.v1.Catalog/AddLineage", W | ADM},
      {"/shredd.v1.Catalog/ListDatasets", W | D | ADM},
      {"/shredd.v1.Catalog/GetLineage", W | D | ADM},
      {"/shredd.v1.Catalog/GetDatasetManifest", D | ADM},  // digests: handed to a regulator out of band
      {"/shredd.v1.Catalog/StreamDatasetManifest", D | ADM},
      // Orders.
      {"/shredd.v1.Orders/PlanOrder", D | ADM},
      {"/shredd.v1.Orders/SubmitOrder", D | ADM},
      {"/shredd.v1.Orders/GetOrder", D | ADM},
      {"/shredd.v1.Orders/GetSubjectMap", D | ADM},
      {"/shredd.v1.Orders/ReleaseSubjectMap", D | ADM},
      {"/shredd.v1.Orders/ListOrders", D | ADM},
      {"/shredd.v1.Orders/AddHold", D | ADM},
      {"/shredd.v1.Orders/RemoveHold", D | ADM},
      {"/shredd.v1.Orders/ListHolds", D | ADM},
      {"/shredd.v1.Orders/LiftSuppression", ADM},
      // Shredder. GetCertificate strips the private manifest and the
      // receipts unless the caller is a deleter or an admin.
      {"/shredd.v1.Shredder/Shred", D | ADM},
      {"/shredd.v1.Shredder/GetCertificate", A | D | ADM},
      {"/shredd.v1.Shredder/GetManifest", D | ADM},
      {"/shredd.v1.Shredder/GetPublicKey", W | D | A | ADM},
      // Transparency log: no plaintext personal data.
      {"/shredd.v1.Log/GetCheckpoint", A | D | ADM},
      {"/shredd.v1.Log/GetEntries", A | D | ADM},
      {"/shredd.v1.Log/GetInclusionProof", A | D | ADM},
      {"/shredd.v1.Log/GetConsistencyProof", A | D | ADM},
      {"/shredd.v1.Log/GetTlogProof", A | D | ADM},
      // gRPC's own services: no data.
      {"/grpc.health.v1.Health/Check", kAnyone},
      {"/grpc.health.v1.Health/Watch", kAnyone},
      {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", kAnyone},
      {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", kAnyone},
  };
  return table;
}

std::optional<RoleSet> RequiredRoles(std::string_view method) {
  for (const auto& r : MethodTable()) {
    if (method == r.method) return r.roles;
  }
  return std::nullopt;
}

grpc::Status Decide(std::string_view method, const Caller& caller) {
  std::optional<RoleSet> need = RequiredRoles(method);
  std::string has = caller.roles == 0 ? std::string(" has no roles") : StrCat(" has: ", RoleNames(caller.roles, ", "));
  if (!need) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        StrCat(ShortMethod(method), " is not in the daemon's role table (denied to everyone); caller ",
                               caller.who, has));
  }
  if ((*need & kAnyone) || (*need & caller.roles)) return grpc::Status::OK;
  return grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      StrCat(ShortMethod(method), " needs role ", RoleNames(*need, " or "), "; caller ", caller.who, has));
}

absl::Status ValidatePolicy(const Policy& policy) {
  for (const auto& g : policy.local) {
    if (auto r = ParseRoles(g.roles); !r.ok()) return r.status();
  }
  for (const auto& g : policy.tls) {
    if (g.subject.empty() && g.san.empty()) {
      return absl::InvalidArgumentError("a TLS role grant needs a subject or a san");
    }
    if (auto san = ParseSanGrant(g.san); !g.san.empty() && !san.ok()) return san.status();
    if (auto r = ParseRoles(g.roles); !r.ok()) return r.status();
  }
  return absl::OkStatus();
}

RoleSet RolesForUid(const Policy& policy, uid_t uid) {
  RoleSet out = uid == policy.daemon_uid ? kAllRoles : 0;
  for (const auto& g : policy.local) {
    if (g.uid == uid) {
      if (auto r = ParseRoles(g.roles); r.ok()) out |= *r;
    }
  }
  return out;
}

bool SanMatches(const SanName& grant, const SanName& cert) {
  if (grant.type != cert.type) return false;
  switch (grant.type) {
    case SanType::kDns:
      return absl::EqualsIgnoreCase(grant.value, cert.value);
    case SanType::kIp: {
      auto bytes = [](const std::string& s) -> std::string {
        unsigned char b[16];
        if (inet_pton(AF_INET, s.c_str(), b) == 1) return std::string(reinterpret_cast<char*>(b), 4);
        if (inet_pton(AF_INET6, s.c_str(), b) == 1) return std::string(reinterpret_cast<char*>(b), 16);
        return "";
      };
      const std::string g = bytes(grant.value);
      return !g.empty() && g == bytes(cert.value);
    }
    case SanType::kUri:
    case SanType::kEmail:
      return grant.value == cert.value;
  }
  return false;
}

RoleSet RolesForCertificate(const Policy& policy, std::string_view subject, const std::vector<SanName>& sans) {
  RoleSet out = 0;
  for (const auto& g : policy.tls) {
    if (g.subject.empty() && g.san.empty()) continue;
    if (!g.subject.empty() && g.subject != subject) continue;
    if (!g.san.empty()) {
      auto want = ParseSanGrant(g.san);
      if (!want.ok()) continue;  // refused by ValidatePolicy; never matches
      if (std::none_of(sans.begin(), sans.end(), [&](const SanName& n) { return SanMatches(*want, n); })) continue;
    }
    if (auto r = ParseRoles(g.roles); r.ok()) out |= *r;
  }
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsServerCredentials(const std::string& cert_file,
                                                                                    const std::string& key_file,
                                                                                    const std::string& client_ca_file) {
  auto read = [](const std::string& what, const std::string& path, std::string* out) -> absl::Status {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::FailedPreconditionError(StrCat("cannot read ", what, " ", path));
    std::stringstream ss;
    ss << in.rdbuf();
    *out = ss.str();
    if (out->find("-----BEGIN ") == std::string::npos) {
      return absl::InvalidArgumentError(StrCat(what, " ", path, " holds no PEM data"));
    }
    return absl::OkStatus();
  };
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (auto s = read("TLS certificate", cert_file, &pair.cert_chain); !s.ok()) return s;
  if (auto s = read("TLS key", key_file, &pair.private_key); !s.ok()) return s;
  if (auto s = read("TLS client CA", client_ca_file, &opts.pem_root_certs); !s.ok()) return s;
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(opts);
}

Authorizer::Authorizer(Policy policy) : policy_(std::move(policy)) {}

void Authorizer::SetPolicy(Policy policy) {
  absl::MutexLock lock(&mu_);
  policy_ = std::move(policy);
  generation_.fetch_add(1);
}

void Authorizer::RegisterUnixConnection(int fd, ino_t inode, uid_t uid) {
  absl::MutexLock lock(&mu_);
  unix_conns_[fd] = UnixConn{inode, uid};
}

void Authorizer::AddPlaintextTcpPort(int port) {
  std::vector<Endpoint> listeners = OwnListeners(port);
  if (listeners.empty()) {
    LogWarning(
        "plaintext TCP port: the daemon's listening socket is not in /proc/net/tcp (hidden?); its callers get "
        "no roles",
        {{"port", port}});
  }
  absl::MutexLock lock(&mu_);
  plaintext_listeners_.insert(plaintext_listeners_.end(), listeners.begin(), listeners.end());
}

Caller Authorizer::IdentifyUnix(int fd) const {
  // gRPC names a connection added with AddInsecureChannelFromFd "fd:<fd>".
  // The fd stays open for as long as any call on that connection exists
  // (the endpoint is destroyed with the transport, which every call holds),
  // so during this call fd is this call's socket. Check that it is the
  // socket our accept loop registered (same inode) and ask the kernel again.
  UnixConn conn{};
  {
    absl::MutexLock lock(&mu_);
    auto it = unix_conns_.find(fd);
    if (it == unix_conns_.end()) return {StrCat("fd:", fd, " (not an accepted unix connection)"), 0};
    conn = it->second;
  }
  struct stat st {};
  ucred cred{};
  socklen_t len = sizeof cred;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != conn.inode ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != conn.uid) {
    return {StrCat("fd:", fd, " (connection changed under the call)"), 0};
  }
  absl::MutexLock lock(&mu_);
  return {StrCat("uid ", cred.uid), RolesForUid(policy_, cred.uid)};
}

Caller Authorizer::IdentifyLoopbackTcp(const std::string& peer) const {
  std::vector<Endpoint> listeners;
  {
    absl::MutexLock lock(&mu_);
    listeners = plaintext_listeners_;
  }
  std::optional<uid_t> uid = LoopbackPeerUid(peer, listeners);
  if (!uid) return {StrCat("plaintext TCP peer ", peer, " (owner unknown)"), 0};
  absl::MutexLock lock(&mu_);
  return {StrCat("uid ", *uid, " (loopback TCP)"), RolesForUid(policy_, *uid)};
}

Caller Authorizer::Identify(const grpc::ServerContextBase& ctx) const {
  std::string peer = ctx.peer();
  std::shared_ptr<const grpc::AuthContext> ac = ctx.auth_context();
  std::string security;
  if (ac) {
    for (const auto& v : ac->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME))
      security.assign(v.data(), v.size());
  }
  if (security == GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
    // Only reachable through a port that demands and verifies a client
    // certificate against the configured CA.
    std::string subject;
    for (const auto& v : ac->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) subject.assign(v.data(), v.size());
    std::vector<SanName> sans = CertificateSans(*ac);
    if (subject.empty() && sans.empty()) return {"TLS peer without a client certificate", 0};
    absl::MutexLock lock(&mu_);
    return {StrCat("TLS subject ", Quote(subject)), RolesForCertificate(policy_, subject, sans)};
  }
  if (peer.starts_with("fd:")) {
    int fd = -1;
    try {
      fd = std::stoi(peer.substr(3));
    } catch (...) {
      return {StrCat("peer ", peer), 0};
    }
    return IdentifyUnix(fd);
  }
  if (peer.starts_with("ipv4:") || peer.starts_with("ipv6:")) return IdentifyLoopbackTcp(peer);
  return {StrCat("peer ", peer), 0};
}

grpc::experimental::Interceptor* AuthInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new AuthInterceptor(authorizer_, info);
}

grpc::Status Authorized(const grpc::ServerContextBase* ctx, Caller* caller) {
  absl::MutexLock lock(&g_verdicts_mu);
  auto it = Verdicts().find(ctx);
  if (it == Verdicts().end()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no authorization decision for this call (denied)");
  }
  if (caller != nullptr) *caller = it->second.caller;
  return it->second.status;
}

grpc::Status Reauthorized(const grpc::ServerContextBase* ctx) {
  const Authorizer* authorizer = nullptr;
  std::string method;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&g_verdicts_mu);
    auto it = Verdicts().find(ctx);
    if (it == Verdicts().end()) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no authorization decision for this call (denied)");
    }
    const Verdict& v = it->second;
    if (v.authorizer == nullptr || !v.status.ok() || v.generation == v.authorizer->generation()) return v.status;
    authorizer = v.authorizer;
    method = v.method;
    generation = authorizer->generation();
  }
  // The policy changed (SIGHUP) since the call began: decide again.
  Caller caller = authorizer->Identify(*ctx);
  grpc::Status status = Decide(method, caller);
  if (!status.ok()) {
    status = grpc::Status(status.error_code(),
                          StrCat(status.error_message(), " (roles changed by a configuration reload during the call)"));
    LogWarning("permission withdrawn during a call", {{"method", ShortMethod(method)}, {"caller", caller.who}});
  }
  absl::MutexLock lock(&g_verdicts_mu);
  auto it = Verdicts().find(ctx);
  if (it != Verdicts().end()) {
    it->second.caller = std::move(caller);
    it->second.status = status;
    it->second.generation = generation;
  }
  return status;
}

std::vector<Endpoint> OwnListeners(int port) {
  const absl::flat_hash_set<uint64_t> own = OwnSocketInodes();
  std::vector<Endpoint> out;
  for (const auto& s : ReadTcpTables()) {
    if (s.state == kTcpListen && s.local.port == port && IsLoopback(s.local) && own.contains(s.inode)) {
      out.push_back(s.local);
    }
  }
  return out;
}

std::optional<uid_t> LoopbackPeerUid(std::string_view peer, const std::vector<Endpoint>& listeners) {
  std::optional<Endpoint> p = ParsePeer(peer);
  if (!p || listeners.empty()) return std::nullopt;
  return internal::PeerUid(ReadTcpTables(), *p, listeners);
}

}  // namespace shredd::auth
