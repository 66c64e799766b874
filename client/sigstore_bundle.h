// Sigstore bundles (v0.3) of deletion certificates, so that Sigstore's
// clients (cosign, sigstore-js, sigstore-go) verify a certificate with the
// vendor's public key (docs/VERIFY.md, "Sigstore"). A certificate is a DSSE
// envelope already; the bundle carries it as `dsseEnvelope` with a
// `publicKey` hint (the signature's keyid, `shredd:<hex>`) and no
// transparency-log entries (shredd's own log is proven by the tlog-proof):
//
//   {"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
//    "verificationMaterial":{"publicKey":{"hint":"shredd:<hex>"},"tlogEntries":[]},
//    "dsseEnvelope":{"payload":"<base64>","payloadType":"application/vnd.in-toto+json",
//                    "signatures":[{"sig":"<base64>","keyid":"shredd:<hex>"}]}}
#ifndef SHREDD_CLIENT_SIGSTORE_BUNDLE_H_
#define SHREDD_CLIENT_SIGSTORE_BUNDLE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shredd::cli {

inline constexpr std::string_view kSigstoreBundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json";

// CERT.sigstore.json beside CERT (a final ".json" replaced, as for
// .manifest.json and .tlog-proof).
std::string SigstoreBundlePath(const std::string& cert_path);

// The bundle carrying `envelope_json` (a DSSE envelope). InvalidArgument if
// it is not one.
absl::StatusOr<std::string> SigstoreBundleJson(std::string_view envelope_json);

// What `verify` reads from a certificate file: a Sigstore bundle (any v0.x
// bundle media type) becomes the DSSE envelope it carries, in shredd's own
// form; anything else is returned as it is (and judged by the verifier).
// InvalidArgument for a bundle without a well-formed DSSE envelope.
absl::StatusOr<std::string> EnvelopeFromCertificateFile(std::string_view text);

// Writes SigstoreBundlePath(cert_path) (public) for the certificate and
// returns its path. Throws Failure.
std::string WriteSigstoreBundle(const std::string& cert_path, std::string_view envelope_json);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_SIGSTORE_BUNDLE_H_
