#include "daemon/log/transparency_log.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "daemon/base/coding.h"
#include "daemon/base/logging.h"
#include "daemon/base/strings.h"
#include "daemon/storage/durability.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"
#include "formats/encoding.h"
#include "formats/note.h"
#include "formats/tlog.h"

namespace shredd {
namespace {

constexpr size_t kHashSize = 32;

void RaiseTo(std::atomic<uint64_t>& a, uint64_t v) {
  uint64_t prev = a.load();
  while (prev < v && !a.compare_exchange_weak(prev, v)) {
  }
}

std::string_view HashBytes(const verify::Hash& h) {
  return std::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

std::string LeafIndexKey(const verify::Hash& leaf_hash) {
  return StrCat(keyspace::kLogLeafIndex, HashBytes(leaf_hash));
}

// Largest power of two strictly smaller than n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

bool IsValidOrigin(std::string_view origin) {
  if (origin.empty() || origin.size() > 256) return false;
  for (char c : origin) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '+') return false;
  }
  return true;
}

absl::Status OutOfRange(std::string_view what, uint64_t asked, uint64_t size) {
  return absl::OutOfRangeError(StrCat(what, " ", asked, " is beyond the log's tree size of ", size));
}

}  // namespace

std::string LogEntryKey(uint64_t index) { return StrCat(keyspace::kLogEntry, BigEndian64(index)); }

std::string LogHashKey(int level, uint64_t index) {
  std::string k(keyspace::kLogHash);
  k.push_back(static_cast<char>(level));
  AppendBigEndian64(&k, index);
  return k;
}

std::string LogCheckpointKey(uint64_t size) { return StrCat(keyspace::kLogCheckpoint, BigEndian64(size)); }

std::string DefaultLogOrigin(const verify::PublicKey& key) {
  return StrCat("shredd.local/", verify::KeyId(key).substr(7, 16));
}

absl::StatusOr<std::unique_ptr<TransparencyLog>> TransparencyLog::Open(rocksdb::DB* db, Vault* vault,
                                                                       std::string origin) {
  if (!IsValidOrigin(origin)) {
    return absl::InvalidArgumentError(StrCat("invalid log origin \"", origin,
                                             "\": must be 1-256 printable ASCII characters without "
                                             "spaces or '+' (it is also the signed-note key name)"));
  }
  std::unique_ptr<TransparencyLog> log(new TransparencyLog(db, vault, std::move(origin)));
  if (auto s = log->Load(); !s.ok()) return s;
  return log;
}

