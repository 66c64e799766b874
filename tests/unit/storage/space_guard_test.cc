// The free-space guard (daemon/storage/space_guard.h): the floors of the two write
// classes, the refusal's reason, and GuardedWrite writing nothing when it
// refuses. The real full disk is tests/integration/test_disk_full.py.
#include "daemon/storage/space_guard.h"

#include <sys/statvfs.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "daemon/storage/rocks_util.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using shredd::testing::TempDir;

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs st {};
  EXPECT_EQ(statvfs(dir.c_str(), &st), 0);
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

class SpaceGuardTest : public ::testing::Test {
 protected:
  void TearDown() override { InstallSpaceGuard("", 0); }  // process-wide: leave it off
  TempDir tmp_;
};

TEST_F(SpaceGuardTest, OffByDefaultAndAtZero) {
  EXPECT_TRUE(CheckFreeSpace().ok());
  InstallSpaceGuard(tmp_.path(), 0);
  EXPECT_TRUE(CheckFreeSpace().ok());
}

TEST_F(SpaceGuardTest, WritesThatAddDataKeepTheFloorErasuresAQuarterOfIt) {
  const uint64_t free = FreeBytes(tmp_.path());
  ASSERT_GT(free, uint64_t{64} << 20);
  // A floor just above what is free: ingest refused, erasures (a quarter) not.
  InstallSpaceGuard(tmp_.path(), free + (uint64_t{16} << 20));
  absl::Status s = CheckFreeSpace();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("not enough free space"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[storage] min_free_mib"), std::string::npos) << s;
  EXPECT_TRUE(SpaceGuardRefusal().has_value());
  {
    ErasureWrites erasure;
    EXPECT_TRUE(CheckFreeSpace().ok());
    {
      ErasureWrites nested;
      EXPECT_TRUE(CheckFreeSpace().ok());
    }
    EXPECT_TRUE(CheckFreeSpace().ok());
  }
  EXPECT_FALSE(CheckFreeSpace().ok());  // the scope ended
  // A floor four times what is free refuses erasures too, naming their floor.
  SetSpaceGuardFloor(4 * free + (uint64_t{64} << 20));
  ErasureWrites erasure;
  s = CheckFreeSpace();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("erasures keep"), std::string::npos) << s;
  // And a reload that lowers it lets everything through again.
  SetSpaceGuardFloor(1);
  EXPECT_TRUE(CheckFreeSpace().ok());
  EXPECT_FALSE(SpaceGuardRefusal().has_value());
}

TEST_F(SpaceGuardTest, ListenerHearsEachChangeOnce) {
  int changes = 0;
  SetSpaceGuardListener([&changes] { ++changes; });
  InstallSpaceGuard(tmp_.path(), 1);
  EXPECT_TRUE(CheckFreeSpace().ok());
  EXPECT_EQ(changes, 0);
  SetSpaceGuardFloor(~uint64_t{0} / 8);
  EXPECT_FALSE(CheckFreeSpace().ok());
  EXPECT_FALSE(CheckFreeSpace().ok());
  EXPECT_EQ(changes, 1);
  SetSpaceGuardFloor(1);
  EXPECT_TRUE(CheckFreeSpace().ok());
  EXPECT_EQ(changes, 2);
  SetSpaceGuardListener(nullptr);
}

TEST_F(SpaceGuardTest, GuardedWriteWritesNothingWhenRefused) {
  rocksdb::Options options;
  options.create_if_missing = true;
  std::unique_ptr<rocksdb::DB> db;
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, tmp_.path() + "/db", &raw).ok());
    db.reset(raw);
  }
  InstallSpaceGuard(tmp_.path(), ~uint64_t{0} / 8);
  rocksdb::WriteBatch batch;
  batch.Put("k", "v");
  absl::Status s = SyncWrite(db.get(), &batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  std::string v;
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "k", &v).IsNotFound());
  SetSpaceGuardFloor(1);
  EXPECT_TRUE(SyncWrite(db.get(), &batch).ok());
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "k", &v).ok());
  EXPECT_EQ(v, "v");
}

}  // namespace
}  // namespace shredd
