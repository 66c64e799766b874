#include "daemon/storage/blob_backend_s3.h"

#include <algorithm>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "daemon/base/strings.h"

namespace shredd {
namespace {

// Multipart uploads this process is running: CollectGarbage leaves them be.
class ActiveUploads {
 public:
  void Add(const std::string& id) {
    std::lock_guard lock(mu_);
    ids_.insert(id);
  }
  void Remove(const std::string& id) {
    std::lock_guard lock(mu_);
    ids_.erase(id);
  }
  bool Contains(const std::string& id) const {
    std::lock_guard lock(mu_);
    return ids_.contains(id);
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> ids_;
};

class S3BlobWriter final : public BlobWriter {
 public:
  S3BlobWriter(std::shared_ptr<S3Client> client, std::shared_ptr<ActiveUploads> active, std::string key,
               S3BlobOptions options)
      : client_(std::move(client)), active_(std::move(active)), key_(std::move(key)), options_(options) {}

  // The part being filled, `concurrency` parts in flight and one spare.
  static uint64_t BufferBytes(uint64_t size, const S3BlobOptions& options) {
    const uint64_t part = std::min<uint64_t>(size, options.part_size);
    const uint64_t parts = part == 0 ? 1 : (size + part - 1) / part;
    return part * std::min<uint64_t>(parts + 1, static_cast<uint64_t>(options.concurrency) + 2);
  }

  ~S3BlobWriter() override {
    DrainInFlight();
    if (!upload_id_.empty() && !published_) {
      (void)client_->AbortMultipartUpload(key_, upload_id_);
      active_->Remove(upload_id_);
    }
  }

  absl::Status Append(std::string_view data) override {
    return ObjectStoreUnavailable(client_->config(), Buffer(data));
  }

  absl::Status Publish() override { return ObjectStoreUnavailable(client_->config(), Complete()); }

 private:
  struct PartResult {
    absl::StatusOr<std::string> etag;
    std::string buffer;  // handed back for reuse
  };

