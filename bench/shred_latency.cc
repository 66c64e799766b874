// One-item shred latency: stores an item, then times the Shred RPC (which
// returns after the key-tree epoch is fsync'd, the vault root rotated, the
// certificate signed, logged and covered by a checkpoint). Repeats --count
// times; prints {"count","median_ms","min_ms","max_ms"}. With --dataset D
// each item carries a subject id and belongs to D. Every shred walks the
// lineage of what it names for models it would leave behind (docs/ORDERS.md,
// "Bare shreds and models"); --keep-models skips that walk, for comparison.
// --models N first registers N models with lineage that the shredded items
// do not reach: N base models and N models each derived from its own base
// (N edges, N distinct lineage parents), so the walk scans N edges.
// Usage: bench_shred_latency --server unix:PATH [--count N] [--dataset D] [--keep-models] [--models N]
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "shredd/v1/orders.grpc.pb.h"
#include "shredd/v1/shredd.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>

#include "formats/encoding.h"

namespace v1 = shredd::v1;

namespace {

// 1 KiB of random bytes and its "sha256:<hex>" digest.
std::pair<std::string, std::string> RandomItem() {
  std::string data(1024, '\0');
  randombytes_buf(data.data(), data.size());
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return {data, "sha256:" + shredd::verify::HexEncode(std::string_view(reinterpret_cast<char*>(md), 32))};
}

// Stores `n` random models (no lineage) in batches; their digests.
bool PutModels(v1::Store::Stub& store, int n, std::vector<std::string>* digests) {
  for (int done = 0; done < n;) {
    v1::BatchPutRequest put;
    for (; done < n && put.entries_size() < 500; ++done) {
      auto [data, digest] = RandomItem();
      auto* e = put.add_entries();
      e->mutable_header()->mutable_digest()->set_hash(digest);
      e->mutable_header()->mutable_digest()->set_size_bytes(1024);
      e->mutable_header()->mutable_metadata()->set_kind(v1::KIND_MODEL);
      e->set_data(data);
      digests->push_back(digest);
    }
    grpc::ClientContext c;
    v1::BatchPutResponse pr;
    if (!store.BatchPut(&c, put, &pr).ok()) return false;
    for (const auto& r : pr.results()) {
      if (r.code() != 0) return false;
    }
  }
  return true;
}

// N base models and N models each derived from its own base.
bool RegisterModels(const std::shared_ptr<grpc::Channel>& channel, int n) {
  auto store = v1::Store::NewStub(channel);
  auto catalog = v1::Catalog::NewStub(channel);
  std::vector<std::string> base, derived;
  if (!PutModels(*store, n, &base) || !PutModels(*store, n, &derived)) return false;
  for (int i = 0; i < n; ++i) {
    v1::AddLineageRequest req;
    req.mutable_model()->set_hash(derived[i]);
    auto* edge = req.add_edges();
    edge->set_type(v1::LineageEdge::DERIVED_FROM);
    edge->mutable_digest()->set_hash(base[i]);
    grpc::ClientContext c;
    v1::AddLineageResponse resp;
    if (grpc::Status s = catalog->AddLineage(&c, req, &resp); !s.ok()) {
      std::fprintf(stderr, "AddLineage failed: %s\n", s.error_message().c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "unix:./var/shredd/shredd.sock";
  int count = 25, models = 0;
  bool keep_models = false;
  std::string dataset;
  CLI::App app{"bench_shred_latency"};
  app.add_option("--server", server);
  app.add_option("--count", count);
  app.add_option("--dataset", dataset);
  app.add_flag("--keep-models", keep_models);
  app.add_option("--models", models, "register this many models with lineage first (see above)");
  CLI11_PARSE(app, argc, argv);
  if (sodium_init() < 0) return 1;
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto store = v1::Store::NewStub(channel);
  auto shredder = v1::Shredder::NewStub(channel);
  if (models > 0 && !RegisterModels(channel, models)) return 1;
  std::vector<double> ms;
  for (int i = 0; i < count; ++i) {
    auto [data, digest] = RandomItem();
    v1::BatchPutRequest put;
    auto* e = put.add_entries();
    e->mutable_header()->mutable_digest()->set_hash(digest);
    e->mutable_header()->mutable_digest()->set_size_bytes(1024);
    e->set_data(data);
    if (!dataset.empty()) {
      e->mutable_header()->mutable_metadata()->add_subject_ids("bench-subject-" + std::to_string(i));
      e->mutable_header()->mutable_metadata()->add_datasets(dataset);
    }
    grpc::ClientContext c1;
    v1::BatchPutResponse pr;
    if (!store->BatchPut(&c1, put, &pr).ok() || pr.results(0).code() != 0) return 1;
    v1::ShredRequest req;
    req.add_digests()->set_hash(digest);
    req.set_keep_models(keep_models);
    grpc::ClientContext c2;
    v1::ShredResponse resp;
    auto t0 = std::chrono::steady_clock::now();
    grpc::Status s = shredder->Shred(&c2, req, &resp);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!s.ok()) {
      std::fprintf(stderr, "shred failed: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"count\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f}\n", count, ms[ms.size() / 2],
              ms.front(), ms.back());
  return 0;
}
