#include "daemon/base/secret.h"

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace shredd {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

TEST(SecretBytesTest, PooledSlotsAreWipedBeforeReuse) {
  ASSERT_GE(sodium_init(), 0);
  const uint8_t* where = nullptr;
  {
    SecretBytes k = SecretBytes::Random(32);
    ASSERT_FALSE(AllZero(k.data(), 32));
    where = k.data();
  }
  // The pool hands slots out last-in first-out: the next 32-byte secret
  // reuses the slot just released, and it must come back zeroed.
  SecretBytes again(32);
  EXPECT_EQ(again.data(), where);
  EXPECT_TRUE(AllZero(again.data(), secret_internal::kPooledSize));
}

TEST(SecretBytesTest, PooledAndLargeSecretsHoldTheirBytes) {
  std::vector<SecretBytes> keys;
  std::set<const uint8_t*> seen;
  for (int i = 0; i < 40000; ++i) {  // more than one pool block
    keys.push_back(SecretBytes(1 + i % 64));
    std::memset(keys.back().data(), i & 0xff, keys.back().size());
    EXPECT_TRUE(seen.insert(keys.back().data()).second) << "slot handed out twice";
  }
  for (int i = 0; i < 40000; ++i) {
    ASSERT_EQ(keys[i].size(), static_cast<size_t>(1 + i % 64));
    for (size_t j = 0; j < keys[i].size(); ++j) ASSERT_EQ(keys[i].data()[j], i & 0xff);
  }
  SecretBytes big = SecretBytes::Random(4096);  // sodium_malloc'ed on its own
  SecretBytes moved = std::move(big);
  EXPECT_EQ(moved.size(), 4096u);
  EXPECT_TRUE(big.empty());
}

TEST(SecretBytesTest, PoolIsThreadSafe) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 20000; ++i) {
        SecretBytes k(32);
        ASSERT_TRUE(AllZero(k.data(), 32));
        std::memset(k.data(), t + 1, 32);
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace shredd
