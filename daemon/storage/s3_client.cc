#include "daemon/storage/s3_client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/s3_xml.h"

namespace shredd {

struct S3Client::Request {
  const char* op = "";                                       // the S3 call, for messages: "PutObject"
  const char* method = "GET";                                // GET PUT POST DELETE HEAD
  std::string key{};                                         // object key (unencoded); empty: the bucket
  bool service = false;                                      // ListBuckets-style: no bucket in the URL
  std::vector<std::pair<std::string, std::string>> query{};  // unencoded
  std::string_view body{};
  std::vector<std::string> headers{};  // "Name: value"
  std::string* sink = nullptr;         // a GET's data is appended here
  // SHA-256 of `body` in lowercase hex if the caller has it already (one
  // hashing pass less); the store refuses a wrong one (400
  // XAmzContentSHA256Mismatch), so a mistake cannot go unnoticed.
  std::string_view payload_sha256{};
};

struct S3Client::Response {
  long status = 0;
  std::string body;
  std::string etag, version_id, content_range;
  uint64_t content_length = 0;
  std::string* sink = nullptr;  // GET bodies go here when set
  size_t sink_base = 0;
};

namespace {

constexpr uint64_t kMaxErrorBody = 64 * 1024;  // an error body beyond this is cut

std::once_flag curl_init_once;

std::string Sha256Hex(std::string_view body) { return HexEncode(Sha256Hasher::Of(body)); }

std::string Md5Base64(std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(body.data(), body.size(), md, &n, EVP_md5(), nullptr);
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), md, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return std::string(s);
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<S3Client::Response*>(user);
  std::string_view line(data, size * n);
  size_t colon = line.find(':');
  if (line.starts_with("HTTP/")) {  // a status line: the last one (after any 100) is the reply's
    size_t sp = line.find(' ');
    if (sp != std::string_view::npos) {
      std::string_view code = line.substr(sp + 1, 3);
      std::from_chars(code.data(), code.data() + code.size(), r->status);
    }
    return size * n;
  }
  if (colon == std::string_view::npos) return size * n;
  std::string_view name = line.substr(0, colon);
  std::string value = Trim(line.substr(colon + 1));
  if (IEquals(name, "etag")) {
    r->etag = value;
  } else if (IEquals(name, "x-amz-version-id")) {
    r->version_id = value;
  } else if (IEquals(name, "content-range")) {
    r->content_range = value;
  } else if (IEquals(name, "content-length")) {
    std::from_chars(value.data(), value.data() + value.size(), r->content_length);
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<S3Client::Response*>(user);
  // Error bodies always go to r->body; a GET's data to the caller's string.
  if (r->sink != nullptr && r->status >= 200 && r->status < 300) {
    r->sink->append(data, size * n);
  } else if (r->body.size() < kMaxErrorBody || r->status < 300) {
    r->body.append(data, size * n);
  }
  return size * n;
}

struct UploadSource {
  std::string_view body;
  size_t pos = 0;
};

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* src = static_cast<UploadSource*>(user);
  size_t take = std::min(size * n, src->body.size() - src->pos);
  std::memcpy(buffer, src->body.data() + src->pos, take);
  src->pos += take;
  return take;
}

bool RetryableCurl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool RetryableReply(long status, std::string_view code) {
  if (status == 429 || status >= 500) return true;
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" || code == "ServiceUnavailable" ||
         code == "Throttling" || code == "RequestTimeTooSkewed";
}

// The <Error><Code>/<Message> of a reply body, if it has one.
void ErrorCode(std::string_view body, std::string* code, std::string* message) {
  if (body.find("<Error") == std::string_view::npos) return;
  auto xml = ParseXml(body);
  if (!xml.ok() || (*xml)->name != "Error") return;
  *code = (*xml)->ChildText("Code");
  *message = (*xml)->ChildText("Message");
}

std::string Query(std::vector<std::pair<std::string, std::string>> q) {
  for (auto& [k, v] : q) {
    k = S3UriEncode(k, false);
    v = S3UriEncode(v, false);
  }
  std::sort(q.begin(), q.end());
  std::string out;
  for (const auto& [k, v] : q) StrAppend(&out, out.empty() ? "?" : "&", k, "=", v);
  return out;
}

}  // namespace

