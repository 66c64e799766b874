#include "formats/tiles.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>

#include "formats/encoding.h"
#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;

namespace {

constexpr size_t kHashBytes = 32;

// Largest power of two strictly smaller than n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

// The root of a perfect subtree whose leaves are the 2^k hashes in `data`.
Hash PerfectRoot(std::string_view data) {
  Hash h;
  if (data.size() == kHashBytes) {
    std::memcpy(h.data(), data.data(), kHashBytes);
    return h;
  }
  const size_t half = data.size() / 2;
  return NodeHash(PerfectRoot(data.substr(0, half)), PerfectRoot(data.substr(half)));
}

}  // namespace

std::string TileIndexPath(uint64_t n) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%03u", static_cast<unsigned>(n % 1000));
  std::string out = buf;
  while (n >= 1000) {
    n /= 1000;
    std::snprintf(buf, sizeof(buf), "x%03u/", static_cast<unsigned>(n % 1000));
    out.insert(0, buf);
  }
  return out;
}

std::string HashTilePath(int level, uint64_t n, unsigned width) {
  std::string p = Cat("tile/", level, "/", TileIndexPath(n));
  if (width < kTileWidth) p += Cat(".p/", width);
  return p;
}

std::string EntryBundlePath(uint64_t n, unsigned width) {
  std::string p = Cat("tile/entries/", TileIndexPath(n));
  if (width < kTileWidth) p += Cat(".p/", width);
  return p;
}

unsigned TileWidthAt(int level, uint64_t n, uint64_t tree_size) {
  if (level < 0 || level * kTileHeight >= 64) return 0;
  const uint64_t count = tree_size >> (kTileHeight * level);  // hashes at this level
  const uint64_t start = n * kTileWidth;
  if (n > (UINT64_MAX / kTileWidth) || start >= count) return 0;
  return static_cast<unsigned>(std::min<uint64_t>(kTileWidth, count - start));
}

std::vector<TileRef> TilesToPublish(uint64_t old_size, uint64_t new_size) {
  std::vector<TileRef> out;
  if (new_size <= old_size) return out;
  for (int level = 0; level * kTileHeight < 64; ++level) {
    const uint64_t cn = new_size >> (kTileHeight * level);
    const uint64_t cm = old_size >> (kTileHeight * level);
    if (cn == 0 || cn == cm) break;  // higher levels cannot have changed either
    for (uint64_t t = cm / kTileWidth; t <= (cn - 1) / kTileWidth; ++t) {
      out.push_back(TileRef{level, t, TileWidthAt(level, t, new_size)});
    }
  }
  return out;
}

