// Authenticated encryption used by the store and the key tree.
//
//  * Key wrapping and metadata: libsodium XChaCha20-Poly1305-IETF with a random
//    192-bit nonce (safe to use a key for many messages). Output layout:
//    nonce(24) || ciphertext || tag(16).
//  * Content chunks: AES-256-GCM (OpenSSL libcrypto, AES-NI) under a per-item
//    content key. The 96-bit nonce is the chunk index; this is safe because a
//    content key encrypts exactly one immutable item, once. Every chunk is bound
//    to the item's object id, its index and the item's total size, so chunks
//    cannot be swapped, reordered, or the item truncated without detection.
#ifndef SHREDD_DAEMON_CRYPTO_AEAD_H_
#define SHREDD_DAEMON_CRYPTO_AEAD_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include <openssl/evp.h>

#include "daemon/base/secret.h"

namespace shredd {

inline constexpr size_t kKeySize = 32;
inline constexpr size_t kWrapOverhead = 24 + 16;
inline constexpr size_t kChunkTagSize = 16;

// Encrypts `plaintext` under `key` (32 bytes), bound to `ad`.
// A borrowed 32-byte key (from SecretBytes or a SecretKeyPool slot).
using KeyView = std::span<const uint8_t>;

std::string SealWithKey(KeyView key, std::span<const uint8_t> plaintext, std::string_view ad);
inline std::string SealWithKey(KeyView key, std::string_view plaintext, std::string_view ad) {
  return SealWithKey(key, {reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size()}, ad);
}
// Decrypts into secure memory. DATA_LOSS if the record was altered or `ad` differs.
absl::StatusOr<SecretBytes> OpenSecret(KeyView key, std::string_view sealed, std::string_view ad);
// Decrypts a sealed key of exactly out.size() bytes into `out` (secure
// memory the caller owns, e.g. a slice of a SecretBytes arena). DATA_LOSS if
// it was altered, `ad` differs or the size does not match.
absl::Status OpenSecretInto(KeyView key, std::string_view sealed, std::string_view ad, std::span<uint8_t> out);
// Decrypts non-key data (e.g. metadata). DATA_LOSS on any alteration.
absl::StatusOr<std::string> OpenData(KeyView key, std::string_view sealed, std::string_view ad);

// Subkeys of an item's data key (DEK): one for content, one for metadata.
enum class Subkey : uint64_t { kContent = 1, kMetadata = 2, kIndex = 3 };
SecretBytes DeriveSubkey(KeyView dek, Subkey which);
// Same, into caller-owned secure memory (32 bytes, e.g. a slice of a
// SecretBytes arena): the batch path derives thousands of subkeys and cannot
// afford a sodium_malloc (mmap + mprotect + mlock) for each.
void DeriveSubkeyInto(KeyView dek, Subkey which, std::span<uint8_t> out);

// Chunked content encryption for one item.
class ChunkCipher {
 public:
  // `content_key` is the item's content subkey; `object_id` its 16-byte id.
  ChunkCipher(KeyView content_key, std::string_view object_id, uint64_t total_size);
  ~ChunkCipher();
  ChunkCipher(const ChunkCipher&) = delete;
  ChunkCipher& operator=(const ChunkCipher&) = delete;

  // Appends ciphertext || tag of chunk `index` to *out.
  void Seal(uint64_t index, std::string_view plaintext, std::string* out);
  // Appends the plaintext of chunk `index` to *out. DATA_LOSS if it does not
  // authenticate (altered bytes, wrong index, wrong item, wrong size).
  absl::Status Open(uint64_t index, std::string_view sealed, std::string* out);

  // Streaming, in-place sealing of chunk `index` for large uploads: the
  // chunk's plaintext may arrive in several runs. BeginSeal, then SealInPlace
  // for each run (its bytes are replaced by ciphertext, so no plaintext is
  // left behind), then FinishSeal writes the 16-byte tag. The result is
  // byte-identical to Seal() of the whole chunk.
  void BeginSeal(uint64_t index);
  void SealInPlace(char* data, size_t size);
  // The same, writing the ciphertext of `in` to `out` (which may equal `in`).
  void SealTo(const char* in, char* out, size_t size);
  void FinishSeal(uint8_t* tag);
  // Opens chunk `index` from `sealed` (ciphertext || tag) into `out`
  // (sealed.size() - 16 bytes; may be sealed.data() itself: in place).
  // DATA_LOSS if it does not authenticate; then those bytes are zeroed
  // (nothing unauthenticated is left readable).
  absl::Status OpenTo(uint64_t index, std::string_view sealed, char* out);

 private:
  std::array<uint8_t, 32> AssociatedData(uint64_t index) const;

  EVP_CIPHER_CTX* enc_;
  EVP_CIPHER_CTX* dec_;
  std::string object_id_;
  uint64_t total_size_;
};

// Seals single chunks of many different items with one OpenSSL context (the
// batch path: one ChunkCipher per 1 KiB item costs two context allocations and
// two key schedules). Output is byte-identical to ChunkCipher::Seal with the
// same key, object id and total size. The context's key schedule is cleansed
// when the sealer is destroyed.
class ChunkSealer {
 public:
  ChunkSealer();
  ~ChunkSealer();
  ChunkSealer(const ChunkSealer&) = delete;
  ChunkSealer& operator=(const ChunkSealer&) = delete;
  void Seal(KeyView content_key, std::string_view object_id, uint64_t total_size, uint64_t index,
            std::string_view plaintext, std::string* out);

 private:
  EVP_CIPHER_CTX* ctx_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_CRYPTO_AEAD_H_