absl::Status TransparencyLog::CheckSigningKey(rocksdb::DB* db, Vault* vault, bool new_key) {
  auto has = vault->HasSigningKey();
  if (!has.ok()) return has.status();
  if (new_key) {
    if (*has) {
      return absl::FailedPreconditionError(
          StrCat("--new-signing-key: ", vault->Describe(),
                 " already holds a signing key; to rotate, move it out of the vault first (docs/VAULT.md), "
                 "or start without the flag"));
    }
    LogWarning(
        "new signing key: the transparency log continues under a new key and (by default) a new origin; "
        "publish the new public key (shredctl pubkey) to every monitor and verifier",
        {{"vault", vault->Describe()}});
    return absl::OkStatus();
  }
  std::string v;
  rocksdb::Status rs = db->Get(rocksdb::ReadOptions(), keyspace::kLogSize, &v);
  if (rs.IsNotFound()) return absl::OkStatus();  // no log yet: the key is made on first use
  if (auto s = FromRocks(rs, "reading the transparency log size"); !s.ok()) return s;
  const uint64_t size = v.size() == 8 ? ReadBigEndian64(v) : 0;
  if (!*has) {
    return absl::FailedPreconditionError(
        StrCat("the data dir holds a transparency log of ", size, " entries but ", vault->Describe(),
               " holds no signing key (lost, or the wrong vault): refusing to make a new one, which would give the log "
               "a new identity that every monitor rejects. Restore the signing key, or rotate deliberately with "
               "--new-signing-key (docs/VAULT.md)"));
  }
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(LogCheckpointKey(std::numeric_limits<uint64_t>::max()));
  if (!it->Valid() || !it->key().starts_with(keyspace::kLogCheckpoint))
    return FromRocks(it->status(), "reading the latest checkpoint");
  auto pub = vault->SigningPublicKey();
  if (!pub.ok()) return pub.status();
  const std::string note_text = it->value().ToString();
  auto note = verify::ParseNote(note_text);
  auto cp = note.ok() ? verify::ParseCheckpointText(note->text) : absl::StatusOr<verify::Checkpoint>(note.status());
  if (!cp.ok()) return absl::DataLossError(StrCat("stored checkpoint is unreadable: ", cp.status().message()));
  verify::NoteVerifier key{cp->origin, verify::NoteKeyHash(cp->origin, *pub), *pub};
  if (!verify::OpenNote(note_text, key).ok()) {
    return absl::FailedPreconditionError(
        StrCat("the latest stored checkpoint (tree size ", cp->size, ", origin ", cp->origin,
               ") does not verify with the "
               "signing key of ",
               vault->Describe(),
               ": the key was replaced, or this is the wrong vault. Restore the "
               "signing key, or rotate deliberately with --new-signing-key (docs/VAULT.md)"));
  }
  return absl::OkStatus();
}

absl::Status TransparencyLog::Load() {
  auto pub = vault_->SigningPublicKey();
  if (!pub.ok()) return pub.status();
  public_key_ = *pub;
  key_id_ = verify::NoteKeyHash(origin_, public_key_);

  auto tree = LoadTree();
  if (!tree.ok()) return tree.status();
  tree_ = std::move(*tree);
  const uint64_t size = tree_.size();
  size_.store(size, std::memory_order_release);
  written_ = size;
  synced_ = size;

  // The latest stored checkpoint must describe this tree.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(LogCheckpointKey(std::numeric_limits<uint64_t>::max()));
  if (it->Valid() && it->key().starts_with(keyspace::kLogCheckpoint)) {
    const std::string note_text = it->value().ToString();
    const std::string key = it->key().ToString();
    auto note = verify::ParseNote(note_text);
    absl::StatusOr<verify::Checkpoint> cp =
        note.ok() ? verify::ParseCheckpointText(note->text) : absl::StatusOr<verify::Checkpoint>(note.status());
    if (!cp.ok()) return absl::DataLossError(StrCat("stored checkpoint is unreadable: ", cp.status().message()));
    if (key.size() != 10 || ReadBigEndian64(std::string_view(key).substr(2)) != cp->size) {
      return absl::DataLossError("stored checkpoint is filed under the wrong tree size");
    }
    if (cp->size > size) {
      return absl::DataLossError(
          StrCat("stored checkpoint for tree size ", cp->size, " is ahead of the stored log (size ", size, ")"));
    }
    auto root = Root(cp->size);
    if (!root.ok()) return root.status();
    if (*root != cp->root) {
      return absl::DataLossError(
          StrCat("stored checkpoint for tree size ", cp->size, " does not match the stored log's root"));
    }
    if (cp->origin == origin_ && cp->size == size) {
      verify::NoteVerifier self{origin_, key_id_, public_key_};
      if (verify::OpenNote(note_text, self).ok()) {
        checkpoint_size_ = size;
        checkpoint_ = note_text;
      }
    }
  } else if (!it->status().ok()) {
    return FromRocks(it->status(), "reading the latest checkpoint");
  }
  return absl::OkStatus();
}

