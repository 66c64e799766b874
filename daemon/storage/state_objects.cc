#include "daemon/storage/state_objects.h"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <tuple>

#include <rocksdb/write_batch.h>

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"

namespace shredd {
namespace {

constexpr std::string_view kWalMagicV1 = "SHRDWAL1";
constexpr std::string_view kWalMagicV2 = "SHRDWAL2";  // unsigned
constexpr std::string_view kWalMagicV3 = "SHRDWAL3";  // signed
constexpr std::string_view kWalMagic = "SHRDWAL4";    // signed, with its run
constexpr std::string_view kWalSignatureDomain{"shredd/state-wal/v3\0", 20};
constexpr size_t kRunIdBytes = 16;
constexpr std::string_view kDescriptorSignatureDomain{"shredd/state-snapshot/v2\0", 25};

std::string Pad(uint64_t v, int width) {
  char b[24];
  std::snprintf(b, sizeof b, "%0*llu", width, static_cast<unsigned long long>(v));
  return b;
}

bool ParseU64(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + static_cast<uint64_t>(c - '0');
  }
  *v = r;
  return true;
}

// "<a>-<b><suffix>" at the end of `key` after the last '/'; with `rest`,
// "<a>-<b>-<rest>" too (*rest empty for the first form).
bool ParsePair(std::string_view key, std::string_view suffix, uint64_t* a, uint64_t* b, std::string* rest = nullptr) {
  auto slash = key.rfind('/');
  std::string_view name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  if (!name.ends_with(suffix)) return false;
  name.remove_suffix(suffix.size());
  auto dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  std::string_view second = name.substr(dash + 1);
  if (auto dash2 = second.find('-'); dash2 != std::string_view::npos && rest != nullptr) {
    *rest = second.substr(dash2 + 1);
    second = second.substr(0, dash2);
  }
  return ParseU64(name.substr(0, dash), a) && ParseU64(second, b);
}

// A run id in a WAL object's header: 16 bytes, zeros for none.
void StoreRunId(char* at, std::string_view id) {
  std::memset(at, 0, kRunIdBytes);
  if (auto raw = HexDecode(id); raw && raw->size() == kRunIdBytes) std::memcpy(at, raw->data(), kRunIdBytes);
}

std::string LoadRunId(const char* at) {
  const std::string_view raw(at, kRunIdBytes);
  if (raw.find_first_not_of('\0') == std::string_view::npos) return "";
  return HexEncode(std::span(reinterpret_cast<const uint8_t*>(at), kRunIdBytes));
}

// One rule for every signed state object: DATA_LOSS naming `what` unless
// `trust` accepts it.
absl::Status CheckSignature(const StateTrust* trust, bool is_signed, std::string_view message,
                            std::string_view signature, std::string_view what) {
  if (trust == nullptr) return absl::OkStatus();
  if (!is_signed) {
    if (trust->allow_unsigned) return absl::OkStatus();
    return absl::DataLossError(StrCat(what,
                                      " is not signed (written by a shredd before state objects were signed, or "
                                      "its signature was removed in the bucket); restore with --allow-unsigned-state "
                                      "only if you trust the bucket's operator (docs/RECOVERY.md)"));
  }
  if (signature.size() == kStateSignatureBytes && trust->verify && trust->verify(message, signature)) {
    return absl::OkStatus();
  }
  return absl::DataLossError(StrCat(what,
                                    " is not signed by this vault's identity: altered in the bucket, or written by "
                                    "another daemon"));
}

}  // namespace

std::string WalSignedMessage(std::string_view checksum) { return StrCat(kWalSignatureDomain, checksum); }

std::string NewStateRunId() {
  uint8_t raw[kRunIdBytes];
  randombytes_buf(raw, sizeof raw);
  return HexEncode(std::span<const uint8_t>(raw, sizeof raw));
}

bool IsStateRunId(std::string_view id) {
  return id.size() == 2 * kRunIdBytes && id.find_first_not_of("0123456789abcdef") == std::string_view::npos &&
         id.find_first_not_of('0') != std::string_view::npos;
}

std::string WalObjectName(uint64_t first, uint64_t last, std::string_view run_id) {
  return StrCat("state/wal/", Pad(first, 20), "-", Pad(last, 20), run_id.empty() ? "" : "-", run_id);
}

