#include "daemon/api/log_service.h"

#include <algorithm>
#include <cstring>

#include "daemon/api/auth.h"
#include "daemon/api/status_map.h"
#include "daemon/base/strings.h"
#include "formats/note.h"
#include "formats/tlog.h"

namespace shredd {
namespace {

std::string HashBytes(const verify::Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

// The checkpoint the log just signed, parsed (it is our own, so this only
// fails on a bug).
absl::StatusOr<verify::Checkpoint> ParseOwnCheckpoint(const std::string& signed_note) {
  auto note = verify::ParseNote(signed_note);
  if (!note.ok()) return absl::InternalError(StrCat("own checkpoint does not parse: ", note.status().message()));
  auto cp = verify::ParseCheckpointText(note->text);
  if (!cp.ok()) return absl::InternalError(StrCat("own checkpoint does not parse: ", cp.status().message()));
  cp->signed_note = signed_note;
  return cp;
}

// The log's size if its tree is in the object store (at once without state
// replication); if the store cannot take it now, the size it is known to
// hold, as long as that covers `start` (UNAVAILABLE otherwise).
absl::StatusOr<uint64_t> DurableTreeSize(TransparencyLog& log, uint64_t start) {
  const uint64_t size = log.size();
  absl::Status s = log.WaitTreeReplicated(size);
  if (s.ok()) return size;
  const uint64_t durable = std::min(size, log.replicated_size());
  if (start < durable) return durable;
  return absl::UnavailableError(
      StrCat("log entries from index ", start, " on are not yet in the object store: ", s.message()));
}

}  // namespace

grpc::Status LogService::GetCheckpoint(grpc::ServerContext* ctx, const v1::GetCheckpointRequest*,
                                       v1::GetCheckpointResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) return ToGrpc(note.status());
  auto cp = ParseOwnCheckpoint(*note);
  if (!cp.ok()) return ToGrpc(cp.status());
  response->set_checkpoint(*note);
  response->set_tree_size(cp->size);
  response->set_root_hash(HashBytes(cp->root));
  response->set_origin(cp->origin);
  response->set_note_verifier_key(log_->NoteVerifierKey());
  return grpc::Status::OK;
}

grpc::Status LogService::GetEntries(grpc::ServerContext* ctx, const v1::GetEntriesRequest* request,
                                    v1::GetEntriesResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  const uint64_t start = request->start();
  if (start >= log_->size()) {
    return ToGrpc(
        absl::OutOfRangeError(StrCat("start index ", start, " is beyond the log's tree size of ", log_->size())));
  }
  // Entries a restore could roll back are not handed out (the rule of
  // proofs and checkpoints, docs/RECOVERY.md): only the tree in the store.
  auto size = DurableTreeSize(*log_, start);
  if (!size.ok()) return ToGrpc(size.status());
  if (request->end() <= start) {
    return ToGrpc(absl::InvalidArgumentError(
        StrCat("end ", request->end(), " must be greater than start ", start, " (end is exclusive)")));
  }
  uint64_t end = std::min(request->end(), *size);
  end = std::min(end, start + kMaxEntriesPerCall);
  size_t bytes = 0;
  for (uint64_t i = start; i < end; ++i) {
    auto e = log_->Entry(i);
    if (!e.ok()) return ToGrpc(e.status());
    if (i > start && bytes + e->size() > kMaxEntriesBytesPerCall) break;
    bytes += e->size();
    response->add_entries(std::move(*e));
  }
  response->set_tree_size(*size);
  return grpc::Status::OK;
}

grpc::Status LogService::GetInclusionProof(grpc::ServerContext* ctx, const v1::GetInclusionProofRequest* request,
                                           v1::GetInclusionProofResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  const uint64_t tree_size = request->tree_size() == 0 ? log_->size() : request->tree_size();
  uint64_t index = 0;
  switch (request->leaf_case()) {
    case v1::GetInclusionProofRequest::kIndex:
      index = request->index();
      break;
    case v1::GetInclusionProofRequest::kLeafHash: {
      if (request->leaf_hash().size() != 32) {
        return ToGrpc(
            absl::InvalidArgumentError(StrCat("leaf_hash must be 32 bytes, got ", request->leaf_hash().size())));
      }
      verify::Hash h;
      std::memcpy(h.data(), request->leaf_hash().data(), 32);
      auto i = log_->IndexOfLeafHash(h);
      if (!i.ok()) return ToGrpc(i.status());
      if (*i >= tree_size && tree_size <= log_->size()) {
        return ToGrpc(absl::NotFoundError(
            StrCat("the entry with that leaf hash is at index ", *i, ", not in the tree of size ", tree_size)));
      }
      index = *i;
      break;
    }
    default:
      return ToGrpc(absl::InvalidArgumentError("give the leaf's index or its leaf hash"));
  }
  auto proof = log_->InclusionProof(index, tree_size);
  if (!proof.ok()) return ToGrpc(proof.status());
  response->set_index(index);
  response->set_tree_size(tree_size);
  for (const auto& h : *proof) response->add_hashes(HashBytes(h));
  return grpc::Status::OK;
}

grpc::Status LogService::GetConsistencyProof(grpc::ServerContext* ctx, const v1::GetConsistencyProofRequest* request,
                                             v1::GetConsistencyProofResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  const uint64_t size = log_->size();
  const uint64_t second = request->second() == 0 ? size : request->second();
  if (request->first() > size) {
    return ToGrpc(
        absl::OutOfRangeError(StrCat("tree size ", request->first(), " is beyond the log's tree size of ", size)));
  }
  auto proof = log_->ConsistencyProof(request->first(), second);
  if (!proof.ok()) return ToGrpc(proof.status());
  response->set_first(request->first());
  response->set_second(second);
  for (const auto& h : *proof) response->add_hashes(HashBytes(h));
  return grpc::Status::OK;
}

grpc::Status LogService::GetTlogProof(grpc::ServerContext* ctx, const v1::GetTlogProofRequest* request,
                                      v1::GetTlogProofResponse* response) {
  SHREDD_AUTHORIZE(ctx);
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) return ToGrpc(note.status());
  auto cp = ParseOwnCheckpoint(*note);
  if (!cp.ok()) return ToGrpc(cp.status());
  if (request->index() >= cp->size) {
    return ToGrpc(absl::OutOfRangeError(
        StrCat("entry index ", request->index(), " is beyond the log's tree size of ", cp->size)));
  }
  auto path = log_->InclusionProof(request->index(), cp->size);
  if (!path.ok()) return ToGrpc(path.status());
  verify::TlogProof proof;
  proof.index = request->index();
  proof.path = std::move(*path);
  proof.checkpoint = *note;
  response->set_proof(verify::FormatTlogProof(proof));
  response->set_index(request->index());
  response->set_tree_size(cp->size);
  return grpc::Status::OK;
}

}  // namespace shredd
