// shredctl verify: a certificate offline, with its manifest or a receipt and
// its log proof, reported as text, JSON or a printable HTML page.
#include <sodium.h>

#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/ascii.h"
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/receipt_bundle.h"
#include "client/sigstore_bundle.h"
#include "client/verify_report.h"
#include "daemon/base/strings.h"
#include "formats/certificate.h"
#include "formats/encoding.h"
#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/tlog.h"

namespace shredd::cli {
namespace {

struct VerifyArgs {
  std::string cert, pubkey, manifest, receipt, item, proof, format = "text", out;
};

// "SHA256:<base64, unpadded>" of the raw key, the way ssh-keygen -l prints.
std::string Fingerprint(const verify::PublicKey& key) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, key.data(), key.size());
  std::string b64 = verify::Base64Encode(std::string_view(reinterpret_cast<const char*>(h), sizeof h));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

// The log a key read by ParsePublicKey is for: a verifier key's name, or ""
// for an SPKI PEM (which names no log).
std::string LogNameOf(std::string_view key_text) {
  if (key_text.find("-----BEGIN") != std::string_view::npos) return "";
  const absl::string_view trimmed = absl::StripAsciiWhitespace(absl::string_view(key_text.data(), key_text.size()));
  auto vkey = verify::ParseNoteVerifierKey(std::string_view(trimmed.data(), trimmed.size()));
  return vkey.ok() ? vkey->name : "";
}

void CheckManifest(const verify::VerifiedCertificate& cert, const std::string& path, VerifyReport& r) {
  // Streamed from the file in pieces: a manifest of millions of items is
  // hundreds of MB of JSON and is never held in memory whole.
  if (!std::ifstream(path, std::ios::binary)) throw Failure{kFail, StrCat("cannot read ", path), ""};
  absl::Status s = verify::VerifyManifestFile(cert, path);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) throw Failure{kFail, std::string(s.message()), ""};
  r.checks.push_back(
      {"manifest", s.ok(),
       s.ok() ? StrCat(cert.item_count, " items, each opening the Merkle root") : std::string(s.message())});
}

void CheckReceipt(const verify::VerifiedCertificate& cert, const VerifyArgs& a, VerifyReport& r) {
  const std::string digest = DigestArg(a.item);
  // A receipt, or a bundle (order receipts, receipt --item A --item B)
  // holding the item's receipt.
  absl::StatusOr<nlohmann::json> receipt = ReceiptFor(ReadFileOrThrow(a.receipt), digest);
  absl::Status s = receipt.ok() ? verify::VerifyReceiptJson(cert, *receipt, digest) : receipt.status();
  r.checks.push_back({"receipt", s.ok(), s.ok() ? StrCat(digest, " is covered") : std::string(s.message())});
  if (s.ok()) r.covered_item = digest;
}

// The proof's checkpoint must be signed by the certificate's own key under
// the log origin the (signed) certificate names, which must be the verifier
// key's log when the key is a vkey (`key.name`), and prove the entry the
// certificate names.
void CheckLogInclusion(const verify::NoteVerifier& key, const std::string& cert_bytes, const std::string& proof_path,
                       VerifyReport& r) {
  const nlohmann::json& log = r.predicate.contains("log") ? r.predicate["log"] : nlohmann::json();
  if (!log.is_object() || !log.contains("origin") || !log["origin"].is_string() || !log.contains("index") ||
      !log["index"].is_number_unsigned()) {
    r.checks.push_back({"log inclusion", false, "the certificate names no log entry (no predicate.log)"});
    return;
  }
  const std::string origin = log["origin"].get<std::string>();
  if (!key.name.empty() && origin != key.name) {
    r.checks.push_back(
        {"log inclusion", false,
         StrCat("the certificate names log \"", origin, "\" but the verifier key is for log \"", key.name, "\"")});
    return;
  }
  const verify::NoteVerifier vkey{origin, verify::NoteKeyHash(origin, key.key), key.key};
  const LoggedEntry entry = LoggedEntryFrom(cert_bytes);
  auto v = verify::VerifyTlogProof(ReadFileOrThrow(proof_path), entry.bytes, vkey, log["index"].get<uint64_t>());
  if (!v.ok()) {
    r.checks.push_back({"log inclusion", false, std::string(v.status().message())});
    return;
  }
  r.log = ReportLog{origin, v->index, v->checkpoint.size,
                    verify::HexEncode(std::string_view(reinterpret_cast<const char*>(v->checkpoint.root.data()),
                                                       v->checkpoint.root.size())),
                    !entry.note.empty()};
  r.checks.push_back(
      {"log inclusion", true, StrCat("entry ", v->index, " of ", origin, ", checkpoint size ", v->checkpoint.size)});
}

