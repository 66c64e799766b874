// TileWriter and formats/tiles: the C2SP tlog-tiles path encoding and tile
// arithmetic (with the spec's own examples), entry bundles, and the writer
// against a real TransparencyLog: the files it writes, their bytes (leaf
// hashes, level-1 hashes, bundles), proofs computed from the tiles equal to
// the log's own, growth, catch-up after tiles went missing, a directory
// holding another tree, a directory that cannot be written (the log goes
// on), and entries too long for a bundle. The layout is also checked
// against Go's golang.org/x/mod/sumdb/tlog by tests/tools/tiles_verify.go
// (tests/integration/test_log_tiles.py).
#include "daemon/log/tile_writer.h"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "formats/note.h"
#include "formats/tiles.h"
#include "formats/tlog.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenDb;
using testing::OpenFileVaultOrDie;
using testing::TempDir;
using verify::Hash;
using verify::TileRef;

std::string Bytes(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::string> ReadTile(const std::filesystem::path& dir, const std::string& rel) {
  if (!std::filesystem::exists(dir / rel)) return absl::NotFoundError(rel);
  return ReadAll(dir / rel);
}

TEST(TilePaths, IndexEncoding) {
  EXPECT_EQ(verify::TileIndexPath(0), "000");
  EXPECT_EQ(verify::TileIndexPath(7), "007");
  EXPECT_EQ(verify::TileIndexPath(999), "999");
  EXPECT_EQ(verify::TileIndexPath(1000), "x001/000");
  EXPECT_EQ(verify::TileIndexPath(1234067), "x001/x234/067");  // the spec's example
  EXPECT_EQ(verify::HashTilePath(0, 1234067, 256), "tile/0/x001/x234/067");
  EXPECT_EQ(verify::HashTilePath(3, 1234067, 1), "tile/3/x001/x234/067.p/1");
  EXPECT_EQ(verify::HashTilePath(1, 0, 17), "tile/1/000.p/17");
  EXPECT_EQ(verify::EntryBundlePath(3, 256), "tile/entries/003");
  EXPECT_EQ(verify::EntryBundlePath(3, 5), "tile/entries/003.p/5");
}

TEST(TilePaths, TilesToPublish) {
  // The spec's example: a tree of 70,000 has 273 full level-0 tiles, one
  // partial of width 112, one full level-1 tile, a partial of 17, and a
  // level-2 partial of 1.
  auto all = verify::TilesToPublish(0, 70000);
  ASSERT_EQ(all.size(), 273u + 1 + 1 + 1 + 1);
  EXPECT_EQ(all[272], (TileRef{0, 272, 256}));
  EXPECT_EQ(all[273], (TileRef{0, 273, 112}));
  EXPECT_EQ(all[274], (TileRef{1, 0, 256}));
  EXPECT_EQ(all[275], (TileRef{1, 1, 17}));
  EXPECT_EQ(all[276], (TileRef{2, 0, 1}));
  // "A tree of size 256 is a full level-0 tile and a level-1 partial of width 1."
  EXPECT_EQ(verify::TilesToPublish(0, 256), (std::vector<TileRef>{{0, 0, 256}, {1, 0, 1}}));
  // Growth rewrites the partial tiles that widened, nothing below.
  EXPECT_EQ(verify::TilesToPublish(256, 300), (std::vector<TileRef>{{0, 1, 44}}));
  EXPECT_EQ(verify::TilesToPublish(300, 600), (std::vector<TileRef>{{0, 1, 256}, {0, 2, 88}, {1, 0, 2}}));
  EXPECT_TRUE(verify::TilesToPublish(5, 5).empty());
  EXPECT_TRUE(verify::TilesToPublish(9, 4).empty());
  EXPECT_EQ(verify::TileWidthAt(0, 2, 600), 88u);
  EXPECT_EQ(verify::TileWidthAt(0, 3, 600), 0u);
  EXPECT_EQ(verify::TileWidthAt(1, 0, 600), 2u);
  EXPECT_EQ(verify::TileWidthAt(2, 0, 600), 0u);
}

TEST(TilePaths, EntryBundles) {
  std::vector<std::string> entries = {"", "a", std::string(300, 'x'), std::string(65535, 'y')};
  auto b = verify::EncodeEntryBundle(entries);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->substr(0, 5), std::string("\x00\x00\x00\x01"
                                         "a",
                                         5));
  EXPECT_EQ(b->substr(5, 2), "\x01\x2c");  // 300, big-endian
  auto back = verify::ParseEntryBundle(*b, 4);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, entries);
  EXPECT_FALSE(verify::ParseEntryBundle(*b, 5).ok());
  EXPECT_FALSE(verify::ParseEntryBundle(b->substr(0, b->size() - 1)).ok());
  EXPECT_FALSE(verify::ParseEntryBundle(std::string("\x00", 1)).ok());
  std::vector<std::string> too_long = {std::string(65536, 'z')};
  EXPECT_EQ(verify::EncodeEntryBundle(too_long).status().code(), absl::StatusCode::kInvalidArgument);
}

class TileWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenDb(dir_ / "db");
    vault_ = OpenFileVaultOrDie(dir_ / "vault");
    auto l = TransparencyLog::Open(db_.get(), vault_.get(), "example.test/log");
    ASSERT_TRUE(l.ok()) << l.status();
    log_ = std::move(*l);
  }
  void Append(uint64_t count, size_t entry_size = 0) {
    rocksdb::WriteBatch batch;
    auto first = log_->Append(&batch, [&](uint64_t first_index) -> absl::StatusOr<std::vector<std::string>> {
      std::vector<std::string> out;
      for (uint64_t i = 0; i < count; ++i) {
        std::string e = "entry " + std::to_string(first_index + i);
        if (entry_size > e.size()) e.resize(entry_size, '.');
        out.push_back(std::move(e));
      }
      return out;
    });
    ASSERT_TRUE(first.ok()) << first.status();
  }
  std::unique_ptr<TileStore> Store() { return FileTileStore(Tiles(), false); }
  TileWriter::Options Options() {
    TileWriter::Options o;
    o.min_interval = std::chrono::milliseconds(1);
    o.retry_interval = std::chrono::milliseconds(20);
    return o;
  }
  std::filesystem::path Tiles() const { return std::filesystem::path(dir_ / "tiles"); }
  verify::TileHashes FromTiles(uint64_t size) {
    return verify::TileHashes(size, [d = Tiles()](const std::string& rel) { return ReadTile(d, rel); });
  }
  // Everything a reader of the tiles can check: the checkpoint is the log's,
  // the tree hash from the tiles is its root, proofs from the tiles are the
  // log's, and every bundle holds the entries.
  void CheckTiles(uint64_t size) {
    auto cp = log_->SignedCheckpoint();
    ASSERT_TRUE(cp.ok());
    EXPECT_EQ(ReadAll(Tiles() / "checkpoint"), *cp);
    auto tiles = FromTiles(size);
    auto root = tiles.Root();
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(*root, *log_->Root(size));
    for (uint64_t m : {uint64_t{0}, uint64_t{1}, uint64_t{7}, uint64_t{255}, uint64_t{256}, uint64_t{257}, size / 2,
                       size - 1, size}) {
      if (m > size) continue;
      auto p = tiles.ConsistencyProof(m);
      ASSERT_TRUE(p.ok()) << m << ": " << p.status();
      EXPECT_EQ(*p, *log_->ConsistencyProof(m, size)) << m;
    }
    for (uint64_t i : {uint64_t{0}, uint64_t{100}, uint64_t{256}, size - 1}) {
      if (i >= size) continue;
      auto p = tiles.InclusionProof(i);
      ASSERT_TRUE(p.ok()) << i << ": " << p.status();
      EXPECT_EQ(*p, *log_->InclusionProof(i, size)) << i;
    }
    for (uint64_t n = 0; n * 256 < size; ++n) {
      const unsigned w = verify::TileWidthAt(0, n, size);
      auto bundle = verify::ParseEntryBundle(ReadAll(Tiles() / verify::EntryBundlePath(n, w)), w);
      ASSERT_TRUE(bundle.ok()) << bundle.status();
      for (unsigned i = 0; i < w; ++i) EXPECT_EQ((*bundle)[i], *log_->Entry(n * 256 + i));
    }
  }

  TempDir dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<Vault> vault_;
  std::unique_ptr<TransparencyLog> log_;
};

