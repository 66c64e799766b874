#include "formats/manifest.h"

#include <fcntl.h>
#include <locale.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/encoding.h"
#include "formats/merkle.h"
#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;

namespace {

constexpr std::string_view kDigestPrefix = "sha256:";

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(what);
}

std::string Short(const Hash& h) { return HexEncode(h).substr(0, 16) + ".."; }

// Byte classes, by table so that the per-byte loops do not branch.
struct ByteTables {
  uint8_t hex[256];    // lowercase hex digit value, or 0x80
  bool plain[256];     // string bytes that need no attention: not '"',
                       // '\\', a control character or non-ASCII
  constexpr ByteTables() : hex(), plain() {
    for (int c = 0; c < 256; ++c) {
      hex[c] = c >= '0' && c <= '9'   ? static_cast<uint8_t>(c - '0')
               : c >= 'a' && c <= 'f' ? static_cast<uint8_t>(c - 'a' + 10)
                                      : 0x80;
      plain[c] = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
    }
  }
};
constexpr ByteTables kBytes;

int LowerHex(unsigned char c) { return kBytes.hex[c]; }

bool IsLowerHex(std::string_view s) {
  uint8_t acc = 0;
  for (char c : s) acc |= kBytes.hex[static_cast<unsigned char>(c)];
  return (acc & 0x80) == 0;
}

// key == lit, with the length known at compile time (inlined, no memcmp
// call: this runs four times per item).
template <size_t N>
bool Is(const std::string& key, const char (&lit)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), lit, N - 1) == 0;
}

// Sorts 64-bit values: one in-place pass that distributes them by their top
// byte into 256 buckets (American flag sort), then std::sort in each bucket
// (small enough for the cache). Faster than std::sort over millions.
void SortPrefixes(std::vector<uint64_t>& v) {
  if (v.size() < 4096) {
    std::sort(v.begin(), v.end());
    return;
  }
  size_t count[256] = {};
  for (uint64_t x : v) ++count[x >> 56];
  size_t begin[257], next[256];
  begin[0] = 0;
  for (int b = 0; b < 256; ++b) {
    begin[b + 1] = begin[b] + count[b];
    next[b] = begin[b];
  }
  for (int b = 0; b < 256; ++b) {
    while (next[b] < begin[b + 1]) {
      uint64_t x = v[next[b]];
      size_t d = x >> 56;
      while (d != static_cast<size_t>(b)) {  // follow the cycle
        std::swap(x, v[next[d]++]);
        d = x >> 56;
      }
      v[next[b]++] = x;
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::sort(v.begin() + static_cast<std::ptrdiff_t>(begin[b]),
              v.begin() + static_cast<std::ptrdiff_t>(begin[b + 1]));
  }
}

// ---------------------------------------------------------------- input

// Where the manifest bytes come from: pieces in order, restartable for the
// rare second pass.
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
  absl::Status Rewind() override {
    done_ = false;
    return absl::OkStatus();
  }
  absl::Status Next(const char** data, size_t* size) override {
    *data = text_.data();
    *size = done_ ? 0 : text_.size();
    done_ = true;
    return absl::OkStatus();
  }

 private:
  std::string_view text_;
  bool done_ = false;
};

class FileInput final : public Input {
 public:
  static absl::StatusOr<std::unique_ptr<FileInput>> Open(
      const std::string& path, size_t buffer_bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      std::string msg = Cat("cannot open manifest ", path, ": ", std::strerror(err));
      return err == ENOENT ? absl::NotFoundError(msg)
                           : absl::FailedPreconditionError(msg);
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<FileInput>(
        new FileInput(fd, path, std::max<size_t>(buffer_bytes, 4096)));
  }
  ~FileInput() override { ::close(fd_); }

