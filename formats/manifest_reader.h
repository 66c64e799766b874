// Internal to shredd_formats: one streaming pass over a private manifest
// (docs/FORMATS.md, "Private manifest"), the reading half of manifest.h.
//
// The JSON is parsed by RapidJSON's SAX Reader (Debian rapidjson-dev), fed
// piece by piece from an Input, with a handler that keeps no document tree:
// per item it checks the item, hashes its leaf and folds it into the root,
// and keeps 8 bytes of its digest. Parser settings and why:
//  * iterative parsing: no recursion, so no nesting depth can overflow the
//    stack;
//  * strict UTF-8 (kParseValidateEncodingFlag), plus a check RapidJSON lacks:
//    an escaped lone low surrogate ("\udc00") is refused, as nlohmann did;
//  * one document (kParseStopWhenDoneFlag, then only JSON whitespace may
//    follow: RapidJSON's streams signal their end with a NUL, so a raw NUL
//    after the document is looked at here and refused);
//  * integers as docs/FORMATS.md writes them: only a non-negative decimal
//    without fraction or exponent up to 2^64-1 is an integer; other numbers
//    must still be finite (nlohmann refused 1e400 and so does this);
//  * a member that the verifier reads ("type", "certificateId",
//    "merkleRoot", "items", "order" and, inside them, "kind", "digest",
//    "size", "salt", "private") may not appear twice in one object: a DOM
//    parser would silently keep one of them. Members it does not read are
//    skipped without being remembered.
// Accepts exactly the JSON texts nlohmann::json::parse accepted (the
// differential tests in tests/formats/manifest_test.cc and the manifest
// fuzzer hold it to that), except a repeated member and a trailing NUL.
//
// Memory: one read piece, O(log n) hashes, 8 bytes per item, the header
// strings, and RapidJSON's buffer for the string being read (so the longest
// string in the file; an item's kind, digest or salt is kept only up to
// 4 KiB).
#ifndef SHREDD_FORMATS_MANIFEST_READER_H_
#define SHREDD_FORMATS_MANIFEST_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "formats/merkle.h"

namespace shredd::verify::manifest_internal {

// Where the manifest bytes come from: pieces in order, restartable for a
// second pass.
class Input {
 public:
  virtual ~Input() = default;
  virtual absl::Status Rewind() = 0;
  // The next piece; *size == 0 at the end.
  virtual absl::Status Next(const char** data, size_t* size) = 0;
};

class MemoryInput final : public Input {
 public:
  explicit MemoryInput(std::string_view text) : text_(text) {}
  absl::Status Rewind() override;
  absl::Status Next(const char** data, size_t* size) override;

 private:
  std::string_view text_;
  bool done_ = false;
};

class FileInput final : public Input {
 public:
  // NotFound if `path` does not exist, FailedPrecondition if it cannot be
  // opened.
  static absl::StatusOr<std::unique_ptr<FileInput>> Open(const std::string& path, size_t buffer_bytes);
  ~FileInput() override;
  FileInput(const FileInput&) = delete;
  FileInput& operator=(const FileInput&) = delete;
  absl::Status Rewind() override;
  absl::Status Next(const char** data, size_t* size) override;

 private:
  FileInput(int fd, std::string path, size_t cap);
  int fd_;
  std::string path_;
  std::unique_ptr<char[]> buf_;
  size_t cap_;
};

// A member read as a string: absent, a string, or some other JSON type.
struct StringField {
  bool present = false;
  const char* other_type = nullptr;  // set iff present and not a string
  std::string value;
};

// Sees each well-formed item's leaf, in manifest order (receipts).
class LeafVisitor {
 public:
  virtual ~LeafVisitor() = default;
  // The item at position `index` among well-formed items; `salt` is 64
  // lowercase hex.
  virtual void Leaf(uint64_t index, const Hash& leaf, std::string_view kind, std::string_view digest, uint64_t size,
                    std::string_view salt) = 0;
};

struct ReadOptions {
  uint64_t expected_items = 0;  // to reserve the digest prefixes
  // Sorted digest prefixes whose items' full digests to collect (a second
  // pass), or nullptr to keep every item's prefix instead.
  const std::vector<uint64_t>* collect = nullptr;
  // Called for every well-formed item; a pass with a visitor keeps no
  // digest prefixes.
  LeafVisitor* visitor = nullptr;
};

// What one pass established. The first defect of each kind is kept, so
// that the verdict can report them in the order the DOM verifier did.
struct ManifestFacts {
  uint64_t bytes = 0;
  bool not_object = false;
  absl::Status dup_error;  // a member the verifier reads, given twice
  StringField type, certificate_id, merkle_root;
  bool items_present = false;
  const char* items_type = nullptr;  // set iff "items" is not an array
  bool order_present = false, order_is_object = false;
  StringField order_private, order_salt;
  uint64_t count = 0;       // items seen
  uint64_t valid = 0;       // well-formed items hashed (== count if no error)
  absl::Status item_error;  // the first malformed item
  uint64_t photos = 0, models = 0;
  int64_t order_error_at = -1;         // first item whose leaf does not ascend
  Hash root{};                         // RFC 6962 root of the well-formed items
  std::vector<uint64_t> prefixes;      // first 8 bytes of every digest
  std::vector<std::string> collected;  // full digests asked for by `collect`
};

// Reads the whole input once. InvalidArgument "manifest is not valid JSON:
// <what> at byte <n>[ (in manifest.items[i])]" if it is not one JSON text;
// the input's own status if it cannot be read. Defects of a valid JSON text
// are recorded in *facts, not returned.
absl::Status ReadManifest(Input* in, const ReadOptions& options, ManifestFacts* facts);

// Without a certificate: OK iff the manifest is well formed, its items are
// in tree order and its root is the merkleRoot it states.
absl::Status Wellformed(const ManifestFacts& facts);

// manifest.<name> is present and a string, else InvalidArgument.
absl::Status StringMember(const StringField& f, std::string_view name);

}  // namespace shredd::verify::manifest_internal

#endif  // SHREDD_FORMATS_MANIFEST_READER_H_
