// S3Client against a real Ceph RGW (fixture "ceph"): each call, versioning,
// batch deletion, multipart calls, keys that need encoding, and the errors a
// user meets: wrong secret, missing bucket, an endpoint that is down.
#include "daemon/storage/s3_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "tests/unit/storage/s3_test_env.h"

namespace shredd {
namespace {

using testing::Ceph;
using testing::NewBucketClient;
using testing::RandomBytes;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

std::vector<S3ObjectVersion> Versions(S3Client* c, const std::string& prefix) {
  std::vector<S3ObjectVersion> out;
  auto s = c->ForEachVersion(prefix, [&](const S3ObjectVersion& v) {
    out.push_back(v);
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST(S3Client, PutGetRangedGetHeadDelete) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  const std::string key = c->KeyFor("0123abcd"), data = RandomBytes(100000);
  ASSERT_TRUE(c->PutObject(key, data).ok());
  std::string all, part;
  ASSERT_TRUE(c->GetObject(key, 0, 0, &all).ok());
  EXPECT_EQ(all, data);
  ASSERT_TRUE(c->GetObject(key, 4096, 1000, &part).ok());
  EXPECT_EQ(part, data.substr(4096, 1000));
  auto head = c->HeadObject(key);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, data.size());
  EXPECT_FALSE(head->etag.empty());
  ASSERT_TRUE(c->DeleteObject(key).ok());
  EXPECT_TRUE(absl::IsNotFound(c->HeadObject(key).status()));
  std::string none;
  absl::Status s = c->GetObject(key, 0, 0, &none);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(none.empty());
}

// A caller that has the body's SHA-256 already passes it (the WAL shipper,
// snapshot tables): the request is signed over it, and the store checks it
// against the bytes that arrive, so a wrong one cannot store wrong bytes.
TEST(S3Client, PutObjectWithTheCallersPayloadHash) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  const std::string key = c->KeyFor("hashed"), data = RandomBytes(70000);
  const std::string sha = HexEncode(Sha256Hasher::Of(data));
  ASSERT_TRUE(c->PutObject(key, data, sha).ok());
  std::string back;
  ASSERT_TRUE(c->GetObject(key, 0, 0, &back).ok());
  EXPECT_EQ(back, data);
  const std::string other = HexEncode(Sha256Hasher::Of("other bytes"));
  absl::Status s = c->PutObject(c->KeyFor("wrong"), data, other).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(Msg(s).find("SHA256"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsNotFound(c->HeadObject(c->KeyFor("wrong")).status()));
}

TEST(S3Client, KeysAndPrefixesThatNeedEncoding) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("dir with space/ü+%");
  ASSERT_NE(c, nullptr);
  const std::string key = c->KeyFor("a b&c=d?e#f~g");
  ASSERT_TRUE(c->PutObject(key, "x").ok());
  std::string out;
  ASSERT_TRUE(c->GetObject(key, 0, 0, &out).ok());
  EXPECT_EQ(out, "x");
  auto versions = Versions(c.get(), c->KeyFor(""));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].key, key);
}

TEST(S3Client, VersioningKeepsEveryVersionUntilDeletedById) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("p", /*versioned=*/true);
  ASSERT_NE(c, nullptr);
  auto on = c->GetBucketVersioning();
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(*on);
  const std::string key = c->KeyFor("obj");
  auto v1 = c->PutObject(key, "one");
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_FALSE(v1->empty());
  ASSERT_TRUE(c->PutObject(key, "two").ok());
  ASSERT_TRUE(c->DeleteObject(key).ok());  // only a delete marker
  auto versions = Versions(c.get(), key);
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(std::count_if(versions.begin(), versions.end(), [](auto& v) { return v.delete_marker; }), 1);
  ASSERT_TRUE(c->DeleteObjects(versions).ok());
  EXPECT_TRUE(Versions(c.get(), key).empty());
}

TEST(S3Client, ListingPaginates) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 1005; ++i) ASSERT_TRUE(c->PutObject(c->KeyFor(StrCat("k", i)), "").ok());
  auto first = c->ListObjectVersions(c->KeyFor(""));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->truncated);
  auto all = Versions(c.get(), c->KeyFor(""));
  EXPECT_EQ(all.size(), 1005u);
  for (size_t i = 0; i < all.size(); i += 1000) {
    std::span<const S3ObjectVersion> batch(all.data() + i, std::min<size_t>(1000, all.size() - i));
    ASSERT_TRUE(c->DeleteObjects(batch).ok());
  }
  EXPECT_TRUE(Versions(c.get(), c->KeyFor("")).empty());
}