absl::StatusOr<verify::CompactRange> TransparencyLog::LoadTree() {
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), keyspace::kLogSize, &v);
  uint64_t size = 0;
  if (rs.ok()) {
    if (v.size() != 8) return absl::DataLossError("transparency log size record is malformed");
    size = ReadBigEndian64(v);
  } else if (!rs.IsNotFound()) {
    return FromRocks(rs, "reading the transparency log size");
  }
  // The right edge of the tree: one complete subtree per set bit of size.
  std::vector<verify::Hash> subtrees;
  uint64_t start = 0;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((size & width) == 0) continue;
    auto h = StoredHash(level, start >> level);
    if (!h.ok()) {
      return absl::DataLossError(StrCat("transparency log of size ", size, " is missing subtree hash ", level, "/",
                                        start >> level, ": ", h.status().message()));
    }
    subtrees.push_back(*h);
    start += width;
  }
  return verify::CompactRange::FromSubtrees(size, std::move(subtrees));
}

absl::Status TransparencyLog::ReloadAfterFailedWriteLocked() {
  auto tree = LoadTree();
  if (!tree.ok()) return tree.status();
  const uint64_t size = tree->size();
  if (size < written_) {
    return absl::DataLossError(
        StrCat("the transparency log shrank from ", written_, " to ", size, " entries after a failed write"));
  }
  tree_ = std::move(*tree);
  written_ = size;
  broken_ = absl::OkStatus();
  std::lock_guard l(sync_mu_);
  sync_error_ = absl::OkStatus();  // the next WaitDurable syncs the WAL again
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TransparencyLog::Append(rocksdb::WriteBatch* batch, const MakeEntries& make_entries,
                                                 bool fresh_entries, uint64_t* durable_at) {
  std::unique_lock lock(append_mu_);
  if (!broken_.ok()) {
    if (auto s = ReloadAfterFailedWriteLocked(); !s.ok()) return s;
  }
  const uint64_t first = written_;
  absl::StatusOr<std::vector<std::string>> entries = make_entries(first);
  if (!entries.ok()) return entries.status();
  for (size_t i = 0; i < entries->size(); ++i) {
    if ((*entries)[i].size() > kMaxEntryBytes) {
      return absl::InvalidArgumentError(StrCat("log entry ", first + i, " is ", (*entries)[i].size(),
                                               " bytes; at most ", kMaxEntryBytes, " are allowed"));
    }
  }
  if (entries->size() > std::numeric_limits<uint64_t>::max() / 2 - first) {
    return absl::ResourceExhaustedError("the transparency log is full");
  }
  verify::CompactRange tree = tree_;
  std::set<verify::Hash> new_leaves;
  // The log's records go into the batch grouped by key prefix and ascending
  // (entries, then subtree hashes level by level, then the leaf index):
  // RocksDB inserts ascending keys into its memtable much faster than
  // interleaved ones.
  std::vector<std::pair<std::string, std::string>> hashes, leaf_index;
  hashes.reserve(2 * entries->size());
  uint64_t n = first;
  for (const std::string& entry : *entries) {
    const verify::Hash leaf = verify::LeafHash(entry);
    batch->Put(LogEntryKey(n), entry);  // its leaf hash is computed from it when needed
    if (fresh_entries) {
      // Not indexed by leaf hash: such entries are found by index.
    } else if (new_leaves.insert(leaf).second) {
      std::string ignored;
      rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), LeafIndexKey(leaf), &ignored);
      if (rs.IsNotFound()) {
        leaf_index.emplace_back(LeafIndexKey(leaf), BigEndian64(n));
      } else if (!rs.ok()) {
        return FromRocks(rs, "reading the transparency log's leaf index");
      }
    }
    ++n;
    tree.Append(leaf, [&hashes](int level, uint64_t index, const verify::Hash& hash) {
      hashes.emplace_back(LogHashKey(level, index), HashBytes(hash));
    });
  }
  std::sort(hashes.begin(), hashes.end());
  for (const auto& [k, v] : hashes) batch->Put(k, v);
  std::sort(leaf_index.begin(), leaf_index.end());
  for (const auto& [k, v] : leaf_index) batch->Put(k, v);
  batch->Put(keyspace::kLogSize, BigEndian64(n));
  // Batches reach the WAL in index order (under append_mu_). Whatever syncs
  // the WAL makes every earlier write durable too (the WAL is one sequence),
  // so a durable batch implies all batches before it are.
  absl::Status s;
  if (durable_at != nullptr) {
    rocksdb::WriteOptions wo;
    wo.sync = false;
    s = GuardedWrite(db_, wo, batch, "committing to RocksDB");
  } else {
    s = SyncWrite(db_, batch);
  }
  if (!s.ok()) {
    broken_ = s;  // the next append re-reads the tree from the database first
    return s;
  }
  tree_ = std::move(tree);
  written_ = n;
  lock.unlock();
  if (durable_at != nullptr) {
    *durable_at = n;
  } else {
    {
      std::lock_guard l(sync_mu_);
      synced_ = std::max(synced_, n);
    }
    PublishDurable(n);
    // "sync" state replication: the caller acknowledges what it appended
    // (durability.h). UNAVAILABLE here means committed, not yet replicated.
    if (auto r = WaitAcknowledgementReplicated(db_); !r.ok()) return r;
  }
  return first;
}

