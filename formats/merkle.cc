#include "formats/merkle.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <openssl/evp.h>

#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;

namespace {

// OpenSSL 3 re-fetches the implementation on every EVP_DigestInit_ex() with
// EVP_sha256(); fetch it once and reuse one context per thread instead.
const EVP_MD* Sha256Md() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? static_cast<const EVP_MD*>(fetched) : EVP_sha256();
  }();
  return md;
}

struct CtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

EVP_MD_CTX* ThreadCtx() {
  thread_local std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
  return ctx.get();
}

// SHA-256(prefix || data). prefix may be empty.
Hash Digest(std::string_view prefix, std::string_view data) {
  Hash out;
  EVP_MD_CTX* ctx = ThreadCtx();
  unsigned int len = 0;
  // These calls only fail on allocation failure or a broken OpenSSL install;
  // a wrong hash would be worse than stopping.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, prefix.data(), prefix.size()) != 1 ||
      EVP_DigestUpdate(ctx, data.data(), data.size()) != 1 || EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 ||
      len != out.size()) {
    std::abort();
  }
  return out;
}

// Largest power of two strictly smaller than n. Requires n >= 2.
uint64_t SplitPoint(uint64_t n) {
  uint64_t k = 1;
  while (k < n - k) k <<= 1;  // k * 2 < n, written without overflow
  return k;
}

// SUBPROOF(m, D[n], b) from RFC 9162 2.1.4.1, appending to `out`.
void SubProof(uint64_t m, std::span<const Hash> d, bool b, std::vector<Hash>& out) {
  const uint64_t n = d.size();
  if (m == n) {
    if (!b) out.push_back(RootFromLeafHashes(d));
    return;
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    SubProof(m, d.subspan(0, k), b, out);
    out.push_back(RootFromLeafHashes(d.subspan(k)));
  } else {
    SubProof(m - k, d.subspan(k), false, out);
    out.push_back(RootFromLeafHashes(d.subspan(0, k)));
  }
}

std::string Short(const Hash& h) { return HexEncode(h).substr(0, 16) + ".."; }

}  // namespace

Hash Sha256(std::string_view data) { return Digest({}, data); }

absl::StatusOr<Hash> ParseHash(std::string_view hex) {
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(Cat("hash must be 64 lowercase hex characters, got ", hex.size()));
  }
  absl::StatusOr<std::string> raw = HexDecode(hex);
  if (!raw.ok()) return raw.status();
  Hash h;
  std::memcpy(h.data(), raw->data(), h.size());
  return h;
}

Hash LeafHash(std::string_view leaf_input) { return Digest(std::string_view("\x00", 1), leaf_input); }

Hash NodeHash(const Hash& left, const Hash& right) {
  char buf[1 + 2 * 32];
  buf[0] = 0x01;
  std::memcpy(buf + 1, left.data(), 32);
  std::memcpy(buf + 33, right.data(), 32);
  return Digest({}, std::string_view(buf, sizeof(buf)));
}

Hash EmptyRoot() { return Sha256({}); }

Hash RootFromLeafHashes(std::span<const Hash> leaf_hashes) {
  if (leaf_hashes.empty()) return EmptyRoot();
  // Pairwise reduction level by level; a lone last node moves up unchanged.
  // This equals the recursive MTH definition for every n.
  std::vector<Hash> level(leaf_hashes.begin(), leaf_hashes.end());
  while (level.size() > 1) {
    size_t out = 0;
    for (size_t i = 0; i < level.size(); i += 2) {
      level[out++] = i + 1 < level.size() ? NodeHash(level[i], level[i + 1]) : level[i];
    }
    level.resize(out);
  }
  return level.front();
}

std::vector<Hash> InclusionProof(std::span<const Hash> leaf_hashes, uint64_t index) {
  if (index >= leaf_hashes.size()) return {};
  return MerkleTree(std::vector<Hash>(leaf_hashes.begin(), leaf_hashes.end())).InclusionProof(index);
}

std::vector<Hash> ConsistencyProof(std::span<const Hash> leaf_hashes, uint64_t m) {
  std::vector<Hash> proof;
  if (m == 0 || m >= leaf_hashes.size()) return proof;
  SubProof(m, leaf_hashes, /*b=*/true, proof);
  return proof;
}

