#include "daemon/config/config.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

// toml++ is used header-only, in this file alone.
#include <toml++/toml.h>

#include "daemon/base/strings.h"
#include "daemon/config/san_grant.h"
#include "daemon/config/toml_guard.h"

namespace shredd {
namespace {

constexpr uint64_t kMaxInlineThreshold = 1024 * 1024;  // one content chunk: see docs/CONFIG.md

std::string_view TypeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

// Reads one document into a DaemonConfig, key by key, so every error can name
// the key and its line.
class ConfigParser {
 public:
  explicit ConfigParser(std::string_view source) : source_(source) {}

  absl::StatusOr<DaemonConfig> Parse(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, source_);
    } catch (const toml::parse_error& e) {
      return absl::InvalidArgumentError(StrCat(source_, ":", e.source().begin.line, ": ", e.description()));
    }
    DaemonConfig c;
    for (auto&& [key, node] : root) {
      const std::string k(key.str());
      absl::Status s;
      if (k == "server") {
        s = Server(key, node, &c);
      } else if (k == "storage") {
        s = Storage(key, node, &c);
      } else if (k == "tls") {
        s = Tls(key, node, &c);
      } else if (k == "roles") {
        s = Roles(key, node, &c);
      } else if (k == "shred") {
        s = Shred(key, node, &c);
      } else if (k == "object_store") {
        s = ObjectStore(key, node, &c.object_store);
      } else if (k == "log") {
        s = Log(key, node, &c);
      } else {
        s = Error(key.source(), k,
                  "unknown key (known sections: [server], [storage], [log], [shred], [object_store], [tls], "
                  "[[roles.local]], [[roles.tls]])");
      }
      if (!s.ok()) return s;
    }
    return c;
  }

 private:
  absl::Status Error(const toml::source_region& where, std::string_view key, std::string_view what) const {
    return absl::InvalidArgumentError(StrCat(source_, ":", where.begin.line, ": ", key, ": ", what));
  }
  absl::Status WrongType(const toml::node& node, std::string_view key, std::string_view want) const {
    return Error(node.source(), key, StrCat("expected ", want, ", got ", TypeName(node.type())));
  }
  absl::Status Wrap(const toml::node& node, std::string_view key, const absl::Status& s) const {
    if (s.ok()) return s;
    return Error(node.source(), key, StdView(s.message()));
  }

  absl::Status String(const toml::node& node, std::string_view key, std::string* out) const {
    const auto* v = node.as_string();
    if (v == nullptr) return WrongType(node, key, "a string");
    *out = v->get();
    if (out->find('\0') != std::string::npos) return Error(node.source(), key, "contains a NUL byte");
    return absl::OkStatus();
  }
  absl::Status Integer(const toml::node& node, std::string_view key, int64_t lo, int64_t hi, int64_t* out) const {
    const auto* v = node.as_integer();
    if (v == nullptr) return WrongType(node, key, "an integer");
    if (v->get() < lo || v->get() > hi) {
      return Error(node.source(), key, StrCat("must be between ", lo, " and ", hi, ", got ", v->get()));
    }
    *out = v->get();
    return absl::OkStatus();
  }
  absl::Status StringArray(const toml::node& node, std::string_view key, std::vector<std::string>* out) const {
    const auto* arr = node.as_array();
    if (arr == nullptr) return WrongType(node, key, "an array of strings");
    out->clear();
    for (size_t i = 0; i < arr->size(); ++i) {
      std::string v;
      if (auto s = String(*arr->get(i), StrCat(key, "[", i, "]"), &v); !s.ok()) return s;
      out->push_back(std::move(v));
    }
    return absl::OkStatus();
  }
  absl::Status Roles(const toml::node& node, std::string_view key, std::vector<std::string>* out) const {
    if (auto s = StringArray(node, key, out); !s.ok()) return s;
    if (out->empty())
      return Error(node.source(), key, "grants no role (give at least one of writer, deleter, auditor, admin)");
    std::set<std::string> seen;
    for (const auto& r : *out) {
      if (!IsRoleName(r)) {
        return Error(node.source(), key, StrCat("unknown role \"", r, "\" (roles: writer, deleter, auditor, admin)"));
      }
      if (!seen.insert(r).second) return Error(node.source(), key, StrCat("role \"", r, "\" is listed twice"));
    }
    return absl::OkStatus();
  }
  const toml::table* Table(const toml::key& key, const toml::node& node, std::string_view name, absl::Status* s) const {
    const auto* t = node.as_table();
    if (t == nullptr) *s = WrongType(node, name, "a table");
    return t;
  }

