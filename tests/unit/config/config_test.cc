// Config file: the full schema, defaults, and every kind of error naming its
// key and line; cross-key checks; TLS file checks.
#include "daemon/config/config.h"

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "daemon/base/strings.h"
#include "daemon/config/san_grant.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

absl::Status LoadError(std::string_view toml) {
  auto c = LoadConfigFromString(toml, "test.toml");
  EXPECT_FALSE(c.ok()) << toml;
  return c.status();
}

TEST(ConfigTest, EmptyFileIsTheDefaults) {
  auto c = LoadConfigFromString("", "empty.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  DaemonConfig d;
  EXPECT_EQ(c->data_dir, "./var/shredd/data");
  EXPECT_EQ(c->vault, "file:./var/shredd/vault");
  EXPECT_EQ(c->listen, std::vector<std::string>{"unix:./var/shredd/shredd.sock"});
  EXPECT_EQ(c->inline_threshold, 65536u);
  EXPECT_EQ(c->metrics_listen, "");
  EXPECT_EQ(c->log_format, LogFormat::kText);
  EXPECT_EQ(c->log_origin, "");
  EXPECT_EQ(c->memory_budget_mib, 64u);
  EXPECT_TRUE(c->tls_cert.empty() && c->tls_key.empty() && c->tls_client_ca.empty());
  EXPECT_TRUE(c->local_roles.empty());
  EXPECT_TRUE(c->tls_roles.empty());
  EXPECT_TRUE(ValidateConfig(*c).ok());
}

TEST(ConfigTest, FullSchema) {
  auto c = LoadConfigFromString(R"(
[server]
data_dir = "/var/lib/shredd/data"
vault = "file:/var/lib/shredd-vault"
listen = ["unix:/run/shredd/shredd.sock", "tcp:127.0.0.1:7443"]
log_origin = "shredd.example/log"
inline_threshold = 4096
metrics_listen = "127.0.0.1:9464"
log_format = "json"

[tls]
cert = "/etc/shredd/server.pem"
key = "/etc/shredd/server.key"
client_ca = "/etc/shredd/clients-ca.pem"

[[roles.local]]
uid = 1000
roles = ["writer", "deleter"]

[[roles.local]]
uid = 0
roles = ["admin"]

[[roles.tls]]
subject = "CN=regulator,O=FTC"
san = ""
roles = ["auditor"]

[[roles.tls]]
san = "ops.example.com"
roles = ["writer", "admin"]
)",
                                "full.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_dir, "/var/lib/shredd/data");
  EXPECT_EQ(c->vault, "file:/var/lib/shredd-vault");
  EXPECT_EQ(c->listen, (std::vector<std::string>{"unix:/run/shredd/shredd.sock", "tcp:127.0.0.1:7443"}));
  EXPECT_EQ(c->log_origin, "shredd.example/log");
  EXPECT_EQ(c->inline_threshold, 4096u);
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->log_format, LogFormat::kJson);
  EXPECT_EQ(c->tls_cert, "/etc/shredd/server.pem");
  EXPECT_EQ(c->tls_key, "/etc/shredd/server.key");
  EXPECT_EQ(c->tls_client_ca, "/etc/shredd/clients-ca.pem");
  ASSERT_EQ(c->local_roles.size(), 2u);
  EXPECT_EQ(c->local_roles[0].uid, 1000u);
  EXPECT_EQ(c->local_roles[0].roles, (std::vector<std::string>{"writer", "deleter"}));
  EXPECT_EQ(c->local_roles[1].uid, 0u);
  ASSERT_EQ(c->tls_roles.size(), 2u);
  EXPECT_EQ(c->tls_roles[0].subject, "CN=regulator,O=FTC");
  EXPECT_EQ(c->tls_roles[0].san, "");
  EXPECT_EQ(c->tls_roles[0].roles, std::vector<std::string>{"auditor"});
  EXPECT_EQ(c->tls_roles[1].san, "ops.example.com");
  // Structurally valid; the TLS files do not exist.
  EXPECT_TRUE(ValidateConfig(*c, /*check_files=*/false).ok());
  auto s = ValidateConfig(*c);
  EXPECT_NE(Message(s).find("tls.cert: cannot read /etc/shredd/server.pem"), std::string::npos) << s;
}

