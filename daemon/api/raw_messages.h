// The bulk messages of the transfer RPCs read and written as gRPC's raw
// bytes, so that the content does not take protobuf's detour through a fresh
// std::string per message (docs/PERFORMANCE.md, "Transfer"):
//   - PutMessage: an upload's PutRequest. A data message, encoded as
//     protobuf encodes it (field 2 and nothing else), is read straight from
//     gRPC's receive slices; anything else is parsed by protobuf as before.
//   - GetResponseBuffer: a download's GetResponse framed around the caller's
//     plaintext buffer, which gRPC sends without a copy and hands back to be
//     wiped when it is done with it.
// The wire format is protobuf's: clients see the same messages.
#ifndef SHREDD_DAEMON_API_RAW_MESSAGES_H_
#define SHREDD_DAEMON_API_RAW_MESSAGES_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "shredd/v1/shredd.pb.h"
#include <grpcpp/grpcpp.h>

#include "daemon/items/item_store.h"

namespace shredd {

class PutMessage {
 public:
  // Takes `buffer`'s bytes. INVALID_ARGUMENT if they are not a PutRequest.
  absl::Status Parse(grpc::ByteBuffer* buffer);
  bool has_header() const { return !data_path_ && parsed_.has_header(); }
  bool has_trailer() const { return !data_path_ && parsed_.has_trailer(); }
  // A message with neither is data (possibly empty), as in protobuf.
  const v1::PutRequest& parsed() const { return parsed_; }
  // The data bytes, in order; they live as long as this message (or the
  // next Parse).
  std::span<const std::string_view> data() const { return data_; }
  size_t data_size() const;
  // The data bytes with what keeps them alive (gRPC's slices, or the parsed
  // message's string), taken from this message.
  UploadRun TakeData();

 private:
  // The whole buffer is field 2 (data): true, data_ points into slices_.
  bool ParseDataFast();
  std::vector<grpc::Slice> slices_;
  std::vector<std::string_view> data_;
  v1::PutRequest parsed_;
  std::string flat_;
  bool data_path_ = false;
};

// One GetResponse with `plain` as its data (and total_size if not negative).
// The buffer's memory is `plain`'s, zeroed once gRPC releases it.
grpc::ByteBuffer GetResponseBuffer(std::string&& plain, int64_t total_size);

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_RAW_MESSAGES_H_
