// Tests of the pkcs11: vault against a real SoftHSM2 token.
//
// Each test gets a fresh token in its own temp directory (created with
// scripts/softhsm-token.sh) and points SOFTHSM2_CONF at it, so the system token
// directory is never touched. Checks that must not go through the vault (is
// the object really gone? is the key really non-extractable?) use either a raw
// PKCS#11 session of their own (only while no vault is open, because
// C_Initialize/C_Finalize are per process) or pkcs11-tool in a child process.
#include "daemon/keys/vault_pkcs11.h"

#include <dlfcn.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "daemon/base/secret.h"
#include "daemon/keys/vault.h"

// Last: leaves lower-case helper macros defined (see vault_pkcs11.cc).
#include <p11-kit/pkcs11.h>

#ifndef SHREDD_SOURCE_DIR
#error "SHREDD_SOURCE_DIR must point at the repository root"
#endif

namespace shredd {
namespace {

constexpr const char* kDefaultModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "1234";

class SodiumEnv : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
};
const auto* const kSodiumEnv = ::testing::AddGlobalTestEnvironment(new SodiumEnv);

std::string ModulePath() {
  const char* m = std::getenv("SHREDD_TEST_PKCS11_MODULE");
  return m != nullptr ? m : kDefaultModule;
}

std::span<const uint8_t> Bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// Runs a shell command, returns (exit status, stdout).
std::pair<int, std::string> RunShell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// A raw PKCS#11 session independent of the vault code. Only while no vault is
// open in this process.
class RawSession {
 public:
  explicit RawSession(const std::string& module) {
    dl_ = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl_ == nullptr) return;
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(dl_, "C_GetFunctionList"));
    if (get == nullptr || get(&f_) != CKR_OK) return;
    if (f_->C_Initialize(nullptr) != CKR_OK) return;
    initialized_ = true;
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    if (f_->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) return;
    for (CK_ULONG i = 0; i < n; ++i) {
      CK_TOKEN_INFO info;
      if (f_->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
      if (std::string(reinterpret_cast<char*>(info.label), 6) != "shredd" || info.label[6] != ' ') {
        continue;
      }
      if (f_->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &session_) != CKR_OK) {
        return;
      }
      ok_ = f_->C_Login(session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(kPin)), 4) == CKR_OK;
      return;
    }
  }
  ~RawSession() {
    if (initialized_) f_->C_Finalize(nullptr);  // Closes sessions, logs out.
    if (dl_ != nullptr) ::dlclose(dl_);
  }
  bool ok() const { return ok_; }
  CK_FUNCTION_LIST_PTR f() const { return f_; }
  CK_SESSION_HANDLE session() const { return session_; }

  std::vector<CK_OBJECT_HANDLE> FindByLabel(std::string_view label) {
    CK_ATTRIBUTE t[] = {{CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    std::vector<CK_OBJECT_HANDLE> out;
    if (f_->C_FindObjectsInit(session_, t, 1) != CKR_OK) return out;
    CK_OBJECT_HANDLE h[32];
    CK_ULONG n = 0;
    while (f_->C_FindObjects(session_, h, 32, &n) == CKR_OK && n > 0) {
      out.insert(out.end(), h, h + n);
    }
    f_->C_FindObjectsFinal(session_);
    return out;
  }

  std::vector<CK_OBJECT_HANDLE> FindAll() {
    std::vector<CK_OBJECT_HANDLE> out;
    if (f_->C_FindObjectsInit(session_, nullptr, 0) != CKR_OK) return out;
    CK_OBJECT_HANDLE h[32];
    CK_ULONG n = 0;
    while (f_->C_FindObjects(session_, h, 32, &n) == CKR_OK && n > 0) {
      out.insert(out.end(), h, h + n);
    }
    f_->C_FindObjectsFinal(session_);
    return out;
  }

  // CK_TRUE / CK_FALSE, or -1 if unreadable.
  int Bool(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL v = 0;
    CK_ATTRIBUTE a = {type, &v, sizeof v};
    if (f_->C_GetAttributeValue(session_, h, &a, 1) != CKR_OK) return -1;
    return v;
  }

 private:
  void* dl_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  bool initialized_ = false;
  bool ok_ = false;
};

class Pkcs11VaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    module_ = ModulePath();
    if (::access(module_.c_str(), R_OK) != 0) {
      GTEST_SKIP() << "PKCS#11 module " << module_ << " not installed";
    }
    if (RunShell("command -v softhsm2-util >/dev/null").first != 0) {
      GTEST_SKIP() << "softhsm2-util not installed";
    }
    char tmpl[] = "/tmp/shredd-p11-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto [rc, out] = RunShell(absl::StrCat(SHREDD_SOURCE_DIR, "/scripts/softhsm-token.sh ", dir_, " 2>/dev/null"));
    ASSERT_EQ(rc, 0) << out;
    conf_ = dir_ + "/softhsm2.conf";
    ASSERT_EQ(out, absl::StrCat("export SOFTHSM2_CONF='", conf_, "'\n"));
    ASSERT_EQ(::setenv("SOFTHSM2_CONF", conf_.c_str(), 1), 0);
    ::unsetenv("SHREDD_PKCS11_PIN");
  }

  void TearDown() override {
    ::unsetenv("SOFTHSM2_CONF");
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string Params(const std::string& pin = kPin, const std::string& token = "shredd") const {
    return absl::StrCat("module=", module_, ";token=", token, ";pin=", pin);
  }

  std::unique_ptr<Vault> Open() {
    absl::StatusOr<std::unique_ptr<Vault>> v = OpenPkcs11Vault(Params());
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *std::move(v) : nullptr;
  }

  // pkcs11-tool in a child process: an independent view of the token.
  std::string ListObjectsWithTool() {
    auto [rc, out] = RunShell(absl::StrCat("pkcs11-tool --module ", module_, " --token-label shredd --login --pin ",
                                           kPin, " --list-objects 2>&1"));
    EXPECT_EQ(rc, 0) << out;
    return out;
  }

  std::string module_;
  std::string dir_;
  std::string conf_;
};

