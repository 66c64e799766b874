// Who may do what: the role table (one entry per RPC, default deny), how a
// caller is identified (unix socket uid via SO_PEERCRED, TLS client
// certificate, loopback TCP uid) and the per-call decision.
//
// The decision is made in ONE place, a gRPC server interceptor
// (AuthInterceptorFactory) that sees every call's full method name before
// the handler runs. gRPC 1.51's server interceptors cannot fail a call, so
// every handler of ours starts with SHREDD_AUTHORIZE(ctx), which returns the
// interceptor's verdict (PERMISSION_DENIED naming the missing roles) and
// denies when there is none. tests/integration/test_auth.py calls every RPC
// of every service as a caller without roles, so a handler that forgets the
// line fails the suite. docs/SECURITY.md has the table in prose.
#ifndef SHREDD_DAEMON_API_AUTH_H_
#define SHREDD_DAEMON_API_AUTH_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include "daemon/config/config.h"
#include "daemon/config/san_grant.h"

namespace shredd {

// LocalRoleGrant and TlsRoleGrant ([[roles.local]], [[roles.tls]]) are
// defined in daemon/config/config.h.

namespace auth {

enum Role : uint32_t { kWriter = 1u << 0, kDeleter = 1u << 1, kAuditor = 1u << 2, kAdmin = 1u << 3 };
using RoleSet = uint32_t;
inline constexpr RoleSet kAllRoles = kWriter | kDeleter | kAuditor | kAdmin;
// A method anyone may call, with or without roles (health, reflection).
inline constexpr RoleSet kAnyone = 1u << 31;

// "writer", "deleter", "auditor" (the regulator), "admin".
absl::StatusOr<RoleSet> ParseRoles(const std::vector<std::string>& names);
// "writer or admin" / "writer, admin" depending on `sep`.
std::string RoleNames(RoleSet roles, std::string_view sep);

struct MethodRule {
  const char* method;  // full gRPC name: "/shredd.v1.Store/Put"
  RoleSet roles;       // any of these suffices; kAnyone: no role needed
};
// Every RPC the daemon serves. A method not listed is denied to everyone.
const std::vector<MethodRule>& MethodTable();
std::optional<RoleSet> RequiredRoles(std::string_view method);

struct Caller {
  std::string who;  // "uid 1001", "TLS subject \"CN=ftc\"", ...
  RoleSet roles = 0;
};
// OK, or PERMISSION_DENIED: "Orders.SubmitOrder needs role deleter or admin;
// caller uid 1001 has: auditor".
grpc::Status Decide(std::string_view method, const Caller& caller);

struct Policy {
  std::vector<LocalRoleGrant> local;
  std::vector<TlsRoleGrant> tls;
  // Always has every role on the local socket: it can read the vault and the
  // database anyway, and the Quick start runs everything as one user.
  uid_t daemon_uid = 0;
};
// Checks role names, that each TLS grant names a subject or a SAN, and
// that its SAN parses (ParseSanGrant).
absl::Status ValidatePolicy(const Policy& policy);

// Server credentials for every tcp: listener when TLS is configured: the
// certificate chain and key from the PEM files, and client certificates
// required and verified against `client_ca_file`.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsServerCredentials(const std::string& cert_file,
                                                                                    const std::string& key_file,
                                                                                    const std::string& client_ca_file);

// Roles of a local user (unix socket, loopback TCP).
RoleSet RolesForUid(const Policy& policy, uid_t uid);
// Whether a certificate's SAN satisfies a grant's (ParseSanGrant): same type,
// and the same DNS name ignoring ASCII case, the same IP address (compared as
// addresses: "::1" is "0:0::1"), or the same URI or e-mail address byte for
// byte.
bool SanMatches(const SanName& grant, const SanName& cert);
// Roles of a TLS client: the union of every grant whose subject equals the
// certificate's subject DN or whose SAN matches one of its SANs (a grant
// with both needs both).
RoleSet RolesForCertificate(const Policy& policy, std::string_view subject, const std::vector<SanName>& sans);

// A TCP endpoint as /proc/net/tcp{,6} and gRPC's peer strings name it; IPv4
// addresses as IPv4-mapped IPv6 (::ffff:127.0.0.1), so that a client on an
// AF_INET socket and one on an AF_INET6 socket compare alike.
struct Endpoint {
  std::array<unsigned char, 16> addr{};
  int port = 0;
  bool operator==(const Endpoint&) const = default;
};

// Identifies callers and decides calls. Thread-safe; the policy can be
// replaced at run time (SIGHUP).
class Authorizer {
 public:
  explicit Authorizer(Policy policy);