TEST_F(TileWriterTest, WritesTheTilesOfTheCheckpointedTree) {
  TileWriter w(log_.get(), Store(), Options());
  ASSERT_TRUE(w.Publish().ok());  // the empty tree: a checkpoint and no tiles
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "checkpoint"));
  EXPECT_FALSE(std::filesystem::exists(Tiles() / "tile"));

  Append(600);
  ASSERT_TRUE(w.Publish().ok());
  for (const char* p : {"tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2", "tile/entries/000",
                        "tile/entries/001", "tile/entries/002.p/88"}) {
    EXPECT_TRUE(std::filesystem::exists(Tiles() / p)) << p;
  }
  // Level 0: leaf hashes; level 1: the roots of the full level-0 tiles.
  std::string leaves;
  for (uint64_t i = 256; i < 512; ++i) leaves += Bytes(verify::LeafHash(*log_->Entry(i)));
  EXPECT_EQ(ReadAll(Tiles() / "tile/0/001"), leaves);
  EXPECT_EQ(ReadAll(Tiles() / "tile/1/000.p/2"),
            Bytes(*log_->CompleteSubtreeHash(8, 0)) + Bytes(*log_->CompleteSubtreeHash(8, 1)));
  EXPECT_EQ(ReadAll(Tiles() / "tile/0/000").size(), 256u * 32);
  CheckTiles(600);
  EXPECT_EQ(w.stats().published_size, 600u);

  // Growth: the partial tiles widen; the old partial stays while the tile
  // is not full; full tiles are untouched.
  struct stat before {};
  ASSERT_EQ(stat((Tiles() / "tile/0/000").c_str(), &before), 0);
  Append(100);
  ASSERT_TRUE(w.Publish().ok());
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/0/002.p/188"));
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/0/002.p/88"));
  struct stat after {};
  ASSERT_EQ(stat((Tiles() / "tile/0/000").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "a full tile was rewritten";
  CheckTiles(700);
  // Once tile 0/002 is full, its partial versions and its bundle's go; a
  // reader of an older checkpoint reads the full tile (readers' fallback).
  Append(68);  // 768: tile 0/002 is full
  ASSERT_TRUE(w.Publish().ok());
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/0/002"));
  EXPECT_FALSE(std::filesystem::exists(Tiles() / "tile/0/002.p"));
  EXPECT_FALSE(std::filesystem::exists(Tiles() / "tile/entries/002.p"));
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/1/000.p/3"));
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/1/000.p/2")) << "level-1 tile 000 is not full yet";
  EXPECT_EQ(w.stats().partials_removed, 1u);
  auto old = FromTiles(700);
  auto root700 = old.Root();
  ASSERT_TRUE(root700.ok()) << root700.status();
  EXPECT_EQ(*root700, *log_->Root(700));
  CheckTiles(768);
}

TEST_F(TileWriterTest, CatchesUpOnStart) {
  Append(300);
  {
    TileWriter w(log_.get(), Store(), Options());
    ASSERT_TRUE(w.Publish().ok());
  }
  const std::string tile0 = ReadAll(Tiles() / "tile/0/000");
  std::filesystem::remove(Tiles() / "tile/0/000");
  std::filesystem::remove(Tiles() / "tile/entries/001.p/44");
  {
    std::ofstream truncated(Tiles() / "tile/1/000.p/1", std::ios::trunc);  // a torn write
  }
  Append(10);
  TileWriter w(log_.get(), Store(), Options());
  ASSERT_TRUE(w.Publish().ok());
  EXPECT_EQ(ReadAll(Tiles() / "tile/0/000"), tile0);
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/entries/001.p/44"));
  EXPECT_EQ(ReadAll(Tiles() / "tile/1/000.p/1").size(), 32u);
  CheckTiles(310);
}

// Tiles and bundles of the right length whose bytes were changed (disk,
// operator, a bucket): catch-up compares them with the log and rewrites
// them. Hash tiles of level >= 1 always; level-0 tiles and bundles the
// rightmost and the kRepairCheckedLevel0 full ones before it.
TEST_F(TileWriterTest, CatchUpRewritesTilesWhoseBytesDiffer) {
  Append(256 * 3 + 6);
  {
    TileWriter w(log_.get(), Store(), Options());
    ASSERT_TRUE(w.Publish().ok());
  }
  auto flip = [&](const std::string& rel, size_t at) {
    std::string data = ReadAll(Tiles() / rel);
    ASSERT_GT(data.size(), at) << rel;
    data[at] ^= 0x01;
    std::ofstream(Tiles() / rel, std::ios::binary | std::ios::trunc) << data;
  };
  std::map<std::string, std::string> honest;
  for (const char* rel :
       {"tile/0/003.p/6", "tile/0/001", "tile/1/000.p/3", "tile/entries/003.p/6", "tile/entries/002"}) {
    honest[rel] = ReadAll(Tiles() / rel);
  }
  flip("tile/0/003.p/6", 0);        // the reviewer's case: byte 0 of the partial tile
  flip("tile/0/001", 8191);         // a full level-0 tile
  flip("tile/1/000.p/3", 40);       // level 1
  flip("tile/entries/003.p/6", 4);  // an entry's bytes, same length
  flip("tile/entries/002", 100);
  TileWriter w(log_.get(), Store(), Options());
  ASSERT_TRUE(w.Publish().ok());
  for (const auto& [rel, data] : honest) EXPECT_TRUE(ReadAll(Tiles() / rel) == data) << rel << " was not rewritten";
  CheckTiles(256 * 3 + 6);
}

TEST_F(TileWriterTest, RewritesADirectoryHoldingAnotherTree) {
  Append(20);
  std::filesystem::create_directories(Tiles() / "tile/0");
  // A longer tree's checkpoint (e.g. the tiles of the log before a restore),
  // and tiles that do not belong to this log.
  auto other = verify::FormatCheckpointText("example.test/log", 40, Hash{});
  std::ofstream(Tiles() / "checkpoint") << other << "\n— example.test/log AAAAAAAA\n";
  std::ofstream(Tiles() / "tile/0/000.p/20") << std::string(640, 'x');
  TileWriter w(log_.get(), Store(), Options());
  ASSERT_TRUE(w.Publish().ok());
  CheckTiles(20);
}

TEST_F(TileWriterTest, AFailedWriteNeitherFailsNorBlocksTheLog) {
  std::ofstream(dir_ / "file") << "x";
  // Under a regular file: cannot be made.
  TileWriter w(log_.get(), FileTileStore(dir_ / "file" + "/tiles", false), Options());
  w.Start();
  Append(5);
  Append(5);
  EXPECT_EQ(log_->size(), 10u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (w.stats().failures < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(w.stats().failures, 2u) << "failures are retried";
  EXPECT_TRUE(w.stats().failing);
  EXPECT_EQ(w.stats().published_size, 0u);
}

TEST_F(TileWriterTest, TheThreadFollowsTheLog) {
  TileWriter w(log_.get(), Store(), Options());
  w.Start();
  for (int i = 0; i < 5; ++i) Append(70);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (w.stats().published_size < 350 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(w.stats().published_size, 350u);
  EXPECT_FALSE(w.stats().failing);
  CheckTiles(350);
}

TEST_F(TileWriterTest, EntriesTooLongForABundle) {
  Append(3);
  Append(1, 70000);  // fits the log (1 MiB), not a bundle (64 KiB)
  Append(2);
  TileWriter w(log_.get(), Store(), Options());
  ASSERT_TRUE(w.Publish().ok());
  EXPECT_FALSE(std::filesystem::exists(Tiles() / "tile/entries/000.p/6"));
  EXPECT_TRUE(std::filesystem::exists(Tiles() / "tile/0/000.p/6"));
  EXPECT_EQ(w.stats().oversized_entries, 1u);
  auto root = FromTiles(6).Root();
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(*root, *log_->Root(6));
}

}  // namespace
}  // namespace shredd
