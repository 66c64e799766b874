// S3BlobBackend against a real Ceph RGW (fixture "ceph"): objects appear only
// when published, multipart uploads of large objects read back byte for byte,
// an abandoned writer leaves no upload, Delete leaves no version, short or
// vanished objects are DATA_LOSS, and garbage collection removes what is dead.
#include <gtest/gtest.h>

#include "daemon/base/strings.h"
#include "daemon/storage/blob_backend_s3.h"
#include "tests/unit/storage/s3_test_env.h"

namespace shredd {
namespace {

using testing::NewBucketClient;
using testing::RandomBytes;

const std::string kLive = "00112233445566778899aabbccddeeff";
const std::string kDead = "ffeeddccbbaa99887766554433221100";

std::unique_ptr<BlobBackend> Backend(std::shared_ptr<S3Client> c, uint64_t part = 5 << 20, int concurrency = 3) {
  auto b = OpenS3BlobBackend(std::move(c), {.part_size = part, .concurrency = concurrency});
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

absl::Status Write(BlobBackend* b, const std::string& id, std::string_view data, size_t step = 1 << 20) {
  auto w = b->Create(id);
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < data.size(); i += step) {
    if (auto s = (*w)->Append(data.substr(i, step)); !s.ok()) return s;
  }
  return (*w)->Publish();
}

size_t CountVersions(S3Client* c, const std::string& prefix) {
  size_t n = 0;
  EXPECT_TRUE(c->ForEachVersion(prefix, [&](const S3ObjectVersion&) {
                 ++n;
                 return absl::OkStatus();
               }).ok());
  return n;
}

size_t CountUploads(S3Client* c) {
  auto page = c->ListMultipartUploads(c->KeyFor(""));
  EXPECT_TRUE(page.ok()) << page.status();
  return page.ok() ? page->uploads.size() : 0;
}

TEST(S3BlobBackend, SmallObjectsArePublishedWhole) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  auto b = Backend(c);
  const std::string data = RandomBytes(300000);
  auto w = b->Create(kLive);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append(data.substr(0, 1000)).ok());
  ASSERT_TRUE((*w)->Append(data.substr(1000)).ok());
  EXPECT_TRUE(absl::IsDataLoss(b->Open(kLive).status())) << "not visible before Publish";
  ASSERT_TRUE((*w)->Publish().ok());
  EXPECT_EQ(CountUploads(c.get()), 0u);
  auto r = b->Open(kLive);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->size(), data.size());
  std::string out = "prefix:";
  ASSERT_TRUE((*r)->ReadAt(5000, 70000, &out).ok());
  EXPECT_EQ(out, "prefix:" + data.substr(5000, 70000));
  // The key is PREFIX/ID: nothing else.
  auto head = c->HeadObject("blobs/" + kLive);
  EXPECT_TRUE(head.ok()) << head.status();
  // Empty objects too.
  ASSERT_TRUE(Write(b.get(), kDead, "").ok());
  auto e = b->Open(kDead);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->size(), 0u);
}

TEST(S3BlobBackend, MultipartUploadReadsBackByteIdentical) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  auto b = Backend(c, 5 << 20, 3);
  const std::string data = RandomBytes((40 << 20) + 12345);
  ASSERT_TRUE(Write(b.get(), kLive, data, 777777).ok());
  EXPECT_EQ(CountUploads(c.get()), 0u);
  auto head = c->HeadObject(c->KeyFor(kLive));
  ASSERT_TRUE(head.ok());
  EXPECT_NE(head->etag.find("-9"), std::string::npos) << "9 parts of 5 MiB: " << head->etag;
  auto r = b->Open(kLive);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ((*r)->size(), data.size());
  std::string back;
  for (uint64_t off = 0; off < data.size(); off += 3 << 20) {
    const size_t n = std::min<uint64_t>(3 << 20, data.size() - off);
    ASSERT_TRUE((*r)->ReadAt(off, n, &back).ok());
  }
  EXPECT_TRUE(back == data) << "read back differs";
}