std::string S3UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Idle curl handles, so that connections are kept alive between calls: one
// handle per concurrent call, returned after it.
class S3Client::HandlePool {
 public:
  ~HandlePool() {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }
  CURL* Take() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }
  void Give(CURL* h) {
    curl_easy_reset(h);  // keeps the connection cache
    std::lock_guard lock(mu_);
    idle_.push_back(h);
  }
  std::atomic<uint64_t> requests{0};

 private:
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

S3Client::S3Client(S3Config config) : config_(std::move(config)), pool_(std::make_unique<HandlePool>()) {}
S3Client::~S3Client() = default;

uint64_t S3Client::requests() const { return pool_->requests.load(); }

absl::StatusOr<std::unique_ptr<S3Client>> S3Client::Create(S3Config config) {
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (config.bucket.empty()) return absl::InvalidArgumentError("object store: no bucket given");
  if (config.region.empty()) return absl::InvalidArgumentError("object store: no region given");
  if (config.credentials == nullptr || config.credentials->access_key_id.empty() ||
      config.credentials->secret_access_key.empty()) {
    return absl::InvalidArgumentError("object store: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  }
  if (config.max_attempts < 1) config.max_attempts = 1;
  std::string endpoint = config.endpoint;
  if (endpoint.empty()) endpoint = StrCat("https://s3.", config.region, ".amazonaws.com");
  while (endpoint.ends_with("/")) endpoint.pop_back();
  size_t scheme = endpoint.find("://");
  if (!(endpoint.starts_with("http://") || endpoint.starts_with("https://")) ||
      endpoint.find('/', scheme + 3) != std::string::npos || scheme + 3 == endpoint.size()) {
    return absl::InvalidArgumentError(
        StrCat("object store endpoint \"", endpoint, "\": expected http(s)://HOST[:PORT] without a path"));
  }
  config.endpoint = endpoint;
  std::unique_ptr<S3Client> c(new S3Client(std::move(config)));
  if (c->config_.path_style) {
    c->base_url_ = endpoint;
    c->bucket_path_ = StrCat("/", S3UriEncode(c->config_.bucket, false));
  } else {
    c->base_url_ = StrCat(endpoint.substr(0, scheme + 3), c->config_.bucket, ".", endpoint.substr(scheme + 3));
  }
  return c;
}

std::string S3Client::KeyFor(std::string_view name) const {
  return config_.prefix.empty() ? std::string(name) : StrCat(config_.prefix, "/", name);
}

namespace {

// Sets the options of one attempt. `headers` and `password` must outlive it.
void SetupHandle(CURL* h, const S3Config& cfg, const std::string& url, const S3Client::Request& req,
                 curl_slist* headers, const char* password, S3Client::Response* resp, UploadSource* src, char* errbuf) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(cfg.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(cfg.stall_timeout.count() / 1000)));
  if (cfg.request_timeout.count() > 0) {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(cfg.request_timeout.count()));
  }
  if (!cfg.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, cfg.ca_file.c_str());
  const std::string sigv4 = StrCat("aws:amz:", cfg.region, ":s3");
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());  // copied by curl
  curl_easy_setopt(h, CURLOPT_USERNAME, cfg.credentials->access_key_id.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, password);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
  const std::string_view method = req.method;
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method == "PUT" || method == "POST") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(h, CURLOPT_READDATA, src);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(src->body.size()));
    if (method == "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method);
  }
}

// The request's headers; the session token is wiped from our copy at once
// (curl keeps its own).
curl_slist* BuildHeaders(const S3Config& cfg, const S3Client::Request& req, const std::string& payload_hash) {
  curl_slist* list = nullptr;
  list = curl_slist_append(list, StrCat("x-amz-content-sha256: ", payload_hash).c_str());
  if (std::string_view(req.method) == "PUT" || std::string_view(req.method) == "POST") {
    list = curl_slist_append(list, "Content-Type: application/octet-stream");
  }
  for (const auto& hdr : req.headers) list = curl_slist_append(list, hdr.c_str());
  const SecretBytes& token = cfg.credentials->session_token;
  if (!token.empty()) {
    std::string line = "x-amz-security-token: ";
    line.append(reinterpret_cast<const char*>(token.data()), token.size());
    list = curl_slist_append(list, line.c_str());
    sodium_memzero(line.data(), line.size());
  }
  return list;
}

SecretBytes PasswordCString(const S3Credentials& c) {
  SecretBytes pw(c.secret_access_key.size() + 1);
  std::memcpy(pw.data(), c.secret_access_key.data(), c.secret_access_key.size());
  return pw;  // NUL-terminated: SecretBytes is zeroed on allocation
}

