#include "daemon/api/store_service.h"

#include <sodium.h>

#include <map>
#include <thread>

#include "daemon/api/auth.h"
#include "daemon/api/proto_convert.h"
#include "daemon/api/status_map.h"
#include "daemon/base/bounded_queue.h"
#include "daemon/base/metrics.h"
#include "daemon/base/strings.h"

namespace shredd {

grpc::Status StoreService::Put(grpc::ServerContext* ctx, grpc::ServerReader<v1::PutRequest>* reader,
                               v1::PutResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  v1::PutRequest req;
  if (!reader->Read(&req)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty upload stream");
  if (!req.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of an upload must be its header");
  }
  // An empty hash in the header: the digest comes in a trailer after the
  // data, or (daemon_digest) is the digest of what the daemon received.
  const bool trailing = req.header().digest().hash().empty();
  const bool daemon_digest = req.header().daemon_digest();
  if (daemon_digest && !trailing) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "an upload addressed by the daemon's digest (daemon_digest) must not declare a hash");
  }
  std::optional<ContentDigest> digest;
  if (!trailing) {
    auto d = FromProto(req.header().digest());
    if (!d.ok()) return ToGrpc(d.status());
    digest = *d;
  } else if (req.header().digest().size_bytes() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        StrCat("negative size ", req.header().digest().size_bytes()));
  }
  auto meta = FromProto(req.header().metadata());
  if (!meta.ok()) return ToGrpc(meta.status());
  auto lineage = LineageFromProto(req.header().lineage());
  if (!lineage.ok()) return ToGrpc(lineage.status());
  const ItemKind kind = meta->kind;
  if (digest) {  // lineage is checked before any byte is stored
    auto edges = catalog_->PrepareLineage(digest->hash, kind, *lineage);
    if (!edges.ok()) return ToGrpc(edges.status());
    auto up = store_->BeginUpload(*digest, std::move(*meta));
    if (!up.ok()) return ToGrpc(up.status());
    store_->SetUploadExtras(up->get(), std::move(edges->records), std::move(edges->edges_json),
                            std::move(edges->parent_items));
    return ReceiveUpload(ctx, reader, std::move(*up), nullptr, false, response);
  }
  auto up = store_->BeginUploadOfSize(static_cast<uint64_t>(req.header().digest().size_bytes()), std::move(*meta));
  if (!up.ok()) return ToGrpc(up.status());
  // Lineage needs the model's digest: checked once the trailer names it,
  // still before anything is committed.
  auto before_commit = [&](Upload* u) -> absl::Status {
    auto edges = catalog_->PrepareLineage(u->declared().hash, kind, *lineage);
    if (!edges.ok()) return edges.status();
    store_->SetUploadExtras(u, std::move(edges->records), std::move(edges->edges_json), std::move(edges->parent_items));
    return absl::OkStatus();
  };
  return ReceiveUpload(ctx, reader, std::move(*up), before_commit, daemon_digest, response);
}

grpc::Status StoreService::ReceiveUpload(grpc::ServerContext* ctx, grpc::ServerReader<v1::PutRequest>* reader,
                                         std::unique_ptr<Upload> upload,
                                         const std::function<absl::Status(Upload*)>& before_commit, bool daemon_digest,
                                         v1::PutResponse* response) {
  v1::PutRequest req;
  bool trailer_seen = false;
  while (reader->Read(&req)) {
    if (req.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second header in one upload stream");
    }
    if (req.has_trailer() && daemon_digest) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "a trailer in an upload addressed by the daemon's digest (daemon_digest); nothing was stored");
    }
    if (req.has_trailer()) {
      if (trailer_seen)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second trailer in one upload stream");
      trailer_seen = true;
      auto d = FromProto(req.trailer().digest());
      if (!d.ok()) return ToGrpc(d.status());
      if (auto s = upload->DeclareDigest(*d); !s.ok()) return ToGrpc(s);
      continue;
    }
    if (trailer_seen) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "data after the upload's trailer; nothing was stored");
    }
    Metrics().bytes_received.Add(req.data().size());
    // Take the bytes over from the message: no copy on the way to the cipher.
    if (auto s = upload->Append(std::move(*req.mutable_data())); !s.ok()) return ToGrpc(s);
  }
  if (ctx->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled by the client; nothing was stored");
  }
  if (daemon_digest) {
    if (auto s = upload->DeclareReceivedDigest(); !s.ok()) return ToGrpc(s);
  }
  if (!upload->digest_declared()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the upload's header has no digest and no trailer declared one; nothing was stored");
  }
  if (before_commit) {
    if (auto s = before_commit(upload.get()); !s.ok()) return ToGrpc(s);
  }
  auto result = upload->Commit();
  if (!result.ok()) return ToGrpc(result.status());
  ToProto(result->digest, response->mutable_digest());
  response->set_already_present(result->already_present);
  return grpc::Status::OK;
}

