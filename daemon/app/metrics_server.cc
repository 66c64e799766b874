#include "daemon/app/metrics_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "daemon/base/strings.h"
#include "daemon/config/config.h"

namespace shredd {

// ---------------------------------------------------------------- exposition

namespace {
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back exactly
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}
}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Exposition::Header(std::string_view name, std::string_view help, std::string_view type) {
  out_ += StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void Exposition::AddCounter(std::string_view name, std::string_view help, uint64_t value) {
  Header(name, help, "counter");
  out_ += StrCat(name, " ", value, "\n");
}

void Exposition::AddGauge(std::string_view name, std::string_view help, double value) {
  Header(name, help, "gauge");
  out_ += StrCat(name, " ", FormatDouble(value), "\n");
}

void Exposition::AddLabeledGauge(std::string_view name, std::string_view help, std::string_view label,
                                 const std::vector<std::pair<std::string, double>>& series) {
  AddLabeled(name, help, "gauge", label, series);
}

void Exposition::AddLabeledCounter(std::string_view name, std::string_view help, std::string_view label,
                                   const std::vector<std::pair<std::string, double>>& series) {
  AddLabeled(name, help, "counter", label, series);
}

void Exposition::AddLabeled(std::string_view name, std::string_view help, std::string_view type, std::string_view label,
                            const std::vector<std::pair<std::string, double>>& series) {
  Header(name, help, type);
  for (const auto& [v, x] : series) {
    out_ += StrCat(name, "{", label, "=\"", EscapeLabelValue(v), "\"} ", FormatDouble(x), "\n");
  }
}

void Exposition::AddFamily(std::string_view name, std::string_view help, const CounterFamily& family) {
  Header(name, help, "counter");
  const auto& names = family.label_names();
  for (const auto& [values, n] : family.Read()) {
    out_ += StrCat(name, "{");
    for (size_t i = 0; i < names.size(); ++i) {
      out_ += StrCat(i ? "," : "", names[i], "=\"", EscapeLabelValue(values[i]), "\"");
    }
    out_ += StrCat("} ", n, "\n");
  }
}

void Exposition::AddHistogram(std::string_view name, std::string_view help, const Histogram& h) {
  Header(name, help, "histogram");
  auto s = h.Read();
  for (size_t i = 0; i < s.bounds.size(); ++i) {
    out_ += StrCat(name, "_bucket{le=\"", FormatDouble(s.bounds[i]), "\"} ", s.cumulative[i], "\n");
  }
  out_ += StrCat(name, "_bucket{le=\"+Inf\"} ", s.cumulative.back(), "\n");
  out_ += StrCat(name, "_sum ", FormatDouble(s.sum), "\n");
  out_ += StrCat(name, "_count ", s.count, "\n");
}

void ExposeDaemonMetrics(const DaemonMetrics& m, Exposition* e) {
  e->AddFamily("shredd_requests_total", "gRPC calls handled, by full method name and status code.", m.requests);
  e->AddCounter("shredd_bytes_received_total", "Content bytes received in uploads (Put, BatchPut).",
                m.bytes_received.value());
  e->AddCounter("shredd_bytes_sent_total", "Content bytes sent in downloads (Get).", m.bytes_sent.value());
  e->AddCounter("shredd_transfers_stalled_total",
                "Downloads, uploads and manifest or subject-map streams cancelled after no progress for "
                "[storage] transfer_idle_s.",
                m.transfers_stalled.value());
  e->AddHistogram("shredd_shred_epoch_seconds",
                  "Duration of shred epochs (re-key, commit, destroy the old root), in seconds.",
                  m.shred_epoch_seconds);
  e->AddGauge("shredd_pending_certifications",
              "Destructions committed whose certificate is not issued yet (an old root not destroyed, or "
              "certifying failed); retried in the background.",
              static_cast<double>(m.pending_certifications.value()));
  e->AddCounter("shredd_pending_certification_failures_total",
                "Failed attempts to finish a pending certification (destroying old roots, certifying).",
                m.pending_certification_failures.value());
}

// ---------------------------------------------------------------- HTTP

namespace {

constexpr size_t kMaxRequestBytes = 8 * 1024;
constexpr size_t kMaxConnections = 16;
constexpr auto kRequestTimeout = std::chrono::seconds(5);

std::string Response(std::string_view status, std::string_view body, std::string_view extra_headers = "",
                     bool head = false) {
  std::string r = StrCat("HTTP/1.1 ", status, "\r\n");
  if (status.starts_with("200")) {
    r += "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n";
  } else {
    r += "Content-Type: text/plain; charset=utf-8\r\n";
  }
  r += StrCat("Content-Length: ", body.size(), "\r\nConnection: close\r\nCache-Control: no-store\r\n", extra_headers,
              "\r\n");
  if (!head) r.append(body);
  return r;
}

struct Connection {
  int fd = -1;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool responding = false;
  std::chrono::steady_clock::time_point deadline;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string_view hostport,
                                                                    std::function<std::string()> render) {
  std::string host;
  uint16_t port = 0;
  if (auto s = SplitHostPort(hostport, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(StrCat("metrics_listen ", hostport, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  int err = 0;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0) {
      server->listen_fd_ = fd;
      break;
    }
    err = errno;
    close(fd);
  }
  freeaddrinfo(res);
  if (server->listen_fd_ < 0) {
    return absl::UnavailableError(StrCat("cannot listen for metrics on ", hostport, ": ", std::strerror(err)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  server->port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                    : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_fd_ < 0) return absl::InternalError(StrCat("eventfd: ", std::strerror(errno)));
  server->render_ = std::move(render);
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void MetricsServer::Loop() {
  std::vector<Connection> conns;
  auto respond = [&](Connection& c) {
    // The request line: METHOD SP TARGET SP HTTP/1.x
    size_t eol = c.in.find('\n');
    std::string_view line(c.in.data(), eol == std::string::npos ? c.in.size() : eol);
    if (line.ends_with('\r')) line.remove_suffix(1);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      c.out = Response("400 Bad Request", "bad request\n");
    } else {
      std::string_view method = line.substr(0, sp1);
      std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      std::string_view path = target.substr(0, target.find('?'));
      if (path != "/metrics") {
        c.out = Response("404 Not Found", "not found: metrics are at /metrics\n");
      } else if (method != "GET" && method != "HEAD") {
        c.out = Response("405 Method Not Allowed", "only GET and HEAD\n", "Allow: GET, HEAD\r\n");
      } else {
        c.out = Response("200 OK", render_(), "", method == "HEAD");
      }
    }
    c.responding = true;
    c.sent = 0;
  };
  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(conns.size() < kMaxConnections ? POLLIN : 0), 0});
    auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::hours(1);
    for (const auto& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
      next = std::min(next, c.deadline);
    }
    int timeout_ms = static_cast<int>(
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1));
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents != 0) {
      for (const auto& c : conns) close(c.fd);
      return;
    }
    now = std::chrono::steady_clock::now();
    std::vector<bool> done(conns.size(), false);
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      const short re = fds[i + 2].revents;
      if (now >= c.deadline) {
        done[i] = true;  // too slow: drop without a response
        continue;
      }
      if (re == 0) continue;
      if (!c.responding) {
        char buf[2048];
        ssize_t got = recv(c.fd, buf, sizeof buf, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got <= 0) {
          done[i] = true;
          continue;
        }
        c.in.append(buf, static_cast<size_t>(got));
        if (c.in.find("\r\n\r\n") != std::string::npos || c.in.find("\n\n") != std::string::npos) {
          respond(c);
        } else if (c.in.size() > kMaxRequestBytes) {
          c.out = Response("431 Request Header Fields Too Large", "request too large\n");
          c.responding = true;
        }
      }
      if (c.responding) {
        ssize_t w = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (w <= 0) {
          done[i] = true;
          continue;
        }
        c.sent += static_cast<size_t>(w);
        if (c.sent == c.out.size()) {
          shutdown(c.fd, SHUT_WR);
          done[i] = true;
        }
      }
    }
    for (size_t i = conns.size(); i-- > 0;) {
      if (done[i]) {
        close(conns[i].fd);
        conns.erase(conns.begin() + static_cast<ptrdiff_t>(i));
      }
    }
    if (fds[1].revents & POLLIN) {
      while (conns.size() < kMaxConnections) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        Connection c;
        c.fd = fd;
        c.deadline = std::chrono::steady_clock::now() + kRequestTimeout;
        conns.push_back(std::move(c));
      }
    }
  }
}

}  // namespace shredd
