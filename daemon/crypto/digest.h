// Content digests: "sha256:<64 lowercase hex>" of the plaintext, plus size.
#ifndef SHREDD_DAEMON_CRYPTO_DIGEST_H_
#define SHREDD_DAEMON_CRYPTO_DIGEST_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include <openssl/evp.h>

namespace shredd {

using Sha256 = std::array<uint8_t, 32>;

struct ContentDigest {
  Sha256 hash{};
  uint64_t size = 0;

  // "sha256:<hex>".
  std::string HashString() const;
  bool operator==(const ContentDigest&) const = default;
};

// Parses "sha256:<64 lowercase hex>". INVALID_ARGUMENT naming the problem
// (wrong prefix, wrong length, non-hex or upper-case characters) otherwise.
absl::StatusOr<Sha256> ParseDigestHash(std::string_view text);

std::string HexEncode(std::span<const uint8_t> bytes);
inline std::string HexEncode(std::string_view bytes) {
  return HexEncode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}
// `bytes` random bytes (libsodium's CSPRNG), in lowercase hex: the one home
// for salts and unguessable names.
std::string RandomHex(size_t bytes);
// Lowercase or uppercase hex to bytes; nullopt if malformed.
std::optional<std::string> HexDecode(std::string_view hex);

// Streaming SHA-256 over OpenSSL's libcrypto (SHA-NI where the CPU has it).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view bytes);
  // Returns the digest; the hasher must not be used afterwards.
  Sha256 Finish();
  // The digest of what was fed so far; the hasher goes on (more Update,
  // then Finish). Lets one pass give the digest of a prefix and of the
  // whole, e.g. a body's checksum and the body-with-checksum's digest.
  Sha256 Peek() const;

  static Sha256 Of(std::string_view bytes);

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_CRYPTO_DIGEST_H_
