// TransparencyLog: the RFC 6962 known answers, every (index, size) and
// (m, n) up to 150 against the in-memory reference in formats/merkle,
// atomicity with the caller's batch, reopening, kill -9 while appending,
// concurrency, and signed checkpoints.
#include "daemon/log/transparency_log.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/storage/rocks_util.h"
#include "formats/encoding.h"
#include "formats/note.h"
#include "formats/tlog.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::OpenDb;
using testing::OpenFileVaultOrDie;
using testing::TempDir;
using verify::Hash;

Hash H(std::string_view hex) {
  auto h = verify::ParseHash(hex);
  EXPECT_TRUE(h.ok()) << hex;
  return h.ok() ? *h : Hash{};
}

std::vector<Hash> Hs(const std::vector<const char*>& hex) {
  std::vector<Hash> out;
  for (const char* h : hex) out.push_back(H(h));
  return out;
}

using Entries = std::vector<std::string>;

TransparencyLog::MakeEntries Fixed(Entries e) {
  return [e](uint64_t) -> absl::StatusOr<Entries> { return e; };
}

class TransparencyLogTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open(const std::string& origin = "example.test/log") {
    db_ = OpenDb(dir_ / "db");
    vault_ = OpenFileVaultOrDie(dir_ / "vault");
    auto l = TransparencyLog::Open(db_.get(), vault_.get(), origin);
    ASSERT_TRUE(l.ok()) << l.status();
    log_ = std::move(*l);
  }
  void Close() {
    log_.reset();
    db_.reset();
    vault_.reset();
  }
  void Reopen() {
    Close();
    Open();
  }
  // Appends `entries` in one batch and mirrors them in `all_`.
  uint64_t AppendAll(const Entries& entries) {
    rocksdb::WriteBatch batch;
    auto first = log_->Append(&batch, [&](uint64_t first_index) -> absl::StatusOr<Entries> {
      EXPECT_EQ(first_index, all_.size());
      return entries;
    });
    EXPECT_TRUE(first.ok()) << first.status();
    for (const auto& e : entries) {
      all_.push_back(e);
      leaves_.push_back(verify::LeafHash(e));
    }
    return first.ok() ? *first : ~uint64_t{0};
  }
  std::span<const Hash> Prefix(uint64_t n) const { return std::span(leaves_).first(n); }

  TempDir dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<Vault> vault_;
  std::unique_ptr<TransparencyLog> log_;
  Entries all_;
  std::vector<Hash> leaves_;
};

// ---------------------------------------------------------------- RFC 6962 vectors