// An object of `size` random bytes written in 5 MiB parts and opened for
// reading (the two read tests below).
struct StoredObject {
  void Store(size_t size) {
    client = NewBucketClient();
    ASSERT_NE(client, nullptr);
    backend = Backend(client, 5 << 20, 2);
    data = RandomBytes(size);
    ASSERT_TRUE(Write(backend.get(), kLive, data, 4242).ok());
    auto r = backend->Open(kLive);
    ASSERT_TRUE(r.ok()) << r.status();
    reader = std::move(*r);
  }
  std::shared_ptr<S3Client> client;
  std::unique_ptr<BlobBackend> backend;
  std::string data;
  std::unique_ptr<BlobReader> reader;
};

// A download reads chunk after chunk: after the first, the reader fetches
// 8 MiB windows, one GET each (the next ones prefetched while the current
// one is served), instead of one GET per chunk. Reads that jump around still
// return exactly the bytes asked for, and drop the prefetched windows.
TEST(S3BlobBackend, SequentialReadsShareRangedGets) {
  SHREDD_REQUIRE_CEPH();
  StoredObject o;
  ASSERT_NO_FATAL_FAILURE(o.Store((24 << 20) + 999));
  const std::string& data = o.data;
  BlobReader* r = o.reader.get();
  const uint64_t before = o.client->requests();
  std::string back;
  const uint64_t chunk = (1 << 20) + 16;  // a sealed chunk and its tag
  for (uint64_t off = 0; off < data.size(); off += chunk) {
    ASSERT_TRUE(r->ReadAt(off, std::min<uint64_t>(chunk, data.size() - off), &back).ok());
  }
  EXPECT_TRUE(back == data) << "read back differs";
  const uint64_t gets = o.client->requests() - before;
  EXPECT_LE(gets, 6u) << "25 chunk reads took " << gets << " GETs";  // 1 + ceil(24 MiB / 8 MiB) (+ retries)
  for (uint64_t off : {uint64_t{20} << 20, uint64_t{3}, uint64_t{9} << 20, data.size() - 10}) {
    std::string part;
    ASSERT_TRUE(r->ReadAt(off, std::min<uint64_t>(100, data.size() - off), &part).ok());
    EXPECT_TRUE(part == data.substr(off, 100)) << off;
  }
}

// Downloads read through ReadView (ItemReader): views of the windows where a
// chunk lies in one, copies where it crosses a window's end, the same GETs as
// ReadAt, and ranged views in between.
TEST(S3BlobBackend, SequentialViewsShareRangedGets) {
  SHREDD_REQUIRE_CEPH();
  StoredObject o;
  ASSERT_NO_FATAL_FAILURE(o.Store((24 << 20) + 999));
  const std::string& data = o.data;
  BlobReader* r = o.reader.get();
  const uint64_t before = o.client->requests();
  const uint64_t chunk = (1 << 20) + 16;
  std::string scratch;
  for (uint64_t off = 0; off < data.size(); off += chunk) {
    const uint64_t n = std::min<uint64_t>(chunk, data.size() - off);
    auto v = r->ReadView(off, n, &scratch);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE(*v == std::string_view(data).substr(off, n)) << "at " << off;
  }
  const uint64_t gets = o.client->requests() - before;
  EXPECT_LE(gets, 6u) << "25 chunk views took " << gets << " GETs";
  for (uint64_t off : {uint64_t{20} << 20, uint64_t{3}, (uint64_t{8} << 20) - 50, data.size() - 10}) {
    const uint64_t n = std::min<uint64_t>(100, data.size() - off);
    auto v = r->ReadView(off, n, &scratch);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(*v == std::string_view(data).substr(off, n)) << off;
  }
  EXPECT_TRUE(absl::IsDataLoss(r->ReadView(data.size() - 5, 10, &scratch).status()));
}