std::string SnapshotId(uint64_t seq, uint64_t ms) { return StrCat(Pad(seq, 20), "-", Pad(ms, 13)); }

std::string ShaHex(std::string_view bytes) { return HexEncode(Sha256Hasher::Of(bytes)); }

// Magic, first, last, floor, batch count; v4 adds the run (id, parent,
// fork) before the batch count.
constexpr size_t kWalHeaderV3 = 8 + 8 + 8 + 8 + 4;
constexpr size_t kWalRunFields = kRunIdBytes + kRunIdBytes + 8;
constexpr size_t kWalHeader = kWalHeaderV3 + kWalRunFields;

WalObjectWriter::WalObjectWriter(std::string* out, const StateRun* run)
    : out_(out), run_(run != nullptr && !run->id.empty() ? run : nullptr) {
  out_->assign(run_ != nullptr ? kWalMagic : kWalMagicV3);
  out_->resize(run_ != nullptr ? kWalHeader : kWalHeaderV3);
}

void WalObjectWriter::Add(uint64_t seq, uint32_t count, std::string_view rep) {
  if (batches_ == 0) first_ = seq;
  last_ = WalBatch{.seq = seq, .count = count, .rep = {}}.last();
  ++batches_;
  char head[16];
  StoreBigEndian64(head, seq);
  StoreBigEndian32(head + 8, count);
  StoreBigEndian32(head + 12, static_cast<uint32_t>(rep.size()));
  out_->append(head, sizeof head);
  out_->append(rep);
}

absl::StatusOr<Sha256> WalObjectWriter::Finish(uint64_t floor, const StateSigner& sign) {
  if (!sign && run_ != nullptr) return absl::InternalError("a WAL object with a run must be signed");
  if (!sign) out_->replace(0, kWalMagicV2.size(), kWalMagicV2);
  char* h = out_->data();
  StoreBigEndian64(h + 8, first_);
  StoreBigEndian64(h + 16, last_);
  StoreBigEndian64(h + 24, floor);
  if (run_ != nullptr) {
    StoreRunId(h + 32, run_->id);
    StoreRunId(h + 32 + kRunIdBytes, run_->parent);
    StoreBigEndian64(h + 32 + 2 * kRunIdBytes, run_->fork);
  }
  StoreBigEndian32(h + (run_ != nullptr ? kWalHeader : kWalHeaderV3) - 4, batches_);
  Sha256Hasher hasher;
  hasher.Update(*out_);
  const Sha256 sum = hasher.Peek();
  const std::string_view tail(reinterpret_cast<const char*>(sum.data()), sum.size());
  hasher.Update(tail);
  out_->append(tail);
  if (sign) {
    auto sig = sign(WalSignedMessage(tail));
    if (!sig.ok()) return sig.status();
    if (sig->size() != kStateSignatureBytes) return absl::InternalError("the state signer returned a bad signature");
    hasher.Update(*sig);
    out_->append(*sig);
  }
  return hasher.Finish();
}

std::string EncodeWalObject(std::span<const WalBatch> batches, uint64_t floor, const StateSigner& sign,
                            const StateRun* run) {
  std::string out;
  WalObjectWriter w(&out, run);
  for (const WalBatch& b : batches) w.Add(b.seq, b.count, b.rep);
  (void)w.Finish(floor, sign);
  return out;
}

