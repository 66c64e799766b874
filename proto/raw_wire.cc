#include "proto/raw_wire.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <span>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace shredd::raw_wire {

namespace {

using google::protobuf::internal::WireFormatLite;

// The first bytes of `slices` (at most out.size()), gathered.
size_t Gather(const std::vector<grpc::Slice>& slices, std::span<uint8_t> out) {
  size_t n = 0;
  for (const auto& s : slices) {
    size_t take = std::min(s.size(), out.size() - n);
    std::memcpy(out.data() + n, s.begin(), take);
    n += take;
    if (n == out.size()) break;
  }
  return n;
}

}  // namespace

bool SplitBytesField(const std::vector<grpc::Slice>& slices, int varint_field, int bytes_field,
                     std::vector<std::string_view>* bytes, uint64_t* varint) {
  bytes->clear();
  *varint = 0;
  size_t total = 0;
  for (const auto& s : slices) total += s.size();
  // Two tags and two varints take at most 2 * (5 + 10) bytes.
  std::array<uint8_t, 30> head{};
  const size_t have = Gather(slices, head);
  google::protobuf::io::CodedInputStream in(head.data(), static_cast<int>(have));
  uint32_t tag = in.ReadTag();
  if (varint_field != 0 && tag == WireFormatLite::MakeTag(varint_field, WireFormatLite::WIRETYPE_VARINT)) {
    if (!in.ReadVarint64(varint)) return false;
    tag = in.ReadTag();
  }
  if (tag != WireFormatLite::MakeTag(bytes_field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) return false;
  uint64_t length = 0;
  if (!in.ReadVarint64(&length)) return false;
  const auto skip = static_cast<size_t>(in.CurrentPosition());
  if (skip > total || length != total - skip) return false;  // more fields follow: protobuf decides
  size_t offset = skip;
  for (const auto& s : slices) {
    std::string_view v(reinterpret_cast<const char*>(s.begin()), s.size());
    if (offset >= v.size()) {
      offset -= v.size();
      continue;
    }
    bytes->push_back(v.substr(offset));
    offset = 0;
  }
  return true;
}

std::string Flatten(const std::vector<grpc::Slice>& slices) {
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

}  // namespace shredd::raw_wire
