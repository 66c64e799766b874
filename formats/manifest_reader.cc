#include "formats/manifest_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "formats/certificate.h"
#include "formats/compact_range.h"
#include "formats/encoding.h"
#include "formats/str_util.h"

// RapidJSON asserts (abort) on API misuse only; input errors are results.
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

namespace shredd::verify::manifest_internal {

using internal::Cat;

namespace {

constexpr std::string_view kDigestPrefix = "sha256:";
// An item's kind, digest or salt longer than this is wrong anyway; only its
// beginning is kept (for the error message).
constexpr size_t kMaxItemString = 4096;

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

// Lowercase hex digit values, 0x80 for any other byte.
struct HexTable {
  uint8_t v[256];
  constexpr HexTable() : v() {
    for (int c = 0; c < 256; ++c) {
      v[c] = c >= '0' && c <= '9'   ? static_cast<uint8_t>(c - '0')
             : c >= 'a' && c <= 'f' ? static_cast<uint8_t>(c - 'a' + 10)
                                    : 0x80;
    }
  }
};
constexpr HexTable kHex;

bool IsLowerHex(std::string_view s) {
  uint8_t acc = 0;
  for (char c : s) acc |= kHex.v[static_cast<unsigned char>(c)];
  return (acc & 0x80) == 0;
}

template <size_t N>
bool Is(std::string_view key, const char (&lit)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), lit, N - 1) == 0;
}

// A RapidJSON input stream over the pieces of an Input. Like RapidJSON's
// own streams it returns '\0' at the end; a read error ends the stream too
// and is kept in status().
class PieceStream {
 public:
  using Ch = char;
  explicit PieceStream(Input* in) : in_(in) { Fill(); }

  Ch Peek() const { return *cur_; }
  Ch Take() {
    const Ch c = *cur_;
    if (++cur_ == end_) Fill();
    return c;
  }
  size_t Tell() const { return base_ + static_cast<size_t>(cur_ - begin_); }
  bool AtEnd() const { return eof_; }
  const absl::Status& status() const { return status_; }

  // Output side: required by the concept, never used by the Reader.
  Ch* PutBegin() { return nullptr; }
  void Put(Ch) { assert(false); }
  void Flush() {}
  size_t PutEnd(Ch*) { return 0; }

 private:
  void Fill() {
    if (eof_) {  // stay on the terminating '\0'
      cur_ = begin_;
      return;
    }
    base_ += static_cast<size_t>(end_ - begin_);
    const char* data = nullptr;
    size_t size = 0;
    if (absl::Status s = in_->Next(&data, &size); !s.ok()) {
      status_ = std::move(s);
      size = 0;
    }
    if (size == 0) {
      eof_ = true;
      begin_ = cur_ = &kEnd;
      end_ = begin_ + 1;
      return;
    }
    begin_ = cur_ = data;
    end_ = data + size;
  }

  static constexpr char kEnd = '\0';
  Input* in_;
  const char* begin_ = nullptr;
  const char* cur_ = nullptr;
  const char* end_ = nullptr;
  size_t base_ = 0;
  bool eof_ = false;
  absl::Status status_;
};

// nlohmann's type_name() of a value.
enum class JsonType { kObject, kArray, kString, kBoolean, kNull, kNumber };
const char* TypeName(JsonType t) {
  static const char* const kNames[] = {"object", "array", "string", "boolean", "null", "number"};
  return kNames[static_cast<int>(t)];
}

// An escaped lone low surrogate is the only way U+DC00..U+DFFF (UTF-8
// ED B0..BF xx) can reach a decoded string: raw bytes are validated, and
// RapidJSON refuses a lone high surrogate but not a lone low one.
bool HasLoneSurrogate(const char* s, size_t n) {
  const char* end = s + n;
  while (const void* p = std::memchr(s, 0xED, static_cast<size_t>(end - s))) {
    s = static_cast<const char*>(p) + 1;
    if (s < end && static_cast<unsigned char>(*s) >= 0xA0) return true;
  }
  return false;
}

// The SAX handler: a small state machine over the containers the verifier
// reads (root object, "items" array, an item, "order"); anything else is
// skipped by counting nesting. Returning false stops the parse with
// error_ set.
class ManifestHandler {
 public:
  ManifestHandler(const ReadOptions& options, ManifestFacts* facts) : opt_(options), f_(*facts) {
    if (opt_.collect == nullptr && opt_.visitor == nullptr) {
      f_.prefixes.reserve(std::min<uint64_t>(opt_.expected_items, uint64_t{1} << 24));
    }
  }

