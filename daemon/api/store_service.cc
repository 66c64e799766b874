#include "daemon/api/store_service.h"

#include <sodium.h>

#include <map>
#include <optional>
#include <thread>

#include <google/protobuf/descriptor.h>

#include "daemon/api/auth.h"
#include "daemon/api/memory_lease.h"
#include "daemon/api/proto_convert.h"
#include "daemon/api/raw_messages.h"
#include "daemon/api/status_map.h"
#include "daemon/base/bounded_queue.h"
#include "daemon/base/metrics.h"
#include "daemon/base/strings.h"

namespace shredd {

namespace {

constexpr size_t kAhead = 4;  // chunks of plaintext a download reads ahead

// The position of `method` in the Store service: the index of the generated
// code's handler table.
int StoreMethodIndex(const std::string& method) {
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(v1::Store::service_full_name());
  return service->FindMethodByName(method)->index();
}

// Reads the next upload message; false at the end of the stream. A message
// that is not a PutRequest ends the upload with `*error`.
bool ReadPutMessage(grpc::ServerReader<grpc::ByteBuffer>* reader, PutMessage* msg, grpc::Status* error) {
  grpc::ByteBuffer buffer;
  if (!reader->Read(&buffer)) return false;
  if (auto s = msg->Parse(&buffer); !s.ok()) {
    *error = ToGrpc(s);
    return false;
  }
  return true;
}

}  // namespace

StoreService::StoreService(ItemStore* store, Catalog* catalog, MemoryGate* transfers, StallWatch* stalls)
    : store_(store), catalog_(catalog), transfers_(transfers), stalls_(stalls) {
  // The same mechanism the generated WithStreamedUnaryMethod_ classes use:
  // the handler is replaced, the method's name and messages stay.
  MarkMethodStreamed(StoreMethodIndex("Put"),
                     new grpc::internal::ClientStreamingHandler<StoreService, grpc::ByteBuffer, v1::PutResponse>(
                         [](StoreService* self, grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                            v1::PutResponse* response) { return self->Put(ctx, reader, response); },
                         this));
  MarkMethodStreamed(
      StoreMethodIndex("Get"),
      new grpc::internal::BidiStreamingHandler<StoreService, v1::GetRequest, grpc::ByteBuffer>(
          [](StoreService* self, grpc::ServerContext* ctx,
             grpc::ServerReaderWriter<grpc::ByteBuffer, v1::GetRequest>* stream) { return self->Get(ctx, stream); },
          this));
}

grpc::Status StoreService::Put(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                               v1::PutResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  PutMessage first;
  grpc::Status bad;
  if (!ReadPutMessage(reader, &first, &bad)) {
    return bad.ok() ? grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty upload stream") : bad;
  }
  if (!first.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of an upload must be its header");
  }
  const v1::PutRequest& req = first.parsed();
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
  const auto size = digest ? digest->size : static_cast<uint64_t>(req.header().digest().size_bytes());
  auto lease = LeaseMemory(transfers_, ctx, store_->UploadBufferBytes(size), "upload");
  if (!lease.ok()) return ToGrpc(lease.status());
  auto lineage = LineageFromProto(req.header().lineage());
  if (!lineage.ok()) return ToGrpc(lineage.status());
  const ItemKind kind = meta->kind;
  if (digest) {
    // Lineage is checked before any byte is stored, and again as the
    // upload commits (an AddLineage may commit meanwhile).
    auto edges = catalog_->PrepareLineage(digest->hash, kind, *lineage);
    if (!edges.ok()) return ToGrpc(edges.status());
    auto up = store_->BeginUpload(*digest, std::move(*meta));
    if (!up.ok()) return ToGrpc(up.status());
    return ReceiveUpload(ctx, reader, std::move(*up), kind, *lineage, false, response);
  }
  auto up = store_->BeginUploadOfSize(static_cast<uint64_t>(req.header().digest().size_bytes()), std::move(*meta));
  if (!up.ok()) return ToGrpc(up.status());
  // Lineage needs the model's digest: checked once the trailer names it,
  // as the upload commits.
  return ReceiveUpload(ctx, reader, std::move(*up), kind, *lineage, daemon_digest, response);
}

grpc::Status StoreService::ReceiveUpload(grpc::ServerContext* ctx, grpc::ServerReader<grpc::ByteBuffer>* reader,
                                         std::unique_ptr<Upload> upload, ItemKind kind,
                                         const std::vector<LineageSpec>& lineage, bool daemon_digest,
                                         v1::PutResponse* response) {
  PutMessage msg;
  grpc::Status bad;
  bool trailer_seen = false;
  auto watched = StallWatch::Watch(stalls_, ctx, "upload");
  while (ReadPutMessage(reader, &msg, &bad)) {
    watched.Moved();
    const v1::PutRequest& req = msg.parsed();
    if (msg.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second header in one upload stream");
    }
    if (msg.has_trailer() && daemon_digest) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "a trailer in an upload addressed by the daemon's digest (daemon_digest); nothing was stored");
    }
    if (msg.has_trailer()) {
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
    Metrics().bytes_received.Add(msg.data_size());
    if (auto s = upload->AppendRun(msg.TakeData()); !s.ok()) return ToGrpc(s);
  }
  if (!bad.ok()) return bad;
  if (watched.stalled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "upload cancelled: no data for [storage] transfer_idle_s; nothing was stored");
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
  SHREDD_REAUTHORIZE(ctx);  // a long upload may outlast the caller's role
  auto result = catalog_->CommitUpload(upload.get(), kind, lineage);
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

grpc::Status StoreService::Get(grpc::ServerContext* ctx,
                               grpc::ServerReaderWriter<grpc::ByteBuffer, v1::GetRequest>* stream) {
  SHREDD_AUTHORIZE(ctx);
  v1::GetRequest request;
  if (!stream->Read(&request)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a download needs a GetRequest");
  }
  auto hash = ParseDigestHash(request.digest().hash());
  if (!hash.ok()) return ToGrpc(hash.status());
  if (request.offset() < 0 || request.limit() < 0 || request.digest().size_bytes() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "offset, limit and size_bytes must not be negative");
  }
  // Memory is leased before the item is opened: a download that waits its
  // turn and whose item is shredded meanwhile then finds it gone (opened
  // first, it would serve the shredded plaintext once its turn came).
  // Leased for the whole item: a blob reader reads whole windows even for a
  // short range.
  auto info = store_->Stat(*hash);
  if (!info.ok()) return ToGrpc(info.status());
  auto lease = LeaseMemory(transfers_, ctx, store_->DownloadBufferBytes(info->digest.size, kAhead), "download");
  if (!lease.ok()) return ToGrpc(lease.status());
  auto reader = store_->OpenReader(*hash);
  if (!reader.ok()) return ToGrpc(reader.status());
  if (request.digest().size_bytes() != 0 && static_cast<uint64_t>(request.digest().size_bytes()) != (*reader)->size()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        StrCat(request.digest().hash(), " is stored with size ", (*reader)->size(), ", not ",
                               request.digest().size_bytes()));
  }
  return SendContent(ctx, stream, **reader, request.offset(), request.limit());
}

