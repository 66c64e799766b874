// Issue 12, defects 7-9: canonical path comparison (vault and data dir
// apart), the status mapping of a full disk, and the retry loop that
// finishes pending certifications.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/app/path_safety.h"
#include "daemon/base/backoff_retry.h"
#include "daemon/storage/rocks_util.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using shredd::testing::TempDir;

TEST(PathSafetyTest, CanonicalPathResolvesSymlinksAndDots) {
  TempDir t;
  auto base = CanonicalPath(t.path());
  ASSERT_TRUE(base.ok());
  ASSERT_EQ(mkdir((t / "d").c_str(), 0700), 0);
  ASSERT_EQ(symlink((*base + "/d").c_str(), (t / "link").c_str()), 0);
  EXPECT_EQ(*CanonicalPath(t / "link/vault"), *base + "/d/vault");
  EXPECT_EQ(*CanonicalPath(t / "d/x/../y/./z"), *base + "/d/y/z");
  EXPECT_EQ(*CanonicalPath(t / "missing/.."), *base);
  EXPECT_TRUE(PathWithin(*base + "/d/vault", *base + "/d"));
  EXPECT_TRUE(PathWithin(*base + "/d", *base + "/d"));
  EXPECT_FALSE(PathWithin(*base + "/d-vault", *base + "/d"));
  EXPECT_FALSE(PathWithin(*base + "/d", *base + "/d/vault"));
}

TEST(PathSafetyTest, RefusesOverlapAndOpenVaultWarnsOpenDataDir) {
  TempDir t;
  DaemonConfig c;
  c.data_dir = t / "data";
  c.vault = "file:" + (t / "data/../data/vault");
  EXPECT_EQ(CheckStoragePaths(c, nullptr).code(), absl::StatusCode::kFailedPrecondition);
  c.vault = "file:" + t.path();
  EXPECT_EQ(CheckStoragePaths(c, nullptr).code(), absl::StatusCode::kFailedPrecondition);
  c.vault = "file:" + (t / "vault");
  std::vector<std::string> warnings;
  EXPECT_TRUE(CheckStoragePaths(c, &warnings).ok());
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(mkdir((t / "vault").c_str(), 0755), 0);
  ASSERT_EQ(chmod((t / "vault").c_str(), 0755), 0);
  EXPECT_EQ(CheckStoragePaths(c, nullptr).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(chmod((t / "vault").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((t / "data").c_str(), 0750), 0);
  ASSERT_EQ(chmod((t / "data").c_str(), 0750), 0);
  EXPECT_TRUE(CheckStoragePaths(c, &warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("mode 0750"), std::string::npos) << warnings[0];
}

TEST(FromRocksTest, NoSpaceIsResourceExhausted) {
  EXPECT_EQ(FromRocks(rocksdb::Status::NoSpace("append", "No space left on device"), "w").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(FromRocks(rocksdb::Status::SpaceLimit("max allowed space"), "w").code(),
            absl::StatusCode::kResourceExhausted);
  // A stopped database answers with its background error, severity attached.
  rocksdb::Status bg(rocksdb::Status::NoSpace("While appending to file", "No space left on device"),
                     rocksdb::Status::Severity::kHardError);
  EXPECT_EQ(FromRocks(bg, "w").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(FromRocks(rocksdb::Status::IOError("disk on fire"), "w").code(), absl::StatusCode::kInternal);
}

TEST(BackoffRetrierTest, RetriesWithBackoffUntilItSucceedsThenSleepsUntilKicked) {
  std::atomic<int> calls{0};
  std::atomic<bool> fixed{false};
  BackoffRetrier r(
      [&] {
        ++calls;
        return fixed.load() ? absl::OkStatus() : absl::UnavailableError("vault broken");
      },
      {std::chrono::milliseconds(10), std::chrono::milliseconds(40)});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls.load(), 0);  // idle until kicked
  r.Kick();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls.load() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(calls.load(), 4);  // kept retrying on its own
  fixed = true;
  while (r.attempts() > 0 && std::chrono::steady_clock::now() < deadline) {
    const int before = calls.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // > max backoff
    if (calls.load() == before) break;                            // settled: succeeded
  }
  const int settled = calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(calls.load(), settled);  // no attempts after success
}

}  // namespace
}  // namespace shredd
