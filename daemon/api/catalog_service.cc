#include "daemon/api/catalog_service.h"

#include "daemon/api/auth.h"
#include "daemon/api/memory_lease.h"
#include "daemon/api/proto_convert.h"
#include "daemon/api/status_map.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {

// The old reply shape is kept: a shredded end has an empty dataset and the
// digest hash "(shredded)".
void LinkToProto(const LineageLink& l, v1::LineageLink* p) {
  p->set_type(EdgeToProto(l.type));
  p->set_relation(l.relation);
  if (l.digest) {
    ToProto(*l.digest, p->mutable_digest());
    p->set_kind(KindToProto(l.kind));
  } else if (l.shredded) {
    p->set_dataset("");
    p->mutable_digest()->set_hash("(shredded)");
  } else {
    p->set_dataset(l.dataset);
  }
  p->set_via_dataset(l.via_dataset);
}

}  // namespace

grpc::Status CatalogService::RegisterDataset(grpc::ServerContext* ctx, const v1::RegisterDatasetRequest* req,
                                             v1::Dataset* resp) {
  SHREDD_AUTHORIZE(ctx);
  if (req->name().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a dataset needs a name");
  auto h = DigestHashesFromProto(req->digests());
  if (!h.ok()) return ToGrpc(h.status());
  auto d = catalog_->RegisterDataset(req->name(), *h);
  if (!d.ok()) return ToGrpc(d.status());
  resp->set_name(d->name);
  resp->set_item_count(d->item_count);
  return grpc::Status::OK;
}

grpc::Status CatalogService::ListDatasets(grpc::ServerContext* ctx, const v1::ListDatasetsRequest*,
                                          v1::ListDatasetsResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto ds = catalog_->ListDatasets();
  if (!ds.ok()) return ToGrpc(ds.status());
  for (const auto& d : *ds) {
    auto* p = resp->add_datasets();
    p->set_name(d.name);
    p->set_item_count(d.item_count);
    p->set_created_unix_nanos(d.created_unix_nanos);
  }
  return grpc::Status::OK;
}

grpc::Status CatalogService::GetDatasetManifest(grpc::ServerContext* ctx, const v1::DatasetManifestRequest* req,
                                                v1::DatasetManifestResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  MemoryGate::Lease lease;
  auto m = catalog_->DatasetManifest(req->name(), [&](uint64_t members) -> absl::Status {
    auto l = LeaseMemory(transfers_, ctx, Catalog::DatasetManifestReplyBytes(members), "dataset manifest");
    if (!l.ok()) return l.status();
    lease = std::move(*l);
    return absl::OkStatus();
  });
  if (!m.ok()) return ToGrpc(m.status());
  resp->set_manifest(*m);
  if (holds_ != nullptr) holds_->Keep(ctx, std::move(lease));  // until the reply has gone out
  return grpc::Status::OK;
}

grpc::Status CatalogService::StreamDatasetManifest(grpc::ServerContext* ctx, const v1::DatasetManifestRequest* req,
                                                   grpc::ServerWriter<v1::ManifestChunk>* writer) {
  SHREDD_AUTHORIZE(ctx);
  // Not read, the stream would hold its call and a RocksDB iterator for good.
  auto watched = StallWatch::Watch(stalls_, ctx, "dataset manifest stream");
  v1::ManifestChunk chunk;
  grpc::Status allowed;
  auto s = catalog_->WriteDatasetManifest(req->name(), 1 << 20, [&](std::string_view piece) {
    if (!(allowed = auth::Reauthorized(ctx)).ok()) return false;
    chunk.set_data(piece.data(), piece.size());
    const bool sent = writer->Write(chunk);
    watched.Moved();
    return sent && !ctx->IsCancelled();
  });
  if (!allowed.ok()) return allowed;
  if (absl::IsCancelled(s)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  return ToGrpc(s);
}

grpc::Status CatalogService::UpdateItem(grpc::ServerContext* ctx, const v1::UpdateItemRequest* req,
                                        v1::ItemInfo* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto h = ParseDigestHash(req->digest().hash());
  if (!h.ok()) return ToGrpc(h.status());
  ItemMetadata add;
  add.subject_ids.assign(req->add_subject_ids().begin(), req->add_subject_ids().end());
  add.datasets.assign(req->add_datasets().begin(), req->add_datasets().end());
  for (const auto& [k, v] : req->add_labels()) add.labels.emplace(k, v);
  if (auto s = add.Validate(); !s.ok()) return ToGrpc(s);
  auto info = store_->AddMetadata(*h, add, {});  // registers new datasets in the same write
  if (!info.ok()) return ToGrpc(info.status());
  ToProto(*info, resp);
  return grpc::Status::OK;
}

grpc::Status CatalogService::AddLineage(grpc::ServerContext* ctx, const v1::AddLineageRequest* req,
                                        v1::AddLineageResponse*) {
  SHREDD_AUTHORIZE(ctx);
  auto h = ParseDigestHash(req->model().hash());
  if (!h.ok()) return ToGrpc(h.status());
  auto edges = LineageFromProto(req->edges());
  if (!edges.ok()) return ToGrpc(edges.status());
  if (edges->empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no lineage edges given");
  return ToGrpc(catalog_->AddLineage(*h, *edges));
}

grpc::Status CatalogService::GetLineage(grpc::ServerContext* ctx, const v1::LineageRequest* req,
                                        v1::LineageResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto h = ParseDigestHash(req->digest().hash());
  if (!h.ok()) return ToGrpc(h.status());
  auto view = catalog_->Lineage(*h);
  if (!view.ok()) return ToGrpc(view.status());
  ToProto(view->digest, resp->mutable_digest());
  resp->set_kind(KindToProto(view->kind));
  for (const LineageLink& l : view->comes_from) LinkToProto(l, resp->add_comes_from());
  for (const LineageLink& l : view->feeds) LinkToProto(l, resp->add_feeds());
  return grpc::Status::OK;
}

}  // namespace shredd