absl::StatusOr<Hash> RootFromInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                                       std::span<const Hash> proof) {
  if (index >= size) {
    return absl::InvalidArgumentError(Cat("leaf index ", index, " is outside a tree of size ", size));
  }
  // RFC 9162 2.1.3.2.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) {
      return absl::InvalidArgumentError(Cat("inclusion proof has too many hashes (", proof.size(), ") for leaf ", index,
                                            " of a tree of size ", size));
    }
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) {
    return absl::InvalidArgumentError(
        Cat("inclusion proof has too few hashes (", proof.size(), ") for leaf ", index, " of a tree of size ", size));
  }
  return r;
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash, std::span<const Hash> proof,
                             const Hash& root) {
  absl::StatusOr<Hash> computed = RootFromInclusion(index, size, leaf_hash, proof);
  if (!computed.ok()) return computed.status();
  if (*computed != root) {
    return absl::InvalidArgumentError(Cat("inclusion proof for leaf ", index, " of tree size ", size, " leads to root ",
                                          Short(*computed), ", expected ", Short(root)));
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t m, uint64_t n, const Hash& root_m, const Hash& root_n,
                               std::span<const Hash> proof) {
  if (m > n) {
    return absl::InvalidArgumentError(Cat("tree cannot shrink: old size ", m, " > new size ", n));
  }
  if (m == n || m == 0) {
    if (!proof.empty()) {
      return absl::InvalidArgumentError(
          Cat("consistency proof from size ", m, " to ", n, " must be empty, has ", proof.size(), " hashes"));
    }
    if (m == 0 && root_m != EmptyRoot()) {
      return absl::InvalidArgumentError("root of the empty tree is not SHA-256(\"\")");
    }
    if (m == n && root_m != root_n) {
      return absl::InvalidArgumentError(
          Cat("trees of equal size ", m, " have different roots ", Short(root_m), " and ", Short(root_n)));
    }
    return absl::OkStatus();
  }
  if (proof.empty()) {
    return absl::InvalidArgumentError(Cat("consistency proof from size ", m, " to ", n, " is empty"));
  }
  // RFC 9162 2.1.4.2. Step 1: if m is a power of two, root_m starts the path.
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  if ((m & (m - 1)) == 0) path.push_back(root_m);
  path.insert(path.end(), proof.begin(), proof.end());

  uint64_t fn = m - 1;
  uint64_t sn = n - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) {
      return absl::InvalidArgumentError(
          Cat("consistency proof from size ", m, " to ", n, " has too many hashes (", proof.size(), ")"));
    }
    if ((fn & 1) == 1 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) {
    return absl::InvalidArgumentError(
        Cat("consistency proof from size ", m, " to ", n, " has too few hashes (", proof.size(), ")"));
  }
  if (fr != root_m) {
    return absl::InvalidArgumentError(
        Cat("consistency proof yields old root ", Short(fr), ", expected ", Short(root_m)));
  }
  if (sr != root_n) {
    return absl::InvalidArgumentError(
        Cat("consistency proof yields new root ", Short(sr), ", expected ", Short(root_n)));
  }
  return absl::OkStatus();
}

MerkleTree::MerkleTree(std::vector<Hash> leaf_hashes) {
  levels_.push_back(std::move(leaf_hashes));
  while (levels_.back().size() > 1) {
    const std::vector<Hash>& below = levels_.back();
    std::vector<Hash> above;
    above.reserve((below.size() + 1) / 2);
    for (size_t i = 0; i < below.size(); i += 2) {
      above.push_back(i + 1 < below.size() ? NodeHash(below[i], below[i + 1]) : below[i]);
    }
    levels_.push_back(std::move(above));
  }
  root_ = levels_.back().empty() ? EmptyRoot() : levels_.back().front();
}

std::vector<Hash> MerkleTree::InclusionProof(uint64_t index) const {
  std::vector<Hash> proof;
  if (index >= size()) return proof;
  for (size_t level = 0; level + 1 < levels_.size(); ++level) {
    const uint64_t sibling = index ^ 1;
    if (sibling < levels_[level].size()) {
      proof.push_back(levels_[level][sibling]);
    }
    index >>= 1;
  }
  return proof;
}

}  // namespace shredd::verify
