// Who may do what (daemon/api/auth.h): the role table covers every RPC, the
// decisions and their messages, identities from uid and certificates, and
// the unix socket path (own accept loop -> gRPC "fd:<fd>" peer -> uid).
#include "daemon/api/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <string>

#include "shredd/v1/log.grpc.pb.h"
#include "shredd/v1/orders.grpc.pb.h"
#include "shredd/v1/shredd.grpc.pb.h"
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include "daemon/api/unix_listener.h"
#include "tests/unit/test_util.h"

namespace shredd::auth {
namespace {

namespace fs = std::filesystem;

// proto/shredd/v1 of the source tree (not found through __FILE__, which a
// compiler cache may make relative to the build directory).
fs::path ProtoDir() { return fs::path(SHREDD_SOURCE_DIR) / "proto" / "shredd" / "v1"; }

// Every RPC of every service in proto/shredd/v1/*.proto, as gRPC names it.
std::set<std::string> AllRpcs() {
  // Make sure the generated descriptors are linked in.
  (void)v1::PutRequest::descriptor();
  (void)v1::GetCheckpointRequest::descriptor();
  (void)v1::OrderSpec::descriptor();
  std::set<std::string> out;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  int files = 0;
  for (const auto& entry : fs::directory_iterator(ProtoDir())) {
    if (entry.path().extension() != ".proto") continue;
    std::string name = "shredd/v1/" + entry.path().filename().string();
    const google::protobuf::FileDescriptor* file = pool->FindFileByName(name);
    EXPECT_NE(file, nullptr) << name << " is not linked into the test (reference one of its messages above)";
    if (file == nullptr) continue;
    ++files;
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        out.insert("/" + service->full_name() + "/" + service->method(m)->name());
      }
    }
  }
  EXPECT_GE(files, 3);
  return out;
}

TEST(AuthTableTest, EveryRpcHasADecision) {
  std::set<std::string> rpcs = AllRpcs();
  EXPECT_GE(rpcs.size(), 27u);
  for (const auto& m : rpcs) {
    std::optional<RoleSet> r = RequiredRoles(m);
    ASSERT_TRUE(r.has_value()) << m << " has no entry in auth::MethodTable(): decide who may call it";
    EXPECT_NE(*r, 0u) << m << " is allowed to no role";
    EXPECT_FALSE(*r & kAnyone) << m << ": only gRPC's own services are open to everyone";
    EXPECT_TRUE(*r & kAdmin) << m << ": admin may do everything";
  }
  // And no entry for an RPC that does not exist (a typo would deny the real one).
  for (const auto& rule : MethodTable()) {
    std::string m = rule.method;
    if (m.starts_with("/grpc.")) continue;
    EXPECT_TRUE(rpcs.contains(m)) << m << " is in the table but not in proto/";
  }
}

TEST(AuthTableTest, UnknownMethodsAreDenied) {
  Caller admin{"uid 0", kAllRoles};
  grpc::Status s = Decide("/shredd.v1.Store/Format", admin);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("not in the daemon's role table"), std::string::npos) << s.error_message();
}

TEST(AuthTableTest, AuditorReadsCertificatesAndTheLogOnly) {
  Caller auditor{"TLS subject \"CN=ftc\"", kAuditor};
  for (const auto& m : AllRpcs()) {
    const bool allowed = Decide(m, auditor).ok();
    const bool expected = m.starts_with("/shredd.v1.Log/") || m == "/shredd.v1.Shredder/GetCertificate" ||
                          m == "/shredd.v1.Shredder/GetPublicKey";
    EXPECT_EQ(allowed, expected) << m;
  }
}