TEST(S3BlobBackend, DestroyingAnUnpublishedWriterAbortsItsUpload) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  auto b = Backend(c, 5 << 20, 2);
  {
    auto w = b->Create(kLive);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(RandomBytes(12 << 20)).ok());  // two parts sent, one buffered
    EXPECT_EQ(CountUploads(c.get()), 1u);
  }
  EXPECT_EQ(CountUploads(c.get()), 0u);
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor("")), 0u);
  EXPECT_TRUE(absl::IsDataLoss(b->Open(kLive).status()));
}

TEST(S3BlobBackend, DeleteRemovesEveryVersion) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("blobs", /*versioned=*/true);
  ASSERT_NE(c, nullptr);
  auto b = Backend(c);
  ASSERT_TRUE(Write(b.get(), kLive, "first").ok());
  ASSERT_TRUE(Write(b.get(), kLive, "second").ok());
  ASSERT_TRUE(c->DeleteObject(c->KeyFor(kLive)).ok());  // a delete marker, as a plain DELETE leaves
  ASSERT_TRUE(Write(b.get(), kLive, RandomBytes(6 << 20)).ok());
  ASSERT_TRUE(Write(b.get(), kDead, "neighbour").ok());
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor(kLive)), 4u);
  ASSERT_TRUE(b->Delete(kLive).ok());
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor(kLive)), 0u) << "a version or marker is left";
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor(kDead)), 1u) << "another object was touched";
  EXPECT_TRUE(b->Delete(kLive).ok()) << "deleting what is gone is OK";
  // An unversioned bucket too.
  auto plain = NewBucketClient();
  ASSERT_NE(plain, nullptr);
  auto pb = Backend(plain);
  ASSERT_TRUE(Write(pb.get(), kLive, "x").ok());
  ASSERT_TRUE(pb->Delete(kLive).ok());
  EXPECT_EQ(CountVersions(plain.get(), plain->KeyFor("")), 0u);
}

TEST(S3BlobBackend, ShortOrVanishedObjectsAreDataLoss) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient();
  ASSERT_NE(c, nullptr);
  auto b = Backend(c);
  EXPECT_TRUE(absl::IsDataLoss(b->Open(kLive).status()));
  ASSERT_TRUE(Write(b.get(), kLive, RandomBytes(10000)).ok());
  auto r = b->Open(kLive);
  ASSERT_TRUE(r.ok());
  std::string out;
  auto s = (*r)->ReadAt(9000, 2000, &out);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(out.empty());
  // Replaced by a shorter object after Open (the bucket operator is not trusted).
  ASSERT_TRUE(c->PutObject(c->KeyFor(kLive), "short").ok());
  s = (*r)->ReadAt(0, 1000, &out);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(b->Delete(kLive).ok());
  s = (*r)->ReadAt(0, 5, &out);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

TEST(S3BlobBackend, CollectGarbageRemovesDeadObjectsAndStaleUploads) {
  SHREDD_REQUIRE_CEPH();
  auto c = NewBucketClient("blobs", /*versioned=*/true);
  ASSERT_NE(c, nullptr);
  auto b = Backend(c, 5 << 20, 2);
  ASSERT_TRUE(Write(b.get(), kLive, "live").ok());
  ASSERT_TRUE(Write(b.get(), kDead, "dead v1").ok());
  ASSERT_TRUE(Write(b.get(), kDead, "dead v2").ok());
  ASSERT_TRUE(c->PutObject(c->KeyFor("state/not-a-blob"), "kept").ok());
  ASSERT_TRUE(c->PutObject("outside-the-prefix", "kept").ok());
  // A crashed writer's upload, and one in progress now.
  auto stale = c->CreateMultipartUpload(c->KeyFor("0000000000000000000000000000dead"));
  ASSERT_TRUE(stale.ok());
  auto running = b->Create("0000000000000000000000000000beef");
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE((*running)->Append(RandomBytes(5 << 20)).ok());
  EXPECT_EQ(CountUploads(c.get()), 2u);
  std::vector<std::string> undeleted;
  ASSERT_TRUE(b->CollectGarbage([](std::string_view id) { return id == kLive; }, &undeleted).ok());
  EXPECT_TRUE(undeleted.empty());
  EXPECT_EQ(CountUploads(c.get()), 1u) << "the stale upload is aborted, the running one kept";
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor(kDead)), 0u);
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor(kLive)), 1u);
  EXPECT_EQ(CountVersions(c.get(), c->KeyFor("state/")), 1u);
  EXPECT_EQ(CountVersions(c.get(), "outside-the-prefix"), 1u);
  ASSERT_TRUE((*running)->Publish().ok());
  auto r = b->Open("0000000000000000000000000000beef");
  EXPECT_TRUE(r.ok()) << r.status();
}

