// A gRPC server interceptor that counts every call by full method name and
// final status code (shredd_requests_total{method,code}).
#ifndef SHREDD_DAEMON_API_REQUEST_METRICS_H_
#define SHREDD_DAEMON_API_REQUEST_METRICS_H_

#include <string_view>

#include <grpcpp/support/server_interceptor.h>

namespace shredd {

class RequestMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

// "OK", "NOT_FOUND", ... as in grpc/status.h; "UNKNOWN" for codes outside it.
std::string_view StatusCodeName(int code);

}  // namespace shredd

#endif  // SHREDD_DAEMON_API_REQUEST_METRICS_H_
