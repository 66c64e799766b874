// Bulk ingest load generator: N small items (default 1 KiB) into one
// dataset through BatchPut, from T client threads, over the daemon's socket.
// Content is deterministic pseudo-random (seeded), so runs are repeatable.
// Prints one JSON line: {"items","bytes","seconds","items_per_s","errors"}.
//
// Usage: bench_ingest --server unix:PATH [--items N] [--size BYTES]
//                     [--batch N] [--threads T] [--dataset NAME] [--seed S]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "shredd/v1/shredd.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>

#include "formats/encoding.h"

namespace v1 = shredd::v1;

namespace {
std::string DigestOf(const std::string& data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return "sha256:" + shredd::verify::HexEncode(std::string_view(reinterpret_cast<char*>(md), 32));
}
}  // namespace

int main(int argc, char** argv) {
  std::string server = "unix:./var/shredd/shredd.sock", dataset = "bench";
  uint64_t items = 100000, seed = 1;
  size_t size = 1024, batch = 1000;
  int threads = 2;
  CLI::App app{"bench_ingest"};
  app.add_option("--server", server);
  app.add_option("--items", items);
  app.add_option("--size", size);
  app.add_option("--batch", batch);
  app.add_option("--threads", threads);
  app.add_option("--dataset", dataset);
  app.add_option("--seed", seed);
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(16 << 20);
  std::string target = server.starts_with("tcp:") ? server.substr(4) : server;
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  std::atomic<uint64_t> next{0}, errors{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto stub = v1::Store::NewStub(channel);
      std::string data(size, '\0');
      for (;;) {
        uint64_t first = next.fetch_add(batch);
        if (first >= items) return;
        uint64_t last = std::min<uint64_t>(items, first + batch);
        v1::BatchPutRequest req;
        for (uint64_t i = first; i < last; ++i) {
          std::mt19937_64 rng(seed * 1000003 + i);
          for (size_t k = 0; k < size; k += 8) {
            uint64_t r = rng();
            std::memcpy(data.data() + k, &r, std::min<size_t>(8, size - k));
          }
          auto* e = req.add_entries();
          e->mutable_header()->mutable_digest()->set_hash(DigestOf(data));
          e->mutable_header()->mutable_digest()->set_size_bytes(static_cast<int64_t>(size));
          e->mutable_header()->mutable_metadata()->set_kind(v1::KIND_PHOTO);
          e->mutable_header()->mutable_metadata()->add_datasets(dataset);
          e->mutable_header()->mutable_metadata()->add_subject_ids("subject-" + std::to_string(i % 100000));
          e->set_data(data);
        }
        grpc::ClientContext ctx;
        v1::BatchPutResponse resp;
        grpc::Status s = stub->BatchPut(&ctx, req, &resp);
        if (!s.ok()) {
          errors += last - first;
          std::fprintf(stderr, "batch at %llu failed: %s\n", static_cast<unsigned long long>(first),
                       s.error_message().c_str());
          continue;
        }
        for (const auto& r : resp.results()) errors += r.code() != 0;
      }
    });
  }
  for (auto& th : pool) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"items\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"items_per_s\":%.0f,\"errors\":%llu}\n",
              static_cast<unsigned long long>(items), static_cast<unsigned long long>(items * size), secs,
              static_cast<double>(items) / secs, static_cast<unsigned long long>(errors.load()));
  return errors == 0 ? 0 : 1;
}
