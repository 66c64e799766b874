// File vault start-up hygiene: key files whose creation a crash cut short
// ("root-N.key.tmp", "signing.key.tmp", left by WriteFileDurably) are
// destroyed when the vault is opened; finished roots and unrelated files are
// kept. Found by tests/soak/crash_torture.py (kill -9 during a shred left
// root-(N+1).key.tmp next to root-N.key).
#include "daemon/keys/vault_file.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/test_util.h"

namespace shredd {
namespace {

void Write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

TEST(FileVault, OpenDestroysHalfCreatedKeyFiles) {
  testing::TempDir dir;
  {
    auto v = OpenFileVault(dir.path());
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE((*v)->CreateRoot(25).ok());
  }
  Write(dir / "root-26.key.tmp", std::string(32, 'k'));  // CreateRoot(26) cut before its rename
  Write(dir / "signing.key.tmp", std::string(32, 's'));
  Write(dir / "notes.tmp", "not ours");
  auto v = OpenFileVault(dir.path());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(std::filesystem::exists(dir / "root-26.key.tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir / "signing.key.tmp"));
  EXPECT_TRUE(std::filesystem::exists(dir / "notes.tmp"));
  auto roots = (*v)->ListRoots();
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(*roots, std::vector<uint64_t>{25});
  // The finished root still works, and epoch 26 can be created afresh.
  auto wrapped = (*v)->WrapWithRoot(25, std::vector<uint8_t>(32, 1), "ad");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_TRUE((*v)->UnwrapWithRoot(25, *wrapped, "ad").ok());
  EXPECT_TRUE((*v)->CreateRoot(26).ok());
}

}  // namespace
}  // namespace shredd
