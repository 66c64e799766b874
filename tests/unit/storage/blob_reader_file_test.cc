// FileBlobBackend's reader (daemon/storage/blob_backend_file.cc): O_DIRECT
// windows of 8 MiB, the next one read ahead on another thread while a
// sequential read (a download) consumes the current one. Whatever the order
// of reads, every byte must come back exactly; a truncated object must give
// DATA_LOSS, never wrong or missing bytes; on tmpfs (no O_DIRECT before
// Linux 6.6: the buffered fallback) the same.
#include <stdlib.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "daemon/storage/blob_backend.h"
#include "tests/unit/test_util.h"

namespace shredd {
namespace {

using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kWindow = 8 * kMiB;   // the reader's window
constexpr uint64_t kStride = kMiB + 16;  // one sealed 1 MiB chunk, as a download reads it
const std::string kId = "00112233445566778899aabbccddeeff";

// Bytes that differ at every offset (a window served at the wrong place shows).
std::string Pattern(size_t size) {
  std::string s(size, '\0');
  uint32_t x = 12345;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245 + 12345;
    s[i] = static_cast<char>((x >> 16) ^ (i >> 12));
  }
  return s;
}

std::unique_ptr<BlobBackend> OpenIn(const std::string& dir, const std::string& content) {
  auto b = OpenFileBlobBackend(dir);
  EXPECT_TRUE(b.ok()) << b.status();
  auto w = (*b)->Create(kId);
  EXPECT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE((*w)->Append(content).ok());
  EXPECT_TRUE((*w)->Publish().ok());
  return std::move(*b);
}

std::string ObjectPath(const std::string& dir) { return dir + "/blobs/00/" + kId; }

std::unique_ptr<BlobReader> Reader(BlobBackend* b) {
  auto r = b->Open(kId);
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

// Reads [offset, offset + length) the way ItemReader does: a view, else a copy.
absl::StatusOr<std::string> ViewOf(BlobReader* r, uint64_t offset, size_t length) {
  std::string scratch;
  auto v = r->ReadView(offset, length, &scratch);
  if (!v.ok()) return v.status();
  return std::string(*v);
}

// A download: consecutive sealed chunks from the start, through ReadView
// (and ReadAt for every third chunk), across several windows and an
// unaligned end.
void ExpectSequentialReadIsExact(BlobBackend* b, const std::string& content) {
  auto r = Reader(b);
  ASSERT_EQ(r->size(), content.size());
  for (uint64_t at = 0, i = 0; at < content.size(); at += kStride, ++i) {
    const size_t n = std::min<uint64_t>(kStride, content.size() - at);
    std::string got;
    if (i % 3 == 2) {
      ASSERT_TRUE(r->ReadAt(at, n, &got).ok()) << "at " << at;
    } else {
      auto v = ViewOf(r.get(), at, n);
      ASSERT_TRUE(v.ok()) << v.status() << " at " << at;
      got = std::move(*v);
    }
    ASSERT_TRUE(got == content.substr(at, n)) << "wrong bytes at " << at;
  }
}

TEST(FileBlobReader, SequentialReadsAcrossWindowsAreExact) {
  TempDir dir;
  const std::string content = Pattern(3 * kWindow + 5 * kMiB + 4097);
  auto b = OpenIn(dir / "data", content);
  ExpectSequentialReadIsExact(b.get(), content);
  // An object of exactly two windows (the read-ahead must stop at its end).
  TempDir dir2;
  const std::string even = Pattern(2 * kWindow);
  auto b2 = OpenIn(dir2 / "data", even);
  ExpectSequentialReadIsExact(b2.get(), even);
}

// Ranged reads in between: backwards into an earlier window, far ahead,
// inside the current window, then the download goes on. The read-ahead in
// flight must be waited for and not be mistaken for the window asked for.
// Objects smaller than a window get a window of their own size (rounded up
// to a block, no huge page): every size around the block and huge-page
// boundaries reads back exactly, sequentially and by ranges, and the
// transfer budget's figure for them is that small window, not 8 MiB.
TEST(FileBlobReader, SmallObjectsAreReadThroughWindowsOfTheirSize) {
  for (uint64_t size : {uint64_t{1}, uint64_t{4095}, uint64_t{4096}, uint64_t{4097}, uint64_t{100000}, 2 * kMiB - 1,
                        2 * kMiB, 2 * kMiB + 1, kWindow - 4096, kWindow}) {
    SCOPED_TRACE(size);
    TempDir dir;
    const std::string content = Pattern(size);
    auto b = OpenIn(dir / "data", content);
    ExpectSequentialReadIsExact(b.get(), content);
    auto r = Reader(b.get());
    for (uint64_t at : {uint64_t{0}, size / 2, size - 1}) {
      auto v = ViewOf(r.get(), at, size - at);
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(*v, content.substr(at));
    }
  }
  TempDir budget_dir;
  auto b = OpenFileBlobBackend(budget_dir / "data");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->ReaderBufferBytes(100000), 2 * 102400u);
  EXPECT_EQ((*b)->ReaderBufferBytes(100 * kMiB), 2 * kWindow);
}

TEST(FileBlobReader, RangedReadsAfterSequentialOnesAreExact) {
  TempDir dir;
  const std::string content = Pattern(5 * kWindow + 12345);
  auto b = OpenIn(dir / "data", content);
  auto r = Reader(b.get());
  std::string got;
  uint64_t at = 0;
  auto next_chunk = [&] {
    auto v = ViewOf(r.get(), at, kStride);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE(*v == content.substr(at, kStride)) << "at " << at;
    at += kStride;
  };
  for (int i = 0; i < 10; ++i) next_chunk();  // into the second window, the third read ahead
  const uint64_t ranges[][2] = {{100, 5000},
                                {kWindow - 10, 20},           // across a window's end
                                {4 * kWindow + 7, kMiB},      // far ahead
                                {at - 3 * kStride, kStride},  // back
                                {2 * kWindow, 1},             // the read-ahead's window
                                {content.size() - 9, 9},      // the end
                                {kWindow / 2, 3 * kWindow},   // several windows in one read
                                {at, kStride}};               // where the download was
  for (const auto& [off, len] : ranges) {
    got.clear();
    ASSERT_TRUE(r->ReadAt(off, len, &got).ok()) << off;
    ASSERT_TRUE(got == content.substr(off, len)) << "ReadAt " << off;
    auto v = ViewOf(r.get(), off, len);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_TRUE(*v == content.substr(off, len)) << "ReadView " << off;
  }
  at += kStride;
  while (at + kStride <= content.size()) next_chunk();  // the download resumes
  got.clear();
  EXPECT_EQ(r->ReadAt(content.size() - 3, 10, &got).code(), absl::StatusCode::kDataLoss);
}

// The object loses its tail after the reader opened it (a damaged disk, a
// hostile operator): a download returns the bytes that are there, exact,
// then DATA_LOSS (also when the read-ahead is what finds the end).
TEST(FileBlobReader, ATruncatedObjectGivesDataLoss) {
  for (uint64_t keep : {kWindow + kMiB + 100, 2 * kWindow, kMiB / 2}) {
    TempDir dir;
    const std::string content = Pattern(4 * kWindow);
    auto b = OpenIn(dir / "data", content);
    auto r = Reader(b.get());
    auto first = ViewOf(r.get(), 0, 4096);  // the read-ahead starts
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_EQ(truncate(ObjectPath(dir / "data").c_str(), static_cast<off_t>(keep)), 0);
    absl::Status failed;
    for (uint64_t at = 4096; at < content.size() && failed.ok(); at += kStride) {
      const size_t n = std::min<uint64_t>(kStride, content.size() - at);
      auto v = ViewOf(r.get(), at, n);
      if (!v.ok()) {
        failed = v.status();
        EXPECT_GT(at + n, keep) << "failed before the end of what is left";
        break;
      }
      ASSERT_TRUE(*v == content.substr(at, n)) << "wrong bytes at " << at;
    }
    EXPECT_EQ(failed.code(), absl::StatusCode::kDataLoss) << "kept " << keep << ": " << failed;
    // A fresh reader sees the shorter size; reading past it is DATA_LOSS too.
    auto again = Reader(b.get());
    EXPECT_EQ(again->size(), keep);
    std::string out;
    EXPECT_EQ(again->ReadAt(keep - 1, 2, &out).code(), absl::StatusCode::kDataLoss);
  }
}

// tmpfs refused O_DIRECT before Linux 6.6 (the backend then reads and
// writes buffered) and accepts it since: the same results either way.
TEST(FileBlobReader, ReadsOnTmpfs) {
  struct statfs fs {};
  if (statfs("/dev/shm", &fs) != 0 || fs.f_type != 0x01021994 /* TMPFS_MAGIC */) {
    GTEST_SKIP() << "no tmpfs at /dev/shm";
  }
  std::string tmpl = "/dev/shm/shredd-unit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  {
    const std::string content = Pattern(2 * kWindow + 3 * kMiB + 1);
    auto b = OpenIn(dir + "/data", content);
    ExpectSequentialReadIsExact(b.get(), content);
    auto r = Reader(b.get());
    auto v = ViewOf(r.get(), kWindow - 5, 10);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(*v == content.substr(kWindow - 5, 10));
    ASSERT_EQ(truncate(ObjectPath(dir + "/data").c_str(), static_cast<off_t>(kWindow)), 0);
    auto cut = Reader(b.get());
    EXPECT_EQ(ViewOf(cut.get(), kWindow - 5, 10).status().code(), absl::StatusCode::kDataLoss);
    std::string out;
    EXPECT_EQ(cut->ReadAt(kWindow - 5, 10, &out).code(), absl::StatusCode::kDataLoss);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shredd