TEST_F(Pkcs11VaultTest, DescribeNamesTokenAndModuleButNotPin) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->BackendName(), "pkcs11");
  EXPECT_EQ(v->Describe(), absl::StrCat("pkcs11 token 'shredd' via ", module_));
  EXPECT_EQ(v->Describe().find(kPin), std::string::npos);
}

TEST_F(Pkcs11VaultTest, WrapUnwrapRoundTrip) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->CreateRoot(1).ok());
  SecretBytes child = SecretBytes::Random(32);
  absl::StatusOr<std::string> w = v->WrapWithRoot(1, child.span(), "node:7");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->size(), 12u + 32u + 16u);
  absl::StatusOr<SecretBytes> u = v->UnwrapWithRoot(1, *w, "node:7");
  ASSERT_TRUE(u.ok()) << u.status();
  ASSERT_EQ(u->size(), 32u);
  EXPECT_EQ(0, sodium_memcmp(u->data(), child.data(), 32));

  // Fresh random IV each time.
  absl::StatusOr<std::string> w2 = v->WrapWithRoot(1, child.span(), "node:7");
  ASSERT_TRUE(w2.ok());
  EXPECT_NE(*w, *w2);
  EXPECT_NE(w->substr(0, 12), w2->substr(0, 12));

  // Empty associated data and odd sizes work too.
  for (size_t n : {1u, 16u, 33u, 100u}) {
    SecretBytes k = SecretBytes::Random(n);
    absl::StatusOr<std::string> wn = v->WrapWithRoot(1, k.span(), "");
    ASSERT_TRUE(wn.ok()) << wn.status();
    absl::StatusOr<SecretBytes> un = v->UnwrapWithRoot(1, *wn, "");
    ASSERT_TRUE(un.ok()) << un.status();
    ASSERT_EQ(un->size(), n);
    EXPECT_EQ(0, sodium_memcmp(un->data(), k.data(), n));
  }
}

