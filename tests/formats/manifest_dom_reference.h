// Test-only: the DOM manifest verifier that VerifyManifest used before the
// streaming one (formats/manifest.cc), kept verbatim as the reference
// for differential tests: both must accept and reject the same manifests,
// with the same messages except for JSON syntax errors.

#ifndef SHREDD_TESTS_VERIFY_MANIFEST_DOM_REFERENCE_H_
#define SHREDD_TESTS_VERIFY_MANIFEST_DOM_REFERENCE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/encoding.h"
#include "formats/merkle.h"
#include "formats/str_util.h"

namespace shredd::verify::dom_reference {

using internal::Cat;
using internal::Sv;
using nlohmann::json;

inline constexpr std::string_view kDigestPrefix = "sha256:";

inline absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

// --- Typed access to parsed JSON, each failure naming the JSON path. ------

inline absl::StatusOr<const json*> Member(const json& obj, std::string_view where, const char* name) {
  if (!obj.is_object()) {
    return Invalid(Cat(where, " is not a JSON object"));
  }
  auto it = obj.find(name);
  if (it == obj.end()) {
    return Invalid(Cat(where, " has no \"", name, "\""));
  }
  return &*it;
}

inline absl::StatusOr<std::string> GetString(const json& obj, std::string_view where, const char* name) {
  absl::StatusOr<const json*> v = Member(obj, where, name);
  if (!v.ok()) return v.status();
  if (!(*v)->is_string()) {
    return Invalid(Cat(where, ".", name, " is a ", (*v)->type_name(), ", not a string"));
  }
  return (*v)->get<std::string>();
}

inline absl::StatusOr<uint64_t> GetUint(const json& obj, std::string_view where, const char* name) {
  absl::StatusOr<const json*> v = Member(obj, where, name);
  if (!v.ok()) return v.status();
  if (!(*v)->is_number_unsigned()) {
    return Invalid(Cat(where, ".", name, " is not a non-negative integer"));
  }
  return (*v)->get<uint64_t>();
}

inline absl::StatusOr<const json*> GetTyped(const json& obj, std::string_view where, const char* name,
                                            json::value_t type) {
  absl::StatusOr<const json*> v = Member(obj, where, name);
  if (!v.ok()) return v.status();
  if ((*v)->type() != type) {
    return Invalid(Cat(where, ".", name, " is a ", (*v)->type_name(), ", not an ", json(type).type_name()));
  }
  return v;
}

inline absl::Status ExpectString(const json& obj, std::string_view where, const char* name, std::string_view want) {
  absl::StatusOr<std::string> got = GetString(obj, where, name);
  if (!got.ok()) return got.status();
  if (*got != want) {
    return Invalid(Cat(where, ".", name, " is \"", *got, "\", expected \"", want, "\""));
  }
  return absl::OkStatus();
}

inline absl::StatusOr<json> ParseJson(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return Invalid(Cat(what, " is not valid JSON: ", e.what()));
  }
}

inline absl::StatusOr<Hash> GetHash(const json& obj, std::string_view where, const char* name) {
  absl::StatusOr<std::string> hex = GetString(obj, where, name);
  if (!hex.ok()) return hex.status();
  absl::StatusOr<Hash> h = ParseHash(*hex);
  if (!h.ok()) {
    return Invalid(Cat(where, ".", name, ": ", h.status().message()));
  }
  return h;
}

// "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (RFC 3339, UTC only).
inline bool IsValidDigest(std::string_view digest) {
  if (!absl::StartsWith(Sv(digest), Sv(kDigestPrefix))) return false;
  digest.remove_prefix(kDigestPrefix.size());
  return digest.size() == 64 && HexDecode(digest).ok();
}

