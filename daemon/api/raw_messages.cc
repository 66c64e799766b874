#include "daemon/api/raw_messages.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "proto/raw_wire.h"

namespace shredd {

namespace {

using google::protobuf::internal::WireFormatLite;

constexpr int kPutDataField = v1::PutRequest::kDataFieldNumber;
constexpr int kGetDataField = v1::GetResponse::kDataFieldNumber;
constexpr int kGetTotalSizeField = v1::GetResponse::kTotalSizeFieldNumber;

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
  flat_ = raw_wire::Flatten(slices_);
  slices_.clear();
  if (!parsed_.ParseFromString(flat_)) {
    return absl::InvalidArgumentError("an upload message is not a valid PutRequest");
  }
  if (!parsed_.has_header() && !parsed_.has_trailer() && !parsed_.data().empty()) data_.push_back(parsed_.data());
  return absl::OkStatus();
}

bool PutMessage::ParseDataFast() {
  uint64_t none = 0;
  data_path_ = raw_wire::SplitBytesField(slices_, 0, kPutDataField, &data_, &none);
  return data_path_;
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
