#include "daemon/api/raw_messages.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace shredd {

namespace {

using google::protobuf::internal::WireFormatLite;

constexpr int kPutDataField = v1::PutRequest::kDataFieldNumber;
constexpr int kGetDataField = v1::GetResponse::kDataFieldNumber;
constexpr int kGetTotalSizeField = v1::GetResponse::kTotalSizeFieldNumber;

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

size_t PutMessage::data_size() const {
  size_t n = 0;
  for (std::string_view d : data_) n += d.size();
  return n;
}

UploadRun PutMessage::TakeData() {
  UploadRun run;
  if (data_path_) {
    run.parts = std::move(data_);
    run.owner = std::make_shared<std::vector<grpc::Slice>>(std::move(slices_));
  } else if (!data_.empty()) {
    auto owned = std::make_shared<std::string>(std::move(*parsed_.mutable_data()));
    run.parts = {std::string_view(*owned)};  // a short string's bytes moved with it
    run.owner = std::move(owned);
  }
  data_.clear();
  slices_.clear();
  return run;
}

absl::Status PutMessage::Parse(grpc::ByteBuffer* buffer) {
  slices_.clear();
  data_.clear();
  parsed_.Clear();
  data_path_ = false;
  if (auto s = buffer->Dump(&slices_); !s.ok()) {
    return absl::InvalidArgumentError("cannot read an upload message: " + s.error_message());
  }
  buffer->Clear();
  if (ParseDataFast()) return absl::OkStatus();
  // Headers, trailers and anything encoded otherwise: protobuf's parser.
  flat_.clear();
  for (const auto& s : slices_) flat_.append(reinterpret_cast<const char*>(s.begin()), s.size());
  slices_.clear();
  if (!parsed_.ParseFromString(flat_)) {
    return absl::InvalidArgumentError("an upload message is not a valid PutRequest");
  }
  if (!parsed_.has_header() && !parsed_.has_trailer() && !parsed_.data().empty()) data_.push_back(parsed_.data());
  return absl::OkStatus();
}

bool PutMessage::ParseDataFast() {
  size_t total = 0;
  for (const auto& s : slices_) total += s.size();
  // A tag and a length take at most 1 + 10 bytes.
  std::array<uint8_t, 11> head{};
  const size_t have = Gather(slices_, head);
  google::protobuf::io::CodedInputStream in(head.data(), static_cast<int>(have));
  if (in.ReadTag() != WireFormatLite::MakeTag(kPutDataField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) return false;
  uint64_t length = 0;
  if (!in.ReadVarint64(&length)) return false;
  const auto skip = static_cast<size_t>(in.CurrentPosition());
  if (length != total - skip) return false;  // more fields follow: protobuf decides
  size_t offset = skip;
  for (const auto& s : slices_) {
    std::string_view v(reinterpret_cast<const char*>(s.begin()), s.size());
    if (offset >= v.size()) {
      offset -= v.size();
      continue;
    }
    data_.push_back(v.substr(offset));
    offset = 0;
  }
  data_path_ = true;
  return true;
}

grpc::ByteBuffer GetResponseBuffer(std::string&& plain, int64_t total_size) {
  std::array<uint8_t, 24> head{};
  uint8_t* p = head.data();
  // The fields as protobuf writes them (proto3: defaults are left out).
  if (total_size > 0) {
    p = WireFormatLite::WriteInt64ToArray(kGetTotalSizeField, total_size, p);
  }
  if (!plain.empty()) {
    p = WireFormatLite::WriteTagToArray(kGetDataField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
    p = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(plain.size(), p);
  }
  std::vector<grpc::Slice> slices;
  slices.emplace_back(head.data(), static_cast<size_t>(p - head.data()));
  if (!plain.empty()) {
    auto* owned = new std::string(std::move(plain));
    slices.emplace_back(
        owned->data(), owned->size(),
        [](void* s) {
          auto* str = static_cast<std::string*>(s);
          sodium_memzero(str->data(), str->size());
          delete str;
        },
        owned);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace shredd
