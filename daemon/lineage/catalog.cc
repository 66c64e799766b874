#include "daemon/lineage/catalog.h"

#include <sodium.h>

#include <algorithm>
#include <deque>
#include <set>

#include "absl/time/clock.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "daemon/storage/space_guard.h"
#include "formats/commitment.h"
#include "formats/encoding.h"

namespace shredd {
namespace {

using nlohmann::json;

std::string Bytes(const ItemKey& k) { return std::string(reinterpret_cast<const char*>(k.data()), k.size()); }
std::string DatasetRecordKey(const ItemKey& k) { return ItemStore::DatasetRecordKey(k); }
std::string DatasetAd(const ItemKey& k) { return ItemStore::DatasetAd(k); }
std::string RefBytes(const ParentRef& p) { return std::string(1, p.type) + Bytes(p.key); }
std::string ForwardKey(const ItemKey& child, const ParentRef& p) {
  return StrCat(keyspace::kEdgeForward, Bytes(child), RefBytes(p));
}
std::string ReverseKey(const ParentRef& p, const ItemKey& child) {
  return StrCat(keyspace::kEdgeReverse, RefBytes(p), Bytes(child));
}
std::string HoldKey(std::string_view id) { return StrCat(keyspace::kHold, id); }
std::string HoldAd(std::string_view id) { return StrCat("shredd/hold/v1", id); }
std::string HoldLookupKey(const ParentRef& t, std::string_view id) {
  return StrCat(keyspace::kHoldLookup, RefBytes(t), id);
}

// The first key under `prefix`, if any, by one seek bounded to the prefix:
// a seek past its last key would walk on over whatever tombstones follow
// (the item records a large order deleted).
absl::StatusOr<std::optional<std::string>> FirstKeyUnder(rocksdb::DB* db, const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  it->Seek(prefix);
  if (it->Valid() && it->key().starts_with(prefix)) return std::optional<std::string>(it->key().ToString());
  if (!it->status().ok()) return FromRocks(it->status(), "reading the catalog");
  return std::optional<std::string>();
}
std::string LiftKey(std::string_view id) { return StrCat(keyspace::kLift, id); }
// A removed hold's sealed record, kept: "U" "h" id (suppression lifts'
// ids begin "lift-").
std::string RemovedHoldKey(std::string_view id) { return StrCat(keyspace::kLift, "h", id); }

// The public trace of a hold placed or removed: its commitment only.
std::string HoldEntry(std::string_view type, std::string_view id, std::string_view salt_hex) {
  return json{{"type", type}, {"hold", verify::HoldCommitment(id, salt_hex)}, {"time", FormatRfc3339(absl::Now())}}
      .dump();
}

std::string EdgeValue(EdgeType type, std::string_view relation) {
  return json{{"t", static_cast<int>(type)}, {"r", relation}}.dump();
}

bool DecodeEdge(std::string_view value, Edge* e) {
  json j = json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  int t = j.value("t", 0);
  if (t != 1 && t != 2) return false;
  e->type = static_cast<EdgeType>(t);
  e->relation = j.value("r", "");
  return true;
}

std::string NewId(std::string_view prefix) { return StrCat(prefix, RandomHex(8)); }

}  // namespace

std::string_view EdgeTypeName(EdgeType t) { return t == EdgeType::kTrainedOn ? "trained-on" : "derived-from"; }

ItemKey Catalog::DatasetKey(std::string_view name) const { return store_->DatasetKeyOf(name); }

bool Catalog::DatasetExists(std::string_view name) { return store_->DatasetExists(name); }

std::optional<std::string> Catalog::DatasetName(const ItemKey& key) {
  std::string sealed;
  if (!store_->db()->Get(rocksdb::ReadOptions(), DatasetRecordKey(key), &sealed).ok()) return std::nullopt;
  auto plain = store_->OpenSystem(sealed, DatasetAd(key));
  if (!plain.ok()) return std::nullopt;
  json j = json::parse(*plain, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j.value("name", "");
}

absl::Status Catalog::EnsureDatasets(const std::vector<std::string>& names) {
  for (const auto& n : names) {
    ItemMetadata probe;
    probe.datasets = {n};
    if (auto s = probe.Validate(); !s.ok()) return s;
  }
  rocksdb::WriteBatch batch;
  return store_
      ->Commit(&batch,
               [&](uint64_t) -> absl::StatusOr<std::vector<std::string>> {
                 std::vector<std::string> entries;
                 store_->AddNewDatasets(names, &batch, &entries);
                 return entries;
               })
      .status();
}

absl::StatusOr<DatasetInfo> Catalog::RegisterDataset(std::string_view name, const std::vector<Sha256>& digests) {
  ItemMetadata probe;
  probe.datasets = {std::string(name)};
  if (auto s = probe.Validate(); !s.ok()) return s;
  std::unique_lock lock(mu_);
  // Inside the destruction gate for the whole registration: no shred can
  // come between the checks and the merges (a digest shredded meanwhile
  // used to leave the ones before it registered).
  auto gate = store_->PassDestructionGate();
  if (!gate.ok()) return gate.status();
  // Validate everything first: nothing changes if any digest is unusable.
  for (const auto& h : digests) {
    if (store_->Contains(h)) continue;
    if (auto by = store_->SuppressedBy(h)) {
      return absl::FailedPreconditionError(StrCat(ContentDigest{h, 0}.HashString(), " was shredded (", *by, ")"));
    }
    return absl::NotFoundError(StrCat(ContentDigest{h, 0}.HashString(), " is not stored; nothing was registered"));
  }
  if (digests.empty()) {  // an empty dataset; otherwise the first item's write registers it
    if (auto s = EnsureDatasets({std::string(name)}); !s.ok()) return s;
  }
  ItemMetadata add;
  add.datasets = {std::string(name)};
  for (const auto& h : digests) {
    auto info = store_->AddMetadata(h, add, {}, &*gate);
    if (!info.ok()) return info.status();
  }
  DatasetInfo out;
  out.name = std::string(name);
  out.item_count = static_cast<int64_t>(store_->CountIndexed(keyspace::kIndexDataset, name));
  return out;
}

absl::StatusOr<std::vector<DatasetInfo>> Catalog::ListDatasets() {
  std::vector<DatasetInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kDataset); it->Valid() && it->key().starts_with(keyspace::kDataset); it->Next()) {
    if (it->key().size() != 33) continue;
    ItemKey k;
    std::memcpy(k.data(), it->key().data() + 1, 32);
    auto plain = store_->OpenSystem(it->value().ToStringView(), DatasetAd(k));
    if (!plain.ok()) return absl::DataLossError("a dataset record does not authenticate");
    json j = json::parse(*plain, nullptr, false);
    if (j.is_discarded()) return absl::DataLossError("a dataset record is unreadable");
    DatasetInfo d;
    d.name = j.value("name", "");
    d.created_unix_nanos = j.value("created", int64_t{0});
    out.push_back(std::move(d));
  }
  it.reset();
  for (auto& d : out) d.item_count = static_cast<int64_t>(store_->CountIndexed(keyspace::kIndexDataset, d.name));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

namespace {

// Where the deletion of a shredded member is certified: the certificate id
// and, from its envelope, its log index.
json DeletionOf(ItemStore* store, const std::string& suppressed_by) {
  // "certificate <id>" or "order <o>, certificate <id>"
  auto pos = suppressed_by.rfind("certificate ");
  if (pos == std::string::npos) return nullptr;
  std::string cert_id = suppressed_by.substr(pos + 12);
  json d{{"certificateId", cert_id}};
  std::string env;
  if (store->db()->Get(rocksdb::ReadOptions(), StrCat(keyspace::kCertificate, cert_id), &env).ok()) {
    json e = json::parse(env, nullptr, false);
    if (!e.is_discarded() && e.contains("payload")) {
      auto payload = verify::Base64Decode(e["payload"].get<std::string>());
      json st = payload.ok() ? json::parse(*payload, nullptr, false) : json();
      if (!st.is_discarded() && st.contains("predicate") && st["predicate"].contains("log")) {
        d["logIndex"] = st["predicate"]["log"]["index"];
      }
    }
  }
  return d;
}

}  // namespace

absl::StatusOr<std::string> Catalog::DatasetManifest(std::string_view name,
                                                     const std::function<absl::Status(uint64_t members)>& reserve) {
  if (!DatasetExists(name)) return absl::NotFoundError(StrCat("unknown dataset ", QuoteForError(name)));
  const uint64_t members = store_->ForEachDatasetMemberEver(name);
  if (members > kWholeManifestMembers) {
    return absl::FailedPreconditionError(StrCat("dataset ", QuoteForError(name), " has had ", members,
                                                " members; its manifest is served in one reply for up to ",
                                                kWholeManifestMembers, ": use StreamDatasetManifest"));
  }
  if (reserve) {
    if (auto s = reserve(members); !s.ok()) return s;
  }
  std::string out;
  auto s = WriteDatasetManifest(name, 1 << 20, [&](std::string_view piece) {
    out.append(piece);
    return true;
  });
  if (!s.ok()) return s;
  return out;
}

// The document as json::dump() writes it (object members in key order):
// {"dataset":..,"datasetSalt":..,"members":[..],"type":"shredd-dataset-manifest-v1"}.
absl::Status Catalog::WriteDatasetManifest(std::string_view name, size_t piece,
                                           const std::function<bool(std::string_view)>& sink) {
  if (!DatasetExists(name)) return absl::NotFoundError(StrCat("unknown dataset ", QuoteForError(name)));
  std::string buf = StrCat("{\"dataset\":", json(std::string(name)).dump(),
                           ",\"datasetSalt\":", json(store_->DatasetSaltHex(name)).dump(), ",\"members\":[");
  absl::Status status;
  bool first = true, stopped = false;
  store_->ForEachDatasetMemberEver(name, [&](const ItemKey& key, uint64_t member_index) {
    auto custody = store_->CustodyAt(key, member_index);
    if (!custody) {
      status = absl::DataLossError("a dataset member has no custody record");
      return false;
    }
    json m{{"digest", custody->digest.HashString()},
           {"size", custody->digest.size},
           {"kind", std::string(KindName(custody->kind))},
           {"custodySalt", custody->salt_hex},
           {"custodyIndex", custody->index},
           {"memberIndex", member_index},
           {"deletion", nullptr}};
    if (auto by = store_->ShreddedBy(key, *custody)) m["deletion"] = DeletionOf(store_, *by);
    if (!first) buf.push_back(',');
    first = false;
    buf += m.dump();
    if (buf.size() >= piece) {
      stopped = !sink(buf);
      buf.clear();
    }
    return !stopped;
  });
  if (!status.ok()) return status;
  if (stopped) return absl::CancelledError("the manifest's reader went away");
  buf += "],\"type\":\"shredd-dataset-manifest-v1\"}";
  if (!sink(buf)) return absl::CancelledError("the manifest's reader went away");
  return absl::OkStatus();
}

std::vector<Edge> Catalog::ParentsOf(const ItemKey& child) {
  std::vector<Edge> out;
  std::string prefix = StrCat(keyspace::kEdgeForward, Bytes(child));
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view rest = it->key().ToStringView().substr(prefix.size());
    if (rest.size() != 33) continue;
    Edge e;
    e.child = child;
    e.parent.type = rest[0];
    std::memcpy(e.parent.key.data(), rest.data() + 1, 32);
    if (DecodeEdge(it->value().ToStringView(), &e)) out.push_back(std::move(e));
  }
  return out;
}