// Leaf inputs and roots of trees of size 1..8 from certificate-transparency
// (also in tests/formats/merkle_test.cc, which checks formats).
const Entries kCtInputs = {
    std::string(""),
    std::string("\x00", 1),
    std::string("\x10", 1),
    std::string("\x20\x21", 2),
    std::string("\x30\x31", 2),
    std::string("\x40\x41\x42\x43", 4),
    std::string("\x50\x51\x52\x53\x54\x55\x56\x57", 8),
    std::string("\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16),
};
const char* const kCtRoots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

TEST_F(TransparencyLogTest, EmptyLog) {
  EXPECT_EQ(log_->size(), 0u);
  auto root = log_->Root(0);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(verify::HexEncode(*root), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(log_->Root(1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log_->Entry(0).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log_->InclusionProof(0, 0).status().code(), absl::StatusCode::kOutOfRange);
  auto c = log_->ConsistencyProof(0, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->empty());
}

TEST_F(TransparencyLogTest, Rfc6962KnownAnswers) {
  // One entry per append, then the vectors: roots of every prefix ...
  for (const auto& in : kCtInputs) AppendAll({in});
  for (uint64_t n = 1; n <= 8; ++n) {
    auto root = log_->Root(n);
    ASSERT_TRUE(root.ok());
    EXPECT_EQ(verify::HexEncode(*root), kCtRoots[n - 1]) << "size " << n;
  }
  // ... inclusion proofs ...
  struct Inc {
    uint64_t index, size;
    std::vector<const char*> proof;
  };
  const std::vector<Inc> inc = {
      {0, 1, {}},
      {0,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {5,
       8,
       {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
      {1,
       5,
       {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
  };
  for (const auto& v : inc) {
    auto p = log_->InclusionProof(v.index, v.size);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(*p, Hs(v.proof)) << v.index << "@" << v.size;
  }
  // ... and consistency proofs.
  struct Con {
    uint64_t m, n;
    std::vector<const char*> proof;
  };
  const std::vector<Con> con = {
      {1, 1, {}},
      {1,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {6,
       8,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2,
       5,
       {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {6,
       7,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
  };
  for (const auto& v : con) {
    auto p = log_->ConsistencyProof(v.m, v.n);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(*p, Hs(v.proof)) << v.m << "->" << v.n;
  }
}

// ---------------------------------------------------------------- exhaustive

TEST_F(TransparencyLogTest, EveryProofUpTo150MatchesTheReference) {
  constexpr uint64_t kN = 150;
  std::mt19937_64 rng(20260611);
  // Random batch sizes (including empty batches), with reopens in between so
  // the right edge is rebuilt from disk.
  int batches = 0;
  while (all_.size() < kN) {
    const uint64_t want = std::min<uint64_t>(kN - all_.size(), rng() % 9);
    Entries batch;
    for (uint64_t i = 0; i < want; ++i) {
      std::string e = "entry " + std::to_string(all_.size() + i);
      e.append(rng() % 40, static_cast<char>(rng()));  // binary tails, NULs included
      batch.push_back(std::move(e));
    }
    AppendAll(batch);
    if (++batches % 7 == 0) Reopen();
  }
  ASSERT_EQ(log_->size(), kN);
  for (uint64_t i = 0; i < kN; ++i) {
    auto e = log_->Entry(i);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(*e, all_[i]);
  }
  for (uint64_t n = 0; n <= kN; ++n) {
    auto root = log_->Root(n);
    ASSERT_TRUE(root.ok());
    ASSERT_EQ(*root, verify::RootFromLeafHashes(Prefix(n))) << "size " << n;
    for (uint64_t i = 0; i < n; ++i) {
      auto p = log_->InclusionProof(i, n);
      ASSERT_TRUE(p.ok()) << p.status();
      ASSERT_EQ(*p, verify::InclusionProof(Prefix(n), i)) << i << "@" << n;
      ASSERT_TRUE(verify::VerifyInclusion(i, n, leaves_[i], *p, *root).ok());
    }
    for (uint64_t m = 0; m <= n; ++m) {
      auto p = log_->ConsistencyProof(m, n);
      ASSERT_TRUE(p.ok()) << p.status();
      ASSERT_EQ(*p, verify::ConsistencyProof(Prefix(n), m)) << m << "->" << n;
      ASSERT_TRUE(verify::VerifyConsistency(m, n, verify::RootFromLeafHashes(Prefix(m)), *root, *p).ok())
          << m << "->" << n;
    }
  }
}

TEST_F(TransparencyLogTest, RequestsBeyondTheTreeAreOutOfRangeNamingBothNumbers) {
  AppendAll({"a", "b", "c"});
  auto r = log_->Root(4);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("4"), std::string::npos);
  EXPECT_NE(r.status().message().find("3"), std::string::npos);
  EXPECT_EQ(log_->Entry(3).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log_->InclusionProof(3, 3).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log_->InclusionProof(0, 4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log_->ConsistencyProof(1, 9).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log_->ConsistencyProof(3, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- append contract

TEST_F(TransparencyLogTest, AppendCommitsWithTheCallersBatch) {
  rocksdb::WriteBatch batch;
  batch.Put("xcaller", "value");
  auto first = log_->Append(&batch, Fixed({"one", "two"}));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 0u);
  std::string v;
  EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), "xcaller", &v).ok());
  EXPECT_EQ(v, "value");
  EXPECT_EQ(log_->size(), 2u);
  // Zero entries: the caller's batch still commits, the log is unchanged.
  rocksdb::WriteBatch b2;
  b2.Put("xcaller2", "v2");
  auto f2 = log_->Append(&b2, Fixed({}));
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(*f2, 2u);
  EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), "xcaller2", &v).ok());
  EXPECT_EQ(log_->size(), 2u);
}

TEST_F(TransparencyLogTest, NothingIsWrittenWhenMakeEntriesFails) {
  AppendAll({"zero"});
  rocksdb::WriteBatch batch;
  batch.Put("xcaller", "value");
  auto r = log_->Append(
      &batch, [](uint64_t) -> absl::StatusOr<Entries> { return absl::FailedPreconditionError("signing failed"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  std::string v;
  EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), "xcaller", &v).IsNotFound());
  EXPECT_EQ(log_->size(), 1u);
  // Too large an entry: refused, nothing written, the index is not used up.
  rocksdb::WriteBatch b2;
  auto big = log_->Append(&b2, Fixed({"ok", std::string(TransparencyLog::kMaxEntryBytes + 1, 'x')}));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->size(), 1u);
  EXPECT_EQ(AppendAll({"one"}), 1u);
  Reopen();
  EXPECT_EQ(log_->size(), 2u);
  EXPECT_EQ(*log_->Entry(1), "one");
}

TEST_F(TransparencyLogTest, EntriesMayNameTheirOwnIndex) {
  for (int round = 0; round < 5; ++round) {
    rocksdb::WriteBatch batch;
    auto first = log_->Append(&batch, [&](uint64_t first_index) -> absl::StatusOr<Entries> {
      return Entries{"i=" + std::to_string(first_index), "i=" + std::to_string(first_index + 1)};
    });
    ASSERT_TRUE(first.ok());
  }
  for (uint64_t i = 0; i < log_->size(); ++i) EXPECT_EQ(*log_->Entry(i), "i=" + std::to_string(i));
}

TEST_F(TransparencyLogTest, LeafHashLookupFindsTheFirstEntry) {
  AppendAll({"a", "b", "a"});
  AppendAll({"b", "c"});
  EXPECT_EQ(*log_->IndexOfLeafHash(verify::LeafHash("a")), 0u);
  EXPECT_EQ(*log_->IndexOfLeafHash(verify::LeafHash("b")), 1u);
  EXPECT_EQ(*log_->IndexOfLeafHash(verify::LeafHash("c")), 4u);
  EXPECT_EQ(log_->IndexOfLeafHash(verify::LeafHash("d")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TransparencyLogTest, FreshEntriesAreInTheTreeButNotInTheLeafIndex) {
  AppendAll({"cert"});
  rocksdb::WriteBatch batch;
  const Entries fresh = {"item-1", "item-2", "item-3"};
  auto first = log_->Append(
      &batch, [&](uint64_t) -> absl::StatusOr<Entries> { return fresh; }, /*fresh_entries=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 1u);
  for (const auto& e : fresh) {
    all_.push_back(e);
    leaves_.push_back(verify::LeafHash(e));
  }
  AppendAll({"cert-2"});
  ASSERT_EQ(log_->size(), 5u);
  for (uint64_t i = 0; i < all_.size(); ++i) EXPECT_EQ(*log_->Entry(i), all_[i]);
  for (uint64_t n = 1; n <= 5; ++n) EXPECT_EQ(*log_->Root(n), verify::RootFromLeafHashes(Prefix(n)));
  EXPECT_EQ(*log_->IndexOfLeafHash(verify::LeafHash("cert")), 0u);
  EXPECT_EQ(*log_->IndexOfLeafHash(verify::LeafHash("cert-2")), 4u);
  EXPECT_EQ(log_->IndexOfLeafHash(verify::LeafHash("item-2")).status().code(), absl::StatusCode::kNotFound);
  Reopen();
  EXPECT_EQ(*log_->Root(5), verify::RootFromLeafHashes(Prefix(5)));
}

TEST_F(TransparencyLogTest, ConcurrentAppendsAreDenseAndInCommitOrder) {
  constexpr int kThreads = 4, kPerThread = 40;
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      const uint64_t n = log_->size();
      auto root = log_->Root(n);
      EXPECT_TRUE(root.ok()) << root.status();
      if (n > 0) {
        EXPECT_TRUE(log_->InclusionProof(n - 1, n).ok());
      }
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        rocksdb::WriteBatch batch;
        auto r = log_->Append(&batch, [&](uint64_t first) -> absl::StatusOr<Entries> {
          return Entries{"t" + std::to_string(t) + " i" + std::to_string(i) + " at " + std::to_string(first)};
        });
        EXPECT_TRUE(r.ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  stop = true;
  reader.join();
  ASSERT_EQ(log_->size(), uint64_t{kThreads * kPerThread});
  std::set<std::string> seen;
  std::vector<Hash> leaves;
  for (uint64_t i = 0; i < log_->size(); ++i) {
    auto e = log_->Entry(i);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->ends_with(" at " + std::to_string(i))) << *e;
    EXPECT_TRUE(seen.insert(*e).second);
    leaves.push_back(verify::LeafHash(*e));
  }
  EXPECT_EQ(*log_->Root(log_->size()), verify::RootFromLeafHashes(leaves));
}

TEST_F(TransparencyLogTest, GroupCommitPublishesOnlyWhatIsSynced) {
  AppendAll({"a"});
  rocksdb::WriteBatch b1, b2;
  b1.Put("user-1", "x");
  uint64_t d1 = 0, d2 = 0;
  auto f1 = log_->Append(
      &b1,
      [](uint64_t) -> absl::StatusOr<Entries> {
        return Entries{"b", "c"};
      },
      false, &d1);
  ASSERT_TRUE(f1.ok()) << f1.status();
  EXPECT_EQ(*f1, 1u);
  EXPECT_EQ(d1, 3u);
  // Written (the caller's records are in the database) but not published.
  EXPECT_EQ(log_->size(), 1u);
  EXPECT_EQ(log_->WrittenSize(), 3u);
  std::string v;
  EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), "user-1", &v).ok());
  EXPECT_EQ(log_->Entry(1).status().code(), absl::StatusCode::kOutOfRange);
  // The next batch gets the next indices before the first is synced.
  auto f2 = log_->Append(
      &b2, [](uint64_t first) -> absl::StatusOr<Entries> { return Entries{"d at " + std::to_string(first)}; }, false,
      &d2);
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(*f2, 3u);
  // One sync covers both.
  ASSERT_TRUE(log_->WaitDurable(d1).ok());
  EXPECT_EQ(log_->size(), 4u);
  ASSERT_TRUE(log_->WaitDurable(d2).ok());
  for (std::string e : {"b", "c", "d at 3"}) all_.push_back(e), leaves_.push_back(verify::LeafHash(e));
  EXPECT_EQ(*log_->Root(4), verify::RootFromLeafHashes(leaves_));
  // A synced append after an unsynced one publishes both.
  rocksdb::WriteBatch b3;
  uint64_t d3 = 0;
  ASSERT_TRUE(log_->Append(
                      &b3, [](uint64_t) -> absl::StatusOr<Entries> { return Entries{"e"}; }, false, &d3)
                  .ok());
  all_.push_back("e");
  leaves_.push_back(verify::LeafHash("e"));
  AppendAll({"f"});
  EXPECT_EQ(log_->size(), 6u);
  EXPECT_TRUE(log_->WaitDurable(d3).ok());
  Reopen();
  EXPECT_EQ(log_->size(), 6u);
  EXPECT_EQ(*log_->Root(6), verify::RootFromLeafHashes(leaves_));
}

TEST_F(TransparencyLogTest, ConcurrentGroupCommitsAreDenseAndDurable) {
  constexpr int kThreads = 4, kPerThread = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        rocksdb::WriteBatch batch;
        uint64_t durable = 0;
        auto r = log_->Append(
            &batch,
            [&](uint64_t first) -> absl::StatusOr<Entries> {
              return Entries{"t" + std::to_string(t) + " i" + std::to_string(i) + " at " + std::to_string(first)};
            },
            true, &durable);
        ASSERT_TRUE(r.ok());
        ASSERT_TRUE(log_->WaitDurable(durable).ok());
        EXPECT_GE(log_->size(), *r + 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(log_->size(), uint64_t{kThreads * kPerThread});
  Reopen();
  ASSERT_EQ(log_->size(), uint64_t{kThreads * kPerThread});
  std::vector<Hash> leaves;
  for (uint64_t i = 0; i < log_->size(); ++i) {
    auto e = log_->Entry(i);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->ends_with(" at " + std::to_string(i))) << *e;
    leaves.push_back(verify::LeafHash(*e));
  }
  EXPECT_EQ(*log_->Root(log_->size()), verify::RootFromLeafHashes(leaves));
}

TEST_F(TransparencyLogTest, StateSurvivesReopen) {
  AppendAll({"a", "b", "c", "d", "e"});
  const Hash root = *log_->Root(5);
  Reopen();
  EXPECT_EQ(log_->size(), 5u);
  EXPECT_EQ(*log_->Root(5), root);
  AppendAll({"f", "g"});
  Reopen();
  EXPECT_EQ(*log_->Root(7), verify::RootFromLeafHashes(leaves_));
  EXPECT_EQ(*log_->Root(5), root);
}

TEST_F(TransparencyLogTest, LeafHashesAreNotStoredAndOldLeafHashRecordsAreHarmless) {
  AppendAll({"a", "b", "c", "d", "e"});
  for (uint64_t i = 0; i < 5; ++i) {
    std::string v;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), LogHashKey(0, i), &v).IsNotFound()) << i;
  }
  // A log written before this change also holds "Lh" level-0 records (the
  // leaf hashes): it opens, and proofs and roots are the same.
  for (uint64_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), LogHashKey(0, i),
                         std::string(reinterpret_cast<const char*>(leaves_[i].data()), leaves_[i].size()))
                    .ok());
  }
  Reopen();
  AppendAll({"f", "g"});
  EXPECT_EQ(*log_->Root(7), verify::RootFromLeafHashes(leaves_));
  for (uint64_t i = 0; i < 7; ++i) {
    auto proof = log_->InclusionProof(i, 7);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(*proof, verify::InclusionProof(leaves_, i)) << i;
  }
}

TEST_F(TransparencyLogTest, OpenRejectsBadOriginsAndDamagedRecords) {
  Close();
  db_ = OpenDb(dir_ / "db");
  vault_ = OpenFileVaultOrDie(dir_ / "vault");
  for (const char* bad : {"", "has space", "plus+sign", "new\nline"}) {
    EXPECT_EQ(TransparencyLog::Open(db_.get(), vault_.get(), bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  Close();
  Open();
  AppendAll({"a", "b", "c"});
  ASSERT_TRUE(log_->SignedCheckpoint().ok());
  // A missing right-edge entry (leaf hashes are computed from entries).
  Close();
  db_ = OpenDb(dir_ / "db");
  std::string saved;
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), LogEntryKey(2), &saved).ok());
  ASSERT_TRUE(db_->Delete(rocksdb::WriteOptions(), LogEntryKey(2)).ok());
  vault_ = OpenFileVaultOrDie(dir_ / "vault");
  auto l = TransparencyLog::Open(db_.get(), vault_.get(), "example.test/log");
  EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss) << l.status();
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), LogEntryKey(2), saved).ok());
  // A missing right-edge subtree hash.
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), LogHashKey(1, 0), &saved).ok());
  ASSERT_TRUE(db_->Delete(rocksdb::WriteOptions(), LogHashKey(1, 0)).ok());
  l = TransparencyLog::Open(db_.get(), vault_.get(), "example.test/log");
  EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss) << l.status();
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), LogHashKey(1, 0), saved).ok());
  // A stored checkpoint whose root does not match the tree.
  std::string cp;
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), LogCheckpointKey(3), &cp).ok());
  std::string bad = cp;
  const size_t nl = bad.find('\n', bad.find('\n') + 1);
  bad[nl + 1] = bad[nl + 1] == 'A' ? 'B' : 'A';
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), LogCheckpointKey(3), bad).ok());
  l = TransparencyLog::Open(db_.get(), vault_.get(), "example.test/log");
  EXPECT_EQ(l.status().code(), absl::StatusCode::kDataLoss) << l.status();
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), LogCheckpointKey(3), cp).ok());
  l = TransparencyLog::Open(db_.get(), vault_.get(), "example.test/log");
  EXPECT_TRUE(l.ok()) << l.status();
}

// ---------------------------------------------------------------- checkpoints

TEST_F(TransparencyLogTest, SignedCheckpointsVerifyAndAreStable) {
  const verify::PublicKey pub = *vault_->SigningPublicKey();
  auto vkey = verify::ParseNoteVerifierKey(log_->NoteVerifierKey());
  ASSERT_TRUE(vkey.ok()) << vkey.status();
  EXPECT_EQ(vkey->name, "example.test/log");
  EXPECT_EQ(vkey->key, pub);

  auto empty = log_->SignedCheckpoint();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(
      empty->starts_with("example.test/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"
                         "\xe2\x80\x94 example.test/log "))
      << *empty;
  AppendAll({"a", "b", "c"});
  auto note = log_->SignedCheckpoint();
  ASSERT_TRUE(note.ok());
  auto cp = verify::VerifyCheckpoint(*note, *vkey);
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(cp->size, 3u);
  EXPECT_EQ(cp->root, verify::RootFromLeafHashes(leaves_));
  EXPECT_EQ(*log_->SignedCheckpoint(), *note);
  ASSERT_TRUE(verify::VerifyCheckpoint(*empty, *vkey).ok());
  // Stored durably, and the same after a restart.
  std::string stored;
  ASSERT_TRUE(db_->Get(rocksdb::ReadOptions(), LogCheckpointKey(3), &stored).ok());
  EXPECT_EQ(stored, *note);
  Reopen();
  EXPECT_EQ(*log_->SignedCheckpoint(), *note);
  AppendAll({"d"});
  auto next = verify::VerifyCheckpoint(*log_->SignedCheckpoint(), *vkey);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->size, 4u);
  auto proof = log_->ConsistencyProof(3, 4);
  ASSERT_TRUE(proof.ok());
  EXPECT_TRUE(verify::VerifyCheckpointConsistency(*cp, *next, *proof).ok());
}

TEST_F(TransparencyLogTest, ANewOriginSignsANewCheckpoint) {
  AppendAll({"a"});
  const std::string first = *log_->SignedCheckpoint();
  Close();
  Open("example.test/renamed");
  auto note = log_->SignedCheckpoint();
  ASSERT_TRUE(note.ok());
  EXPECT_TRUE(note->starts_with("example.test/renamed\n1\n")) << *note;
  EXPECT_NE(*note, first);
}

TEST(TransparencyLogOrigin, DefaultOriginIsDerivedFromTheKeyId) {
  verify::PublicKey k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i);
  const std::string origin = DefaultLogOrigin(k);
  EXPECT_EQ(origin, "shredd.local/" + verify::KeyId(k).substr(7, 16));
  EXPECT_EQ(origin.size(), std::string("shredd.local/").size() + 16);
}

// ---------------------------------------------------------------- kill -9

// Child half of KillNineKeepsACommittedPrefix: appends until killed. Runs only
// when the parent starts it with SHREDD_LOG_CRASH_DIR set.
TEST(TransparencyLogCrashChild, AppendsUntilKilled) {
  const char* dir = std::getenv("SHREDD_LOG_CRASH_DIR");
  if (dir == nullptr) GTEST_SKIP() << "helper for KillNineKeepsACommittedPrefix";
  auto db = OpenDb(std::string(dir) + "/db");
  auto vault = OpenFileVaultOrDie(std::string(dir) + "/vault");
  auto log = TransparencyLog::Open(db.get(), vault.get(), "example.test/log");
  ASSERT_TRUE(log.ok());
  { std::ofstream ready(std::string(dir) + "/ready"); }
  for (uint64_t round = 0;; ++round) {
    rocksdb::WriteBatch batch;
    auto r = (*log)->Append(&batch, [&](uint64_t first) -> absl::StatusOr<Entries> {
      Entries e;
      for (uint64_t i = 0; i < 1 + round % 5; ++i) e.push_back("crash entry " + std::to_string(first + i));
      return e;
    });
    ASSERT_TRUE(r.ok());
    if (round % 16 == 0) {
      ASSERT_TRUE((*log)->SignedCheckpoint().ok());
    }
  }
}

TEST(TransparencyLogCrash, KillNineKeepsACommittedPrefix) {
  TempDir dir;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setenv("SHREDD_LOG_CRASH_DIR", dir.path().c_str(), 1);
      execl("/proc/self/exe", "transparency_log_crash_child",
            "--gtest_filter=TransparencyLogCrashChild.AppendsUntilKilled", static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(dir / "ready") && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 150 * attempt));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended by itself: " << status;
    std::filesystem::remove(dir / "ready");

    auto db = OpenDb(dir / "db");
    auto vault = OpenFileVaultOrDie(dir / "vault");
    auto log = TransparencyLog::Open(db.get(), vault.get(), "example.test/log");
    ASSERT_TRUE(log.ok()) << log.status();
    const uint64_t n = (*log)->size();
    ASSERT_GT(n, 0u);
    std::cerr << "attempt " << attempt << ": " << n << " entries survived kill -9\n";
    std::vector<Hash> leaves;
    for (uint64_t i = 0; i < n; ++i) {
      auto e = (*log)->Entry(i);
      ASSERT_TRUE(e.ok()) << e.status();
      ASSERT_EQ(*e, "crash entry " + std::to_string(i));
      leaves.push_back(verify::LeafHash(*e));
    }
    std::string beyond;
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), LogEntryKey(n), &beyond).IsNotFound());
    EXPECT_EQ(*(*log)->Root(n), verify::RootFromLeafHashes(leaves));
    for (uint64_t m : {uint64_t{1}, n / 2, n - 1}) {
      if (m == 0) continue;
      auto p = (*log)->ConsistencyProof(m, n);
      ASSERT_TRUE(p.ok());
      EXPECT_EQ(*p, verify::ConsistencyProof(leaves, m));
    }
    EXPECT_TRUE((*log)->SignedCheckpoint().ok());
  }
}

}  // namespace
}  // namespace shredd