TEST(ConfigTest, ShredSection) {
  auto d = LoadConfigFromString("", "empty.toml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->shred_epoch_items, 25000u);
  EXPECT_EQ(d->shred_manifest_chunk_items, 1000u);
  EXPECT_EQ(d->shred_inline_manifest_items, 20000u);
  auto c = LoadConfigFromString("[shred]\nepoch_items = 64\nmanifest_chunk_items = 50\ninline_manifest_items = 0\n",
                                "shred.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shred_epoch_items, 64u);
  EXPECT_EQ(c->shred_manifest_chunk_items, 50u);
  EXPECT_EQ(c->shred_inline_manifest_items, 0u);
}

TEST(ConfigTest, ShippedExampleIsValid) {
  const char* repo = std::getenv("SHREDD_REPO");
  std::string path = StrCat(repo ? repo : SHREDD_SOURCE_DIR, "/systemd/shredd.toml");
  auto c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(ValidateConfig(*c).ok()) << ValidateConfig(*c);
  EXPECT_EQ(c->listen, std::vector<std::string>{"unix:/run/shredd/shredd.sock"});
}

TEST(ConfigTest, UnknownKeysNameTheKeyAndLine) {
  auto s = LoadError("[server]\ndata_dir = \"x\"\ndatadir = \"y\"\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(s).find("test.toml:3: server.datadir: unknown key"), std::string::npos) << s;
  s = LoadError("\n\n[sever]\n");
  EXPECT_NE(Message(s).find("test.toml:3: sever: unknown key"), std::string::npos) << s;
  s = LoadError("[tls]\ncert = \"a\"\nca = \"b\"\n");
  EXPECT_NE(Message(s).find("test.toml:3: tls.ca: unknown key"), std::string::npos) << s;
  s = LoadError("[[roles.local]]\nuid = 1\nroles = [\"writer\"]\ngroup = 2\n");
  EXPECT_NE(Message(s).find("test.toml:4: roles.local[0].group: unknown key"), std::string::npos) << s;
  s = LoadError("[[roles.remote]]\nuid = 1\n");
  EXPECT_NE(Message(s).find("test.toml:1: roles.remote: unknown key"), std::string::npos) << s;
  s = LoadError("top = 1\n");
  EXPECT_NE(Message(s).find("test.toml:1: top: unknown key"), std::string::npos) << s;
}

TEST(ConfigTest, WrongTypes) {
  auto s = LoadError("[server]\ninline_threshold = \"64k\"\n");
  EXPECT_NE(Message(s).find("test.toml:2: server.inline_threshold: expected an integer, got a string"),
            std::string::npos)
      << s;
  s = LoadError("[server]\nlisten = \"unix:/x\"\n");
  EXPECT_NE(Message(s).find("test.toml:2: server.listen: expected an array of strings, got a string"),
            std::string::npos)
      << s;
  s = LoadError("[server]\nlisten = [\"unix:/x\", 5]\n");
  EXPECT_NE(Message(s).find("server.listen[1]: expected a string, got an integer"), std::string::npos) << s;
  s = LoadError("server = 5\n");
  EXPECT_NE(Message(s).find("test.toml:1: server: expected a table, got an integer"), std::string::npos) << s;
  s = LoadError("[[roles.local]]\nuid = \"1000\"\nroles = [\"writer\"]\n");
  EXPECT_NE(Message(s).find("test.toml:2: roles.local[0].uid: expected an integer"), std::string::npos) << s;
  s = LoadError("[roles]\nlocal = 3\n");
  EXPECT_NE(Message(s).find("roles.local: expected an array of tables"), std::string::npos) << s;
  s = LoadError("[server]\nlog_format = true\n");
  EXPECT_NE(Message(s).find("server.log_format: expected a string, got a boolean"), std::string::npos) << s;
}

TEST(ConfigTest, BadValues) {
  struct Case {
    const char* toml;
    const char* want;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"[server]\nlisten = [\"http://x\"]\n", "test.toml:2: server.listen[0]: unknown listen address"},
           {"[server]\nlisten = []\n", "server.listen: needs at least one address"},
           {"[server]\nlisten = [\"unix:\"]\n", "needs a path"},
           {"[server]\nlisten = [\"tcp:127.0.0.1\"]\n", "is not HOST:PORT"},
           {"[server]\nlisten = [\"tcp:127.0.0.1:99999\"]\n", "port must be a number"},
           {"[server]\nlisten = [\"tcp::::1:80\"]\n", "IPv6"},
           {"[server]\nvault = \"s3:bucket\"\n", "server.vault: unknown vault scheme"},
           {"[server]\nvault = \"pkcs11:token=x;pin=1234\"\n", "needs module=PATH"},
           {"[server]\nvault = \"file:\"\n", "needs a directory"},
           {"[server]\ndata_dir = \"\"\n", "server.data_dir: must not be empty"},
           {"[server]\ninline_threshold = -1\n", "must be between 0 and 1048576"},
           {"[shred]\nepoch_items = 0\n", "shred.epoch_items: must be between 1 and 10000000"},
           {"[shred]\nmanifest_chunk_items = 20001\n", "shred.manifest_chunk_items: must be between 1 and 20000"},
           {"[shred]\ninline_manifest_items = -5\n", "shred.inline_manifest_items: must be between 0 and 200000"},
           {"[shred]\ninline_manifest_items = 200001\n", "shred.inline_manifest_items: must be between 0 and 200000"},
           {"[shred]\nchunk = 5\n", "test.toml:2: shred.chunk: unknown key"},
           {"[server]\ninline_threshold = 2000000\n", "must be between 0 and 1048576"},
           {"[server]\nmetrics_listen = \"0.0.0.0:9464\"\n", "serves loopback only"},
           {"[server]\nmetrics_listen = \"9464\"\n", "not HOST:PORT"},
           {"[server]\nlog_format = \"xml\"\n", "expected \"text\" or \"json\""},
           {"[server]\nlog_origin = \"has space\"\n", "server.log_origin: must be printable ASCII"},
           {"[[roles.local]]\nuid = -1\nroles = [\"writer\"]\n", "roles.local[0].uid: must be between 0"},
           {"[[roles.local]]\nuid = 4294967296\nroles = [\"writer\"]\n", "must be between 0 and 4294967294"},
           {"[[roles.local]]\nuid = 1\nroles = [\"root\"]\n", "unknown role \"root\""},
           {"[[roles.local]]\nuid = 1\nroles = []\n", "grants no role"},
           {"[[roles.local]]\nuid = 1\nroles = [\"admin\", \"admin\"]\n", "listed twice"},
           {"[[roles.local]]\nroles = [\"admin\"]\n", "roles.local[0]: needs uid"},
           {"[[roles.local]]\nuid = 1\n", "roles.local[0]: needs roles"},
           {"[[roles.local]]\nuid = 1\nroles = [\"admin\"]\n[[roles.local]]\nuid = 1\nroles = [\"writer\"]\n",
            "test.toml:4: roles.local[1]: uid 1 has a grant already"},
           {"[[roles.tls]]\nroles = [\"auditor\"]\n", "roles.tls[0]: needs subject or san"},
           {"[[roles.tls]]\nsubject = \"CN=x\"\nroles = [\"regulator\"]\n", "unknown role \"regulator\""},
           {"[server\n", "test.toml:1: "},
           {"[server]\ndata_dir = \"a\"\ndata_dir = \"b\"\n", "test.toml:3: "},
       }) {
    auto s = LoadError(c.toml);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.toml;
    EXPECT_NE(Message(s).find(c.want), std::string::npos) << c.toml << "\n  got: " << s;
  }
}

// [[roles.tls]] san: a type prefix, or the type inferred from the value's
// shape, so that a grant matches SANs of one type only (auth_test.cc).
TEST(ConfigTest, SanGrantTypes) {
  struct Case {
    const char* san;
    SanType type;
    const char* value;
  };
  for (const Case& c : std::vector<Case>{
           {"ingest.vendor.example", SanType::kDns, "ingest.vendor.example"},
           {"*.vendor.example", SanType::kDns, "*.vendor.example"},
           {"dns:ingest.vendor.example", SanType::kDns, "ingest.vendor.example"},
           {"DNS:ingest.vendor.example", SanType::kDns, "ingest.vendor.example"},
           {"ops@vendor.example", SanType::kEmail, "ops@vendor.example"},
           {"email:ops@vendor.example", SanType::kEmail, "ops@vendor.example"},
           {"spiffe://vendor.example/ops", SanType::kUri, "spiffe://vendor.example/ops"},
           {"https://user@vendor.example/", SanType::kUri, "https://user@vendor.example/"},
           {"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", SanType::kUri,
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"},
           {"uri:dns:example.com", SanType::kUri, "dns:example.com"},
           {"192.0.2.7", SanType::kIp, "192.0.2.7"},
           {"2001:db8::7", SanType::kIp, "2001:db8::7"},
           {"ip:::1", SanType::kIp, "::1"},
       }) {
    auto n = ParseSanGrant(c.san);
    ASSERT_TRUE(n.ok()) << c.san << ": " << n.status();
    EXPECT_EQ(n->type, c.type) << c.san;
    EXPECT_EQ(n->value, c.value) << c.san;
  }
  for (const auto& [san, want] : std::vector<std::pair<const char*, const char*>>{
           {"dns:", "dns: SAN is empty"},
           {"ip:vendor.example", "ip SAN \"vendor.example\" is not an IPv4 or IPv6 address"},
           {"dns:ops@vendor.example", "is not a DNS name"},
           {"dns:spiffe://x/y", "is not a DNS name"},
           {"Ops Team", "has spaces, control characters or non-ASCII"},
           {"email:ops.vendor.example", "has no '@'"},
           {"uri:vendor.example", "has no scheme"},
       }) {
    auto n = ParseSanGrant(san);
    ASSERT_FALSE(n.ok()) << san;
    EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(n.status().message().find(want), std::string_view::npos) << san << ": " << n.status();
  }
  // In a config file the error names the key and its line.
  auto s = LoadError("[[roles.tls]]\nsan = \"ip:nope\"\nroles = [\"admin\"]\n");
  EXPECT_NE(Message(s).find("test.toml:2: roles.tls[0].san: ip SAN \"nope\" is not an IPv4"), std::string::npos) << s;
  // And ValidateConfig checks a grant made by a flag.
  DaemonConfig c;
  c.tls_roles.push_back({"", "ip:nope", {"admin"}});
  EXPECT_EQ(ValidateConfig(c, false).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigTest, PinsAreNeverEchoed) {
  auto s = LoadError("[server]\nvault = \"hsm:pin=8675309\"\n");
  EXPECT_EQ(Message(s).find("8675309"), std::string::npos) << s;
  s = LoadError("[server]\nvault = \"pkcs11:token=x;pin=8675309\"\n");
  EXPECT_EQ(Message(s).find("8675309"), std::string::npos) << s;
}

TEST(ConfigTest, CrossKeyRules) {
  DaemonConfig c;
  c.listen = {"tcp:0.0.0.0:7443"};
  auto s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("only loopback addresses are allowed without TLS"), std::string::npos) << s;
  c.listen = {"tcp:localhost:7443", "tcp:[::1]:7443", "tcp:127.1.2.3:7443"};
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.tls_cert = "/x";
  s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("[tls] needs all of cert, key and client_ca"), std::string::npos) << s;
  c.tls_key = "/y";
  c.tls_client_ca = "/z";
  c.listen = {"tcp:0.0.0.0:7443"};
  EXPECT_TRUE(ValidateConfig(c, /*check_files=*/false).ok());
  c = DaemonConfig();
  c.inline_threshold = 2 << 20;  // from the flag, bypassing the parser
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = DaemonConfig();
  c.local_roles = {{5, {"writer"}}, {5, {"admin"}}};
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.local_roles = {{5, {"wizard"}}};
  EXPECT_FALSE(ValidateConfig(c).ok());
}

TEST(ConfigTest, LoopbackHosts) {
  for (const char* h : {"127.0.0.1", "127.255.0.9", "localhost", "::1", "[::1]"}) EXPECT_TRUE(IsLoopbackHost(h)) << h;
  for (const char* h : {"0.0.0.0", "128.0.0.1", "127.0.0", "127.0.0.1.5", "127.0.0.256", "127.a.0.1", "example.com",
                        "127.0.0.1.nip.io", ""}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

// A self-signed certificate and its key, written as PEM files.
void WriteSelfSigned(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(pkey, nullptr);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("test"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  ASSERT_GT(X509_sign(x, pkey, nullptr), 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(pkey);
}

TEST(ConfigTest, TlsFilesAreChecked) {
  testing::TempDir dir;
  const std::string cert = dir.path() + "/server.pem", key = dir.path() + "/server.key";
  const std::string cert2 = dir.path() + "/other.pem", key2 = dir.path() + "/other.key";
  WriteSelfSigned(cert, key);
  WriteSelfSigned(cert2, key2);
  DaemonConfig c;
  c.tls_cert = cert;
  c.tls_key = key;
  c.tls_client_ca = cert2;
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  c.tls_key = key2;  // the key of another certificate
  auto s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("does not match the first certificate"), std::string::npos) << s;
  c.tls_key = cert;  // no key in it
  s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("holds no unencrypted PEM private key"), std::string::npos) << s;
  c.tls_key = key;
  c.tls_client_ca = key;  // no certificate in it
  s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("tls.client_ca: " + key + " holds no PEM certificate"), std::string::npos) << s;
  c.tls_client_ca = dir.path() + "/missing.pem";
  s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("tls.client_ca: cannot read"), std::string::npos) << s;
}

TEST(ConfigTest, LoadConfigFileErrors) {
  testing::TempDir dir;
  auto c = LoadConfig(dir.path() + "/nope.toml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  const std::string path = dir.path() + "/bad.toml";
  std::ofstream(path) << "[server]\n\nlisten = [\"ftp:x\"]\n";
  c = LoadConfig(path);
  EXPECT_NE(Message(c.status()).find(path + ":3: server.listen[0]"), std::string::npos) << c.status();
}

TEST(ConfigTest, KeysNeedingRestart) {
  DaemonConfig a, b;
  b.local_roles = {{7, {"writer"}}};
  b.log_format = LogFormat::kJson;
  EXPECT_TRUE(KeysNeedingRestart(a, b).empty());
  b.listen = {"unix:/elsewhere"};
  b.tls_cert = "/c";
  EXPECT_EQ(KeysNeedingRestart(a, b), (std::vector<std::string>{"server.listen", "tls.cert"}));
  b.memory_budget_mib = 256;
  EXPECT_EQ(KeysNeedingRestart(a, b),
            (std::vector<std::string>{"server.listen", "storage.memory_budget_mib", "tls.cert"}));
}

TEST(ConfigTest, TransferMemory) {
  auto c = LoadConfigFromString("[storage]\ntransfer_memory_mib = 32\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transfer_memory_mib, 32u);
  EXPECT_EQ(DaemonConfig{}.transfer_memory_mib, 96u);
  auto s = LoadError("[storage]\ntransfer_memory_mib = 8\n");
  EXPECT_NE(Message(s).find("test.toml:2: storage.transfer_memory_mib: must be between 16 and 1048576, got 8"),
            std::string::npos)
      << s;
  DaemonConfig flags;
  flags.transfer_memory_mib = 0;  // from --transfer-memory-mib
  s = ValidateConfig(flags);
  EXPECT_NE(Message(s).find("storage.transfer_memory_mib must be between 16 and 1048576 (MiB), got 0"),
            std::string::npos)
      << s;
  EXPECT_EQ(DaemonConfig{}.transfer_idle_s, 300u);
  c = LoadConfigFromString("[storage]\ntransfer_idle_s = 0\n");  // 0: off
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transfer_idle_s, 0u);
  s = LoadError("[storage]\ntransfer_idle_s = 86401\n");
  EXPECT_NE(Message(s).find("test.toml:2: storage.transfer_idle_s: must be between 0 and 86400, got 86401"),
            std::string::npos)
      << s;
  flags = DaemonConfig{};
  flags.transfer_idle_s = 90000;  // from --transfer-idle-s
  s = ValidateConfig(flags);
  EXPECT_NE(Message(s).find("storage.transfer_idle_s must be at most 86400 (seconds; 0: off), got 90000"),
            std::string::npos)
      << s;
}

TEST(ConfigTest, GrpcCallLimits) {
  auto c = LoadConfigFromString("[server]\nstream_window_kib = 1024\nmax_calls = 64\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->stream_window_kib, 1024u);
  EXPECT_EQ(c->max_calls, 64u);
  EXPECT_EQ(DaemonConfig{}.stream_window_kib, 512u);
  EXPECT_EQ(DaemonConfig{}.max_calls, 128u);
  auto s = LoadError("[server]\nstream_window_kib = 32\n");
  EXPECT_NE(Message(s).find("test.toml:2: server.stream_window_kib: must be between 64 and 65536, got 32"),
            std::string::npos)
      << s;
  s = LoadError("[server]\nmax_calls = 4\n");
  EXPECT_NE(Message(s).find("test.toml:2: server.max_calls: must be between 8 and 65536, got 4"), std::string::npos)
      << s;
  DaemonConfig flags;
  flags.stream_window_kib = 1 << 20;  // from --stream-window-kib
  s = ValidateConfig(flags);
  EXPECT_NE(Message(s).find("server.stream_window_kib must be between 64 and 65536 (KiB), got 1048576"),
            std::string::npos)
      << s;
  flags = DaemonConfig{};
  flags.max_calls = 0;  // from --max-calls
  s = ValidateConfig(flags);
  EXPECT_NE(Message(s).find("server.max_calls must be between 8 and 65536, got 0"), std::string::npos) << s;
  s = LoadError("[server]\nkeepalive_s = 0\n");
  EXPECT_NE(Message(s).find("test.toml:2: server.keepalive_s: must be between 1 and 7200, got 0"), std::string::npos)
      << s;
  EXPECT_EQ(DaemonConfig{}.keepalive_s, 60u);
  DaemonConfig a, b;
  b.stream_window_kib = 64;
  b.max_calls = 8;
  b.keepalive_s = 5;
  EXPECT_EQ(KeysNeedingRestart(a, b),
            (std::vector<std::string>{"server.stream_window_kib", "server.max_calls", "server.keepalive_s"}));
}

TEST(ConfigTest, MemoryBudget) {
  for (uint64_t mib : {kMinMemoryBudgetMib, uint64_t{64}, uint64_t{4096}, kMaxMemoryBudgetMib}) {
    auto c = LoadConfigFromString(StrCat("[storage]\nmemory_budget_mib = ", mib, "\n"), "test.toml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->memory_budget_mib, mib);
    EXPECT_TRUE(ValidateConfig(*c).ok());
  }
  auto s = LoadError("[storage]\nmemory_budget_mib = 8\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(s).find("test.toml:2: storage.memory_budget_mib: must be between 16 and 1048576, got 8"),
            std::string::npos)
      << s;
  s = LoadError("[storage]\nmemory_budget_mib = -1\n");
  EXPECT_NE(Message(s).find("storage.memory_budget_mib: must be between 16 and 1048576, got -1"), std::string::npos)
      << s;
  s = LoadError("[storage]\nmemory_budget_mib = 2000000\n");
  EXPECT_NE(Message(s).find("got 2000000"), std::string::npos) << s;
  s = LoadError("[storage]\nmemory_budget_mib = \"128M\"\n");
  EXPECT_NE(Message(s).find("test.toml:2: storage.memory_budget_mib: expected an integer, got a string"),
            std::string::npos)
      << s;
  s = LoadError("[storage]\nmemory_budget = 128\n");
  EXPECT_NE(Message(s).find("test.toml:2: storage.memory_budget: unknown key (known: memory_budget_mib, min_free_mib, "
                            "transfer_memory_mib, transfer_idle_s)"),
            std::string::npos)
      << s;
  s = LoadError("storage = 128\n");
  EXPECT_NE(Message(s).find("storage: expected a table"), std::string::npos) << s;
  // The same bounds when the value comes from a flag (ValidateConfig).
  DaemonConfig c;
  c.memory_budget_mib = 15;
  s = ValidateConfig(c);
  EXPECT_NE(Message(s).find("storage.memory_budget_mib must be between 16 and 1048576 (MiB), got 15"),
            std::string::npos)
      << s;
}

TEST(ConfigTest, MinFreeMib) {
  auto d = LoadConfigFromString("", "test.toml");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->min_free_mib, 256u);
  for (uint64_t mib : {uint64_t{0}, uint64_t{4}, kMaxMinFreeMib}) {
    auto c = LoadConfigFromString(StrCat("[storage]\nmin_free_mib = ", mib, "\n"), "test.toml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->min_free_mib, mib);
    EXPECT_TRUE(ValidateConfig(*c).ok());
  }
  for (const char* bad : {"-1", "2097152", "\"big\""}) {
    auto s = LoadError(StrCat("[storage]\nmin_free_mib = ", bad, "\n"));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(Message(s).find("storage.min_free_mib"), std::string::npos) << s;
  }
  // Applied by a reload: not among the keys that need a restart.
  DaemonConfig a, b;
  b.min_free_mib = 1;
  EXPECT_TRUE(KeysNeedingRestart(a, b).empty());
}

}  // namespace
}  // namespace shredd

namespace shredd {
namespace {

// A fake environment for ApplyObjectStoreEnvironment.
std::function<const char*(const char*)> Env(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* name) -> const char* {
    auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

TEST(ConfigTest, ObjectStoreSection) {
  auto c = LoadConfigFromString(R"(
[object_store]
url = "s3://my-bucket/shredd/prod/"
endpoint = "http://127.0.0.1:7480"
region = "eu-west-3"
path_style = true
ca_file = "/etc/ssl/certs/ca-certificates.crt"
part_size_mib = 64
concurrency = 8
state = "async"
state_lag_ms = 500
log_tiles = true
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const ObjectStoreConfig& o = c->object_store;
  EXPECT_TRUE(o.log_tiles);
  EXPECT_EQ(o.bucket, "my-bucket");
  EXPECT_EQ(o.prefix, "shredd/prod");
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(o.region, "eu-west-3");
  EXPECT_TRUE(o.path_style);
  EXPECT_EQ(o.part_size_mib, 64u);
  EXPECT_EQ(o.concurrency, 8u);
  EXPECT_EQ(o.state, "async");
  EXPECT_EQ(o.state_lag_ms, 500u);
  // Defaults.
  auto d = LoadConfigFromString("[object_store]\nurl = \"s3://bkt\"\n");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->object_store.prefix, "");
  EXPECT_EQ(d->object_store.region, "us-east-1");
  EXPECT_FALSE(d->object_store.path_style);
  EXPECT_EQ(d->object_store.part_size_mib, 16u);
  EXPECT_EQ(d->object_store.concurrency, 4u);
  EXPECT_EQ(d->object_store.state, "sync");
  EXPECT_EQ(d->object_store.state_lag_ms, 2000u);
  EXPECT_FALSE(d->object_store.log_tiles);
  EXPECT_TRUE(LoadConfigFromString("").value().object_store.url.empty());
  // The log's tiles under PREFIX/tiles/ need an object store.
  auto tiles_only = LoadConfigFromString("[object_store]\nlog_tiles = true\n");
  ASSERT_TRUE(tiles_only.ok()) << tiles_only.status();
  absl::Status s = ValidateConfig(*tiles_only, false);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(Message(s).find("object_store.log_tiles needs an object store"), std::string::npos) << s;
}

TEST(ConfigTest, ObjectStoreBadValues) {
  struct Case {
    const char* toml;
    const char* want;
  } cases[] = {
      {"url = \"https://bucket/x\"", "expected s3://BUCKET[/PREFIX]"},
      {"url = \"s3://\"", "must be 3-63 lowercase"},
      {"url = \"s3://Upper\"", "must be 3-63 lowercase"},
      {"url = \"s3://ab\"", "must be 3-63 lowercase"},
      {"url = \"s3://-bucket\"", "must be 3-63 lowercase"},
      {"url = \"s3://bucket/a b\"", "the prefix may hold only"},
      {"url = \"s3://bucket//a\"", "empty path segment"},
      {"endpoint = \"127.0.0.1:7480\"", "expected http(s)://HOST[:PORT]"},
      {"endpoint = \"http://host/path\"", "without a path"},
      {"region = \"\"", "must not be empty"},
      {"path_style = \"yes\"", "expected a boolean"},
      {"part_size_mib = 4", "between 5 and 5120"},
      {"concurrency = 0", "between 1 and 64"},
      {"state = \"lazy\"", "must be \"sync\", \"async\" or \"off\""},
      {"state = 1", "expected a string"},
      {"state_lag_ms = 5", "between 10 and 600000"},
      {"log_tiles = \"yes\"", "expected a boolean"},
      {"secret_access_key = \"x\"", "credentials are not read from the config file"},
      {"aws_access_key_id = \"x\"", "credentials are not read from the config file"},
      {"bucket = \"x\"", "unknown key"},
  };
  for (const auto& k : cases) {
    absl::Status s = LoadError(StrCat("[object_store]\n", k.toml, "\n"));
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << k.toml << ": " << s;
    EXPECT_NE(Message(s).find(k.want), std::string::npos) << k.toml << ": " << s;
    EXPECT_NE(Message(s).find("test.toml:2: object_store."), std::string::npos) << s;
  }
}

TEST(ConfigTest, ObjectStoreEnvironmentOverridesTheFile) {
  auto c = LoadConfigFromString(
      "[object_store]\nurl = \"s3://bkt/p\"\nendpoint = \"http://file:1\"\nregion = \"file-region\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ApplyObjectStoreEnvironment(&*c, Env({{"AWS_REGION", "env-region"},
                                        {"AWS_ENDPOINT_URL", "http://env:2"},
                                        {"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
                                        {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"},
                                        {"AWS_SESSION_TOKEN", "token123"}}));
  const ObjectStoreConfig& o = c->object_store;
  EXPECT_EQ(o.region, "env-region");
  EXPECT_EQ(o.endpoint, "http://env:2");
  EXPECT_EQ(o.access_key_id, "AKIDEXAMPLE");
  ASSERT_NE(o.secret_access_key, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.secret_access_key->data()), o.secret_access_key->size()),
            "wJalrXUtnFEMI/K7MDENG");
  ASSERT_NE(o.session_token, nullptr);
  EXPECT_TRUE(ValidateConfig(*c, false).ok());
  // The service-specific endpoint wins over the generic one; AWS_DEFAULT_REGION is the fallback.
  DaemonConfig d = *c;
  ApplyObjectStoreEnvironment(&d, Env({{"AWS_ENDPOINT_URL", "http://generic:1"},
                                       {"AWS_ENDPOINT_URL_S3", "http://s3:1"},
                                       {"AWS_DEFAULT_REGION", "default-region"}}));
  EXPECT_EQ(d.object_store.endpoint, "http://s3:1");
  EXPECT_EQ(d.object_store.region, "default-region");
  // Without the environment the file's values stand.
  auto f = LoadConfigFromString("[object_store]\nurl = \"s3://bkt\"\nregion = \"file-region\"\n");
  ApplyObjectStoreEnvironment(&*f, Env({}));
  EXPECT_EQ(f->object_store.region, "file-region");
  EXPECT_EQ(f->object_store.secret_access_key, nullptr);
}

TEST(ConfigTest, ObjectStoreNeedsCredentialsAndNeverPrintsThem) {
  auto c = LoadConfigFromString("[object_store]\nurl = \"s3://bkt\"\n");
  ASSERT_TRUE(c.ok());
  ApplyObjectStoreEnvironment(&*c, Env({}));
  absl::Status s = ValidateConfig(*c, false);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(Message(s).find("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), std::string::npos) << s;
  // A bad value with a secret in the environment: the message holds no secret.
  ApplyObjectStoreEnvironment(
      &*c, Env({{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "TOPSECRET"}, {"AWS_ENDPOINT_URL", "bad"}}));
  s = ValidateConfig(*c, false);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(Message(s).find("TOPSECRET"), std::string::npos) << s;
  // Credentials are not read while no object store is configured.
  DaemonConfig none;
  ApplyObjectStoreEnvironment(&none, Env({{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "TOPSECRET"}}));
  EXPECT_EQ(none.object_store.secret_access_key, nullptr);
  EXPECT_TRUE(ValidateConfig(none, false).ok());
  // A change of the object store needs a restart.
  DaemonConfig other = *c;
  other.object_store.concurrency = 9;
  EXPECT_EQ(KeysNeedingRestart(*c, other), std::vector<std::string>{"object_store"});
}

TEST(ConfigTest, ObjectStoreCaFileIsChecked) {
  testing::TempDir dir;
  const std::string junk = dir / "junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  auto c = LoadConfigFromString(StrCat("[object_store]\nurl = \"s3://bkt\"\nca_file = \"", junk, "\"\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  ApplyObjectStoreEnvironment(&*c, Env({{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "S"}}));
  EXPECT_TRUE(ValidateConfig(*c, false).ok());
  absl::Status s = ValidateConfig(*c, true);
  EXPECT_NE(Message(s).find("object_store.ca_file"), std::string::npos) << s;
}

}  // namespace
}  // namespace shredd

namespace shredd {
namespace {

TEST(ConfigTest, LogTilesDir) {
  auto c = LoadConfigFromString("[server]\ndata_dir = \"/srv/shredd/data\"\n[log]\ntiles_dir = \"/srv/www/log\"\n",
                                "test.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_tiles_dir, "/srv/www/log");
  EXPECT_TRUE(ValidateConfig(*c, /*check_files=*/false).ok());
  auto unknown = LoadConfigFromString("[log]\ntile_dir = \"x\"\n", "test.toml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(std::string(unknown.status().message()).find("log.tile_dir: unknown key (known: tiles_dir)"),
            std::string::npos)
      << unknown.status();
  // The tiles are public: never inside the data dir, nor around it.
  c->log_tiles_dir = "/srv/shredd/data/tiles";
  EXPECT_FALSE(ValidateConfig(*c, false).ok());
  c->log_tiles_dir = "/srv/shredd";
  EXPECT_FALSE(ValidateConfig(*c, false).ok());
  c->log_tiles_dir = "/srv/shredd/data-tiles";
  EXPECT_TRUE(ValidateConfig(*c, false).ok());
  DaemonConfig b = *c;
  b.log_tiles_dir = "/elsewhere";
  EXPECT_EQ(KeysNeedingRestart(*c, b), (std::vector<std::string>{"log.tiles_dir"}));
}

}  // namespace
}  // namespace shredd