absl::Status MapError(const S3Config& cfg, const std::string& what, long status, const std::string& code,
                      const std::string& message) {
  const std::string detail =
      StrCat(what, ": HTTP ", status, code.empty() ? "" : " ", code, message.empty() ? "" : ": ", message);
  if (code == "NoSuchBucket") {
    return absl::FailedPreconditionError(
        StrCat("object store ", cfg.endpoint, " has no bucket \"", cfg.bucket, "\" (", detail, ")"));
  }
  if (code == "QuotaExceeded") {
    // A store's quota (RGW user or bucket quota; 403 there), which the
    // local free-space guard cannot see: the same answer as a full disk.
    return absl::ResourceExhaustedError(StrCat("object store ", cfg.endpoint, " is over its quota: ", detail));
  }
  if (status == 403) {
    const bool keys = code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied";
    return absl::PermissionDeniedError(StrCat("object store ", cfg.endpoint, " refused ", detail,
                                              keys ? " (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the "
                                                     "bucket policy)"
                                                   : ""));
  }
  if (status == 404) return absl::NotFoundError(StrCat("object store ", cfg.endpoint, ": ", detail));
  if (status == 301 || status == 307 || code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" ||
      code == "IllegalLocationConstraintException") {
    return absl::FailedPreconditionError(
        StrCat("object store ", cfg.endpoint, ": ", detail, " (is the region \"", cfg.region, "\" right?)"));
  }
  if (status == 409 || status == 412) {
    return absl::FailedPreconditionError(StrCat("object store ", cfg.endpoint, ": ", detail));
  }
  if (status == 416) return absl::OutOfRangeError(StrCat("object store ", cfg.endpoint, ": ", detail));
  return absl::InvalidArgumentError(StrCat("object store ", cfg.endpoint, ": ", detail));
}

void Backoff(const S3Config& cfg, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto cap = cfg.initial_backoff * (int64_t{1} << std::min(attempt - 1, 20));
  cap = std::min<std::chrono::milliseconds>(cap, cfg.max_backoff);
  const int64_t half = std::max<int64_t>(cap.count() / 2, 1);
  std::uniform_int_distribution<int64_t> jitter(0, half);
  std::this_thread::sleep_for(std::chrono::milliseconds(half + jitter(rng)));
}

}  // namespace

absl::StatusOr<S3Client::Response> S3Client::Send(const Request& req) {
  const std::string url =
      StrCat(base_url_, req.service ? "" : bucket_path_, "/", S3UriEncode(req.key, true), Query(req.query));
  const std::string payload_hash = req.payload_sha256.empty() ? Sha256Hex(req.body) : std::string(req.payload_sha256);
  const SecretBytes password = PasswordCString(*config_.credentials);
  curl_slist* headers = BuildHeaders(config_, req, payload_hash);
  const std::string what = StrCat(req.op, " s3://", config_.bucket, "/", req.key);
  const size_t sink_base = req.sink != nullptr ? req.sink->size() : 0;
  std::string last;
  int attempts = 0;
  for (int attempt = 1; attempt <= config_.max_attempts; ++attempt) {
    if (attempt > 1) Backoff(config_, attempt - 1);
    attempts = attempt;
    if (req.sink != nullptr) req.sink->resize(sink_base);
    Response resp;
    resp.sink = req.sink;
    UploadSource src{req.body, 0};
    char errbuf[CURL_ERROR_SIZE] = {0};
    CURL* h = pool_->Take();
    if (h == nullptr) {
      curl_slist_free_all(headers);
      return absl::ResourceExhaustedError("cannot create a curl handle");
    }
    SetupHandle(h, config_, url, req, headers, reinterpret_cast<const char*>(password.data()), &resp, &src, errbuf);
    ++pool_->requests;
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    pool_->Give(h);
    if (rc != CURLE_OK) {
      last = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
      if (RetryableCurl(rc)) continue;
      break;
    }
    std::string code, message;
    if (resp.status >= 300 || req.op == std::string_view("CompleteMultipartUpload")) {
      ErrorCode(resp.body, &code, &message);
    }
    if (resp.status < 300 && code.empty()) {
      curl_slist_free_all(headers);
      return resp;
    }
    if (resp.status < 300) resp.status = 500;  // an <Error> in a 200 reply (CompleteMultipartUpload)
    last = StrCat("HTTP ", resp.status, code.empty() ? "" : " ", code, message.empty() ? "" : ": ", message);
    if (RetryableReply(resp.status, code)) continue;
    curl_slist_free_all(headers);
    if (req.sink != nullptr) req.sink->resize(sink_base);
    return MapError(config_, what, resp.status, code, message);
  }
  curl_slist_free_all(headers);
  if (req.sink != nullptr) req.sink->resize(sink_base);
  return absl::UnavailableError(StrCat("object store ", config_.endpoint, " unavailable: ", what, " failed after ",
                                       attempts, attempts == 1 ? " attempt: " : " attempts: ", last));
}