std::vector<Edge> Catalog::ChildrenOf(const ParentRef& parent) {
  std::vector<Edge> out;
  std::string prefix = StrCat(keyspace::kEdgeReverse, RefBytes(parent));
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view rest = it->key().ToStringView().substr(prefix.size());
    if (rest.size() != 32) continue;
    Edge e;
    e.parent = parent;
    std::memcpy(e.child.data(), rest.data(), 32);
    if (DecodeEdge(it->value().ToStringView(), &e)) out.push_back(std::move(e));
  }
  return out;
}

void Catalog::AddEdgeDeletions(const ItemKey& child, rocksdb::WriteBatch* batch) {
  for (const Edge& e : ParentsOf(child)) {
    batch->Delete(ForwardKey(child, e.parent));
    batch->Delete(ReverseKey(e.parent, child));
  }
}

absl::StatusOr<Catalog::PreparedLineage> Catalog::PrepareLineage(const Sha256& model, ItemKind kind,
                                                                 const std::vector<LineageSpec>& edges) {
  PreparedLineage out;
  auto& records = out.records;
  json log_edges = json::array();
  if (edges.empty()) return out;
  const std::string model_name = ContentDigest{model, 0}.HashString();
  if (edges.size() > kMaxLineageEdges) {
    return absl::InvalidArgumentError(StrCat("lineage names ", edges.size(), " edges; at most ", kMaxLineageEdges,
                                             " are accepted in one upload or AddLineage call (they go into one log "
                                             "entry); nothing was stored"));
  }
  if (kind != ItemKind::kModel) {
    return absl::InvalidArgumentError(StrCat("lineage is only for items of kind model; ", model_name, " is a photo"));
  }
  if (auto by = store_->SuppressedBy(model)) {
    return absl::FailedPreconditionError(StrCat(model_name, " was shredded (", *by, ")"));
  }
  const ItemKey child = store_->ItemKeyFor(model);
  for (const auto& spec : edges) {
    ParentRef parent;
    if (auto s = CheckTextField("lineage relation", spec.relation, kMaxRelationBytes); !s.ok()) return s;
    if (!spec.dataset.empty()) {
      if (spec.type != EdgeType::kTrainedOn) {
        return absl::InvalidArgumentError(
            StrCat("a model can be derived from models only, not from dataset ", QuoteForError(spec.dataset)));
      }
      if (!DatasetExists(spec.dataset)) {
        return absl::NotFoundError(StrCat("unknown dataset ", QuoteForError(spec.dataset), "; nothing was stored"));
      }
      parent = {'d', DatasetKey(spec.dataset)};
      log_edges.push_back({{"type", EdgeTypeName(spec.type)},
                           {"relation", spec.relation},
                           {"dataset", store_->DatasetCommitment(spec.dataset)}});
    } else if (spec.digest) {
      const std::string name = ContentDigest{*spec.digest, 0}.HashString();
      if (auto by = store_->SuppressedBy(*spec.digest)) {
        return absl::FailedPreconditionError(
            StrCat("lineage to ", name, " is refused: it was shredded (", *by, "); nothing was stored"));
      }
      if (*spec.digest == model) {
        return absl::FailedPreconditionError(StrCat("lineage cycle: ", model_name, " cannot come from itself"));
      }
      auto p = store_->Lookup(*spec.digest);
      if (!p.ok()) {
        if (absl::IsNotFound(p.status())) {
          return absl::NotFoundError(StrCat("lineage to unknown item ", name, "; nothing was stored"));
        }
        return p.status();
      }
      if (spec.type == EdgeType::kDerivedFrom && p->info.metadata.kind != ItemKind::kModel) {
        return absl::FailedPreconditionError(
            StrCat("derived-from must name a model; ", name, " is a photo (use trained-on)"));
      }
      parent = {'i', p->item_key};
      json le{{"type", EdgeTypeName(spec.type)}, {"relation", spec.relation}};
      if (p->info.metadata.kind == ItemKind::kModel) {
        le["model"] = name;
      } else if (auto c = store_->LatestCustody(p->item_key)) {
        le["item"] = verify::CustodyCommitment(name, c->salt_hex);  // a photo: committed, never named
      }
      log_edges.push_back(std::move(le));
      // Cycle: the new child must not be an ancestor of the parent.
      std::set<ItemKey> seen;
      std::deque<ItemKey> queue{parent.key};
      while (!queue.empty()) {
        ItemKey k = queue.front();
        queue.pop_front();
        if (k == child) {
          return absl::FailedPreconditionError(
              StrCat("lineage cycle: ", name, " already comes from ", model_name, "; nothing was stored"));
        }
        if (!seen.insert(k).second) continue;
        for (const Edge& e : ParentsOf(k)) {
          if (e.parent.type == 'i') queue.push_back(e.parent.key);
        }
      }
    } else {
      return absl::InvalidArgumentError("a lineage edge needs a dataset or a digest");
    }
    if (parent.type == 'i') out.parent_items.push_back(parent.key);
    std::string v = EdgeValue(spec.type, spec.relation);
    records.emplace_back(ForwardKey(child, parent), v);
    records.emplace_back(ReverseKey(parent, child), v);
  }
  out.edges_json = log_edges.dump();
  return out;
}

