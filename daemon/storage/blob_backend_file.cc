#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <future>
#include <vector>

#include "daemon/base/direct_buffer.h"
#include "daemon/base/fs_util.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/blob_backend.h"

namespace shredd {
namespace {

constexpr size_t kDirectAlign = kDirectIoAlign;
constexpr size_t kDirectBuffer = 8 << 20;  // one write / one read-ahead window

// A reader's O_DIRECT window for an object of `size` bytes: 8 MiB, or the
// object rounded up to a block. A 100 KB object in an 8 MiB huge-page window
// cost a 2 MiB page clear and an 8 MiB read request per get: 1,000 gets of
// 100 KB took 2.3-2.8 daemon CPU-s, 1.2-1.9 with windows sized to the object
// (docs/PERFORMANCE.md "Small blobs").
size_t DirectBufferSize(uint64_t size) {
  if (size == 0) return kDirectAlign;
  return std::min<uint64_t>(kDirectBuffer, (size + kDirectAlign - 1) / kDirectAlign * kDirectAlign);
}

// What the two O_DIRECT buffers of a writer (8 MiB each) or a reader (sized
// to the object) of `size` bytes make resident at most. Buffered I/O (no
// O_DIRECT) holds nothing of its own.
uint64_t WriteBuffersTouched(uint64_t size) {
  return 2 * DirectIoBuffer::Touched(kDirectBuffer, std::min<uint64_t>(size, kDirectBuffer));
}
uint64_t ReadBuffersTouched(uint64_t size) {
  const size_t one = DirectBufferSize(size);
  return 2 * DirectIoBuffer::Touched(one, one);
}

// Writes go to DATA_DIR/tmp/ID.part and are made durable by one fdatasync
// in Publish().
//
// Large objects are written with O_DIRECT from an aligned 8 MiB buffer
// (ciphertext only; the tail is padded to the block size, then the file is
// truncated to its length). Measured on the 2-core VM of docs/PERFORMANCE.md,
// buffered writes of fresh data ran at 90-400 MB/s (most of the time in the
// kernel's copy into newly allocated page-cache pages, then one long
// writeback at the final sync), O_DIRECT writes of 8 MiB at 0.7-1.2 GB/s. If
// the filesystem refuses O_DIRECT (tmpfs, some FUSE), writes are buffered,
// and writeback of every kWritebackStep bytes is started as soon as they are
// written (sync_file_range WRITE), waiting for ranges more than
// kWritebackWindow behind, so the final sync does not have to push the whole
// object at once. Errors of these hints are ignored: fdatasync reports them.
class FileBlobWriter final : public BlobWriter {
 public:
  static constexpr uint64_t kWritebackStep = 8 << 20;
  static constexpr uint64_t kWritebackWindow = 64 << 20;