TEST_F(Pkcs11VaultTest, EmptyPlaintextIsRejected) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->CreateRoot(1).ok());
  EXPECT_EQ(v->WrapWithRoot(1, {}, "ad").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(Pkcs11VaultTest, WrongAssociatedDataIsDataLoss) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->CreateRoot(1).ok());
  SecretBytes child = SecretBytes::Random(32);
  absl::StatusOr<std::string> w = v->WrapWithRoot(1, child.span(), "node:7");
  ASSERT_TRUE(w.ok());
  absl::StatusOr<SecretBytes> u = v->UnwrapWithRoot(1, *w, "node:8");
  EXPECT_EQ(u.status().code(), absl::StatusCode::kDataLoss) << u.status();
  EXPECT_EQ(v->UnwrapWithRoot(1, *w, "").status().code(), absl::StatusCode::kDataLoss);
  // The session is usable after a failed decryption.
  EXPECT_TRUE(v->UnwrapWithRoot(1, *w, "node:7").ok());
}

TEST_F(Pkcs11VaultTest, TamperedCiphertextIsDataLoss) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->CreateRoot(1).ok());
  SecretBytes child = SecretBytes::Random(32);
  absl::StatusOr<std::string> w = v->WrapWithRoot(1, child.span(), "ad");
  ASSERT_TRUE(w.ok());
  // Flip one bit in the IV, the ciphertext, and the tag in turn.
  for (size_t pos : {size_t{0}, size_t{11}, size_t{12}, size_t{30}, size_t{43}, size_t{44}, w->size() - 1}) {
    std::string t = *w;
    t[pos] ^= 0x01;
    absl::StatusOr<SecretBytes> u = v->UnwrapWithRoot(1, t, "ad");
    EXPECT_EQ(u.status().code(), absl::StatusCode::kDataLoss) << "byte " << pos << ": " << u.status();
  }
  // Truncated, extended, or too short to hold IV and tag.
  EXPECT_EQ(v->UnwrapWithRoot(1, w->substr(0, w->size() - 1), "ad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(v->UnwrapWithRoot(1, *w + "x", "ad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(v->UnwrapWithRoot(1, w->substr(0, 28), "ad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(v->UnwrapWithRoot(1, "", "ad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(v->UnwrapWithRoot(1, *w, "ad").ok());
}

TEST_F(Pkcs11VaultTest, ListRootsAndAlreadyExists) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  absl::StatusOr<std::vector<uint64_t>> roots = v->ListRoots();
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_TRUE(roots->empty());
  ASSERT_TRUE(v->CreateRoot(1).ok());
  ASSERT_TRUE(v->CreateRoot(0xffffffffffffffffULL).ok());
  ASSERT_TRUE(v->CreateRoot(10).ok());
  // The signing key is not a root.
  ASSERT_TRUE(v->SigningPublicKey().ok());
  EXPECT_EQ(v->CreateRoot(10).code(), absl::StatusCode::kAlreadyExists);
  roots = v->ListRoots();
  ASSERT_TRUE(roots.ok());
  EXPECT_EQ(*roots, (std::vector<uint64_t>{1, 10, 0xffffffffffffffffULL}));
  SecretBytes k = SecretBytes::Random(32);
  absl::StatusOr<std::string> w = v->WrapWithRoot(0xffffffffffffffffULL, k.span(), "ad");
  ASSERT_TRUE(w.ok());
  // A wrap under one epoch does not open under another.
  EXPECT_EQ(v->UnwrapWithRoot(10, *w, "ad").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(Pkcs11VaultTest, MissingRootIsNotFound) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  SecretBytes k = SecretBytes::Random(32);
  EXPECT_EQ(v->WrapWithRoot(5, k.span(), "ad").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(v->UnwrapWithRoot(5, std::string(60, 'x'), "ad").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(v->DestroyRoot(5).ok());
}

TEST_F(Pkcs11VaultTest, DestroyedRootIsGoneForGood) {
  SecretBytes k1 = SecretBytes::Random(32);
  SecretBytes k2 = SecretBytes::Random(32);
  std::string w1, w2;
  Ed25519PublicKey pk{};
  {
    auto v = Open();
    ASSERT_NE(v, nullptr);
    ASSERT_TRUE(v->CreateRoot(1).ok());
    ASSERT_TRUE(v->CreateRoot(2).ok());
    auto pkv = v->SigningPublicKey();
    ASSERT_TRUE(pkv.ok()) << pkv.status();
    pk = *pkv;
    w1 = *v->WrapWithRoot(1, k1.span(), "ad1");
    w2 = *v->WrapWithRoot(2, k2.span(), "ad2");
    ASSERT_TRUE(v->DestroyRoot(1).ok());
    absl::StatusOr<SecretBytes> u = v->UnwrapWithRoot(1, w1, "ad1");
    EXPECT_EQ(u.status().code(), absl::StatusCode::kNotFound) << u.status();
    EXPECT_EQ(v->WrapWithRoot(1, k1.span(), "ad1").status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(v->DestroyRoot(1).ok());  // Idempotent.
    EXPECT_EQ(*v->ListRoots(), (std::vector<uint64_t>{2}));
  }
  // A child process sees the same token state.
  std::string listing = ListObjectsWithTool();
  EXPECT_EQ(listing.find("shredd-root-1"), std::string::npos) << listing;
  EXPECT_NE(listing.find("shredd-root-2"), std::string::npos) << listing;
  EXPECT_NE(listing.find("shredd-signing"), std::string::npos) << listing;
  // So does a raw session of our own.
  {
    RawSession raw(module_);
    ASSERT_TRUE(raw.ok());
    EXPECT_TRUE(raw.FindByLabel("shredd-root-1").empty());
    EXPECT_EQ(raw.FindByLabel("shredd-root-2").size(), 1u);
  }
  // Re-opened: root 2 and the signing identity survive, root 1 does not.
  auto v = Open();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v->ListRoots(), (std::vector<uint64_t>{2}));
  absl::StatusOr<SecretBytes> u2 = v->UnwrapWithRoot(2, w2, "ad2");
  ASSERT_TRUE(u2.ok()) << u2.status();
  EXPECT_EQ(0, sodium_memcmp(u2->data(), k2.data(), 32));
  EXPECT_EQ(v->UnwrapWithRoot(1, w1, "ad1").status().code(), absl::StatusCode::kNotFound);
  auto pk2 = v->SigningPublicKey();
  ASSERT_TRUE(pk2.ok());
  EXPECT_EQ(*pk2, pk);
}

TEST_F(Pkcs11VaultTest, SignVerifiesWithLibsodiumAndPersists) {
  Ed25519PublicKey pk{};
  const std::string msg = "DSSEv1 28 application/vnd.in-toto+json 2 {}";
  {
    auto v = Open();
    ASSERT_NE(v, nullptr);
    absl::StatusOr<Ed25519Signature> sig = v->Sign(msg);  // Creates the key.
    ASSERT_TRUE(sig.ok()) << sig.status();
    auto pkv = v->SigningPublicKey();
    ASSERT_TRUE(pkv.ok());
    pk = *pkv;
    EXPECT_EQ(0, crypto_sign_verify_detached(sig->data(), Bytes(msg).data(), msg.size(), pk.data()));
    std::string other = msg + ".";
    EXPECT_NE(0, crypto_sign_verify_detached(sig->data(), Bytes(other).data(), other.size(), pk.data()));
    // Ed25519 is deterministic.
    EXPECT_EQ(*v->Sign(msg), *sig);
    // Empty and long messages.
    auto s0 = v->Sign("");
    ASSERT_TRUE(s0.ok()) << s0.status();
    EXPECT_EQ(0, crypto_sign_verify_detached(s0->data(), nullptr, 0, pk.data()));
    std::string big(1 << 20, 'z');
    auto sb = v->Sign(big);
    ASSERT_TRUE(sb.ok()) << sb.status();
    EXPECT_EQ(0, crypto_sign_verify_detached(sb->data(), Bytes(big).data(), big.size(), pk.data()));
  }
  auto v = Open();
  ASSERT_NE(v, nullptr);
  auto pk2 = v->SigningPublicKey();
  ASSERT_TRUE(pk2.ok());
  EXPECT_EQ(*pk2, pk);
  auto sig = v->Sign(msg);
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(0, crypto_sign_verify_detached(sig->data(), Bytes(msg).data(), msg.size(), pk.data()));
  // Exactly one key pair in the token.
  v.reset();
  RawSession raw(module_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.FindByLabel("shredd-signing").size(), 2u);
}

TEST_F(Pkcs11VaultTest, KeysAreNotExtractable) {
  {
    auto v = Open();
    ASSERT_NE(v, nullptr);
    ASSERT_TRUE(v->CreateRoot(1).ok());
    ASSERT_TRUE(v->SigningPublicKey().ok());
  }
  RawSession raw(module_);
  ASSERT_TRUE(raw.ok());
  std::vector<CK_OBJECT_HANDLE> roots = raw.FindByLabel("shredd-root-1");
  ASSERT_EQ(roots.size(), 1u);
  CK_OBJECT_HANDLE root = roots[0];
  uint8_t value[64];
  CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof value};
  CK_RV rv = raw.f()->C_GetAttributeValue(raw.session(), root, &a, 1);
  EXPECT_EQ(rv, CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
  EXPECT_EQ(raw.Bool(root, CKA_EXTRACTABLE), CK_FALSE);
  EXPECT_EQ(raw.Bool(root, CKA_SENSITIVE), CK_TRUE);
  EXPECT_EQ(raw.Bool(root, CKA_NEVER_EXTRACTABLE), CK_TRUE);
  EXPECT_EQ(raw.Bool(root, CKA_ALWAYS_SENSITIVE), CK_TRUE);
  EXPECT_EQ(raw.Bool(root, CKA_LOCAL), CK_TRUE);  // Generated in the token.
  EXPECT_EQ(raw.Bool(root, CKA_TOKEN), CK_TRUE);
  EXPECT_EQ(raw.Bool(root, CKA_PRIVATE), CK_TRUE);
  EXPECT_EQ(raw.Bool(root, CKA_WRAP), CK_FALSE);
  CK_ULONG len = 0;
  CK_ATTRIBUTE la = {CKA_VALUE_LEN, &len, sizeof len};
  ASSERT_EQ(raw.f()->C_GetAttributeValue(raw.session(), root, &la, 1), CKR_OK);
  EXPECT_EQ(len, 32u);
  CK_BYTE id[8];
  CK_ATTRIBUTE ia = {CKA_ID, id, sizeof id};
  ASSERT_EQ(raw.f()->C_GetAttributeValue(raw.session(), root, &ia, 1), CKR_OK);
  EXPECT_EQ(ia.ulValueLen, 8u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id), 8), std::string("\0\0\0\0\0\0\0\x01", 8));

  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
  const char label[] = "shredd-signing";
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_cls, sizeof priv_cls}, {CKA_LABEL, const_cast<char*>(label), sizeof label - 1}};
  ASSERT_EQ(raw.f()->C_FindObjectsInit(raw.session(), t, 2), CKR_OK);
  CK_OBJECT_HANDLE priv;
  CK_ULONG n = 0;
  ASSERT_EQ(raw.f()->C_FindObjects(raw.session(), &priv, 1, &n), CKR_OK);
  raw.f()->C_FindObjectsFinal(raw.session());
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(raw.Bool(priv, CKA_EXTRACTABLE), CK_FALSE);
  EXPECT_EQ(raw.Bool(priv, CKA_SENSITIVE), CK_TRUE);
  EXPECT_EQ(raw.Bool(priv, CKA_LOCAL), CK_TRUE);
  EXPECT_EQ(raw.Bool(priv, CKA_PRIVATE), CK_TRUE);
  CK_ATTRIBUTE pa = {CKA_VALUE, value, sizeof value};
  EXPECT_EQ(raw.f()->C_GetAttributeValue(raw.session(), priv, &pa, 1), CKR_ATTRIBUTE_SENSITIVE);
}

TEST_F(Pkcs11VaultTest, PrivateObjectsNeedLogin) {
  {
    auto v = Open();
    ASSERT_NE(v, nullptr);
    ASSERT_TRUE(v->CreateRoot(3).ok());
  }
  auto [rc, out] = RunShell(absl::StrCat("pkcs11-tool --module ", module_,
                                         " --token-label shredd --list-objects "
                                         "2>&1"));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("shredd-root-3"), std::string::npos) << out;
}

