// FileBlobBackend (daemon/blob_backend.h): the local home of large items'
// ciphertext. Objects appear only when published, reads are exact, and
// garbage collection removes unfinished uploads and dead objects only.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/storage/blob_backend.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::TempDir;

const std::string kId = "00112233445566778899aabbccddeeff";
const std::string kOther = "ffeeddccbbaa99887766554433221100";

std::unique_ptr<BlobBackend> Open(const TempDir& dir) {
  auto b = OpenFileBlobBackend(dir / "data");
  EXPECT_TRUE(b.ok()) << b.status();
  return std::move(*b);
}

absl::Status Write(BlobBackend* b, const std::string& id, const std::vector<std::string>& parts) {
  auto w = b->Create(id);
  if (!w.ok()) return w.status();
  for (const auto& p : parts) {
    if (auto s = (*w)->Append(p); !s.ok()) return s;
  }
  return (*w)->Publish();
}

TEST(FileBlobBackend, PublishedObjectsReadBackExactly) {
  TempDir dir;
  auto b = Open(dir);
  std::string big(3 * 4096 + 17, '\0');  // crosses O_DIRECT's block size, unaligned tail
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  ASSERT_TRUE(Write(b.get(), kId, {"head:", big, ":tail"}).ok());
  const std::string all = "head:" + big + ":tail";
  auto r = b->Open(kId);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->size(), all.size());
  std::string out;
  ASSERT_TRUE((*r)->ReadAt(0, all.size(), &out).ok());
  ASSERT_EQ(out.size(), all.size());
  EXPECT_TRUE(out == all);  // (not EXPECT_EQ: it would print 12 KiB of binary)
  out.clear();              // ReadAt appends
  ASSERT_TRUE((*r)->ReadAt(4095, 10, &out).ok());
  EXPECT_TRUE(out == all.substr(4095, 10));
  // Past the end: DATA_LOSS (the object is shorter than asked), not a short read.
  absl::Status s = (*r)->ReadAt(all.size() - 3, 10, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  // Private files: ciphertext is harmless, but nobody else needs it.
  struct stat st {};
  ASSERT_EQ(stat((dir / "data/blobs/00/" + kId).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Large objects fill one 8 MiB buffer while the other is written: bytes
// written in place (Reserve/CommitReserved, as the upload pipeline seals),
// appended, and flushed in between must come back in order.
TEST(FileBlobBackend, BytesWrittenInPlaceAcrossBuffersReadBackExactly) {
  TempDir dir;
  auto b = Open(dir);
  auto w = b->Create(kId);
  ASSERT_TRUE(w.ok()) << w.status();
  std::string all;
  uint32_t x = 7;
  for (size_t step = 1; all.size() < (20u << 20); step = step * 3 % 2000003 + 1) {
    if (step % 5 == 0) {  // appended
      std::string part(step % 9000, '\0');
      for (char& c : part) c = static_cast<char>(x = x * 1103515245 + 12345);
      ASSERT_TRUE((*w)->Append(part).ok());
      all += part;
      continue;
    }
    size_t want = step;
    while (want > 0) {  // written in place, as much as each reservation holds
      std::span<char> room = (*w)->Reserve(want);
      ASSERT_FALSE(room.empty());
      ASSERT_LE(room.size(), want);
      for (char& c : room) c = static_cast<char>(x = x * 1103515245 + 12345);
      all.append(room.data(), room.size());
      ASSERT_TRUE((*w)->CommitReserved(room.size()).ok());
      want -= room.size();
    }
    if (step % 7 == 0) {
      ASSERT_TRUE((*w)->Flush().ok());
    }
  }
  ASSERT_TRUE((*w)->Publish().ok());
  auto r = b->Open(kId);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ((*r)->size(), all.size());
  std::string out;
  ASSERT_TRUE((*r)->ReadAt(0, all.size(), &out).ok());
  EXPECT_TRUE(out == all);
}

// A write that fails on the writer's own thread (here: the file-size limit,
// EFBIG, standing in for a full disk) must fail the upload, not vanish.
TEST(FileBlobBackend, AFailedOverlappedWriteFailsTheObject) {
  TempDir dir;
  auto b = Open(dir);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the limit applies to this process only
    signal(SIGXFSZ, SIG_IGN);
    rlimit limit{12 << 20, 12 << 20};
    setrlimit(RLIMIT_FSIZE, &limit);
    auto w = b->Create(kId);
    if (!w.ok()) _exit(2);
    absl::Status s;
    for (int i = 0; i < 40 && s.ok(); ++i) {  // 40 MiB, well past the limit
      std::span<char> room = (*w)->Reserve(1 << 20);
      std::memset(room.data(), 'x', room.size());
      s = (*w)->CommitReserved(room.size());
    }
    if (s.ok()) s = (*w)->Publish();
    _exit(s.ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << "the writes past the limit did not fail the object";
  EXPECT_FALSE(b->Open(kId).ok());
}

TEST(FileBlobBackend, AnUnpublishedWriterLeavesNothing) {
  TempDir dir;
  auto b = Open(dir);
  {
    auto w = b->Create(kId);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("half an upload").ok());
  }  // destroyed without Publish
  auto r = b->Open(kId);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_TRUE(std::filesystem::is_empty(dir / "data/tmp"));
  // The same id can be written again afterwards.
  EXPECT_TRUE(Write(b.get(), kId, {"whole"}).ok());
}

TEST(FileBlobBackend, DeleteIsIdempotent) {
  TempDir dir;
  auto b = Open(dir);
  ASSERT_TRUE(Write(b.get(), kId, {"x"}).ok());
  EXPECT_TRUE(b->Delete(kId).ok());
  EXPECT_TRUE(b->Delete(kId).ok());  // absent: OK
  EXPECT_EQ(b->Open(kId).status().code(), absl::StatusCode::kDataLoss);
}

TEST(FileBlobBackend, GarbageCollectionKeepsLiveObjectsOnly) {
  TempDir dir;
  auto b = Open(dir);
  ASSERT_TRUE(Write(b.get(), kId, {"live"}).ok());
  ASSERT_TRUE(Write(b.get(), kOther, {"dead"}).ok());
  auto unfinished = b->Create("abababababababababababababababab");
  ASSERT_TRUE(unfinished.ok());
  ASSERT_TRUE((*unfinished)->Append("crash in the middle").ok());
  std::vector<std::string> asked;
  std::vector<std::string> undeleted;
  ASSERT_TRUE(b->CollectGarbage(
                   [&](std::string_view id) {
                     asked.emplace_back(id);
                     return id == kId;
                   },
                   &undeleted)
                  .ok());
  EXPECT_TRUE(undeleted.empty());
  EXPECT_EQ(asked.size(), 2u);  // published objects only: the unfinished one is not asked about
  EXPECT_TRUE(b->Open(kId).ok());
  EXPECT_EQ(b->Open(kOther).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(std::filesystem::is_empty(dir / "data/tmp"));
}

}  // namespace
}  // namespace shredd
