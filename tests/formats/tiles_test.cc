// formats/tiles.h TileHashes given the checkpoint's root: every tile is
// authenticated before a hash of it is used, so a damaged tile anywhere (the
// rightmost ones, a full tile under them, a level-1 tile) is DATA_LOSS
// naming it, never a wrong root, leaf hash or proof (which a monitor would
// take for a fork); proofs from honest tiles are the reference ones
// (formats/merkle.h over the leaf hashes), also when a partial tile is gone;
// and the tiles kept stay bounded.
#include "formats/tiles.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/merkle.h"

namespace shredd::verify {
namespace {

std::string Bytes(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

// The C2SP tiles of the tree whose leaf i is "entry i", computed from the
// leaf hashes with the reference Merkle functions.
struct TestTiles {
  std::vector<Hash> leaves;
  std::map<std::string, std::string> files;
  int fetches = 0;

  explicit TestTiles(uint64_t size) {
    for (uint64_t i = 0; i < size; ++i) leaves.push_back(LeafHash("entry " + std::to_string(i)));
    for (const TileRef& t : TilesToPublish(0, size)) {
      const uint64_t span = uint64_t{1} << (kTileHeight * t.level);
      std::string data;
      for (uint64_t i = t.n * kTileWidth; i < t.n * kTileWidth + t.width; ++i) {
        data += Bytes(RootFromLeafHashes(std::span<const Hash>(leaves).subspan(i * span, span)));
      }
      files[HashTilePath(t.level, t.n, t.width)] = data;
    }
  }
  Hash Root(uint64_t m) const { return RootFromLeafHashes(std::span<const Hash>(leaves).first(m)); }
  TileHashes Reader(uint64_t size) {
    return TileHashes(size, Root(size), [this](const std::string& rel) -> absl::StatusOr<std::string> {
      ++fetches;
      auto it = files.find(rel);
      if (it == files.end()) return absl::NotFoundError(rel);
      return it->second;
    });
  }
  void Flip(const std::string& rel, size_t byte = 40) {
    ASSERT_TRUE(files.count(rel)) << rel;
    files[rel][byte % files[rel].size()] ^= 0x01;
  }
};

std::vector<uint64_t> Sizes(uint64_t size) {
  std::vector<uint64_t> out = {1, 2, 7, 255, 256, 257, 300, 511, 512, 513, size / 2, size - 1};
  std::erase_if(out, [size](uint64_t m) { return m >= size; });
  return out;
}

TEST(TileHashes, HonestTilesGiveTheReferenceRootAndProofs) {
  for (uint64_t size :
       {uint64_t{1}, uint64_t{5}, uint64_t{256}, uint64_t{257}, uint64_t{1000}, uint64_t{65536}, uint64_t{70000}}) {
    TestTiles log(size);
    TileHashes tiles = log.Reader(size);
    auto root = tiles.Root();
    ASSERT_TRUE(root.ok()) << size << ": " << root.status();
    EXPECT_EQ(*root, log.Root(size));
    for (uint64_t m : Sizes(size)) {
      auto p = tiles.ConsistencyProof(m);
      ASSERT_TRUE(p.ok()) << size << " " << m << ": " << p.status();
      EXPECT_EQ(*p, ConsistencyProof(log.leaves, m)) << size << " " << m;
      auto inc = tiles.InclusionProof(m);
      ASSERT_TRUE(inc.ok()) << size << " " << m << ": " << inc.status();
      EXPECT_EQ(*inc, InclusionProof(log.leaves, m)) << size << " " << m;
      auto leaf = tiles.SubtreeHash(0, m);
      ASSERT_TRUE(leaf.ok()) << leaf.status();
      EXPECT_EQ(*leaf, log.leaves[m]);
    }
  }
}

TEST(TileHashes, ARootOfAnotherTreeIsDataLoss) {
  TestTiles log(1000);
  TileHashes tiles(1000, log.Root(999), [&](const std::string& rel) { return log.files.at(rel); });
  auto root = tiles.Root();
  EXPECT_TRUE(absl::IsDataLoss(root.status())) << root.status();
  EXPECT_NE(root.status().message().find("do not match the checkpoint's root"), std::string::npos) << root.status();
}

// The reviewer's case: a byte of a full level-0 tile below the rightmost
// ones flipped. The tree hash still comes out right (it reads only the
// rightmost tiles); the consistency proof from 300 used to come out wrong,
// which the monitor reported as a fork.
TEST(TileHashes, ADamagedFullTileIsDataLossNotAWrongProof) {
  TestTiles log(1000);
  log.Flip("tile/0/001");
  TileHashes tiles = log.Reader(1000);
  auto root = tiles.Root();
  ASSERT_TRUE(root.ok()) << root.status();
  auto p = tiles.ConsistencyProof(300);
  ASSERT_FALSE(p.ok()) << "a proof was built from a damaged tile";
  EXPECT_TRUE(absl::IsDataLoss(p.status())) << p.status();
  EXPECT_NE(p.status().message().find("tile/0/001"), std::string::npos) << p.status();
  auto leaf = tiles.SubtreeHash(0, 300);
  EXPECT_TRUE(absl::IsDataLoss(leaf.status())) << leaf.status();
  auto other = tiles.InclusionProof(5);  // tile 0/000 is intact
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(*other, InclusionProof(log.leaves, 5));
}

// Whichever tile is damaged, and wherever in it: every answer is either the
// tree's own or DATA_LOSS, and the damage is noticed by what reads it.
TEST(TileHashes, NoDamagedTileEverYieldsAWrongAnswer) {
  for (uint64_t size : {uint64_t{1000}, uint64_t{70000}}) {
    const TestTiles honest(size);
    std::map<uint64_t, std::vector<Hash>> consistency, inclusion;  // the reference answers
    auto inclusion_of = [&](uint64_t i) -> const std::vector<Hash>& {
      if (!inclusion.count(i)) inclusion[i] = InclusionProof(honest.leaves, i);
      return inclusion[i];
    };
    for (uint64_t m : Sizes(size)) consistency[m] = ConsistencyProof(honest.leaves, m);
    for (const TileRef& t : TilesToPublish(0, size)) {
      if (t.level == 0 && t.n % 50 != 5 && t.width == kTileWidth) continue;  // a sample of the level-0 tiles
      const std::string rel = HashTilePath(t.level, t.n, t.width);
      for (size_t hash : {size_t{0}, size_t{t.width - 1}}) {
        TestTiles log = honest;
        log.Flip(rel, hash * 32 + 7);
        TileHashes tiles = log.Reader(size);
        bool refused = false;
        auto check = [&](const auto& got, const auto& want, const std::string& what) {
          if (got.ok()) {
            EXPECT_EQ(*got, want) << rel << " hash " << hash << ": " << what;
          } else {
            EXPECT_TRUE(absl::IsDataLoss(got.status())) << rel << ": " << what << ": " << got.status();
            refused = true;
          }
        };
        check(tiles.Root(), honest.Root(size), "root");
        for (uint64_t m : Sizes(size)) {
          check(tiles.ConsistencyProof(m), consistency[m], "consistency " + std::to_string(m));
          check(tiles.InclusionProof(m), inclusion_of(m), "inclusion " + std::to_string(m));
        }
        // A leaf under the damaged hash.
        const uint64_t leaf = (t.n * kTileWidth + hash) << (kTileHeight * t.level);
        check(tiles.SubtreeHash(0, leaf), honest.leaves[leaf], "leaf " + std::to_string(leaf));
        check(tiles.InclusionProof(leaf), inclusion_of(leaf), "inclusion " + std::to_string(leaf));
        EXPECT_TRUE(refused) << rel << " hash " << hash << ": the damage went unnoticed";
      }
    }
  }
}

TEST(TileHashes, AGonePartialTileIsReadFromTheFullOneAndAuthenticated) {
  TestTiles log(768);  // tile 0/002 full, its partials removed (level 1's stay: not full)
  log.files["tile/1/000.p/2"] = log.files["tile/1/000.p/3"].substr(0, 64);
  const Hash root700 = log.Root(700);
  auto reader = [&] {
    return TileHashes(700, root700, [&](const std::string& rel) -> absl::StatusOr<std::string> {
      auto it = log.files.find(rel);
      if (it == log.files.end()) return absl::NotFoundError(rel);
      return it->second;
    });
  };
  {
    TileHashes tiles = reader();
    auto p = tiles.ConsistencyProof(300);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(*p, ConsistencyProof(std::span<const Hash>(log.leaves).first(700), 300));
  }
  log.Flip("tile/0/002", 0);  // its first 188 hashes are the tree of 700's partial tile
  TileHashes tiles = reader();
  EXPECT_TRUE(absl::IsDataLoss(tiles.Root().status())) << tiles.Root().status();
}

TEST(TileHashes, TheTilesKeptAreBounded) {
  TestTiles log(70000);
  TileHashes tiles = log.Reader(70000);
  for (uint64_t i = 0; i < 70000; i += 100) {
    auto p = tiles.InclusionProof(i);
    ASSERT_TRUE(p.ok()) << i << ": " << p.status();
  }
  EXPECT_LE(tiles.tiles_kept(), TileHashes::kMaxKeptTiles);
  // A second pass fetches again what was dropped, authenticated again.
  const int before = log.fetches;
  auto p = tiles.InclusionProof(0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, InclusionProof(log.leaves, 0));
  EXPECT_GE(log.fetches, before);
}

}  // namespace
}  // namespace shredd::verify
