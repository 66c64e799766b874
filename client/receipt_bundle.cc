#include "client/receipt_bundle.h"

#include <sodium.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

#include "formats/strict_json.h"

namespace shredd::cli {
namespace {

using nlohmann::ordered_json;

constexpr size_t kMaxNameBytes = 200;  // below NAME_MAX (255) with the suffix

template <typename Json>
std::string ReceiptDigest(const Json& r) {
  if (!r.is_object() || !r.contains("item") || !r["item"].is_object()) return "";
  const auto& d = r["item"].value("digest", Json());
  return d.is_string() ? d.template get<std::string>() : "";
}

}  // namespace

std::string ReceiptBundleJson(const ReceiptBundle& b) {
  std::vector<ordered_json> receipts;
  for (const auto& r : b.receipts) receipts.push_back(ordered_json::parse(r));
  std::sort(receipts.begin(), receipts.end(),
            [](const ordered_json& x, const ordered_json& y) { return ReceiptDigest(x) < ReceiptDigest(y); });
  ordered_json j{{"type", kReceiptBundleType}, {"certificateId", b.certificate_id}};
  if (!b.order_id.empty()) j["orderId"] = b.order_id;
  if (!b.subject.empty()) j["subject"] = b.subject;
  if (!b.certificate.empty()) j["certificate"] = ordered_json::parse(b.certificate);
  j["receipts"] = receipts;
  return j.dump(1) + "\n";
}

absl::StatusOr<nlohmann::json> ReceiptFor(std::string_view text, std::string_view digest) {
  // Read as strictly as the receipt itself (no member twice, nesting capped).
  absl::StatusOr<nlohmann::json> doc = verify::ParseStrictJson(text, "receipt");
  if (!doc.ok()) return doc.status();
  nlohmann::json& j = *doc;
  if (!j.is_object() || j.value("type", nlohmann::json()) != kReceiptBundleType) return doc;
  if (!j.contains("receipts") || !j["receipts"].is_array()) {
    return absl::InvalidArgumentError("receipt bundle has no \"receipts\" array");
  }
  nlohmann::json* found = nullptr;
  for (auto& r : j["receipts"]) {
    if (ReceiptDigest(r) != digest) continue;
    if (found != nullptr)
      return absl::InvalidArgumentError(absl::StrCat("receipt bundle lists ", std::string(digest), " twice"));
    found = &r;
  }
  if (found == nullptr)
    return absl::NotFoundError(absl::StrCat("the receipt bundle holds no receipt for ", std::string(digest)));
  return std::move(*found);
}

std::string SubjectFileName(std::string_view subject) {
  std::string name;
  for (size_t i = 0; i < subject.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(subject[i]);
    const bool plain = std::isalnum(c) || c == '_' || c == '@' || c == '+' || c == '-' || (c == '.' && i > 0);
    if (plain && c < 0x80) {
      name += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789ABCDEF";
      name += '%';
      name += hex[c >> 4];
      name += hex[c & 15];
    }
  }
  if (name.size() > kMaxNameBytes) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(subject.data()), subject.size());
    char hex[17];
    for (int i = 0; i < 8; ++i) snprintf(hex + 2 * i, 3, "%02x", h[i]);
    name.resize(kMaxNameBytes - 17);
    while (!name.empty() && name.back() == '%') name.pop_back();  // no cut escape
    if (name.size() >= 2 && name[name.size() - 2] == '%') name.resize(name.size() - 2);
    name += "-";
    name += hex;
  }
  return name + ".receipts.json";
}

}  // namespace shredd::cli