  absl::Status Buffer(std::string_view data) {
    if (!error_.ok()) return error_;
    if (published_) return absl::FailedPreconditionError("append to a published object");
    while (!data.empty()) {
      if (buffer_.capacity() < options_.part_size) buffer_.reserve(options_.part_size);
      const size_t take = std::min<uint64_t>(data.size(), options_.part_size - buffer_.size());
      buffer_.append(data.data(), take);
      data.remove_prefix(take);
      if (buffer_.size() == options_.part_size) {
        if (auto s = SubmitPart(); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Complete() {
    if (!error_.ok()) return error_;
    if (published_) return absl::OkStatus();
    if (upload_id_.empty()) {
      auto put = client_->PutObject(key_, buffer_);
      if (!put.ok()) return error_ = put.status();
      published_ = true;
      return absl::OkStatus();
    }
    if (!buffer_.empty()) {
      if (auto s = SubmitPart(); !s.ok()) return s;
    }
    DrainInFlight();
    if (!error_.ok()) return error_;
    std::sort(done_.begin(), done_.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
    if (auto s = client_->CompleteMultipartUpload(key_, upload_id_, done_); !s.ok()) return error_ = s;
    published_ = true;
    active_->Remove(upload_id_);
    return absl::OkStatus();
  }

  // Sends buffer_ as the next part, after waiting for a slot.
  absl::Status SubmitPart() {
    if (upload_id_.empty()) {
      auto id = client_->CreateMultipartUpload(key_);
      if (!id.ok()) return error_ = id.status();
      upload_id_ = *id;
      active_->Add(upload_id_);
    }
    if (next_part_ > kS3MaxParts) {
      return error_ = absl::ResourceExhaustedError(StrCat("object larger than ", kS3MaxParts, " parts of ",
                                                          options_.part_size,
                                                          " bytes (raise [object_store] part_size_mib)"));
    }
    while (in_flight_.size() >= static_cast<size_t>(options_.concurrency)) WaitOldest();
    if (!error_.ok()) return error_;
    std::string part = std::move(buffer_);
    buffer_ = TakeSpare();
    const int number = next_part_++;
    in_flight_.push_back({number, std::async(std::launch::async, [c = client_, key = key_, id = upload_id_, number,
                                                                  part = std::move(part)]() mutable {
                            auto etag = c->UploadPart(key, id, number, part);
                            part.clear();
                            return PartResult{std::move(etag), std::move(part)};
                          })});
    return absl::OkStatus();
  }

  void WaitOldest() {
    auto [number, future] = std::move(in_flight_.front());
    in_flight_.pop_front();
    PartResult r = future.get();
    if (r.etag.ok()) {
      done_.push_back({number, *std::move(r.etag)});
    } else if (error_.ok()) {
      error_ = r.etag.status();
    }
    if (spare_.empty()) spare_.push_back(std::move(r.buffer));
  }

  void DrainInFlight() {
    while (!in_flight_.empty()) WaitOldest();
  }

  std::string TakeSpare() {
    if (spare_.empty()) return {};
    std::string s = std::move(spare_.back());
    spare_.pop_back();
    return s;
  }

  std::shared_ptr<S3Client> client_;
  std::shared_ptr<ActiveUploads> active_;
  const std::string key_;
  const S3BlobOptions options_;
  std::string buffer_;
  std::vector<std::string> spare_;  // at most one buffer kept for reuse
  std::string upload_id_;
  int next_part_ = 1;
  std::deque<std::pair<int, std::future<PartResult>>> in_flight_;
  std::vector<S3CompletedPart> done_;
  absl::Status error_;
  bool published_ = false;
};

// A fetched range of ciphertext: its bytes or why the GET failed.
struct Window {
  uint64_t start = 0;
  absl::Status status;
  std::string bytes;
  uint64_t end() const { return start + bytes.size(); }
};

class S3BlobReader final : public BlobReader {
 public:
  S3BlobReader(std::shared_ptr<S3Client> client, std::string key, S3ObjectInfo info)
      : client_(std::move(client)), key_(std::move(key)), info_(std::move(info)) {}
  ~S3BlobReader() override { DropPrefetch(); }
  uint64_t size() const override { return info_.size; }
  // At most the current window and kPrefetch windows being fetched.
  static uint64_t BufferBytes(uint64_t size) { return (kPrefetch + 1) * std::min(size, kWindow); }

  // A read that continues the previous one (a download, chunk after chunk)
  // is served from windows of kWindow bytes, one ranged GET each, and the
  // next kPrefetch windows are fetched meanwhile on other connections: the
  // transfer overlaps the caller's decryption. A reader holds at most
  // (kPrefetch + 1) windows. Other reads fetch exactly what they ask for and
  // drop the prefetched windows. Windows hold ciphertext only, from the
  // object version pinned at Open (If-Match).
  absl::Status ReadAt(uint64_t offset, size_t length, std::string* out) override {
    return ObjectStoreUnavailable(client_->config(), Read(offset, length, out));
  }

  absl::StatusOr<std::string_view> ReadView(uint64_t offset, size_t length, std::string* scratch) override {
    auto view = View(offset, length, scratch);
    if (!view.ok()) return ObjectStoreUnavailable(client_->config(), view.status());
    return view;
  }

 private:
  static constexpr uint64_t kWindow = 8 << 20;
  static constexpr size_t kPrefetch = 3;

  absl::Status Read(uint64_t offset, size_t length, std::string* out) {
    if (length == 0) return absl::OkStatus();
    if (offset > info_.size || length > info_.size - offset) return Truncated();
    const bool sequential = offset == next_ && length < kWindow;
    next_ = offset + length;
    if (!sequential && !InWindow(offset, length)) {
      DropPrefetch();
      return Fetch(offset, length, out);
    }
    while (length > 0) {
      if (!InWindow(offset, 1)) {
        if (auto s = MoveWindowTo(offset); !s.ok()) return s;
      }
      const size_t take = std::min<uint64_t>(length, current_.end() - offset);
      out->append(current_.bytes, offset - current_.start, take);
      offset += take;
      length -= take;
    }
    return absl::OkStatus();
  }

  // A sequential read moves the window as ReadAt does; a range the window
  // then holds whole is handed out as a view of it (no copy). Anything else
  // is ReadAt's.
  absl::StatusOr<std::string_view> View(uint64_t offset, size_t length, std::string* scratch) {
    const bool sequential =
        offset == next_ && length > 0 && length < kWindow && offset <= info_.size && length <= info_.size - offset;
    if (sequential && !InWindow(offset, 1)) {
      if (auto s = MoveWindowTo(offset); !s.ok()) return s;
    }
    if (length > 0 && InWindow(offset, length)) {
      next_ = offset + length;
      return std::string_view(current_.bytes).substr(offset - current_.start, length);
    }
    return BlobReader::ReadView(offset, length, scratch);
  }

  bool InWindow(uint64_t offset, uint64_t length) const {
    return offset >= current_.start && offset + length <= current_.end();
  }

  // Makes the window that starts at `offset` current: the prefetched one if
  // it starts there (else fetched now), then tops the prefetch up.
  absl::Status MoveWindowTo(uint64_t offset) {
    Recycle(std::move(current_.bytes));
    current_ = Window{};
    if (!prefetch_.empty() && prefetch_.front().first == offset) {
      current_ = prefetch_.front().second.get();
      prefetch_.pop_front();
    } else {
      DropPrefetch();
      current_ = FetchWindow(client_, key_, info_.etag, offset, WindowLength(offset), TakeBuffer());
    }
    if (!current_.status.ok()) {
      absl::Status s = Failed(current_.status);
      current_ = Window{};
      DropPrefetch();
      return s;
    }
    uint64_t next = prefetch_.empty() ? current_.end() : prefetch_.back().first + WindowLength(prefetch_.back().first);
    while (prefetch_.size() < kPrefetch && next < info_.size) {
      prefetch_.emplace_back(next, std::async(std::launch::async, FetchWindow, client_, key_, info_.etag, next,
                                              WindowLength(next), TakeBuffer()));
      next += WindowLength(next);
    }
    return absl::OkStatus();
  }

  // Window buffers are reused: a fresh 8 MiB buffer costs 2,048 page faults
  // (it tripled the daemon's CPU time per downloaded byte).
  std::string TakeBuffer() {
    if (spare_.empty()) return {};
    std::string b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }
  void Recycle(std::string&& b) {
    b.clear();
    if (b.capacity() > 0 && spare_.size() <= kPrefetch) spare_.push_back(std::move(b));
  }

  uint64_t WindowLength(uint64_t offset) const { return std::min<uint64_t>(kWindow, info_.size - offset); }

  // Waits for the prefetches in flight and forgets them.
  void DropPrefetch() {
    for (auto& [start, f] : prefetch_) Recycle(f.get().bytes);
    prefetch_.clear();
  }

  static Window FetchWindow(std::shared_ptr<S3Client> client, std::string key, std::string etag, uint64_t offset,
                            uint64_t length, std::string buffer) {
    Window w{.start = offset, .status = {}, .bytes = std::move(buffer)};
    w.bytes.clear();
    w.bytes.reserve(length);
    w.status = client->GetObject(key, offset, length, &w.bytes, etag);
    if (w.status.ok() && w.bytes.size() != length) w.status = absl::OutOfRangeError("short read");
    return w;
  }

  absl::Status Fetch(uint64_t offset, uint64_t length, std::string* out) {
    const size_t base = out->size();
    absl::Status s = client_->GetObject(key_, offset, length, out, info_.etag);
    if (s.ok() && out->size() - base == length) return s;
    out->resize(base);
    return Failed(s);
  }

  // The reader's error for a failed or short GET.
  absl::Status Failed(const absl::Status& s) const {
    if (s.ok() || absl::IsOutOfRange(s)) return Truncated();
    if (absl::IsNotFound(s) || absl::IsFailedPrecondition(s)) {
      // Deleted or replaced since Open (If-Match failed), or the bucket is gone.
      return absl::DataLossError(
          StrCat("stored object ", Name(), " changed or vanished while being read (", s.message(), ")"));
    }
    return s;
  }

  std::string Name() const { return StrCat("s3://", client_->config().bucket, "/", key_); }
  absl::Status Truncated() const { return absl::DataLossError(StrCat("stored object ", Name(), " is truncated")); }

  std::shared_ptr<S3Client> client_;
  const std::string key_;
  const S3ObjectInfo info_;
  Window current_;                                                 // bytes [start, end())
  std::deque<std::pair<uint64_t, std::future<Window>>> prefetch_;  // the windows after it, in order
  std::vector<std::string> spare_;                                 // emptied window buffers
  uint64_t next_ = UINT64_MAX;                                     // where the previous read ended
};

class S3BlobBackend final : public BlobBackend {
 public:
  S3BlobBackend(std::shared_ptr<S3Client> client, S3BlobOptions options)
      : client_(std::move(client)), options_(options), active_(std::make_shared<ActiveUploads>()) {}

  absl::StatusOr<std::unique_ptr<BlobWriter>> Create(std::string_view id) override {
    return std::make_unique<S3BlobWriter>(client_, active_, client_->KeyFor(id), options_);
  }

  absl::StatusOr<std::unique_ptr<BlobReader>> Open(std::string_view id) override {
    std::string key = client_->KeyFor(id);
    auto info = client_->HeadObject(key);
    if (absl::IsNotFound(info.status())) {
      return absl::DataLossError(StrCat("stored object s3://", client_->config().bucket, "/", key, " is missing"));
    }
    if (!info.ok()) return ObjectStoreUnavailable(client_->config(), info.status());
    return std::make_unique<S3BlobReader>(client_, std::move(key), *std::move(info));
  }

  uint64_t WriterBufferBytes(uint64_t size) const override { return S3BlobWriter::BufferBytes(size, options_); }
  uint64_t ReaderBufferBytes(uint64_t size) const override { return S3BlobReader::BufferBytes(size); }

  absl::Status Delete(std::string_view id) override {
    const std::string key = client_->KeyFor(id);
    std::vector<S3ObjectVersion> all;
    auto s = client_->ForEachVersion(key, [&](const S3ObjectVersion& v) {
      if (v.key == key) all.push_back(v);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return DeleteVersions(all);
  }

  bool Shared() const override { return true; }

  absl::Status CollectGarbage(const std::function<bool(std::string_view)>& is_live,
                              std::vector<std::string>* undeleted) override {
    absl::Status first = AbortStaleUploads(is_live);  // what it leaves, the next start aborts
    std::vector<S3ObjectVersion> dead;
    auto s = client_->ForEachVersion(client_->KeyFor(""), [&](const S3ObjectVersion& v) {
      std::string_view name = BlobName(v.key);
      if (name.empty() || is_live(name)) return absl::OkStatus();
      dead.push_back(v);
      if (dead.size() >= 1000) DeleteDead(&dead, undeleted, &first);
      return absl::OkStatus();
    });
    DeleteDead(&dead, undeleted, &first);
    return first.ok() ? s : first;
  }

 private:
  // Deletes the versions in *dead and clears it; the names of the objects
  // the store refused go to *undeleted (once each), the first error to *first.
  void DeleteDead(std::vector<S3ObjectVersion>* dead, std::vector<std::string>* undeleted, absl::Status* first) {
    std::vector<std::string> refused;
    absl::Status s = client_->DeleteObjects(*dead, &refused);
    if (!s.ok() && refused.empty()) {
      for (const auto& v : *dead) refused.push_back(v.key);
    }
    for (const std::string& key : refused) {
      std::string name(BlobName(key));
      // Versions of one key are listed together: a repeat is the last name.
      if (undeleted->empty() || undeleted->back() != name) undeleted->push_back(std::move(name));
    }
    if (first->ok()) *first = s;
    dead->clear();
  }

  // The object name of `key` if it is directly under the prefix (a blob of
  // this daemon's), else empty: keys with a further '/' are the state, the
  // tiles, or another daemon's under a longer prefix of the same bucket.
  std::string_view BlobName(std::string_view key) const {
    const std::string dir = client_->KeyFor("");
    if (!key.starts_with(dir)) return {};
    std::string_view name = key.substr(dir.size());
    return name.find('/') == std::string_view::npos ? name : std::string_view();
  }

  absl::Status DeleteVersions(std::span<const S3ObjectVersion> versions) {
    for (size_t i = 0; i < versions.size(); i += 1000) {
      auto batch = versions.subspan(i, std::min<size_t>(1000, versions.size() - i));
      if (auto s = client_->DeleteObjects(batch); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status AbortStaleUploads(const std::function<bool(std::string_view)>& is_live) {
    std::string key_marker, id_marker;
    for (;;) {
      auto page = client_->ListMultipartUploads(client_->KeyFor(""), key_marker, id_marker);
      if (!page.ok()) return page.status();
      for (const auto& u : page->uploads) {
        // Only this daemon's own objects: another daemon under a longer
        // prefix of the same bucket has its uploads in flight there.
        if (BlobName(u.key).empty() || active_->Contains(u.upload_id) || is_live(BlobName(u.key))) continue;
        if (auto s = client_->AbortMultipartUpload(u.key, u.upload_id); !s.ok()) return s;
      }
      if (!page->truncated) return absl::OkStatus();
      key_marker = page->next_key_marker;
      id_marker = page->next_upload_id_marker;
    }
  }

  std::shared_ptr<S3Client> client_;
  const S3BlobOptions options_;
  std::shared_ptr<ActiveUploads> active_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlobBackend>> OpenS3BlobBackend(std::shared_ptr<S3Client> client,
                                                               S3BlobOptions options) {
  if (client == nullptr) return absl::InvalidArgumentError("object store: no client");
  if (options.part_size < kS3MinPartSize || options.part_size > kS3MaxPartSize) {
    return absl::InvalidArgumentError(
        StrCat("object store part size must be between 5 MiB and 5 GiB, got ", options.part_size, " bytes"));
  }
  if (options.concurrency < 1 || options.concurrency > 64) {
    return absl::InvalidArgumentError(
        StrCat("object store concurrency must be between 1 and 64, got ", options.concurrency));
  }
  return std::make_unique<S3BlobBackend>(std::move(client), options);
}

}  // namespace shredd