  // Set when the handler stopped the parse; the message for it.
  const std::string& error() const { return error_; }
  // The item being read, for syntax error messages; -1 outside "items".
  int64_t item() const { return ctx_ == Ctx::kItems || ctx_ == Ctx::kItem ? static_cast<int64_t>(f_.count) : -1; }
  Hash Root() const { return tree_.Root(); }

  bool Null() { return Scalar(JsonType::kNull); }
  bool Bool(bool) { return Scalar(JsonType::kBoolean); }
  bool Int(int) { return Scalar(JsonType::kNumber); }
  bool Int64(int64_t) { return Scalar(JsonType::kNumber); }
  bool Uint(unsigned v) { return Uint64(v); }
  bool Uint64(uint64_t v) {
    if (skip_ == 0 && slot_ == Slot::kSize) {
      size_unsigned_ = true;
      size_ = v;
    }
    return Scalar(JsonType::kNumber);
  }
  bool Double(double d) {
    if (!std::isfinite(d)) return Fail("number overflow");
    return Scalar(JsonType::kNumber);
  }
  // Numbers arrive as their text (kParseNumbersAsStringsFlag): RapidJSON
  // 1.1.0's own conversion of fractions and exponents runs into undefined
  // behaviour on some inputs (clz(0) in internal/diyfp.h for "0e66", found
  // by the libFuzzer run). Plain integers go to Uint64/Int64 as before;
  // anything else is a double by strtod (only its finiteness matters here).
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    const char* end = s + n;
    if (n > 0 && s[0] != '-') {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(s, end, v);
      if (ec == std::errc() && p == end) return Uint64(v);
    } else if (n > 1) {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(s, end, v);
      if (ec == std::errc() && p == end) return Int64(v);
    }
    return Double(std::strtod(std::string(s, n).c_str(), nullptr));
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (HasLoneSurrogate(s, n)) return Fail("surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF");
    if (skip_ == 0) {
      if (StringField* field = Field(slot_)) {
        field->value.assign(s, std::min<size_t>(n, Limit(slot_)));
        if (n > Limit(slot_)) field->value += "...";
        Take(field);
        return true;
      }
    }
    return Scalar(JsonType::kString);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (HasLoneSurrogate(s, n)) return Fail("surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF");
    if (skip_ == 0) SelectSlot(std::string_view(s, n));
    return true;
  }
  bool StartObject() { return Open(JsonType::kObject); }
  bool StartArray() { return Open(JsonType::kArray); }
  bool EndObject(rapidjson::SizeType) { return Close(); }
  bool EndArray(rapidjson::SizeType) { return Close(); }

 private:
  enum class Ctx : uint8_t { kTop, kRoot, kItems, kItem, kOrder, kDone };
  enum class Slot : uint8_t {
    kNone,
    kType,
    kCertificateId,
    kMerkleRoot,
    kItems,
    kOrder,
    kPrivate,
    kOrderSalt,
    kKind,
    kDigest,
    kSalt,
    kSize
  };

  bool Fail(std::string what) {
    error_ = std::move(what);
    return false;
  }

  StringField* Field(Slot s) {
    switch (s) {
      case Slot::kType:
        return &f_.type;
      case Slot::kCertificateId:
        return &f_.certificate_id;
      case Slot::kMerkleRoot:
        return &f_.merkle_root;
      case Slot::kPrivate:
        return &f_.order_private;
      case Slot::kOrderSalt:
        return &f_.order_salt;
      case Slot::kKind:
        return &kind_;
      case Slot::kDigest:
        return &digest_;
      case Slot::kSalt:
        return &salt_;
      default:
        return nullptr;
    }
  }
  static size_t Limit(Slot s) {
    return s == Slot::kKind || s == Slot::kDigest || s == Slot::kSalt ? kMaxItemString : SIZE_MAX;
  }
  void Take(StringField* field) {
    field->present = true;
    slot_ = Slot::kNone;
  }

  // A member name in a container the verifier reads: which slot its value
  // fills, or none (skipped). A slot filled already is a repeated member.
  void SelectSlot(std::string_view key) {
    slot_ = Slot::kNone;
    Slot s = Slot::kNone;
    if (ctx_ == Ctx::kRoot) {
      s = Is(key, "type")            ? Slot::kType
          : Is(key, "certificateId") ? Slot::kCertificateId
          : Is(key, "merkleRoot")    ? Slot::kMerkleRoot
          : Is(key, "items")         ? Slot::kItems
          : Is(key, "order")         ? Slot::kOrder
                                     : Slot::kNone;
    } else if (ctx_ == Ctx::kOrder) {
      s = Is(key, "private") ? Slot::kPrivate : Is(key, "salt") ? Slot::kOrderSalt : Slot::kNone;
    } else if (ctx_ == Ctx::kItem) {
      s = Is(key, "kind")     ? Slot::kKind
          : Is(key, "digest") ? Slot::kDigest
          : Is(key, "salt")   ? Slot::kSalt
          : Is(key, "size")   ? Slot::kSize
                              : Slot::kNone;
    }
    if (s == Slot::kNone) return;
    const bool seen = s == Slot::kItems   ? f_.items_present
                      : s == Slot::kOrder ? f_.order_present
                      : s == Slot::kSize  ? size_present_
                                          : Field(s)->present;
    if (seen) {
      if (f_.dup_error.ok()) {
        const std::string where = ctx_ == Ctx::kItem ? Where() : ctx_ == Ctx::kOrder ? "manifest.order" : "manifest";
        f_.dup_error = Invalid(Cat(where, " has \"", key, "\" twice"));
      }
      return;
    }
    slot_ = s;
  }

  // A scalar value, or the type of a container about to be skipped.
  bool Scalar(JsonType t) {
    if (skip_ > 0) return true;
    switch (ctx_) {
      case Ctx::kTop:
        f_.not_object = true;
        ctx_ = Ctx::kDone;
        return true;
      case Ctx::kItems:
        NotAnObjectItem();
        return true;
      default:
        break;
    }
    switch (slot_) {
      case Slot::kItems:
        f_.items_present = true;
        f_.items_type = TypeName(t);
        break;
      case Slot::kOrder:
        f_.order_present = true;
        break;
      case Slot::kSize:
        size_present_ = true;
        break;
      case Slot::kNone:
        break;
      default:
        Field(slot_)->other_type = TypeName(t);
        Take(Field(slot_));
        break;
    }
    slot_ = Slot::kNone;
    return true;
  }

  bool Open(JsonType t) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    if (ctx_ == Ctx::kTop && t == JsonType::kObject) return Enter(Ctx::kRoot);
    if (ctx_ == Ctx::kItems && t == JsonType::kObject) {
      StartItem();
      return Enter(Ctx::kItem);
    }
    if (slot_ == Slot::kItems && t == JsonType::kArray) {
      f_.items_present = true;
      slot_ = Slot::kNone;
      return Enter(Ctx::kItems);
    }
    if (slot_ == Slot::kOrder && t == JsonType::kObject) {
      f_.order_present = f_.order_is_object = true;
      slot_ = Slot::kNone;
      return Enter(Ctx::kOrder);
    }
    Scalar(t);  // records the container's type where a member expected another
    skip_ = 1;
    return true;
  }

  bool Enter(Ctx c) {
    ctx_ = c;
    return true;
  }

  bool Close() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    switch (ctx_) {
      case Ctx::kItem:
        EndItem();
        ctx_ = Ctx::kItems;
        break;
      case Ctx::kItems:
      case Ctx::kOrder:
        ctx_ = Ctx::kRoot;
        break;
      default:
        ctx_ = Ctx::kDone;
        break;
    }
    return true;
  }

  std::string Where() const { return Cat("manifest.items[", f_.count, "]"); }

  void NotAnObjectItem() {
    if (f_.item_error.ok()) f_.item_error = Invalid(Cat(Where(), " is not a JSON object"));
    ++f_.count;
  }

  void StartItem() {
    kind_ = digest_ = salt_ = StringField();
    size_present_ = size_unsigned_ = false;
    size_ = 0;
  }

  void EndItem() {
    if (f_.item_error.ok() && f_.dup_error.ok()) {
      if (absl::Status s = CheckItem(); !s.ok()) f_.item_error = std::move(s);
    }
    ++f_.count;
  }

  // Same checks and messages as the DOM verifier's ParseItem.
  absl::Status CheckString(const StringField& f, std::string_view name) const {
    if (!f.present) return Invalid(Cat(Where(), " has no \"", name, "\""));
    if (f.other_type != nullptr) return Invalid(Cat(Where(), ".", name, " is a ", f.other_type, ", not a string"));
    return absl::OkStatus();
  }

  absl::Status CheckItem();
  void AddLeaf(const Hash& leaf);

  const ReadOptions& opt_;
  ManifestFacts& f_;
  Ctx ctx_ = Ctx::kTop;
  Slot slot_ = Slot::kNone;
  uint32_t skip_ = 0;  // depth inside a skipped container (0: none)
  std::string error_;
  StringField kind_, digest_, salt_;
  bool size_present_ = false, size_unsigned_ = false;
  uint64_t size_ = 0;
  Hash prev_leaf_{};
  CompactRange tree_;
};