absl::StatusOr<std::string> EncodeEntryBundle(std::span<const std::string> entries) {
  size_t total = 0;
  for (const std::string& e : entries) total += 2 + e.size();
  std::string out;
  out.reserve(total);
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& e = entries[i];
    if (e.size() > kMaxBundleEntryBytes) {
      return absl::InvalidArgumentError(Cat("entry ", i, " of the bundle is ", e.size(),
                                            " bytes; an entry bundle holds entries of at most 65535 bytes"));
    }
    out.push_back(static_cast<char>(e.size() >> 8));
    out.push_back(static_cast<char>(e.size() & 0xff));
    out += e;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseEntryBundle(std::string_view bundle, size_t expected) {
  std::vector<std::string> out;
  while (!bundle.empty()) {
    if (bundle.size() < 2) return absl::InvalidArgumentError("entry bundle is truncated in a length prefix");
    const size_t len = (static_cast<size_t>(static_cast<uint8_t>(bundle[0])) << 8) | static_cast<uint8_t>(bundle[1]);
    bundle.remove_prefix(2);
    if (bundle.size() < len) {
      return absl::InvalidArgumentError(Cat("entry bundle is truncated in entry ", out.size(), " (", len,
                                            " bytes announced, ", bundle.size(), " left)"));
    }
    out.emplace_back(bundle.substr(0, len));
    bundle.remove_prefix(len);
    if (out.size() > kTileWidth) return absl::InvalidArgumentError("entry bundle holds more than 256 entries");
  }
  if (expected != 0 && out.size() != expected) {
    return absl::InvalidArgumentError(Cat("entry bundle holds ", out.size(), " entries, expected ", expected));
  }
  return out;
}

absl::StatusOr<std::string> TileHashes::Fetched(int level, uint64_t n) {
  const unsigned width = TileWidthAt(level, n, size_);
  if (width == 0) {
    return absl::OutOfRangeError(Cat("a tree of size ", size_, " has no tile ", level, "/", n));
  }
  const std::string path = HashTilePath(level, n, width);
  absl::StatusOr<std::string> data = fetch_(path);
  if (!data.ok() && absl::IsNotFound(data.status()) && width < kTileWidth) {
    // The partial tile may be gone once the full one exists (c2sp.org/tlog-tiles).
    absl::StatusOr<std::string> full = fetch_(HashTilePath(level, n, kTileWidth));
    if (full.ok() && full->size() == kTileWidth * kHashBytes) {
      data = full->substr(0, width * kHashBytes);
    }
  }
  if (!data.ok()) return data.status();
  if (data->size() != width * kHashBytes) {
    return absl::DataLossError(
        Cat("tile ", path, " is ", data->size(), " bytes, expected ", width * kHashBytes, " (", width, " hashes)"));
  }
  return data;
}

const std::string* TileHashes::Keep(int level, uint64_t n, std::string data) {
  if (tiles_.size() >= kMaxKeptTiles) {
    // Bounded memory: drop the full tiles (the partial ones, authenticated
    // together, stay). Dropped ones are fetched and authenticated again.
    std::erase_if(tiles_,
                  [this](const auto& t) { return TileWidthAt(t.first.first, t.first.second, size_) == kTileWidth; });
  }
  return &tiles_.insert_or_assign(std::make_pair(level, n), std::move(data)).first->second;
}

absl::Status TileHashes::AuthenticateRightEdge() {
  if (edge_authenticated_) return absl::OkStatus();
  // MTH(D[0:size]) is the hash of the perfect subtrees of the binary
  // decomposition of size, one per set bit, largest (leftmost) first. The
  // subtree of bit b (level b) lies in the rightmost tile of tile level
  // b / 8, which holds exactly the hashes of bits 8L .. 8L+7: every hash of
  // every partial tile goes into the root.
  std::map<int, std::string> edge;
  Hash root = EmptyRoot();
  bool any = false;
  for (int b = 0; b < 64; ++b) {
    if (((size_ >> b) & 1) == 0) continue;
    const int level = b / kTileHeight;
    const uint64_t first = (size_ >> (b + 1)) << (b + 1 - kTileHeight * level);  // at tile level `level`
    const uint64_t n = first / kTileWidth;
    auto it = edge.find(level);
    if (it == edge.end()) {
      auto data = Fetched(level, n);
      if (!data.ok()) return data.status();
      it = edge.emplace(level, *std::move(data)).first;
    }
    const size_t offset = (first % kTileWidth) * kHashBytes;
    const size_t len = (size_t{1} << (b % kTileHeight)) * kHashBytes;
    if (it->second.size() < offset + len) return absl::InternalError("tile arithmetic: subtree beyond its tile");
    const Hash h = PerfectRoot(std::string_view(it->second).substr(offset, len));
    root = any ? NodeHash(h, root) : h;
    any = true;
  }
  if (root != *root_) {
    std::string which;
    for (const auto& [level, data] : edge) {
      const uint64_t n = (size_ >> (kTileHeight * level)) / kTileWidth;
      which += Cat(which.empty() ? "" : ", ", HashTilePath(level, n, TileWidthAt(level, n, size_)));
    }
    return absl::DataLossError(Cat("the rightmost tiles of the tree of size ", size_, " (", which,
                                   ") do not match the checkpoint's root: their tree has root ", HexEncode(root),
                                   ", the checkpoint says ", HexEncode(*root_)));
  }
  for (auto& [level, data] : edge) {
    Keep(level, (size_ >> (kTileHeight * level)) / kTileWidth, std::move(data));
  }
  edge_authenticated_ = true;
  return absl::OkStatus();
}

absl::StatusOr<const std::string*> TileHashes::Tile(int level, uint64_t n) {
  auto it = tiles_.find({level, n});
  if (it != tiles_.end()) return &it->second;
  const unsigned width = TileWidthAt(level, n, size_);
  if (!root_) {
    auto data = Fetched(level, n);
    if (!data.ok()) return data.status();
    return Keep(level, n, *std::move(data));
  }
  if (width == 0) return Fetched(level, n).status();  // OUT_OF_RANGE
  if (width < kTileWidth) {
    // The rightmost tile of its level: authenticated by the root.
    if (auto s = AuthenticateRightEdge(); !s.ok()) return s;
    it = tiles_.find({level, n});
    if (it == tiles_.end()) return absl::InternalError("tile arithmetic: a partial tile off the right edge");
    return &it->second;
  }
  // A full tile: its root is the hash its parent holds for it (the parent,
  // one level up, is authenticated first; a full tile always has one).
  auto parent = Tile(level + 1, n / kTileWidth);
  if (!parent.ok()) return parent.status();
  const size_t offset = (n % kTileWidth) * kHashBytes;
  if ((*parent)->size() < offset + kHashBytes) return absl::InternalError("tile arithmetic: no parent hash");
  const Hash expected = PerfectRoot(std::string_view(**parent).substr(offset, kHashBytes));
  auto data = Fetched(level, n);
  if (!data.ok()) return data.status();
  const Hash got = PerfectRoot(*data);
  if (got != expected) {
    return absl::DataLossError(
        Cat(HashTilePath(level, n, width), " does not match the checkpoint's root: ", "its hashes have root ",
            HexEncode(got), ", its parent ",
            HashTilePath(level + 1, n / kTileWidth, TileWidthAt(level + 1, n / kTileWidth, size_)),
            " (authenticated) holds ", HexEncode(expected)));
  }
  return Keep(level, n, *std::move(data));
}

absl::StatusOr<Hash> TileHashes::SubtreeHash(int level, uint64_t index) {
  if (level < 0 || level >= 64 || ((index + 1) << level) > size_ || (index >> (63 - level)) != 0) {
    return absl::OutOfRangeError(Cat("subtree ", level, "/", index, " is not complete in a tree of size ", size_));
  }
  const int tile_level = level / kTileHeight;
  const int within = level % kTileHeight;
  const uint64_t first = index << within;  // first hash of tile level `tile_level`
  auto tile = Tile(tile_level, first / kTileWidth);
  if (!tile.ok()) return tile.status();
  const size_t offset = (first % kTileWidth) * kHashBytes;
  const size_t len = (size_t{1} << within) * kHashBytes;
  if ((*tile)->size() < offset + len) return absl::InternalError("tile arithmetic: subtree beyond its tile");
  return PerfectRoot(std::string_view(**tile).substr(offset, len));
}

absl::StatusOr<Hash> TileHashes::RangeHash(uint64_t lo, uint64_t hi) {
  const uint64_t n = hi - lo;
  if (std::has_single_bit(n)) {
    const int level = std::countr_zero(n);
    if (lo % n != 0) return absl::InternalError("tile hashes: unaligned subtree requested");
    return SubtreeHash(level, lo >> level);
  }
  const uint64_t k = SplitPoint(n);
  auto left = RangeHash(lo, lo + k);
  if (!left.ok()) return left;
  auto right = RangeHash(lo + k, hi);
  if (!right.ok()) return right;
  return NodeHash(*left, *right);
}

absl::StatusOr<Hash> TileHashes::Root() {
  if (root_) {
    if (auto s = AuthenticateRightEdge(); !s.ok()) return s;
    return *root_;
  }
  if (size_ == 0) return EmptyRoot();
  return RangeHash(0, size_);
}

absl::Status TileHashes::Path(uint64_t m, uint64_t lo, uint64_t hi, std::vector<Hash>* out) {
  const uint64_t n = hi - lo;
  if (n <= 1) return absl::OkStatus();
  const uint64_t k = SplitPoint(n);
  absl::StatusOr<Hash> sibling;
  if (m < k) {
    if (auto s = Path(m, lo, lo + k, out); !s.ok()) return s;
    sibling = RangeHash(lo + k, hi);
  } else {
    if (auto s = Path(m - k, lo + k, hi, out); !s.ok()) return s;
    sibling = RangeHash(lo, lo + k);
  }
  if (!sibling.ok()) return sibling.status();
  out->push_back(*sibling);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Hash>> TileHashes::InclusionProof(uint64_t index) {
  if (index >= size_) {
    return absl::OutOfRangeError(Cat("entry index ", index, " is beyond the log's tree size of ", size_));
  }
  std::vector<Hash> proof;
  if (auto s = Path(index, 0, size_, &proof); !s.ok()) return s;
  return proof;
}

absl::Status TileHashes::SubProof(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<Hash>* out) {
  const uint64_t n = hi - lo;
  if (m == n) {
    if (b) return absl::OkStatus();
    auto h = RangeHash(lo, hi);
    if (!h.ok()) return h.status();
    out->push_back(*h);
    return absl::OkStatus();
  }
  const uint64_t k = SplitPoint(n);
  absl::StatusOr<Hash> other;
  if (m <= k) {
    if (auto s = SubProof(m, lo, lo + k, b, out); !s.ok()) return s;
    other = RangeHash(lo + k, hi);
  } else {
    if (auto s = SubProof(m - k, lo + k, hi, false, out); !s.ok()) return s;
    other = RangeHash(lo, lo + k);
  }
  if (!other.ok()) return other.status();
  out->push_back(*other);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Hash>> TileHashes::ConsistencyProof(uint64_t m) {
  if (m > size_) return absl::OutOfRangeError(Cat("tree size ", m, " is beyond the log's tree size of ", size_));
  std::vector<Hash> proof;
  if (m == 0 || m == size_) return proof;
  if (auto s = SubProof(m, 0, size_, true, &proof); !s.ok()) return s;
  return proof;
}

}  // namespace shredd::verify
