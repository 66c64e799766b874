#include "daemon/api/unix_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>

#include <grpcpp/server_posix.h>

#include "daemon/base/strings.h"

namespace shredd {

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Bind(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(StrCat("bad unix socket path: ", path));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(StrCat("socket: ", std::strerror(errno)));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(StrCat("cannot bind ", path, ": ", std::strerror(e)));
  }
  if (chmod(path.c_str(), 0666) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    unlink(path.c_str());
    return absl::UnavailableError(StrCat("cannot listen on ", path, ": ", std::strerror(e)));
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    unlink(path.c_str());
    return absl::InternalError(StrCat("eventfd: ", std::strerror(errno)));
  }
  return std::unique_ptr<UnixListener>(new UnixListener(path, fd, wake));
}

UnixListener::~UnixListener() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void UnixListener::Start(grpc::Server* server, auth::Authorizer* authorizer) {
  thread_ = std::thread([this, server, authorizer] { Loop(server, authorizer); });
}

void UnixListener::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void UnixListener::Loop(grpc::Server* server, auth::Authorizer* authorizer) {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::cerr << "shredd: poll on " << path_ << ": " << std::strerror(errno) << std::endl;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE and friends: back off instead of spinning.
      std::cerr << "shredd: accept on " << path_ << ": " << std::strerror(errno) << std::endl;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    struct stat st {};
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || fstat(conn, &st) != 0) {
      close(conn);
      continue;
    }
    // Record the uid before gRPC can read a byte from the connection.
    authorizer->RegisterUnixConnection(conn, st.st_ino, cred.uid);
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

}  // namespace shredd
