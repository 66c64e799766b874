// C2SP tlog-tiles (c2sp.org/tlog-tiles): the static form of the
// transparency log, written by the daemon (daemon/log/tile_writer.h) and read
// by shredctl (log monitor / log verify --tiles). The one home of the path
// encoding and the tile arithmetic.
//
//   <prefix>/checkpoint                 the signed checkpoint (C2SP signed note)
//   <prefix>/tile/<L>/<N>[.p/<W>]       hash tile: W (full: 256) consecutive
//                                       hashes of tree level 8L, concatenated
//   <prefix>/tile/entries/<N>[.p/<W>]   entry bundle: the entries of level-0
//                                       tile N, each as a big-endian uint16
//                                       length followed by the entry's bytes
//
// <N> is written in zero-padded 3-digit path elements, all but the last
// prefixed with "x" (1234067 -> x001/x234/067). The n-th tile at level l
// holds MTH(D[(n*256+i) * 256^l : (n*256+i+1) * 256^l]) for i = 0..W-1; only
// the rightmost tile of a level is partial (1..255 hashes), and for a tree of
// size s it holds floor(s / 256^l) mod 256 hashes.
//
// Everything here is a pure function of its arguments and thread-safe,
// except TileHashes (one object per reader thread).
#ifndef SHREDD_FORMATS_TILES_H_
#define SHREDD_FORMATS_TILES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "formats/merkle.h"

namespace shredd::verify {

inline constexpr int kTileHeight = 8;
inline constexpr unsigned kTileWidth = 256;             // hashes in a full tile, entries in a full bundle
inline constexpr size_t kMaxBundleEntryBytes = 0xffff;  // the uint16 length prefix
inline constexpr std::string_view kCheckpointPath = "checkpoint";

// "000", "x001/x234/067".
std::string TileIndexPath(uint64_t n);
// "tile/<level>/<N>" for width 256, "tile/<level>/<N>.p/<width>" below.
// Requires 1 <= width <= 256.
std::string HashTilePath(int level, uint64_t n, unsigned width);
// "tile/entries/<N>[.p/<width>]".
std::string EntryBundlePath(uint64_t n, unsigned width);

// Number of hashes of tile (level, n) in a tree of `tree_size` leaves:
// 256 for a full tile, 1..255 for the rightmost partial one, 0 if the tree
// has no such tile.
unsigned TileWidthAt(int level, uint64_t n, uint64_t tree_size);

struct TileRef {
  int level = 0;
  uint64_t n = 0;
  unsigned width = 0;  // 1..256
  bool operator==(const TileRef&) const = default;
};

// The tiles to write when a published tree grows from `old_size` to
// `new_size` leaves: every tile that is new or wider, each at its width for
// new_size (full tiles once complete, the rightmost tile of each level as a
// partial one), level by level from 0. Empty if new_size <= old_size. The
// entry bundles to write are the level-0 tiles of the list.
std::vector<TileRef> TilesToPublish(uint64_t old_size, uint64_t new_size);

// A bundle of entries: each as a big-endian uint16 length and its bytes.
// INVALID_ARGUMENT if an entry is longer than kMaxBundleEntryBytes.
absl::StatusOr<std::string> EncodeEntryBundle(std::span<const std::string> entries);
// Splits a bundle into its entries. INVALID_ARGUMENT if it is truncated or
// (when `expected` is non-zero) does not hold exactly `expected` entries.
absl::StatusOr<std::vector<std::string>> ParseEntryBundle(std::string_view bundle, size_t expected = 0);

// Reads hashes of a tree of `tree_size` leaves from its tiles, fetched
// through `fetch` (a path relative to the prefix, e.g. "tile/0/000.p/7" ->
// the file's bytes; NOT_FOUND if there is none), and computes what a
// monitor needs from them: the root, RFC 9162 inclusion and consistency
// proofs. A partial tile that is gone (logs may delete a partial once the
// full tile exists) is read from the full tile instead.
//
// Given the tree's root (from a verified checkpoint), every tile is
// authenticated before any of its hashes is used, as Go's
// golang.org/x/mod/sumdb/tlog TileHashReader does: the rightmost (partial)
// tile of each level together must yield the root (every hash in them goes
// into it), and a full tile's own root must be the hash its parent tile
// (one level up, itself authenticated first) holds for it. So every hash
// returned, and every proof built, is the tree's own, and a proof that then
// fails to verify against another checkpoint proves the two trees differ,
// never that a tile was damaged. A tile that does not fit is DATA_LOSS
// naming it ("... do not match the checkpoint's root"). Without a root,
// nothing fetched is checked: compare Root() with a verified checkpoint, and
// check proofs with VerifyInclusion / VerifyConsistency.
//
// Tiles are fetched once each and kept, up to kMaxKeptTiles (2 MiB); beyond
// that the full ones are dropped and fetched (and authenticated) again when
// needed. A proof needs a few dozen. Errors: the fetcher's, or DATA_LOSS
// for a tile of the wrong length or (with a root) contents.
class TileHashes {
 public:
  using Fetch = std::function<absl::StatusOr<std::string>(const std::string& path)>;
  static constexpr size_t kMaxKeptTiles = 256;

  TileHashes(uint64_t tree_size, Fetch fetch) : size_(tree_size), fetch_(std::move(fetch)) {}
  // Every tile authenticated against `root`, the root of the tree of `tree_size`.
  TileHashes(uint64_t tree_size, const Hash& root, Fetch fetch)
      : size_(tree_size), root_(root), fetch_(std::move(fetch)) {}

  uint64_t tree_size() const { return size_; }
  size_t tiles_kept() const { return tiles_.size(); }
  // The hash of the complete subtree of 2^level leaves starting at leaf
  // index << level (level 0: a leaf hash). Requires (index + 1) << level <= tree_size().
  absl::StatusOr<Hash> SubtreeHash(int level, uint64_t index);
  // MTH(D[lo:hi]) for lo < hi <= tree_size(), lo a multiple of the largest
  // power of two >= hi - lo (every range RFC 9162's recursions visit).
  absl::StatusOr<Hash> RangeHash(uint64_t lo, uint64_t hi);
  // With a root: DATA_LOSS unless the rightmost tiles yield it.
  absl::StatusOr<Hash> Root();
  // PATH(index, D[tree_size]). OUT_OF_RANGE unless index < tree_size().
  absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index);
  // PROOF(m, D[tree_size]); empty when m == 0 or m == tree_size().
  // OUT_OF_RANGE if m > tree_size().
  absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t m);
  // The raw hashes of tile (level, n) at its width in this tree (with a
  // root: authenticated). Valid until the next call on this object.
  absl::StatusOr<const std::string*> Tile(int level, uint64_t n);

 private:
  // The tile's bytes, checked for length only.
  absl::StatusOr<std::string> Fetched(int level, uint64_t n);
  // Fetches the rightmost tile of each level and checks that they yield
  // root_; once.
  absl::Status AuthenticateRightEdge();
  const std::string* Keep(int level, uint64_t n, std::string data);
  absl::Status Path(uint64_t m, uint64_t lo, uint64_t hi, std::vector<Hash>* out);
  absl::Status SubProof(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<Hash>* out);

  const uint64_t size_;
  const std::optional<Hash> root_;
  Fetch fetch_;
  bool edge_authenticated_ = false;
  std::map<std::pair<int, uint64_t>, std::string> tiles_;
};

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_TILES_H_
