// Cross-checks certificates made by shredd_formats against the two verifiers
// that share no code with it (DESIGN.md invariant 5):
//   tests/tools/verify_cert.py   - Python stdlib + PyNaCl, from the spec;
//   tests/tools/openssl_verify.sh - openssl pkeyutl + POSIX shell.
// Genuine artefacts must pass both; tampered ones must fail both.

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/dsse.h"
#include "tests/formats/cert_fixture.h"

namespace shredd::verify {
namespace {

using nlohmann::json;
using testing_fixture::MakeCertificate;
using testing_fixture::SignedCertificate;

const std::string kSourceDir = SHREDD_SOURCE_DIR;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunResult RunCommand(const std::string& command) {
  RunResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class IndependentVerifiers : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "shredd_verify_tools_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    cert_ = MakeCertificate();
    Write("cert.json", cert_.envelope);
    Write("pub.pem", ToSpkiPem(cert_.pub));
    Write("pub.vkey", NoteVerifierKey("shredd.test", cert_.pub) + "\n");
    Write("manifest.json", cert_.manifest);
    Write("receipt.json", *cert_.commitment->ReceiptJson(cert_.certificate_id, 2));
    Write("other.pem", ToSpkiPem(MakeCertificate().pub));
  }
  void TearDown() override { RunCommand("rm -rf " + Quote(dir_)); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  void Write(const std::string& name, const std::string& data) { std::ofstream(Path(name), std::ios::binary) << data; }

  RunResult Python(const std::string& cert, const std::string& args) {
    return RunCommand("/usr/bin/python3 " + Quote(kSourceDir + "/tests/tools/verify_cert.py") + " " +
                      Quote(Path(cert)) + " " + args);
  }
  RunResult OpenSsl(const std::string& cert, const std::string& pem) {
    return RunCommand("sh " + Quote(kSourceDir + "/tests/tools/openssl_verify.sh") + " " + Quote(Path(cert)) + " " +
                      Quote(Path(pem)));
  }
  // A copy of the certificate whose envelope was altered by `mutate`.
  std::string Tampered(const std::string& name, const std::function<void(Envelope&)>& mutate) {
    Envelope env = *ParseEnvelope(cert_.envelope);
    mutate(env);
    Write(name, SerializeEnvelope(env));
    return name;
  }

  std::string dir_;
  SignedCertificate cert_;
};

TEST_F(IndependentVerifiers, PythonHasPyNaCl) {
  RunResult r = RunCommand("/usr/bin/python3 -c 'import nacl.signing'");
  ASSERT_EQ(r.exit_code, 0) << "python3-nacl is required: " << r.output;
}

TEST_F(IndependentVerifiers, GenuineCertificatePassesBoth) {
  RunResult py =
      Python("cert.json", "--pubkey " + Quote(Path("pub.pem")) + " --manifest " + Quote(Path("manifest.json")));
  EXPECT_EQ(py.exit_code, 0) << py.output;
  EXPECT_NE(py.output.find("OK manifest"), std::string::npos) << py.output;

  RunResult vkey = Python("cert.json", "--pubkey " + Quote(Path("pub.vkey")));
  EXPECT_EQ(vkey.exit_code, 0) << vkey.output;

  const std::string digest = cert_.commitment->entries()[2].digest;
  RunResult receipt = Python("cert.json", "--pubkey " + Quote(Path("pub.pem")) + " --receipt " +
                                              Quote(Path("receipt.json")) + " --item " + digest);
  EXPECT_EQ(receipt.exit_code, 0) << receipt.output;

  RunResult ossl = OpenSsl("cert.json", "pub.pem");
  EXPECT_EQ(ossl.exit_code, 0) << ossl.output;
  EXPECT_NE(ossl.output.find("Signature Verified Successfully"), std::string::npos) << ossl.output;
  EXPECT_NE(ossl.output.find(cert_.statement), std::string::npos) << ossl.output;
}

TEST_F(IndependentVerifiers, FlippedPayloadByteFailsBoth) {
  const std::string bad = Tampered("bad.json", [](Envelope& e) { e.payload[20] ^= 1; });
  RunResult py = Python(bad, "--pubkey " + Quote(Path("pub.pem")));
  EXPECT_EQ(py.exit_code, 1) << py.output;
  EXPECT_NE(py.output.find("signature does not verify"), std::string::npos) << py.output;
  RunResult ossl = OpenSsl(bad, "pub.pem");
  EXPECT_NE(ossl.exit_code, 0) << ossl.output;
  EXPECT_NE(ossl.output.find("Signature Verification Failure"), std::string::npos) << ossl.output;
}

TEST_F(IndependentVerifiers, FlippedSignatureFailsBoth) {
  const std::string bad = Tampered("badsig.json", [](Envelope& e) { e.signatures[0].sig[5] ^= 0x40; });
  EXPECT_EQ(Python(bad, "--pubkey " + Quote(Path("pub.pem"))).exit_code, 1);
  EXPECT_NE(OpenSsl(bad, "pub.pem").exit_code, 0);
}

TEST_F(IndependentVerifiers, ChangedPayloadTypeFailsBoth) {
  const std::string bad = Tampered("type.json", [](Envelope& e) { e.payload_type = "application/json"; });
  RunResult py = Python(bad, "--pubkey " + Quote(Path("pub.pem")));
  EXPECT_EQ(py.exit_code, 1) << py.output;
  EXPECT_NE(py.output.find("payloadType"), std::string::npos) << py.output;
  RunResult ossl = OpenSsl(bad, "pub.pem");
  EXPECT_NE(ossl.exit_code, 0) << ossl.output;
}

TEST_F(IndependentVerifiers, WrongKeyFailsBoth) {
  RunResult py = Python("cert.json", "--pubkey " + Quote(Path("other.pem")));
  EXPECT_EQ(py.exit_code, 1) << py.output;
  RunResult ossl = OpenSsl("cert.json", "other.pem");
  EXPECT_NE(ossl.exit_code, 0) << ossl.output;
}

TEST_F(IndependentVerifiers, TamperedManifestAndReceiptFailInPython) {
  json m = json::parse(cert_.manifest);
  std::string salt = m["items"][1]["salt"];
  salt[0] = salt[0] == 'a' ? 'b' : 'a';
  m["items"][1]["salt"] = salt;
  Write("bad_manifest.json", m.dump());
  RunResult py =
      Python("cert.json", "--pubkey " + Quote(Path("pub.pem")) + " --manifest " + Quote(Path("bad_manifest.json")));
  EXPECT_EQ(py.exit_code, 1) << py.output;

  json r = json::parse(*cert_.commitment->ReceiptJson(cert_.certificate_id, 2));
  r["inclusionPath"].erase(r["inclusionPath"].begin());
  Write("bad_receipt.json", r.dump());
  py = Python("cert.json", "--pubkey " + Quote(Path("pub.pem")) + " --receipt " + Quote(Path("bad_receipt.json")));
  EXPECT_EQ(py.exit_code, 1) << py.output;

  py = Python("cert.json", "--pubkey " + Quote(Path("pub.pem")) + " --receipt " + Quote(Path("receipt.json")) +
                               " --item " + cert_.commitment->entries()[0].digest);
  EXPECT_EQ(py.exit_code, 1) << py.output;
}

TEST_F(IndependentVerifiers, PythonAgreesOnEveryReceiptAndOnEmptyCertificates) {
  for (uint64_t i = 0; i < cert_.commitment->size(); ++i) {
    Write("r.json", *cert_.commitment->ReceiptJson(cert_.certificate_id, i));
    RunResult py = Python("cert.json", "--pubkey " + Quote(Path("pub.pem")) + " --receipt " + Quote(Path("r.json")) +
                                           " --item " + cert_.commitment->entries()[i].digest);
    EXPECT_EQ(py.exit_code, 0) << i << ": " << py.output;
  }
  // A certificate over zero items (root = SHA-256("")).
  absl::StatusOr<ItemCommitment> empty = ItemCommitment::Create({});
  ASSERT_TRUE(empty.ok());
  absl::StatusOr<std::string> st = StatementJson(testing_fixture::ExamplePredicate("cert-empty", *empty));
  ASSERT_TRUE(st.ok()) << st.status();
  Write("empty.json", SignCertificate(*st, cert_.secret()));
  Write("empty_manifest.json", empty->ManifestJson("cert-empty"));
  RunResult py =
      Python("empty.json", "--pubkey " + Quote(Path("pub.pem")) + " --manifest " + Quote(Path("empty_manifest.json")));
  EXPECT_EQ(py.exit_code, 0) << py.output;
  EXPECT_EQ(OpenSsl("empty.json", "pub.pem").exit_code, 0);
}

}  // namespace
}  // namespace shredd::verify