grpc::Status StoreService::SendContent(grpc::ServerContext* ctx,
                                       grpc::ServerReaderWriter<grpc::ByteBuffer, v1::GetRequest>* stream,
                                       ItemReader& reader, int64_t offset, int64_t limit) {
  // Read ahead: a second thread reads and decrypts the next chunks while
  // this one sends, with at most kAhead chunks of plaintext queued. Each
  // chunk's buffer goes to gRPC as it is (GetResponseBuffer), wiped once sent.
  BoundedQueue<std::string> ahead(kAhead);
  absl::Status read_status;
  std::thread producer([&] {
    read_status = reader.ReadOwned(offset, limit, [&](std::string&& plain) {
      if (ahead.Push(plain)) return true;
      sodium_memzero(plain.data(), plain.size());
      return false;
    });
    ahead.Close();
  });
  const auto total = static_cast<int64_t>(reader.size());
  bool first = true, write_failed = false;
  auto watched = StallWatch::Watch(stalls_, ctx, "download");
  absl::Status shredded;
  grpc::Status allowed;
  while (auto plain = ahead.Pop()) {
    if (ctx->IsCancelled() || !(shredded = reader.StillStored()).ok() || !(allowed = auth::Reauthorized(ctx)).ok()) {
      sodium_memzero(plain->data(), plain->size());
      break;
    }
    const size_t n = plain->size();
    if (!stream->Write(GetResponseBuffer(std::move(*plain), first ? total : 0))) {
      write_failed = true;
      break;
    }
    first = false;
    Metrics().bytes_sent.Add(n);
    watched.Moved();
  }
  ahead.Cancel();
  producer.join();
  ahead.Drain([](std::string& p) { sodium_memzero(p.data(), p.size()); });
  if (!shredded.ok()) return ToGrpc(shredded);
  if (!allowed.ok()) return allowed;
  if (!read_status.ok()) return ToGrpc(read_status);
  if (write_failed || ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled");
  if (first) stream->Write(GetResponseBuffer({}, total));  // empty range: still tell the client the size
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
  if (request->kind() != v1::KIND_UNSPECIFIED && !f.kind) {  // else a filter the client meant would match everything
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        StrCat("unknown kind ", static_cast<int>(request->kind()),
                               " (KIND_PHOTO, KIND_MODEL, or KIND_UNSPECIFIED for any)"));
  }
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
