#include "daemon/api/order_service.h"

#include <chrono>

#include "absl/time/clock.h"

#include "daemon/api/auth.h"
#include "daemon/api/proto_convert.h"
#include "daemon/api/status_map.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {

v1::LineageEdge::Type EdgeToProto(EdgeType t) {
  return t == EdgeType::kTrainedOn ? v1::LineageEdge::TRAINED_ON : v1::LineageEdge::DERIVED_FROM;
}

absl::StatusOr<std::vector<Sha256>> Hashes(const google::protobuf::RepeatedPtrField<v1::Digest>& ds) {
  std::vector<Sha256> out;
  for (const auto& d : ds) {
    auto h = ParseDigestHash(d.hash());
    if (!h.ok()) return h.status();
    out.push_back(*h);
  }
  return out;
}

absl::StatusOr<OrderSpec> SpecFromProto(const v1::OrderSpec& p) {
  OrderSpec s;
  s.id = p.id();
  switch (p.basis()) {
    case v1::FTC_ORDER:
      s.basis = LegalBasis::kFtcOrder;
      break;
    case v1::GDPR_ART17:
      s.basis = LegalBasis::kGdprArt17;
      break;
    case v1::CCPA:
      s.basis = LegalBasis::kCcpa;
      break;
    case v1::CONTRACT:
      s.basis = LegalBasis::kContract;
      break;
    case v1::OTHER:
      s.basis = LegalBasis::kOther;
      break;
    default:
      return absl::InvalidArgumentError("an order needs a legal basis (ftc-order, gdpr-art17, ccpa, contract, other)");
  }
  s.reference = p.reference();
  s.requester = p.requester();
  s.received = p.received();
  s.due = p.due();
  auto h = Hashes(p.digests());
  if (!h.ok()) return h.status();
  s.digests = std::move(*h);
  s.subject_ids.assign(p.subject_ids().begin(), p.subject_ids().end());
  s.datasets.assign(p.datasets().begin(), p.datasets().end());
  for (const auto& [k, v] : p.labels()) s.labels.emplace(k, v);
  return s;
}

void SpecToProto(const OrderSpec& s, v1::OrderSpec* p) {
  p->set_id(s.id);
  p->set_basis(static_cast<v1::LegalBasis>(static_cast<int>(s.basis)));
  p->set_reference(s.reference);
  p->set_requester(s.requester);
  p->set_received(s.received);
  p->set_due(s.due);
  for (const auto& d : s.digests) p->add_digests()->set_hash(ContentDigest{d, 0}.HashString());
  for (const auto& x : s.subject_ids) p->add_subject_ids(x);
  for (const auto& x : s.datasets) p->add_datasets(x);
  for (const auto& [k, v] : s.labels) (*p->mutable_labels())[k] = v;
}

void PlannedToProto(const PlannedItem& i, v1::PlannedItem* p) {
  ToProto(i.digest, p->mutable_digest());
  p->set_kind(KindToProto(i.kind));
  p->set_reason(i.reason);
  if (i.edge_type) p->set_edge_type(EdgeToProto(*i.edge_type));
  p->set_edge_relation(i.edge_relation);
  if (i.edge_parent) ToProto(*i.edge_parent, p->mutable_edge_parent());
  p->set_edge_dataset(i.edge_dataset);
  p->set_hold_id(i.hold_id);
  p->set_hold_reason(i.hold_reason);
}

void StatusToProto(const OrderStatus& s, v1::OrderStatus* p) {
  p->set_order_id(s.spec.id);
  p->set_state(static_cast<v1::OrderState>(static_cast<int>(s.state)));
  p->set_message(s.message);
  p->set_items_planned(s.items_planned);
  p->set_items_shredded(s.items_shredded);
  p->set_certificate_id(s.certificate_id);
  SpecToProto(s.spec, p->mutable_spec());
}

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

void HoldToProto(const Hold& h, v1::Hold* p) {
  p->set_id(h.id);
  if (h.digest) ToProto(*h.digest, p->mutable_digest());
  if (!h.dataset.empty()) p->set_dataset(h.dataset);
  p->set_reason(h.reason);
  p->set_created_unix_nanos(h.created_unix_nanos);
}

}  // namespace

