// Internal to daemon/shred: the shredder's record keys, associated data and
// staged-record codecs, shared by shredder.cc (plan, destroy) and
// shredder_certify.cc (certify, load). Key prefixes: daemon/storage/keyspace.h.
#ifndef SHREDD_DAEMON_SHRED_SHREDDER_RECORDS_H_
#define SHREDD_DAEMON_SHRED_SHREDDER_RECORDS_H_

#include <sodium.h>
#include <sys/resource.h>

#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

#include "daemon/base/coding.h"
#include "daemon/base/strings.h"
#include "daemon/crypto/digest.h"
#include "daemon/items/item_store.h"
#include "daemon/storage/keyspace.h"
#include "formats/certificate.h"

namespace shredd::shred_internal {

using nlohmann::json;
using nlohmann::ordered_json;

// CPU seconds of the whole daemon so far (all threads, RocksDB's background
// work included): the log's phase figures stay comparable on a busy machine.
inline double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

inline std::string RequestKey(std::string_view id) { return StrCat(keyspace::kRequest, id); }
// The value of an "r" record: the certificate id, then, for a request id the
// client gave, a space and the hex of what that id was used for (records of
// earlier versions hold the certificate id alone).
inline std::string RequestRecord(std::string_view cert_id, std::string_view binding) {
  return binding.empty() ? std::string(cert_id) : StrCat(cert_id, " ", binding);
}
struct RequestRecordParts {
  std::string_view cert_id;
  std::string_view binding;  // empty: not bound
};
inline RequestRecordParts ParseRequestRecord(std::string_view value) {
  const size_t space = value.find(' ');
  if (space == std::string_view::npos) return {value, {}};
  return {value.substr(0, space), value.substr(space + 1)};
}
// What a client's request id is bound to by its first use: the digests to
// shred (sorted, without repeats) and the reason, which go into the
// certificate. The same id with other digests or another reason is another
// request, refused rather than answered with the first one's certificate.
inline std::string RequestBinding(std::span<const Sha256> sorted_hashes, std::string_view reason) {
  Sha256Hasher h;
  h.Update(std::string_view("shredd/request-binding/v1\0", 26));
  for (const Sha256& x : sorted_hashes) h.Update({reinterpret_cast<const char*>(x.data()), x.size()});
  h.Update(reason);
  return HexEncode(h.Finish());
}
inline std::string PendingKey(std::string_view id) { return StrCat(keyspace::kPending, id); }
inline std::string CertKey(std::string_view id) { return StrCat(keyspace::kCertificate, id); }
inline std::string ManifestKey(std::string_view id) { return StrCat(keyspace::kManifest, id); }
inline std::string PendingAd(std::string_view id) { return StrCat("shredd/pending/v1", id); }
inline std::string ManifestAd(std::string_view id) { return StrCat("shredd/manifest/v1", id); }

inline std::string NewCertificateId() { return RandomHex(16); }

// The items of a stored manifest, checked member by member (a stored
// record that authenticated but has the wrong shape is DATA_LOSS, never an
// exception).
inline absl::StatusOr<verify::ItemCommitment> CommitmentFrom(const json& items) {
  if (!items.is_array()) return absl::DataLossError("stored manifest has no item list");
  std::vector<verify::ItemEntry> entries;
  for (const auto& e : items) {
    auto member = [&e](const char* name) -> const json* {
      auto it = e.is_object() ? e.find(name) : e.end();
      return it == e.end() ? nullptr : &*it;
    };
    const json *kind = member("kind"), *digest = member("digest"), *size = member("size"), *salt = member("salt");
    if (kind == nullptr || !kind->is_string() || digest == nullptr || !digest->is_string() || size == nullptr ||
        !size->is_number_unsigned() || salt == nullptr || !salt->is_string()) {
      return absl::DataLossError("stored manifest holds a malformed item");
    }
    verify::ItemEntry ie;
    ie.kind = kind->get<std::string>();
    ie.digest = digest->get<std::string>();
    ie.size = size->get<uint64_t>();
    auto raw_salt = HexDecode(salt->get<std::string>());
    if (!raw_salt || raw_salt->size() != 32) return absl::DataLossError("stored manifest holds a malformed salt");
    std::memcpy(ie.salt.data(), raw_salt->data(), 32);
    entries.push_back(std::move(ie));
  }
  return verify::ItemCommitment::Create(std::move(entries));
}

// Chunks of at least this many staged records (or full chunks of a smaller
// epoch_items, as in tests) are deleted with one range deletion (see Destroy).
constexpr size_t kRangeDeleteMin = 1024;

inline std::string ScopeOf(std::string_view cert_id) {
  auto raw = HexDecode(cert_id);
  if (raw && raw->size() == 16) return *raw;
  const Sha256 h = Sha256Hasher::Of(cert_id);
  return std::string(reinterpret_cast<const char*>(h.data()), 16);
}
inline std::string StagedAd(std::string_view key) { return StrCat("shredd/staged/v1", key); }
inline std::string ManifestChunkKey(std::string_view cert_id, uint32_t seq) {
  return StrCat(keyspace::kManifestChunk, cert_id, BigEndian32(seq));
}
inline std::string ManifestChunkAd(std::string_view cert_id, uint32_t seq) {
  return StrCat("shredd/manifest-chunk/v1", cert_id, BigEndian32(seq));
}
// The end of a key range that starts with `prefix` (prefix + 0xff...).
inline std::string RangeEnd(std::string_view prefix) { return StrCat(prefix, std::string(40, '\xff')); }

// A staged item ("qs" record), in the clear.
struct Staged {
  ItemKey item_key{};
  ItemKind kind = ItemKind::kPhoto;
  bool inline_content = true;
  std::string object_id;
  std::vector<std::string> delete_keys;
};

inline std::string EncodeStaged(const StoredItem& item, const std::vector<std::string>& delete_keys) {
  std::string v;
  v.append(reinterpret_cast<const char*>(item.item_key.data()), 32);
  v.push_back(static_cast<char>(item.info.metadata.kind));
  v.push_back(item.inline_content ? 1 : 0);
  v.push_back(static_cast<char>(item.object_id.size()));
  v += item.object_id;
  for (const auto& k : delete_keys) {
    v.push_back(static_cast<char>(k.size() >> 8));
    v.push_back(static_cast<char>(k.size() & 0xff));
    v += k;
  }
  return v;
}

inline absl::StatusOr<Staged> DecodeStaged(std::string_view v) {
  Staged s;
  if (v.size() < 35) return absl::DataLossError("staged shred record is truncated");
  std::memcpy(s.item_key.data(), v.data(), 32);
  s.kind = static_cast<ItemKind>(v[32]);
  s.inline_content = v[33] != 0;
  size_t oid = static_cast<uint8_t>(v[34]);
  if (v.size() < 35 + oid) return absl::DataLossError("staged shred record is truncated");
  s.object_id = std::string(v.substr(35, oid));
  v.remove_prefix(35 + oid);
  while (!v.empty()) {
    if (v.size() < 2) return absl::DataLossError("staged shred record is truncated");
    size_t n = (static_cast<uint8_t>(v[0]) << 8) | static_cast<uint8_t>(v[1]);
    if (v.size() < 2 + n) return absl::DataLossError("staged shred record is truncated");
    s.delete_keys.emplace_back(v.substr(2, n));
    v.remove_prefix(2 + n);
  }
  return s;
}

// A manifest entry ("ql" record): kind(1) size(8) hash(32) salt(32).
inline std::string EncodeEntry(ItemKind kind, uint64_t size, const Sha256& hash, const uint8_t salt[32]) {
  std::string v;
  v.push_back(static_cast<char>(kind));
  v += BigEndian64(size);
  v.append(reinterpret_cast<const char*>(hash.data()), 32);
  v.append(reinterpret_cast<const char*>(salt), 32);
  return v;
}

inline void AppendItemJson(const verify::ItemEntry& e, std::string* out) {
  StrAppend(out, "{\"kind\":\"", e.kind, "\",\"digest\":\"", e.digest, "\",\"size\":", e.size, ",\"salt\":\"",
            HexEncode(std::string_view(reinterpret_cast<const char*>(e.salt.data()), 32)), "\"}");
}

}  // namespace shredd::shred_internal

#endif  // SHREDD_DAEMON_SHRED_SHREDDER_RECORDS_H_
