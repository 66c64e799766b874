// Offline verification speed: one certificate (signature + statement) many
// times, and optionally a manifest against its certificate, streamed from
// its file by the same verifier as `shredctl verify --manifest`.
//
// Usage:
//   bench_verify CERT PUBKEY [MANIFEST]   -> one JSON line:
//     {"certificate_ms":..., "certificate_cpu_ms":..., "manifest_s":...,
//      "manifest_cpu_s":..., "items":..., "manifest_bytes":..., "passes":...,
//      "rss_before_manifest_mib":..., "peak_rss_mib":...}
//   (*_ms / *_s are wall-clock; *_cpu_* are user+system CPU of this process,
//   which tell the cost apart from waiting on a shared machine.)
//   bench_verify --synthesize N OUTDIR    -> writes OUTDIR/synthetic.json
//     (a signed certificate of N items under a throwaway Ed25519 key),
//     OUTDIR/synthetic.manifest.json and OUTDIR/synthetic.pub.pem, so that
//     verification can be measured at any scale without a daemon. Run it as
//     its own process: generation needs ~40 bytes per item in memory.
#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/merkle.h"

namespace {

namespace v = shredd::verify;

std::string Read(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double CpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double PeakRssMib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is KiB
}

// Item i of a synthetic certificate, recomputable from (seed, i).
struct SynthItem {
  const char* kind;
  std::string digest;  // sha256:<hex>
  uint64_t size;
  std::string salt;  // 64 hex
};

SynthItem MakeItem(const std::string& seed, uint64_t i) {
  const std::string n = std::to_string(i);
  SynthItem it;
  it.kind = i % 10 == 3 ? "model" : "photo";
  it.digest = "sha256:" + v::HexEncode(v::Sha256("synthetic item " + n));
  it.size = 1 + (i * 7919) % 50000000;
  it.salt = v::HexEncode(v::Sha256(seed + " salt " + n));
  return it;
}

std::string LeafInput(const SynthItem& it) {
  return std::string(v::kLeafFormat) + " " + it.kind + " " + it.digest + " " + std::to_string(it.size) + " " + it.salt;
}

int Synthesize(uint64_t n, const std::string& dir) {
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
  v::PublicKey pub{};
  crypto_sign_keypair(pub.data(), sk.data());
  std::string seed(32, '\0');
  randombytes_buf(seed.data(), seed.size());

  std::vector<std::pair<v::Hash, uint64_t>> order;
  order.reserve(n);
  uint64_t models = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const SynthItem it = MakeItem(seed, i);
    if (it.kind[0] == 'm') ++models;
    order.emplace_back(v::LeafHash(LeafInput(it)), i);
  }
  std::sort(order.begin(), order.end());
  v::Hash root;
  {
    std::vector<v::Hash> leaves;
    leaves.reserve(n);
    for (const auto& [h, i] : order) leaves.push_back(h);
    root = v::RootFromLeafHashes(leaves);
  }
  const std::string id = "synthetic-" + std::to_string(n);

  const std::string manifest_path = dir + "/synthetic.manifest.json";
  FILE* f = std::fopen(manifest_path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(manifest_path.c_str());
    return 2;
  }
  static char buf[1 << 22];
  std::setvbuf(f, buf, _IOFBF, sizeof(buf));
  std::fprintf(f, "{\"type\":\"%s\",\"certificateId\":\"%s\",\"merkleRoot\":\"%s\",\"items\":[",
               std::string(v::kManifestType).c_str(), id.c_str(), v::HexEncode(root).c_str());
  for (uint64_t k = 0; k < n; ++k) {
    const SynthItem it = MakeItem(seed, order[k].second);
    std::fprintf(f, "%s{\"kind\":\"%s\",\"digest\":\"%s\",\"size\":%llu,\"salt\":\"%s\"}", k ? "," : "", it.kind,
                 it.digest.c_str(), static_cast<unsigned long long>(it.size), it.salt.c_str());
  }
  std::fputs("]}", f);
  if (std::fclose(f) != 0) {
    std::perror(manifest_path.c_str());
    return 2;
  }