  // Whole 8 MiB buffers whatever the object's size: sizing them to small
  // objects (as the reader does) measured no gain for 100 KB puts (1,000
  // puts: 2.78-4.31 daemon CPU-s either way, load 4; docs/PERFORMANCE.md
  // "Small blobs"). The second buffer is mapped only once the first is full.
  FileBlobWriter(int fd, bool direct, std::string tmp, std::string final_path)
      : fd_(fd), direct_(direct), tmp_(std::move(tmp)), final_(std::move(final_path)), buf_size_(kDirectBuffer) {
    if (direct_) bufs_[0] = std::make_unique<DirectIoBuffer>(buf_size_);
  }
  ~FileBlobWriter() override {
    (void)WaitForWrite();
    if (fd_ >= 0) close(fd_);
    if (!published_) unlink(tmp_.c_str());
  }
  absl::Status Append(std::string_view data) override {
    std::string_view one[1] = {data};
    return AppendParts(one);
  }
  absl::Status AppendParts(std::span<const std::string_view> parts) override {
    if (direct_) {
      if (!HaveBuffer()) return absl::ResourceExhaustedError("cannot allocate a write buffer");
      for (std::string_view p : parts) {
        while (!p.empty()) {
          size_t n = std::min(p.size(), buf_size_ - fill_);
          std::memcpy(buf() + fill_, p.data(), n);
          fill_ += n;
          p.remove_prefix(n);
          if (fill_ == buf_size_) {
            if (auto s = StartFullBufferWrite(); !s.ok()) return s;
          }
        }
      }
      return absl::OkStatus();
    }
    std::vector<iovec> iov;
    iov.reserve(parts.size());
    for (std::string_view p : parts) {
      if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
    }
    size_t first = 0;
    while (first < iov.size()) {
      int cnt = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
      ssize_t n = pwritev(fd_, iov.data() + first, cnt, static_cast<off_t>(written_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("cannot write", tmp_, errno);
      }
      written_ += static_cast<uint64_t>(n);
      auto left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    StartWriteback();
    return absl::OkStatus();
  }
  std::span<char> Reserve(size_t max) override {
    if (!direct_ || !HaveBuffer()) return BlobWriter::Reserve(max);
    return {buf() + fill_, std::min(max, buf_size_ - fill_)};
  }
  absl::Status CommitReserved(size_t n) override {
    if (!direct_ || !HaveBuffer()) return BlobWriter::CommitReserved(n);
    fill_ += n;
    return fill_ == buf_size_ ? StartFullBufferWrite() : absl::OkStatus();
  }
  absl::Status Flush() override {
    if (!direct_ || fill_ < kDirectAlign) return absl::OkStatus();
    const size_t aligned = fill_ / kDirectAlign * kDirectAlign, rest = fill_ - aligned;
    if (auto s = WriteBuffer(aligned); !s.ok()) return s;
    std::memmove(buf(), buf() + aligned, rest);
    fill_ = rest;
    return absl::OkStatus();
  }
  absl::Status Publish() override {
    if (direct_ && fill_ > 0) {
      const uint64_t length = written_ + fill_;
      size_t padded = (fill_ + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
      std::memset(buf() + fill_, 0, padded - fill_);
      if (auto s = WriteBuffer(padded); !s.ok()) return s;
      if (ftruncate(fd_, static_cast<off_t>(length)) != 0) return ErrnoStatus("cannot truncate", tmp_, errno);
      written_ = length;
    }
    if (auto s = WaitForWrite(); !s.ok()) return s;
    if (fdatasync(fd_) != 0) return ErrnoStatus("cannot sync", tmp_, errno);
    close(fd_);
    fd_ = -1;
    std::string dir = DirName(final_);
    if (auto s = MakeDirs(dir, 0700); !s.ok()) return s;
    if (rename(tmp_.c_str(), final_.c_str()) != 0) return ErrnoStatus("cannot publish", final_, errno);
    published_ = true;
    return FsyncDir(dir);
  }

 private:
  char* buf() { return bufs_[current_]->data(); }
  // The buffer being filled exists (the second one is mapped when the first
  // is full: never for an object that fits one buffer).
  bool HaveBuffer() const { return bufs_[current_] != nullptr && bufs_[current_]->data() != nullptr; }

  // Writes buf()[0, length) at written_ (length is a multiple of the block
  // size, except in buffered fallback), after the write in flight.
  absl::Status WriteBuffer(size_t length) {
    if (auto s = WaitForWrite(); !s.ok()) return s;
    if (auto s = WriteAt(buf(), length, written_); !s.ok()) return s;
    written_ += length;
    fill_ = 0;
    return absl::OkStatus();
  }

  // A full buffer is written on a thread of its own while the other one
  // fills (sealing overlaps the disk); one write in flight at a time.
  absl::Status StartFullBufferWrite() {
    if (auto s = WaitForWrite(); !s.ok()) return s;
    in_flight_ = std::async(std::launch::async,
                            [this, data = buf(), n = buf_size_, at = written_] { return WriteAt(data, n, at); });
    written_ += buf_size_;
    current_ ^= 1;
    fill_ = 0;
    if (bufs_[current_] == nullptr) bufs_[current_] = std::make_unique<DirectIoBuffer>(buf_size_);
    if (!HaveBuffer()) return absl::ResourceExhaustedError("cannot allocate a write buffer");
    return absl::OkStatus();
  }

  absl::Status WaitForWrite() {
    if (!in_flight_.valid()) return absl::OkStatus();
    return in_flight_.get();
  }

  absl::Status WriteAt(const char* data, size_t length, uint64_t at) {
    size_t done = 0;
    while (done < length) {
      ssize_t n = pwrite(fd_, data + done, length - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EINVAL && !fell_back_) {
        // O_DIRECT accepted at open but not for writes: go on buffered
        // (through the same buffer).
        fell_back_ = true;
        int fl = fcntl(fd_, F_GETFL);
        if (fl < 0 || fcntl(fd_, F_SETFL, fl & ~O_DIRECT) != 0) return ErrnoStatus("cannot write", tmp_, errno);
        continue;
      }
      if (n < 0) return ErrnoStatus("cannot write", tmp_, errno);
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  void StartWriteback() {
    if (written_ - started_ < kWritebackStep) return;
    (void)sync_file_range(fd_, static_cast<off_t>(started_), static_cast<off_t>(written_ - started_),
                          SYNC_FILE_RANGE_WRITE);
    started_ = written_;
    if (started_ - waited_ > kWritebackWindow) {
      uint64_t upto = started_ - kWritebackWindow / 2;
      (void)sync_file_range(fd_, static_cast<off_t>(waited_), static_cast<off_t>(upto - waited_),
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      waited_ = upto;
    }
  }

  int fd_;
  bool direct_;
  std::string tmp_, final_;
  bool published_ = false;
  uint64_t written_ = 0, started_ = 0, waited_ = 0;
  const size_t buf_size_;
  std::unique_ptr<DirectIoBuffer> bufs_[2];  // O_DIRECT only: one filling, one being written
  int current_ = 0;
  size_t fill_ = 0;
  std::future<absl::Status> in_flight_;  // the other buffer's write
  bool fell_back_ = false;
};

// Reads with O_DIRECT through 8 MiB aligned windows (sequential reads of a
// large object then cost one large read per 8 MiB and no page cache), or
// buffered if the filesystem refuses O_DIRECT.
//
// While a sequential read (a download, chunk after chunk) consumes one
// window, the next one is read into a second buffer on a thread of its own,
// so the disk overlaps the caller's decryption (one read in flight, as in
// FileBlobWriter). A read that does not continue the previous one starts no
// read-ahead; if it leaves the window, it waits for the read in flight and
// uses its window only if it is the one needed. A read-ahead that fails is
// done again in the caller's thread, which reports the error (or falls back
// to buffered reads).
class FileBlobReader final : public BlobReader {
 public:
  FileBlobReader(int fd, bool direct, uint64_t size, std::string path)
      : fd_(fd), direct_(direct), size_(size), window_(DirectBufferSize(size)), path_(std::move(path)) {}
  ~FileBlobReader() override {
    if (ahead_.valid()) ahead_.wait();  // it reads into our buffer
    close(fd_);
  }
  uint64_t size() const override { return size_; }

  absl::Status ReadAt(uint64_t offset, size_t length, std::string* out) override {
    const bool sequential = Continues(offset, length);
    const size_t base = out->size();
    out->resize(base + length);
    absl::Status s = ReadInto(offset, length, out->data() + base, sequential);
    if (!s.ok()) out->resize(base);
    return s;
  }

  absl::StatusOr<std::string_view> ReadView(uint64_t offset, size_t length, std::string* scratch) override {
    const bool sequential = Continues(offset, length);
    if (Windowed() && length > 0 && !Current().Holds(offset, 1)) {
      if (auto s = MoveWindowTo(offset, sequential); !s.ok()) return s;
    }
    if (Windowed() && Current().Holds(offset, length)) {
      return std::string_view(Current().buf->data() + (offset - Current().off), length);
    }
    scratch->resize(length);  // the range crosses a window's end: copied
    if (auto s = ReadInto(offset, length, scratch->data(), sequential); !s.ok()) return s;
    return std::string_view(*scratch);
  }

 private:
  struct Window {
    std::unique_ptr<DirectIoBuffer> buf;
    uint64_t off = 0, len = 0;
    bool Holds(uint64_t pos, uint64_t n) const { return pos >= off && pos + n <= off + len; }
  };
  struct WindowRead {
    uint64_t len = 0;
    int err = 0;
  };

  Window& Current() { return win_[cur_]; }
  bool Windowed() {
    if (!direct_) return false;
    if (!win_[0].buf) win_[0].buf = std::make_unique<DirectIoBuffer>(window_);
    return win_[0].buf->data() != nullptr;
  }
  // Whether [offset, offset + length) continues the previous read.
  bool Continues(uint64_t offset, size_t length) {
    const bool sequential = offset == next_;
    next_ = offset + length;
    return sequential;
  }

  absl::Status ReadInto(uint64_t offset, size_t length, char* dst, bool sequential) {
    size_t done = 0;
    while (done < length && Windowed()) {
      const uint64_t pos = offset + done;
      if (!Current().Holds(pos, 1)) {
        if (auto s = MoveWindowTo(pos, sequential); !s.ok()) return s;
        continue;  // (or fell back to buffered reads)
      }
      const Window& w = Current();
      size_t take = std::min<uint64_t>(length - done, w.off + w.len - pos);
      std::memcpy(dst + done, w.buf->data() + (pos - w.off), take);
      done += take;
    }
    while (done < length) {
      ssize_t n = pread(fd_, dst + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("cannot read", path_, errno);
      if (n == 0) return Truncated();
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // Makes the window holding `pos` current: the one read ahead if it is
  // that window, else read now. Then, for a sequential read, starts reading
  // the next window.
  absl::Status MoveWindowTo(uint64_t pos, bool sequential) {
    const uint64_t at = pos / kDirectAlign * kDirectAlign;
    bool moved = false;
    if (ahead_.valid()) {
      WindowRead r = ahead_.get();
      Window& next = win_[cur_ ^ 1];
      next.len = r.err == 0 ? r.len : 0;
      if (next.off == at && next.Holds(pos, 1)) {
        cur_ ^= 1;
        moved = true;
      }
    }
    if (!moved) {
      Window& w = Current();
      w.off = at;
      w.len = 0;
      WindowRead r = ReadWindow(w.buf->data(), at);
      if (r.err == EINVAL) return FallBackToBuffered();
      if (r.err != 0) return ErrnoStatus("cannot read", path_, r.err);
      w.len = r.len;
      if (!w.Holds(pos, 1)) return Truncated();
    }
    const Window& w = Current();
    if (sequential && w.len == window_ && w.off + w.len < size_) StartReadAhead(w.off + w.len);
    return absl::OkStatus();
  }

  void StartReadAhead(uint64_t at) {
    Window& next = win_[cur_ ^ 1];
    if (!next.buf) next.buf = std::make_unique<DirectIoBuffer>(window_);
    if (next.buf->data() == nullptr) return;  // no memory for it: no read-ahead
    next.off = at;
    next.len = 0;
    ahead_ = std::async(std::launch::async, [this, data = next.buf->data(), at] { return ReadWindow(data, at); });
  }

  // Up to one window at `at` (block-aligned); shorter at the end of file.
  WindowRead ReadWindow(char* data, uint64_t at) const {
    WindowRead r;
    while (r.len < window_) {
      ssize_t n = pread(fd_, data + r.len, window_ - r.len, static_cast<off_t>(at + r.len));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        r.err = errno;
        return r;
      }
      if (n == 0) break;
      r.len += static_cast<uint64_t>(n);
      if (r.len % kDirectAlign != 0) break;  // end of file
    }
    return r;
  }

  // O_DIRECT accepted at open but not for reads (EINVAL): buffered reads.
  absl::Status FallBackToBuffered() {
    int fl = fcntl(fd_, F_GETFL);
    if (fl < 0 || fcntl(fd_, F_SETFL, fl & ~O_DIRECT) != 0) return ErrnoStatus("cannot read", path_, errno);
    direct_ = false;
    return absl::OkStatus();
  }

  absl::Status Truncated() const { return absl::DataLossError(StrCat("stored object ", path_, " is truncated")); }

  const int fd_;
  bool direct_;
  const uint64_t size_;
  const size_t window_;  // bytes per window: 8 MiB, or the object's size rounded up to a block
  const std::string path_;
  Window win_[2];  // O_DIRECT only: the current window and the one read ahead
  int cur_ = 0;
  std::future<WindowRead> ahead_;  // reads into win_[cur_ ^ 1]
  uint64_t next_ = 0;              // where a sequential read continues
};

class FileBlobBackend final : public BlobBackend {
 public:
  explicit FileBlobBackend(std::string root) : root_(std::move(root)) {}

  absl::StatusOr<std::unique_ptr<BlobWriter>> Create(std::string_view id) override {
    std::string tmp = StrCat(root_, "/tmp/", id, ".part");
    bool direct = true;
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);
    if (fd < 0 && errno == EINVAL) {
      direct = false;
      fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) return ErrnoStatus("cannot create", tmp, errno);
    return std::make_unique<FileBlobWriter>(fd, direct, std::move(tmp), Path(id));
  }

  absl::StatusOr<std::unique_ptr<BlobReader>> Open(std::string_view id) override {
    std::string path = Path(id);
    bool direct = true;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0 && errno == EINVAL) {
      direct = false;
      fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
      if (errno == ENOENT) return absl::DataLossError(StrCat("stored object ", path, " is missing"));
      return ErrnoStatus("cannot open", path, errno);
    }
    struct stat st {};
    fstat(fd, &st);
    return std::make_unique<FileBlobReader>(fd, direct, static_cast<uint64_t>(st.st_size), std::move(path));
  }

  uint64_t WriterBufferBytes(uint64_t size) const override { return WriteBuffersTouched(size); }
  uint64_t ReaderBufferBytes(uint64_t size) const override { return ReadBuffersTouched(size); }

  absl::Status Delete(std::string_view id) override {
    std::string path = Path(id);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("cannot delete", path, errno);
    return absl::OkStatus();
  }

  absl::Status CollectGarbage(const std::function<bool(std::string_view)>& is_live,
                              std::vector<std::string>* undeleted) override {
    for (const auto& name : ListDir(root_ + "/tmp")) unlink(StrCat(root_, "/tmp/", name).c_str());
    absl::Status first;
    for (const auto& sub : ListDir(root_ + "/blobs")) {
      std::string dir = StrCat(root_, "/blobs/", sub);
      for (const auto& name : ListDir(dir)) {
        if (is_live(name)) continue;
        const std::string path = StrCat(dir, "/", name);
        if (unlink(path.c_str()) == 0 || errno == ENOENT) continue;
        if (first.ok()) first = ErrnoStatus("cannot delete", path, errno);
        undeleted->push_back(name);
      }
    }
    return first;
  }

  std::string Path(std::string_view id) const { return StrCat(root_, "/blobs/", id.substr(0, 2), "/", id); }

 private:
  static std::vector<std::string> ListDir(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") out.emplace_back(n);
    }
    closedir(d);
    return out;
  }

  std::string root_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobBackend>> OpenFileBlobBackend(const std::string& data_dir) {
  if (auto s = MakeDirs(data_dir + "/tmp"); !s.ok()) return s;
  if (auto s = MakeDirs(data_dir + "/blobs"); !s.ok()) return s;
  return std::make_unique<FileBlobBackend>(data_dir);
}

}  // namespace shredd
