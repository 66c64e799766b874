#include "formats/certificate.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "formats/dsse.h"
#include "formats/encoding.h"
#include "formats/json_fields.h"
#include "formats/str_util.h"
#include "formats/strict_json.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::string_view kDigestPrefix = "sha256:";

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

using internal::GetString;
using internal::GetTyped;
using internal::GetUint;
using internal::Member;

absl::Status ExpectString(const json& obj, std::string_view where, const char* name, std::string_view want) {
  absl::StatusOr<std::string> got = GetString(obj, where, name);
  if (!got.ok()) return got.status();
  if (*got != want) {
    return Invalid(Cat(where, ".", name, " is \"", *got, "\", expected \"", want, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ParseJson(std::string_view text, std::string_view what) { return ParseStrictJson(text, what); }

absl::StatusOr<Hash> GetHash(const json& obj, std::string_view where, const char* name) {
  absl::StatusOr<std::string> hex = GetString(obj, where, name);
  if (!hex.ok()) return hex.status();
  absl::StatusOr<Hash> h = ParseHash(*hex);
  if (!h.ok()) {
    return Invalid(Cat(where, ".", name, ": ", h.status().message()));
  }
  return h;
}

// "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (RFC 3339, UTC only).
bool IsRfc3339Utc(std::string_view s) {
  auto digits = [&](size_t pos, size_t n, int lo, int hi) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi;
  };
  if (s.size() < 20 || !digits(0, 4, 0, 9999) || s[4] != '-' || !digits(5, 2, 1, 12) || s[7] != '-' ||
      !digits(8, 2, 1, 31) || s[10] != 'T' || !digits(11, 2, 0, 23) || s[13] != ':' || !digits(14, 2, 0, 59) ||
      s[16] != ':' || !digits(17, 2, 0, 60)) {
    return false;
  }
  size_t pos = 19;
  if (s[pos] == '.') {
    ++pos;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return false;
  }
  return pos + 1 == s.size() && s[pos] == 'Z';
}

// Sort key of a timestamp accepted by IsRfc3339Utc: the seconds part, then
// the fraction right-padded to a fixed width, so that ".5" > "" and
// ".25" < ".5" compare as numbers.
std::string TimeKey(std::string_view t) {
  std::string key(t.substr(0, 19));
  std::string_view fraction = t.substr(19);
  fraction.remove_suffix(1);                         // 'Z'
  if (!fraction.empty()) fraction.remove_prefix(1);  // '.'
  key.append(fraction);
  key.append(fraction.size() < 32 ? 32 - fraction.size() : 0, '0');
  return key;
}

bool IsValidDigest(std::string_view digest) {
  if (!absl::StartsWith(Sv(digest), Sv(kDigestPrefix))) return false;
  digest.remove_prefix(kDigestPrefix.size());
  return digest.size() == 64 && HexDecode(digest).ok();
}

// Parses and validates one {"kind","digest","size","salt"} object.
absl::StatusOr<ItemEntry> ParseItem(const json& obj, std::string_view where) {
  ItemEntry e;
  absl::StatusOr<std::string> kind = GetString(obj, where, "kind");
  if (!kind.ok()) return kind.status();
  e.kind = *std::move(kind);
  absl::StatusOr<std::string> digest = GetString(obj, where, "digest");
  if (!digest.ok()) return digest.status();
  e.digest = *std::move(digest);
  absl::StatusOr<uint64_t> size = GetUint(obj, where, "size");
  if (!size.ok()) return size.status();
  e.size = *size;
  absl::StatusOr<Hash> salt = GetHash(obj, where, "salt");
  if (!salt.ok()) return salt.status();
  e.salt = *salt;
  if (absl::Status s = ValidateItemEntry(e); !s.ok()) {
    return Invalid(Cat(where, ": ", s.message()));
  }
  return e;
}

ordered_json ItemJson(const ItemEntry& e) {
  ordered_json j;
  j["kind"] = e.kind;
  j["digest"] = e.digest;
  j["size"] = e.size;
  j["salt"] = HexEncode(e.salt);
  return j;
}

std::string Short(const Hash& h) { return HexEncode(h).substr(0, 16) + ".."; }

// Checks the certificate header fields shared by manifests and receipts.
absl::Status CheckHeader(const VerifiedCertificate& cert, const json& doc, std::string_view what,
                         std::string_view type) {
  if (!doc.is_object()) return Invalid(Cat(what, " is not a JSON object"));
  if (absl::Status s = ExpectString(doc, what, "type", type); !s.ok()) return s;
  absl::StatusOr<std::string> id = GetString(doc, what, "certificateId");
  if (!id.ok()) return id.status();
  if (*id != cert.certificate_id) {
    return Invalid(Cat(what, " is for certificate \"", *id, "\", not \"", cert.certificate_id, "\""));
  }
  absl::StatusOr<Hash> root = GetHash(doc, what, "merkleRoot");
  if (!root.ok()) return root.status();
  if (*root != cert.merkle_root) {
    return Invalid(
        Cat(what, " states Merkle root ", Short(*root), " but the certificate root is ", Short(cert.merkle_root)));
  }
  return absl::OkStatus();
}

// Validates the predicate fields other than "items"; see FORMATS.md.
absl::Status CheckPredicateShape(const json& pred) {
  constexpr std::string_view p = "predicate";
  for (const char* name : {"request", "method", "destruction", "times", "shredd"}) {
    if (auto v = GetTyped(pred, p, name, json::value_t::object); !v.ok()) {
      return v.status();
    }
  }
  if (auto v = GetString(pred["request"], "predicate.request", "id"); !v.ok()) {
    return v.status();
  }
  std::map<std::string, std::string> times;
  for (const char* name : {"requested", "destroyed", "issued"}) {
    absl::StatusOr<std::string> t = GetString(pred["times"], "predicate.times", name);
    if (!t.ok()) return t.status();
    if (!IsRfc3339Utc(*t)) {
      return Invalid(Cat("predicate.times.", name, " \"", *t, "\" is not an RFC 3339 UTC timestamp"));
    }
    times[name] = *std::move(t);
  }
  // Invariant 2: a certificate is signed only after the destruction.
  if (TimeKey(times["issued"]) < TimeKey(times["destroyed"])) {
    return Invalid(
        Cat("predicate.times.issued ", times["issued"], " is before predicate.times.destroyed ", times["destroyed"]));
  }
  for (const char* name : {"derivedModels", "retainedUnderHold"}) {
    if (pred.contains(name) && !pred[name].is_array()) {
      return Invalid(Cat("predicate.", name, " is not an array"));
    }
  }
  if (pred.contains("log") && !pred["log"].is_object()) {
    return Invalid("predicate.log is not an object");
  }
  return absl::OkStatus();
}

absl::StatusOr<VerifiedCertificate> VerifyStatement(std::string statement) {
  absl::StatusOr<json> doc = ParseJson(statement, "certificate payload");
  if (!doc.ok()) return doc.status();
  constexpr std::string_view st = "statement";
  if (!doc->is_object()) return Invalid("statement is not a JSON object");
  if (auto s = ExpectString(*doc, st, "_type", kStatementType); !s.ok()) return s;
  if (auto s = ExpectString(*doc, st, "predicateType", kDeletionPredicateType); !s.ok()) {
    return s;
  }
  absl::StatusOr<const json*> pred = GetTyped(*doc, st, "predicate", json::value_t::object);
  if (!pred.ok()) return pred.status();
  absl::StatusOr<const json*> subjects = GetTyped(*doc, st, "subject", json::value_t::array);
  if (!subjects.ok()) return subjects.status();
  if ((*subjects)->size() != 1) {
    return Invalid(Cat("statement has ", (*subjects)->size(), " subjects, expected exactly 1"));
  }
  const json& subject = (**subjects)[0];

  VerifiedCertificate cert;
  absl::StatusOr<std::string> id = GetString(**pred, "predicate", "certificateId");
  if (!id.ok()) return id.status();
  if (id->empty()) return Invalid("predicate.certificateId is empty");
  cert.certificate_id = *std::move(id);

  if (auto s = ExpectString(subject, "subject[0]", "name", Cat(kSubjectNamePrefix, cert.certificate_id)); !s.ok()) {
    return s;
  }
  absl::StatusOr<const json*> subject_digest = GetTyped(subject, "subject[0]", "digest", json::value_t::object);
  if (!subject_digest.ok()) return subject_digest.status();
  absl::StatusOr<Hash> subject_root = GetHash(**subject_digest, "subject[0].digest", "sha256");
  if (!subject_root.ok()) return subject_root.status();

  absl::StatusOr<const json*> items = GetTyped(**pred, "predicate", "items", json::value_t::object);
  if (!items.ok()) return items.status();
  constexpr std::string_view it = "predicate.items";
  absl::StatusOr<Hash> root = GetHash(**items, it, "merkleRoot");
  if (!root.ok()) return root.status();
  if (*root != *subject_root) {
    return Invalid(
        Cat("subject digest ", Short(*subject_root), " differs from predicate.items.merkleRoot ", Short(*root)));
  }
  cert.merkle_root = *root;
  if (auto s = ExpectString(**items, it, "leafFormat", kLeafFormat); !s.ok()) {
    return s;
  }
  absl::StatusOr<uint64_t> count = GetUint(**items, it, "count");
  if (!count.ok()) return count.status();
  cert.item_count = *count;
  absl::StatusOr<const json*> by_kind = GetTyped(**items, it, "byKind", json::value_t::object);
  if (!by_kind.ok()) return by_kind.status();
  uint64_t sum = 0;
  for (const auto& [kind, n] : (*by_kind)->items()) {
    if (!n.is_number_unsigned()) {
      return Invalid(Cat("predicate.items.byKind.", kind, " is not a non-negative integer"));
    }
    const uint64_t v = n.get<uint64_t>();
    if (v > UINT64_MAX - sum) return Invalid("predicate.items.byKind overflows");
    sum += v;
    cert.count_by_kind[kind] = v;
  }
  if (sum != cert.item_count) {
    return Invalid(Cat("predicate.items.count is ", cert.item_count, " but byKind adds up to ", sum));
  }
  if (cert.item_count == 0 && cert.merkle_root != EmptyRoot()) {
    return Invalid(
        "certificate lists no items but its Merkle root is not "
        "the empty-tree root");
  }
  if (absl::Status s = CheckPredicateShape(**pred); !s.ok()) return s;

  cert.predicate = **pred;
  cert.statement = std::move(statement);
  return cert;
}

}  // namespace

absl::Status ValidateItemEntry(const ItemEntry& entry) {
  if (entry.kind != kKindPhoto && entry.kind != kKindModel) {
    return Invalid(Cat("item kind \"", entry.kind, "\" is neither \"photo\" nor \"model\""));
  }
  if (!IsValidDigest(entry.digest)) {
    return Invalid(Cat("item digest \"", entry.digest, "\" is not sha256:<64 lowercase hex>"));
  }
  return absl::OkStatus();
}

std::string ItemLeafInput(const ItemEntry& entry) {
  return Cat(kLeafFormat, " ", entry.kind, " ", entry.digest, " ", entry.size, " ", HexEncode(entry.salt));
}

Hash ItemLeafHash(const ItemEntry& entry) { return LeafHash(ItemLeafInput(entry)); }

absl::StatusOr<ItemCommitment> ItemCommitment::Create(std::vector<ItemEntry> entries) {
  std::vector<std::pair<Hash, size_t>> order;
  order.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (absl::Status s = ValidateItemEntry(entries[i]); !s.ok()) return s;
    order.emplace_back(ItemLeafHash(entries[i]), i);
  }
  {
    std::vector<std::string_view> digests;
    digests.reserve(entries.size());
    for (const ItemEntry& e : entries) digests.push_back(e.digest);
    std::sort(digests.begin(), digests.end());
    auto dup = std::adjacent_find(digests.begin(), digests.end());
    if (dup != digests.end()) {
      return Invalid(Cat("item ", *dup, " is listed twice"));
    }
  }
  std::sort(order.begin(), order.end());
  std::vector<ItemEntry> sorted;
  std::vector<Hash> leaves;
  sorted.reserve(entries.size());
  leaves.reserve(entries.size());
  for (const auto& [hash, i] : order) {
    sorted.push_back(std::move(entries[i]));
    leaves.push_back(hash);
  }
  return ItemCommitment(std::move(sorted), MerkleTree(std::move(leaves)));
}

std::map<std::string, uint64_t> ItemCommitment::CountByKind() const {
  std::map<std::string, uint64_t> counts = {{std::string(kKindPhoto), 0}, {std::string(kKindModel), 0}};
  for (const ItemEntry& e : entries_) ++counts[e.kind];
  return counts;
}

std::optional<uint64_t> ItemCommitment::IndexOf(std::string_view digest) const {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].digest == digest) return i;
  }
  return std::nullopt;
}

