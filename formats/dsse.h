// DSSE (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse,
// protocol v1.0.0) in its JSON envelope form.
//
//   {"payloadType":"<type>","payload":"<base64>",
//    "signatures":[{"keyid":"<id>","sig":"<base64>"}]}
//
// Signatures are computed over PAE(payloadType, payload), never over the
// JSON. Base64 is standard with padding (RFC 4648 section 4).

#ifndef SHREDD_FORMATS_DSSE_H_
#define SHREDD_FORMATS_DSSE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace shredd::verify {

// "DSSEv1" SP len(type) SP type SP len(body) SP body, with the lengths as
// ASCII decimal byte counts without leading zeros.
std::string PreAuthEncoding(std::string_view type, std::string_view body);

struct Signature {
  std::string keyid;  // optional, unauthenticated hint; empty = absent
  std::string sig;    // raw signature bytes
};

struct Envelope {
  std::string payload_type;
  std::string payload;  // raw (base64-decoded) bytes
  std::vector<Signature> signatures;
};

// Parses a JSON envelope. Fails with InvalidArgument (naming the field) if
// the input is not a JSON object, if payloadType, payload or signatures is
// missing or of the wrong JSON type, if any base64 is invalid, if
// signatures is empty, or if a signature lacks a string "sig" or has a
// non-string "keyid". Unknown members are ignored.
absl::StatusOr<Envelope> ParseEnvelope(std::string_view json);

// ParseEnvelope of a document already read strictly (strict_json.h), e.g.
// the "dsseEnvelope" member of a Sigstore bundle: the same checks and
// messages, on the values as read (never a re-serialisation of them).
absl::StatusOr<Envelope> EnvelopeFromJson(const nlohmann::json& doc);

// Makes a raw signature over `message` (the PAE bytes): a local key, or the
// daemon's vault, which may fail.
using EnvelopeSigner = absl::FunctionRef<absl::StatusOr<std::string>(std::string_view message)>;

// The one way shredd signs an envelope: PAE(payload_type, payload) signed by
// `sign`, as one signature with `keyid`, serialized by SerializeEnvelope.
// Fails with the signer's status.
absl::StatusOr<std::string> SignEnvelope(std::string_view payload_type, std::string_view payload,
                                         std::string_view keyid, EnvelopeSigner sign);

// Compact JSON, members in the order payloadType, payload, signatures;
// each signature as {"keyid","sig"} ("keyid" omitted when empty).
std::string SerializeEnvelope(const Envelope& envelope);

// The bytes the transparency log holds for a certificate, recomputed from
// any JSON spelling of it (docs/FORMATS.md "Canonical envelope"): the file
// must be one JSON object (strict_json.h rules) with exactly the members
// payloadType, payload and signatures, each signature exactly "sig" and an
// optional non-empty "keyid"; string values printable ASCII without '"' or
// '\\'; base64 in its one canonical spelling. The result is
// SerializeEnvelope of what was read, which is what shredd issues, so a
// certificate as issued is its own canonical form. Anything else fails with
// InvalidArgument naming the member.
absl::StatusOr<std::string> CanonicalEnvelope(std::string_view text);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_DSSE_H_