TEST(AuthTableTest, RolesAndTheirMethods) {
  auto ok = [](const char* m, RoleSet r) { return Decide(m, Caller{"x", r}).ok(); };
  EXPECT_TRUE(ok("/shredd.v1.Store/Put", kWriter));
  EXPECT_FALSE(ok("/shredd.v1.Store/Put", kDeleter));
  EXPECT_FALSE(ok("/shredd.v1.Shredder/Shred", kWriter));
  EXPECT_TRUE(ok("/shredd.v1.Shredder/Shred", kDeleter));
  EXPECT_TRUE(ok("/shredd.v1.Orders/SubmitOrder", kDeleter));
  EXPECT_FALSE(ok("/shredd.v1.Orders/LiftSuppression", kDeleter));
  EXPECT_TRUE(ok("/shredd.v1.Orders/LiftSuppression", kAdmin));
  EXPECT_FALSE(ok("/shredd.v1.Store/Get", kDeleter | kAuditor));
  EXPECT_FALSE(ok("/shredd.v1.Log/GetCheckpoint", 0));
  EXPECT_TRUE(ok("/grpc.health.v1.Health/Check", 0));
}

TEST(AuthTableTest, RefusalNamesTheMissingRolesAndTheCaller) {
  grpc::Status s = Decide("/shredd.v1.Orders/SubmitOrder", Caller{"uid 1001", kAuditor});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(), "Orders.SubmitOrder needs role deleter or admin; caller uid 1001 has: auditor");
  s = Decide("/shredd.v1.Catalog/GetLineage", Caller{"uid 7", 0});
  EXPECT_EQ(s.error_message(), "Catalog.GetLineage needs role writer, deleter or admin; caller uid 7 has no roles");
  s = Decide("/shredd.v1.Orders/LiftSuppression", Caller{"uid 7", kWriter | kDeleter});
  EXPECT_EQ(s.error_message(), "Orders.LiftSuppression needs role admin; caller uid 7 has: writer, deleter");
}

TEST(AuthPolicyTest, ParseRoles) {
  auto r = ParseRoles({"writer", "auditor"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, kWriter | kAuditor);
  EXPECT_FALSE(ParseRoles({"root"}).ok());
  EXPECT_FALSE(ParseRoles({"Admin"}).ok());
}

TEST(AuthPolicyTest, LocalUsers) {
  Policy p;
  p.daemon_uid = 998;
  p.local = {{1001, {"auditor"}}, {1002, {"writer", "deleter"}}};
  EXPECT_EQ(RolesForUid(p, 998), kAllRoles);
  EXPECT_EQ(RolesForUid(p, 1001), kAuditor);
  EXPECT_EQ(RolesForUid(p, 1002), kWriter | kDeleter);
  EXPECT_EQ(RolesForUid(p, 0), 0u) << "root gets nothing it was not granted";
  EXPECT_EQ(RolesForUid(p, 65534), 0u);
}

SanName Dns(const char* name) { return {SanType::kDns, name}; }

TEST(AuthPolicyTest, Certificates) {
  Policy p;
  p.tls = {{"CN=ftc-auditor,O=FTC", "", {"auditor"}},
           {"", "ingest.vendor.example", {"writer"}},
           {"CN=ops,O=Vendor", "ops.vendor.example", {"deleter"}}};
  ASSERT_TRUE(ValidatePolicy(p).ok());
  EXPECT_EQ(RolesForCertificate(p, "CN=ftc-auditor,O=FTC", {}), kAuditor);
  EXPECT_EQ(RolesForCertificate(p, "CN=ftc-auditor,O=FTC Inc", {}), 0u) << "the subject must match exactly";
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {Dns("a.example"), Dns("ingest.vendor.example")}), kWriter);
  EXPECT_EQ(RolesForCertificate(p, "CN=ops,O=Vendor", {}), 0u) << "a grant with subject and san needs both";
  EXPECT_EQ(RolesForCertificate(p, "CN=ops,O=Vendor", {Dns("ops.vendor.example")}), kDeleter);
  EXPECT_EQ(RolesForCertificate(p, "CN=other", {Dns("other.example")}), 0u);
  p.tls.push_back({"", "", {"admin"}});
  EXPECT_FALSE(ValidatePolicy(p).ok());
}