absl::Status ObjectStoreUnavailable(const S3Config& config, const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
      return s;
    default:
      break;
  }
  const std::string_view message(s.message().data(), s.message().size());
  if (message.starts_with("object store ")) return absl::UnavailableError(s.message());
  return absl::UnavailableError(StrCat("object store ", config.endpoint, " s3://", config.bucket, ": ", message));
}

// ---- bucket calls ----------------------------------------------------------

absl::Status S3Client::CreateBucket() {
  Request r{.op = "CreateBucket", .method = "PUT"};
  std::string body;
  if (config_.region != "us-east-1") {
    body = StrCat("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>",
                  XmlEscape(config_.region), "</LocationConstraint></CreateBucketConfiguration>");
  }
  r.body = body;
  auto resp = Send(r);
  if (!resp.ok() && absl::IsFailedPrecondition(resp.status()) &&
      resp.status().message().find("BucketAlreadyOwnedByYou") != absl::string_view::npos) {
    return absl::OkStatus();
  }
  return resp.status();
}

absl::StatusOr<bool> S3Client::GetBucketVersioning() {
  auto resp = Send({.op = "GetBucketVersioning", .query = {{"versioning", ""}}});
  if (!resp.ok()) return resp.status();
  auto xml = ParseXml(resp->body);
  if (!xml.ok()) return absl::InternalError(StrCat("GetBucketVersioning: ", xml.status().message()));
  return (*xml)->ChildText("Status") == "Enabled";
}

absl::Status S3Client::PutBucketVersioning(bool enabled) {
  const std::string body = StrCat("<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>",
                                  enabled ? "Enabled" : "Suspended", "</Status></VersioningConfiguration>");
  return Send({.op = "PutBucketVersioning", .method = "PUT", .query = {{"versioning", ""}}, .body = body}).status();
}

// ---- object calls ----------------------------------------------------------

absl::StatusOr<std::string> S3Client::PutObject(std::string_view key, std::string_view body,
                                                std::string_view payload_sha256) {
  auto resp = Send(
      {.op = "PutObject", .method = "PUT", .key = std::string(key), .body = body, .payload_sha256 = payload_sha256});
  if (!resp.ok()) return resp.status();
  return resp->version_id;
}

absl::Status S3Client::GetObject(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                                 std::string_view if_match) {
  Request r{.op = "GetObject", .key = std::string(key), .sink = out};
  if (offset > 0 || length > 0) {
    r.headers.push_back(length > 0 ? StrCat("Range: bytes=", offset, "-", offset + length - 1)
                                   : StrCat("Range: bytes=", offset, "-"));
  }
  if (!if_match.empty()) r.headers.push_back(StrCat("If-Match: ", if_match));
  return Send(r).status();
}

absl::StatusOr<S3ObjectInfo> S3Client::HeadObject(std::string_view key) {
  auto resp = Send({.op = "HeadObject", .method = "HEAD", .key = std::string(key)});
  if (!resp.ok()) return resp.status();
  return S3ObjectInfo{.size = resp->content_length, .etag = resp->etag, .version_id = resp->version_id};
}

absl::Status S3Client::DeleteObject(std::string_view key, std::string_view version_id) {
  Request r{.op = "DeleteObject", .method = "DELETE", .key = std::string(key)};
  if (!version_id.empty()) r.query.emplace_back("versionId", std::string(version_id));
  return Send(r).status();
}