absl::StatusOr<LineageView> Catalog::Lineage(const Sha256& hash) {
  auto item = store_->Lookup(hash);
  if (!item.ok()) return item.status();
  LineageView view{item->info.digest, item->info.metadata.kind, {}, {}};
  auto link = [&](const Edge& e, const ParentRef& end, std::string via) {
    LineageLink l;
    l.type = e.type;
    l.relation = e.relation;
    l.via_dataset = std::move(via);
    if (end.type == 'd') {
      l.dataset = DatasetName(end.key).value_or("?");
    } else if (auto other = store_->LookupByKey(end.key); other.ok()) {
      l.digest = other->info.digest;
      l.kind = other->info.metadata.kind;
    } else {
      l.shredded = true;
    }
    return l;
  };
  for (const Edge& e : ParentsOf(item->item_key)) view.comes_from.push_back(link(e, e.parent, ""));
  auto feeds = [&](const ParentRef& ref, const std::string& via) {
    for (const Edge& e : ChildrenOf(ref)) view.feeds.push_back(link(e, {'i', e.child}, via));
  };
  feeds({'i', item->item_key}, "");
  for (const auto& d : item->info.metadata.datasets) feeds({'d', DatasetKey(d)}, d);
  return view;
}

absl::Status Catalog::AddLineage(const Sha256& model, const std::vector<LineageSpec>& edges) {
  std::lock_guard lock(mu_);
  auto item = store_->Lookup(model);
  if (!item.ok()) return item.status();
  auto prepared = PrepareLineage(model, item->info.metadata.kind, edges);
  if (!prepared.ok()) return prepared.status();
  ItemMetadata kind_only;
  kind_only.kind = item->info.metadata.kind;
  // Committed under the locks a shred excludes, re-checking that neither
  // the model nor a parent was shredded since PrepareLineage looked.
  return store_
      ->MergeIntoExisting(item->info.digest, kind_only, prepared->records, prepared->edges_json, prepared->parent_items)
      .status();
}