// Review finding: SANs of every type were one list, so a certificate whose
// e-mail or URI SAN (which CAs of user certificates often let the holder
// choose) read like a granted DNS name got that grant's roles.
TEST(AuthPolicyTest, SanGrantMatchesOnlyItsOwnType) {
  Policy p;
  p.tls = {{"", "ingest.vendor.example", {"writer"}}, {"", "uri:spiffe://vendor/ops", {"deleter"}}};
  ASSERT_TRUE(ValidatePolicy(p).ok());
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {{SanType::kEmail, "ingest.vendor.example"}}), 0u);
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {{SanType::kUri, "ingest.vendor.example"}}), 0u);
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {{SanType::kDns, "spiffe://vendor/ops"}}), 0u);
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {{SanType::kEmail, "spiffe://vendor/ops"}}), 0u);
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {{SanType::kUri, "spiffe://vendor/ops"}}), kDeleter);
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {Dns("INGEST.Vendor.example")}), kWriter) << "DNS names ignore case";
  EXPECT_EQ(RolesForCertificate(p, "CN=x", {{SanType::kUri, "spiffe://VENDOR/ops"}}), 0u) << "URIs are exact";
}

TEST(AuthPolicyTest, SanMatches) {
  auto grant = [](const char* text) { return *ParseSanGrant(text); };
  EXPECT_TRUE(SanMatches(grant("ip:::1"), {SanType::kIp, "0:0:0:0:0:0:0:1"})) << "IP addresses as addresses";
  EXPECT_TRUE(SanMatches(grant("192.0.2.7"), {SanType::kIp, "192.0.2.7"}));
  EXPECT_FALSE(SanMatches(grant("192.0.2.7"), {SanType::kDns, "192.0.2.7"}));
  EXPECT_FALSE(SanMatches(grant("192.0.2.7"), {SanType::kIp, "192.0.2.70"}));
  EXPECT_FALSE(SanMatches(grant("192.0.2.7"), {SanType::kIp, "::ffff:192.0.2.7"})) << "4 and 16 bytes differ";
  EXPECT_TRUE(SanMatches(grant("ops@vendor.example"), {SanType::kEmail, "ops@vendor.example"}));
  EXPECT_FALSE(SanMatches(grant("ops@vendor.example"), {SanType::kEmail, "OPS@vendor.example"}));
  EXPECT_FALSE(SanMatches(grant("ops@vendor.example"), {SanType::kDns, "ops@vendor.example"}));
  EXPECT_FALSE(SanMatches(grant("dns:a.example"), {SanType::kDns, "a.example.evil"}));
}

// Both ends of a loopback connection, as /proc/net/tcp{,6} list them.
Endpoint V4(const char* addr, int port) {
  Endpoint e;
  e.addr[10] = e.addr[11] = 0xff;
  inet_pton(AF_INET, addr, &e.addr[12]);
  e.port = port;
  return e;
}

std::string TcpHeader() {
  return "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
}
std::string TcpLine(const std::string& local, const std::string& remote, const char* state, int uid, int inode) {
  return "   0: " + local + " " + remote + " " + state + " 00000000:00000000 00:00000000 00000000 " +
         std::to_string(uid) + " 0 " + std::to_string(inode) + " 1 0000000000000000 20 4 30 10 -1\n";
}

