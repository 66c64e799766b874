// The batch path's crypto helpers must produce exactly what the stream path
// produces, so that readers (ItemReader, ChunkCipher::Open) cannot tell them
// apart.
#include "daemon/crypto/aead.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace shredd {
namespace {

// SealWithKey's nonces come from a per-thread buffer of random bytes: every
// nonce must still be new, across refills and threads.
std::string NonceOf(const std::string& sealed) { return sealed.substr(0, 24); }

TEST(SealWithKeyTest, NoncesAreNeverReusedAcrossRefillsAndThreads) {
  SecretBytes key = SecretBytes::Random(kKeySize);
  constexpr int kThreads = 4, kEach = 2000;  // ~12 refills per thread
  std::vector<std::vector<std::string>> nonces(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) nonces[t].push_back(NonceOf(SealWithKey(key, std::string_view("x"), "ad")));
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : nonces) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  auto opened = OpenData(key, SealWithKey(key, std::string_view("x"), "ad"), "ad");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "x");
}

// A forked child must not hand out the nonces its parent still holds.
TEST(SealWithKeyTest, AForkedChildDoesNotRepeatItsParentsNonces) {
  SecretBytes key = SecretBytes::Random(kKeySize);
  (void)SealWithKey(key, std::string_view("x"), "ad");  // the buffer is filled
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string n = NonceOf(SealWithKey(key, std::string_view("x"), "ad"));
    _exit(write(fds[1], n.data(), n.size()) == 24 ? 0 : 1);
  }
  close(fds[1]);
  const std::string parent = NonceOf(SealWithKey(key, std::string_view("x"), "ad"));
  std::string child(24, '\0');
  EXPECT_EQ(read(fds[0], child.data(), child.size()), 24);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(child, parent);
}

TEST(ChunkSealerTest, MatchesChunkCipherAcrossKeysAndItems) {
  ChunkSealer sealer;  // one context for many items, as in ItemStore::PutBatch
  for (int round = 0; round < 4; ++round) {
    SecretBytes key = SecretBytes::Random(kKeySize);
    const std::string object_id(16, static_cast<char>('a' + round));
    const std::string plain(round == 3 ? 0 : 1000 + round, static_cast<char>(round));
    ChunkCipher cipher(key, object_id, plain.size());
    std::string from_cipher, from_sealer;
    cipher.Seal(0, plain, &from_cipher);
    sealer.Seal(key, object_id, plain.size(), 0, plain, &from_sealer);
    EXPECT_EQ(from_cipher, from_sealer);
    std::string opened;
    ASSERT_TRUE(cipher.Open(0, from_sealer, &opened).ok());
    EXPECT_EQ(opened, plain);
  }
}

// The upload pipeline seals runs of one chunk out of place, in pieces of any
// size: the result must be Seal()'s, byte for byte.
TEST(ChunkCipherTest, SealingInPiecesOutOfPlaceMatchesSeal) {
  SecretBytes key = SecretBytes::Random(kKeySize);
  const std::string object_id(16, 'o');
  std::string plain(100000, '\0');
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>(i * 7 + i / 251);
  ChunkCipher cipher(key, object_id, plain.size());
  std::string whole;
  cipher.Seal(3, plain, &whole);
  std::string pieces(plain.size(), '\0');
  cipher.BeginSeal(3);
  for (size_t at = 0, step = 1; at < plain.size(); at += step, step = step * 2 + 1) {
    step = std::min(step, plain.size() - at);
    cipher.SealTo(plain.data() + at, pieces.data() + at, step);
  }
  std::string tag(kChunkTagSize, '\0');
  cipher.FinishSeal(reinterpret_cast<uint8_t*>(tag.data()));
  EXPECT_TRUE(pieces + tag == whole);
}

// Downloads open each chunk from the blob's read buffer into the buffer
// handed to gRPC (OpenTo), or in place: both give Open()'s plaintext, and a
// chunk that does not authenticate leaves only zeros behind.
TEST(ChunkCipherTest, OpenToOutOfPlaceAndInPlace) {
  SecretBytes key = SecretBytes::Random(kKeySize);
  ChunkCipher cipher(key, std::string(16, 'o'), 5000);
  std::string plain(5000, '\0');
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>(i * 13 + 1);
  std::string sealed;
  cipher.Seal(2, plain, &sealed);
  std::string out(plain.size(), 'z');
  ASSERT_TRUE(cipher.OpenTo(2, sealed, out.data()).ok());
  EXPECT_TRUE(out == plain);
  std::string in_place = sealed;
  ASSERT_TRUE(cipher.OpenTo(2, in_place, in_place.data()).ok());
  EXPECT_TRUE(in_place.substr(0, plain.size()) == plain);
  // Wrong index, then one altered byte: DATA_LOSS and zeros.
  out.assign(plain.size(), 'z');
  EXPECT_EQ(cipher.OpenTo(3, sealed, out.data()).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(out, std::string(plain.size(), '\0'));
  sealed[100] ^= 1;
  out.assign(plain.size(), 'z');
  EXPECT_EQ(cipher.OpenTo(2, sealed, out.data()).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(out, std::string(plain.size(), '\0'));
  EXPECT_EQ(cipher.OpenTo(2, sealed.substr(0, kChunkTagSize - 1), out.data()).code(), absl::StatusCode::kDataLoss);
}

TEST(ChunkSealerTest, BindsObjectIdAndSize) {
  ChunkSealer sealer;
  SecretBytes key = SecretBytes::Random(kKeySize);
  const std::string plain = "photo bytes";
  std::string sealed;
  sealer.Seal(key, std::string(16, 'x'), plain.size(), 0, plain, &sealed);
  std::string out;
  EXPECT_FALSE(ChunkCipher(key, std::string(16, 'y'), plain.size()).Open(0, sealed, &out).ok());
  EXPECT_FALSE(ChunkCipher(key, std::string(16, 'x'), plain.size() + 1).Open(0, sealed, &out).ok());
  EXPECT_TRUE(ChunkCipher(key, std::string(16, 'x'), plain.size()).Open(0, sealed, &out).ok());
}

TEST(DeriveSubkeyTest, IntoMatchesAllocatingVersion) {
  SecretBytes dek = SecretBytes::Random(kKeySize);
  SecretBytes into(kKeySize);
  for (Subkey which : {Subkey::kContent, Subkey::kMetadata, Subkey::kIndex}) {
    DeriveSubkeyInto(dek, which, into.mutable_span());
    SecretBytes allocated = DeriveSubkey(dek, which);
    EXPECT_EQ(0, sodium_memcmp(into.data(), allocated.data(), kKeySize));
  }
}

}  // namespace
}  // namespace shredd