// Parses and validates one {"kind","digest","size","salt"} object.
inline absl::StatusOr<ItemEntry> ParseItem(const json& obj, std::string_view where) {
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

inline std::string Short(const Hash& h) { return HexEncode(h).substr(0, 16) + ".."; }

// Checks the certificate header fields shared by manifests and receipts.
inline absl::Status CheckHeader(const VerifiedCertificate& cert, const json& doc, std::string_view what,
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

inline absl::Status VerifyOrderPrivate(const VerifiedCertificate& cert, const json& manifest) {
  const json& pred = cert.predicate;
  if (!pred.contains("order") || !pred["order"].is_object() || !pred["order"].contains("privateCommitment")) {
    return absl::OkStatus();
  }
  if (!pred["order"]["privateCommitment"].is_string()) {
    return Invalid("predicate.order.privateCommitment is not a string");
  }
  if (!manifest.contains("order") || !manifest["order"].is_object()) {
    return Invalid("manifest lacks the order's private fields that the certificate commits to");
  }
  const json& o = manifest["order"];
  if (!o.contains("private") || !o["private"].is_string() || !o.contains("salt") || !o["salt"].is_string()) {
    return Invalid("manifest.order needs string fields \"private\" and \"salt\"");
  }
  absl::StatusOr<std::string> salt = HexDecode(o["salt"].get<std::string>());
  if (!salt.ok() || salt->size() != 32) return Invalid("manifest.order.salt is not 64 hex characters");
  const Hash h = Sha256(*salt + o["private"].get<std::string>());
  if (HexEncode(h) != pred["order"]["privateCommitment"].get<std::string>()) {
    return Invalid(
        "manifest.order does not match the certificate's privateCommitment (altered requester or selectors)");
  }
  return absl::OkStatus();
}

inline absl::Status VerifyManifest(const VerifiedCertificate& cert, std::string_view manifest_json) {
  absl::StatusOr<json> doc = ParseJson(manifest_json, "manifest");
  if (!doc.ok()) return doc.status();
  try {
    if (absl::Status s = CheckHeader(cert, *doc, "manifest", kManifestType); !s.ok()) {
      return s;
    }
    absl::StatusOr<const json*> items = GetTyped(*doc, "manifest", "items", json::value_t::array);
    if (!items.ok()) return items.status();

    std::vector<Hash> leaves;
    std::vector<std::string_view> digests;
    std::map<std::string, uint64_t> by_kind;
    leaves.reserve((*items)->size());
    for (size_t i = 0; i < (*items)->size(); ++i) {
      absl::StatusOr<ItemEntry> e = ParseItem((**items)[i], Cat("manifest.items[", i, "]"));
      if (!e.ok()) return e.status();
      leaves.push_back(ItemLeafHash(*e));
      digests.push_back((**items)[i]["digest"].get_ref<const std::string&>());
      ++by_kind[e->kind];
    }
    if (leaves.size() != cert.item_count) {
      return Invalid(Cat("manifest lists ", leaves.size(), " items, certificate counts ", cert.item_count));
    }
    std::sort(digests.begin(), digests.end());
    if (auto dup = std::adjacent_find(digests.begin(), digests.end()); dup != digests.end()) {
      return Invalid(Cat("manifest lists item ", *dup, " twice"));
    }
    for (const auto& [kind, n] : by_kind) {
      auto it = cert.count_by_kind.find(kind);
      const uint64_t want = it == cert.count_by_kind.end() ? 0 : it->second;
      if (n != want) {
        return Invalid(Cat("manifest lists ", n, " items of kind ", kind, ", certificate counts ", want));
      }
    }
    for (const auto& [kind, n] : cert.count_by_kind) {
      if (n != 0 && !by_kind.contains(kind)) {
        return Invalid(Cat("manifest lists no items of kind ", kind, ", certificate counts ", n));
      }
    }
    // Tree order: strictly ascending leaf hashes. Checked even when the root
    // matches, since an issuer that skipped the sort would leak order.
    std::string order_error;
    for (size_t i = 1; i < leaves.size(); ++i) {
      if (!(leaves[i - 1] < leaves[i])) {
        order_error = Cat("manifest.items[", i, "] is out of tree order (leaf hashes must ascend)");
        break;
      }
    }
    const Hash root = RootFromLeafHashes(leaves);
    if (root != cert.merkle_root) {
      return Invalid(Cat("manifest Merkle root ", HexEncode(root), " does not match certificate root ",
                         HexEncode(cert.merkle_root), order_error.empty() ? "" : "; ", order_error));
    }
    if (!order_error.empty()) return Invalid(order_error);
    return VerifyOrderPrivate(cert, *doc);
  } catch (const json::exception& e) {
    return Invalid(Cat("malformed manifest: ", e.what()));
  }
}

}  // namespace shredd::verify::dom_reference

#endif  // SHREDD_TESTS_VERIFY_MANIFEST_DOM_REFERENCE_H_