// The caller is the one socket with exactly the reverse addresses of the
// daemon's end. Review finding: the lookup matched the client end's local
// address and the remote *port* only, in tcp before tcp6, so another user's
// connection from the same local port (the kernel shares a local port across
// destinations) to another loopback address on the daemon's port number,
// listed in tcp while the caller's AF_INET6 socket was in tcp6, stood in for
// the caller.
TEST(LoopbackPeerTest, TheCallerIsTheReverseOfTheDaemonsEnd) {
  shredd::testing::TempDir dir;
  const std::string v4 = dir.path() + "/tcp", v6 = dir.path() + "/tcp6";
  // Port 0xC350 of 127.0.0.1; the daemon listens on 127.0.0.1:8080 (0x1F90).
  const std::string theirs = TcpLine("0100007F:C350", "0200007F:1F90", "01", 1000, 11);  // to 127.0.0.2:8080
  const std::string other_end = TcpLine("0200007F:1F90", "0100007F:C350", "01", 1000, 12);
  const std::string ours =
      TcpLine("0000000000000000FFFF00000100007F:1F90", "0000000000000000FFFF00000100007F:C350", "01", 0, 13);
  const std::string caller =
      TcpLine("0000000000000000FFFF00000100007F:C350", "0000000000000000FFFF00000100007F:1F90", "01", 65534, 14);
  const std::string listening =
      TcpLine("0000000000000000FFFF00000100007F:1F90", "00000000000000000000000000000000:0000", "0A", 0, 15);
  std::ofstream(v4) << TcpHeader() << theirs << other_end;
  std::ofstream(v6) << TcpHeader() << listening << ours << caller;
  std::vector<internal::TcpSocket> table = internal::ReadTcpTable(v4.c_str());
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[0].local, V4("127.0.0.1", 0xC350));
  EXPECT_EQ(table[0].remote, V4("127.0.0.2", 0x1F90));
  EXPECT_EQ(table[0].uid, 1000u);
  EXPECT_EQ(table[0].inode, 11u);
  std::vector<internal::TcpSocket> t6 = internal::ReadTcpTable(v6.c_str());
  ASSERT_EQ(t6.size(), 3u);
  EXPECT_EQ(t6[0].state, 0x0A);
  table.insert(table.end(), t6.begin(), t6.end());
  const Endpoint peer = V4("127.0.0.1", 0xC350);
  const std::vector<Endpoint> listeners = {V4("127.0.0.1", 0x1F90)};
  EXPECT_EQ(internal::PeerUid(table, peer, listeners), std::optional<uid_t>(65534));
  // The caller's socket gone (reset): nobody, not the other connection's owner.
  std::vector<internal::TcpSocket> gone(table.begin(), table.begin() + 4);
  EXPECT_EQ(internal::PeerUid(gone, peer, listeners), std::nullopt);
  // The daemon's end gone too.
  gone.resize(3);
  EXPECT_EQ(internal::PeerUid(gone, peer, listeners), std::nullopt);
  // Not one of our listeners.
  EXPECT_EQ(internal::PeerUid(table, peer, {V4("127.0.0.1", 0x1F91)}), std::nullopt);
  // Two of our ports accepted connections from the same client port: which is the caller's is unknown.
  std::vector<internal::TcpSocket> two = table;
  internal::TcpSocket second = table[3];  // ours
  second.local.port = 0x1F91;
  two.push_back(second);
  EXPECT_EQ(internal::PeerUid(two, peer, {V4("127.0.0.1", 0x1F90), V4("127.0.0.1", 0x1F91)}), std::nullopt);
}