absl::Status ManifestHandler::CheckItem() {
  if (absl::Status s = CheckString(kind_, "kind"); !s.ok()) return s;
  if (absl::Status s = CheckString(digest_, "digest"); !s.ok()) return s;
  if (!size_present_) return Invalid(Cat(Where(), " has no \"size\""));
  if (!size_unsigned_) return Invalid(Cat(Where(), ".size is not a non-negative integer"));
  if (absl::Status s = CheckString(salt_, "salt"); !s.ok()) return s;
  const std::string& salt = salt_.value;
  if (salt.size() != 64 || !IsLowerHex(salt)) {
    absl::StatusOr<Hash> h = ParseHash(salt);
    return Invalid(Cat(Where(), ".salt: ", h.ok() ? std::string("invalid") : std::string(h.status().message())));
  }
  const std::string& kind = kind_.value;
  const std::string& digest = digest_.value;
  const bool kind_ok = kind == kKindPhoto || kind == kKindModel;
  const bool digest_ok = digest.size() == kDigestPrefix.size() + 64 && digest.starts_with(kDigestPrefix) &&
                         IsLowerHex(std::string_view(digest).substr(kDigestPrefix.size()));
  if (!kind_ok || !digest_ok) {
    ItemEntry e;
    e.kind = kind;
    e.digest = digest;
    absl::Status s = ValidateItemEntry(e);
    return Invalid(Cat(Where(), ": ", s.ok() ? "invalid item" : s.message()));
  }
  // Leaf input "shredd-item-v1 <kind> <digest> <size> <salt hex>" built in
  // place (this runs once per item); the salt is canonical lowercase hex,
  // so it is its own HexEncode.
  char buf[256];
  char* o = buf;
  auto put = [&o](std::string_view s) {
    std::memcpy(o, s.data(), s.size());
    o += s.size();
  };
  put(kLeafFormat);
  *o++ = ' ';
  put(kind);
  *o++ = ' ';
  put(digest);
  *o++ = ' ';
  o = std::to_chars(o, buf + sizeof(buf), size_).ptr;
  *o++ = ' ';
  put(salt);
  AddLeaf(LeafHash(std::string_view(buf, static_cast<size_t>(o - buf))));
  return absl::OkStatus();
}

