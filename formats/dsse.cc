#include "formats/dsse.h"

#include <algorithm>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

#include "formats/encoding.h"
#include "formats/str_util.h"
#include "formats/strict_json.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;

namespace {

using nlohmann::json;

// Returns the string member `name` of `obj`, or InvalidArgument.
absl::StatusOr<std::string> StringMember(const json& obj, const char* name, std::string_view where) {
  auto it = obj.find(name);
  if (it == obj.end()) {
    return absl::InvalidArgumentError(Cat(where, " has no \"", name, "\""));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(Cat(where, " member \"", name, "\" is a ", it->type_name(), ", not a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::string> Base64Member(const json& obj, const char* name, std::string_view where) {
  absl::StatusOr<std::string> text = StringMember(obj, name, where);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::string> raw = Base64Decode(*text);
  if (!raw.ok()) {
    return absl::InvalidArgumentError(Cat(where, " member \"", name, "\": ", raw.status().message()));
  }
  return raw;
}

// Canonical form: `obj` has only members from `allowed`, and every string
// member is printable ASCII other than '"' and '\\' (so JSON has one
// spelling for it).
absl::Status CheckCanonicalObject(const json& obj, std::initializer_list<std::string_view> allowed,
                                  std::string_view where) {
  for (const auto& [name, value] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return absl::InvalidArgumentError(
          Cat(where, " has member \"", name, "\", which a certificate envelope never has"));
    }
    if (!value.is_string()) continue;
    for (const char c : value.get_ref<const std::string&>()) {
      if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
        return absl::InvalidArgumentError(
            Cat(where, " member \"", name, "\" holds a character outside printable ASCII or a quote or backslash"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCanonicalMembers(const json& doc) {
  if (!doc.is_object()) return absl::InvalidArgumentError("envelope is not a JSON object");
  if (auto s = CheckCanonicalObject(doc, {"payloadType", "payload", "signatures"}, "envelope"); !s.ok()) return s;
  const auto sigs = doc.find("signatures");
  if (sigs == doc.end() || !sigs->is_array()) return absl::OkStatus();  // ParseEnvelope names it
  for (size_t i = 0; i < sigs->size(); ++i) {
    const json& s = (*sigs)[i];
    const std::string where = Cat("signatures[", i, "]");
    if (!s.is_object()) continue;
    if (auto st = CheckCanonicalObject(s, {"keyid", "sig"}, where); !st.ok()) return st;
    if (auto k = s.find("keyid"); k != s.end() && k->is_string() && k->get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError(Cat(where, " has an empty \"keyid\" (omit it instead)"));
    }
  }
  return absl::OkStatus();
}

// Base64 text in its one canonical spelling (padding bits zero).
absl::Status CheckCanonicalBase64(const json& text, std::string_view raw, std::string_view where) {
  if (text.get_ref<const std::string&>() == Base64Encode(raw)) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat(where, " is not base64 in its canonical spelling"));
}

}  // namespace

std::string PreAuthEncoding(std::string_view type, std::string_view body) {
  return Cat("DSSEv1 ", type.size(), " ", type, " ", body.size(), " ", body);
}

absl::StatusOr<Envelope> ParseEnvelope(std::string_view text) {
  absl::StatusOr<json> parsed = ParseStrictJson(text, "envelope");
  if (!parsed.ok()) return parsed.status();
  return EnvelopeFromJson(*parsed);
}

absl::StatusOr<Envelope> EnvelopeFromJson(const json& doc) {
  if (!doc.is_object()) {
    return absl::InvalidArgumentError("envelope is not a JSON object");
  }
  Envelope env;
  absl::StatusOr<std::string> type = StringMember(doc, "payloadType", "envelope");
  if (!type.ok()) return type.status();
  env.payload_type = *std::move(type);
  absl::StatusOr<std::string> payload = Base64Member(doc, "payload", "envelope");
  if (!payload.ok()) return payload.status();
  env.payload = *std::move(payload);

  auto sigs = doc.find("signatures");
  if (sigs == doc.end() || !sigs->is_array()) {
    return absl::InvalidArgumentError("envelope has no \"signatures\" array");
  }
  if (sigs->empty()) {
    return absl::InvalidArgumentError("envelope has no signatures");
  }
  for (size_t i = 0; i < sigs->size(); ++i) {
    const json& s = (*sigs)[i];
    const std::string where = Cat("signatures[", i, "]");
    if (!s.is_object()) {
      return absl::InvalidArgumentError(Cat(where, " is not a JSON object"));
    }
    Signature sig;
    if (s.contains("keyid")) {
      absl::StatusOr<std::string> keyid = StringMember(s, "keyid", where);
      if (!keyid.ok()) return keyid.status();
      sig.keyid = *std::move(keyid);
    }
    absl::StatusOr<std::string> raw = Base64Member(s, "sig", where);
    if (!raw.ok()) return raw.status();
    sig.sig = *std::move(raw);
    env.signatures.push_back(std::move(sig));
  }
  return env;
}

absl::StatusOr<std::string> SignEnvelope(std::string_view payload_type, std::string_view payload,
                                         std::string_view keyid, EnvelopeSigner sign) {
  Envelope env;
  env.payload_type = std::string(payload_type);
  env.payload = std::string(payload);
  absl::StatusOr<std::string> sig = sign(PreAuthEncoding(env.payload_type, env.payload));
  if (!sig.ok()) return sig.status();
  env.signatures.push_back({std::string(keyid), *std::move(sig)});
  return SerializeEnvelope(env);
}

std::string SerializeEnvelope(const Envelope& envelope) {
  nlohmann::ordered_json doc;
  doc["payloadType"] = envelope.payload_type;
  doc["payload"] = Base64Encode(envelope.payload);
  doc["signatures"] = nlohmann::ordered_json::array();
  for (const Signature& s : envelope.signatures) {
    nlohmann::ordered_json sig;
    if (!s.keyid.empty()) sig["keyid"] = s.keyid;
    sig["sig"] = Base64Encode(s.sig);
    doc["signatures"].push_back(std::move(sig));
  }
  // Invalid UTF-8 in payloadType or keyid is replaced rather than thrown on;
  // shredd only ever writes ASCII there.
  return doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

absl::StatusOr<std::string> CanonicalEnvelope(std::string_view text) {
  absl::StatusOr<json> doc = ParseStrictJson(text, "envelope");
  if (!doc.ok()) return doc.status();
  if (auto s = CheckCanonicalMembers(*doc); !s.ok()) return s;
  absl::StatusOr<Envelope> env = ParseEnvelope(text);
  if (!env.ok()) return env.status();
  if (auto s = CheckCanonicalBase64((*doc)["payload"], env->payload, "envelope member \"payload\""); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < env->signatures.size(); ++i) {
    const std::string where = Cat("signatures[", i, "] member \"sig\"");
    if (auto s = CheckCanonicalBase64((*doc)["signatures"][i]["sig"], env->signatures[i].sig, where); !s.ok()) {
      return s;
    }
  }
  return SerializeEnvelope(*env);
}

}  // namespace shredd::verify
