// Certifying a destruction (Certify and its phases) and reading
// certificates and manifests back. Plans and epochs are in shredder.cc.
#include <cstring>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/parallel.h"
#include "daemon/base/strings.h"
#include "daemon/shred/certificate_builder.h"
#include "daemon/shred/pending_record.h"
#include "daemon/shred/shredder.h"
#include "daemon/shred/shredder_records.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"
#include "formats/certificate.h"
#include "formats/keys.h"
#include "formats/tlog.h"

namespace shredd {

using namespace shred_internal;  // NOLINT: this library's internal helpers

absl::StatusOr<CertificateBundle> Shredder::Certify(const std::string& cert_id) {
  auto pending = LoadPending(cert_id);
  if (!pending.ok()) return pending.status();
  if (auto s = DestroyOldRoots(*pending); !s.ok()) return s;
  const absl::Time destroyed = absl::Now();
  rocksdb::WriteBatch batch;  // the last manifest chunks commit with the certificate
  auto folded = FoldManifest(cert_id, &batch);
  if (!folded.ok()) return folded.status();
  auto builder = BuilderFor(cert_id, *pending, *folded, destroyed);
  if (!builder.ok()) return builder.status();
  return CommitCertificate(cert_id, *pending, *folded, *builder, &batch);
}

absl::Status Shredder::DestroyStaleRoots() {
  Vault& vault = store_->key_tree().vault();
  const uint64_t current = store_->key_tree().epoch();
  auto roots = vault.ListRoots();
  if (!roots.ok()) return roots.status();
  for (uint64_t r : *roots) {
    if (r >= current) continue;  // the current root, or one being prepared by nobody: Recover() handles it
    // Not before the current tree is in the object store (durability.h).
    if (auto s = WaitStateReplicated(store_->db(), StrCat("root ", r, " is kept")); !s.ok()) return s;
    if (auto s = vault.DestroyRoot(r); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// No certificate unless the old roots are gone: every root the vault still
// holds must be the current one.
absl::Status Shredder::DestroyOldRoots(const PendingRecord& pending) {
  if (!pending.installed_epoch) return absl::InternalError("pending certification destroyed nothing");
  if (auto s = DestroyStaleRoots(); !s.ok()) return s;
  const uint64_t current = store_->key_tree().epoch();
  if (current < *pending.installed_epoch) {
    return absl::InternalError("pending certification refers to an epoch that was never committed");
  }
  return absl::OkStatus();
}

// One pass over the manifest entries, in tree order: the Merkle root (a
// CompactRange), counts by kind, and the manifest in sealed chunks. Full
// batches of chunks are written as they fill; the rest stay in *batch.
absl::StatusOr<Shredder::FoldedManifest> Shredder::FoldManifest(const std::string& cert_id,
                                                                rocksdb::WriteBatch* batch) {
  rocksdb::DB* db = store_->db();
  const std::string begin = StrCat(keyspace::kStagedLeaf, ScopeOf(cert_id));
  const std::string end = RangeEnd(begin);
  FoldedManifest out;
  std::string chunk;
  auto flush_chunk = [&]() -> absl::Status {
    if (chunk.empty()) return absl::OkStatus();
    batch->Put(ManifestChunkKey(cert_id, out.chunks), store_->SealSystem(chunk, ManifestChunkAd(cert_id, out.chunks)));
    ++out.chunks;
    chunk.clear();
    if (batch->GetDataSize() < (16u << 20)) return absl::OkStatus();
    auto s = GuardedWrite(db, rocksdb::WriteOptions(), batch, "writing a manifest");
    batch->Clear();
    return s;
  };
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  // Batches of entries are opened and checked on several threads, then
  // folded into the tree and the manifest in order.
  std::vector<std::pair<std::string, std::string>> raw;
  auto fold = [&]() -> absl::Status {
    auto opened = OpenEntries(begin.size(), raw);
    if (!opened.ok()) return opened.status();
    for (const OpenedEntry& o : *opened) {
      (o.kind == ItemKind::kModel ? out.models : out.photos) += 1;
      out.range.Append(o.leaf);
      if (!chunk.empty()) chunk.push_back(',');
      AppendItemJson(o.entry, &chunk);
      if (out.range.size() % options_.manifest_chunk_items == 0) {
        if (auto s = flush_chunk(); !s.ok()) return s;
      }
    }
    raw.clear();
    return absl::OkStatus();
  };
  for (it->Seek(begin); it->Valid(); it->Next()) {
    raw.emplace_back(it->key().ToString(), it->value().ToString());
    if (raw.size() >= 16384) {
      if (auto s = fold(); !s.ok()) return s;
    }
  }
  if (auto s = fold(); !s.ok()) return s;
  if (!it->status().ok()) return FromRocks(it->status(), "reading staged manifest entries");
  if (auto s = flush_chunk(); !s.ok()) return s;
  if (out.range.size() == 0) return absl::DataLossError("a pending certification has no manifest entries");
  const verify::Hash root = out.range.Root();
  out.root_hex = HexEncode(std::string_view(reinterpret_cast<const char*>(root.data()), root.size()));
  return out;
}

// Opens and checks staged manifest entries ("ql" records) on several
// threads: each must authenticate and hash to the leaf its key names.
absl::StatusOr<std::vector<Shredder::OpenedEntry>> Shredder::OpenEntries(
    size_t prefix_size, const std::vector<std::pair<std::string, std::string>>& raw) {
  std::vector<OpenedEntry> opened(raw.size());
  std::vector<char> ok(raw.size(), 0);
  ParallelFor(raw.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      std::string_view k = raw[i].first;
      auto v = store_->OpenSystem(raw[i].second, StagedAd(k));
      if (!v.ok() || v->size() != 73 || k.size() != prefix_size + 32) continue;
      OpenedEntry& o = opened[i];
      o.kind = static_cast<ItemKind>((*v)[0]);
      o.entry.kind = std::string(KindName(o.kind));
      o.entry.size = ReadBigEndian64(std::string_view(*v).substr(1, 8));
      Sha256 hash;
      std::memcpy(hash.data(), v->data() + 9, 32);
      o.entry.digest = ContentDigest{hash, o.entry.size}.HashString();
      std::memcpy(o.entry.salt.data(), v->data() + 41, 32);
      o.leaf = verify::ItemLeafHash(o.entry);
      ok[i] = std::memcmp(o.leaf.data(), k.data() + prefix_size, 32) == 0;
    }
  });
  for (char good : ok) {
    if (!good) return absl::DataLossError("a staged manifest entry does not authenticate or match its leaf hash");
  }
  return opened;
}

// The predicate of a destruction's certificate, from its "P" record and
// its manifest.
absl::StatusOr<DeletionPredicate> Shredder::PredicateFor(const std::string& cert_id, const PendingRecord& pending,
                                                         const FoldedManifest& folded, absl::Time destroyed) {
  DeletionPredicate p;
  p.certificate_id = cert_id;
  p.request_id = pending.request_id;
  p.reason = pending.reason;
  if (pending.order) {
    // Public order fields, plus a salted commitment to the private ones
    // (requester, selectors), which only the manifest reveals.
    auto salt = HexDecode(pending.order_salt);
    if (!salt || salt->size() != 32) return absl::DataLossError("pending certification holds a malformed order salt");
    p.order = ordered_json::parse(pending.order->dump());
    p.order_private_commitment = OrderCommitment(*salt, pending.order_private);
  }
  p.vault_backend = pending.vault;
  p.root_epoch_destroyed = pending.destroyed_epoch.value_or(0);
  p.root_epoch_installed = pending.installed_epoch.value_or(0);
  p.requested = pending.requested;
  p.destroyed = FormatRfc3339(destroyed);
  p.issued = FormatRfc3339(absl::Now());
  p.photos = folded.photos;
  p.models = folded.models;
  p.merkle_root_hex = folded.root_hex;
  p.derived_models = ordered_json::parse(pending.derived_models.dump());
  p.retained = ordered_json::parse(pending.retained.dump());
  return p;
}

absl::StatusOr<CertificateBuilder> Shredder::BuilderFor(const std::string& cert_id, const PendingRecord& pending,
                                                        const FoldedManifest& folded, absl::Time destroyed) {
  auto p = PredicateFor(cert_id, pending, folded, destroyed);
  if (!p.ok()) return p.status();
  Vault& vault = store_->key_tree().vault();
  auto pub = vault.SigningPublicKey();
  if (!pub.ok()) return pub.status();
  return CertificateBuilder(*std::move(p), *pub, [&vault](std::string_view m) { return vault.Sign(m); });
}

// The certificate is one log entry, and the log takes entries up to
// kMaxEntryBytes: what lists every derived model and every item retained
// under a hold (with its reason) can outgrow it. Found out after the keys
// are destroyed, that would leave the destruction without a certificate for
// good; so it is measured first, with every field that is not known yet at
// its largest (counts, epochs, the log index).
absl::Status Shredder::CheckCertificateFits(const std::string& cert_id, const PendingRecord& pending) {
  PendingRecord widest = pending;
  widest.destroyed_epoch = widest.installed_epoch = std::numeric_limits<uint64_t>::max();
  FoldedManifest folded;
  folded.photos = folded.models = std::numeric_limits<uint64_t>::max() / 2;
  folded.root_hex = std::string(64, 'f');
  auto p = PredicateFor(cert_id, widest, folded, absl::Now());
  if (!p.ok()) return p.status();
  const CertificateBuilder builder(
      *std::move(p), Ed25519PublicKey{},
      [](std::string_view) -> absl::StatusOr<Ed25519Signature> { return Ed25519Signature{}; });
  auto env = builder.Envelope(LogPosition{log_ == nullptr ? "" : log_->origin(), std::numeric_limits<uint64_t>::max()});
  if (!env.ok()) return env.status();
  if (env->size() <= TransparencyLog::kMaxEntryBytes) return absl::OkStatus();
  return absl::FailedPreconditionError(
      StrCat("the certificate would be ", env->size(), " bytes, over the transparency log's limit of ",
             TransparencyLog::kMaxEntryBytes, " bytes for one entry: it lists ", pending.derived_models.size(),
             " derived models and ", pending.retained.size(),
             " items retained under holds (each with its hold's reason); nothing was destroyed. Split the order "
             "(fewer selectors, or the derived models by orders of their own), or shorten the hold reasons"));
}

// Commits the certificate ("C"), the manifest header ("M") and the last
// manifest chunks, drops the "P" record and the staged entries, all in one
// write, which with a log is the write that appends the certificate.
absl::StatusOr<CertificateBundle> Shredder::CommitCertificate(const std::string& cert_id, const PendingRecord& pending,
                                                              const FoldedManifest& folded,
                                                              const CertificateBuilder& builder,
                                                              rocksdb::WriteBatch* batch) {
  ordered_json header;
  header["type"] = verify::kManifestType;
  header["certificateId"] = cert_id;
  header["merkleRoot"] = folded.root_hex;
  header["count"] = folded.range.size();
  header["chunks"] = folded.chunks;
  if (pending.order) header["order"] = {{"private", pending.order_private}, {"salt", pending.order_salt}};
  const std::string begin = StrCat(keyspace::kStagedLeaf, ScopeOf(cert_id));
  batch->Put(ManifestKey(cert_id), store_->SealSystem(header.dump(), ManifestAd(cert_id)));
  batch->Delete(PendingKey(cert_id));
  batch->DeleteRange(begin, RangeEnd(begin));
  CertificateBundle bundle;
  bundle.certificate_id = cert_id;
  bundle.item_count = folded.range.size();
  if (log_ == nullptr) {
    auto env = builder.Envelope(std::nullopt);
    if (!env.ok()) return env.status();
    bundle.envelope = std::move(*env);
    batch->Put(CertKey(cert_id), bundle.envelope);
    if (auto s = SyncWrite(store_->db(), batch); !s.ok()) return s;
  } else {
    auto appended = log_->Append(batch, [&](uint64_t index) -> absl::StatusOr<std::vector<std::string>> {
      auto env = builder.Envelope(LogPosition{log_->origin(), index});
      if (!env.ok()) return env.status();
      bundle.envelope = *env;
      batch->Put(CertKey(cert_id), bundle.envelope);
      return std::vector<std::string>{std::move(*env)};
    });
    if (!appended.ok()) return appended.status();
    // A checkpoint covers the certificate before anyone sees it.
    auto proof = TlogProofFor(bundle.envelope);
    if (!proof.ok()) return proof.status();
    bundle.tlog_proof = std::move(*proof);
  }
  if (bundle.item_count <= options_.inline_manifest_items) {
    auto m = Load(cert_id, CertificateParts::kManifest);
    if (!m.ok()) return m.status();
    bundle.manifest = std::move(m->manifest);
  } else {
    bundle.manifest_omitted = true;
  }
  return bundle;
}

absl::Status Shredder::StreamManifest(std::string_view cert_id, const std::function<bool(std::string_view)>& sink) {
  rocksdb::DB* db = store_->db();
  std::string sealed;
  rocksdb::Status rs = db->Get(rocksdb::ReadOptions(), ManifestKey(cert_id), &sealed);
  if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no manifest for certificate ", cert_id));
  if (auto s = FromRocks(rs, "reading a manifest"); !s.ok()) return s;
  auto m = store_->OpenSystem(sealed, ManifestAd(cert_id));
  if (!m.ok()) return m.status();
  json header = json::parse(*m, nullptr, false);
  if (header.is_discarded()) return absl::DataLossError("stored manifest is unreadable");
  if (!header.contains("chunks")) {  // a manifest stored whole
    sink(*m);
    return absl::OkStatus();
  }
  if (!sink(StrCat("{\"type\":", json(header["type"]).dump(),
                   ",\"certificateId\":", json(header["certificateId"]).dump(),
                   ",\"merkleRoot\":", json(header["merkleRoot"]).dump(), ",\"items\":["))) {
    return absl::OkStatus();
  }
  if (!header["chunks"].is_number_unsigned()) return absl::DataLossError("stored manifest header is malformed");
  const uint32_t chunks = header["chunks"].get<uint32_t>();
  for (uint32_t i = 0; i < chunks; ++i) {
    std::string c;
    if (auto s =
            FromRocks(db->Get(rocksdb::ReadOptions(), ManifestChunkKey(cert_id, i), &c), "reading a manifest chunk");
        !s.ok()) {
      return s;
    }
    auto plain = store_->OpenSystem(c, ManifestChunkAd(cert_id, i));
    if (!plain.ok()) return absl::DataLossError(StrCat("manifest chunk ", i, " does not authenticate"));
    if (i > 0 && !sink(",")) return absl::OkStatus();
    if (!sink(*plain)) return absl::OkStatus();
  }
  std::string tail = "]";
  if (header.contains("order")) {
    ordered_json o;
    if (!header["order"].is_object()) return absl::DataLossError("stored manifest header is malformed");
    o["private"] = header["order"]["private"];
    o["salt"] = header["order"]["salt"];
    tail += ",\"order\":" + o.dump();
  }
  tail += "}";
  sink(tail);
  return absl::OkStatus();
}

absl::StatusOr<CertificateBundle> Shredder::Load(const std::string& cert_id, CertificateParts parts,
                                                 const BeforeManifest& before_manifest) {
  CertificateBundle b;
  b.certificate_id = cert_id;
  rocksdb::DB* db = store_->db();
  rocksdb::Status rs = db->Get(rocksdb::ReadOptions(), CertKey(cert_id), &b.envelope);
  if (rs.IsNotFound()) {
    std::string p;
    if (db->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &p).ok()) {
      return absl::UnavailableError(StrCat("certificate ", cert_id, " is not issued yet; retry"));
    }
    return absl::NotFoundError(StrCat("no certificate ", cert_id));
  }
  if (!rs.ok()) return FromRocks(rs, "reading a certificate");
  std::string sealed;
  if (auto s = FromRocks(db->Get(rocksdb::ReadOptions(), ManifestKey(cert_id), &sealed), "reading a manifest");
      !s.ok()) {
    return s;
  }
  auto header = store_->OpenSystem(sealed, ManifestAd(cert_id));
  if (!header.ok()) return header.status();
  json h = json::parse(*header, nullptr, false);
  if (h.is_discarded()) return absl::DataLossError("stored manifest is unreadable");
  if (h.contains("count") ? !h["count"].is_number_unsigned() : !h.value("items", json::array()).is_array()) {
    return absl::DataLossError("stored manifest header is malformed");
  }
  b.item_count = h.contains("count") ? h["count"].get<uint64_t>() : h.value("items", json::array()).size();
  if (parts == CertificateParts::kEnvelope) {
    // neither manifest nor receipts
  } else if (b.item_count > options_.inline_manifest_items) {
    b.manifest_omitted = true;
  } else {
    if (before_manifest) {
      if (auto s = before_manifest(b.item_count); !s.ok()) return s;
    }
    auto s = StreamManifest(cert_id, [&](std::string_view piece) {
      b.manifest.append(piece);
      return true;
    });
    if (!s.ok()) return s;
  }
  if (log_ != nullptr) {
    auto proof = TlogProofFor(b.envelope);
    if (!proof.ok()) return proof.status();
    b.tlog_proof = std::move(*proof);
  }
  if (parts == CertificateParts::kManifestAndReceipts) {
    if (b.manifest_omitted || b.item_count > options_.receipt_items) {
      // Also after a Shred that cascaded past the limit: its certificate
      // is issued, so say so.
      return absl::FailedPreconditionError(
          StrCat("certificate ", cert_id, " (issued) covers ", b.item_count, " items; receipts are served for up to ",
                 std::min(options_.receipt_items, options_.inline_manifest_items),
                 ": fetch it without receipts and derive them offline from its manifest (shredctl receipt)"));
    }
    json manifest = json::parse(b.manifest, nullptr, false);
    if (manifest.is_discarded()) return absl::DataLossError("stored manifest is unreadable");
    auto commitment = CommitmentFrom(manifest["items"]);
    if (!commitment.ok()) return commitment.status();
    for (uint64_t i = 0; i < commitment->size(); ++i) {
      auto r = commitment->ReceiptJson(cert_id, i);
      if (!r.ok()) return r.status();
      b.receipts.push_back(std::move(*r));
    }
  }
  return b;
}

absl::StatusOr<CertificateBundle> Shredder::GetCertificate(std::string_view certificate_id, std::string_view request_id,
                                                           CertificateParts parts,
                                                           const BeforeManifest& before_manifest) {
  ErasureWrites erasure;  // deletion keeps working on a nearly full disk (space_guard.h)
  std::string id(certificate_id);
  if (id.empty()) {
    if (request_id.empty()) return absl::InvalidArgumentError("give a certificate id or a request id");
    if (request_id.size() > 256) return absl::InvalidArgumentError("request id is longer than 256 bytes");
    std::string record;
    rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), RequestKey(request_id), &record);
    if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no certificate for request ", QuoteForError(request_id)));
    if (!rs.ok()) return FromRocks(rs, "reading a request record");
    id = std::string(ParseRequestRecord(record).cert_id);
  }
  if (id.size() > 64) return absl::InvalidArgumentError("malformed certificate id");
  if (HasPending(id)) {
    // Pending: finish it now, unless a destruction holds the lock for long
    // (the background retry then gets to it soon). The retry's own attempts
    // take well under this wait.
    std::unique_lock lock(mu_, std::chrono::seconds(5));
    if (lock.owns_lock()) {
      (void)FinishPendingLocked(id);
    } else {
      retrier_->Kick();
    }
  }
  return Load(id, parts, before_manifest);
}

absl::StatusOr<std::string> Shredder::TlogProofFor(std::string_view envelope) {
  auto index = log_->IndexOfLeafHash(verify::LeafHash(envelope));
  if (!index.ok()) return index.status();
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) return note.status();
  auto cp = verify::ParseCheckpointText(note->substr(0, note->find("\n\n") + 1));
  if (!cp.ok()) return cp.status();
  auto path = log_->InclusionProof(*index, cp->size);
  if (!path.ok()) return path.status();
  verify::TlogProof proof;
  proof.index = *index;
  proof.path = std::move(*path);
  proof.checkpoint = *note;
  return verify::FormatTlogProof(proof);
}

absl::StatusOr<PublicKeyInfo> Shredder::PublicKey() {
  auto pub = store_->key_tree().vault().SigningPublicKey();
  if (!pub.ok()) return pub.status();
  PublicKeyInfo info;
  info.raw = *pub;
  info.spki_pem = verify::ToSpkiPem(*pub);
  // The note key name is the log origin, so this vkey verifies checkpoints.
  info.key_name = log_ != nullptr ? log_->origin() : DefaultLogOrigin(*pub);
  info.note_verifier_key = verify::NoteVerifierKey(info.key_name, *pub);
  return info;
}

}  // namespace shredd
