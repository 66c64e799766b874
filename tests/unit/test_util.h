// Shared fixtures for unit tests: temp dirs and a RocksDB + file vault.
#ifndef SHREDD_TESTS_UNIT_TEST_UTIL_H_
#define SHREDD_TESTS_UNIT_TEST_UTIL_H_

#include <sodium.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "daemon/keys/vault.h"

namespace shredd::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "shredd-unit-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& sub) const { return path_ + "/" + sub; }

 private:
  std::string path_;
};

inline std::unique_ptr<rocksdb::DB> OpenDb(const std::string& path) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, path, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return std::unique_ptr<rocksdb::DB>(db);
}

inline std::unique_ptr<Vault> OpenFileVaultOrDie(const std::string& dir) {
  auto v = OpenVault("file:" + dir);
  EXPECT_TRUE(v.ok()) << v.status();
  return std::move(*v);
}

}  // namespace shredd::testing

#endif  // SHREDD_TESTS_UNIT_TEST_UTIL_H_
