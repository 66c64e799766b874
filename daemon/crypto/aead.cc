#include "daemon/crypto/aead.h"

#include <pthread.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kNonce + kTag == kWrapOverhead);

const unsigned char* U(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Random nonces for XChaCha20-Poly1305, taken from a per-thread buffer that
// one randombytes_buf call (one getrandom(2)) refills every 170 nonces: the
// batch path seals three records per item, and a getrandom per seal was 5 %
// of the daemon's CPU in an ingest (docs/PERFORMANCE.md). Nonces are public,
// so the buffer needs no secure memory; each byte is handed out once. A
// forked child starts with a copy of its parent's buffer, so a fork empties
// it (the generation check) lest parent and child hand out the same nonces.
std::atomic<uint64_t> fork_generation{0};

void RandomNonce(unsigned char* out) {
  struct Pool {
    std::array<unsigned char, kNonce * 170> bytes;
    size_t used = sizeof bytes;
    uint64_t generation = 0;
  };
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  thread_local Pool pool;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (pool.used == pool.bytes.size() || pool.generation != generation) {
    randombytes_buf(pool.bytes.data(), pool.bytes.size());
    pool.used = 0;
    pool.generation = generation;
  }
  std::memcpy(out, pool.bytes.data() + pool.used, kNonce);
  sodium_memzero(pool.bytes.data() + pool.used, kNonce);
  pool.used += kNonce;
}

// Opens into caller-provided memory of size sealed.size() - overhead.
absl::Status OpenInto(KeyView key, std::string_view sealed, std::string_view ad, unsigned char* out) {
  if (key.size() != kKeySize) return absl::InternalError("key of wrong size");
  if (sealed.size() < kWrapOverhead) {
    return absl::DataLossError("sealed record is shorter than its nonce and tag");
  }
  unsigned long long out_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &out_len, nullptr, U(sealed) + kNonce, sealed.size() - kNonce,
                                                 U(ad), ad.size(), U(sealed), key.data()) != 0) {
    return absl::DataLossError("sealed record does not authenticate (altered or wrong key)");
  }
  return absl::OkStatus();
}
}  // namespace

std::string SealWithKey(KeyView key, std::span<const uint8_t> plaintext, std::string_view ad) {
  std::string out(kNonce + plaintext.size() + kTag, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  RandomNonce(o);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(o + kNonce, &clen, plaintext.data(), plaintext.size(), U(ad), ad.size(),
                                             nullptr, o, key.data());
  return out;
}

absl::StatusOr<SecretBytes> OpenSecret(KeyView key, std::string_view sealed, std::string_view ad) {
  if (sealed.size() < kWrapOverhead) {
    return absl::DataLossError("wrapped key is shorter than its nonce and tag");
  }
  SecretBytes out(sealed.size() - kWrapOverhead);
  if (auto s = OpenInto(key, sealed, ad, out.data()); !s.ok()) return s;
  return out;
}

absl::Status OpenSecretInto(KeyView key, std::string_view sealed, std::string_view ad, std::span<uint8_t> out) {
  if (sealed.size() != out.size() + kWrapOverhead) {
    return absl::DataLossError("wrapped key has the wrong size");
  }
  return OpenInto(key, sealed, ad, out.data());
}

absl::StatusOr<std::string> OpenData(KeyView key, std::string_view sealed, std::string_view ad) {
  if (sealed.size() < kWrapOverhead) {
    return absl::DataLossError("sealed record is shorter than its nonce and tag");
  }
  std::string out(sealed.size() - kWrapOverhead, '\0');
  if (auto s = OpenInto(key, sealed, ad, reinterpret_cast<unsigned char*>(out.data())); !s.ok()) {
    return s;
  }
  return out;
}

SecretBytes DeriveSubkey(KeyView dek, Subkey which) {
  SecretBytes out(kKeySize);
  crypto_kdf_derive_from_key(out.data(), out.size(), static_cast<uint64_t>(which), "shreddv1", dek.data());
  return out;
}

void DeriveSubkeyInto(KeyView dek, Subkey which, std::span<uint8_t> out) {
  crypto_kdf_derive_from_key(out.data(), out.size(), static_cast<uint64_t>(which), "shreddv1", dek.data());
}

ChunkCipher::ChunkCipher(KeyView content_key, std::string_view object_id, uint64_t total_size)
    : enc_(EVP_CIPHER_CTX_new()), dec_(EVP_CIPHER_CTX_new()), object_id_(object_id), total_size_(total_size) {
  if (enc_ == nullptr || dec_ == nullptr ||
      EVP_EncryptInit_ex(enc_, EVP_aes_256_gcm(), nullptr, content_key.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(dec_, EVP_aes_256_gcm(), nullptr, content_key.data(), nullptr) != 1) {
    abort();
  }
}

ChunkCipher::~ChunkCipher() {
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
}

std::array<uint8_t, 32> ChunkCipher::AssociatedData(uint64_t index) const {
  std::array<uint8_t, 32> ad{};
  std::memcpy(ad.data(), object_id_.data(), std::min<size_t>(16, object_id_.size()));
  StoreBigEndian64(ad.data() + 16, index);
  StoreBigEndian64(ad.data() + 24, total_size_);
  return ad;
}

namespace {
std::array<uint8_t, 12> ChunkNonce(uint64_t index) {
  std::array<uint8_t, 12> iv{};
  StoreBigEndian64(iv.data() + 4, index);
  return iv;
}
}  // namespace

void ChunkCipher::Seal(uint64_t index, std::string_view plaintext, std::string* out) {
  auto iv = ChunkNonce(index);
  auto ad = AssociatedData(index);
  size_t base = out->size();
  out->resize(base + plaintext.size() + kChunkTagSize);
  auto* o = reinterpret_cast<unsigned char*>(out->data() + base);
  int len = 0;
  EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, iv.data());
  EVP_EncryptUpdate(enc_, nullptr, &len, ad.data(), ad.size());
  EVP_EncryptUpdate(enc_, o, &len, U(plaintext), static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(enc_, o + len, &len);
  EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, kChunkTagSize, o + plaintext.size());
}

ChunkSealer::ChunkSealer() : ctx_(EVP_CIPHER_CTX_new()) {
  if (ctx_ == nullptr || EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1) abort();
}

ChunkSealer::~ChunkSealer() { EVP_CIPHER_CTX_free(ctx_); }

void ChunkSealer::Seal(KeyView content_key, std::string_view object_id, uint64_t total_size, uint64_t index,
                       std::string_view plaintext, std::string* out) {
  auto iv = ChunkNonce(index);
  std::array<uint8_t, 32> ad{};
  std::memcpy(ad.data(), object_id.data(), std::min<size_t>(16, object_id.size()));
  StoreBigEndian64(ad.data() + 16, index);
  StoreBigEndian64(ad.data() + 24, total_size);
  size_t base = out->size();
  out->resize(base + plaintext.size() + kChunkTagSize);
  auto* o = reinterpret_cast<unsigned char*>(out->data() + base);
  int len = 0;
  if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, content_key.data(), iv.data()) != 1) abort();
  EVP_EncryptUpdate(ctx_, nullptr, &len, ad.data(), ad.size());
  EVP_EncryptUpdate(ctx_, o, &len, U(plaintext), static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(ctx_, o + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kChunkTagSize, o + plaintext.size());
}

