#include "daemon/keys/key_tree.h"

#include <algorithm>
#include <map>
#include <set>

#include "daemon/base/coding.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"

namespace shredd {
namespace {

uint64_t NodeId(int level, uint64_t index) { return (uint64_t{static_cast<uint8_t>(level)} << 56) | index; }

// Index of the level-`level` node above `slot`.
uint64_t Ancestor(uint64_t slot, int level) {
  uint64_t v = slot / KeyTree::kFanout;
  for (int l = 0; l < level; ++l) v /= KeyTree::kFanout;
  return v;
}

}  // namespace

std::string NodeRecordKey(int level, uint64_t index) {
  std::string k(keyspace::kNode);
  k.push_back(static_cast<char>(level));
  k += BigEndian64(index);
  return k;
}
std::string DekRecordKey(uint64_t slot) { return StrCat(keyspace::kDek, BigEndian64(slot)); }
std::string NodeAssociatedData(int level, uint64_t index) {
  std::string ad = "shredd/node/v1";
  ad.push_back(static_cast<char>(level));
  ad += BigEndian64(index);
  return ad;
}
std::string DekAssociatedData(uint64_t slot) { return "shredd/dek/v1" + BigEndian64(slot); }

absl::StatusOr<std::unique_ptr<KeyTree>> KeyTree::Open(rocksdb::DB* db, Vault* vault) {
  std::unique_ptr<KeyTree> tree(new KeyTree(db, vault));
  if (auto s = tree->Recover(); !s.ok()) return s;
  return tree;
}

absl::Status KeyTree::Recover() {
  std::string value;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), keyspace::kEpoch, &value);
  auto roots = vault_->ListRoots();
  if (!roots.ok()) return roots.status();
  if (rs.IsNotFound()) {
    if (!roots->empty()) {
      return absl::FailedPreconditionError(StrCat(
          "the data dir is new but ", vault_->Describe(), " already holds root keys (epochs ", roots->front(), "..",
          roots->back(), "): it belongs to another data dir. Use a fresh vault, or restore the matching data dir"));
    }
    if (auto s = vault_->CreateRoot(1); !s.ok()) return s;
    epoch_ = 1;
    // The system key, in slot 0, never shredded.
    SecretBytes system_key = SecretBytes::Random(kKeySize);
    rocksdb::WriteBatch batch;
    batch.Put(keyspace::kEpoch, BigEndian64(1));
    WriteLease lease = BeginWrite();
    auto pending = AddDek(lease, kSystemSlot, system_key, &batch);
    if (!pending.ok()) return pending.status();
    if (auto s = SyncWrite(db_, &batch); !s.ok()) return s;
    Committed(*pending);
    next_slot_ = 1;
    return absl::OkStatus();
  }
  if (!rs.ok()) return FromRocks(rs, "reading the key tree epoch");
  if (value.size() != 8) return absl::DataLossError("key tree epoch record is corrupt");
  uint64_t e = ReadBigEndian64(value);
  if (!std::binary_search(roots->begin(), roots->end(), e)) {
    return absl::FailedPreconditionError(StrCat(
        "the data dir needs the root key of epoch ", e, " but ", vault_->Describe(), " does not hold it (it holds ",
        roots->empty() ? "none" : StrCat("epochs ", roots->front(), "..", roots->back()),
        "). The data dir is older than the vault (restored from a copy taken before a shred?) "
        "or belongs to another vault; its shredded and unshredded items alike are unreadable"));
  }
  // Roots other than the committed one are leftovers of an epoch interrupted
  // by a crash: older ones were replaced, newer ones never committed. An
  // older one the vault fails to destroy belongs to a destruction whose
  // certification is pending: the shredder keeps trying (and issues no
  // certificate until it is gone); the daemon serves meanwhile.
  for (uint64_t r : *roots) {
    if (r == e) continue;
    absl::Status s = absl::OkStatus();
    // An older root waits for the committed tree to be in the object store
    // (durability.h); at start-up replication has not begun, so with it on
    // the shredder's pending certification destroys such a root later.
    if (r < e) s = WaitStateReplicated(db_, StrCat("root ", r, " is kept"));
    if (s.ok()) s = vault_->DestroyRoot(r);
    if (!s.ok()) {
      if (r > e) return s;
      LogError("cannot destroy an old root key; its certificate stays pending",
               {{"epoch", r}, {"reason", StdView(s.message())}});
    }
  }
  epoch_ = e;
  // Next slot: one past the highest slot that holds a DEK.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(DekRecordKey(~uint64_t{0}));
  if (it->Valid() && it->key().starts_with(keyspace::kDek) && it->key().size() == keyspace::kDek.size() + 8) {
    next_slot_ = ReadBigEndian64(it->key().ToStringView().substr(1)) + 1;
  } else {
    next_slot_ = 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> KeyTree::AllocateSlot() {
  uint64_t s = next_slot_.fetch_add(1);
  if (s >= kCapacity) return absl::ResourceExhaustedError("key tree is full");
  return s;
}

absl::StatusOr<KeyView> KeyTree::NodeKeyLocked(int level, uint64_t index, bool create) {
  uint64_t id = NodeId(level, index);
  if (auto it = nodes_.find(id); it != nodes_.end()) return pool_.Get(it->second.key_slot);
  std::string wrapped;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), NodeRecordKey(level, index), &wrapped);
  bool top = level == kLevels - 1;
  if (rs.ok()) {
    absl::StatusOr<SecretBytes> key = absl::InternalError("unset");
    if (top) {
      key = vault_->UnwrapWithRoot(epoch_, wrapped, NodeAssociatedData(level, index));
    } else {
      auto parent = NodeKeyLocked(level + 1, index / kFanout, false);
      if (!parent.ok()) return parent.status();
      key = OpenSecret(*parent, wrapped, NodeAssociatedData(level, index));
    }
    if (!key.ok()) {
      if (absl::IsDataLoss(key.status())) {
        return absl::DataLossError(
            StrCat("key tree node ", level, "/", index, " does not authenticate: ", key.status().message()));
      }
      return key.status();
    }
    if (key->size() != kKeySize) return absl::DataLossError("key tree node has a key of wrong size");
    uint32_t slot = pool_.Add(*key);
    nodes_.emplace(id, Node{slot, true, {}});
    return pool_.Get(slot);
  }
  if (!rs.IsNotFound()) return FromRocks(rs, "reading a key tree node");
  if (!create) {
    return absl::NotFoundError(StrCat("key tree node ", level, "/", index, " does not exist"));
  }
  SecretBytes key = SecretBytes::Random(kKeySize);
  if (top) {
    auto w = vault_->WrapWithRoot(epoch_, key, NodeAssociatedData(level, index));
    if (!w.ok()) return w.status();
    wrapped = std::move(*w);
  } else {
    auto parent = NodeKeyLocked(level + 1, index / kFanout, true);
    if (!parent.ok()) return parent.status();
    wrapped = SealWithKey(*parent, key, NodeAssociatedData(level, index));
  }
  uint32_t slot = pool_.Add(key);
  nodes_.emplace(id, Node{slot, false, std::move(wrapped)});
  return pool_.Get(slot);
}