absl::StatusOr<PutResult> Catalog::CommitUpload(Upload* upload, ItemKind kind, const std::vector<LineageSpec>& edges) {
  if (edges.empty()) return upload->Commit();
  std::lock_guard lock(mu_);
  auto prepared = PrepareLineage(upload->declared().hash, kind, edges);
  if (!prepared.ok()) return prepared.status();
  store_->SetUploadExtras(upload, std::move(prepared->records), std::move(prepared->edges_json),
                          std::move(prepared->parent_items));
  return upload->Commit();
}

absl::StatusOr<Hold> Catalog::AddHold(Hold hold) {
  // Holds are the brake on deletion: they work wherever deletion does, on
  // a disk that ingest filled up to the floor (space_guard.h).
  ErasureWrites erasure;
  auto stored = StoreHold(std::move(hold));
  if (!stored.ok()) return stored;
  if (auto s = WaitAcknowledgementReplicated(store_->db()); !s.ok()) return s;
  return stored;
}

absl::Status Catalog::RemoveHold(std::string_view id) {
  ErasureWrites erasure;  // as AddHold
  {
    // As StoreHold: waits for a destruction in progress, which planned with
    // this hold and cites it in its certificate (docs/ORDERS.md "Legal
    // holds"); while one is pending after a failure it is still to be
    // certified, citing the hold: refused, retry once it is certified.
    std::unique_lock no_destruction(holds_mu_);
    if (std::string pending = store_->destruction_gate().PendingCertificate(); !pending.empty()) {
      return PendingDestructionRefusal(pending, "legal holds");
    }
    if (auto s = DeleteHold(id); !s.ok()) return s;
  }
  return WaitAcknowledgementReplicated(store_->db());
}

