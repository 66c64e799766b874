// OrderBook::List: the orders the daemon knows, for `shredctl order ls`.
#include <algorithm>
#include <tuple>

#include <rocksdb/db.h>

#include "daemon/orders/orders.h"
#include "daemon/storage/keyspace.h"

namespace shredd {

absl::StatusOr<std::vector<OrderStatus>> OrderBook::List(const std::vector<OrderState>& states) {
  std::vector<std::string> ids;
  {
    std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(keyspace::kOrder); it->Valid() && it->key().starts_with(keyspace::kOrder); it->Next())
      ids.push_back(it->key().ToString().substr(1));
    if (!it->status().ok()) return absl::InternalError(it->status().ToString());
  }
  std::vector<OrderStatus> out;
  for (const auto& id : ids) {
    auto st = Load(id);
    if (!st.ok()) return st.status();
    if (!states.empty() && std::find(states.begin(), states.end(), st->state) == states.end()) continue;
    {
      std::lock_guard lock(mu_);
      AddRetryLocked(*st);
    }
    out.push_back(std::move(*st));
  }
  std::sort(out.begin(), out.end(), [](const OrderStatus& a, const OrderStatus& b) {
    return std::tie(a.spec.received, a.spec.id) < std::tie(b.spec.received, b.spec.id);
  });
  return out;
}

}  // namespace shredd