TEST(S3Client, MultipartCalls) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  const std::string key = c->KeyFor("mp"), a = RandomBytes(5 << 20), b = RandomBytes(1000);
  auto id = c->CreateMultipartUpload(key);
  ASSERT_TRUE(id.ok()) << id.status();
  auto uploads = c->ListMultipartUploads(c->KeyFor(""));
  ASSERT_TRUE(uploads.ok()) << uploads.status();
  ASSERT_EQ(uploads->uploads.size(), 1u);
  EXPECT_EQ(uploads->uploads[0].upload_id, *id);
  auto e2 = c->UploadPart(key, *id, 2, b);
  auto e1 = c->UploadPart(key, *id, 1, a);
  ASSERT_TRUE(e1.ok() && e2.ok()) << e1.status() << e2.status();
  std::vector<S3CompletedPart> parts = {{1, *e1}, {2, *e2}};
  ASSERT_TRUE(c->CompleteMultipartUpload(key, *id, parts).ok());
  std::string out;
  ASSERT_TRUE(c->GetObject(key, 0, 0, &out).ok());
  EXPECT_TRUE(out == a + b);
  auto other = c->CreateMultipartUpload(c->KeyFor("other"));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(c->AbortMultipartUpload(c->KeyFor("other"), *other).ok());
  EXPECT_TRUE(c->AbortMultipartUpload(c->KeyFor("other"), *other).ok()) << "abort is idempotent";
  uploads = c->ListMultipartUploads(c->KeyFor(""));
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->uploads.empty());
}

TEST(S3Client, WrongSecretIsPermissionDenied) {
  SHREDD_REQUIRE_CEPH();
  auto good = NewBucketClient();
  ASSERT_NE(good, nullptr);
  S3Config cfg = good->config();
  const std::string wrong = "not-the-secret-" + Ceph().secret_key.substr(0, 4) + "xyz";
  cfg.credentials = testing::Credentials(Ceph().access_key, wrong);
  auto c = S3Client::Create(cfg);
  ASSERT_TRUE(c.ok());
  auto s = (*c)->PutObject((*c)->KeyFor("x"), "data").status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_NE(Msg(s).find("SignatureDoesNotMatch"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find(Ceph().endpoint), std::string::npos) << s;
  EXPECT_EQ(Msg(s).find(wrong), std::string::npos) << "the secret must not appear";
  EXPECT_EQ((*c)->requests(), 1u) << "403 is not retried";
}

TEST(S3Client, MissingBucketIsAClearError) {
  SHREDD_REQUIRE_CEPH();
  auto c = S3Client::Create(testing::CephConfig("shredd-no-such-bucket"));
  ASSERT_TRUE(c.ok());
  auto s = (*c)->PutObject((*c)->KeyFor("x"), "data").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("has no bucket \"shredd-no-such-bucket\""), std::string::npos) << s;
  s = (*c)->ListObjectVersions("").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
}

TEST(S3Client, ClosedPortIsUnavailableAfterBoundedRetries) {
  // No Ceph needed: a port that was just free.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  close(fd);
  S3Config cfg;
  cfg.endpoint = StrCat("http://127.0.0.1:", ntohs(a.sin_port));
  cfg.bucket = "b";
  cfg.credentials = testing::Credentials("AKID", "secret");
  cfg.max_attempts = 4;
  cfg.initial_backoff = std::chrono::milliseconds(100);
  auto c = S3Client::Create(cfg);
  ASSERT_TRUE(c.ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto s = (*c)->PutObject("k", "data").status();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(Msg(s).find(cfg.endpoint), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("after 4 attempts"), std::string::npos) << s;
  EXPECT_EQ(Msg(s).find('\n'), std::string::npos) << "one line";
  EXPECT_EQ((*c)->requests(), 4u);
  EXPECT_GE(took, std::chrono::milliseconds(300));  // backoff: 50-100, 100-200, 200-400 ms
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(S3Client, ConfigErrors) {
  S3Config cfg;
  cfg.bucket = "b";
  EXPECT_NE(Msg(S3Client::Create(cfg).status()).find("AWS_ACCESS_KEY_ID"), std::string::npos);
  cfg.credentials = testing::Credentials("AKID", "secret");
  cfg.endpoint = "ftp://host";
  EXPECT_TRUE(absl::IsInvalidArgument(S3Client::Create(cfg).status()));
  cfg.endpoint = "http://host/path";
  EXPECT_TRUE(absl::IsInvalidArgument(S3Client::Create(cfg).status()));
  cfg.endpoint = "http://host:9000/";
  EXPECT_TRUE(S3Client::Create(cfg).ok());
  EXPECT_EQ(S3UriEncode("a b/ü~", true), "a%20b/%C3%BC~");
  EXPECT_EQ(S3UriEncode("a/b", false), "a%2Fb");
}

}  // namespace
}  // namespace shredd
