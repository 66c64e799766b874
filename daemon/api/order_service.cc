#include "daemon/api/order_service.h"

#include <chrono>
#include <optional>

#include "absl/time/clock.h"

#include "daemon/api/auth.h"
#include "daemon/api/proto_convert.h"
#include "daemon/api/status_map.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {

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
  auto h = DigestHashesFromProto(p.digests());
  if (!h.ok()) return h.status();
  s.digests = std::move(*h);
  s.subject_ids.assign(p.subject_ids().begin(), p.subject_ids().end());
  s.datasets.assign(p.datasets().begin(), p.datasets().end());
  for (const auto& [k, v] : p.labels()) s.labels.emplace(k, v);
  s.keep_subject_map = p.keep_subject_map();
  s.expected_plan_digest = p.expected_plan_digest();
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
  p->set_keep_subject_map(s.keep_subject_map);
  p->set_expected_plan_digest(s.expected_plan_digest);
}

// `personal`: the caller may read item metadata (writer, admin); otherwise
// a plan names models only (docs/SECURITY.md).
void PlannedToProto(const PlannedItem& i, v1::PlannedItem* p, bool personal) {
  ToProto(i.digest, p->mutable_digest());
  p->set_kind(KindToProto(i.kind));
  p->set_reason(i.reason);
  if (i.edge_type) p->set_edge_type(EdgeToProto(*i.edge_type));
  p->set_edge_relation(i.edge_relation);
  if (i.edge_parent) ToProto(*i.edge_parent, p->mutable_edge_parent());
  p->set_edge_dataset(i.edge_dataset);
  p->set_hold_id(i.hold_id);
  p->set_hold_reason(i.hold_reason);
  if (personal || i.kind == ItemKind::kModel) p->set_name(i.name);
  if (personal) {
    for (const auto& x : i.subject_ids) p->add_subject_ids(x);
  }
}

void StatusToProto(const OrderStatus& s, v1::OrderStatus* p) {
  p->set_order_id(s.spec.id);
  p->set_state(static_cast<v1::OrderState>(static_cast<int>(s.state)));
  p->set_message(s.message);
  p->set_items_planned(s.items_planned);
  p->set_items_shredded(s.items_shredded);
  p->set_certificate_id(s.certificate_id);
  p->set_failed_attempts(s.failed_attempts);
  if (s.next_attempt != absl::InfinitePast()) p->set_next_attempt_unix_nanos(absl::ToUnixNanos(s.next_attempt));
  SpecToProto(s.spec, p->mutable_spec());
}

void HoldToProto(const Hold& h, v1::Hold* p) {
  p->set_id(h.id);
  if (h.digest) ToProto(*h.digest, p->mutable_digest());
  if (!h.dataset.empty()) p->set_dataset(h.dataset);
  p->set_reason(h.reason);
  p->set_created_unix_nanos(h.created_unix_nanos);
}

}  // namespace

grpc::Status OrdersService::PlanOrder(grpc::ServerContext* ctx, const v1::OrderSpec* req, v1::Plan* resp) {
  auth::Caller caller;
  if (grpc::Status s = auth::Authorized(ctx, &caller); !s.ok()) return s;
  const bool personal = (caller.roles & (auth::kWriter | auth::kAdmin)) != 0;
  auto spec = SpecFromProto(*req);
  if (!spec.ok()) return ToGrpc(spec.status());
  auto plan = book_->Plan(*spec);
  if (!plan.ok()) return ToGrpc(plan.status());
  resp->set_order_id(spec->id);
  for (const auto& p : plan->selected) PlannedToProto(p, resp->add_selected(), personal);
  for (const auto& p : plan->derived) PlannedToProto(p, resp->add_derived(), personal);
  for (const auto& p : plan->retained) PlannedToProto(p, resp->add_retained(), personal);
  for (const auto& u : plan->unmatched) resp->add_unmatched(u);
  resp->set_selected_count(static_cast<int64_t>(plan->selected_count));
  resp->set_derived_count(static_cast<int64_t>(plan->derived_count));
  resp->set_retained_count(static_cast<int64_t>(plan->retained_count));
  resp->set_truncated(plan->truncated());
  resp->set_plan_digest(plan->digest);
  resp->set_selected_model_count(static_cast<int64_t>(plan->selected_models));
  resp->set_selected_photo_count(static_cast<int64_t>(plan->selected_count - plan->selected_models));
  for (const auto& h : plan->held_by_pending) {
    auto* p = resp->add_held_by_pending();
    p->set_certificate_id(h.holder.certificate_id);
    p->set_order_id(h.holder.order_id);
    p->set_item_count(static_cast<int64_t>(h.count));
    for (const auto& d : h.digests) ToProto(d, p->add_digests());
  }
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
    SHREDD_REAUTHORIZE(ctx);  // a wait of up to an hour may outlast the caller's role
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

grpc::Status OrdersService::GetSubjectMap(grpc::ServerContext* ctx, const v1::SubjectMapRequest* req,
                                          grpc::ServerWriter<v1::SubjectMapChunk>* writer) {
  SHREDD_AUTHORIZE(ctx);
  v1::SubjectMapChunk chunk;
  size_t items = 0;
  bool sent_ok = true;
  constexpr size_t kChunkItems = 16384;
  auto watched = StallWatch::Watch(stalls_, ctx, "subject map stream");  // not read, it would hold its call for good
  grpc::Status allowed;
  auto s =
      book_->ForEachSubject(req->order_id(), [&](const std::string& subject, const std::vector<SubjectMapItem>& list) {
        auto* out = chunk.add_subjects();
        out->set_subject_id(subject);
        for (const auto& i : list) {
          ToProto(i.digest, out->add_digests());
          out->add_kinds(KindToProto(i.kind));
        }
        items += list.size();
        if (items >= kChunkItems) {
          if (!(allowed = auth::Reauthorized(ctx)).ok()) return false;
          sent_ok = writer->Write(chunk);
          chunk.Clear();
          items = 0;
          watched.Moved();
        }
        return sent_ok && !ctx->IsCancelled();
      });
  if (!allowed.ok()) return allowed;
  if (!s.ok()) return ToGrpc(s);
  if (!sent_ok) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  if (chunk.subjects_size() > 0) writer->Write(chunk);
  return grpc::Status::OK;
}

grpc::Status OrdersService::ReleaseSubjectMap(grpc::ServerContext* ctx, const v1::SubjectMapRequest* req,
                                              v1::ReleaseSubjectMapResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  auto n = book_->ReleaseSubjectMap(req->order_id());
  if (!n.ok()) return ToGrpc(n.status());
  resp->set_subjects(*n);
  return grpc::Status::OK;
}

grpc::Status OrdersService::ListOrders(grpc::ServerContext* ctx, const v1::ListOrdersRequest* req,
                                       v1::ListOrdersResponse* resp) {
  SHREDD_AUTHORIZE(ctx);
  std::vector<OrderState> states;
  for (int s : req->states()) {
    if (s < static_cast<int>(OrderState::kPending) || s > static_cast<int>(OrderState::kFailed)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, StrCat("unknown order state ", s));
    }
    states.push_back(static_cast<OrderState>(s));
  }
  auto orders = book_->List(states);
  if (!orders.ok()) return ToGrpc(orders.status());
  for (const auto& st : *orders) StatusToProto(st, resp->add_orders());
  return grpc::Status::OK;
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