absl::Status ChunkCipher::Open(uint64_t index, std::string_view sealed, std::string* out) {
  if (sealed.size() < kChunkTagSize) {
    return absl::DataLossError(StrCat("chunk ", index, " is truncated"));
  }
  const size_t base = out->size();
  out->resize(base + sealed.size() - kChunkTagSize);
  absl::Status s = OpenTo(index, sealed, out->data() + base);
  if (!s.ok()) out->resize(base);
  return s;
}

absl::Status ChunkCipher::OpenTo(uint64_t index, std::string_view sealed, char* out) {
  if (sealed.size() < kChunkTagSize) {
    return absl::DataLossError(StrCat("chunk ", index, " is truncated"));
  }
  const size_t plen = sealed.size() - kChunkTagSize;
  auto iv = ChunkNonce(index);
  auto ad = AssociatedData(index);
  auto* o = reinterpret_cast<unsigned char*>(out);
  int len = 0;
  EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, iv.data());
  EVP_DecryptUpdate(dec_, nullptr, &len, ad.data(), ad.size());
  EVP_DecryptUpdate(dec_, o, &len, U(sealed), static_cast<int>(plen));
  // The tag follows the ciphertext: the plaintext does not overwrite it,
  // also when opened in place.
  EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, kChunkTagSize, const_cast<char*>(sealed.data() + plen));
  unsigned char none[16];
  if (EVP_DecryptFinal_ex(dec_, none, &len) != 1) {
    sodium_memzero(out, plen);
    return absl::DataLossError(StrCat("chunk ", index, " does not authenticate: stored ciphertext was altered"));
  }
  return absl::OkStatus();
}

void ChunkCipher::BeginSeal(uint64_t index) {
  auto iv = ChunkNonce(index);
  auto ad = AssociatedData(index);
  int len = 0;
  EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, iv.data());
  EVP_EncryptUpdate(enc_, nullptr, &len, ad.data(), ad.size());
}

void ChunkCipher::SealInPlace(char* data, size_t size) { SealTo(data, data, size); }

void ChunkCipher::SealTo(const char* in, char* out, size_t size) {
  const auto* i = reinterpret_cast<const unsigned char*>(in);
  auto* o = reinterpret_cast<unsigned char*>(out);
  while (size > 0) {  // EVP lengths are int
    int n = static_cast<int>(std::min<size_t>(size, size_t{1} << 30));
    int len = 0;
    EVP_EncryptUpdate(enc_, o, &len, i, n);
    i += n;
    o += n;
    size -= static_cast<size_t>(n);
  }
}

void ChunkCipher::FinishSeal(uint8_t* tag) {
  unsigned char none[16];
  int len = 0;
  EVP_EncryptFinal_ex(enc_, none, &len);  // GCM: no output
  EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, kChunkTagSize, tag);
}

}  // namespace shredd
