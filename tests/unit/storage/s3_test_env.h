// The Ceph RGW the object-store tests run against: started by the ctest
// fixture "ceph" (tests/tools/ceph_cluster.py), described in the JSON file
// named by SHREDD_S3_CONFIG. Each test works in a bucket of its own.
#ifndef SHREDD_TESTS_UNIT_STORAGE_S3_TEST_ENV_H_
#define SHREDD_TESTS_UNIT_STORAGE_S3_TEST_ENV_H_

#include <sodium.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "daemon/crypto/digest.h"
#include "daemon/storage/s3_client.h"

namespace shredd::testing {

struct CephEnv {
  std::string endpoint, access_key, secret_key, region = "us-east-1";
  std::string skip;   // set: Ceph is not installed
  std::string error;  // set: no usable description
};

inline const CephEnv& Ceph() {
  static const CephEnv env = [] {
    CephEnv e;
    const char* path = std::getenv("SHREDD_S3_CONFIG");
    if (path == nullptr) {
      e.error =
          "SHREDD_S3_CONFIG is not set: run these tests through ctest (fixture \"ceph\"), or start a cluster with "
          "tests/tools/ceph_cluster.py start DIR --json FILE and set SHREDD_S3_CONFIG=FILE";
      return e;
    }
    std::ifstream in(path);
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!in || j.is_discarded() || !j.is_object()) {
      e.error = std::string("cannot read ") + path + " (did the ceph.start fixture fail? see its ctest output)";
      return e;
    }
    e.skip = j.value("skip", "");
    e.endpoint = j.value("endpoint", "");
    e.access_key = j.value("access_key", "");
    e.secret_key = j.value("secret_key", "");
    e.region = j.value("region", "us-east-1");
    return e;
  }();
  return env;
}

// Skips when Ceph is not installed, fails when the fixture gave nothing.
#define SHREDD_REQUIRE_CEPH()                                  \
  do {                                                         \
    const auto& ceph_env = ::shredd::testing::Ceph();          \
    if (!ceph_env.skip.empty()) GTEST_SKIP() << ceph_env.skip; \
    ASSERT_TRUE(ceph_env.error.empty()) << ceph_env.error;     \
  } while (0)

inline std::shared_ptr<const S3Credentials> Credentials(const std::string& key, const std::string& secret) {
  auto c = std::make_shared<S3Credentials>();
  c->access_key_id = key;
  c->secret_access_key = SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(secret.data()), secret.size()});
  return c;
}

inline S3Config CephConfig(const std::string& bucket, const std::string& prefix = "blobs") {
  S3Config c;
  c.endpoint = Ceph().endpoint;
  c.region = Ceph().region;
  c.bucket = bucket;
  c.prefix = prefix;
  c.path_style = true;
  c.credentials = Credentials(Ceph().access_key, Ceph().secret_key);
  c.max_attempts = 3;
  return c;
}

// A fresh random bucket name, "shredd-test-<hex>".
inline std::string NewBucketName() {
  uint8_t r[6];
  randombytes_buf(r, sizeof r);
  return "shredd-test-" + HexEncode(std::span<const uint8_t>(r, sizeof r));
}

// A client on a new bucket of its own.
inline std::shared_ptr<S3Client> NewBucketClient(const std::string& prefix = "blobs", bool versioned = false) {
  auto c = S3Client::Create(CephConfig(NewBucketName(), prefix));
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  std::shared_ptr<S3Client> client = *std::move(c);
  auto s = client->CreateBucket();
  EXPECT_TRUE(s.ok()) << s;
  if (versioned) {
    s = client->PutBucketVersioning(true);
    EXPECT_TRUE(s.ok()) << s;
  }
  return client;
}

inline std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

}  // namespace shredd::testing

#endif  // SHREDD_TESTS_UNIT_STORAGE_S3_TEST_ENV_H_