  nlohmann::ordered_json p;
  p["certificateId"] = id;
  p["request"] = {{"id", "synthetic"}, {"reason", "bench_verify --synthesize"}};
  p["method"] = {
      {"technique", "cryptographic-erase"}, {"standard", "NIST SP 800-88 Rev. 1"}, {"sanitization", "purge"}};
  p["destruction"] = {{"vaultBackend", "file"}, {"rootEpochDestroyed", 1}, {"rootEpochInstalled", 2}};
  p["times"] = {{"requested", "2026-11-26T04:20:00Z"},
                {"destroyed", "2026-11-26T04:27:09.123Z"},
                {"issued", "2026-11-26T04:27:09.200Z"}};
  p["items"] = {{"count", n},
                {"byKind", {{v::kKindPhoto, n - models}, {v::kKindModel, models}}},
                {"merkleRoot", v::HexEncode(root)},
                {"leafFormat", v::kLeafFormat}};
  p["derivedModels"] = nlohmann::ordered_json::array();
  p["retainedUnderHold"] = nlohmann::ordered_json::array();
  p["shredd"] = {{"version", "bench"}};
  absl::StatusOr<std::string> statement = v::StatementJson(p);
  if (!statement.ok()) {
    std::fprintf(stderr, "statement: %s\n", std::string(statement.status().message()).c_str());
    return 2;
  }
  const std::string envelope = v::SignCertificate(*statement, v::SecretKeySpan(sk.data(), sk.size()));
  sodium_memzero(sk.data(), sk.size());
  std::ofstream(dir + "/synthetic.json", std::ios::binary) << envelope;
  std::ofstream(dir + "/synthetic.pub.pem", std::ios::binary) << v::ToSpkiPem(pub);
  std::printf(
      "{\"items\":%llu,\"certificate\":\"%s/synthetic.json\",\"manifest\":\"%s\",\"pubkey\":\"%s/"
      "synthetic.pub.pem\"}\n",
      static_cast<unsigned long long>(n), dir.c_str(), manifest_path.c_str(), dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 2;
  if (argc == 4 && std::string(argv[1]) == "--synthesize") {
    uint64_t n = 0;
    const std::string_view s(argv[2]);
    if (std::from_chars(s.data(), s.data() + s.size(), n).ptr != s.data() + s.size()) return 2;
    return Synthesize(n, argv[3]);
  }
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: bench_verify CERT PUBKEY [MANIFEST] | --synthesize N OUTDIR\n");
    return 2;
  }
  auto key = v::ParsePublicKey(Read(argv[2]));
  if (!key.ok()) return 2;
  const std::string cert = Read(argv[1]);
  const int n = 1000;
  auto t0 = std::chrono::steady_clock::now();
  const double c0 = CpuSeconds();
  absl::StatusOr<v::VerifiedCertificate> cv = absl::UnknownError("");
  for (int i = 0; i < n; ++i) {
    cv = v::VerifyCertificate(cert, *key);
    if (!cv.ok()) {
      std::fprintf(stderr, "certificate: %s\n", std::string(cv.status().message()).c_str());
      return 1;
    }
  }
  double per = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / n;
  const double per_cpu = (CpuSeconds() - c0) * 1000 / n;
  double manifest_s = -1, manifest_cpu_s = -1;
  const double rss_before = PeakRssMib();
  v::ManifestStats stats;
  if (argc > 3) {
    auto t1 = std::chrono::steady_clock::now();
    const double c1 = CpuSeconds();
    if (absl::Status s = v::VerifyManifestFile(*cv, argv[3], &stats); !s.ok()) {
      std::fprintf(stderr, "manifest: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    manifest_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    manifest_cpu_s = CpuSeconds() - c1;
  }
  std::printf(
      "{\"certificate_ms\":%.4f,\"certificate_cpu_ms\":%.4f,\"manifest_s\":%.3f,\"manifest_cpu_s\":%.3f,"
      "\"items\":%llu,\"manifest_bytes\":%llu,\"passes\":%d,\"rss_before_manifest_mib\":%.1f,"
      "\"peak_rss_mib\":%.1f}\n",
      per, per_cpu, manifest_s, manifest_cpu_s, static_cast<unsigned long long>(cv->item_count),
      static_cast<unsigned long long>(stats.bytes), stats.passes, rss_before, PeakRssMib());
  return 0;
}