void TransparencyLog::PublishDurable(uint64_t n) {
  uint64_t cur = size_.load(std::memory_order_acquire);
  while (cur < n && !size_.compare_exchange_weak(cur, n, std::memory_order_acq_rel)) {
  }
  if (cur >= n) return;
  for (const auto& listener : growth_listeners_) listener();
}

uint64_t TransparencyLog::WrittenSize() {
  std::lock_guard lock(append_mu_);
  return written_;
}

absl::Status TransparencyLog::WaitDurable(uint64_t target) {
  std::unique_lock l(sync_mu_);
  for (;;) {
    if (!sync_error_.ok()) return sync_error_;
    if (synced_ >= target) {
      l.unlock();
      return WaitAcknowledgementReplicated(db_);
    }
    if (!syncing_) break;
    sync_cv_.wait(l);
  }
  // This thread syncs for everyone: every batch written so far (its Write
  // returned before written_ was read) is in the WAL and is covered.
  syncing_ = true;
  l.unlock();
  const uint64_t upto = WrittenSize();
  absl::Status s = FromRocks(db_->SyncWAL(), "syncing the RocksDB WAL");
  if (!s.ok()) {
    std::lock_guard a(append_mu_);
    broken_ = s;
  } else {
    PublishDurable(upto);
  }
  l.lock();
  syncing_ = false;
  if (!s.ok()) {
    sync_error_ = s;
  } else {
    synced_ = std::max(synced_, upto);
  }
  sync_cv_.notify_all();
  if (!s.ok()) return s;
  if (synced_ < target) return absl::InternalError("WAL sync did not cover the batch");
  l.unlock();
  // "sync" state replication: no acknowledgement before the object store
  // holds the batch (one shipment covers every waiter; durability.h).
  return WaitAcknowledgementReplicated(db_);
}

absl::StatusOr<std::string> TransparencyLog::Entry(uint64_t index) {
  const uint64_t n = size();
  if (index >= n) return OutOfRange("entry index", index, n);
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), LogEntryKey(index), &v);
  if (rs.IsNotFound()) return absl::DataLossError(StrCat("log entry ", index, " is missing from the database"));
  if (auto s = FromRocks(rs, "reading a log entry"); !s.ok()) return s;
  return v;
}

absl::StatusOr<uint64_t> TransparencyLog::IndexOfLeafHash(const verify::Hash& leaf_hash) {
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), LeafIndexKey(leaf_hash), &v);
  if (rs.IsNotFound()) {
    return absl::NotFoundError(StrCat("no log entry has leaf hash ", verify::HexEncode(leaf_hash)));
  }
  if (auto s = FromRocks(rs, "reading the transparency log's leaf index"); !s.ok()) return s;
  if (v.size() != 8) return absl::DataLossError("transparency log leaf index record is malformed");
  const uint64_t index = ReadBigEndian64(v);
  // An index written by a batch that is committed is always below size();
  // a concurrent append may have committed after we read size.
  if (index >= size()) {
    return absl::NotFoundError(StrCat("no log entry has leaf hash ", verify::HexEncode(leaf_hash)));
  }
  return index;
}