absl::StatusOr<WalObjectBody> DecodeWalObject(std::string_view body, std::string_view name, const StateTrust* trust) {
  auto bad = [&](std::string_view why) {
    return absl::DataLossError(StrCat("WAL object ", name, " is damaged: ", why));
  };
  const bool v1 = body.starts_with(kWalMagicV1), with_run = body.starts_with(kWalMagic);
  const bool is_signed = with_run || body.starts_with(kWalMagicV3);
  const size_t head = v1 ? 8 + 8 + 8 + 4 : with_run ? kWalHeader : kWalHeaderV3;
  const size_t trailer = 32 + (is_signed ? kStateSignatureBytes : 0);
  if (body.size() < head + trailer || (!v1 && !is_signed && !body.starts_with(kWalMagicV2))) {
    return bad("not a shredd WAL object");
  }
  std::string_view data = body.substr(0, body.size() - trailer);
  const std::string_view checksum = body.substr(data.size(), 32);
  const Sha256 sum = Sha256Hasher::Of(data);
  if (std::string_view(reinterpret_cast<const char*>(sum.data()), 32) != checksum) return bad("checksum mismatch");
  if (auto s = CheckSignature(trust, is_signed, WalSignedMessage(checksum), body.substr(data.size() + 32),
                              StrCat("WAL object ", name));
      !s.ok()) {
    return s;
  }
  const uint64_t first = LoadBigEndian64(data.data() + 8), last = LoadBigEndian64(data.data() + 16);
  WalObjectBody out;
  out.is_signed = is_signed;
  out.floor = v1 ? first - 1 : LoadBigEndian64(data.data() + 24);
  if (with_run) {
    out.run.id = LoadRunId(data.data() + 32);
    out.run.parent = LoadRunId(data.data() + 32 + kRunIdBytes);
    out.run.fork = LoadBigEndian64(data.data() + 32 + 2 * kRunIdBytes);
    if (out.run.id.empty()) return bad("it names no run");
  }
  const uint32_t n = LoadBigEndian32(data.data() + head - 4);
  size_t pos = head;
  for (uint32_t i = 0; i < n; ++i) {
    if (data.size() - pos < 16) return bad("truncated batch header");
    WalBatch b;
    b.seq = LoadBigEndian64(data.data() + pos);
    b.count = LoadBigEndian32(data.data() + pos + 8);
    const uint32_t len = LoadBigEndian32(data.data() + pos + 12);
    pos += 16;
    if (data.size() - pos < len) return bad("truncated batch");
    b.rep.assign(data.substr(pos, len));
    pos += len;
    if (!out.batches.empty() && b.seq != out.batches.back().last() + 1) return bad("batches are not contiguous");
    out.batches.push_back(std::move(b));
  }
  if (pos != data.size()) return bad("trailing bytes");
  if (out.batches.empty() || out.batches.front().seq != first || out.batches.back().last() != last) {
    return bad("header does not match");
  }
  if (out.floor >= first) return bad("its floor is not below its first sequence number");
  return out;
}

absl::StatusOr<std::vector<SnapshotDescriptor>> ListDescriptors(S3Client& client) {
  std::vector<SnapshotDescriptor> out;
  auto s = client.ForEachObject(client.KeyFor("state/desc/"), [&out](const S3ObjectVersion& o) {
    SnapshotDescriptor d{.key = o.key};
    if (ParsePair(o.key, ".json", &d.seq, &d.ms)) out.push_back(std::move(d));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end(), [](const SnapshotDescriptor& a, const SnapshotDescriptor& b) {
    return std::tie(a.seq, a.ms, a.key) < std::tie(b.seq, b.ms, b.key);
  });
  return out;
}

absl::StatusOr<std::string> EncodeDescriptor(nlohmann::json desc, const StateSigner& sign) {
  desc.erase("signature");
  if (!sign) {
    desc["format"] = kSnapshotDescriptorFormatV1;
    return desc.dump();
  }
  desc["format"] = kSnapshotDescriptorFormat;
  auto sig = sign(StrCat(kDescriptorSignatureDomain, desc.dump()));
  if (!sig.ok()) return sig.status();
  desc["signature"] = HexEncode(std::span(reinterpret_cast<const uint8_t*>(sig->data()), sig->size()));
  return desc.dump();
}

absl::StatusOr<nlohmann::json> ParseDescriptor(std::string_view body, std::string_view key, const StateTrust* trust) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  const std::string format = j.is_object() ? j.value("format", "") : "";
  const bool is_signed = format == kSnapshotDescriptorFormat;
  if (j.is_discarded() || !j.is_object() || (!is_signed && format != kSnapshotDescriptorFormatV1) ||
      !j.contains("files") || !j["files"].is_array() || !j.contains("sequence") ||
      !j["sequence"].is_number_unsigned() || (is_signed && !j.contains("signature")) ||
      (j.contains("run") && (!j["run"].is_string() || !IsStateRunId(j["run"].get<std::string>())))) {
    return absl::DataLossError(StrCat("state snapshot descriptor ", key, " is malformed"));
  }
  std::string signature;
  if (is_signed) {
    auto sig = j["signature"].is_string() ? HexDecode(j["signature"].get<std::string>()) : std::nullopt;
    if (sig) signature = std::move(*sig);
    j.erase("signature");
  }
  if (auto s = CheckSignature(trust, is_signed, StrCat(kDescriptorSignatureDomain, j.dump()), signature,
                              StrCat("state snapshot descriptor ", key));
      !s.ok()) {
    return s;
  }
  return j;
}