  absl::Status Rewind() override {
    if (::lseek(fd_, 0, SEEK_SET) != 0) {
      return absl::FailedPreconditionError(
          Cat("cannot read manifest ", path_, " a second time: ",
              std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  absl::Status Next(const char** data, size_t* size) override {
    ssize_t n;
    do {
      n = ::read(fd_, buf_.get(), cap_);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      return absl::FailedPreconditionError(
          Cat("cannot read manifest ", path_, ": ", std::strerror(errno)));
    }
    *data = buf_.get();
    *size = static_cast<size_t>(n);
    return absl::OkStatus();
  }

 private:
  FileInput(int fd, std::string path, size_t cap)
      : fd_(fd), path_(std::move(path)), buf_(new char[cap]), cap_(cap) {}
  int fd_;
  std::string path_;
  std::unique_ptr<char[]> buf_;
  size_t cap_;
};

// ---------------------------------------------------------------- scanner

struct SyntaxError {
  std::string what;
};
struct IoError {
  absl::Status status;
};

locale_t CLocale() {
  static const locale_t c = ::newlocale(LC_ALL_MASK, "C", nullptr);
  return c;
}

// A strict JSON (RFC 8259) scanner over the pieces of an Input, accepting
// exactly what nlohmann::json::parse accepts: a leading UTF-8 BOM, only
// ' ' '\t' '\n' '\r' as whitespace, well-formed UTF-8 in strings, escapes
// with paired surrogates, and finite numbers. Syntax errors throw
// SyntaxError, read errors IoError.
class Scanner {
 public:
  static constexpr size_t kMaxKey = 64;

  explicit Scanner(Input* in) : in_(in) {}

  uint64_t Offset() const { return base_ + static_cast<uint64_t>(p_ - chunk_); }

  // Context for error messages: the item being read, or -1.
  int64_t item = -1;

  [[noreturn]] void Fail(std::string_view what) {
    std::string msg = Cat(what, " at byte ", Offset());
    if (item >= 0) msg += Cat(" (in manifest.items[", item, "])");
    throw SyntaxError{std::move(msg)};
  }

  int Peek() {
    if (p_ == end_ && !Fill()) return -1;
    return static_cast<unsigned char>(*p_);
  }
  int Get() {
    if (p_ == end_ && !Fill()) return -1;
    return static_cast<unsigned char>(*p_++);
  }
  void Advance() { ++p_; }  // after a successful Peek()

  void SkipWs() {
    for (;;) {
      while (p_ < end_) {
        const char c = *p_;
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return;
        ++p_;
      }
      if (!Fill()) return;
    }
  }

  // Skips whitespace and returns the next byte (not consumed), -1 at end.
  int PeekToken() {
    SkipWs();
    return Peek();
  }

  void Expect(char c, std::string_view what) {
    SkipWs();
    const int got = Get();
    if (got != static_cast<unsigned char>(c)) {
      if (got < 0) Fail(Cat("unexpected end of input, expected ", what));
      Unget();
      Fail(Cat("unexpected ", Describe(got), ", expected ", what));
    }
  }

  void SkipBom() {
    if (Peek() != 0xEF) return;
    Advance();
    if (Get() != 0xBB || Get() != 0xBF) Fail("invalid UTF-8 byte order mark");
  }

  // Reads a string whose opening quote was consumed, decoding escapes. The
  // whole string is validated, but only its first `limit` bytes are kept
  // (followed by "..." if it was longer), so that no string in the input
  // can make memory grow beyond limit + one read piece.
  void ReadString(std::string* out, size_t limit = SIZE_MAX) {
    out->clear();
    bool cut = false;
    for (;;) {
      if (out->size() > limit) {
        out->resize(limit);
        cut = true;
      }
      if (p_ == end_ && !Fill()) Fail("unterminated string");
      const char* s = p_;
      while (s < end_ && kBytes.plain[static_cast<unsigned char>(*s)]) ++s;
      out->append(p_, static_cast<size_t>(s - p_));
      p_ = s;
      if (s == end_) continue;
      const unsigned char c = static_cast<unsigned char>(*p_++);
      if (c == '"') {
        if (out->size() > limit) {
          out->resize(limit);
          cut = true;
        }
        if (cut) out->append("...");
        return;
      }
      if (c == '\\') {
        ReadEscape(out);
      } else if (c < 0x20) {
        --p_;
        Fail(Cat("control character ", Describe(c),
                 " in a string (must be escaped)"));
      } else {
        ReadUtf8(c, out);
      }
    }
  }

  // Reads a number (its first byte peeked: '-' or a digit). Returns true
  // iff it is a non-negative integer that fits in uint64 (what nlohmann
  // calls number_unsigned), storing it in *value.
  bool ReadNumber(uint64_t* value) {
    num_.clear();
    bool is_int = true;
    int c = Peek();
    if (c == '-') {
      num_.push_back('-');
      Advance();
      c = Peek();
    }
    if (c == '0') {
      num_.push_back('0');
      Advance();
    } else if (c >= '1' && c <= '9') {
      Digits();
    } else {
      Fail("invalid number: expected a digit");
    }
    c = Peek();
    if (c == '.') {
      is_int = false;
      num_.push_back('.');
      Advance();
      if (!IsDigit(Peek())) Fail("invalid number: expected a digit after '.'");
      Digits();
      c = Peek();
    }
    if (c == 'e' || c == 'E') {
      is_int = false;
      num_.push_back('e');
      Advance();
      c = Peek();
      if (c == '+' || c == '-') {
        num_.push_back(static_cast<char>(c));
        Advance();
      }
      if (!IsDigit(Peek())) Fail("invalid number: expected an exponent digit");
      Digits();
    }
    if (is_int && num_[0] != '-') {
      uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(num_.data(), num_.data() + num_.size(), v);
      if (ec == std::errc() && ptr == num_.data() + num_.size()) {
        *value = v;
        return true;
      }
    }
    // A float, a negative integer or an integer too large for 64 bits:
    // nlohmann keeps these as numbers but refuses non-finite ones.
    if (!std::isfinite(::strtod_l(num_.c_str(), nullptr, CLocale()))) {
      Fail(Cat("number overflow parsing '", num_, "'"));
    }
    return false;
  }

  // Skips one value of any type (iteratively: no recursion on nesting).
  void SkipValue() {
    stack_.clear();
    for (;;) {
      // A value.
      const int c = PeekToken();
      switch (c) {
        case '{':
          Advance();
          if (PeekToken() == '}') {
            Advance();
          } else {
            stack_.push_back('{');
            ReadKey(&scratch_);
            continue;
          }
          break;
        case '[':
          Advance();
          if (PeekToken() == ']') {
            Advance();
          } else {
            stack_.push_back('[');
            continue;
          }
          break;
        case '"':
          Advance();
          ReadString(&scratch_, 0);
          break;
        default:
          ReadScalar(c);
          break;
      }
      // After a value: close containers until a ',' asks for another value.
      for (;;) {
        if (stack_.empty()) return;
        SkipWs();
        const int d = Get();
        if (stack_.back() == '[') {
          if (d == ',') break;
          if (d == ']') {
            stack_.pop_back();
            continue;
          }
          Unexpected(d, "',' or ']'");
        } else {
          if (d == ',') {
            ReadKey(&scratch_);
            break;
          }
          if (d == '}') {
            stack_.pop_back();
            continue;
          }
          Unexpected(d, "',' or '}'");
        }
      }
    }
  }

  // Reads `"key" :` (skipping whitespace before each).
  // Member names longer than kMaxKey cannot be one the verifier reads and
  // are kept cut short.
  void ReadKey(std::string* key) {
    Expect('"', "a member name");
    ReadString(key, kMaxKey);
    Expect(':', "':'");
  }

  [[noreturn]] void Unexpected(int got, std::string_view expected) {
    if (got < 0) Fail(Cat("unexpected end of input, expected ", expected));
    Unget();
    Fail(Cat("unexpected ", Describe(got), ", expected ", expected));
  }

  // nlohmann's type_name() of the value starting with byte c (peeked).
  static const char* TypeName(int c) {
    switch (c) {
      case '{':
        return "object";
      case '[':
        return "array";
      case '"':
        return "string";
      case 't':
      case 'f':
        return "boolean";
      case 'n':
        return "null";
      default:
        return "number";
    }
  }

 private:
  static bool IsDigit(int c) { return c >= '0' && c <= '9'; }

  static std::string Describe(int c) {
    if (c >= 0x21 && c < 0x7f) return Cat("'", std::string(1, static_cast<char>(c)), "'");
    static const char kHex[] = "0123456789ABCDEF";
    std::string s = "byte 0x";
    s.push_back(kHex[(c >> 4) & 15]);
    s.push_back(kHex[c & 15]);
    return s;
  }

  void Unget() {
    if (p_ > chunk_) --p_;
  }

  bool Fill() {
    if (eof_) return false;
    base_ += static_cast<uint64_t>(end_ - chunk_);
    const char* data = nullptr;
    size_t size = 0;
    if (absl::Status s = in_->Next(&data, &size); !s.ok()) throw IoError{s};
    if (size == 0) {
      eof_ = true;
      chunk_ = p_ = end_;
      return false;
    }
    chunk_ = p_ = data;
    end_ = data + size;
    return true;
  }

  void Digits() {
    while (IsDigit(Peek())) {
      num_.push_back(static_cast<char>(*p_));
      Advance();
    }
  }

  void ReadScalar(int c) {
    switch (c) {
      case 't':
        Literal("true");
        return;
      case 'f':
        Literal("false");
        return;
      case 'n':
        Literal("null");
        return;
      case -1:
        Fail("unexpected end of input, expected a value");
      default:
        if (c == '-' || IsDigit(c)) {
          uint64_t ignored;
          ReadNumber(&ignored);
          return;
        }
        Fail(Cat("unexpected ", Describe(c), ", expected a value"));
    }
  }

  void Literal(std::string_view lit) {
    for (char want : lit) {
      if (Get() != static_cast<unsigned char>(want)) {
        Fail(Cat("invalid literal, expected '", lit, "'"));
      }
    }
  }

  int Hex4() {
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = Get();
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        Fail("'\\u' must be followed by 4 hex digits");
      }
      v = v * 16 + d;
    }
    return v;
  }

  void ReadEscape(std::string* out) {
    const int c = Get();
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out->push_back(static_cast<char>(c));
        return;
      case 'b':
        out->push_back('\b');
        return;
      case 'f':
        out->push_back('\f');
        return;
      case 'n':
        out->push_back('\n');
        return;
      case 'r':
        out->push_back('\r');
        return;
      case 't':
        out->push_back('\t');
        return;
      case 'u': {
        uint32_t cp = static_cast<uint32_t>(Hex4());
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (Get() != '\\' || Get() != 'u') {
            Fail("surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF");
          }
          const uint32_t lo = static_cast<uint32_t>(Hex4());
          if (lo < 0xDC00 || lo > 0xDFFF) {
            Fail("surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          Fail("surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF");
        }
        AppendUtf8(cp, out);
        return;
      }
      case -1:
        Fail("unterminated string");
      default:
        Fail("invalid escape in a string");
    }
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Well-formed UTF-8 (RFC 3629 table 3-7), lead byte c already consumed.
  void ReadUtf8(unsigned char c, std::string* out) {
    int n;
    int lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c == 0xE0) {
      n = 2;
      lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      n = 2;
    } else if (c == 0xED) {
      n = 2;
      hi = 0x9F;
    } else if (c == 0xF0) {
      n = 3;
      lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      n = 3;
    } else if (c == 0xF4) {
      n = 3;
      hi = 0x8F;
    } else {
      --p_;
      Fail(Cat("invalid UTF-8 ", Describe(c), " in a string"));
    }
    out->push_back(static_cast<char>(c));
    for (int i = 0; i < n; ++i) {
      const int b = Get();
      if (b < 0) Fail("unterminated string");
      if (b < lo || b > hi) {
        Unget();
        Fail(Cat("invalid UTF-8 ", Describe(b), " in a string"));
      }
      out->push_back(static_cast<char>(b));
      lo = 0x80;
      hi = 0xBF;
    }
  }

  Input* in_;
  const char* chunk_ = nullptr;  // start of the current piece
  const char* p_ = nullptr;      // next byte
  const char* end_ = nullptr;    // end of the current piece
  uint64_t base_ = 0;            // offset of chunk_ in the input
  bool eof_ = false;
  std::string num_;
  std::string scratch_;
  std::vector<char> stack_;
};

// ---------------------------------------------------------------- manifest

// A member read as a string: absent, a string, or some other JSON type.
struct StringField {
  bool present = false;
  const char* other_type = nullptr;  // set iff present and not a string
  std::string value;

  void Reset() {
    present = false;
    other_type = nullptr;
    value.clear();
  }
};

// RFC 6962 MTH computed leaf by leaf: a stack of roots of perfect subtrees
// of strictly decreasing size (the binary digits of n), O(log n) hashes.
class MerkleStack {
 public:
  void Push(const Hash& leaf) {
    Hash cur = leaf;
    uint64_t size = 1;
    while (!stack_.empty() && stack_.back().second == size) {
      cur = NodeHash(stack_.back().first, cur);
      size <<= 1;
      stack_.pop_back();
    }
    stack_.emplace_back(cur, size);
  }
  Hash Root() const {
    if (stack_.empty()) return EmptyRoot();
    Hash r = stack_.back().first;
    for (size_t i = stack_.size() - 1; i-- > 0;) r = NodeHash(stack_[i].first, r);
    return r;
  }

 private:
  std::vector<std::pair<Hash, uint64_t>> stack_;
};

// Sees each well-formed item's leaf, in manifest order (receipts).
class LeafVisitor {
 public:
  virtual ~LeafVisitor() = default;
  // The item at manifest position `index`; `salt` is 64 lowercase hex.
  virtual void Leaf(uint64_t index, const Hash& leaf, std::string_view kind,
                    std::string_view digest, uint64_t size,
                    std::string_view salt) = 0;
};

absl::Status StringMember(const StringField& f, std::string_view name) {
  if (!f.present) return Invalid(Cat("manifest has no \"", name, "\""));
  if (f.other_type != nullptr) {
    return Invalid(
        Cat("manifest.", name, " is a ", f.other_type, ", not a string"));
  }
  return absl::OkStatus();
}

// One pass over a manifest: everything the final verdict needs, and
// nothing per item except 8 bytes of its digest.
class ManifestPass {
 public:
  // `collect`: sorted digest prefixes whose items' full digests to keep
  // (second pass), or nullptr.
  ManifestPass(Input* in, uint64_t expected_items,
               const std::vector<uint64_t>* collect)
      : sc_(in), collect_(collect) {
    if (collect_ == nullptr) {
      prefixes_.reserve(std::min<uint64_t>(expected_items, uint64_t{1} << 24));
    }
  }

  // Reads the whole input. Throws SyntaxError / IoError.
  void Run() {
    sc_.SkipBom();
    const int c = sc_.PeekToken();
    if (c == '{') {
      sc_.Advance();
      ReadManifestObject();
    } else {
      if (c < 0) sc_.Fail("unexpected end of input, expected a value");
      not_object_ = true;
      sc_.SkipValue();
    }
    if (const int t = sc_.PeekToken(); t >= 0) {
      // (nlohmann's parser took a NUL byte for the end of its input and
      // ignored what followed; a NUL or anything else here is refused.)
      sc_.Advance();
      sc_.Unexpected(t, "end of input after the manifest");
    }
    bytes_ = sc_.Offset();
  }

  // The verdict for `cert`, in the order the DOM verifier checked. May run
  // a second pass over `in` (prefix collision).
  absl::Status Verdict(const VerifiedCertificate& cert, Input* in,
                       ManifestStats* stats);

  uint64_t items() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  Hash root() const { return tree_.Root(); }
  const std::string& certificate_id() const { return certificate_id_.value; }

  // Without a certificate: OK iff the manifest is well formed, its items are
  // in tree order and its root is the merkleRoot it states.
  absl::Status Wellformed() const;

  // Called for every well-formed item; set before Run(). A pass with a
  // visitor keeps no digest prefixes (Verdict's repeat check needs them).
  void set_visitor(LeafVisitor* v) { visitor_ = v; }

 private:
  void Duplicate(std::string where, std::string_view name) {
    if (dup_error_.ok()) {
      dup_error_ = Invalid(Cat(where, " has \"", name, "\" twice"));
    }
  }

  // The value of a member whose name was read: a string into *f, or notes
  // its type.
  // `where` names the object; nullptr for the current item.
  void ReadStringField(StringField* f, const char* where,
                       std::string_view name, size_t limit = SIZE_MAX) {
    if (f->present) {
      Duplicate(where != nullptr ? std::string(where) : Where(), name);
      sc_.SkipValue();
      return;
    }
    f->present = true;
    const int c = sc_.PeekToken();
    if (c == '"') {
      sc_.Advance();
      sc_.ReadString(&f->value, limit);
    } else {
      f->other_type = Scanner::TypeName(c);
      sc_.SkipValue();
    }
  }

  // After ',' or '}' of an object: true if another member follows.
  bool NextMember(std::string_view where) {
    sc_.SkipWs();
    const int d = sc_.Get();
    if (d == ',') return true;
    if (d == '}') return false;
    sc_.Unexpected(d, Cat("',' or '}' in ", where));
  }

  void ReadManifestObject() {
    if (sc_.PeekToken() == '}') {
      sc_.Advance();
      return;
    }
    do {
      sc_.ReadKey(&key_);
      if (Is(key_, "type")) {
        ReadStringField(&type_, "manifest", key_);
      } else if (Is(key_, "certificateId")) {
        ReadStringField(&certificate_id_, "manifest", key_);
      } else if (Is(key_, "merkleRoot")) {
        ReadStringField(&merkle_root_, "manifest", key_);
      } else if (Is(key_, "items")) {
        if (items_present_) {
          Duplicate("manifest", key_);
          sc_.SkipValue();
          continue;
        }
        items_present_ = true;
        const int c = sc_.PeekToken();
        if (c == '[') {
          sc_.Advance();
          ReadItems();
        } else {
          items_type_ = Scanner::TypeName(c);
          sc_.SkipValue();
        }
      } else if (Is(key_, "order")) {
        ReadOrder();
      } else {
        sc_.SkipValue();
      }
    } while (NextMember("the manifest"));
  }

  void ReadOrder() {
    if (order_present_) {
      Duplicate("manifest", "order");
      sc_.SkipValue();
      return;
    }
    order_present_ = true;
    if (sc_.PeekToken() != '{') {
      sc_.SkipValue();
      return;
    }
    sc_.Advance();
    order_is_object_ = true;
    if (sc_.PeekToken() == '}') {
      sc_.Advance();
      return;
    }
    do {
      sc_.ReadKey(&key_);
      if (Is(key_, "private")) {
        ReadStringField(&order_private_, "manifest.order", key_);
      } else if (Is(key_, "salt")) {
        ReadStringField(&order_salt_, "manifest.order", key_);
      } else {
        sc_.SkipValue();
      }
    } while (NextMember("manifest.order"));
  }

  void ReadItems() {
    if (sc_.PeekToken() == ']') {
      sc_.Advance();
      return;
    }
    for (;;) {
      sc_.item = static_cast<int64_t>(count_);
      if (sc_.PeekToken() == '{') {
        sc_.Advance();
        ReadItem();
      } else {
        if (item_error_.ok()) {
          item_error_ = Invalid(
              Cat("manifest.items[", count_, "] is not a JSON object"));
        }
        sc_.SkipValue();
      }
      ++count_;
      sc_.SkipWs();
      const int d = sc_.Get();
      if (d == ']') break;
      if (d != ',') sc_.Unexpected(d, "',' or ']' after an item");
    }
    sc_.item = -1;
  }

  // An item's kind, digest or salt longer than this is wrong anyway; only
  // its beginning is kept (for the error message).
  static constexpr size_t kMaxItemString = 4096;

  std::string Where() const { return Cat("manifest.items[", count_, "]"); }

  void ReadItem() {
    kind_.Reset();
    digest_.Reset();
    salt_.Reset();
    size_present_ = false;
    size_unsigned_ = false;
    size_ = 0;
    if (sc_.PeekToken() == '}') {
      sc_.Advance();
    } else {
      do {
        sc_.ReadKey(&key_);
        if (Is(key_, "kind")) {
          ReadStringField(&kind_, nullptr, key_, kMaxItemString);
        } else if (Is(key_, "digest")) {
          ReadStringField(&digest_, nullptr, key_, kMaxItemString);
        } else if (Is(key_, "salt")) {
          ReadStringField(&salt_, nullptr, key_, kMaxItemString);
        } else if (Is(key_, "size")) {
          if (size_present_) {
            Duplicate(Where(), key_);
            sc_.SkipValue();
            continue;
          }
          size_present_ = true;
          const int c = sc_.PeekToken();
          if (c == '-' || (c >= '0' && c <= '9')) {
            size_unsigned_ = sc_.ReadNumber(&size_);
          } else {
            sc_.SkipValue();
          }
        } else {
          sc_.SkipValue();
        }
      } while (NextMember("an item"));
    }
    if (item_error_.ok() && dup_error_.ok()) {
      if (absl::Status s = CheckItem(); !s.ok()) item_error_ = std::move(s);
    }
  }

  // Same checks and messages as the DOM verifier's ParseItem.
  absl::Status CheckString(const StringField& f, std::string_view name) const {
    if (!f.present) return Invalid(Cat(Where(), " has no \"", name, "\""));
    if (f.other_type != nullptr) {
      return Invalid(
          Cat(Where(), ".", name, " is a ", f.other_type, ", not a string"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckItem() {
    if (absl::Status s = CheckString(kind_, "kind"); !s.ok()) return s;
    if (absl::Status s = CheckString(digest_, "digest"); !s.ok()) return s;
    if (!size_present_) return Invalid(Cat(Where(), " has no \"size\""));
    if (!size_unsigned_) {
      return Invalid(Cat(Where(), ".size is not a non-negative integer"));
    }
    if (absl::Status s = CheckString(salt_, "salt"); !s.ok()) return s;
    const std::string& salt = salt_.value;
    if (salt.size() != 64 || !IsLowerHex(salt)) {
      absl::StatusOr<Hash> h = ParseHash(salt);
      return Invalid(Cat(Where(), ".salt: ",
                         h.ok() ? std::string("invalid")
                                : std::string(h.status().message())));
    }
    const std::string& kind = kind_.value;
    const std::string& digest = digest_.value;
    const bool kind_ok = kind == kKindPhoto || kind == kKindModel;
    const bool digest_ok =
        digest.size() == kDigestPrefix.size() + 64 &&
        std::string_view(digest).substr(0, kDigestPrefix.size()) == kDigestPrefix &&
        IsLowerHex(std::string_view(digest).substr(kDigestPrefix.size()));
    if (!kind_ok || !digest_ok) {
      ItemEntry e;
      e.kind = kind;
      e.digest = digest;
      absl::Status s = ValidateItemEntry(e);
      return Invalid(Cat(Where(), ": ", s.ok() ? "invalid item" : s.message()));
    }

    // Leaf input "shredd-item-v1 <kind> <digest> <size> <salt hex>"; the
    // salt is canonical lowercase hex, so it is its own HexEncode.
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
    const Hash leaf = LeafHash(std::string_view(buf, static_cast<size_t>(o - buf)));

    if (valid_ > 0 && !(prev_leaf_ < leaf) && order_error_at_ < 0) {
      order_error_at_ = static_cast<int64_t>(count_);
    }
    prev_leaf_ = leaf;
    tree_.Push(leaf);
    if (visitor_ != nullptr) visitor_->Leaf(valid_, leaf, kind, digest, size_, salt);
    ++valid_;
    if (kind == kKindPhoto) {
      ++photos_;
    } else {
      ++models_;
    }
    uint64_t prefix = 0;
    for (size_t i = 0; i < 16; ++i) {
      prefix = prefix << 4 |
               static_cast<uint64_t>(LowerHex(static_cast<unsigned char>(
                   digest[kDigestPrefix.size() + i])));
    }
    if (collect_ == nullptr) {
      if (visitor_ == nullptr) prefixes_.push_back(prefix);
    } else if (std::binary_search(collect_->begin(), collect_->end(), prefix)) {
      collected_.push_back(digest);
    }
    return absl::OkStatus();
  }

  absl::Status CheckHeader(const VerifiedCertificate& cert) const;
  absl::Status CheckOrderPrivate(const VerifiedCertificate& cert) const;

  Scanner sc_;
  const std::vector<uint64_t>* collect_;
  LeafVisitor* visitor_ = nullptr;
  std::string key_;
  uint64_t bytes_ = 0;

  bool not_object_ = false;
  absl::Status dup_error_;
  StringField type_, certificate_id_, merkle_root_;
  bool items_present_ = false;
  const char* items_type_ = nullptr;
  bool order_present_ = false, order_is_object_ = false;
  StringField order_private_, order_salt_;

  // Items.
  uint64_t count_ = 0;   // items seen
  uint64_t valid_ = 0;   // well-formed items hashed (== count_ if no error)
  absl::Status item_error_;  // the first malformed item
  StringField kind_, digest_, salt_;
  bool size_present_ = false, size_unsigned_ = false;
  uint64_t size_ = 0;
  uint64_t photos_ = 0, models_ = 0;
  Hash prev_leaf_{};
  int64_t order_error_at_ = -1;
  MerkleStack tree_;
  std::vector<uint64_t> prefixes_;   // first pass: 8 bytes of every digest
  std::vector<std::string> collected_;  // second pass: colliding digests
};

absl::Status ManifestPass::Wellformed() const {
  if (not_object_) return Invalid("manifest is not a JSON object");
  if (!dup_error_.ok()) return dup_error_;
  if (absl::Status s = StringMember(type_, "type"); !s.ok()) return s;
  if (type_.value != kManifestType) {
    return Invalid(Cat("manifest.type is \"", type_.value, "\", expected \"",
                       kManifestType, "\""));
  }
  if (absl::Status s = StringMember(certificate_id_, "certificateId");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = StringMember(merkle_root_, "merkleRoot"); !s.ok()) {
    return s;
  }
  absl::StatusOr<Hash> stated = ParseHash(merkle_root_.value);
  if (!stated.ok()) {
    return Invalid(Cat("manifest.merkleRoot: ", stated.status().message()));
  }
  if (!items_present_) return Invalid("manifest has no \"items\"");
  if (items_type_ != nullptr) {
    return Invalid(
        Cat("manifest.items is a ", items_type_, ", not an array"));
  }
  if (!item_error_.ok()) return item_error_;
  if (order_error_at_ >= 0) {
    return Invalid(Cat("manifest.items[", order_error_at_,
                       "] is out of tree order (leaf hashes must ascend)"));
  }
  if (tree_.Root() != *stated) {
    return Invalid(Cat("manifest Merkle root ", HexEncode(tree_.Root()),
                       " does not match its stated merkleRoot ",
                       HexEncode(*stated)));
  }
  return absl::OkStatus();
}

absl::Status ManifestPass::CheckHeader(const VerifiedCertificate& cert) const {
  auto string_member = StringMember;
  if (absl::Status s = string_member(type_, "type"); !s.ok()) return s;
  if (type_.value != kManifestType) {
    return Invalid(Cat("manifest.type is \"", type_.value, "\", expected \"",
                       kManifestType, "\""));
  }
  if (absl::Status s = string_member(certificate_id_, "certificateId");
      !s.ok()) {
    return s;
  }
  if (certificate_id_.value != cert.certificate_id) {
    return Invalid(Cat("manifest is for certificate \"", certificate_id_.value,
                       "\", not \"", cert.certificate_id, "\""));
  }
  if (absl::Status s = string_member(merkle_root_, "merkleRoot"); !s.ok()) {
    return s;
  }
  absl::StatusOr<Hash> root = ParseHash(merkle_root_.value);
  if (!root.ok()) {
    return Invalid(Cat("manifest.merkleRoot: ", root.status().message()));
  }
  if (*root != cert.merkle_root) {
    return Invalid(Cat("manifest states Merkle root ", Short(*root),
                       " but the certificate root is ",
                       Short(cert.merkle_root)));
  }
  if (!items_present_) return Invalid("manifest has no \"items\"");
  if (items_type_ != nullptr) {
    return Invalid(
        Cat("manifest.items is a ", items_type_, ", not an array"));
  }
  return absl::OkStatus();
}

// An order's private fields (requester, selectors) are committed to in the
// public predicate as predicate.order.privateCommitment =
// hex(SHA-256(salt || private)), and revealed in the manifest as
// {"order": {"private": "<JSON text>", "salt": "<64 hex>"}}.
absl::Status ManifestPass::CheckOrderPrivate(
    const VerifiedCertificate& cert) const {
  const nlohmann::json& pred = cert.predicate;
  if (!pred.is_object() || !pred.contains("order") ||
      !pred["order"].is_object() ||
      !pred["order"].contains("privateCommitment")) {
    return absl::OkStatus();
  }
  if (!pred["order"]["privateCommitment"].is_string()) {
    return Invalid("predicate.order.privateCommitment is not a string");
  }
  if (!order_present_ || !order_is_object_) {
    return Invalid(
        "manifest lacks the order's private fields that the certificate "
        "commits to");
  }
  if (!order_private_.present || order_private_.other_type != nullptr ||
      !order_salt_.present || order_salt_.other_type != nullptr) {
    return Invalid(
        "manifest.order needs string fields \"private\" and \"salt\"");
  }
  absl::StatusOr<std::string> salt = HexDecode(order_salt_.value);
  if (!salt.ok() || salt->size() != 32) {
    return Invalid("manifest.order.salt is not 64 hex characters");
  }
  const Hash h = Sha256(*salt + order_private_.value);
  if (HexEncode(h) != pred["order"]["privateCommitment"].get<std::string>()) {
    return Invalid(
        "manifest.order does not match the certificate's privateCommitment "
        "(altered requester or selectors)");
  }
  return absl::OkStatus();
}

absl::Status ManifestPass::Verdict(const VerifiedCertificate& cert, Input* in,
                                   ManifestStats* stats) {
  if (stats != nullptr) {
    stats->items = count_;
    stats->bytes = bytes_;
    stats->passes = 1;
  }
  if (not_object_) return Invalid("manifest is not a JSON object");
  if (!dup_error_.ok()) return dup_error_;
  if (absl::Status s = CheckHeader(cert); !s.ok()) return s;
  if (!item_error_.ok()) return item_error_;
  if (count_ != cert.item_count) {
    return Invalid(Cat("manifest lists ", count_, " items, certificate counts ",
                       cert.item_count));
  }

  // Repeated digests: equal digests have equal 8-byte prefixes; only items
  // whose prefixes collide need their full digests, from a second pass.
  SortPrefixes(prefixes_);
  std::vector<uint64_t> colliding;
  for (size_t i = 1; i < prefixes_.size(); ++i) {
    if (prefixes_[i] == prefixes_[i - 1] &&
        (colliding.empty() || colliding.back() != prefixes_[i])) {
      colliding.push_back(prefixes_[i]);
    }
  }
  std::vector<uint64_t>().swap(prefixes_);
  const Hash root = tree_.Root();
  if (!colliding.empty()) {
    if (stats != nullptr) {
      stats->passes = 2;
      stats->prefix_collisions = colliding.size();
    }
    if (absl::Status s = in->Rewind(); !s.ok()) return s;
    ManifestPass second(in, 0, &colliding);
    try {
      second.Run();
    } catch (const SyntaxError&) {
      return Invalid("manifest changed while it was being read");
    } catch (const IoError& e) {
      return e.status;
    }
    if (second.count_ != count_ || !second.item_error_.ok() ||
        second.tree_.Root() != root ||
        second.order_error_at_ != order_error_at_) {
      return Invalid("manifest changed while it was being read");
    }
    std::sort(second.collected_.begin(), second.collected_.end());
    if (auto dup = std::adjacent_find(second.collected_.begin(),
                                      second.collected_.end());
        dup != second.collected_.end()) {
      return Invalid(Cat("manifest lists item ", *dup, " twice"));
    }
  }

  std::map<std::string, uint64_t> by_kind;
  if (models_ > 0) by_kind[std::string(kKindModel)] = models_;
  if (photos_ > 0) by_kind[std::string(kKindPhoto)] = photos_;
  for (const auto& [kind, n] : by_kind) {
    auto it = cert.count_by_kind.find(kind);
    const uint64_t want = it == cert.count_by_kind.end() ? 0 : it->second;
    if (n != want) {
      return Invalid(Cat("manifest lists ", n, " items of kind ", kind,
                         ", certificate counts ", want));
    }
  }
  for (const auto& [kind, n] : cert.count_by_kind) {
    if (n != 0 && !by_kind.contains(kind)) {
      return Invalid(Cat("manifest lists no items of kind ", kind,
                         ", certificate counts ", n));
    }
  }
  // Tree order: strictly ascending leaf hashes. Checked even when the root
  // matches, since an issuer that skipped the sort would leak order.
  std::string order_error;
  if (order_error_at_ >= 0) {
    order_error = Cat("manifest.items[", order_error_at_,
                      "] is out of tree order (leaf hashes must ascend)");
  }
  if (root != cert.merkle_root) {
    return Invalid(Cat("manifest Merkle root ", HexEncode(root),
                       " does not match certificate root ",
                       HexEncode(cert.merkle_root),
                       order_error.empty() ? "" : "; ", order_error));
  }
  if (!order_error.empty()) return Invalid(order_error);
  return CheckOrderPrivate(cert);
}

absl::Status Verify(const VerifiedCertificate& cert, Input* in,
                    ManifestStats* stats) {
  ManifestPass pass(in, cert.item_count, nullptr);
  try {
    pass.Run();
  } catch (const SyntaxError& e) {
    if (stats != nullptr) stats->items = pass.items();
    return Invalid(Cat("manifest is not valid JSON: ", e.what));
  } catch (const IoError& e) {
    return e.status;
  }
  try {
    return pass.Verdict(cert, in, stats);
  } catch (const nlohmann::json::exception& e) {
    return Invalid(Cat("malformed manifest: ", e.what()));
  }
}

// The ranges [lo, hi) whose subtree hashes make up PATH(m, D[lo:hi]) of
// RFC 6962 section 2.1.1, in path order (leaf's sibling first).
void PathRanges(uint64_t m, uint64_t lo, uint64_t hi,
                std::vector<std::pair<uint64_t, uint64_t>>* out) {
  if (hi - lo <= 1) return;
  uint64_t k = 1;
  while (k << 1 < hi - lo) k <<= 1;
  if (m < lo + k) {
    PathRanges(m, lo, lo + k, out);
    out->emplace_back(lo + k, hi);
  } else {
    PathRanges(m, lo + k, hi, out);
    out->emplace_back(lo, lo + k);
  }
}

// First pass: where the item is.
class FindItem final : public LeafVisitor {
 public:
  explicit FindItem(std::string_view digest) : digest_(digest) {}
  void Leaf(uint64_t index, const Hash&, std::string_view kind,
            std::string_view digest, uint64_t size,
            std::string_view salt) override {
    if (digest != digest_) return;
    ++found;
    this->index = index;
    entry.kind = std::string(kind);
    entry.digest = std::string(digest);
    entry.size = size;
    absl::StatusOr<std::string> s = HexDecode(salt);  // 64 hex: checked
    if (s.ok() && s->size() == entry.salt.size()) {
      std::memcpy(entry.salt.data(), s->data(), entry.salt.size());
    }
  }
  int found = 0;
  uint64_t index = 0;
  ItemEntry entry;

 private:
  std::string_view digest_;
};

// Second pass: the subtree hash of every range of the path, each folded
// with its own stack as its leaves stream past (O(log^2 n) hashes).
class FoldRanges final : public LeafVisitor {
 public:
  explicit FoldRanges(std::vector<std::pair<uint64_t, uint64_t>> ranges)
      : ranges_(std::move(ranges)), stacks_(ranges_.size()) {}
  void Leaf(uint64_t index, const Hash& leaf, std::string_view,
            std::string_view, uint64_t, std::string_view) override {
    for (size_t i = 0; i < ranges_.size(); ++i) {
      if (index >= ranges_[i].first && index < ranges_[i].second) {
        stacks_[i].Push(leaf);
        return;
      }
    }
  }
  std::vector<Hash> Path() const {
    std::vector<Hash> path;
    for (const MerkleStack& s : stacks_) path.push_back(s.Root());
    return path;
  }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
  std::vector<MerkleStack> stacks_;
};

absl::StatusOr<std::string> Receipt(Input* in, std::string_view digest) {
  ManifestPass first(in, 0, nullptr);
  FindItem find(digest);
  first.set_visitor(&find);
  try {
    first.Run();
  } catch (const SyntaxError& e) {
    return Invalid(Cat("manifest is not valid JSON: ", e.what));
  } catch (const IoError& e) {
    return e.status;
  }
  if (absl::Status s = first.Wellformed(); !s.ok()) return s;
  if (find.found == 0) {
    return absl::NotFoundError(Cat(digest, " is not in the manifest"));
  }
  if (find.found > 1) {
    return Invalid(Cat("manifest lists item ", digest, " twice"));
  }
  const uint64_t n = first.items();
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  PathRanges(find.index, 0, n, &ranges);
  if (absl::Status s = in->Rewind(); !s.ok()) return s;
  ManifestPass second(in, 0, nullptr);
  FoldRanges fold(ranges);
  second.set_visitor(&fold);
  try {
    second.Run();
  } catch (const SyntaxError&) {
    return Invalid("manifest changed while it was being read");
  } catch (const IoError& e) {
    return e.status;
  }
  if (second.items() != n || second.root() != first.root() ||
      !second.Wellformed().ok()) {
    return Invalid("manifest changed while it was being read");
  }
  const std::vector<Hash> path = fold.Path();
  return ReceiptJsonFor(first.certificate_id(), first.root(), n, find.index,
                        find.entry, path);
}

}  // namespace

absl::StatusOr<std::string> ReceiptFromManifestFile(const std::string& path,
                                                    std::string_view digest,
                                                    size_t buffer_bytes) {
  absl::StatusOr<std::unique_ptr<FileInput>> in =
      FileInput::Open(path, buffer_bytes);
  if (!in.ok()) return in.status();
  return Receipt(in->get(), digest);
}

absl::StatusOr<std::string> ReceiptFromManifestText(
    std::string_view manifest_json, std::string_view digest) {
  MemoryInput in(manifest_json);
  return Receipt(&in, digest);
}

absl::StatusOr<std::string> ManifestCertificateId(
    std::string_view manifest_json) {
  MemoryInput in(manifest_json);
  ManifestPass pass(&in, 0, nullptr);
  try {
    pass.Run();
  } catch (const SyntaxError& e) {
    return Invalid(Cat("manifest is not valid JSON: ", e.what));
  } catch (const IoError& e) {
    return e.status;
  }
  if (absl::Status s = pass.Wellformed(); !s.ok()) return s;
  return pass.certificate_id();
}

absl::Status VerifyManifestFile(const VerifiedCertificate& certificate,
                                const std::string& path, ManifestStats* stats,
                                size_t buffer_bytes) {
  absl::StatusOr<std::unique_ptr<FileInput>> in =
      FileInput::Open(path, buffer_bytes);
  if (!in.ok()) return in.status();
  return Verify(certificate, in->get(), stats);
}

absl::Status VerifyManifestText(const VerifiedCertificate& certificate,
                                std::string_view manifest_json,
                                ManifestStats* stats) {
  MemoryInput in(manifest_json);
  return Verify(certificate, &in, stats);
}

absl::Status VerifyManifest(const VerifiedCertificate& certificate,
                            std::string_view manifest_json) {
  return VerifyManifestText(certificate, manifest_json);
}

}  // namespace shredd::verify
