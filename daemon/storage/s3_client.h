// S3Client: the few S3 API calls the object-store blob backend needs, over
// libcurl (Debian 12: 7.88), which signs each request with AWS Signature V4
// (CURLOPT_AWS_SIGV4). No hand-written signing here.
//
// What the client does itself, because curl 7.88 does not (../shared notes):
// sends x-amz-content-sha256 (SHA-256 of every body), percent-encodes object
// keys and query values, sorts query parameters.
//
// Errors are absl::Status with one line naming the endpoint and the call:
//   unreachable / timed out / 5xx / 429 / SlowDown, after the retries
//                                             -> UNAVAILABLE
//   403 (wrong keys, no permission)           -> PERMISSION_DENIED
//   NoSuchBucket                              -> FAILED_PRECONDITION
//   NoSuchKey, NoSuchUpload, 404 on HEAD      -> NOT_FOUND
//   wrong region, redirects                   -> FAILED_PRECONDITION
//   other 4xx                                 -> INVALID_ARGUMENT
// These precise codes are for start-up and `--check-config --probe`; what a
// caller of the running daemon sees is ObjectStoreUnavailable's (below).
// The secret key and the session token are held in SecretBytes and never
// appear in a message or a log line. (libcurl keeps its own heap copy of the
// password while a request runs: CURLOPT_PASSWORD copies its argument.)
#ifndef SHREDD_DAEMON_STORAGE_S3_CLIENT_H_
#define SHREDD_DAEMON_STORAGE_S3_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/base/secret.h"

namespace shredd {

struct S3Credentials {
  std::string access_key_id;      // AWS_ACCESS_KEY_ID (an identifier, not secret)
  SecretBytes secret_access_key;  // AWS_SECRET_ACCESS_KEY
  SecretBytes session_token;      // AWS_SESSION_TOKEN; empty: none
};

struct S3Config {
  // "http(s)://HOST[:PORT]" without a path; empty: https://s3.REGION.amazonaws.com.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  // Object keys start with PREFIX + "/" (empty: at the bucket's root).
  std::string prefix;
  // true: http://HOST/BUCKET/KEY (Ceph RGW, MinIO); false: http://BUCKET.HOST/KEY.
  bool path_style = true;
  std::string ca_file;  // PEM CA bundle for https; empty: the system's
  std::shared_ptr<const S3Credentials> credentials;
  std::chrono::milliseconds connect_timeout{5000};
  // A request fails (and is retried) if it moves fewer than 1 KiB/s for this long.
  std::chrono::milliseconds stall_timeout{30000};
  // Hard limit of one attempt, 0: none (a part of 5 GiB may take long).
  std::chrono::milliseconds request_timeout{0};
  // Attempts of one call (1 = no retry); backoff doubles from initial up to
  // max, with full jitter.
  int max_attempts = 6;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

struct S3ObjectInfo {
  uint64_t size = 0;
  std::string etag{};
  std::string version_id{};  // empty if the bucket is not versioned
};

// One entry of ListObjectVersions: an object version or a delete marker.
struct S3ObjectVersion {
  std::string key{};
  std::string version_id{};  // "null" for objects written before versioning
  bool delete_marker = false;
  uint64_t size = 0;
};

struct S3VersionPage {
  std::vector<S3ObjectVersion> versions;
  bool truncated = false;
  std::string next_key_marker, next_version_id_marker;
};

struct S3Upload {
  std::string key{}, upload_id{};
  std::string initiated{};  // ISO 8601, as the store says
};

struct S3UploadPage {
  std::vector<S3Upload> uploads;
  bool truncated = false;
  std::string next_key_marker, next_upload_id_marker;
};

struct S3CompletedPart {
  int number = 0;  // 1..10000
  std::string etag{};
};

class S3Client {
 public:
  // Checks the config (endpoint form, bucket, credentials present); makes no
  // request.
  static absl::StatusOr<std::unique_ptr<S3Client>> Create(S3Config config);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Config& config() const { return config_; }
  // "PREFIX/" + name, or name when there is no prefix.
  std::string KeyFor(std::string_view name) const;

  // Bucket calls. CreateBucket is OK if this account owns it already.
  absl::Status CreateBucket();
  absl::StatusOr<bool> GetBucketVersioning();  // true: Enabled
  absl::Status PutBucketVersioning(bool enabled);