VerifyReport BuildReport(const VerifyArgs& a, const verify::NoteVerifier& named_key) {
  const verify::PublicKey& key = named_key.key;
  VerifyReport r;
  r.certificate_path = a.cert;
  r.keyid = verify::KeyId(key);
  r.key_fingerprint = Fingerprint(key);
  // A Sigstore bundle (CERT.sigstore.json) stands for the envelope it carries.
  auto envelope = EnvelopeFromCertificateFile(ReadFileOrThrow(a.cert));
  if (!envelope.ok()) {
    r.checks.push_back({"signature", false, std::string(envelope.status().message())});
    return r;
  }
  const std::string& cert_bytes = *envelope;
  auto cert = verify::VerifyCertificate(cert_bytes, key);
  if (!cert.ok()) {
    r.checks.push_back({"signature", false, std::string(cert.status().message())});
    return r;
  }
  r.predicate = cert->predicate;
  r.checks.push_back(
      {"signature", true, StrCat("Ed25519 by ", cert->keyid, "; in-toto statement, deletion predicate")});
  if (!a.manifest.empty()) CheckManifest(*cert, a.manifest, r);
  if (!a.receipt.empty()) CheckReceipt(*cert, a, r);
  if (!a.proof.empty()) CheckLogInclusion(named_key, cert_bytes, a.proof, r);
  return r;
}

void Output(const std::string& out, const std::string& text) {
  if (out.empty()) {
    std::cout << text;
  } else {
    WriteFileOrThrow(out, text, Privacy::kPublic);
  }
}

int CmdVerify(const Global& g, const VerifyArgs& a) {
  if (!a.receipt.empty() && a.item.empty()) throw Failure{kUsage, "--receipt needs --item FILE_OR_DIGEST", ""};
  if (!a.manifest.empty() && !a.receipt.empty()) throw Failure{kUsage, "give --manifest or --receipt, not both", ""};
  const std::string key_text = ReadFileOrThrow(a.pubkey);
  auto key = verify::ParsePublicKey(key_text);
  if (!key.ok()) throw Failure{kUsage, StrCat("public key ", a.pubkey, ": ", key.status().message()), ""};
  const VerifyReport r = BuildReport(a, {LogNameOf(key_text), 0, *key});
  const std::string format = g.json ? "json" : a.format;
  if (format == "json") {
    Output(a.out, DumpJson(ReportJson(r)) + "\n");
  } else if (format == "html") {
    Output(a.out, ReportHtml({r}));
  } else if (r.valid()) {
    Output(a.out, ReportText(r) + "\n");
  }
  if (const ReportCheck* f = r.failure()) {
    std::cerr << "shredctl: verification FAILED (" << (f->name == "signature" ? "certificate" : f->name)
              << "): " << Shown(f->detail) << "\n";
    return kVerifyFailed;
  }
  if (!a.out.empty() && !g.quiet) std::cerr << "report written to " << Shown(a.out) << "\n";
  return kOk;
}

}  // namespace

void AddVerifyCommand(Commands cmds) {
  static VerifyArgs a;
  const Global& g = cmds.global;
  std::function<int()>& action = cmds.action;
  auto* c = cmds.app.add_subcommand("verify", "verify a certificate offline (no daemon needed) and summarise it");
  c->add_option("certificate", a.cert,
                "certificate (DSSE envelope JSON in any formatting, or its .sigstore.json bundle)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--pubkey", a.pubkey, "daemon public key (PEM or vkey)")->required()->check(CLI::ExistingFile);
  c->add_option("--manifest", a.manifest, "also check the private manifest")->check(CLI::ExistingFile);
  c->add_option("--receipt", a.receipt, "also check a per-item receipt")->check(CLI::ExistingFile);
  c->add_option("--item", a.item, "the item the receipt is for: a file or sha256:<hex>");
  c->add_option("--proof", a.proof, "also check the log inclusion (CERT.tlog-proof)")->check(CLI::ExistingFile);
  c->add_option("--format", a.format, "text (a summary), json (every check) or html (a printable report)")
      ->check(CLI::IsMember({"text", "json", "html"}))
      ->capture_default_str();
  c->add_option("-o,--output", a.out, "write the report to FILE");
  c->callback([&g, &action] { action = [&g] { return CmdVerify(g, a); }; });
}

}  // namespace shredd::cli
