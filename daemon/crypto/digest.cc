#include "daemon/crypto/digest.h"

#include <sodium.h>

#include "daemon/base/strings.h"
#include "formats/encoding.h"
#include "formats/text.h"

namespace shredd {
namespace {
constexpr std::string_view kPrefix = "sha256:";
constexpr char kHex[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

std::string HexEncode(std::span<const uint8_t> bytes) { return verify::HexEncode(bytes); }

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string out = HexEncode(raw);
  sodium_memzero(raw.data(), raw.size());
  return out;
}

std::optional<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    auto v = [](char c) {
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return HexValue(c);
    };
    int hi = v(hex[2 * i]), lo = v(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string ContentDigest::HashString() const { return StrCat(kPrefix, HexEncode(hash)); }

absl::StatusOr<Sha256> ParseDigestHash(std::string_view text) {
  if (!text.starts_with(kPrefix)) {
    return absl::InvalidArgumentError(StrCat("malformed digest ", verify::QuoteText(text, 80),
                                             ": expected \"sha256:\" followed by 64 lowercase hex characters"));
  }
  std::string_view hex = text.substr(kPrefix.size());
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(StrCat("malformed digest ", verify::QuoteText(text, 80),
                                             ": expected 64 hex characters after \"sha256:\", got ", hex.size()));
  }
  Sha256 out;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(StrCat("malformed digest ", verify::QuoteText(text, 80),
                                               ": only lowercase hex characters [0-9a-f] are allowed"));
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    abort();  // out of memory or a broken libcrypto: nothing sane to do
  }
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

void Sha256Hasher::Update(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }

Sha256 Sha256Hasher::Finish() {
  Sha256 out;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, out.data(), &len);
  return out;
}

Sha256 Sha256Hasher::Peek() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  if (copy == nullptr || EVP_MD_CTX_copy_ex(copy, ctx_) != 1) abort();  // out of memory
  Sha256 out;
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, out.data(), &len);
  EVP_MD_CTX_free(copy);
  return out;
}

Sha256 Sha256Hasher::Of(std::string_view bytes) {
  Sha256Hasher h;
  h.Update(bytes);
  return h.Finish();
}

}  // namespace shredd
