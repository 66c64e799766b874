// The transfer RPCs' bulk messages read as gRPC's raw bytes, by the daemon
// (PutRequest) and by shredctl (GetResponse): a message in protobuf's usual
// encoding of its content field is split in place, so the content is used
// straight from gRPC's receive buffers instead of being copied into a fresh
// std::string by protobuf's parser. Any other shape is left to protobuf.
#ifndef SHREDD_PROTO_RAW_WIRE_H_
#define SHREDD_PROTO_RAW_WIRE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/slice.h>

namespace shredd::raw_wire {

// `slices` hold one message. True if it is, in this order, `varint_field`
// (if not 0) as a varint, and then `bytes_field` as a length-delimited field
// that ends the message: then *bytes are that field's bytes, as views into
// `slices`, and *varint the first field's value (0 if absent). False for
// any other shape (more or other fields, another order, a length that does
// not match): parse the message with protobuf.
bool SplitBytesField(const std::vector<grpc::Slice>& slices, int varint_field, int bytes_field,
                     std::vector<std::string_view>* bytes, uint64_t* varint);

// The bytes of `slices`, copied into one string.
std::string Flatten(const std::vector<grpc::Slice>& slices);

}  // namespace shredd::raw_wire

#endif  // SHREDD_PROTO_RAW_WIRE_H_