absl::StatusOr<verify::Hash> TransparencyLog::StoredHash(int level, uint64_t index) {
  std::string v;
  if (level == 0) {
    // Leaf hashes are not stored (logs written before kept them under "Lh"
    // level 0; those records are no longer read): hash the entry.
    rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), LogEntryKey(index), &v);
    if (rs.IsNotFound()) return absl::DataLossError(StrCat("transparency log entry ", index, " is missing"));
    if (auto s = FromRocks(rs, "reading a transparency log entry"); !s.ok()) return s;
    return verify::LeafHash(v);
  }
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), LogHashKey(level, index), &v);
  if (rs.IsNotFound()) {
    return absl::DataLossError(StrCat("transparency log subtree hash ", level, "/", index, " is missing"));
  }
  if (auto s = FromRocks(rs, "reading a transparency log hash"); !s.ok()) return s;
  if (v.size() != kHashSize) {
    return absl::DataLossError(StrCat("transparency log subtree hash ", level, "/", index, " is malformed"));
  }
  verify::Hash h;
  std::memcpy(h.data(), v.data(), kHashSize);
  return h;
}

absl::StatusOr<verify::Hash> TransparencyLog::CompleteSubtreeHash(int level, uint64_t index) {
  const uint64_t n = size();
  if (level < 0 || level >= 64 || (index >> (63 - level)) != 0 || ((index + 1) << level) > n) {
    return absl::OutOfRangeError(
        StrCat("subtree ", level, "/", index, " is not complete in the log's tree of size ", n));
  }
  return StoredHash(level, index);
}

absl::StatusOr<verify::Hash> TransparencyLog::SubtreeHash(uint64_t lo, uint64_t hi) {
  const uint64_t n = hi - lo;
  if (std::has_single_bit(n)) {
    const int level = std::countr_zero(n);
    if (lo % n != 0) return absl::InternalError("transparency log: unaligned subtree requested");
    return StoredHash(level, lo >> level);
  }
  const uint64_t k = SplitPoint(n);
  auto left = SubtreeHash(lo, lo + k);
  if (!left.ok()) return left;
  auto right = SubtreeHash(lo + k, hi);
  if (!right.ok()) return right;
  return verify::NodeHash(*left, *right);
}

absl::StatusOr<verify::Hash> TransparencyLog::Root(uint64_t size) {
  const uint64_t n = this->size();
  if (size > n) return OutOfRange("tree size", size, n);
  if (size == 0) return verify::EmptyRoot();
  return SubtreeHash(0, size);
}

