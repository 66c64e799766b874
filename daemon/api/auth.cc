#include "daemon/api/auth.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
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

// /proc/net/tcp writes an IPv4 address as the in-memory u32 in %08X and an
// IPv6 one as four such words; the port as %04X.
std::string ProcHex(const void* addr, size_t len) {
  std::string out;
  char buf[9];
  for (size_t i = 0; i < len; i += 4) {
    uint32_t w;
    std::memcpy(&w, static_cast<const char*>(addr) + i, 4);
    std::snprintf(buf, sizeof buf, "%08X", w);
    out += buf;
  }
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

std::optional<uid_t> FindInProcNet(const char* file, const std::string& local_hex,
                                   const absl::flat_hash_set<int>& server_ports) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);  // header
  // One connection only: two established sockets can share a local
  // address and port towards different remote addresses (SO_REUSEADDR),
  // and taking the first would hand one user another's roles.
  std::optional<uid_t> found;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string sl, local, remote, st, txrx, trwhen, retr, uid;
    if (!(ls >> sl >> local >> remote >> st >> txrx >> trwhen >> retr >> uid)) continue;
    auto colon = local.rfind(':');
    auto rcolon = remote.rfind(':');
    if (colon == std::string::npos || rcolon == std::string::npos) continue;
    if (local != local_hex) continue;
    int rport = static_cast<int>(std::strtol(remote.c_str() + rcolon + 1, nullptr, 16));
    if (!server_ports.contains(rport)) continue;
    if (st != "01") continue;        // TCP_ESTABLISHED
    if (found) return std::nullopt;  // ambiguous: no roles
    found = static_cast<uid_t>(std::strtoul(uid.c_str(), nullptr, 10));
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
  absl::MutexLock lock(&mu_);
  plaintext_ports_.insert(port);
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
  absl::flat_hash_set<int> ports;
  {
    absl::MutexLock lock(&mu_);
    ports = plaintext_ports_;
  }
  std::optional<uid_t> uid = ports.empty() ? std::nullopt : LoopbackPeerUid(peer, ports);
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

std::optional<uid_t> LoopbackPeerUid(std::string_view peer, const absl::flat_hash_set<int>& server_ports) {
  // gRPC may write the brackets of an IPv6 peer percent-encoded ("ipv6:%5B::1%5D:5555").
  std::string p;
  for (size_t i = 0; i < peer.size(); ++i) {
    if (peer[i] == '%' && i + 2 < peer.size()) {
      std::string hex(peer.substr(i + 1, 2));
      if (hex == "5B" || hex == "5b") {
        p += '[';
        i += 2;
        continue;
      }
      if (hex == "5D" || hex == "5d") {
        p += ']';
        i += 2;
        continue;
      }
      if (hex == "25") {
        p += '%';
        i += 2;
        continue;
      }
    }
    p += peer[i];
  }
  auto colon = p.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  int port = 0;
  try {
    port = std::stoi(p.substr(colon + 1));
  } catch (...) {
    return std::nullopt;
  }
  char port_hex[8];
  std::snprintf(port_hex, sizeof port_hex, "%04X", port);
  std::string host;
  bool v6 = false;
  if (p.starts_with("ipv4:")) {
    host = p.substr(5, colon - 5);
  } else if (p.starts_with("ipv6:")) {
    host = p.substr(5, colon - 5);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto pct = host.find('%');
    if (pct != std::string::npos) host.resize(pct);
    v6 = true;
  } else {
    return std::nullopt;
  }
  in_addr a4{};
  in6_addr a6{};
  if (v6) {
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) return std::nullopt;
    if (!IN6_IS_ADDR_LOOPBACK(&a6) && !IN6_IS_ADDR_V4MAPPED(&a6)) return std::nullopt;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      std::memcpy(&a4, &a6.s6_addr[12], 4);
      if ((ntohl(a4.s_addr) >> 24) != 127) return std::nullopt;
      // The client may hold an AF_INET socket (listed in tcp) or an AF_INET6 one.
      if (auto u = internal::FindInProcNet("/proc/net/tcp", StrCat(ProcHex(&a4, 4), ":", port_hex), server_ports))
        return u;
    }
    return internal::FindInProcNet("/proc/net/tcp6", StrCat(ProcHex(&a6, 16), ":", port_hex), server_ports);
  }
  if (inet_pton(AF_INET, host.c_str(), &a4) != 1) return std::nullopt;
  if ((ntohl(a4.s_addr) >> 24) != 127) return std::nullopt;
  if (auto u = internal::FindInProcNet("/proc/net/tcp", StrCat(ProcHex(&a4, 4), ":", port_hex), server_ports)) return u;
  std::memset(&a6, 0, sizeof a6);
  a6.s6_addr[10] = a6.s6_addr[11] = 0xff;
  std::memcpy(&a6.s6_addr[12], &a4, 4);
  return internal::FindInProcNet("/proc/net/tcp6", StrCat(ProcHex(&a6, 16), ":", port_hex), server_ports);
}

}  // namespace shredd::auth
