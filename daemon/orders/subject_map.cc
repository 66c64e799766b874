#include "daemon/orders/subject_map.h"

#include <sodium.h>

#include <charconv>

#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/field_rules.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/aead.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"

namespace shredd {
namespace {

constexpr size_t kGroupBytes = 16;
constexpr size_t kFlushEntries = 4096;

std::string MapPrefix(std::string_view order_id) {
  return StrCat(keyspace::kSubjectMap, order_id, std::string(1, '\0'));
}
std::string HeaderKey(std::string_view order_id) { return StrCat(MapPrefix(order_id), "h"); }
std::string EntriesBegin(std::string_view order_id) { return StrCat(MapPrefix(order_id), "e"); }
std::string EntriesEnd(std::string_view order_id) { return StrCat(MapPrefix(order_id), "f"); }
std::string EntryAd(std::string_view key) { return StrCat("shredd/subject-map/v1", key); }

std::string Group(const SecretBytes& map_key, std::string_view subject) {
  SecretBytes index_key = DeriveSubkey(map_key.span(), Subkey::kIndex);
  std::string out(kGroupBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(subject.data()), subject.size(), index_key.data(),
                     index_key.size());
  return out;
}

// The header: the map key's slot (8 bytes) while the map is kept; once
// released, kReleased and how many subjects it held, so that a release
// retried after an error answers as the first one did.
constexpr std::string_view kReleased = "released ";

struct Header {
  std::optional<uint64_t> slot;
  std::optional<int64_t> released_subjects;
};

absl::StatusOr<Header> ReadHeader(ItemStore* store, std::string_view order_id) {
  std::string v;
  auto s = store->db()->Get(rocksdb::ReadOptions(), HeaderKey(order_id), &v);
  if (s.IsNotFound()) return Header{};
  if (!s.ok()) return FromRocks(s, "reading a subject map");
  if (v.starts_with(kReleased)) {
    int64_t subjects = 0;
    const char* end = v.data() + v.size();
    auto [p, ec] = std::from_chars(v.data() + kReleased.size(), end, subjects);
    if (ec == std::errc() && p == end) return Header{std::nullopt, subjects};
  }

  if (v.size() != 8) return absl::DataLossError(StrCat("subject map header of order ", order_id, " is damaged"));
  return Header{ReadBigEndian64(v), std::nullopt};
}

absl::Status NoMap(std::string_view order_id) {
  return absl::NotFoundError(StrCat("order ", QuoteForError(order_id),
                                    " keeps no subject map (submitted without keep_subject_map, matched no item "
                                    "with a subject id, or the map was released)"));
}

absl::Status Released(std::string_view order_id, int64_t subjects) {
  return absl::NotFoundError(
      StrCat("order ", QuoteForError(order_id), "'s subject map was released (subjects it held: ", subjects, ")"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SubjectMapWriter>> SubjectMapWriter::Open(ItemStore* store, std::string order_id) {
  std::unique_ptr<SubjectMapWriter> w(new SubjectMapWriter(store, std::move(order_id)));
  auto header = ReadHeader(store, w->order_id_);
  if (!header.ok()) return header.status();
  if (header->released_subjects) return Released(w->order_id_, *header->released_subjects);
  if (!header->slot) return w;
  auto dek = store->key_tree().GetDek(*header->slot);
  if (!dek.ok()) return dek.status();
  w->key_.emplace(std::move(*dek));
  // Planned again after a restart: what the earlier run wrote goes.
  rocksdb::WriteBatch drop;
  drop.DeleteRange(EntriesBegin(w->order_id_), EntriesEnd(w->order_id_));
  if (auto s = SyncWrite(store->db(), &drop); !s.ok()) return s;
  return w;
}

absl::Status SubjectMapWriter::MakeKey() {
  KeyTree& tree = store_->key_tree();
  auto slot = tree.AllocateSlot();
  if (!slot.ok()) return slot.status();
  SecretBytes key = SecretBytes::Random(kKeySize);
  rocksdb::WriteBatch batch;
  KeyTree::WriteLease lease = tree.BeginWrite();
  auto pending = tree.AddDek(lease, *slot, key.span(), &batch);
  if (!pending.ok()) return pending.status();
  batch.Put(HeaderKey(order_id_), BigEndian64(*slot));
  if (auto s = SyncWrite(store_->db(), &batch); !s.ok()) return s;
  tree.Committed(*pending);
  key_.emplace(std::move(key));
  return absl::OkStatus();
}

absl::Status SubjectMapWriter::Add(const StoredItem& item) {
  const auto& subjects = item.info.metadata.subject_ids;
  if (subjects.empty()) return absl::OkStatus();
  if (!key_) {
    if (auto s = MakeKey(); !s.ok()) return s;
  }
  SecretBytes seal_key = DeriveSubkey(key_->span(), Subkey::kMetadata);
  for (const auto& subject : subjects) {
    const std::string key = StrCat(EntriesBegin(order_id_), Group(*key_, subject), BigEndian64(seq_++));
    const nlohmann::json entry{{"s", subject},
                               {"d", item.info.digest.HashString()},
                               {"z", item.info.digest.size},
                               {"k", KindName(item.info.metadata.kind)}};
    batch_.Put(key, SealWithKey(seal_key.span(), entry.dump(), EntryAd(key)));
    ++pending_;
  }
  return pending_ >= kFlushEntries ? Flush() : absl::OkStatus();
}

absl::Status SubjectMapWriter::Flush() {
  if (pending_ == 0) return absl::OkStatus();
  auto s = GuardedWrite(store_->db(), rocksdb::WriteOptions(), &batch_, "writing an order's subject map");
  batch_.Clear();
  pending_ = 0;
  return s;
}

absl::Status ForEachSubject(
    ItemStore* store, std::string_view order_id,
    const std::function<bool(const std::string& subject, const std::vector<SubjectMapItem>& items)>& visit) {
  auto header = ReadHeader(store, order_id);
  if (!header.ok()) return header.status();
  if (header->released_subjects) return Released(order_id, *header->released_subjects);
  if (!header->slot) return NoMap(order_id);
  auto key = store->key_tree().GetDek(*header->slot);
  if (absl::IsNotFound(key.status())) return NoMap(order_id);
  if (!key.ok()) return key.status();
  SecretBytes seal_key = DeriveSubkey(key->span(), Subkey::kMetadata);
  const std::string begin = EntriesBegin(order_id), end = EntriesEnd(order_id);
  std::unique_ptr<rocksdb::Iterator> it(store->db()->NewIterator(rocksdb::ReadOptions()));
  std::string group, subject;
  std::vector<SubjectMapItem> items;
  for (it->Seek(begin); it->Valid() && it->key().compare(end) < 0; it->Next()) {
    const std::string k = it->key().ToString();
    auto plain = OpenData(seal_key.span(), it->value().ToString(), EntryAd(k));
    if (!plain.ok())
      return absl::DataLossError(StrCat("subject map of order ", order_id, ": ", plain.status().message()));
    auto j = nlohmann::json::parse(*plain, nullptr, false);
    auto hash = j.is_object() ? ParseDigestHash(j.value("d", "")) : absl::InvalidArgumentError("not an object");
    auto kind = j.is_object() ? ParseKind(j.value("k", "")) : absl::InvalidArgumentError("not an object");
    if (!hash.ok() || !kind.ok()) return absl::DataLossError(StrCat("subject map of order ", order_id, " is damaged"));
    const std::string g = k.substr(begin.size(), kGroupBytes);
    if (g != group && !items.empty()) {
      if (!visit(subject, items)) return absl::OkStatus();
      items.clear();
    }
    group = g;
    subject = j.value("s", "");
    items.push_back({ContentDigest{*hash, j.value("z", uint64_t{0})}, *kind});
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading a subject map");
  if (!items.empty()) visit(subject, items);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> SubjectMapReleased(ItemStore* store, std::string_view order_id) {
  auto header = ReadHeader(store, order_id);
  if (!header.ok()) return header.status();
  return header->released_subjects;
}

absl::StatusOr<uint64_t> StageSubjectMapRelease(ItemStore* store, std::string_view order_id,
                                                std::optional<int64_t> subjects, rocksdb::WriteBatch* batch) {
  auto header = ReadHeader(store, order_id);
  if (!header.ok()) return header.status();
  if (header->released_subjects) return Released(order_id, *header->released_subjects);
  if (!header->slot) return NoMap(order_id);
  batch->DeleteRange(MapPrefix(order_id), StrCat(keyspace::kSubjectMap, order_id, std::string(1, '\1')));
  if (subjects) batch->Put(HeaderKey(order_id), StrCat(kReleased, *subjects));  // after the range: it stays
  return *header->slot;
}

}  // namespace shredd