TEST_F(Pkcs11VaultTest, BadPinIsAClearErrorWithoutThePin) {
  const std::string bad = "wrong-pin-xyzzy";
  absl::StatusOr<std::unique_ptr<Vault>> v = OpenPkcs11Vault(Params(bad));
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(v.status().code() == absl::StatusCode::kUnauthenticated ||
              v.status().code() == absl::StatusCode::kPermissionDenied)
      << v.status();
  std::string msg(v.status().message());
  EXPECT_NE(msg.find("C_Login"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CKR_PIN_INCORRECT"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(bad), std::string::npos) << msg;
  // The module was released cleanly: a good PIN works afterwards.
  EXPECT_NE(Open(), nullptr);
}

TEST_F(Pkcs11VaultTest, BadPinRefusedEvenWhileAnotherVaultIsLoggedIn) {
  auto good = Open();
  ASSERT_NE(good, nullptr);
  absl::StatusOr<std::unique_ptr<Vault>> v = OpenPkcs11Vault(Params("4321"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnauthenticated) << v.status();
  EXPECT_EQ(std::string(v.status().message()).find("4321"), std::string::npos);
  // And the failed attempt did not log the good vault out.
  EXPECT_TRUE(good->CreateRoot(1).ok());
  EXPECT_TRUE(good->ListRoots().ok());
}

TEST_F(Pkcs11VaultTest, UnknownTokenIsNotFound) {
  absl::StatusOr<std::unique_ptr<Vault>> v = OpenPkcs11Vault(Params(kPin, "nosuchtoken"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound) << v.status();
  EXPECT_NE(v.status().message().find("nosuchtoken"), std::string::npos);
  EXPECT_NE(v.status().message().find("'shredd'"), std::string::npos)
      << "should list the tokens present: " << v.status();
}

TEST_F(Pkcs11VaultTest, MissingOrBogusModuleIsAClearError) {
  absl::StatusOr<std::unique_ptr<Vault>> v = OpenPkcs11Vault("module=/nonexistent/libnope.so;token=shredd;pin=1234");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound) << v.status();
  EXPECT_NE(v.status().message().find("/nonexistent/libnope.so"), std::string::npos);
  EXPECT_EQ(v.status().message().find("1234"), std::string::npos);

  // A file that is not a shared library at all.
  v = OpenPkcs11Vault(absl::StrCat("module=", conf_, ";token=shredd;pin=1234"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition) << v.status();
  EXPECT_NE(v.status().message().find("dlopen"), std::string::npos);

  // A shared library that is not a PKCS#11 module.
  v = OpenPkcs11Vault("module=/lib/x86_64-linux-gnu/libz.so.1;token=shredd");
  if (::access("/lib/x86_64-linux-gnu/libz.so.1", R_OK) == 0) {
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition) << v.status();
    EXPECT_NE(v.status().message().find("C_GetFunctionList"), std::string::npos);
  }
}

TEST_F(Pkcs11VaultTest, ParameterErrors) {
  auto code = [](std::string_view p) { return OpenPkcs11Vault(p).status().code(); };
  const std::string m = absl::StrCat("module=", module_);
  EXPECT_EQ(code("token=shredd;pin=1234"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("module=libsofthsm2.so;token=shredd;pin=1234"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(m + ";pin=1234"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(m + ";token=shredd;pin=1234;colour=blue"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(m + ";token=shredd;token=shredd;pin=1234"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(m + ";token=shredd;slot=abc;pin=1234"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(m + ";token=shredd;pin=1234;pin-file=/dev/null"), absl::StatusCode::kInvalidArgument);
  // A stray value without a key is not echoed (it may be a PIN).
  absl::Status s = OpenPkcs11Vault(m + ";token=shredd;s3cr3t").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().find("s3cr3t"), std::string::npos) << s;
  // No PIN anywhere.
  s = OpenPkcs11Vault(m + ";token=shredd").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("SHREDD_PKCS11_PIN"), std::string::npos) << s;
  EXPECT_EQ(code(m + ";token=shredd;pin-file=/nonexistent/pin"), absl::StatusCode::kNotFound);
}

TEST_F(Pkcs11VaultTest, PinFromFileEnvironmentAndSlot) {
  const std::string pin_file = dir_ + "/pin";
  std::ofstream(pin_file) << kPin << "\n";
  const std::string m = absl::StrCat("module=", module_);
  {
    auto v = OpenPkcs11Vault(m + ";token=shredd;pin-file=" + pin_file);
    ASSERT_TRUE(v.ok()) << v.status();
  }
  {
    std::ofstream(pin_file) << "0000\n";
    auto v = OpenPkcs11Vault(m + ";token=shredd;pin-file=" + pin_file);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kUnauthenticated);
  }
  {
    ASSERT_EQ(::setenv("SHREDD_PKCS11_PIN", kPin, 1), 0);
    auto v = OpenPkcs11Vault(m + ";token=shredd");
    ::unsetenv("SHREDD_PKCS11_PIN");
    ASSERT_TRUE(v.ok()) << v.status();
  }
  // slot=N: find the slot id with pkcs11-tool, then open by slot alone.
  auto [rc, out] = RunShell(absl::StrCat("pkcs11-tool --module ", module_, " -L 2>&1"));
  ASSERT_EQ(rc, 0) << out;
  // "Slot 0 (0x1a2b3c): SoftHSM slot ID 0x1a2b3c" followed by "token label :
  // shredd"
  size_t lbl = out.find("token label        : shredd");
  ASSERT_NE(lbl, std::string::npos) << out;
  size_t slot_line = out.rfind("Slot ", lbl);
  size_t open = out.find("(0x", slot_line);
  ASSERT_NE(open, std::string::npos) << out;
  unsigned long slot = std::stoul(out.substr(open + 3), nullptr, 16);
  {
    auto v = OpenPkcs11Vault(absl::StrCat(m, ";slot=", slot, ";pin=", kPin));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE((*v)->CreateRoot(4).ok());
  }
  {
    auto v = OpenPkcs11Vault(absl::StrCat(m, ";slot=", slot + 1, ";token=shredd;pin=", kPin));
    EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound) << v.status();
  }
}

TEST_F(Pkcs11VaultTest, TwoVaultsShareTheModule) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->CreateRoot(7).ok());
  EXPECT_EQ(*b->ListRoots(), (std::vector<uint64_t>{7}));
  SecretBytes k = SecretBytes::Random(32);
  std::string w = *a->WrapWithRoot(7, k.span(), "x");
  EXPECT_EQ(*a->SigningPublicKey(), *b->SigningPublicKey());
  a.reset();  // Must neither finalise the module nor log b out.
  absl::StatusOr<SecretBytes> u = b->UnwrapWithRoot(7, w, "x");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(0, sodium_memcmp(u->data(), k.data(), 32));
  EXPECT_TRUE(b->Sign("still signing").ok());
}

TEST_F(Pkcs11VaultTest, InstancesShareATokenWithoutSeeingEachOther) {
  auto plain = Open();
  auto a = OpenPkcs11Vault(Params() + ";instance=a");
  auto b = OpenPkcs11Vault(Params() + ";instance=b.2");
  ASSERT_NE(plain, nullptr);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(plain->CreateRoot(1).ok());
  ASSERT_TRUE((*a)->CreateRoot(1).ok());  // Same epoch, different object.
  ASSERT_TRUE((*a)->CreateRoot(2).ok());
  ASSERT_TRUE((*b)->CreateRoot(3).ok());
  EXPECT_EQ(*plain->ListRoots(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(*(*a)->ListRoots(), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(*(*b)->ListRoots(), (std::vector<uint64_t>{3}));
  // Destroying one instance's root leaves the other's alone.
  ASSERT_TRUE(plain->DestroyRoot(1).ok());
  EXPECT_EQ(*(*a)->ListRoots(), (std::vector<uint64_t>{1, 2}));
  // Distinct signing identities.
  auto pk_plain = plain->SigningPublicKey();
  auto pk_a = (*a)->SigningPublicKey();
  ASSERT_TRUE(pk_plain.ok() && pk_a.ok());
  EXPECT_NE(*pk_plain, *pk_a);
  plain.reset();
  a->reset();
  b->reset();
  std::string listing = ListObjectsWithTool();
  EXPECT_NE(listing.find("shredd-a-root-2"), std::string::npos) << listing;
  EXPECT_NE(listing.find("shredd-b.2-root-3"), std::string::npos) << listing;
  EXPECT_NE(listing.find("shredd-a-signing"), std::string::npos) << listing;

  for (const char* bad : {"", "has-dash", "sp ace", "x/y", "123456789012345678901234567890123"}) {
    EXPECT_EQ(OpenPkcs11Vault(Params() + ";instance=" + bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// One daemon per label namespace: the first claim records its data dir id
// in the token; another daemon's is refused, changing nothing, unless it
// takes the vault over; another instance is its own namespace.
TEST_F(Pkcs11VaultTest, OwnershipIsClaimedOncePerLabelNamespace) {
  const std::string a(32, 'a'), b(32, 'b');
  auto first = Open();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->ClaimOwnership(a, false).ok());
  ASSERT_TRUE(first->ClaimOwnership(a, false).ok());
  auto second = Open();
  ASSERT_NE(second, nullptr);
  absl::Status refused = second->ClaimOwnership(b, false);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find(a), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("--take-over-vault"), std::string::npos) << refused;
  EXPECT_TRUE(first->ClaimOwnership(a, false).ok()) << "a refused claim changed the owner";
  EXPECT_NE(ListObjectsWithTool().find("shredd-owner"), std::string::npos);
  auto other = OpenPkcs11Vault(Params() + ";instance=drill");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE((*other)->ClaimOwnership(b, false).ok());
  ASSERT_TRUE(first->CreateRoot(1).ok());
  ASSERT_TRUE(second->ClaimOwnership(b, true).ok());
  EXPECT_EQ(first->ClaimOwnership(a, false).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(second->ClaimOwnership(b, false).ok());
  // A vault whose namespace was taken over meanwhile touches no root: the
  // new owner's are safe from a daemon that still runs.
  absl::Status stale = first->DestroyRoot(1);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  EXPECT_NE(stale.message().find("taken over"), std::string::npos) << stale;
  EXPECT_EQ(first->CreateRoot(2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*first->ListRoots(), std::vector<uint64_t>{1});
  EXPECT_TRUE(second->DestroyRoot(1).ok());
}

TEST_F(Pkcs11VaultTest, ConcurrentUse) {
  auto v = Open();
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->CreateRoot(1).ok());
  ASSERT_TRUE(v->SigningPublicKey().ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        SecretBytes k = SecretBytes::Random(32);
        std::string ad = absl::StrCat("t", t, "i", i);
        auto w = v->WrapWithRoot(1, k.span(), ad);
        if (!w.ok()) {
          ++failures;
          continue;
        }
        auto u = v->UnwrapWithRoot(1, *w, ad);
        if (!u.ok() || sodium_memcmp(u->data(), k.data(), 32) != 0) ++failures;
        if (i % 5 == 0 && !v->Sign(ad).ok()) ++failures;
        if (i % 7 == 0 && !v->ListRoots().ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace shredd