absl::StatusOr<KeyTree::PendingNodes> KeyTree::AddDek(const WriteLease& lease, uint64_t slot, KeyView dek,
                                                      rocksdb::WriteBatch* batch) {
  std::lock_guard lock(cache_mu_);
  auto bucket = NodeKeyLocked(0, Ancestor(slot, 0), true);
  if (!bucket.ok()) return bucket.status();
  batch->Put(DekRecordKey(slot), SealWithKey(*bucket, dek, DekAssociatedData(slot)));
  PendingNodes pending;
  for (int level = 0; level < kLevels; ++level) {
    uint64_t index = Ancestor(slot, level);
    auto it = nodes_.find(NodeId(level, index));
    if (it != nodes_.end() && !it->second.durable) {
      batch->Put(NodeRecordKey(level, index), it->second.wrapped);
      pending.node_ids.push_back(NodeId(level, index));
    }
  }
  return pending;
}

void KeyTree::Committed(const PendingNodes& pending) {
  if (pending.node_ids.empty()) return;
  std::lock_guard lock(cache_mu_);
  for (uint64_t id : pending.node_ids) {
    auto it = nodes_.find(id);
    if (it != nodes_.end()) {
      it->second.durable = true;
      std::string().swap(it->second.wrapped);
    }
  }
}

absl::StatusOr<SecretBytes> KeyTree::GetDek(uint64_t slot) {
  WriteLease lease(&epoch_mu_);
  return GetDekLocked(lease, slot);
}