std::string DescriptorRun(const nlohmann::json& desc) { return desc.value("run", ""); }

absl::StatusOr<nlohmann::json> ReadDescriptor(S3Client& client, const std::string& key, const StateTrust* trust) {
  std::string body;
  if (auto s = client.GetObject(key, 0, 0, &body); !s.ok()) return s;
  return ParseDescriptor(body, key, trust);
}

absl::StatusOr<std::vector<WalObjectKey>> ListWalObjects(S3Client& client) {
  std::vector<WalObjectKey> out;
  auto s = client.ForEachObject(client.KeyFor("state/wal/"), [&out](const S3ObjectVersion& o) {
    WalObjectKey w{.key = o.key, .first = 0, .last = 0, .run = {}};
    if (ParsePair(o.key, "", &w.first, &w.last, &w.run) && (w.run.empty() || IsStateRunId(w.run))) {
      out.push_back(std::move(w));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end(), [](const WalObjectKey& a, const WalObjectKey& b) {
    return std::tie(a.first, a.last) < std::tie(b.first, b.last);
  });
  return out;
}

namespace {

// Copies the records of a batch from the `skip`-th on (default column
// family only: the daemon uses no other).
class SuffixCopier : public rocksdb::WriteBatch::Handler {
 public:
  explicit SuffixCopier(uint64_t skip) : skip_(skip) {}
  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
    return Take(cf, [&] { return out.Put(k, v); });
  }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& k) override {
    return Take(cf, [&] { return out.Delete(k); });
  }
  rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& k) override {
    return Take(cf, [&] { return out.SingleDelete(k); });
  }
  rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice& b, const rocksdb::Slice& e) override {
    return Take(cf, [&] { return out.DeleteRange(b, e); });
  }
  rocksdb::Status MergeCF(uint32_t cf, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
    return Take(cf, [&] { return out.Merge(k, v); });
  }
  rocksdb::WriteBatch out;

 private:
  template <typename F>
  rocksdb::Status Take(uint32_t cf, F copy) {
    if (cf != 0) return rocksdb::Status::NotSupported("a column family other than the default");
    if (seen_++ < skip_) return rocksdb::Status::OK();
    return copy();
  }
  const uint64_t skip_;
  uint64_t seen_ = 0;
};

}  // namespace

absl::StatusOr<WalBatch> WalBatchFrom(const WalBatch& b, uint64_t from) {
  if (from <= b.seq || from > b.last()) return absl::InvalidArgumentError("no part of the batch starts there");
  rocksdb::WriteBatch whole(b.rep);
  if (whole.Count() != b.count) return absl::DataLossError("a WAL batch does not hold its count of records");
  SuffixCopier copier(from - b.seq);
  if (auto s = whole.Iterate(&copier); !s.ok()) {
    return absl::DataLossError(StrCat("a WAL batch cannot be split: ", s.ToString()));
  }
  WalBatch part{.seq = from, .count = static_cast<uint32_t>(b.last() - from + 1), .rep = copier.out.Data()};
  if (copier.out.Count() != part.count) return absl::DataLossError("a WAL batch does not hold its count of records");
  return part;
}

absl::StatusOr<uint64_t> NewestStateSequence(S3Client& client) {
  auto descs = ListDescriptors(client);
  if (!descs.ok()) return descs.status();
  auto wal = ListWalObjects(client);
  if (!wal.ok()) return wal.status();
  uint64_t newest = 0;
  for (const SnapshotDescriptor& d : *descs) newest = std::max(newest, d.seq);
  for (const WalObjectKey& w : *wal) newest = std::max(newest, w.last);
  return newest;
}

absl::Status DeleteKeys(S3Client& client, const std::vector<std::string>& keys) {
  std::vector<S3ObjectVersion> batch;
  for (size_t i = 0; i < keys.size(); ++i) {
    batch.push_back({.key = keys[i]});
    if (batch.size() == 1000 || i + 1 == keys.size()) {
      if (auto s = client.DeleteObjects(batch); !s.ok()) return s;
      batch.clear();
    }
  }
  return absl::OkStatus();
}

}  // namespace shredd
