#include "daemon/api/shred_service.h"

#include "daemon/api/auth.h"
#include "daemon/api/memory_lease.h"
#include "daemon/api/status_map.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/strings.h"

namespace shredd {
namespace {
void Fill(CertificateBundle& b, v1::ShredResponse* out) {
  out->set_certificate_id(b.certificate_id);
  out->set_certificate(b.envelope);
  out->set_manifest(std::move(b.manifest));
  for (auto& r : b.receipts) out->add_receipts(std::move(r));
  out->set_tlog_proof(b.tlog_proof);
  out->set_manifest_omitted(b.manifest_omitted);
  out->set_item_count(b.item_count);
}
}  // namespace

grpc::Status ShredService::Shred(grpc::ServerContext* ctx, const v1::ShredRequest* request,
                                 v1::ShredResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  ShredSpec spec;
  for (const auto& d : request->digests()) {
    auto h = ParseDigestHash(d.hash());
    if (!h.ok()) return ToGrpc(h.status());
    if (d.size_bytes() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, StrCat("negative size ", d.size_bytes()));
    }
    spec.hashes.push_back(*h);
    spec.sizes.push_back(static_cast<uint64_t>(d.size_bytes()));  // checked against the stored item's
  }
  // Both go into the public certificate (docs/FORMATS.md, "Text fields").
  if (auto s = CheckTextField("reason", request->reason(), kMaxReasonBytes); !s.ok()) return ToGrpc(s);
  if (!request->request_id().empty()) {
    if (auto s = CheckIdField("request id", request->request_id(), kMaxRequestIdBytes); !s.ok()) return ToGrpc(s);
  }
  spec.reason = request->reason();
  spec.request_id = request->request_id();
  spec.include_receipts = request->include_receipts();
  spec.keep_models = request->keep_models();
  auto b = shredder_->Shred(spec);
  if (!b.ok()) return ToGrpc(b.status());
  Fill(*b, response);
  // The reply (manifest, receipts) exists already and the shred is done:
  // it is charged, not waited for, until it has gone out (call_holds.h).
  if (transfers_ != nullptr && holds_ != nullptr && !b->manifest_omitted) {
    holds_->Keep(ctx, transfers_->Charge(CertificateReplyBytes(b->item_count, !b->receipts.empty())));
  }
  return grpc::Status::OK;
}

grpc::Status ShredService::GetCertificate(grpc::ServerContext* ctx, const v1::GetCertificateRequest* request,
                                          v1::ShredResponse* response) {
  auth::Caller caller;
  if (grpc::Status s = auth::Authorized(ctx, &caller); !s.ok()) return s;
  // The private manifest and the receipts hold item digests: only for those
  // who may order deletions. An auditor gets the public envelope and the
  // log proof (docs/SECURITY.md).
  const bool private_parts = (caller.roles & (auth::kDeleter | auth::kAdmin)) != 0;
  // Derived request ids come from content (keyed, but still): a lookup by
  // one is for those who may know the content (invariant 6).
  if (!private_parts && request->certificate_id().empty() && request->request_id().starts_with(kAutoRequestPrefix)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "looking a certificate up by a derived (auto:) request id needs the deleter or admin role; "
                        "auditors look certificates up by certificate id");
  }
  // The manifest (and receipts) are only read for those who get them, and
  // lease their memory first, until the reply has gone out (call_holds.h):
  // many concurrent fetches of large certificates wait their turn instead
  // of growing the daemon (memory_lease.h).
  const bool receipts = request->include_receipts() && private_parts;
  const CertificateParts parts = !private_parts ? CertificateParts::kEnvelope
                                 : receipts     ? CertificateParts::kManifestAndReceipts
                                                : CertificateParts::kManifest;
  MemoryGate::Lease lease;
  auto reserve = [&](uint64_t items) -> absl::Status {
    auto l = LeaseMemory(transfers_, ctx, CertificateReplyBytes(items, receipts), "certificate with its manifest");
    if (!l.ok()) return l.status();
    lease = std::move(*l);
    return absl::OkStatus();
  };
  auto b = shredder_->GetCertificate(request->certificate_id(), request->request_id(), parts, reserve);
  if (!b.ok()) return ToGrpc(b.status());
  Fill(*b, response);
  if (holds_ != nullptr) holds_->Keep(ctx, std::move(lease));
  return grpc::Status::OK;
}

grpc::Status ShredService::GetManifest(grpc::ServerContext* ctx, const v1::GetCertificateRequest* request,
                                       grpc::ServerWriter<v1::ManifestChunk>* writer) {
  SHREDD_AUTHORIZE(ctx);
  std::string id = request->certificate_id();
  if (id.empty()) {
    auto b = shredder_->GetCertificate("", request->request_id(), CertificateParts::kEnvelope);
    if (!b.ok()) return ToGrpc(b.status());
    id = b->certificate_id;
  }
  if (id.size() > 64) return ToGrpc(absl::InvalidArgumentError("malformed certificate id"));
  v1::ManifestChunk chunk;
  bool sent_ok = true;
  constexpr size_t kPiece = 1 << 20;
  // Not read, the stream would hold its call and a RocksDB iterator for good.
  auto watched = StallWatch::Watch(stalls_, ctx, "manifest stream");
  grpc::Status allowed;
  auto s = shredder_->StreamManifest(id, [&](std::string_view piece) {
    chunk.mutable_data()->append(piece.data(), piece.size());
    if (chunk.data().size() >= kPiece) {
      if (!(allowed = auth::Reauthorized(ctx)).ok()) return false;
      sent_ok = writer->Write(chunk);
      chunk.clear_data();
      watched.Moved();
    }
    return sent_ok && !ctx->IsCancelled();
  });
  if (!allowed.ok()) return allowed;
  if (!s.ok()) return ToGrpc(s);
  if (!sent_ok) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  if (!chunk.data().empty()) writer->Write(chunk);
  return grpc::Status::OK;
}

grpc::Status ShredService::GetPublicKey(grpc::ServerContext* ctx, const v1::GetPublicKeyRequest* request,
                                        v1::GetPublicKeyResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  auto k = shredder_->PublicKey();
  if (!k.ok()) return ToGrpc(k.status());
  response->set_ed25519_public_key(k->raw.data(), k->raw.size());
  response->set_spki_pem(k->spki_pem);
  response->set_note_verifier_key(k->note_verifier_key);
  response->set_key_name(k->key_name);
  return grpc::Status::OK;
}

}  // namespace shredd