absl::StatusOr<S3VersionPage> S3Client::ListObjectVersions(std::string_view prefix, std::string_view key_marker,
                                                           std::string_view version_id_marker) {
  Request r{.op = "ListObjectVersions", .query = {{"versions", ""}, {"prefix", std::string(prefix)}}};
  if (!key_marker.empty()) r.query.emplace_back("key-marker", std::string(key_marker));
  if (!version_id_marker.empty()) r.query.emplace_back("version-id-marker", std::string(version_id_marker));
  auto resp = Send(r);
  if (!resp.ok()) return resp.status();
  auto xml = ParseXml(resp->body);
  if (!xml.ok()) return absl::InternalError(StrCat("ListObjectVersions: ", xml.status().message()));
  S3VersionPage page;
  for (const auto& e : (*xml)->children) {
    if (e->name != "Version" && e->name != "DeleteMarker") continue;
    S3ObjectVersion v{.key = e->ChildText("Key"), .version_id = e->ChildText("VersionId")};
    v.delete_marker = e->name == "DeleteMarker";
    const std::string size = e->ChildText("Size");
    std::from_chars(size.data(), size.data() + size.size(), v.size);
    page.versions.push_back(std::move(v));
  }
  page.truncated = (*xml)->ChildText("IsTruncated") == "true";
  page.next_key_marker = (*xml)->ChildText("NextKeyMarker");
  page.next_version_id_marker = (*xml)->ChildText("NextVersionIdMarker");
  if (page.truncated && page.next_key_marker.empty()) {
    return absl::InternalError("ListObjectVersions: a truncated page without NextKeyMarker");
  }
  return page;
}

absl::Status S3Client::ForEachVersion(std::string_view prefix,
                                      const std::function<absl::Status(const S3ObjectVersion&)>& each) {
  std::string key_marker, version_marker;
  for (;;) {
    auto page = ListObjectVersions(prefix, key_marker, version_marker);
    if (!page.ok()) return page.status();
    for (const auto& v : page->versions) {
      if (auto s = each(v); !s.ok()) return s;
    }
    if (!page->truncated) return absl::OkStatus();
    key_marker = page->next_key_marker;
    version_marker = page->next_version_id_marker;
  }
}

absl::Status S3Client::ForEachObject(std::string_view prefix,
                                     const std::function<absl::Status(const S3ObjectVersion&)>& each) {
  std::string token;
  for (;;) {
    Request r{.op = "ListObjectsV2", .query = {{"list-type", "2"}, {"prefix", std::string(prefix)}}};
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    auto resp = Send(r);
    if (!resp.ok()) return resp.status();
    auto xml = ParseXml(resp->body);
    if (!xml.ok()) return absl::InternalError(StrCat("ListObjectsV2: ", xml.status().message()));
    for (const auto& e : (*xml)->children) {
      if (e->name != "Contents") continue;
      S3ObjectVersion v{.key = e->ChildText("Key")};
      const std::string size = e->ChildText("Size");
      std::from_chars(size.data(), size.data() + size.size(), v.size);
      if (auto s = each(v); !s.ok()) return s;
    }
    if ((*xml)->ChildText("IsTruncated") != "true") return absl::OkStatus();
    token = (*xml)->ChildText("NextContinuationToken");
    if (token.empty()) return absl::InternalError("ListObjectsV2: a truncated page without NextContinuationToken");
  }
}

absl::Status S3Client::DeleteObjects(std::span<const S3ObjectVersion> objects, std::vector<std::string>* refused) {
  if (objects.empty()) return absl::OkStatus();
  if (objects.size() > 1000) return absl::InvalidArgumentError("DeleteObjects: more than 1000 keys");
  std::string body = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>";
  for (const auto& o : objects) {
    StrAppend(&body, "<Object><Key>", XmlEscape(o.key), "</Key>");
    if (!o.version_id.empty()) StrAppend(&body, "<VersionId>", XmlEscape(o.version_id), "</VersionId>");
    body += "</Object>";
  }
  body += "</Delete>";
  Request r{.op = "DeleteObjects", .method = "POST", .query = {{"delete", ""}}, .body = body};
  r.headers.push_back(StrCat("Content-MD5: ", Md5Base64(body)));
  auto resp = Send(r);
  if (!resp.ok()) return resp.status();
  auto xml = ParseXml(resp->body);
  if (!xml.ok()) return absl::InternalError(StrCat("DeleteObjects: ", xml.status().message()));
  absl::Status first;
  for (const auto& e : (*xml)->children) {
    if (e->name != "Error") continue;
    std::string code = e->ChildText("Code");
    if (refused != nullptr) refused->push_back(e->ChildText("Key"));
    if (!first.ok()) continue;
    first = MapError(config_, StrCat("DeleteObjects s3://", config_.bucket, "/", e->ChildText("Key")),
                     code == "AccessDenied" ? 403 : 400, code, e->ChildText("Message"));
  }
  return first;
}