absl::StatusOr<Hold> Catalog::StoreHold(Hold hold) {
  if (hold.reason.empty()) return absl::InvalidArgumentError("a legal hold needs a reason");
  if (auto s = CheckTextField("hold reason", hold.reason, kMaxReasonBytes); !s.ok()) return s;
  if (!hold.id.empty()) {
    if (auto s = CheckIdField("hold id", hold.id); !s.ok()) return s;
  }
  std::unique_lock no_destruction(holds_mu_);  // waits for a destruction in progress (HoldsStable)
  // A destruction left pending by a failure goes on with what it planned:
  // a hold placed now would not stop it (destruction_gate.h).
  if (std::string pending = store_->destruction_gate().PendingCertificate(); !pending.empty()) {
    return PendingDestructionRefusal(pending, "legal holds");
  }
  std::lock_guard lock(mu_);
  ParentRef target;
  if (hold.digest) {
    auto item = store_->Lookup(hold.digest->hash);
    if (!item.ok()) return item.status();
    target = {'i', item->item_key};
    hold.digest->size = item->info.digest.size;
  } else if (!hold.dataset.empty()) {
    if (!DatasetExists(hold.dataset)) {
      return absl::NotFoundError(StrCat("unknown dataset ", QuoteForError(hold.dataset)));
    }
    target = {'d', DatasetKey(hold.dataset)};
  } else {
    return absl::InvalidArgumentError("a legal hold needs a digest or a dataset");
  }
  if (hold.id.empty()) hold.id = NewId("hold-");
  std::string existing;
  if (store_->db()->Get(rocksdb::ReadOptions(), HoldKey(hold.id), &existing).ok()) {
    // The same hold again (a retry of an add that was not acknowledged):
    // the hold as it is; another under the same id: refused.
    auto held = LoadHold(hold.id);
    if (held.ok() && held->reason == hold.reason && held->dataset == hold.dataset &&
        (held->digest.has_value() == hold.digest.has_value()) &&
        (!hold.digest || held->digest->hash == hold.digest->hash)) {
      return held;
    }
    return absl::AlreadyExistsError(StrCat("hold ", hold.id, " already exists with another target or reason"));
  }
  hold.created_unix_nanos = absl::GetCurrentTimeNanos();
  const std::string salt = RandomHex(32);
  json j{{"id", hold.id},
         {"reason", hold.reason},
         {"created", hold.created_unix_nanos},
         {"type", std::string(1, target.type)},
         {"target", HexEncode(Bytes(target.key))},
         {"salt", salt}};
  if (hold.digest) j["digest"] = hold.digest->HashString(), j["size"] = hold.digest->size;
  if (!hold.dataset.empty()) j["dataset"] = hold.dataset;
  rocksdb::WriteBatch batch;
  batch.Put(HoldKey(hold.id), store_->SealSystem(j.dump(), HoldAd(hold.id)));
  batch.Put(HoldLookupKey(target, hold.id), "");
  auto committed = store_->Commit(&batch, [&](uint64_t) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{HoldEntry("hold-placed", hold.id, salt)};
  });
  if (!committed.ok()) return committed.status();
  return hold;
}

