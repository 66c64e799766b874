#include "daemon/api/proto_convert.h"

#include "daemon/base/strings.h"

namespace shredd {

absl::StatusOr<ContentDigest> FromProto(const v1::Digest& d) {
  auto h = ParseDigestHash(d.hash());
  if (!h.ok()) return h.status();
  if (d.size_bytes() < 0) return absl::InvalidArgumentError(StrCat("negative size ", d.size_bytes()));
  return ContentDigest{*h, static_cast<uint64_t>(d.size_bytes())};
}

absl::StatusOr<ItemMetadata> FromProto(const v1::ItemMetadata& m) {
  ItemMetadata out;
  switch (m.kind()) {
    case v1::KIND_UNSPECIFIED:
    case v1::KIND_PHOTO:
      out.kind = ItemKind::kPhoto;
      break;
    case v1::KIND_MODEL:
      out.kind = ItemKind::kModel;
      break;
    default:
      return absl::InvalidArgumentError(StrCat("unknown kind ", m.kind()));
  }
  out.subject_ids.assign(m.subject_ids().begin(), m.subject_ids().end());
  out.datasets.assign(m.datasets().begin(), m.datasets().end());
  for (const auto& [k, v] : m.labels()) out.labels.emplace(k, v);
  out.name = m.name();
  return out;
}

absl::StatusOr<std::vector<LineageSpec>> LineageFromProto(
    const google::protobuf::RepeatedPtrField<v1::LineageEdge>& edges) {
  std::vector<LineageSpec> out;
  for (const auto& e : edges) {
    LineageSpec l;
    switch (e.type()) {
      case v1::LineageEdge::TRAINED_ON:
        l.type = EdgeType::kTrainedOn;
        break;
      case v1::LineageEdge::DERIVED_FROM:
        l.type = EdgeType::kDerivedFrom;
        break;
      default:
        return absl::InvalidArgumentError("a lineage edge needs a type (TRAINED_ON or DERIVED_FROM)");
    }
    if (e.has_digest()) {
      auto d = ParseDigestHash(e.digest().hash());
      if (!d.ok()) return d.status();
      l.digest = *d;
    } else if (!e.dataset().empty()) {
      l.dataset = e.dataset();
    } else {
      return absl::InvalidArgumentError("a lineage edge needs a dataset or a digest");
    }
    l.relation = e.relation();
    out.push_back(std::move(l));
  }
  return out;
}

void ToProto(const ContentDigest& d, v1::Digest* out) {
  out->set_hash(d.HashString());
  out->set_size_bytes(static_cast<int64_t>(d.size));
}

v1::Kind KindToProto(ItemKind k) { return k == ItemKind::kModel ? v1::KIND_MODEL : v1::KIND_PHOTO; }

v1::LineageEdge::Type EdgeToProto(EdgeType t) {
  return t == EdgeType::kTrainedOn ? v1::LineageEdge::TRAINED_ON : v1::LineageEdge::DERIVED_FROM;
}

absl::StatusOr<std::vector<Sha256>> DigestHashesFromProto(
    const google::protobuf::RepeatedPtrField<v1::Digest>& digests) {
  std::vector<Sha256> out;
  for (const auto& d : digests) {
    auto h = ParseDigestHash(d.hash());
    if (!h.ok()) return h.status();
    out.push_back(*h);
  }
  return out;
}

void ToProto(const ItemInfo& info, v1::ItemInfo* out) {
  ToProto(info.digest, out->mutable_digest());
  auto* m = out->mutable_metadata();
  m->set_kind(KindToProto(info.metadata.kind));
  for (const auto& s : info.metadata.subject_ids) m->add_subject_ids(s);
  for (const auto& d : info.metadata.datasets) m->add_datasets(d);
  for (const auto& [k, v] : info.metadata.labels) (*m->mutable_labels())[k] = v;
  m->set_name(info.metadata.name);
  out->set_stored_unix_nanos(info.stored_unix_nanos);
  out->set_chunk_size(static_cast<int32_t>(info.chunk_size));
}

}  // namespace shredd