// A daemon at the bucket's root (or any prefix above another daemon's)
// leaves the other daemon's uploads in flight alone.
TEST(S3BlobBackend, CollectGarbageLeavesUploadsBelowThePrefixAlone) {
  SHREDD_REQUIRE_CEPH();
  auto y = NewBucketClient("tenant-y");
  ASSERT_NE(y, nullptr);
  auto x_cfg = y->config();
  x_cfg.prefix = "";
  std::shared_ptr<S3Client> x = *S3Client::Create(x_cfg);
  auto by = Backend(y, 5 << 20, 2);
  auto bx = Backend(x, 5 << 20, 2);
  auto running = by->Create(kLive);
  ASSERT_TRUE(running.ok());
  const std::string data = RandomBytes(6 << 20);
  ASSERT_TRUE((*running)->Append(data).ok());
  ASSERT_EQ(CountUploads(x.get()), 1u);
  std::vector<std::string> undeleted;
  ASSERT_TRUE(bx->CollectGarbage([](std::string_view) { return false; }, &undeleted).ok());
  EXPECT_EQ(CountUploads(x.get()), 1u) << "tenant-y's upload is not the root daemon's";
  auto s = (*running)->Publish();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(CountVersions(x.get(), y->KeyFor(kLive)), 1u);
}

// While the daemon serves, the store's refusals are UNAVAILABLE naming the
// store (ObjectStoreUnavailable), never a verdict on the caller; DATA_LOSS
// and the store's quota keep their codes.
TEST(S3BlobBackend, TheStoresRefusalsAreUnavailableNamingTheStore) {
  SHREDD_REQUIRE_CEPH();
  std::shared_ptr<S3Client> c = *S3Client::Create(testing::CephConfig("shredd-no-such-bucket"));
  auto b = Backend(c);
  auto w = b->Create(kLive);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("data").ok());
  auto s = (*w)->Publish();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("has no bucket"), std::string::npos) << s;
  const S3Config& cfg = c->config();
  s = ObjectStoreUnavailable(cfg, absl::PermissionDeniedError("object store X refused GetObject: HTTP 403"));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  s = ObjectStoreUnavailable(cfg, absl::InternalError("UploadPart: the reply has no ETag"));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("object store " + cfg.endpoint), std::string::npos) << s;
  for (const absl::Status& kept :
       {absl::DataLossError("x"), absl::ResourceExhaustedError("quota"), absl::CancelledError("x"), absl::OkStatus()}) {
    EXPECT_EQ(ObjectStoreUnavailable(cfg, kept), kept);
  }
}

TEST(S3BlobBackend, OptionsAreChecked) {
  auto cfg = testing::CephConfig("b");
  cfg.credentials = testing::Credentials("AKID", "secret");
  cfg.endpoint = "http://127.0.0.1:1";
  std::shared_ptr<S3Client> c = *S3Client::Create(cfg);
  EXPECT_TRUE(absl::IsInvalidArgument(OpenS3BlobBackend(c, {.part_size = 1 << 20}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(OpenS3BlobBackend(c, {.concurrency = 0}).status()));
  EXPECT_TRUE(OpenS3BlobBackend(c, {}).ok());
}

}  // namespace
}  // namespace shredd