// A hold whose lookup key exists but whose record cannot be read: the target
// counts as held (nothing destroys it), and the caller hears why.
absl::Status UnreadableHold(std::string_view id, const absl::Status& s) {
  return absl::Status(absl::IsNotFound(s) ? absl::StatusCode::kDataLoss : s.code(),
                      StrCat("legal hold ", QuoteForError(id), " cannot be read (", s.message(),
                             "); what it may hold is not destroyed"));
}

absl::StatusOr<Hold> Catalog::LoadHold(std::string_view id) {
  std::string sealed;
  rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), HoldKey(id), &sealed);
  if (rs.IsNotFound()) return absl::NotFoundError(StrCat("no hold ", QuoteForError(id)));
  if (!rs.ok()) return FromRocks(rs, "reading a hold");
  auto plain = store_->OpenSystem(sealed, HoldAd(id));
  if (!plain.ok()) return absl::DataLossError("a hold record does not authenticate");
  json j = json::parse(*plain, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError("a hold record is unreadable");
  Hold h;
  h.id = j.value("id", "");
  h.reason = j.value("reason", "");
  h.created_unix_nanos = j.value("created", int64_t{0});
  h.dataset = j.value("dataset", "");
  if (j.contains("digest")) {
    auto d = ParseDigestHash(j["digest"].get<std::string>());
    if (d.ok()) h.digest = ContentDigest{*d, j.value("size", uint64_t{0})};
  }
  return h;
}