void ManifestHandler::AddLeaf(const Hash& leaf) {
  const std::string& digest = digest_.value;
  if (f_.valid > 0 && !(prev_leaf_ < leaf) && f_.order_error_at < 0) {
    f_.order_error_at = static_cast<int64_t>(f_.count);
  }
  prev_leaf_ = leaf;
  tree_.Append(leaf);
  if (opt_.visitor != nullptr) opt_.visitor->Leaf(f_.valid, leaf, kind_.value, digest, size_, salt_.value);
  ++f_.valid;
  ++(kind_.value == kKindPhoto ? f_.photos : f_.models);
  uint64_t prefix = 0;
  for (size_t i = 0; i < 16; ++i) {
    prefix = prefix << 4 | kHex.v[static_cast<unsigned char>(digest[kDigestPrefix.size() + i])];
  }
  if (opt_.collect == nullptr) {
    if (opt_.visitor == nullptr) f_.prefixes.push_back(prefix);
  } else if (std::binary_search(opt_.collect->begin(), opt_.collect->end(), prefix)) {
    f_.collected.push_back(digest);
  }
}

std::string Describe(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  if (c >= 0x21 && c < 0x7f) return Cat("'", std::string(1, ch), "'");
  static const char kDigits[] = "0123456789ABCDEF";
  return Cat("byte 0x", std::string{kDigits[c >> 4], kDigits[c & 15]});
}

absl::Status SyntaxError(std::string_view what, size_t offset, int64_t item) {
  std::string msg = Cat("manifest is not valid JSON: ", what, " at byte ", offset);
  if (item >= 0) msg += Cat(" (in manifest.items[", item, "])");
  return Invalid(msg);
}

// A UTF-8 byte order mark may open the text (nlohmann allowed it).
bool SkipBom(PieceStream& s) {
  if (static_cast<unsigned char>(s.Peek()) != 0xEF) return true;
  s.Take();
  return static_cast<unsigned char>(s.Take()) == 0xBB && static_cast<unsigned char>(s.Take()) == 0xBF;
}

}  // namespace