grpc::Status StoreService::BatchPut(grpc::ServerContext* ctx, const v1::BatchPutRequest* request,
                                    v1::BatchPutResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  std::vector<ItemStore::BatchEntry> entries;
  std::vector<absl::Status> early(request->entries_size());
  entries.reserve(request->entries_size());
  std::vector<int> index_of;  // entries[i] -> request index
  // Datasets are registered by the write that stores the batch's items.
  for (int i = 0; i < request->entries_size(); ++i) {
    const auto& e = request->entries(i);
    Metrics().bytes_received.Add(e.data().size());
    auto d = FromProto(e.header().digest());
    if (!d.ok()) {
      early[i] = d.status();
      continue;
    }
    auto m = FromProto(e.header().metadata());
    if (!m.ok()) {
      early[i] = m.status();
      continue;
    }
    if (e.header().lineage_size() > 0) {
      early[i] = absl::InvalidArgumentError("lineage is not accepted in BatchPut; upload models with Put");
      continue;
    }
    entries.push_back({*d, std::move(*m), e.data()});
    index_of.push_back(i);
  }
  auto results = store_->PutBatch(entries);
  for (int i = 0; i < request->entries_size(); ++i) response->add_results();
  for (int i = 0; i < request->entries_size(); ++i) {
    if (!early[i].ok()) {
      auto* r = response->mutable_results(i);
      r->set_code(static_cast<int>(early[i].code()));
      r->set_message(std::string(early[i].message()));
    }
  }
  for (size_t j = 0; j < results.size(); ++j) {
    auto* r = response->mutable_results(index_of[j]);
    if (results[j].ok()) {
      ToProto(results[j]->digest, r->mutable_digest());
      r->set_already_present(results[j]->already_present);
    } else {
      r->set_code(static_cast<int>(results[j].status().code()));
      r->set_message(std::string(results[j].status().message()));
    }
  }
  return grpc::Status::OK;
}

grpc::Status StoreService::Get(grpc::ServerContext* ctx, const v1::GetRequest* request,
                               grpc::ServerWriter<v1::GetResponse>* writer) {
  SHREDD_AUTHORIZE(ctx);
  auto hash = ParseDigestHash(request->digest().hash());
  if (!hash.ok()) return ToGrpc(hash.status());
  if (request->offset() < 0 || request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "offset and limit must not be negative");
  }
  auto reader = store_->OpenReader(*hash);
  if (!reader.ok()) return ToGrpc(reader.status());
  if (request->digest().size_bytes() != 0 &&
      static_cast<uint64_t>(request->digest().size_bytes()) != (*reader)->size()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        StrCat(request->digest().hash(), " is stored with size ", (*reader)->size(), ", not ",
                               request->digest().size_bytes()));
  }
  // Read ahead: a second thread reads and decrypts the next chunks while
  // this one sends, with at most kAhead chunks of plaintext queued.
  constexpr size_t kAhead = 4;
  BoundedQueue<std::string> ahead(kAhead);
  absl::Status read_status;
  std::thread producer([&] {
    read_status = (*reader)->ReadOwned(request->offset(), request->limit(), [&](std::string&& plain) {
      if (ahead.Push(plain)) return true;
      sodium_memzero(plain.data(), plain.size());
      return false;
    });
    ahead.Close();
  });
  bool first = true, write_failed = false;
  v1::GetResponse resp;
  while (auto plain = ahead.Pop()) {
    if (ctx->IsCancelled()) {
      sodium_memzero(plain->data(), plain->size());
      break;
    }
    resp.Clear();
    if (first) resp.set_total_size(static_cast<int64_t>((*reader)->size()));
    first = false;
    const size_t n = plain->size();
    resp.set_data(std::move(*plain));
    bool ok = writer->Write(resp);
    std::string* d = resp.mutable_data();
    sodium_memzero(d->data(), d->size());
    if (!ok) {
      write_failed = true;
      break;
    }
    Metrics().bytes_sent.Add(n);
  }
  ahead.Cancel();
  producer.join();
  ahead.Drain([](std::string& p) { sodium_memzero(p.data(), p.size()); });
  if (!read_status.ok()) return ToGrpc(read_status);
  if (write_failed || ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled");
  if (first) {  // empty range: still tell the client the size
    resp.Clear();
    resp.set_total_size(static_cast<int64_t>((*reader)->size()));
    writer->Write(resp);
  }
  return grpc::Status::OK;
}

grpc::Status StoreService::Stat(grpc::ServerContext* ctx, const v1::StatRequest* request, v1::ItemInfo* response) {
  SHREDD_AUTHORIZE(ctx);
  auto hash = ParseDigestHash(request->digest().hash());
  if (!hash.ok()) return ToGrpc(hash.status());
  auto info = store_->Stat(*hash);
  if (!info.ok()) return ToGrpc(info.status());
  ToProto(*info, response);
  return grpc::Status::OK;
}

grpc::Status StoreService::FindMissing(grpc::ServerContext* ctx, const v1::FindMissingRequest* request,
                                       v1::FindMissingResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  bool present = false;
  for (const auto& d : request->digests()) {
    auto hash = ParseDigestHash(d.hash());
    if (!hash.ok()) return ToGrpc(hash.status());
    if (!store_->Contains(*hash)) {
      *response->add_missing() = d;
    } else {
      present = true;
    }
  }
  // A client skips uploading what is not missing: a present item may be in
  // a batch that is written but not synced yet (group commit); answer once
  // it is durable.
  if (present) {
    if (auto s = store_->WaitForRecordsRead(); !s.ok()) return ToGrpc(s);
  }
  return grpc::Status::OK;
}

grpc::Status StoreService::List(grpc::ServerContext* ctx, const v1::ListRequest* request, v1::ListResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  ListFilter f;
  if (request->kind() == v1::KIND_PHOTO) f.kind = ItemKind::kPhoto;
  if (request->kind() == v1::KIND_MODEL) f.kind = ItemKind::kModel;
  f.subject_id = request->subject_id();
  f.dataset = request->dataset();
  for (const auto& [k, v] : request->labels()) f.labels.emplace(k, v);
  int32_t size = request->page_size();
  if (size < 0 || size > 10000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_size must be between 0 and 10000");
  }
  auto page = store_->List(f, size == 0 ? 1000 : static_cast<size_t>(size), request->page_token());
  if (!page.ok()) return ToGrpc(page.status());
  for (const auto& info : page->items) ToProto(info, response->add_items());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

}  // namespace shredd
