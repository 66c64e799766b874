// The one place where absl::Status becomes grpc::Status.
#ifndef SHREDD_DAEMON_API_STATUS_MAP_H_
#define SHREDD_DAEMON_API_STATUS_MAP_H_

#include <string>

#include "absl/status/status.h"
#include <grpcpp/support/status.h>

namespace shredd {

// Status messages travel in a reply's metadata (grpc-message), which the
// client refuses above 8 KiB: a message is cut to kMaxStatusMessage bytes at
// a UTF-8 character boundary. Messages quote input through QuoteForError
// (daemon/base/field_rules.h); this is the backstop.
inline constexpr size_t kMaxStatusMessage = 2048;

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string message(s.message());
  if (message.size() > kMaxStatusMessage) {
    size_t cut = kMaxStatusMessage;
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
    message.resize(cut);
    message += " ... (message cut)";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::move(message));
}

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_STATUS_MAP_H_
