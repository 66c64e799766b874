// main() for the shredd_formats tests: libsodium must be initialised once
// before any signing or verification, as shredd's own mains do.
#include <sodium.h>

#include <cstdio>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  if (sodium_init() < 0) {
    std::fprintf(stderr, "sodium_init failed\n");
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
