#include "formats/manifest.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "formats/compact_range.h"
#include "formats/encoding.h"
#include "formats/manifest_reader.h"
#include "formats/merkle.h"
#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;
using manifest_internal::FileInput;
using manifest_internal::Input;
using manifest_internal::LeafVisitor;
using manifest_internal::ManifestFacts;
using manifest_internal::MemoryInput;
using manifest_internal::ReadManifest;
using manifest_internal::ReadOptions;
using manifest_internal::StringMember;
using manifest_internal::Wellformed;

namespace {

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

std::string Short(const Hash& h) { return HexEncode(h).substr(0, 16) + ".."; }

// A second pass that fails to parse read other bytes than the first.
absl::Status Changed(const absl::Status& s) {
  return absl::IsInvalidArgument(s) ? Invalid("manifest changed while it was being read") : s;
}

// Sorts 64-bit values: one in-place pass that distributes them by their top
// byte into 256 buckets (American flag sort), then std::sort in each bucket
// (small enough for the cache). Faster than std::sort over millions.
void SortPrefixes(std::vector<uint64_t>& v) {
  if (v.size() < 4096) {
    std::sort(v.begin(), v.end());
    return;
  }
  size_t count[256] = {};
  for (uint64_t x : v) ++count[x >> 56];
  size_t begin[257], next[256];
  begin[0] = 0;
  for (int b = 0; b < 256; ++b) {
    begin[b + 1] = begin[b] + count[b];
    next[b] = begin[b];
  }
  for (int b = 0; b < 256; ++b) {
    while (next[b] < begin[b + 1]) {
      uint64_t x = v[next[b]];
      size_t d = x >> 56;
      while (d != static_cast<size_t>(b)) {  // follow the cycle
        std::swap(x, v[next[d]++]);
        d = x >> 56;
      }
      v[next[b]++] = x;
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::sort(v.begin() + static_cast<std::ptrdiff_t>(begin[b]), v.begin() + static_cast<std::ptrdiff_t>(begin[b + 1]));
  }
}

absl::Status CheckHeader(const ManifestFacts& f, const VerifiedCertificate& cert) {
  if (absl::Status s = StringMember(f.type, "type"); !s.ok()) return s;
  if (f.type.value != kManifestType) {
    return Invalid(Cat("manifest.type is \"", f.type.value, "\", expected \"", kManifestType, "\""));
  }
  if (absl::Status s = StringMember(f.certificate_id, "certificateId"); !s.ok()) return s;
  if (f.certificate_id.value != cert.certificate_id) {
    return Invalid(
        Cat("manifest is for certificate \"", f.certificate_id.value, "\", not \"", cert.certificate_id, "\""));
  }
  if (absl::Status s = StringMember(f.merkle_root, "merkleRoot"); !s.ok()) return s;
  absl::StatusOr<Hash> root = ParseHash(f.merkle_root.value);
  if (!root.ok()) return Invalid(Cat("manifest.merkleRoot: ", root.status().message()));
  if (*root != cert.merkle_root) {
    return Invalid(
        Cat("manifest states Merkle root ", Short(*root), " but the certificate root is ", Short(cert.merkle_root)));
  }
  if (!f.items_present) return Invalid("manifest has no \"items\"");
  if (f.items_type != nullptr) return Invalid(Cat("manifest.items is a ", f.items_type, ", not an array"));
  return absl::OkStatus();
}

// An order's private fields (requester, selectors) are committed to in the
// public predicate as predicate.order.privateCommitment =
// hex(SHA-256(salt || private)), and revealed in the manifest as
// {"order": {"private": "<JSON text>", "salt": "<64 hex>"}}.
absl::Status CheckOrderPrivate(const ManifestFacts& f, const VerifiedCertificate& cert) {
  const nlohmann::json& pred = cert.predicate;
  if (!pred.is_object() || !pred.contains("order") || !pred["order"].is_object() ||
      !pred["order"].contains("privateCommitment")) {
    return absl::OkStatus();
  }
  if (!pred["order"]["privateCommitment"].is_string()) {
    return Invalid("predicate.order.privateCommitment is not a string");
  }
  if (!f.order_present || !f.order_is_object) {
    return Invalid("manifest lacks the order's private fields that the certificate commits to");
  }
  if (!f.order_private.present || f.order_private.other_type != nullptr || !f.order_salt.present ||
      f.order_salt.other_type != nullptr) {
    return Invalid("manifest.order needs string fields \"private\" and \"salt\"");
  }
  absl::StatusOr<std::string> salt = HexDecode(f.order_salt.value);
  if (!salt.ok() || salt->size() != 32) return Invalid("manifest.order.salt is not 64 hex characters");
  const Hash h = Sha256(*salt + f.order_private.value);
  if (HexEncode(h) != pred["order"]["privateCommitment"].get<std::string>()) {
    return Invalid(
        "manifest.order does not match the certificate's privateCommitment (altered requester or selectors)");
  }
  return absl::OkStatus();
}

// Repeated digests: equal digests have equal 8-byte prefixes; only items
// whose prefixes collide need their full digests, from a second pass over
// `in` (which must read the same manifest again).
absl::Status CheckRepeats(ManifestFacts& f, Input* in, ManifestStats* stats) {
  SortPrefixes(f.prefixes);
  std::vector<uint64_t> colliding;
  for (size_t i = 1; i < f.prefixes.size(); ++i) {
    if (f.prefixes[i] == f.prefixes[i - 1] && (colliding.empty() || colliding.back() != f.prefixes[i])) {
      colliding.push_back(f.prefixes[i]);
    }
  }
  std::vector<uint64_t>().swap(f.prefixes);
  if (colliding.empty()) return absl::OkStatus();
  if (stats != nullptr) {
    stats->passes = 2;
    stats->prefix_collisions = colliding.size();
  }
  if (absl::Status s = in->Rewind(); !s.ok()) return s;
  ManifestFacts second;
  if (absl::Status s = ReadManifest(in, {.collect = &colliding}, &second); !s.ok()) return Changed(s);
  if (second.count != f.count || !second.item_error.ok() || second.root != f.root ||
      second.order_error_at != f.order_error_at) {
    return Invalid("manifest changed while it was being read");
  }
  std::sort(second.collected.begin(), second.collected.end());
  if (auto dup = std::adjacent_find(second.collected.begin(), second.collected.end()); dup != second.collected.end()) {
    return Invalid(Cat("manifest lists item ", *dup, " twice"));
  }
  return absl::OkStatus();
}

absl::Status CheckKindCounts(const ManifestFacts& f, const VerifiedCertificate& cert) {
  std::map<std::string, uint64_t> by_kind;
  if (f.models > 0) by_kind[std::string(kKindModel)] = f.models;
  if (f.photos > 0) by_kind[std::string(kKindPhoto)] = f.photos;
  for (const auto& [kind, n] : by_kind) {
    auto it = cert.count_by_kind.find(kind);
    const uint64_t want = it == cert.count_by_kind.end() ? 0 : it->second;
    if (n != want) return Invalid(Cat("manifest lists ", n, " items of kind ", kind, ", certificate counts ", want));
  }
  for (const auto& [kind, n] : cert.count_by_kind) {
    if (n != 0 && !by_kind.contains(kind)) {
      return Invalid(Cat("manifest lists no items of kind ", kind, ", certificate counts ", n));
    }
  }
  return absl::OkStatus();
}

// The verdict for `cert`, in the order the DOM verifier checked: header,
// first malformed item, counts, repeated digests, per-kind counts, root and
// tree order, and last the order's private fields.
absl::Status Verdict(ManifestFacts& f, const VerifiedCertificate& cert, Input* in, ManifestStats* stats) {
  if (f.not_object) return Invalid("manifest is not a JSON object");
  if (!f.dup_error.ok()) return f.dup_error;
  if (absl::Status s = CheckHeader(f, cert); !s.ok()) return s;
  if (!f.item_error.ok()) return f.item_error;
  if (f.count != cert.item_count) {
    return Invalid(Cat("manifest lists ", f.count, " items, certificate counts ", cert.item_count));
  }
  if (absl::Status s = CheckRepeats(f, in, stats); !s.ok()) return s;
  if (absl::Status s = CheckKindCounts(f, cert); !s.ok()) return s;
  // Tree order: strictly ascending leaf hashes. Checked even when the root
  // matches, since an issuer that skipped the sort would leak order.
  std::string order_error;
  if (f.order_error_at >= 0) {
    order_error = Cat("manifest.items[", f.order_error_at, "] is out of tree order (leaf hashes must ascend)");
  }
  if (f.root != cert.merkle_root) {
    return Invalid(Cat("manifest Merkle root ", HexEncode(f.root), " does not match certificate root ",
                       HexEncode(cert.merkle_root), order_error.empty() ? "" : "; ", order_error));
  }
  if (!order_error.empty()) return Invalid(order_error);
  return CheckOrderPrivate(f, cert);
}

absl::Status Verify(const VerifiedCertificate& cert, Input* in, ManifestStats* stats) {
  ManifestFacts facts;
  const absl::Status read = ReadManifest(in, {.expected_items = cert.item_count}, &facts);
  if (stats != nullptr) {
    stats->items = facts.count;
    stats->bytes = facts.bytes;
    stats->passes = 1;
  }
  if (!read.ok()) return read;
  return Verdict(facts, cert, in, stats);
}

// The ranges [lo, hi) whose subtree hashes make up PATH(m, D[lo:hi]) of
// RFC 6962 section 2.1.1, in path order (leaf's sibling first).
void PathRanges(uint64_t m, uint64_t lo, uint64_t hi, std::vector<std::pair<uint64_t, uint64_t>>* out) {
  if (hi - lo <= 1) return;
  uint64_t k = 1;
  while (k << 1 < hi - lo) k <<= 1;
  if (m < lo + k) {
    PathRanges(m, lo, lo + k, out);
    out->emplace_back(lo + k, hi);
  } else {
    PathRanges(m, lo + k, hi, out);
    out->emplace_back(lo, lo + k);
  }
}

// First pass: where the item is.
class FindItem final : public LeafVisitor {
 public:
  explicit FindItem(std::string_view digest) : digest_(digest) {}
  void Leaf(uint64_t index, const Hash&, std::string_view kind, std::string_view digest, uint64_t size,
            std::string_view salt) override {
    if (digest != digest_) return;
    ++found;
    this->index = index;
    entry.kind = std::string(kind);
    entry.digest = std::string(digest);
    entry.size = size;
    absl::StatusOr<std::string> s = HexDecode(salt);  // 64 hex: checked
    if (s.ok() && s->size() == entry.salt.size()) std::memcpy(entry.salt.data(), s->data(), entry.salt.size());
  }
  int found = 0;
  uint64_t index = 0;
  ItemEntry entry;

 private:
  std::string_view digest_;
};

// Second pass: the subtree hash of every range of the path, each folded
// with its own compact range as its leaves stream past (O(log^2 n) hashes).
class FoldRanges final : public LeafVisitor {
 public:
  explicit FoldRanges(std::vector<std::pair<uint64_t, uint64_t>> ranges)
      : ranges_(std::move(ranges)), trees_(ranges_.size()) {}
  void Leaf(uint64_t index, const Hash& leaf, std::string_view, std::string_view, uint64_t, std::string_view) override {
    for (size_t i = 0; i < ranges_.size(); ++i) {
      if (index >= ranges_[i].first && index < ranges_[i].second) {
        trees_[i].Append(leaf);
        return;
      }
    }
  }
  std::vector<Hash> Path() const {
    std::vector<Hash> path;
    for (const CompactRange& t : trees_) path.push_back(t.Root());
    return path;
  }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
  std::vector<CompactRange> trees_;
};

class CollectDigests final : public LeafVisitor {
 public:
  void Leaf(uint64_t, const Hash&, std::string_view, std::string_view digest, uint64_t, std::string_view) override {
    digests.emplace_back(digest);
  }
  std::vector<std::string> digests;
};

absl::StatusOr<std::string> Receipt(Input* in, std::string_view digest) {
  ManifestFacts first;
  FindItem find(digest);
  if (absl::Status s = ReadManifest(in, {.visitor = &find}, &first); !s.ok()) return s;
  if (absl::Status s = Wellformed(first); !s.ok()) return s;
  if (find.found == 0) return absl::NotFoundError(Cat(digest, " is not in the manifest"));
  if (find.found > 1) return Invalid(Cat("manifest lists item ", digest, " twice"));
  const uint64_t n = first.count;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  PathRanges(find.index, 0, n, &ranges);
  if (absl::Status s = in->Rewind(); !s.ok()) return s;
  ManifestFacts second;
  FoldRanges fold(ranges);
  if (absl::Status s = ReadManifest(in, {.visitor = &fold}, &second); !s.ok()) return Changed(s);
  if (second.count != n || second.root != first.root || !Wellformed(second).ok()) {
    return Invalid("manifest changed while it was being read");
  }
  return ReceiptJsonFor(first.certificate_id.value, first.root, n, find.index, find.entry, fold.Path());
}

// One pass for many receipts: every leaf hash (32 bytes an item) and the
// entries of the wanted digests.
class CollectLeaves final : public LeafVisitor {
 public:
  explicit CollectLeaves(const std::set<std::string>& wanted) : wanted_(wanted) {}
  void Leaf(uint64_t index, const Hash& leaf, std::string_view kind, std::string_view digest, uint64_t size,
            std::string_view salt) override {
    leaves.push_back(leaf);
    if (!wanted_.count(std::string(digest))) return;
    auto [it, fresh] = found.try_emplace(std::string(digest));
    if (!fresh) duplicate = std::string(digest);
    it->second.first = index;
    ItemEntry& e = it->second.second;
    e.kind = std::string(kind);
    e.digest = std::string(digest);
    e.size = size;
    absl::StatusOr<std::string> raw = HexDecode(salt);  // 64 hex: checked
    if (raw.ok() && raw->size() == e.salt.size()) std::memcpy(e.salt.data(), raw->data(), e.salt.size());
  }
  std::vector<Hash> leaves;
  std::map<std::string, std::pair<uint64_t, ItemEntry>> found;
  std::string duplicate;

 private:
  const std::set<std::string>& wanted_;
};

absl::StatusOr<std::map<std::string, std::string>> Receipts(Input* in, const std::set<std::string>& digests) {
  ManifestFacts facts;
  CollectLeaves collect(digests);
  if (absl::Status s = ReadManifest(in, {.visitor = &collect}, &facts); !s.ok()) return s;
  if (absl::Status s = Wellformed(facts); !s.ok()) return s;
  if (!collect.duplicate.empty()) return Invalid(Cat("manifest lists item ", collect.duplicate, " twice"));
  if (collect.leaves.size() != facts.count) return Invalid("manifest items could not all be read");
  const MerkleTree tree(std::move(collect.leaves));
  if (tree.root() != facts.root) return Invalid("manifest items do not hash to its merkleRoot");
  std::map<std::string, std::string> out;
  for (const auto& [digest, at] : collect.found) {
    out[digest] = ReceiptJsonFor(facts.certificate_id.value, facts.root, facts.count, at.first, at.second,
                                 tree.InclusionProof(at.first));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReceiptFromManifestFile(const std::string& path, std::string_view digest,
                                                    size_t buffer_bytes) {
  absl::StatusOr<std::unique_ptr<FileInput>> in = FileInput::Open(path, buffer_bytes);
  if (!in.ok()) return in.status();
  return Receipt(in->get(), digest);
}

absl::StatusOr<std::map<std::string, std::string>> ReceiptsFromManifestFile(const std::string& path,
                                                                            const std::set<std::string>& digests) {
  absl::StatusOr<std::unique_ptr<FileInput>> in = FileInput::Open(path, kManifestReadBuffer);
  if (!in.ok()) return in.status();
  return Receipts(in->get(), digests);
}

absl::StatusOr<std::string> ReceiptFromManifestText(std::string_view manifest_json, std::string_view digest) {
  MemoryInput in(manifest_json);
  return Receipt(&in, digest);
}

absl::StatusOr<std::vector<std::string>> VerifyManifestDigests(const VerifiedCertificate& certificate,
                                                               std::string_view manifest_json) {
  if (absl::Status s = VerifyManifestText(certificate, manifest_json); !s.ok()) return s;
  MemoryInput in(manifest_json);
  ManifestFacts facts;
  CollectDigests collect;
  if (absl::Status s = ReadManifest(&in, {.visitor = &collect}, &facts); !s.ok()) return s;
  return std::move(collect.digests);
}

absl::StatusOr<std::string> ManifestCertificateId(std::string_view manifest_json) {
  MemoryInput in(manifest_json);
  ManifestFacts facts;
  if (absl::Status s = ReadManifest(&in, {}, &facts); !s.ok()) return s;
  if (absl::Status s = Wellformed(facts); !s.ok()) return s;
  return facts.certificate_id.value;
}

absl::Status VerifyManifestFile(const VerifiedCertificate& certificate, const std::string& path, ManifestStats* stats,
                                size_t buffer_bytes) {
  absl::StatusOr<std::unique_ptr<FileInput>> in = FileInput::Open(path, buffer_bytes);
  if (!in.ok()) return in.status();
  return Verify(certificate, in->get(), stats);
}

absl::Status VerifyManifestText(const VerifiedCertificate& certificate, std::string_view manifest_json,
                                ManifestStats* stats) {
  MemoryInput in(manifest_json);
  return Verify(certificate, &in, stats);
}

absl::Status VerifyManifest(const VerifiedCertificate& certificate, std::string_view manifest_json) {
  return VerifyManifestText(certificate, manifest_json);
}

}  // namespace shredd::verify