// The hold goes, with a trace: its record is kept sealed under
// RemovedHoldKey with the time of removal, and a "hold-removed" entry
// (its commitment, as "hold-placed" logged it) goes into the log. A hold
// removed already: OK, nothing written (RemoveHold is idempotent).
absl::Status Catalog::DeleteHold(std::string_view id) {
  std::lock_guard lock(mu_);
  auto h = LoadHold(id);
  if (absl::IsNotFound(h.status())) {
    // Removed already (a retry of a removal that was not acknowledged, or
    // another client's): the hold is gone, as asked, and nothing is written
    // or logged again. NOT_FOUND only for an id never placed.
    std::string removed;
    rocksdb::Status rs = store_->db()->Get(rocksdb::ReadOptions(), RemovedHoldKey(id), &removed);
    if (rs.ok()) return absl::OkStatus();
    if (!rs.IsNotFound()) return FromRocks(rs, "reading a removed hold");
    return absl::NotFoundError(StrCat("no hold ", QuoteForError(id), " was ever placed"));
  }
  if (!h.ok()) return h.status();
  ParentRef target;
  if (h->digest) {
    target = {'i', store_->ItemKeyFor(h->digest->hash)};
  } else {
    target = {'d', DatasetKey(h->dataset)};
  }
  std::string sealed;
  if (auto s = FromRocks(store_->db()->Get(rocksdb::ReadOptions(), HoldKey(id), &sealed), "reading a hold"); !s.ok()) {
    return s;
  }
  auto plain = store_->OpenSystem(sealed, HoldAd(id));  // LoadHold opened it already
  if (!plain.ok()) return plain.status();
  json record = json::parse(*plain, nullptr, false);
  // Holds placed before they were logged have no salt: a fresh one (their
  // placement has no entry to match).
  const std::string salt = record.is_object() && record.contains("salt") ? record.value("salt", "") : RandomHex(32);
  record["salt"] = salt;
  record["removed"] = absl::GetCurrentTimeNanos();
  rocksdb::WriteBatch batch;
  batch.Delete(HoldKey(id));
  batch.Delete(HoldLookupKey(target, id));
  batch.Put(RemovedHoldKey(id), store_->SealSystem(record.dump(), HoldAd(id)));
  auto committed = store_->Commit(&batch, [&](uint64_t) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{HoldEntry("hold-removed", id, salt)};
  });
  return committed.status();
}

std::set<ParentRef> Catalog::ParentsWithChildren() {
  std::set<ParentRef> out;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kEdgeReverse); it->Valid() && it->key().starts_with(keyspace::kEdgeReverse); it->Next()) {
    std::string_view k = it->key().ToStringView();
    if (k.size() != 1 + 1 + 32 + 32) continue;
    ParentRef p;
    p.type = k[1];
    std::memcpy(p.key.data(), k.data() + 2, 32);
    out.insert(p);
    // Skip the parent's other children.
    std::string next = std::string(k.substr(0, 34)) + std::string(32, '\xff');
    it->Seek(next);
    if (!it->Valid()) break;
    if (it->key().ToStringView() == next) continue;
    it->Prev();
  }
  return out;
}