absl::StatusOr<SecretBytes> KeyTree::GetDekLocked(const WriteLease& lease, uint64_t slot) {
  std::string wrapped;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), DekRecordKey(slot), &wrapped);
  if (rs.IsNotFound()) return absl::NotFoundError(StrCat("slot ", slot, " holds no key"));
  if (!rs.ok()) return FromRocks(rs, "reading a wrapped data key");
  SecretBytes bucket_key;
  {
    // Copy the bucket key out (a pooled slot: cheap) and unwrap outside the
    // cache lock, so readers on several threads do not queue on it.
    std::lock_guard lock(cache_mu_);
    auto bucket = NodeKeyLocked(0, Ancestor(slot, 0), false);
    if (!bucket.ok()) {
      if (absl::IsNotFound(bucket.status())) {
        return absl::DataLossError(StrCat("the bucket key above slot ", slot, " is missing"));
      }
      return bucket.status();
    }
    bucket_key = SecretBytes::CopyOf(*bucket);
  }
  auto dek = OpenSecret(bucket_key, wrapped, DekAssociatedData(slot));
  if (!dek.ok()) {
    return absl::DataLossError(StrCat("wrapped data key of slot ", slot, " does not authenticate (altered on disk)"));
  }
  return dek;
}

std::vector<absl::Status> KeyTree::GetDeks(std::span<const uint64_t> slots, std::span<uint8_t> out) {
  std::vector<absl::Status> status(slots.size());
  if (slots.empty()) return status;
  WriteLease lease(&epoch_mu_);
  // Sorted keys: MultiGet then walks each table's blocks in order.
  std::vector<size_t> order(slots.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return slots[a] < slots[b]; });
  std::vector<std::string> keys(slots.size());
  std::vector<rocksdb::Slice> key_slices(slots.size());
  for (size_t j = 0; j < order.size(); ++j) {
    keys[j] = DekRecordKey(slots[order[j]]);
    key_slices[j] = keys[j];
  }
  std::vector<rocksdb::PinnableSlice> values(slots.size());
  std::vector<rocksdb::Status> rs(slots.size());
  db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key_slices.size(), key_slices.data(), values.data(),
                rs.data(), /*sorted_input=*/true);
  SecretBytes bucket_key(kKeySize);
  uint64_t bucket = ~uint64_t{0};
  absl::Status bucket_status;
  for (size_t j = 0; j < order.size(); ++j) {
    const size_t i = order[j];
    const uint64_t slot = slots[i];
    if (rs[j].IsNotFound()) {
      status[i] = absl::NotFoundError(StrCat("slot ", slot, " holds no key"));
      continue;
    }
    if (!rs[j].ok()) {
      status[i] = FromRocks(rs[j], "reading a wrapped data key");
      continue;
    }
    if (Ancestor(slot, 0) != bucket) {
      bucket = Ancestor(slot, 0);
      std::lock_guard lock(cache_mu_);
      auto k = NodeKeyLocked(0, bucket, false);
      if (k.ok()) {
        bucket_status = absl::OkStatus();
        std::memcpy(bucket_key.data(), k->data(), kKeySize);
      } else if (absl::IsNotFound(k.status())) {
        bucket_status = absl::DataLossError(StrCat("the bucket key above slot ", slot, " is missing"));
      } else {
        bucket_status = k.status();
      }
    }
    if (!bucket_status.ok()) {
      status[i] = bucket_status;
      continue;
    }
    if (!OpenSecretInto(bucket_key, values[j].ToStringView(), DekAssociatedData(slot),
                        out.subspan(kKeySize * i, kKeySize))
             .ok()) {
      status[i] =
          absl::DataLossError(StrCat("wrapped data key of slot ", slot, " does not authenticate (altered on disk)"));
    }
  }
  return status;
}

