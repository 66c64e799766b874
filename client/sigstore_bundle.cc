#include "client/sigstore_bundle.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/file_io.h"
#include "formats/dsse.h"
#include "formats/encoding.h"
#include "formats/strict_json.h"

namespace shredd::cli {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::string_view kBundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle";

}  // namespace

std::string SigstoreBundlePath(const std::string& cert_path) {
  std::string base = cert_path;
  if (base.ends_with(".json")) base.resize(base.size() - 5);
  return base + ".sigstore.json";
}

absl::StatusOr<std::string> SigstoreBundleJson(std::string_view envelope_json) {
  absl::StatusOr<verify::Envelope> env = verify::ParseEnvelope(envelope_json);
  if (!env.ok()) return env.status();
  ordered_json sigs = ordered_json::array();
  std::string hint;
  for (const verify::Signature& s : env->signatures) {
    ordered_json sig;
    sig["sig"] = verify::Base64Encode(s.sig);
    if (!s.keyid.empty()) sig["keyid"] = s.keyid;
    if (hint.empty()) hint = s.keyid;
    sigs.push_back(std::move(sig));
  }
  ordered_json bundle;
  bundle["mediaType"] = kSigstoreBundleMediaType;
  bundle["verificationMaterial"] = {{"publicKey", {{"hint", hint}}}, {"tlogEntries", ordered_json::array()}};
  ordered_json dsse;
  dsse["payload"] = verify::Base64Encode(env->payload);
  dsse["payloadType"] = env->payload_type;
  dsse["signatures"] = std::move(sigs);
  bundle["dsseEnvelope"] = std::move(dsse);
  return bundle.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

absl::StatusOr<std::string> EnvelopeFromCertificateFile(std::string_view text) {
  absl::StatusOr<json> doc = verify::ParseStrictJson(text, "certificate");
  if (!doc.ok() || !doc->is_object()) return std::string(text);
  auto media = doc->find("mediaType");
  if (media == doc->end() || !media->is_string() ||
      !media->get_ref<const std::string&>().starts_with(kBundleMediaTypePrefix)) {
    return std::string(text);
  }
  // A bundle that is also an envelope would show the page (which reads the
  // file as an envelope) one certificate and shredctl another.
  for (const char* member : {"payloadType", "payload", "signatures"}) {
    if (doc->contains(member)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the file is both a Sigstore bundle and a DSSE envelope (it has \"mediaType\" and \"", member,
                       "\"): refused, as two readers would see two certificates"));
    }
  }
  auto dsse = doc->find("dsseEnvelope");
  if (dsse == doc->end() || !dsse->is_object()) {
    return absl::InvalidArgumentError(
        "the Sigstore bundle carries no \"dsseEnvelope\" (a message signature is not a shredd certificate)");
  }
  absl::StatusOr<verify::Envelope> env = verify::EnvelopeFromJson(*dsse);
  if (!env.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the Sigstore bundle's dsseEnvelope: ", env.status().message()));
  }
  return verify::SerializeEnvelope(*env);
}

std::string WriteSigstoreBundle(const std::string& cert_path, std::string_view envelope_json) {
  absl::StatusOr<std::string> bundle = SigstoreBundleJson(envelope_json);
  if (!bundle.ok()) {
    throw Failure{kFail, absl::StrCat("cannot wrap the certificate as a Sigstore bundle: ", bundle.status().message()),
                  ""};
  }
  const std::string path = SigstoreBundlePath(cert_path);
  WriteFileOrThrow(path, *bundle, Privacy::kPublic);
  return path;
}

}  // namespace shredd::cli
