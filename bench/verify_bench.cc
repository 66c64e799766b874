// Offline verification speed: one certificate (signature + statement) many
// times, and optionally a manifest against its certificate.
// Usage: bench_verify CERT PUBKEY [MANIFEST]   -> JSON line
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "client/verify/certificate.h"
#include "client/verify/keys.h"

namespace {
std::string Read(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || sodium_init() < 0) return 2;
  auto key = shredd::verify::ParsePublicKey(Read(argv[2]));
  if (!key.ok()) return 2;
  const std::string cert = Read(argv[1]);
  const int n = 1000;
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<shredd::verify::VerifiedCertificate> v = absl::UnknownError("");
  for (int i = 0; i < n; ++i) {
    v = shredd::verify::VerifyCertificate(cert, *key);
    if (!v.ok()) return 1;
  }
  double per = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / n;
  double manifest_s = -1;
  if (argc > 3) {
    const std::string m = Read(argv[3]);
    auto t1 = std::chrono::steady_clock::now();
    if (!shredd::verify::VerifyManifest(*v, m).ok()) return 1;
    manifest_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  }
  std::printf("{\"certificate_ms\":%.4f,\"manifest_s\":%.3f,\"items\":%llu}\n", per, manifest_s,
              static_cast<unsigned long long>(v->item_count));
  return 0;
}