TEST(AuthIdentityTest, LoopbackTcpPeerUid) {
  int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(srv, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(srv, 4), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(srv, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int server_port = ntohs(a.sin_port);
  const std::vector<Endpoint> listeners = OwnListeners(server_port);
  ASSERT_EQ(listeners.size(), 1u) << "our listening socket, found through /proc/self/fd";
  EXPECT_EQ(listeners[0], V4("127.0.0.1", server_port));
  int cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(cli, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int conn = accept(srv, nullptr, nullptr);
  ASSERT_GE(conn, 0);
  sockaddr_in c{};
  len = sizeof c;
  ASSERT_EQ(getsockname(cli, reinterpret_cast<sockaddr*>(&c), &len), 0);
  std::string peer = "ipv4:127.0.0.1:" + std::to_string(ntohs(c.sin_port));
  auto uid = LoopbackPeerUid(peer, listeners);
  ASSERT_TRUE(uid.has_value()) << peer;
  EXPECT_EQ(*uid, getuid());
  EXPECT_FALSE(LoopbackPeerUid(peer, {V4("127.0.0.1", server_port + 1)}).has_value())
      << "only connections to our own listeners";
  EXPECT_FALSE(LoopbackPeerUid(peer, {}).has_value());
  EXPECT_FALSE(LoopbackPeerUid("ipv4:10.0.0.1:" + std::to_string(ntohs(c.sin_port)), listeners).has_value());
  EXPECT_TRUE(OwnListeners(server_port + 1).empty());
  close(conn);
  close(cli);
  close(srv);
}

// Records the identity the Authorizer gives each call.
class RecordingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RecordingFactory(const Authorizer* a) : authorizer_(a) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new Recorder(this, info);
  }
  std::vector<std::pair<std::string, Caller>> seen;  // (peer, caller)
  absl::Mutex mu;

 private:
  class Recorder final : public grpc::experimental::Interceptor {
   public:
    Recorder(RecordingFactory* f, grpc::experimental::ServerRpcInfo* info) : f_(f), info_(info) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
      if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
        const auto* ctx = info_->server_context();
        Caller c = f_->authorizer_->Identify(*ctx);
        absl::MutexLock lock(&f_->mu);
        f_->seen.emplace_back(ctx->peer(), c);
      }
      methods->Proceed();
    }

   private:
    RecordingFactory* f_;
    grpc::experimental::ServerRpcInfo* info_;
  };
  const Authorizer* authorizer_;
};

TEST(AuthIdentityTest, UnixSocketCallerIsIdentifiedByUid) {
  shredd::testing::TempDir dir;
  std::string path = dir / "s.sock";
  Policy policy;
  policy.daemon_uid = getuid();
  Authorizer authorizer(policy);
  auto* recording = new RecordingFactory(&authorizer);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  v1::Log::Service sync_service;  // a sync service: its methods answer UNIMPLEMENTED
  builder.RegisterService(&sync_service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
  f.emplace_back(recording);
  builder.experimental().SetInterceptorCreators(std::move(f));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto listener = UnixListener::Bind(path);
  ASSERT_TRUE(listener.ok()) << listener.status();
  (*listener)->Start(server.get(), &authorizer);

  auto call = [&path] {
    auto channel = grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    grpc::Slice empty("");
    grpc::ByteBuffer req(&empty, 1), resp;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  };
  for (int i = 0; i < 3; ++i) {  // three connections
    grpc::Status s = call();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const std::string me = "uid " + std::to_string(getuid());
  {
    absl::MutexLock lock(&recording->mu);
    ASSERT_EQ(recording->seen.size(), 3u);
    for (const auto& [peer, caller] : recording->seen) {
      EXPECT_TRUE(peer.starts_with("fd:")) << peer;
      EXPECT_EQ(caller.who, me) << peer;
      EXPECT_EQ(caller.roles, kAllRoles) << "the daemon's own uid has every role";
    }
  }
  // Not the daemon's uid and no grant: no roles. Then a grant: its roles.
  Policy stranger;
  stranger.daemon_uid = getuid() + 1;
  authorizer.SetPolicy(stranger);
  ASSERT_TRUE(call().ok());
  stranger.local = {{static_cast<uint32_t>(getuid()), {"auditor"}}};
  authorizer.SetPolicy(stranger);
  ASSERT_TRUE(call().ok());
  {
    absl::MutexLock lock(&recording->mu);
    ASSERT_EQ(recording->seen.size(), 5u);
    EXPECT_EQ(recording->seen[3].second.who, me);
    EXPECT_EQ(recording->seen[3].second.roles, 0u);
    EXPECT_EQ(recording->seen[4].second.roles, kAuditor);
  }
  (*listener)->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
}

}  // namespace
}  // namespace shredd::auth
