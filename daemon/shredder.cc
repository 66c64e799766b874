#include "daemon/shredder.h"

#include <sodium.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "daemon/strings.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/verify/certificate.h"
#include "client/verify/dsse.h"
#include "client/verify/keys.h"
#include "client/verify/tlog.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/rocks_util.h"

namespace shredd {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}
std::string RequestKey(std::string_view id) { return StrCat("r", id); }
std::string PendingKey(std::string_view id) { return StrCat("P", id); }
std::string CertKey(std::string_view id) { return StrCat("C", id); }
std::string ManifestKey(std::string_view id) { return StrCat("M", id); }
std::string PendingAd(std::string_view id) { return StrCat("shredd/pending/v1", id); }
std::string ManifestAd(std::string_view id) { return StrCat("shredd/manifest/v1", id); }

std::string NewCertificateId() {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  return HexEncode(b);
}

absl::StatusOr<verify::ItemCommitment> CommitmentFrom(const json& items) {
  std::vector<verify::ItemEntry> entries;
  for (const auto& e : items) {
    verify::ItemEntry ie;
    ie.kind = e.at("kind").get<std::string>();
    ie.digest = e.at("digest").get<std::string>();
    ie.size = e.at("size").get<uint64_t>();
    auto salt = HexDecode(e.at("salt").get<std::string>());
    if (!salt || salt->size() != 32) return absl::DataLossError("pending certification holds a malformed salt");
    std::memcpy(ie.salt.data(), salt->data(), 32);
    entries.push_back(std::move(ie));
  }
  return verify::ItemCommitment::Create(std::move(entries));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Shredder>> Shredder::Create(ItemStore* store, Catalog* catalog,
                                                             TransparencyLog* log) {
  std::unique_ptr<Shredder> s(new Shredder(store, catalog, log));
  if (auto st = s->CompletePending(); !st.ok()) return st;
  return s;
}

absl::Status Shredder::CompletePending() {
  std::vector<std::string> ids;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("P"); it->Valid() && it->key().starts_with("P"); it->Next()) {
    ids.push_back(it->key().ToString().substr(1));
  }
  it.reset();
  for (const auto& id : ids) {
    auto c = Certify(id);
    if (!c.ok()) return absl::Status(c.status().code(), StrCat("finishing certificate ", id, ": ", c.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<CertificateBundle> Shredder::Shred(const ShredSpec& spec) {
  if (spec.hashes.empty()) return absl::InvalidArgumentError("nothing to shred: no digests given");
  if (spec.reason.size() > 4096) return absl::InvalidArgumentError("reason is longer than 4096 bytes");
  ShredJob job;
  job.hashes = spec.hashes;
  std::sort(job.hashes.begin(), job.hashes.end());
  job.hashes.erase(std::unique(job.hashes.begin(), job.hashes.end()), job.hashes.end());
  job.request_id = spec.request_id;
  if (job.request_id.empty()) {
    // Derived from the digests and their custody records, so repeating a
    // request returns its certificate, while content stored again after a
    // suppression lift (a new custody record) is a new destruction.
    Sha256Hasher h;
    h.Update("shredd/auto-request/v2");
    for (const auto& x : job.hashes) {
      h.Update({reinterpret_cast<const char*>(x.data()), x.size()});
      auto custody = store_->LatestCustody(store_->ItemKeyFor(x));
      h.Update(StrCat(" ", custody ? custody->index : 0, ";"));
    }
    job.request_id = "auto:" + HexEncode(h.Finish());
  }
  job.reason = spec.reason;
  auto b = Execute(std::move(job));
  if (!b.ok() || !spec.include_receipts) return b;
  return Load(b->certificate_id, true);
}

absl::StatusOr<CertificateBundle> Shredder::Execute(ShredJob job) {
  const absl::Time requested = absl::Now();
  if (job.request_id.empty() || job.request_id.size() > 256) {
    return absl::InvalidArgumentError("request id must be 1..256 bytes");
  }
  std::lock_guard lock(mu_);
  std::string existing;
  if (store_->db()->Get(rocksdb::ReadOptions(), RequestKey(job.request_id), &existing).ok()) {
    return GetCertificate(existing, "", false);
  }
  std::vector<StoredItem> items;
  items.reserve(job.hashes.size());
  for (const auto& h : job.hashes) {
    if (auto by = store_->SuppressedBy(h)) {
      if (!job.order_id.empty()) continue;  // shredded meanwhile by another order
      return absl::FailedPreconditionError(StrCat(ContentDigest{h, 0}.HashString(), " was already shredded (", *by, ")"));
    }
    auto item = store_->Lookup(h);
    if (!item.ok()) {
      if (absl::IsNotFound(item.status()) && !job.order_id.empty()) continue;
      return item.status();
    }
    items.push_back(std::move(*item));
  }
  if (items.empty()) return absl::FailedPreconditionError("nothing left to shred");

  const std::string cert_id = NewCertificateId();
  const std::string suppressed_by =
      job.order_id.empty() ? StrCat("certificate ", cert_id) : StrCat("order ", job.order_id, ", certificate ", cert_id);
  json pending;
  pending["requestId"] = job.request_id;
  pending["reason"] = job.reason;
  pending["requested"] = Rfc3339(requested);
  pending["vault"] = store_->key_tree().vault().BackendName();
  pending["destroyedEpoch"] = store_->key_tree().epoch();
  pending["installedEpoch"] = store_->key_tree().epoch() + 1;
  if (!job.order_public.is_null()) {
    uint8_t order_salt[32];
    randombytes_buf(order_salt, sizeof order_salt);
    pending["order"] = json::parse(job.order_public.dump());
    pending["orderPrivate"] = job.order_private;
    pending["orderSalt"] = HexEncode(order_salt);
  }
  pending["derivedModels"] = json::parse(job.derived_models.dump());
  pending["retained"] = json::parse(job.retained.dump());
  json entries = json::array();
  std::vector<uint64_t> slots;
  rocksdb::WriteBatch batch;
  for (const auto& item : items) {
    uint8_t salt[32];
    randombytes_buf(salt, sizeof salt);
    entries.push_back({{"kind", std::string(KindName(item.info.metadata.kind))},
                       {"digest", item.info.digest.HashString()},
                       {"size", item.info.digest.size},
                       {"salt", HexEncode(salt)}});
    slots.push_back(item.slot);
    store_->AddShredOps(item, suppressed_by, &batch);
    if (catalog_ != nullptr) catalog_->AddEdgeDeletions(item.item_key, &batch);
  }
  pending["items"] = std::move(entries);
  batch.Put(PendingKey(cert_id), store_->SealSystem(pending.dump(), PendingAd(cert_id)));
  batch.Put(RequestKey(job.request_id), cert_id);
  const absl::Time epoch_start = absl::Now();
  auto epoch = store_->key_tree().Shred(slots, &batch);
  if (!epoch.ok()) return epoch.status();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - epoch_start);
  store_->NoteItemsShredded(items.size());
  Metrics().shred_epoch_seconds.Observe(seconds);
  LogInfo("shred epoch", {{"certificate", cert_id},
                          {"order", job.order_id},
                          {"destroyed_epoch", epoch->destroyed_epoch},
                          {"installed_epoch", epoch->installed_epoch},
                          {"items", items.size()},
                          {"seconds", seconds}});
  for (const auto& item : items) store_->DropBlob(item);
  return Certify(cert_id);
}

absl::StatusOr<CertificateBundle> Shredder::Certify(const std::string& cert_id) {
  rocksdb::DB* db = store_->db();
  std::string sealed;
  if (auto s = FromRocks(db->Get(rocksdb::ReadOptions(), PendingKey(cert_id), &sealed), "reading a pending certification");
      !s.ok()) {
    return s;
  }
  auto plain = store_->OpenSystem(sealed, PendingAd(cert_id));
  if (!plain.ok()) return plain.status();
  json pending;
  try {
    pending = json::parse(*plain);
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat("pending certification is unreadable: ", e.what()));
  }
  // No certificate unless the old root is gone: every root the vault still
  // holds must be the current one.
  Vault& vault = store_->key_tree().vault();
  uint64_t current = store_->key_tree().epoch();
  auto roots = vault.ListRoots();
  if (!roots.ok()) return roots.status();
  for (uint64_t r : *roots) {
    if (r == current) continue;
    if (r > current) continue;  // an epoch being prepared by nobody: Recover() handles it
    if (auto s = vault.DestroyRoot(r); !s.ok()) return s;
  }
  if (current < pending["installedEpoch"].get<uint64_t>()) {
    return absl::InternalError("pending certification refers to an epoch that was never committed");
  }
  const absl::Time destroyed = absl::Now();

  auto commitment = CommitmentFrom(pending["items"]);
  if (!commitment.ok()) return commitment.status();
  ordered_json pred;
  pred["certificateId"] = cert_id;
  pred["request"] = {{"id", pending["requestId"]}, {"reason", pending["reason"]}};
  std::string order_salt;
  if (pending.contains("order")) {
    // Public order fields, plus a salted commitment to the private ones
    // (requester, selectors), which only the manifest reveals.
    pred["order"] = ordered_json::parse(pending["order"].dump());
    order_salt = pending.value("orderSalt", "");
    auto salt = HexDecode(order_salt);
    if (!salt || salt->size() != 32) return absl::DataLossError("pending certification holds a malformed order salt");
    pred["order"]["privateCommitment"] =
        HexEncode(Sha256Hasher::Of(*salt + pending["orderPrivate"].get<std::string>()));
  }
  pred["method"] = {{"technique", "cryptographic-erase"},
                    {"standard", "NIST SP 800-88 Rev. 1"},
                    {"sanitization", "purge"}};
  pred["destruction"] = {{"vaultBackend", pending["vault"]},
                         {"rootEpochDestroyed", pending["destroyedEpoch"]},
                         {"rootEpochInstalled", pending["installedEpoch"]}};
  pred["times"] = {{"requested", pending["requested"]},
                   {"destroyed", Rfc3339(destroyed)},
                   {"issued", Rfc3339(absl::Now())}};
  pred["items"] = commitment->ItemsPredicate();
  pred["derivedModels"] = ordered_json::parse(pending.value("derivedModels", json::array()).dump());
  pred["retainedUnderHold"] = ordered_json::parse(pending.value("retained", json::array()).dump());
  pred["shredd"] = {{"version", SHREDD_VERSION}};
  auto pub = vault.SigningPublicKey();
  if (!pub.ok()) return pub.status();
  CertificateBundle bundle;
  bundle.certificate_id = cert_id;
  bundle.manifest = commitment->ManifestJson(cert_id);
  if (pending.contains("order")) {
    ordered_json m = ordered_json::parse(bundle.manifest);
    m["order"] = {{"private", pending["orderPrivate"]}, {"salt", order_salt}};
    bundle.manifest = m.dump();
  }
  // Signs the certificate for log position `index` (if there is a log).
  auto sign = [&](std::optional<uint64_t> index) -> absl::StatusOr<std::string> {
    if (index) pred["log"] = {{"origin", log_->origin()}, {"index", *index}};
    auto statement = verify::StatementJson(pred);
    if (!statement.ok()) return statement.status();
    auto sig = vault.Sign(verify::PreAuthEncoding(verify::kCertificatePayloadType, *statement));
    if (!sig.ok()) return sig.status();
    verify::Envelope env;
    env.payload_type = std::string(verify::kCertificatePayloadType);
    env.payload = *statement;
    env.signatures.push_back(
        {verify::KeyId(*pub), std::string(reinterpret_cast<const char*>(sig->data()), sig->size())});
    return verify::SerializeEnvelope(env);
  };
  rocksdb::WriteBatch batch;
  batch.Put(ManifestKey(cert_id), store_->SealSystem(bundle.manifest, ManifestAd(cert_id)));
  batch.Delete(PendingKey(cert_id));
  if (log_ == nullptr) {
    auto env = sign(std::nullopt);
    if (!env.ok()) return env.status();
    bundle.envelope = std::move(*env);
    batch.Put(CertKey(cert_id), bundle.envelope);
    if (auto s = SyncWrite(db, &batch); !s.ok()) return s;
    return bundle;
  }
  auto appended = log_->Append(&batch, [&](uint64_t index) -> absl::StatusOr<std::vector<std::string>> {
    auto env = sign(index);
    if (!env.ok()) return env.status();
    bundle.envelope = *env;
    batch.Put(CertKey(cert_id), bundle.envelope);
    return std::vector<std::string>{std::move(*env)};
  });
  if (!appended.ok()) return appended.status();
  // A checkpoint covers the certificate before anyone sees it.
  auto proof = TlogProofFor(bundle.envelope);
  if (!proof.ok()) return proof.status();
  bundle.tlog_proof = std::move(*proof);
  return bundle;
}

absl::StatusOr<CertificateBundle> Shredder::Load(const std::string& cert_id, bool include_receipts) {
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
  if (auto s = FromRocks(db->Get(rocksdb::ReadOptions(), ManifestKey(cert_id), &sealed), "reading a manifest"); !s.ok()) {
    return s;
  }
  auto m = store_->OpenSystem(sealed, ManifestAd(cert_id));
  if (!m.ok()) return m.status();
  b.manifest = std::move(*m);
  if (log_ != nullptr) {
    auto proof = TlogProofFor(b.envelope);
    if (!proof.ok()) return proof.status();
    b.tlog_proof = std::move(*proof);
  }
  if (include_receipts) {
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

absl::StatusOr<CertificateBundle> Shredder::GetCertificate(std::string_view certificate_id,
                                                           std::string_view request_id, bool include_receipts) {
  std::string id(certificate_id);
  if (id.empty()) {
    if (request_id.empty()) return absl::InvalidArgumentError("give a certificate id or a request id");
    rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), RequestKey(request_id), &id);
    if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no certificate for request ", request_id));
    if (!rs.ok()) return FromRocks(rs, "reading a request record");
  }
  if (id.size() > 64) return absl::InvalidArgumentError("malformed certificate id");
  return Load(id, include_receipts);
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