absl::Status MemoryInput::Rewind() {
  done_ = false;
  return absl::OkStatus();
}

absl::Status MemoryInput::Next(const char** data, size_t* size) {
  *data = text_.data();
  *size = done_ ? 0 : text_.size();
  done_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileInput>> FileInput::Open(const std::string& path, size_t buffer_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = Cat("cannot open manifest ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::FailedPreconditionError(msg);
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<FileInput>(new FileInput(fd, path, std::max<size_t>(buffer_bytes, 4096)));
}

FileInput::FileInput(int fd, std::string path, size_t cap)
    : fd_(fd), path_(std::move(path)), buf_(new char[cap]), cap_(cap) {}

FileInput::~FileInput() { ::close(fd_); }

absl::Status FileInput::Rewind() {
  if (::lseek(fd_, 0, SEEK_SET) != 0) {
    return absl::FailedPreconditionError(Cat("cannot read manifest ", path_, " a second time: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status FileInput::Next(const char** data, size_t* size) {
  ssize_t n;
  do {
    n = ::read(fd_, buf_.get(), cap_);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return absl::FailedPreconditionError(Cat("cannot read manifest ", path_, ": ", std::strerror(errno)));
  *data = buf_.get();
  *size = static_cast<size_t>(n);
  return absl::OkStatus();
}

absl::Status ReadManifest(Input* in, const ReadOptions& options, ManifestFacts* facts) {
  PieceStream stream(in);
  ManifestHandler handler(options, facts);
  if (!SkipBom(stream)) return SyntaxError("invalid UTF-8 byte order mark", stream.Tell(), -1);
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                              rapidjson::kParseStopWhenDoneFlag | rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::Reader reader;
  const rapidjson::ParseResult r = reader.Parse<kFlags>(stream, handler);
  if (!stream.status().ok()) return stream.status();
  if (r.IsError()) {
    const std::string what = r.Code() == rapidjson::kParseErrorTermination
                                 ? handler.error()
                                 : std::string(rapidjson::GetParseError_En(r.Code()));
    return SyntaxError(what, r.Offset(), handler.item());
  }
  while (stream.Peek() == ' ' || stream.Peek() == '\n' || stream.Peek() == '\r' || stream.Peek() == '\t') {
    stream.Take();
  }
  if (!stream.status().ok()) return stream.status();
  if (!stream.AtEnd()) {
    return SyntaxError(Cat("unexpected ", Describe(stream.Peek()), ", expected end of input after the manifest"),
                       stream.Tell(), -1);
  }
  facts->bytes = stream.Tell();
  facts->root = handler.Root();
  return absl::OkStatus();
}

absl::Status StringMember(const StringField& f, std::string_view name) {
  if (!f.present) return Invalid(Cat("manifest has no \"", name, "\""));
  if (f.other_type != nullptr) return Invalid(Cat("manifest.", name, " is a ", f.other_type, ", not a string"));
  return absl::OkStatus();
}

absl::Status Wellformed(const ManifestFacts& f) {
  if (f.not_object) return Invalid("manifest is not a JSON object");
  if (!f.dup_error.ok()) return f.dup_error;
  if (absl::Status s = StringMember(f.type, "type"); !s.ok()) return s;
  if (f.type.value != kManifestType) {
    return Invalid(Cat("manifest.type is \"", f.type.value, "\", expected \"", kManifestType, "\""));
  }
  if (absl::Status s = StringMember(f.certificate_id, "certificateId"); !s.ok()) return s;
  if (absl::Status s = StringMember(f.merkle_root, "merkleRoot"); !s.ok()) return s;
  absl::StatusOr<Hash> stated = ParseHash(f.merkle_root.value);
  if (!stated.ok()) return Invalid(Cat("manifest.merkleRoot: ", stated.status().message()));
  if (!f.items_present) return Invalid("manifest has no \"items\"");
  if (f.items_type != nullptr) return Invalid(Cat("manifest.items is a ", f.items_type, ", not an array"));
  if (!f.item_error.ok()) return f.item_error;
  if (f.order_error_at >= 0) {
    return Invalid(Cat("manifest.items[", f.order_error_at, "] is out of tree order (leaf hashes must ascend)"));
  }
  if (f.root != *stated) {
    return Invalid(
        Cat("manifest Merkle root ", HexEncode(f.root), " does not match its stated merkleRoot ", HexEncode(*stated)));
  }
  return absl::OkStatus();
}

}  // namespace shredd::verify::manifest_internal