  // Object calls. Keys are full keys (see KeyFor). PutObject returns the new
  // version id ("" when unversioned). `payload_sha256`: the body's SHA-256
  // in lowercase hex, if the caller has computed it anyway (the request is
  // then signed over it without hashing the body again; the store checks it
  // against what arrives and refuses a wrong one: INVALID_ARGUMENT).
  absl::StatusOr<std::string> PutObject(std::string_view key, std::string_view body,
                                        std::string_view payload_sha256 = {});
  // Appends bytes [offset, offset + length) to *out (fewer if the object is
  // shorter); length 0 reads to the end. `if_match`: an ETag the object must
  // still have (FAILED_PRECONDITION otherwise).
  absl::Status GetObject(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                         std::string_view if_match = {});
  absl::StatusOr<S3ObjectInfo> HeadObject(std::string_view key);
  absl::Status DeleteObject(std::string_view key, std::string_view version_id = {});
  // One page (up to 1000) of versions and delete markers under `prefix`.
  absl::StatusOr<S3VersionPage> ListObjectVersions(std::string_view prefix, std::string_view key_marker = {},
                                                   std::string_view version_id_marker = {});
  // Every page, in order; stops at the first error, or when `each` returns one.
  absl::Status ForEachVersion(std::string_view prefix, const std::function<absl::Status(const S3ObjectVersion&)>& each);
  // The current objects under `prefix` (ListObjectsV2: no delete markers, no
  // old versions), every page, in key order; stops at the first error, or
  // when `each` returns one.
  absl::Status ForEachObject(std::string_view prefix, const std::function<absl::Status(const S3ObjectVersion&)>& each);
  // Deletes up to 1000 (key, version) pairs in one call; an empty version id
  // deletes the current version. Fails naming the first key the store
  // refused; `refused`, if given, gets every refused key (the others are
  // deleted).
  absl::Status DeleteObjects(std::span<const S3ObjectVersion> objects, std::vector<std::string>* refused = nullptr);

  // Multipart upload.
  absl::StatusOr<std::string> CreateMultipartUpload(std::string_view key);  // upload id
  absl::StatusOr<std::string> UploadPart(std::string_view key, std::string_view upload_id, int part_number,
                                         std::string_view body);  // ETag
  absl::Status CompleteMultipartUpload(std::string_view key, std::string_view upload_id,
                                       std::span<const S3CompletedPart> parts);
  absl::Status AbortMultipartUpload(std::string_view key, std::string_view upload_id);  // OK if gone
  absl::StatusOr<S3UploadPage> ListMultipartUploads(std::string_view prefix, std::string_view key_marker = {},
                                                    std::string_view upload_id_marker = {});

  // Requests sent so far, retries included (for tests and metrics).
  uint64_t requests() const;

  struct Request;
  struct Response;

 private:
  class HandlePool;
  explicit S3Client(S3Config config);
  absl::StatusOr<Response> Send(const Request& request);

  S3Config config_;
  std::string base_url_;     // scheme://host[:port] (with the bucket for virtual-host style)
  std::string bucket_path_;  // "/BUCKET" (path style) or ""
  std::unique_ptr<HandlePool> pool_;
};

// A failure of the object store while the daemon serves, as its callers see
// it. The store is the daemon's own: a refusal of it (a revoked permission,
// a bucket gone, an upload aborted under a put, a reply it cannot parse) is a
// passing failure of the service, UNAVAILABLE naming the store, never a
// verdict on the caller or the caller's request (PERMISSION_DENIED,
// UNAUTHENTICATED, NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT). Kept:
// DATA_LOSS (an object the daemon stored is gone or wrong), RESOURCE_EXHAUSTED
// (the store's quota, as a full disk), UNAVAILABLE, DEADLINE_EXCEEDED,
// CANCELLED.
absl::Status ObjectStoreUnavailable(const S3Config& config, const absl::Status& s);

// Percent-encodes everything but A-Z a-z 0-9 - _ . ~ (and '/' if keep_slash),
// as SigV4 canonical requests want.
std::string S3UriEncode(std::string_view s, bool keep_slash);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_S3_CLIENT_H_