void KeyTree::DropNonDurableLocked() {
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (!it->second.durable) {
      pool_.Release(it->second.key_slot);
      nodes_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t KeyTree::cached_node_keys() {
  std::lock_guard lock(cache_mu_);
  return nodes_.size();
}

KeyTree::EpochPlan KeyTree::PlanEpoch(std::span<const uint64_t> slots) {
  EpochPlan plan;
  plan.doomed.insert(slots.begin(), slots.end());
  for (uint64_t s : plan.doomed) {
    for (int l = 0; l < kLevels; ++l) plan.touched[l].insert(Ancestor(s, l));
  }
  for (int l = 0; l < kLevels; ++l) {
    for (uint64_t i : plan.touched[l]) plan.fresh.emplace(NodeId(l, i), SecretBytes::Random(kKeySize));
  }
  return plan;
}

absl::Status KeyTree::RekeyBucketsLocked(const EpochPlan& plan, rocksdb::Iterator* it, rocksdb::WriteBatch& batch,
                                         EpochResult* result) {
  size_t found = 0;
  // A large epoch (an order) empties whole buckets: each run of at least
  // kRangeDeleteBuckets consecutive emptied buckets goes with one range
  // deletion instead of a tombstone per DEK. Shorter runs (a one-item
  // shred) keep point deletions, so that frequent small shreds do not pile
  // up range tombstones for later reads to consult. The range covers only
  // slots that held a doomed DEK or none: no write adds one meanwhile (the
  // epoch holds every write lease).
  std::vector<std::string> run_deletes;  // point deletions of the current run
  uint64_t run_begin = 0, run_end = 0;   // buckets [run_begin, run_end)
  auto end_run = [&] {
    if (run_end - run_begin >= kRangeDeleteBuckets) {
      batch.DeleteRange(DekRecordKey(run_begin * kFanout), DekRecordKey(run_end * kFanout));
    } else {
      for (const auto& k : run_deletes) batch.Delete(k);
    }
    run_deletes.clear();
    run_begin = run_end = 0;
  };
  std::vector<std::string> doomed_here;
  for (uint64_t b : plan.touched[0]) {
    auto old_key = NodeKeyLocked(0, b, false);
    if (!old_key.ok()) return old_key.status();
    const SecretBytes& new_key = plan.fresh.at(NodeId(0, b));
    std::string end = DekRecordKey((b + 1) * kFanout);
    bool survivors = false;
    doomed_here.clear();
    for (it->Seek(DekRecordKey(b * kFanout)); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      uint64_t s = ReadBigEndian64(it->key().ToStringView().substr(1));
      if (plan.doomed.count(s)) {
        doomed_here.push_back(it->key().ToString());
        ++found;
        continue;
      }
      survivors = true;
      auto dek = OpenSecret(*old_key, it->value().ToStringView(), DekAssociatedData(s));
      if (!dek.ok()) {
        return absl::DataLossError(
            StrCat("wrapped data key of slot ", s, " does not authenticate; refusing to re-key its bucket"));
      }
      batch.Put(it->key(), SealWithKey(new_key, *dek, DekAssociatedData(s)));
      ++result->keys_rewrapped;
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scanning a bucket");
    if (survivors) {
      end_run();
      for (const auto& k : doomed_here) batch.Delete(k);
      continue;
    }
    if (run_end != b) {
      end_run();
      run_begin = b;
    }
    run_end = b + 1;
    for (auto& k : doomed_here) run_deletes.push_back(std::move(k));
  }
  end_run();
  if (found != plan.doomed.size()) {
    return absl::NotFoundError(
        StrCat(plan.doomed.size() - found, " of the ", plan.doomed.size(), " slots to shred hold no key"));
  }
  return absl::OkStatus();
}

absl::Status KeyTree::RekeyInnerNodesLocked(const EpochPlan& plan, rocksdb::Iterator* it, rocksdb::WriteBatch& batch,
                                            EpochResult* result) {
  for (int l = 1; l < kLevels; ++l) {
    for (uint64_t n : plan.touched[l]) {
      const SecretBytes& new_key = plan.fresh.at(NodeId(l, n));
      std::string end = NodeRecordKey(l - 1, (n + 1) * kFanout);
      std::vector<std::pair<uint64_t, std::string>> children;
      for (it->Seek(NodeRecordKey(l - 1, n * kFanout)); it->Valid() && it->key().compare(end) < 0; it->Next()) {
        children.emplace_back(ReadBigEndian64(it->key().ToStringView().substr(2)), it->key().ToString());
      }
      if (!it->status().ok()) return FromRocks(it->status(), "scanning key tree nodes");
      for (auto& [c, key] : children) {
        auto f = plan.fresh.find(NodeId(l - 1, c));
        if (f != plan.fresh.end()) {
          batch.Put(key, SealWithKey(new_key, f->second, NodeAssociatedData(l - 1, c)));
        } else {
          auto child = NodeKeyLocked(l - 1, c, false);
          if (!child.ok()) return child.status();
          batch.Put(key, SealWithKey(new_key, *child, NodeAssociatedData(l - 1, c)));
          ++result->keys_rewrapped;
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status KeyTree::CollectTopsLocked(const EpochPlan& plan, rocksdb::Iterator* it,
                                        std::vector<std::pair<uint64_t, SecretBytes>>* tops, EpochResult* result) {
  std::string end = NodeRecordKey(kLevels, 0);
  for (it->Seek(NodeRecordKey(kLevels - 1, 0)); it->Valid() && it->key().compare(end) < 0; it->Next()) {
    uint64_t t = ReadBigEndian64(it->key().ToStringView().substr(2));
    auto f = plan.fresh.find(NodeId(kLevels - 1, t));
    if (f != plan.fresh.end()) {
      tops->emplace_back(t, f->second.Clone());
    } else {
      auto k = NodeKeyLocked(kLevels - 1, t, false);
      if (!k.ok()) return k.status();
      tops->emplace_back(t, SecretBytes::CopyOf(*k));
      ++result->keys_rewrapped;
    }
  }
  return FromRocks(it->status(), "scanning key tree top nodes");
}

absl::Status KeyTree::CommitEpochLocked(EpochPlan& plan, std::vector<std::pair<uint64_t, SecretBytes>>& tops,
                                        rocksdb::WriteBatch& batch) {
  const uint64_t old_epoch = epoch_, new_epoch = epoch_ + 1;
  if (auto s = vault_->CreateRoot(new_epoch); !s.ok()) {
    return VaultUnavailable(StrCat("the vault cannot make root ", new_epoch, "; nothing was shredded"), s);
  }
  for (auto& [t, key] : tops) {
    auto w = vault_->WrapWithRoot(new_epoch, key, NodeAssociatedData(kLevels - 1, t));
    if (!w.ok()) {
      (void)vault_->DestroyRoot(new_epoch);
      return VaultUnavailable(StrCat("the vault cannot wrap under root ", new_epoch, "; nothing was shredded"),
                              w.status());
    }
    batch.Put(NodeRecordKey(kLevels - 1, t), *w);
  }
  batch.Put(keyspace::kEpoch, BigEndian64(new_epoch));
  if (auto s = SyncWrite(db_, &batch); !s.ok()) {
    (void)vault_->DestroyRoot(new_epoch);  // nothing committed; the old tree stands
    return s;
  }
  // Committed. Swap the cached keys, then destroy the old root.
  epoch_ = new_epoch;
  for (auto& [id, key] : plan.fresh) {
    auto n = nodes_.find(id);
    if (n != nodes_.end()) {
      pool_.Release(n->second.key_slot);
      n->second.key_slot = pool_.Add(key);
    } else {
      nodes_.emplace(id, Node{pool_.Add(key), true, {}});
    }
  }
  // The old root goes only once the new tree is in the object store (with
  // state replication, durability.h): a restore must never hold a tree whose
  // root is gone. Until then the root stays; the shredder's pending
  // certification destroys it later (shredder_certify.cc, DestroyOldRoots).
  if (auto s = WaitStateReplicated(db_, StrCat("epoch ", new_epoch, " committed; root ", old_epoch, " is kept"));
      !s.ok()) {
    return s;
  }
  if (auto s = vault_->DestroyRoot(old_epoch); !s.ok()) {
    return absl::InternalError(
        StrCat("epoch ", new_epoch, " committed but destroying root ", old_epoch, " failed: ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyTree::EpochResult> KeyTree::Shred(std::span<const uint64_t> slots, rocksdb::WriteBatch* batch) {
  absl::MutexLock exclusive(&epoch_mu_);
  std::lock_guard lock(cache_mu_);
  DropNonDurableLocked();  // leftovers of failed puts; no DEK refers to them
  for (uint64_t s : slots) {
    if (s == kSystemSlot) return absl::InvalidArgumentError("the system slot cannot be shredded");
  }
  // Touched nodes per level, and fresh keys for each.
  EpochPlan plan = PlanEpoch(slots);
  EpochResult result;
  result.destroyed_epoch = epoch_;
  result.installed_epoch = epoch_ + 1;
  result.nodes_rekeyed = plan.fresh.size();
  std::vector<std::pair<uint64_t, SecretBytes>> tops;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    // Buckets: drop doomed DEKs, re-wrap survivors under the bucket's new key.
    if (auto s = RekeyBucketsLocked(plan, it.get(), *batch, &result); !s.ok()) return s;
    // Inner nodes: wrap every existing child under the parent's new key.
    if (auto s = RekeyInnerNodesLocked(plan, it.get(), *batch, &result); !s.ok()) return s;
    // Top nodes: all of them go under the new root.
    if (auto s = CollectTopsLocked(plan, it.get(), &tops, &result); !s.ok()) return s;
  }
  if (auto s = CommitEpochLocked(plan, tops, *batch); !s.ok()) return s;
  return result;
}

}  // namespace shredd
