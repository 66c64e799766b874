#include "formats/dsse.h"

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

}  // namespace

std::string PreAuthEncoding(std::string_view type, std::string_view body) {
  return Cat("DSSEv1 ", type.size(), " ", type, " ", body.size(), " ", body);
}

absl::StatusOr<Envelope> ParseEnvelope(std::string_view text) {
  absl::StatusOr<json> parsed = ParseStrictJson(text, "envelope");
  if (!parsed.ok()) return parsed.status();
  const json& doc = *parsed;
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

}  // namespace shredd::verify