  absl::Status Shred(const toml::key& tkey, const toml::node& node, DaemonConfig* c) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "shred", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("shred.", k);
      int64_t n = 0;
      if (k == "epoch_items") {
        s = Integer(v, name, 1, 10000000, &n);
        if (s.ok()) c->shred_epoch_items = static_cast<uint64_t>(n);
      } else if (k == "manifest_chunk_items") {
        s = Integer(v, name, 1, kMaxManifestChunkItems, &n);
        if (s.ok()) c->shred_manifest_chunk_items = static_cast<uint64_t>(n);
      } else if (k == "inline_manifest_items") {
        s = Integer(v, name, 0, kMaxInlineManifestItems, &n);
        if (s.ok()) c->shred_inline_manifest_items = static_cast<uint64_t>(n);
      } else {
        s = Error(key.source(), name, "unknown key (known: epoch_items, manifest_chunk_items, inline_manifest_items)");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status ObjectStore(const toml::key& tkey, const toml::node& node, ObjectStoreConfig* o) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "object_store", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("object_store.", k);
      int64_t n = 0;
      if (k == "url") {
        s = String(v, name, &o->url);
        if (s.ok()) s = Wrap(v, name, ParseObjectStoreUrl(o->url, &o->bucket, &o->prefix));
      } else if (k == "endpoint") {
        s = String(v, name, &o->endpoint);
        if (s.ok()) s = Wrap(v, name, CheckObjectStoreEndpoint(o->endpoint));
      } else if (k == "region") {
        s = String(v, name, &o->region);
        if (s.ok() && o->region.empty()) s = Error(v.source(), name, "must not be empty");
      } else if (k == "path_style") {
        const auto* b = v.as_boolean();
        s = b == nullptr ? WrongType(v, name, "a boolean") : absl::OkStatus();
        if (s.ok()) o->path_style = b->get();
      } else if (k == "ca_file") {
        s = String(v, name, &o->ca_file);
      } else if (k == "part_size_mib") {
        s = Integer(v, name, 5, 5120, &n);
        if (s.ok()) o->part_size_mib = static_cast<uint64_t>(n);
      } else if (k == "concurrency") {
        s = Integer(v, name, 1, 64, &n);
        if (s.ok()) o->concurrency = static_cast<uint64_t>(n);
      } else if (k == "state") {
        s = String(v, name, &o->state);
        if (s.ok() && o->state != "sync" && o->state != "async" && o->state != "off") {
          s = Error(v.source(), name, StrCat("must be \"sync\", \"async\" or \"off\", got \"", o->state, "\""));
        }
      } else if (k == "state_lag_ms") {
        s = Integer(v, name, 10, 600000, &n);
        if (s.ok()) o->state_lag_ms = static_cast<uint64_t>(n);
      } else if (k == "log_tiles") {
        const auto* b = v.as_boolean();
        s = b == nullptr ? WrongType(v, name, "a boolean") : absl::OkStatus();
        if (s.ok()) o->log_tiles = b->get();
      } else if (k.starts_with("aws_") || k.find("secret") != std::string::npos || k.find("key") != std::string::npos) {
        s = Error(key.source(), name,
                  "credentials are not read from the config file: set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                  "(and AWS_SESSION_TOKEN) in the daemon's environment");
      } else {
        s = Error(key.source(), name,
                  "unknown key (known: url, endpoint, region, path_style, ca_file, part_size_mib, concurrency, "
                  "state, state_lag_ms, log_tiles)");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status CallLimit(const toml::node& v, std::string_view name, std::string_view k, DaemonConfig* c) const {
    struct Bounds {
      uint64_t lo, hi, *out;
    };
    const Bounds b = k == "stream_window_kib" ? Bounds{kMinStreamWindowKib, kMaxStreamWindowKib, &c->stream_window_kib}
                     : k == "max_calls"       ? Bounds{kMinMaxCalls, kMaxMaxCalls, &c->max_calls}
                                              : Bounds{kMinKeepaliveS, kMaxKeepaliveS, &c->keepalive_s};
    int64_t n = 0;
    absl::Status s = Integer(v, name, static_cast<int64_t>(b.lo), static_cast<int64_t>(b.hi), &n);
    if (s.ok()) *b.out = static_cast<uint64_t>(n);
    return s;
  }

  absl::Status Server(const toml::key& tkey, const toml::node& node, DaemonConfig* c) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "server", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("server.", k);
      if (k == "data_dir") {
        s = String(v, name, &c->data_dir);
        if (s.ok() && c->data_dir.empty()) s = Error(v.source(), name, "must not be empty");
      } else if (k == "vault") {
        s = String(v, name, &c->vault);
        if (s.ok()) s = Wrap(v, name, CheckVaultSpec(c->vault));
      } else if (k == "listen") {
        s = StringArray(v, name, &c->listen);
        if (s.ok() && c->listen.empty()) s = Error(v.source(), name, "needs at least one address");
        for (size_t i = 0; s.ok() && i < c->listen.size(); ++i) {
          s = Wrap(v, StrCat(name, "[", i, "]"), CheckListenSpec(c->listen[i]));
        }
      } else if (k == "log_origin") {
        s = String(v, name, &c->log_origin);
        if (s.ok() && !c->log_origin.empty()) {
          for (char ch : c->log_origin) {
            const auto u = static_cast<unsigned char>(ch);
            if (u <= 0x20 || u >= 0x7f || ch == '+') {
              s = Error(v.source(), name, "must be printable ASCII without spaces or '+' (it is a note key name)");
              break;
            }
          }
          if (s.ok() && c->log_origin.size() > 256) s = Error(v.source(), name, "is longer than 256 bytes");
        }
      } else if (k == "inline_threshold") {
        int64_t n = 0;
        s = Integer(v, name, 0, static_cast<int64_t>(kMaxInlineThreshold), &n);
        if (s.ok()) c->inline_threshold = static_cast<uint64_t>(n);
      } else if (k == "stream_window_kib" || k == "max_calls" || k == "keepalive_s") {
        s = CallLimit(v, name, k, c);
      } else if (k == "metrics_listen") {
        s = String(v, name, &c->metrics_listen);
        if (s.ok()) s = Wrap(v, name, CheckMetricsListen(c->metrics_listen));
      } else if (k == "log_format") {
        std::string f;
        s = String(v, name, &f);
        if (s.ok()) {
          auto parsed = ParseLogFormat(f);
          if (parsed.ok()) {
            c->log_format = *parsed;
          } else {
            s = Wrap(v, name, parsed.status());
          }
        }
      } else {
        s = Error(key.source(), name,
                  "unknown key (known: data_dir, vault, listen, log_origin, inline_threshold, metrics_listen, "
                  "log_format, stream_window_kib, max_calls, keepalive_s)");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Log(const toml::key& tkey, const toml::node& node, DaemonConfig* c) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "log", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("log.", k);
      if (k == "tiles_dir") {
        s = String(v, name, &c->log_tiles_dir);
      } else {
        s = Error(key.source(), name, "unknown key (known: tiles_dir)");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Storage(const toml::key& tkey, const toml::node& node, DaemonConfig* c) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "storage", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("storage.", k);
      if (k == "memory_budget_mib") {
        int64_t n = 0;
        s = Integer(v, name, static_cast<int64_t>(kMinMemoryBudgetMib), static_cast<int64_t>(kMaxMemoryBudgetMib), &n);
        if (s.ok()) c->memory_budget_mib = static_cast<uint64_t>(n);
      } else if (k == "min_free_mib") {
        int64_t n = 0;
        s = Integer(v, name, 0, static_cast<int64_t>(kMaxMinFreeMib), &n);
        if (s.ok()) c->min_free_mib = static_cast<uint64_t>(n);
      } else if (k == "transfer_idle_s") {
        int64_t n = 0;
        s = Integer(v, name, 0, static_cast<int64_t>(kMaxTransferIdleS), &n);
        if (s.ok()) c->transfer_idle_s = static_cast<uint64_t>(n);
      } else if (k == "transfer_memory_mib") {
        int64_t n = 0;
        s = Integer(v, name, static_cast<int64_t>(kMinTransferMemoryMib), static_cast<int64_t>(kMaxTransferMemoryMib),
                    &n);
        if (s.ok()) c->transfer_memory_mib = static_cast<uint64_t>(n);
      } else {
        s = Error(key.source(), name,
                  "unknown key (known: memory_budget_mib, min_free_mib, transfer_memory_mib, transfer_idle_s)");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Tls(const toml::key& tkey, const toml::node& node, DaemonConfig* c) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "tls", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("tls.", k);
      if (k == "cert") {
        s = String(v, name, &c->tls_cert);
      } else if (k == "key") {
        s = String(v, name, &c->tls_key);
      } else if (k == "client_ca") {
        s = String(v, name, &c->tls_client_ca);
      } else {
        s = Error(key.source(), name, "unknown key (known: cert, key, client_ca)");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Roles(const toml::key& tkey, const toml::node& node, DaemonConfig* c) const {
    absl::Status s;
    const toml::table* t = Table(tkey, node, "roles", &s);
    if (t == nullptr) return s;
    for (auto&& [key, v] : *t) {
      const std::string k(key.str());
      const std::string name = StrCat("roles.", k);
      if (k != "local" && k != "tls") {
        return Error(key.source(), name, "unknown key (known: [[roles.local]], [[roles.tls]])");
      }
      const auto* arr = v.as_array();
      if (arr == nullptr || !arr->is_array_of_tables()) {
        return WrongType(v, name, StrCat("an array of tables ([[", name, "]])"));
      }
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& entry = *arr->get(i)->as_table();
        const std::string ename = StrCat(name, "[", i, "]");
        if (k == "local") {
          s = LocalGrant(entry, ename, c);
        } else {
          s = TlsGrant(entry, ename, c);
        }
        if (!s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status LocalGrant(const toml::table& t, const std::string& name, DaemonConfig* c) const {
    LocalRoleGrant g;
    bool have_uid = false, have_roles = false;
    for (auto&& [key, v] : t) {
      const std::string k(key.str());
      absl::Status s;
      if (k == "uid") {
        int64_t uid = 0;
        s = Integer(v, StrCat(name, ".uid"), 0, 0xfffffffe, &uid);  // (uid_t)-1 is "no uid"
        g.uid = static_cast<uint32_t>(uid);
        have_uid = true;
      } else if (k == "roles") {
        s = Roles(v, StrCat(name, ".roles"), &g.roles);
        have_roles = true;
      } else {
        s = Error(key.source(), StrCat(name, ".", k), "unknown key (known: uid, roles)");
      }
      if (!s.ok()) return s;
    }
    if (!have_uid) return Error(t.source(), name, "needs uid = N");
    if (!have_roles) return Error(t.source(), name, "needs roles = [...]");
    for (const auto& other : c->local_roles) {
      if (other.uid == g.uid) return Error(t.source(), name, StrCat("uid ", g.uid, " has a grant already"));
    }
    c->local_roles.push_back(std::move(g));
    return absl::OkStatus();
  }

  absl::Status TlsGrant(const toml::table& t, const std::string& name, DaemonConfig* c) const {
    TlsRoleGrant g;
    bool have_roles = false;
    for (auto&& [key, v] : t) {
      const std::string k(key.str());
      absl::Status s;
      if (k == "subject") {
        s = String(v, StrCat(name, ".subject"), &g.subject);
      } else if (k == "san") {
        s = String(v, StrCat(name, ".san"), &g.san);
        if (auto san = ParseSanGrant(g.san); s.ok() && !san.ok() && !g.san.empty()) {
          s = Error(v.source(), StrCat(name, ".san"), StdView(san.status().message()));
        }
      } else if (k == "roles") {
        s = Roles(v, StrCat(name, ".roles"), &g.roles);
        have_roles = true;
      } else {
        s = Error(key.source(), StrCat(name, ".", k), "unknown key (known: subject, san, roles)");
      }
      if (!s.ok()) return s;
    }
    if (g.subject.empty() && g.san.empty()) return Error(t.source(), name, "needs subject or san (or both)");
    if (!have_roles) return Error(t.source(), name, "needs roles = [...]");
    c->tls_roles.push_back(std::move(g));
    return absl::OkStatus();
  }

  std::string source_;
};

absl::Status ReadablePem(std::string_view key, const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(StrCat(key, ": cannot read ", path, ": ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  *text = ss.str();
  return absl::OkStatus();
}

// Number of certificates in a PEM text (0 if none parse).
int CountCertificates(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int n = 0;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_free(x);
    ++n;
  }
  BIO_free(bio);
  ERR_clear_error();
  return n;
}

absl::Status CheckTlsFiles(const DaemonConfig& c) {
  std::string cert_pem, key_pem, ca_pem;
  if (auto s = ReadablePem("tls.cert", c.tls_cert, &cert_pem); !s.ok()) return s;
  if (auto s = ReadablePem("tls.key", c.tls_key, &key_pem); !s.ok()) return s;
  if (auto s = ReadablePem("tls.client_ca", c.tls_client_ca, &ca_pem); !s.ok()) return s;
  if (CountCertificates(cert_pem) == 0) {
    return absl::InvalidArgumentError(StrCat("tls.cert: ", c.tls_cert, " holds no PEM certificate"));
  }
  if (CountCertificates(ca_pem) == 0) {
    return absl::InvalidArgumentError(StrCat("tls.client_ca: ", c.tls_client_ca, " holds no PEM certificate"));
  }
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  absl::Status result;
  if (pkey == nullptr) {
    result = absl::InvalidArgumentError(StrCat("tls.key: ", c.tls_key, " holds no unencrypted PEM private key"));
  } else {
    BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
    X509* leaf = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    if (leaf == nullptr || X509_check_private_key(leaf, pkey) != 1) {
      result = absl::InvalidArgumentError(
          StrCat("tls.key: ", c.tls_key, " does not match the first certificate of ", c.tls_cert));
    }
    X509_free(leaf);
    EVP_PKEY_free(pkey);
  }
  ERR_clear_error();
  return result;
}

}  // namespace

bool IsRoleName(std::string_view name) {
  return std::find(std::begin(kRoleNames), std::end(kRoleNames), name) != std::end(kRoleNames);
}

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(StrCat("log format \"", name, "\": expected \"text\" or \"json\""));
}

std::string_view LogFormatName(LogFormat f) { return f == LogFormat::kJson ? "json" : "text"; }

namespace {

absl::Status CheckObjectStore(const ObjectStoreConfig& o, bool check_files) {
  if (o.url.empty() && o.log_tiles) {
    return absl::InvalidArgumentError(
        "object_store.log_tiles needs an object store: set object_store.url (or --object-store), or keep the tiles "
        "in a directory with log.tiles_dir");
  }
  if (o.url.empty()) return absl::OkStatus();
  std::string bucket, prefix;
  if (auto s = ParseObjectStoreUrl(o.url, &bucket, &prefix); !s.ok()) return s;
  if (bucket != o.bucket || prefix != o.prefix) {
    return absl::InvalidArgumentError("object_store: bucket and prefix do not match the url");
  }
  if (auto s = CheckObjectStoreEndpoint(o.endpoint); !s.ok()) return s;
  if (o.region.empty()) return absl::InvalidArgumentError("object_store.region must not be empty");
  if (o.part_size_mib < 5 || o.part_size_mib > 5120) {
    return absl::InvalidArgumentError(
        StrCat("object_store.part_size_mib must be between 5 and 5120 (S3's part limits), got ", o.part_size_mib));
  }
  if (o.concurrency < 1 || o.concurrency > 64) {
    return absl::InvalidArgumentError(StrCat("object_store.concurrency must be between 1 and 64, got ", o.concurrency));
  }
  if (o.state != "sync" && o.state != "async" && o.state != "off") {
    return absl::InvalidArgumentError(
        StrCat("object_store.state must be \"sync\", \"async\" or \"off\", got \"", o.state, "\""));
  }
  if (o.state_lag_ms < 10 || o.state_lag_ms > 600000) {
    return absl::InvalidArgumentError(
        StrCat("object_store.state_lag_ms must be between 10 and 600000, got ", o.state_lag_ms));
  }
  if (o.access_key_id.empty() || o.secret_access_key == nullptr) {
    return absl::InvalidArgumentError(StrCat("object store ", o.url,
                                             ": no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                             "in the daemon's environment)"));
  }
  if (check_files && !o.ca_file.empty()) {
    std::string pem;
    if (auto s = ReadablePem("object_store.ca_file", o.ca_file, &pem); !s.ok()) return s;
    if (CountCertificates(pem) == 0) {
      return absl::InvalidArgumentError(StrCat("object_store.ca_file: ", o.ca_file, " holds no PEM certificate"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DaemonConfig> LoadConfigFromString(std::string_view toml, std::string_view source) {
  // toml++ 3.3.0 has undefined behaviour on some non-ASCII input (see toml_guard.h).
  if (absl::Status s = CheckTomlForParserHazards(toml, source); !s.ok()) return s;
  return ConfigParser(source).Parse(toml);
}

absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string msg = StrCat("cannot read config file ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(StrCat("cannot read config file ", path));
  return LoadConfigFromString(ss.str(), path);
}

absl::Status ValidateConfig(const DaemonConfig& c, bool check_files) {
  if (c.data_dir.empty()) return absl::InvalidArgumentError("server.data_dir must not be empty");
  if (auto s = CheckVaultSpec(c.vault); !s.ok()) return s;
  if (c.listen.empty()) return absl::InvalidArgumentError("server.listen needs at least one address");
  for (const auto& l : c.listen) {
    if (auto s = CheckListenSpec(l); !s.ok()) return s;
  }
  if (c.inline_threshold > kMaxInlineThreshold) {
    return absl::InvalidArgumentError(
        StrCat("server.inline_threshold must be at most ", kMaxInlineThreshold, " (one content chunk)"));
  }
  if (auto s = CheckMetricsListen(c.metrics_listen); !s.ok()) return s;
  if (auto s = CheckLogTilesDir(c.log_tiles_dir, c.data_dir, check_files); !s.ok()) return s;
  if (auto s = CheckMemoryBudgetMib(c.memory_budget_mib); !s.ok()) return s;
  if (c.min_free_mib > kMaxMinFreeMib) {
    return absl::InvalidArgumentError(StrCat("storage.min_free_mib must be at most ", kMaxMinFreeMib, " (MiB)"));
  }
  if (c.transfer_memory_mib < kMinTransferMemoryMib || c.transfer_memory_mib > kMaxTransferMemoryMib) {
    return absl::InvalidArgumentError(StrCat("storage.transfer_memory_mib must be between ", kMinTransferMemoryMib,
                                             " and ", kMaxTransferMemoryMib, " (MiB), got ", c.transfer_memory_mib));
  }
  if (c.stream_window_kib < kMinStreamWindowKib || c.stream_window_kib > kMaxStreamWindowKib) {
    return absl::InvalidArgumentError(StrCat("server.stream_window_kib must be between ", kMinStreamWindowKib, " and ",
                                             kMaxStreamWindowKib, " (KiB), got ", c.stream_window_kib));
  }
  if (c.max_calls < kMinMaxCalls || c.max_calls > kMaxMaxCalls) {
    return absl::InvalidArgumentError(
        StrCat("server.max_calls must be between ", kMinMaxCalls, " and ", kMaxMaxCalls, ", got ", c.max_calls));
  }
  if (c.keepalive_s < kMinKeepaliveS || c.keepalive_s > kMaxKeepaliveS) {
    return absl::InvalidArgumentError(StrCat("server.keepalive_s must be between ", kMinKeepaliveS, " and ",
                                             kMaxKeepaliveS, " (seconds), got ", c.keepalive_s));
  }
  if (c.transfer_idle_s > kMaxTransferIdleS) {
    return absl::InvalidArgumentError(StrCat("storage.transfer_idle_s must be at most ", kMaxTransferIdleS,
                                             " (seconds; 0: off), got ", c.transfer_idle_s));
  }
  const int tls_set = !c.tls_cert.empty() + !c.tls_key.empty() + !c.tls_client_ca.empty();
  if (tls_set != 0 && tls_set != 3) {
    return absl::InvalidArgumentError(
        "[tls] needs all of cert, key and client_ca (TCP is mutual TLS only), or none of them");
  }
  for (const auto& l : c.listen) {
    if (!l.starts_with("tcp:")) continue;
    std::string host;
    uint16_t port = 0;
    (void)SplitHostPort(std::string_view(l).substr(4), &host, &port);
    if (tls_set == 0 && !IsLoopbackHost(host)) {
      return absl::InvalidArgumentError(StrCat("refusing plaintext TCP on ", l.substr(4),
                                               ": only loopback addresses are allowed without TLS "
                                               "(set [tls] cert, key and client_ca)"));
    }
  }
  std::set<uint32_t> uids;
  for (const auto& g : c.local_roles) {
    if (!uids.insert(g.uid).second)
      return absl::InvalidArgumentError(StrCat("roles.local: uid ", g.uid, " has two grants"));
    if (g.roles.empty()) return absl::InvalidArgumentError(StrCat("roles.local: uid ", g.uid, " grants no role"));
    for (const auto& r : g.roles) {
      if (!IsRoleName(r)) return absl::InvalidArgumentError(StrCat("roles.local: unknown role \"", r, "\""));
    }
  }
  for (const auto& g : c.tls_roles) {
    if (g.subject.empty() && g.san.empty())
      return absl::InvalidArgumentError("roles.tls: a grant needs subject or san");
    if (g.roles.empty()) return absl::InvalidArgumentError("roles.tls: a grant names no role");
    if (auto san = ParseSanGrant(g.san); !g.san.empty() && !san.ok()) {
      return absl::InvalidArgumentError(StrCat("roles.tls: san: ", san.status().message()));
    }
    for (const auto& r : g.roles) {
      if (!IsRoleName(r)) return absl::InvalidArgumentError(StrCat("roles.tls: unknown role \"", r, "\""));
    }
  }
  if (check_files && tls_set == 3) {
    if (auto s = CheckTlsFiles(c); !s.ok()) return s;
  }
  return CheckObjectStore(c.object_store, check_files);
}

std::vector<std::string> KeysNeedingRestart(const DaemonConfig& a, const DaemonConfig& b) {
  std::vector<std::string> out;
  if (a.data_dir != b.data_dir) out.push_back("server.data_dir");
  if (a.vault != b.vault) out.push_back("server.vault");
  if (a.listen != b.listen) out.push_back("server.listen");
  if (a.log_origin != b.log_origin) out.push_back("server.log_origin");
  if (a.log_tiles_dir != b.log_tiles_dir) out.push_back("log.tiles_dir");
  if (a.inline_threshold != b.inline_threshold) out.push_back("server.inline_threshold");
  if (a.metrics_listen != b.metrics_listen) out.push_back("server.metrics_listen");
  if (a.shred_epoch_items != b.shred_epoch_items) out.push_back("shred.epoch_items");
  if (a.shred_manifest_chunk_items != b.shred_manifest_chunk_items) out.push_back("shred.manifest_chunk_items");
  if (a.shred_inline_manifest_items != b.shred_inline_manifest_items) out.push_back("shred.inline_manifest_items");
  if (a.memory_budget_mib != b.memory_budget_mib) out.push_back("storage.memory_budget_mib");
  if (a.transfer_memory_mib != b.transfer_memory_mib) out.push_back("storage.transfer_memory_mib");
  if (a.stream_window_kib != b.stream_window_kib) out.push_back("server.stream_window_kib");
  if (a.max_calls != b.max_calls) out.push_back("server.max_calls");
  if (a.keepalive_s != b.keepalive_s) out.push_back("server.keepalive_s");
  if (a.transfer_idle_s != b.transfer_idle_s) out.push_back("storage.transfer_idle_s");
  // storage.min_free_mib is applied by a reload (server.cc ReloadConfig).
  if (a.tls_cert != b.tls_cert) out.push_back("tls.cert");
  if (a.tls_key != b.tls_key) out.push_back("tls.key");
  if (a.tls_client_ca != b.tls_client_ca) out.push_back("tls.client_ca");
  const ObjectStoreConfig &oa = a.object_store, &ob = b.object_store;
  if (oa.url != ob.url || oa.endpoint != ob.endpoint || oa.region != ob.region || oa.path_style != ob.path_style ||
      oa.ca_file != ob.ca_file || oa.part_size_mib != ob.part_size_mib || oa.concurrency != ob.concurrency ||
      oa.state != ob.state || oa.state_lag_ms != ob.state_lag_ms || oa.log_tiles != ob.log_tiles) {
    out.push_back("object_store");
  }
  return out;
}

}  // namespace shredd
