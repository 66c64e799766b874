// BlobBackend: where ciphertext of large items lives. Ciphertext is harmless
// without the key tree, so it can sit on any storage; this interface is the
// seam for an S3-compatible backend later. The local one keeps files under
// DATA_DIR/blobs, and uploads in progress under DATA_DIR/tmp.
#ifndef SHREDD_DAEMON_STORAGE_BLOB_BACKEND_H_
#define SHREDD_DAEMON_STORAGE_BLOB_BACKEND_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shredd {

// An object being written. Destroying it without Publish() removes it.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual absl::Status Append(std::string_view ciphertext) = 0;
  // Appends the parts in order (one gathered write where the backend can).
  virtual absl::Status AppendParts(std::span<const std::string_view> parts) {
    for (std::string_view p : parts) {
      if (auto s = Append(p); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  // Room for up to `max` (> 0) bytes written in place, e.g. by a cipher:
  // at least one byte, valid until CommitReserved(n) appends the first n of
  // them. By default a scratch buffer that CommitReserved appends; a
  // backend with a write buffer of its own hands out that buffer.
  virtual std::span<char> Reserve(size_t max) {
    scratch_.resize(std::min(max, kScratchBytes));
    return {scratch_.data(), scratch_.size()};
  }
  virtual absl::Status CommitReserved(size_t n) { return Append(std::string_view(scratch_.data(), n)); }
  // A hint that no more data will come for a while: write out what is
  // buffered, as far as the backend can (not a sync).
  virtual absl::Status Flush() { return absl::OkStatus(); }
  // Makes the object durable and visible under its id.
  virtual absl::Status Publish() = 0;

 private:
  static constexpr size_t kScratchBytes = 1 << 20;
  std::string scratch_;  // ciphertext only
};

class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly `length` bytes at `offset` into *out. DATA_LOSS if the
  // object is shorter (truncated on disk).
  virtual absl::Status ReadAt(uint64_t offset, size_t length, std::string* out) = 0;
  // The same `length` bytes at `offset`, as a view valid until the next
  // call on this reader: into the backend's own read buffer where it holds
  // them in one piece (no copy), else read into *scratch. Errors as ReadAt.
  virtual absl::StatusOr<std::string_view> ReadView(uint64_t offset, size_t length, std::string* scratch) {
    scratch->clear();
    if (auto s = ReadAt(offset, length, scratch); !s.ok()) return s;
    return std::string_view(*scratch);
  }
};

class BlobBackend {
 public:
  virtual ~BlobBackend() = default;
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> Create(std::string_view object_id) = 0;
  virtual absl::StatusOr<std::unique_ptr<BlobReader>> Open(std::string_view object_id) = 0;
  // The most a writer / a reader of an object of `size` bytes holds in its
  // own buffers: what a transfer leases from the daemon's transfer memory
  // budget (daemon/base/memory_gate.h).
  virtual uint64_t WriterBufferBytes(uint64_t size) const = 0;
  virtual uint64_t ReaderBufferBytes(uint64_t size) const = 0;
  // OK if absent.
  virtual absl::Status Delete(std::string_view object_id) = 0;
  // Removes unfinished uploads left by a crash, and published objects for
  // which `is_live(object_id)` is false (orphans of a crash or of a shred).
  // An object the store refuses to delete does not stop it: its id goes to
  // *undeleted, the others are deleted, and the first failure is returned.
  // Unfinished uploads of an object for which `is_live` is true are left too.
  virtual absl::Status CollectGarbage(const std::function<bool(std::string_view)>& is_live,
                                      std::vector<std::string>* undeleted) = 0;
  // Whether other daemons may write beside this one (an object-store
  // prefix, shared by design or by mistake). Garbage collection then
  // deletes only what this daemon began itself (ItemStore's upload
  // intents) and leaves every object it does not know alone. A data dir's
  // own blob directory is not shared (one daemon per data dir).
  virtual bool Shared() const { return false; }
};

absl::StatusOr<std::unique_ptr<BlobBackend>> OpenFileBlobBackend(const std::string& data_dir);

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_BLOB_BACKEND_H_