absl::Status TransparencyLog::Path(uint64_t m, uint64_t lo, uint64_t hi, std::vector<verify::Hash>* out) {
  const uint64_t n = hi - lo;
  if (n <= 1) return absl::OkStatus();
  const uint64_t k = SplitPoint(n);
  absl::StatusOr<verify::Hash> sibling;
  if (m < k) {
    if (auto s = Path(m, lo, lo + k, out); !s.ok()) return s;
    sibling = SubtreeHash(lo + k, hi);
  } else {
    if (auto s = Path(m - k, lo + k, hi, out); !s.ok()) return s;
    sibling = SubtreeHash(lo, lo + k);
  }
  if (!sibling.ok()) return sibling.status();
  out->push_back(*sibling);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<verify::Hash>> TransparencyLog::InclusionProof(uint64_t index, uint64_t size) {
  const uint64_t n = this->size();
  if (size > n) return OutOfRange("tree size", size, n);
  if (index >= size) {
    return absl::OutOfRangeError(StrCat("leaf index ", index, " is not below tree size ", size));
  }
  if (auto s = WaitTreeReplicated(size); !s.ok()) return s;
  std::vector<verify::Hash> proof;
  if (auto s = Path(index, 0, size, &proof); !s.ok()) return s;
  return proof;
}

absl::Status TransparencyLog::WaitTreeReplicated(uint64_t n) {
  if (n <= replicated_size_.load(std::memory_order_acquire)) return absl::OkStatus();
  const uint64_t covered = size();  // its entries are in the database now
  if (auto s = WaitStateReplicated(db_, StrCat("a proof for tree size ", n)); !s.ok()) return s;
  RaiseTo(replicated_size_, covered);
  return absl::OkStatus();
}

absl::Status TransparencyLog::SubProof(uint64_t m, uint64_t lo, uint64_t hi, bool b, std::vector<verify::Hash>* out) {
  const uint64_t n = hi - lo;
  if (m == n) {
    if (b) return absl::OkStatus();
    auto h = SubtreeHash(lo, hi);
    if (!h.ok()) return h.status();
    out->push_back(*h);
    return absl::OkStatus();
  }
  const uint64_t k = SplitPoint(n);
  absl::StatusOr<verify::Hash> other;
  if (m <= k) {
    if (auto s = SubProof(m, lo, lo + k, b, out); !s.ok()) return s;
    other = SubtreeHash(lo + k, hi);
  } else {
    if (auto s = SubProof(m - k, lo + k, hi, false, out); !s.ok()) return s;
    other = SubtreeHash(lo, lo + k);
  }
  if (!other.ok()) return other.status();
  out->push_back(*other);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<verify::Hash>> TransparencyLog::ConsistencyProof(uint64_t m, uint64_t n) {
  const uint64_t size = this->size();
  if (n > size) return OutOfRange("tree size", n, size);
  if (m > n) {
    return absl::InvalidArgumentError(StrCat("consistency proof from tree size ", m, " to the smaller size ", n));
  }
  if (auto s = WaitTreeReplicated(n); !s.ok()) return s;
  std::vector<verify::Hash> proof;
  if (m == 0 || m == n) return proof;
  if (auto s = SubProof(m, 0, n, true, &proof); !s.ok()) return s;
  return proof;
}

absl::StatusOr<std::string> TransparencyLog::SignedCheckpoint() {
  std::lock_guard lock(checkpoint_mu_);
  const uint64_t n = size();
  if (!checkpoint_.empty() && checkpoint_size_ == n) return checkpoint_;
  // Whatever the replication mode, no checkpoint leaves the daemon before the
  // log it commits to is in the object store: a restore must never roll a
  // monitor's checkpoint back (durability.h, docs/RECOVERY.md).
  if (auto s = WaitStateReplicated(db_, "signing a checkpoint"); !s.ok()) return s;
  RaiseTo(replicated_size_, n);
  auto root = Root(n);
  if (!root.ok()) return root.status();
  const std::string text = verify::FormatCheckpointText(origin_, n, *root);
  auto sig = vault_->Sign(text);
  if (!sig.ok()) return sig.status();
  std::string note = verify::AssembleSignedNote(
      text, origin_, key_id_, std::string_view(reinterpret_cast<const char*>(sig->data()), sig->size()));
  rocksdb::WriteBatch batch;
  batch.Put(LogCheckpointKey(n), note);
  if (auto s = SyncWrite(db_, &batch); !s.ok()) {
    // Writes are stopped (a full disk): the tree of size n is durable all
    // the same (size() counts durable entries only), so the note may be
    // handed out; it is stored by a later call. Ed25519 signatures are
    // deterministic, so that call returns these very bytes.
    return note;
  }
  checkpoint_size_ = n;
  checkpoint_ = note;
  return note;
}

std::string TransparencyLog::NoteVerifierKey() const { return verify::NoteVerifierKey(origin_, public_key_); }

}  // namespace shredd
