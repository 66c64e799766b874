#include "daemon/items/slot_ordered_lookup.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "daemon/base/coding.h"
#include "daemon/base/parallel.h"
#include "daemon/base/strings.h"
#include "daemon/storage/keyspace.h"
#include "daemon/storage/rocks_util.h"

namespace shredd {
namespace {

constexpr size_t kBatch = 4096;  // records per MultiGet

std::string ScratchKey(std::string_view scope, uint64_t slot) { return StrCat(scope, BigEndian64(slot)); }

}  // namespace

SlotOrderedLookup::SlotOrderedLookup(ItemStore* store, size_t in_memory_items)
    : store_(store), in_memory_items_(std::max<size_t>(1, in_memory_items)) {
  uint8_t scope[8];
  randombytes_buf(scope, sizeof scope);
  scope_ = StrCat(keyspace::kSlotScratch, std::string_view(reinterpret_cast<const char*>(scope), sizeof scope));
}

SlotOrderedLookup::~SlotOrderedLookup() {
  if (!spilled_) return;
  rocksdb::WriteBatch batch;
  batch.DeleteRange(scope_, StrCat(scope_, std::string(8, '\xff')));
  // Not synced: a drop lost in a crash is repeated at the next start
  // (ItemStore::Open drops every scratch record).
  (void)GuardedWrite(store_->db(), rocksdb::WriteOptions(), &batch, "dropping a slot-ordered scan");
}

absl::Status SlotOrderedLookup::Add(const ItemKey& key) {
  queued_.push_back(key);
  if (queued_.size() >= kBatch) return ReadQueued();
  return absl::OkStatus();
}

absl::Status SlotOrderedLookup::ReadQueued() {
  auto records = store_->ReadRecords(queued_);
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].ok()) {
      sorted_.push_back(std::move(*records[i]));
    } else if (!absl::IsNotFound(records[i].status())) {
      // Read, not gone: a corrupt record or a failed read (see the header).
      return store_->UnreadableItem(queued_[i], records[i].status());
    }
  }
  queued_.clear();
  if (sorted_.size() >= in_memory_items_) return Spill();
  return absl::OkStatus();
}

// The records in memory go to the scratch range, keyed by slot, without the
// WAL (see the header): copies of records already in the database.
absl::Status SlotOrderedLookup::Spill() {
  std::sort(sorted_.begin(), sorted_.end(), [](const auto& a, const auto& b) { return a.slot < b.slot; });
  size_t bytes = 0;
  for (const auto& r : sorted_) bytes += scope_.size() + 8 + r.key.size() + r.record.size() + 16;
  rocksdb::WriteBatch batch(bytes);  // one allocation, not growth by doubling
  std::string value;
  for (const auto& r : sorted_) {
    value.assign(reinterpret_cast<const char*>(r.key.data()), r.key.size());
    value += r.record;
    batch.Put(ScratchKey(scope_, r.slot), value);
  }
  sorted_.clear();
  spilled_ = true;
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return GuardedWrite(store_->db(), wo, &batch, "staging a slot-ordered scan");
}

absl::Status SlotOrderedLookup::Finish(const std::function<absl::Status(const StoredItem&)>& visit) {
  if (!queued_.empty()) {
    if (auto s = ReadQueued(); !s.ok()) return s;
  }
  if (spilled_) {
    if (!sorted_.empty()) {
      if (auto s = Spill(); !s.ok()) return s;
    }
    return VisitScratch(visit);
  }
  std::sort(sorted_.begin(), sorted_.end(), [](const auto& a, const auto& b) { return a.slot < b.slot; });
  for (size_t b = 0; b < sorted_.size(); b += kBatch) {
    std::vector<ItemStore::RawItem> part(
        std::make_move_iterator(sorted_.begin() + static_cast<std::ptrdiff_t>(b)),
        std::make_move_iterator(sorted_.begin() + static_cast<std::ptrdiff_t>(std::min(sorted_.size(), b + kBatch))));
    if (auto s = OpenAndVisit(part, visit); !s.ok()) return s;
  }
  sorted_.clear();
  return absl::OkStatus();
}

absl::Status SlotOrderedLookup::VisitScratch(const std::function<absl::Status(const StoredItem&)>& visit) {
  const std::string end = StrCat(scope_, std::string(8, '\xff'));
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(ro));
  std::vector<ItemStore::RawItem> part;
  for (it->Seek(scope_); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView(), v = it->value().ToStringView();
    if (k.size() != scope_.size() + 8 || v.size() < 32)
      return absl::DataLossError("malformed slot-ordered scan record");
    ItemStore::RawItem r;
    r.slot = ReadBigEndian64(k.substr(scope_.size()));
    std::memcpy(r.key.data(), v.data(), 32);
    r.record = std::string(v.substr(32));
    part.push_back(std::move(r));
    if (part.size() >= kBatch) {
      if (auto s = OpenAndVisit(part, visit); !s.ok()) return s;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading a slot-ordered scan");
  return OpenAndVisit(part, visit);
}

absl::Status SlotOrderedLookup::OpenAndVisit(std::vector<ItemStore::RawItem>& raws,
                                             const std::function<absl::Status(const StoredItem&)>& visit) {
  std::vector<absl::StatusOr<StoredItem>> items(raws.size(), absl::UnknownError("not read"));
  ParallelFor(
      raws.size(),
      [&](size_t b, size_t e) {
        auto part = store_->OpenRecords(std::span<const ItemStore::RawItem>(raws).subspan(b, e - b));
        for (size_t i = b; i < e; ++i) items[i] = std::move(part[i - b]);
      },
      512);
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].ok()) {
      // NOT_FOUND: shredded since its record was read (OpenRecords);
      // anything else is an item that cannot be read (see the header).
      if (absl::IsNotFound(items[i].status())) continue;
      return store_->UnreadableItem(raws[i].key, items[i].status());
    }
    if (auto s = visit(*items[i]); !s.ok()) return s;
  }
  raws.clear();
  return absl::OkStatus();
}

}  // namespace shredd
