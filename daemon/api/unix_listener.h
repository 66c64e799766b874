// The daemon's own accept loop for unix: listeners. gRPC does not tell a
// handler which socket a call came on, so shredd accepts unix connections
// itself, records the peer's uid (SO_PEERCRED) with the Authorizer, and hands
// each connection to gRPC with AddInsecureChannelFromFd; gRPC then names the
// call's peer "fd:<fd>" and the Authorizer maps it back (daemon/api/auth.h).
#ifndef SHREDD_DAEMON_API_UNIX_LISTENER_H_
#define SHREDD_DAEMON_API_UNIX_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include <grpcpp/server.h>

#include "daemon/api/auth.h"

namespace shredd {

class UnixListener {
 public:
  // Binds and listens on `path` (mode 0666: who may do what is decided per
  // call by uid; the directory's permissions are the outer fence). The path
  // must be free (server.cc removes a stale socket first).
  static absl::StatusOr<std::unique_ptr<UnixListener>> Bind(const std::string& path);
  ~UnixListener();

  // Starts accepting; each connection goes to `server`, its uid to `auth`.
  void Start(grpc::Server* server, auth::Authorizer* authorizer);
  // Stops accepting and closes the listening socket (connections already
  // handed to gRPC stay with it). Call before grpc::Server::Shutdown.
  void Stop();

 private:
  UnixListener(std::string path, int fd, int wake_fd) : path_(std::move(path)), fd_(fd), wake_fd_(wake_fd) {}
  void Loop(grpc::Server* server, auth::Authorizer* authorizer);

  std::string path_;
  int fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_UNIX_LISTENER_H_
