#include "daemon/items/metadata_codec.h"

#include <cstring>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/base/strings.h"

namespace shredd {
namespace {

// LEB128 varint (at most 10 bytes, canonical: no redundant trailing 0x80 groups).
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void PutBytes(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in.empty()) break;
      const uint8_t b = static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
      if (shift == 63 && b > 1) break;
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        if (b == 0 && shift > 0) break;  // not canonical
        return v;
      }
    }
    ok = false;
    return 0;
  }
  std::string Bytes() {
    const uint64_t n = Varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  // A count of entries, each at least `min_bytes` long: bounded by what is left.
  uint64_t Count(size_t min_bytes) {
    const uint64_t n = Varint();
    if (!ok || n > in.size() / min_bytes) {
      ok = false;
      return 0;
    }
    return n;
  }
};

absl::Status DecodeBinary(std::string_view text, ContentDigest* d, ItemMetadata* m) {
  const auto bad = [] { return absl::DataLossError("stored metadata is unreadable (binary record malformed)"); };
  if (text.size() < 1 + 32) return bad();
  Reader r{text.substr(1 + 32)};
  std::memcpy(d->hash.data(), text.data() + 1, 32);
  std::vector<std::string> subjects, datasets;
  std::map<std::string, std::string> labels;
  uint64_t n = r.Count(1);
  for (uint64_t i = 0; r.ok && i < n; ++i) subjects.push_back(r.Bytes());
  n = r.ok ? r.Count(1) : 0;
  for (uint64_t i = 0; r.ok && i < n; ++i) datasets.push_back(r.Bytes());
  n = r.ok ? r.Count(2) : 0;
  for (uint64_t i = 0; r.ok && i < n; ++i) {
    std::string k = r.Bytes();
    std::string v = r.ok ? r.Bytes() : std::string();
    // Strictly ascending keys (as written): no duplicates, one spelling per record.
    if (r.ok && !labels.empty() && !(labels.rbegin()->first < k)) r.ok = false;
    if (r.ok) labels.emplace_hint(labels.end(), std::move(k), std::move(v));
  }
  std::string name = r.ok ? r.Bytes() : std::string();
  if (!r.ok || !r.in.empty()) return bad();
  m->subject_ids = std::move(subjects);
  m->datasets = std::move(datasets);
  m->labels = std::move(labels);
  m->name = std::move(name);
  return absl::OkStatus();
}

absl::Status DecodeJson(std::string_view text, ContentDigest* d, ItemMetadata* m) {
  try {
    auto j = nlohmann::json::parse(text);
    auto h = ParseDigestHash(StrCat("sha256:", j.at("h").get<std::string>()));
    if (!h.ok()) return absl::DataLossError("stored metadata holds a malformed digest");
    d->hash = *h;
    m->subject_ids = j.at("s").get<std::vector<std::string>>();
    m->datasets = j.at("d").get<std::vector<std::string>>();
    m->labels = j.at("l").get<std::map<std::string, std::string>>();
    m->name = j.at("n").get<std::string>();
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat("stored metadata is unreadable: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeMetadata(const ContentDigest& d, const ItemMetadata& m) {
  std::string out;
  size_t size = 1 + 32 + 4 + m.name.size() + 2 * m.labels.size();
  for (const auto& s : m.subject_ids) size += 2 + s.size();
  for (const auto& s : m.datasets) size += 2 + s.size();
  for (const auto& [k, v] : m.labels) size += 2 + k.size() + v.size();
  out.reserve(size);
  out.push_back(static_cast<char>(kMetadataBinaryV1));
  out.append(reinterpret_cast<const char*>(d.hash.data()), d.hash.size());
  PutVarint(&out, m.subject_ids.size());
  for (const auto& s : m.subject_ids) PutBytes(&out, s);
  PutVarint(&out, m.datasets.size());
  for (const auto& s : m.datasets) PutBytes(&out, s);
  PutVarint(&out, m.labels.size());
  for (const auto& [k, v] : m.labels) {
    PutBytes(&out, k);
    PutBytes(&out, v);
  }
  PutBytes(&out, m.name);
  return out;
}

std::string EncodeMetadataJson(const ContentDigest& d, const ItemMetadata& m) {
  nlohmann::json j;
  j["h"] = HexEncode(d.hash);
  j["s"] = m.subject_ids;
  j["d"] = m.datasets;
  j["l"] = m.labels;
  j["n"] = m.name;
  return j.dump();
}

absl::Status DecodeMetadata(std::string_view text, ContentDigest* d, ItemMetadata* m) {
  if (!text.empty() && static_cast<uint8_t>(text[0]) == kMetadataBinaryV1) return DecodeBinary(text, d, m);
  if (!text.empty() && text[0] == '{') return DecodeJson(text, d, m);
  return absl::DataLossError("stored metadata is unreadable (unknown encoding)");
}

}  // namespace shredd