ordered_json ItemCommitment::ItemsPredicate() const {
  const std::map<std::string, uint64_t> counts = CountByKind();
  ordered_json items;
  items["count"] = size();
  items["byKind"] = {{kKindPhoto, counts.at(std::string(kKindPhoto))},
                     {kKindModel, counts.at(std::string(kKindModel))}};
  items["merkleRoot"] = HexEncode(root());
  items["leafFormat"] = kLeafFormat;
  return items;
}

std::string ItemCommitment::ManifestJson(std::string_view certificate_id) const {
  ordered_json doc;
  doc["type"] = kManifestType;
  doc["certificateId"] = certificate_id;
  doc["merkleRoot"] = HexEncode(root());
  doc["items"] = ordered_json::array();
  for (const ItemEntry& e : entries_) doc["items"].push_back(ItemJson(e));
  return doc.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

absl::StatusOr<std::string> ItemCommitment::ReceiptJson(std::string_view certificate_id, uint64_t index) const {
  if (index >= size()) {
    return absl::OutOfRangeError(Cat("receipt index ", index, " is outside the ", size(), " items"));
  }
  const std::vector<Hash> path = tree_.InclusionProof(index);
  return ReceiptJsonFor(certificate_id, root(), size(), index, entries_[index], path);
}

std::string ReceiptJsonFor(std::string_view certificate_id, const Hash& root, uint64_t tree_size, uint64_t index,
                           const ItemEntry& entry, std::span<const Hash> path) {
  ordered_json doc;
  doc["type"] = kReceiptType;
  doc["certificateId"] = certificate_id;
  doc["merkleRoot"] = HexEncode(root);
  doc["treeSize"] = tree_size;
  doc["leafIndex"] = index;
  doc["item"] = ItemJson(entry);
  doc["inclusionPath"] = ordered_json::array();
  for (const Hash& h : path) doc["inclusionPath"].push_back(HexEncode(h));
  return doc.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

absl::StatusOr<std::string> StatementJson(const ordered_json& predicate) {
  if (!predicate.is_object()) return Invalid("predicate is not a JSON object");
  auto id = predicate.find("certificateId");
  auto items = predicate.find("items");
  if (id == predicate.end() || !id->is_string() || id->get<std::string>().empty()) {
    return Invalid("predicate.certificateId must be a non-empty string");
  }
  if (items == predicate.end() || !items->is_object() || !items->contains("merkleRoot") ||
      !(*items)["merkleRoot"].is_string()) {
    return Invalid("predicate.items.merkleRoot must be a string");
  }
  ordered_json statement;
  statement["_type"] = kStatementType;
  statement["subject"] = ordered_json::array(
      {{{"name", Cat(kSubjectNamePrefix, id->get<std::string>())}, {"digest", {{"sha256", (*items)["merkleRoot"]}}}}});
  statement["predicateType"] = kDeletionPredicateType;
  statement["predicate"] = predicate;
  try {
    return statement.dump(-1, ' ', false, ordered_json::error_handler_t::strict);
  } catch (const ordered_json::exception& e) {
    return Invalid(Cat("predicate cannot be serialized: ", e.what()));
  }
}

absl::StatusOr<std::string> SignCertificate(std::string_view statement_json, const PublicKey& key,
                                            EnvelopeSigner sign) {
  return SignEnvelope(kCertificatePayloadType, statement_json, KeyId(key), sign);
}

std::string SignCertificate(std::string_view statement_json, SecretKeySpan secret_key) {
  // Signing with a key in memory cannot fail.
  return *SignCertificate(
      statement_json, PublicKeyOf(secret_key),
      [&](std::string_view pae) -> absl::StatusOr<std::string> { return SignEd25519(secret_key, pae); });
}

absl::StatusOr<VerifiedCertificate> VerifyCertificate(std::string_view envelope_json, const PublicKey& key) {
  absl::StatusOr<Envelope> env = ParseEnvelope(envelope_json);
  if (!env.ok()) return env.status();
  if (env->payload_type != kCertificatePayloadType) {
    return Invalid(
        Cat("envelope payloadType is \"", env->payload_type, "\", expected \"", kCertificatePayloadType, "\""));
  }
  const std::string keyid = KeyId(key);
  const std::string pae = PreAuthEncoding(env->payload_type, env->payload);
  std::vector<std::string> other_keyids;
  size_t tried = 0;
  bool verified = false;
  for (const Signature& sig : env->signatures) {
    if (!sig.keyid.empty() && sig.keyid != keyid) {
      other_keyids.push_back(sig.keyid);
      continue;
    }
    ++tried;
    if (VerifyEd25519(key, pae, sig.sig).ok()) {
      verified = true;
      break;
    }
  }
  if (!verified) {
    if (tried == 0) {
      return absl::UnauthenticatedError(Cat("no signature is by the given key ", keyid, " (signatures are by ",
                                            absl::StrJoin(other_keyids, ", "), ")"));
    }
    return absl::UnauthenticatedError(Cat("signature does not verify under the given key ", keyid));
  }
  // Parse only authenticated bytes. nlohmann throws on type mismatches that
  // the checks above should rule out; treat any such escape as malformed.
  try {
    absl::StatusOr<VerifiedCertificate> cert = VerifyStatement(env->payload);
    if (cert.ok()) cert->keyid = keyid;
    return cert;
  } catch (const json::exception& e) {
    return Invalid(Cat("malformed certificate payload: ", e.what()));
  }
}

// VerifyManifest() is in manifest.cc (streaming, bounded memory).

absl::Status VerifyReceipt(const VerifiedCertificate& cert, std::string_view receipt_json,
                           std::string_view item_digest) {
  absl::StatusOr<json> doc = ParseJson(receipt_json, "receipt");
  if (!doc.ok()) return doc.status();
  return VerifyReceiptJson(cert, *doc, item_digest);
}

absl::Status VerifyReceiptJson(const VerifiedCertificate& cert, const json& doc, std::string_view item_digest) {
  try {
    if (absl::Status s = CheckHeader(cert, doc, "receipt", kReceiptType); !s.ok()) {
      return s;
    }
    absl::StatusOr<uint64_t> size = GetUint(doc, "receipt", "treeSize");
    if (!size.ok()) return size.status();
    if (*size != cert.item_count) {
      return Invalid(Cat("receipt treeSize ", *size, " differs from the certificate's item count ", cert.item_count));
    }
    absl::StatusOr<uint64_t> index = GetUint(doc, "receipt", "leafIndex");
    if (!index.ok()) return index.status();
    absl::StatusOr<const json*> item = GetTyped(doc, "receipt", "item", json::value_t::object);
    if (!item.ok()) return item.status();
    absl::StatusOr<ItemEntry> entry = ParseItem(**item, "receipt.item");
    if (!entry.ok()) return entry.status();
    if (entry->digest != item_digest) {
      return Invalid(Cat("receipt is for item ", entry->digest, ", not ", item_digest));
    }
    absl::StatusOr<const json*> path_json = GetTyped(doc, "receipt", "inclusionPath", json::value_t::array);
    if (!path_json.ok()) return path_json.status();
    std::vector<Hash> path;
    for (size_t i = 0; i < (*path_json)->size(); ++i) {
      const json& h = (**path_json)[i];
      absl::StatusOr<Hash> parsed =
          h.is_string() ? ParseHash(h.get_ref<const std::string&>()) : absl::StatusOr<Hash>(Invalid("not a string"));
      if (!parsed.ok()) {
        return Invalid(Cat("receipt.inclusionPath[", i, "]: ", parsed.status().message()));
      }
      path.push_back(*parsed);
    }
    if (absl::Status s = VerifyInclusion(*index, *size, ItemLeafHash(*entry), path, cert.merkle_root); !s.ok()) {
      return Invalid(Cat("receipt does not prove inclusion: ", s.message()));
    }
    return absl::OkStatus();
  } catch (const json::exception& e) {
    return Invalid(Cat("malformed receipt: ", e.what()));
  }
}

}  // namespace shredd::verify
