// The shredd daemon: opens the vault and the store, serves gRPC until told to stop.
#ifndef SHREDD_DAEMON_SERVER_H_
#define SHREDD_DAEMON_SERVER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace shredd {

struct DaemonOptions {
  std::string data_dir = "./var/shredd/data";
  std::vector<std::string> listen = {"unix:./var/shredd/shredd.sock"};
  std::string vault = "file:./var/shredd/vault";
  uint64_t inline_threshold = 64 * 1024;
  int max_message_bytes = 8 * 1024 * 1024;
  // Origin of the transparency log (its checkpoints' first line and note key
  // name). Empty: "shredd.local/" + the first 16 hex of the signing KeyId.
  std::string log_origin;
};

// Runs until SIGTERM or SIGINT (blocked by the caller before threads start).
// Sends READY=1 to systemd once storage is open and every socket is bound,
// STOPPING=1 when a stop signal arrives.
absl::Status RunDaemon(const DaemonOptions& options);

}  // namespace shredd

#endif  // SHREDD_DAEMON_SERVER_H_