grpc::Status CatalogService::RegisterDataset(grpc::ServerContext* ctx, const v1::RegisterDatasetRequest* req,
                                             v1::Dataset* resp) {
  SHREDD_AUTHORIZE(ctx);
  if (req->name().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a dataset needs a name");
  auto h = Hashes(req->digests());
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
  auto m = catalog_->DatasetManifest(req->name());
  if (!m.ok()) return ToGrpc(m.status());
  resp->set_manifest(*m);
  return grpc::Status::OK;
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

grpc::Status OrdersService::PlanOrder(grpc::ServerContext* ctx, const v1::OrderSpec* req, v1::Plan* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto spec = SpecFromProto(*req);
  if (!spec.ok()) return ToGrpc(spec.status());
  auto plan = book_->Plan(*spec);
  if (!plan.ok()) return ToGrpc(plan.status());
  resp->set_order_id(spec->id);
  for (const auto& p : plan->selected) PlannedToProto(p, resp->add_selected());
  for (const auto& p : plan->derived) PlannedToProto(p, resp->add_derived());
  for (const auto& p : plan->retained) PlannedToProto(p, resp->add_retained());
  for (const auto& u : plan->unmatched) resp->add_unmatched(u);
  resp->set_selected_count(static_cast<int64_t>(plan->selected_count));
  resp->set_derived_count(static_cast<int64_t>(plan->derived_count));
  resp->set_retained_count(static_cast<int64_t>(plan->retained_count));
  resp->set_truncated(plan->truncated());
  return grpc::Status::OK;
}

grpc::Status OrdersService::SubmitOrder(grpc::ServerContext* ctx, const v1::OrderSpec* req, v1::OrderStatus* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto spec = SpecFromProto(*req);
  if (!spec.ok()) return ToGrpc(spec.status());
  auto st = book_->Submit(std::move(*spec));
  if (!st.ok()) return ToGrpc(st.status());
  StatusToProto(*st, resp);
  return grpc::Status::OK;
}

grpc::Status OrdersService::GetOrder(grpc::ServerContext* ctx, const v1::GetOrderRequest* req, v1::OrderStatus* resp) {
  SHREDD_AUTHORIZE(ctx);
  std::optional<absl::Time> until;
  if (req->wait()) {
    // Wait up to the call's deadline (at most an hour), polling for cancellation.
    absl::Time deadline = absl::FromChrono(ctx->deadline());
    until = std::min(deadline, absl::Now() + absl::Hours(1));
  }
  for (;;) {
    std::optional<absl::Time> step = until ? std::optional(std::min(*until, absl::Now() + absl::Seconds(1))) : until;
    auto st = book_->Get(req->order_id(), step);
    if (!st.ok()) return ToGrpc(st.status());
    bool finished =
        st->state == OrderState::kDone || st->state == OrderState::kEmpty || st->state == OrderState::kFailed;
    if (finished || !until || absl::Now() >= *until || ctx->IsCancelled()) {
      StatusToProto(*st, resp);
      return grpc::Status::OK;
    }
  }
}

grpc::Status OrdersService::AddHold(grpc::ServerContext* ctx, const v1::AddHoldRequest* req, v1::Hold* resp) {
  SHREDD_AUTHORIZE(ctx);
  Hold h;
  h.id = req->hold().id();
  h.reason = req->hold().reason();
  if (req->hold().has_digest()) {
    auto d = ParseDigestHash(req->hold().digest().hash());
    if (!d.ok()) return ToGrpc(d.status());
    h.digest = ContentDigest{*d, 0};
  }
  h.dataset = req->hold().dataset();
  auto added = catalog_->AddHold(std::move(h));
  if (!added.ok()) return ToGrpc(added.status());
  HoldToProto(*added, resp);
  return grpc::Status::OK;
}

grpc::Status OrdersService::RemoveHold(grpc::ServerContext* ctx, const v1::RemoveHoldRequest* req,
                                       v1::RemoveHoldResponse*) {
  SHREDD_AUTHORIZE(ctx);
  return ToGrpc(catalog_->RemoveHold(req->id()));
}

grpc::Status OrdersService::ListHolds(grpc::ServerContext* ctx, const v1::ListHoldsRequest*,
                                      v1::ListHoldsResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto holds = catalog_->ListHolds();
  if (!holds.ok()) return ToGrpc(holds.status());
  for (const auto& h : *holds) HoldToProto(h, resp->add_holds());
  return grpc::Status::OK;
}

grpc::Status OrdersService::LiftSuppression(grpc::ServerContext* ctx, const v1::LiftSuppressionRequest* req,
                                            v1::LiftSuppressionResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto h = ParseDigestHash(req->digest().hash());
  if (!h.ok()) return ToGrpc(h.status());
  auto by = catalog_->LiftSuppression(*h, req->reason());
  if (!by.ok()) return ToGrpc(by.status());
  resp->set_lifted_order(*by);
  return grpc::Status::OK;
}

}  // namespace shredd