// ---- multipart upload --------------------------------------------------------

absl::StatusOr<std::string> S3Client::CreateMultipartUpload(std::string_view key) {
  auto resp =
      Send({.op = "CreateMultipartUpload", .method = "POST", .key = std::string(key), .query = {{"uploads", ""}}});
  if (!resp.ok()) return resp.status();
  auto xml = ParseXml(resp->body);
  if (!xml.ok()) return absl::InternalError(StrCat("CreateMultipartUpload: ", xml.status().message()));
  std::string id = (*xml)->ChildText("UploadId");
  if (id.empty()) return absl::InternalError("CreateMultipartUpload: the reply has no UploadId");
  return id;
}

absl::StatusOr<std::string> S3Client::UploadPart(std::string_view key, std::string_view upload_id, int part_number,
                                                 std::string_view body) {
  auto resp = Send({.op = "UploadPart",
                    .method = "PUT",
                    .key = std::string(key),
                    .query = {{"partNumber", StrCat(part_number)}, {"uploadId", std::string(upload_id)}},
                    .body = body});
  if (!resp.ok()) return resp.status();
  if (resp->etag.empty()) return absl::InternalError("UploadPart: the reply has no ETag");
  return resp->etag;
}

absl::Status S3Client::CompleteMultipartUpload(std::string_view key, std::string_view upload_id,
                                               std::span<const S3CompletedPart> parts) {
  std::string body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& p : parts) {
    StrAppend(&body, "<Part><PartNumber>", p.number, "</PartNumber><ETag>", XmlEscape(p.etag), "</ETag></Part>");
  }
  body += "</CompleteMultipartUpload>";
  auto resp = Send({.op = "CompleteMultipartUpload",
                    .method = "POST",
                    .key = std::string(key),
                    .query = {{"uploadId", std::string(upload_id)}},
                    .body = body});
  if (resp.ok() || !absl::IsNotFound(resp.status())) return resp.status();
  // NoSuchUpload after a retry: the first attempt may have completed it.
  auto head = HeadObject(key);
  if (head.ok() && head->etag.find(StrCat("-", parts.size())) != std::string::npos) return absl::OkStatus();
  return resp.status();
}

absl::Status S3Client::AbortMultipartUpload(std::string_view key, std::string_view upload_id) {
  auto resp = Send({.op = "AbortMultipartUpload",
                    .method = "DELETE",
                    .key = std::string(key),
                    .query = {{"uploadId", std::string(upload_id)}}});
  if (!resp.ok() && absl::IsNotFound(resp.status())) return absl::OkStatus();
  return resp.status();
}

absl::StatusOr<S3UploadPage> S3Client::ListMultipartUploads(std::string_view prefix, std::string_view key_marker,
                                                            std::string_view upload_id_marker) {
  Request r{.op = "ListMultipartUploads", .query = {{"uploads", ""}, {"prefix", std::string(prefix)}}};
  if (!key_marker.empty()) r.query.emplace_back("key-marker", std::string(key_marker));
  if (!upload_id_marker.empty()) r.query.emplace_back("upload-id-marker", std::string(upload_id_marker));
  auto resp = Send(r);
  if (!resp.ok()) return resp.status();
  auto xml = ParseXml(resp->body);
  if (!xml.ok()) return absl::InternalError(StrCat("ListMultipartUploads: ", xml.status().message()));
  S3UploadPage page;
  for (const auto& e : (*xml)->children) {
    if (e->name != "Upload") continue;
    page.uploads.push_back(
        {.key = e->ChildText("Key"), .upload_id = e->ChildText("UploadId"), .initiated = e->ChildText("Initiated")});
  }
  page.truncated = (*xml)->ChildText("IsTruncated") == "true";
  page.next_key_marker = (*xml)->ChildText("NextKeyMarker");
  page.next_upload_id_marker = (*xml)->ChildText("NextUploadIdMarker");
  if (page.truncated && page.next_key_marker.empty()) {
    return absl::InternalError("ListMultipartUploads: a truncated page without NextKeyMarker");
  }
  return page;
}

}  // namespace shredd