absl::StatusOr<std::map<ParentRef, Hold>> Catalog::HoldsByTarget() {
  std::map<ParentRef, std::string> ids;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kHoldLookup); it->Valid() && it->key().starts_with(keyspace::kHoldLookup); it->Next()) {
    std::string_view k = it->key().ToStringView();
    if (k.size() <= 34) continue;
    ParentRef p;
    p.type = k[1];
    std::memcpy(p.key.data(), k.data() + 2, 32);
    ids.emplace(p, std::string(k.substr(34)));  // keys ascend: the first id wins
  }
  it.reset();
  std::map<ParentRef, Hold> out;
  for (const auto& [ref, id] : ids) {
    auto h = LoadHold(id);
    if (!h.ok()) return UnreadableHold(id, h.status());
    out.emplace(ref, std::move(*h));
  }
  return out;
}

absl::StatusOr<std::vector<Hold>> Catalog::ListHolds() {
  std::vector<std::string> ids;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kHold); it->Valid() && it->key().starts_with(keyspace::kHold); it->Next()) {
    ids.push_back(it->key().ToString().substr(1));
  }
  it.reset();
  std::vector<Hold> out;
  for (const auto& id : ids) {
    auto h = LoadHold(id);
    if (!h.ok()) return h.status();
    out.push_back(std::move(*h));
  }
  return out;
}

absl::StatusOr<std::optional<Hold>> Catalog::HoldFor(const StoredItem& item) {
  std::vector<ParentRef> targets{{'i', item.item_key}};
  for (const auto& d : item.info.metadata.datasets) targets.push_back({'d', DatasetKey(d)});
  for (const auto& t : targets) {
    auto h = HoldOn(t);
    if (!h.ok() || *h) return h;
  }
  return std::optional<Hold>();
}

absl::StatusOr<std::optional<Hold>> Catalog::HoldOn(const ParentRef& target) {
  const std::string prefix = StrCat(keyspace::kHoldLookup, RefBytes(target));
  auto key = FirstKeyUnder(store_->db(), prefix);
  if (!key.ok()) return key.status();
  if (!*key) return std::optional<Hold>();
  const std::string id = (*key)->substr(prefix.size());
  auto h = LoadHold(id);
  if (!h.ok()) return UnreadableHold(id, h.status());
  return std::optional<Hold>(*std::move(h));
}

absl::StatusOr<bool> Catalog::HasChildren(const ParentRef& parent) {
  auto key = FirstKeyUnder(store_->db(), StrCat(keyspace::kEdgeReverse, RefBytes(parent)));
  if (!key.ok()) return key.status();
  return key->has_value();
}

absl::StatusOr<std::string> Catalog::LiftSuppression(const Sha256& hash, std::string_view reason) {
  if (reason.empty()) return absl::InvalidArgumentError("lifting a suppression needs a reason");
  if (auto s = CheckTextField("reason", reason, kMaxReasonBytes); !s.ok()) return s;
  std::string id = NewId("lift-");
  json j{{"digest", ContentDigest{hash, 0}.HashString()}, {"reason", reason}, {"time", absl::GetCurrentTimeNanos()}};
  std::string sealed = store_->SealSystem(j.dump(), StrCat("shredd/lift/v1", id));
  auto custody = store_->LatestCustody(store_->ItemKeyFor(hash));
  std::string entry =
      json{{"type", "suppression-lifted"},
           {"item", custody ? verify::CustodyCommitment(custody->digest.HashString(), custody->salt_hex) : ""},
           {"lift", id},
           {"time", FormatRfc3339(absl::Now())}}
          .dump();
  return store_->RemoveSuppression(hash, {{LiftKey(id), sealed}}, entry);
}

}  // namespace shredd