  void SetPolicy(Policy policy);
  // Changes with every SetPolicy: a call's verdict from an older policy is
  // decided again by Reauthorized.
  uint64_t generation() const { return generation_.load(); }
  // A unix socket connection accepted by the daemon's own accept loop (see
  // server.cc), before it is handed to gRPC as "fd:<fd>".
  void RegisterUnixConnection(int fd, ino_t inode, uid_t uid);
  // A plaintext (loopback, no TLS) TCP port: callers on it are identified
  // by the uid owning their socket in /proc/net/tcp{,6} (LoopbackPeerUid);
  // the daemon's listening sockets on `port` are looked up now.
  void AddPlaintextTcpPort(int port);

  Caller Identify(const grpc::ServerContextBase& ctx) const;

 private:
  struct UnixConn {
    ino_t inode;
    uid_t uid;
  };
  Caller IdentifyUnix(int fd) const;
  Caller IdentifyLoopbackTcp(const std::string& peer) const;

  mutable absl::Mutex mu_;
  Policy policy_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, UnixConn> unix_conns_ ABSL_GUARDED_BY(mu_);
  std::vector<Endpoint> plaintext_listeners_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> generation_{0};
};

// Installs the decision for each call (register with
// ServerBuilder::experimental().SetInterceptorCreators).
class AuthInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(const Authorizer* authorizer) : authorizer_(authorizer) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  const Authorizer* const authorizer_;
};

// The interceptor's verdict for the call of `ctx`; PERMISSION_DENIED when
// the interceptor did not run. `caller` (optional) receives the caller.
grpc::Status Authorized(const grpc::ServerContextBase* ctx, Caller* caller = nullptr);

// The verdict again, decided anew if the policy changed since the call
// began: a role withdrawn by a reload reaches calls that are still running
// (streams, waits, calls queued for transfer memory), not only new ones.
// Long calls check it before each side effect or chunk (SHREDD_REAUTHORIZE).
grpc::Status Reauthorized(const grpc::ServerContextBase* ctx);

// The daemon's own listening sockets on `port` (loopback addresses, from
// /proc/net/tcp{,6}, kept to the sockets among /proc/self/fd).
std::vector<Endpoint> OwnListeners(int port);

// uid owning the client end of the loopback TCP connection whose client end
// is `peer` (gRPC peer string "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555") and
// whose server end is one of `listeners`. Reads /proc/net/tcp and tcp6.
std::optional<uid_t> LoopbackPeerUid(std::string_view peer, const std::vector<Endpoint>& listeners);

namespace internal {
// One line of /proc/net/tcp or tcp6.
struct TcpSocket {
  Endpoint local, remote;
  int state = 0;  // 0x01 established, 0x06 time-wait, 0x0A listen, ...
  uid_t uid = 0;
  uint64_t inode = 0;
};
// Every socket of `proc_net_file` (the format of /proc/net/tcp and tcp6).
std::vector<TcpSocket> ReadTcpTable(const char* proc_net_file);
// The uid of the client end of the connection between `peer` and one of
// `listeners`, found in `sockets` (both tables: a client may hold an AF_INET
// or an AF_INET6 socket): first the daemon's end, the one socket whose
// local end is a listener and whose remote end is `peer`; then the one
// established socket with exactly the reverse addresses. A TCP 4-tuple is
// unique on a host, so that is the caller's socket; anything else (no such
// socket, or two) is nullopt: no roles. Matching the client end's local
// address and remote port alone let another user's connection from the
// same local port to another address (ports are shared across
// destinations) stand in for the caller's.
std::optional<uid_t> PeerUid(const std::vector<TcpSocket>& sockets, const Endpoint& peer,
                             const std::vector<Endpoint>& listeners);
}  // namespace internal

}  // namespace auth
}  // namespace shredd

// First statement of every handler: returns PERMISSION_DENIED unless the
// caller holds a role the method's table entry names.
#define SHREDD_AUTHORIZE(ctx)                                                                                   \
  do {                                                                                                          \
    if (::grpc::Status shredd_auth_ = ::shredd::auth::Authorized(ctx); !shredd_auth_.ok()) return shredd_auth_; \
  } while (0)

// Before each side effect or chunk of a long call: PERMISSION_DENIED if a
// reload withdrew the role the call began with.
#define SHREDD_REAUTHORIZE(ctx)                                                                                   \
  do {                                                                                                            \
    if (::grpc::Status shredd_auth_ = ::shredd::auth::Reauthorized(ctx); !shredd_auth_.ok()) return shredd_auth_; \
  } while (0)

#endif  // SHREDD_DAEMON_API_AUTH_H_
