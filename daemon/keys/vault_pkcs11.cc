// PKCS#11 vault backend: root keys and the signing key live inside a token.
//
// Root of epoch e = a token object of class CKO_SECRET_KEY, key type AES-256,
// generated inside the token (C_GenerateKey), CKA_TOKEN, CKA_PRIVATE,
// CKA_SENSITIVE, not CKA_EXTRACTABLE, labelled "shredd-root-<e>" with
// CKA_ID = e as 8 bytes big-endian. Wrapping is AES-256-GCM computed inside
// the token (C_Encrypt with CK_GCM_PARAMS); the wrapped form is
//   IV (12 bytes, random) || ciphertext || tag (16 bytes)
// with the caller's associated data as GCM AAD. Destruction is C_DestroyObject.
//
// The signing identity is an Ed25519 key pair generated inside the token
// (CKM_EC_EDWARDS_KEY_PAIR_GEN), labelled "shredd-signing", used with
// CKM_EDDSA (pure Ed25519, no parameters).
//
// All calls of one vault go through one read/write session and are serialised
// by a mutex. Several vaults in one process may share a module: the module is
// initialised once and finalised when its last vault closes (C_Initialize and
// C_Finalize are per process, not per caller), and the login state, which
// PKCS#11 keeps per process and token, is shared the same way.
//
// This file is the Vault implementation and OpenPkcs11Vault; the module,
// session and login plumbing is in vault_pkcs11_module.cc, declared in the
// internal header vault_pkcs11_internal.h.
//
// See docs/VAULT.md for what this backend does and does not guarantee.
#include "daemon/keys/vault_pkcs11.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "daemon/base/secret.h"
#include "daemon/base/strings.h"
#include "daemon/keys/vault.h"

// Last: includes p11-kit's pkcs11.h, after which nothing may be included.
#include "daemon/keys/vault_pkcs11_internal.h"

namespace shredd {
namespace {

using pkcs11_internal::AcquireModule;
using pkcs11_internal::CkrName;
using pkcs11_internal::CodeFor;
using pkcs11_internal::EpochId;
using pkcs11_internal::FindSlot;
using pkcs11_internal::kPinEnv;
using pkcs11_internal::Module;
using pkcs11_internal::OwnerLabel;
using pkcs11_internal::P11Error;
using pkcs11_internal::Params;
using pkcs11_internal::ParseParams;
using pkcs11_internal::ParseRootLabel;
using pkcs11_internal::PinTag;
using pkcs11_internal::RegistryMutex;
using pkcs11_internal::ReleaseModule;
using pkcs11_internal::RootLabelPrefix;
using pkcs11_internal::SigningLabel;
using pkcs11_internal::SoftHsmTokenDir;
using pkcs11_internal::TagPin;
using pkcs11_internal::TrimLabel;

constexpr size_t kIvBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kRootKeyBytes = 32;
// Wrapped objects are child keys; anything far larger is a caller bug.
constexpr size_t kMaxWrapPlaintext = 1 << 20;

// DER encodings of the Ed25519 curve for CKA_EC_PARAMS: the RFC 8410 OID
// 1.3.101.112, and the PKCS#11 3.0 alternative PrintableString "edwards25519".
constexpr uint8_t kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
constexpr uint8_t kEd25519Name[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

// Attribute helpers. PKCS#11 takes non-const pointers everywhere even for
// input; the token does not write through them.
template <typename T>
requires std::is_scalar_v<T>  // CK_ULONG, CK_BBOOL; never a container.
    CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, const T& v) {
  return CK_ATTRIBUTE{type, const_cast<T*>(&v), sizeof(T)};
}
CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, std::string_view s) {
  return CK_ATTRIBUTE{type, const_cast<char*>(s.data()), s.size()};
}
CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, std::span<const uint8_t> s) {
  return CK_ATTRIBUTE{type, const_cast<uint8_t*>(s.data()), s.size()};
}

// An owner id read from the token, for a message: as it is if it looks like
// one (hex), else not at all.
std::string Printable(std::string_view id) {
  if (!id.empty() && id.size() <= 64 && id.find_first_not_of("0123456789abcdef") == std::string_view::npos) {
    return std::string(id);
  }
  return "(not a shredd data dir id)";
}

const CK_BBOOL kTrue = CK_TRUE;
const CK_BBOOL kFalse = CK_FALSE;

// ---------------------------------------------------------------------------

class Pkcs11Vault final : public Vault {
 public:
  Pkcs11Vault(Module* module, CK_SLOT_ID slot, CK_SESSION_HANDLE session, std::string token_label,
              std::string_view instance)
      : module_(module),
        f_(module->f),
        slot_(slot),
        session_(session),
        token_label_(std::move(token_label)),
        root_prefix_(RootLabelPrefix(instance)),
        signing_label_(SigningLabel(instance)),
        owner_label_(OwnerLabel(instance)),
        instance_(instance) {}

  ~Pkcs11Vault() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (logged_in_) {
      std::lock_guard<std::mutex> reg(RegistryMutex());
      auto it = module_->logins.find(slot_);
      if (it != module_->logins.end() && --it->second.users == 0) {
        module_->logins.erase(it);
        f_->C_Logout(session_);
      }
    }
    f_->C_CloseSession(session_);
    ReleaseModule(module_);
  }

  // Logs in (or joins this process's existing login to the slot). Called
  // once, right after construction.
  absl::Status Login(const Params& p, bool protected_auth_path) {
    if (!p.have_pin && !protected_auth_path) {
      return absl::InvalidArgumentError(
          StrCat("pkcs11: no PIN for token '", token_label_, "': give pin=, pin-file= or set ", kPinEnv));
    }
    std::lock_guard<std::mutex> reg(RegistryMutex());
    PinTag tag = TagPin(p.pin.span());
    auto it = module_->logins.find(slot_);
    if (it != module_->logins.end()) {
      // Already logged in by another vault of this process; the token would
      // not check the PIN again, so compare it with the one used then.
      if (sodium_memcmp(tag.data(), it->second.pin_tag.data(), tag.size()) != 0) {
        return absl::UnauthenticatedError(StrCat("pkcs11: C_Login failed: CKR_PIN_INCORRECT (0x",
                                                 absl::Hex(CKR_PIN_INCORRECT),
                                                 ") (the PIN differs from the one this process logged in to "
                                                 "token '",
                                                 token_label_, "' with)"));
      }
      ++it->second.users;
      logged_in_ = true;
      return absl::OkStatus();
    }
    CK_RV rv = p.have_pin ? f_->C_Login(session_, CKU_USER, const_cast<uint8_t*>(p.pin.data()), p.pin.size())
                          : f_->C_Login(session_, CKU_USER, nullptr, 0);  // PIN pad.
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return P11Error("C_Login", rv, StrCat("token '", token_label_, "'"));
    }
    Module::Login& login = module_->logins[slot_];
    login.users = 1;
    login.pin_tag = tag;
    logged_in_ = true;
    return absl::OkStatus();
  }

  // SoftHSM's file object store only fflush()es its object files; it never
  // fsyncs them or the token directory, so a power cut can undo a
  // C_GenerateKey or C_DestroyObject that already returned. When the module is
  // SoftHSM with a known token directory, shredd syncs that file system
  // itself after every create/destroy. Other tokens are trusted to be durable
  // when the call returns.
  void SetStoreToSync(std::string dir) { store_to_sync_ = std::move(dir); }

  std::string BackendName() const override { return "pkcs11"; }

  std::string Describe() const override { return StrCat("pkcs11 token '", token_label_, "' via ", module_->path); }

  absl::StatusOr<std::vector<uint64_t>> ListRoots() override {
    std::lock_guard<std::mutex> lock(mu_);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {Attr(CKA_CLASS, cls), Attr(CKA_TOKEN, kTrue)};
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> objs = Find(tmpl);
    if (!objs.ok()) return objs.status();
    std::set<uint64_t> epochs;
    for (CK_OBJECT_HANDLE h : *objs) {
      absl::StatusOr<std::string> label = GetBytes(h, CKA_LABEL);
      if (absl::IsNotFound(label.status())) continue;  // Vanished meanwhile.
      if (!label.ok()) return label.status();
      if (std::optional<uint64_t> e = ParseRootLabel(root_prefix_, *label)) epochs.insert(*e);
    }
    return std::vector<uint64_t>(epochs.begin(), epochs.end());
  }

  absl::Status CreateRoot(uint64_t epoch) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = CheckStillOwnerLocked(); !s.ok()) return s;
    const std::string label = RootLabel(epoch);
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> existing = FindRoots(label);
    if (!existing.ok()) return existing.status();
    if (!existing->empty()) {
      return absl::AlreadyExistsError(
          StrCat("pkcs11: root of epoch ", epoch, " already exists in token '", token_label_, "'"));
    }
    const std::array<uint8_t, 8> id = EpochId(epoch);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = kRootKeyBytes;
    CK_ATTRIBUTE tmpl[] = {
        Attr(CKA_CLASS, cls),
        Attr(CKA_KEY_TYPE, type),
        Attr(CKA_VALUE_LEN, len),
        Attr(CKA_TOKEN, kTrue),
        Attr(CKA_PRIVATE, kTrue),
        Attr(CKA_SENSITIVE, kTrue),
        Attr(CKA_EXTRACTABLE, kFalse),
        Attr(CKA_ENCRYPT, kTrue),
        Attr(CKA_DECRYPT, kTrue),
        Attr(CKA_WRAP, kFalse),
        Attr(CKA_UNWRAP, kFalse),
        Attr(CKA_SIGN, kFalse),
        Attr(CKA_VERIFY, kFalse),
        Attr(CKA_DERIVE, kFalse),
        Attr(CKA_MODIFIABLE, kFalse),
        Attr(CKA_LABEL, std::string_view(label)),
        Attr(CKA_ID, std::span<const uint8_t>(id)),
    };
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    CK_RV rv = f_->C_GenerateKey(session_, &mech, tmpl, std::size(tmpl), &key);
    if (rv != CKR_OK) {
      return P11Error("C_GenerateKey", rv, StrCat("AES-256 root of epoch ", epoch));
    }
    // Do not trust the template blindly: a token that silently made the key
    // extractable would defeat the point of this backend.
    absl::Status checked = CheckNonExtractable(key);
    if (!checked.ok()) {
      f_->C_DestroyObject(session_, key);
      return checked;
    }
    return SyncStore(StrCat("root of epoch ", epoch));
  }

  // The owner is a private token data object labelled OwnerLabel(instance)
  // whose value is the owning daemon's data dir id. The token is shared by
  // design, so unlike the file vault nothing holds it while a daemon runs:
  // a second daemon on the same label namespace (a restore drill, a copy of
  // the config) is refused at its start, before its key tree destroys the
  // roots it does not know.
  absl::Status ClaimOwnership(std::string_view owner, bool take_over) override {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> objs = FindOwner();
    if (!objs.ok()) return objs.status();
    for (CK_OBJECT_HANDLE h : *objs) {
      absl::StatusOr<std::string> current = GetBytes(h, CKA_VALUE);
      if (!current.ok()) return current.status();
      if (*current == owner && objs->size() == 1) {
        owner_ = owner;
        return absl::OkStatus();
      }
      if (!take_over) {
        return absl::FailedPreconditionError(StrCat(
            "pkcs11: the roots of token '", token_label_, "'",
            instance_.empty() ? "" : StrCat(" instance '", instance_, "'"),
            " belong to another shredd daemon (data dir id ", Printable(*current), ", this one is ", owner,
            "): two daemons on one label namespace destroy each other's roots. A second daemon or a restore drill "
            "needs its own instance= or token (docs/VAULT.md); if that daemon is gone for good (this data dir was "
            "restored after losing it), start once with --take-over-vault. Nothing was changed"));
      }
    }
    for (CK_OBJECT_HANDLE h : *objs) {
      CK_RV rv = f_->C_DestroyObject(session_, h);
      if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID) return P11Error("C_DestroyObject", rv, "the owner record");
    }
    const CK_UTF8CHAR app[] = "shredd";
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE tmpl[] = {
        Attr(CKA_CLASS, cls),
        Attr(CKA_TOKEN, kTrue),
        Attr(CKA_PRIVATE, kTrue),
        Attr(CKA_MODIFIABLE, kTrue),
        Attr(CKA_LABEL, std::string_view(owner_label_)),
        CK_ATTRIBUTE{CKA_APPLICATION, const_cast<CK_UTF8CHAR*>(app), sizeof app - 1},
        Attr(CKA_VALUE, owner),
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    if (CK_RV rv = f_->C_CreateObject(session_, tmpl, std::size(tmpl), &h); rv != CKR_OK) {
      return P11Error("C_CreateObject", rv, "the owner record");
    }
    if (auto s = SyncStore("the owner record"); !s.ok()) return s;
    owner_ = owner;
    return absl::OkStatus();
  }

  absl::Status DestroyRoot(uint64_t epoch) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = CheckStillOwnerLocked(); !s.ok()) return s;
    const std::string label = RootLabel(epoch);
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> objs = FindRoots(label);
    if (!objs.ok()) return objs.status();
    for (CK_OBJECT_HANDLE h : *objs) {
      CK_RV rv = f_->C_DestroyObject(session_, h);
      if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID) {
        return P11Error("C_DestroyObject", rv, StrCat("root of epoch ", epoch));
      }
    }
    // Confirm from the token's own view that nothing by that label is left.
    objs = FindRoots(label);
    if (!objs.ok()) return objs.status();
    if (!objs->empty()) {
      return absl::InternalError(StrCat("pkcs11: root of epoch ", epoch, " is still present after C_DestroyObject"));
    }
    return SyncStore(StrCat("destruction of root of epoch ", epoch));
  }

  absl::StatusOr<std::string> WrapWithRoot(uint64_t epoch, std::span<const uint8_t> plaintext,
                                           std::string_view associated_data) override {
    if (plaintext.empty() || plaintext.size() > kMaxWrapPlaintext) {
      return absl::InvalidArgumentError(
          StrCat("pkcs11: can wrap 1 to ", kMaxWrapPlaintext, " bytes, got ", plaintext.size()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<CK_OBJECT_HANDLE> key = FindRoot(epoch);
    if (!key.ok()) return key.status();
    return Encrypt(*key, epoch, plaintext, associated_data);
  }

  absl::StatusOr<SecretBytes> UnwrapWithRoot(uint64_t epoch, std::string_view wrapped,
                                             std::string_view associated_data) override {
    if (wrapped.size() <= kIvBytes + kTagBytes || wrapped.size() > kIvBytes + kMaxWrapPlaintext + kTagBytes) {
      return absl::DataLossError(
          StrCat("pkcs11: wrapped key of ", wrapped.size(), " bytes is malformed (need IV, ciphertext and tag)"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<CK_OBJECT_HANDLE> key = FindRoot(epoch);
    if (!key.ok()) return key.status();
    SecretBytes out;
    CK_RV rv = Decrypt(*key, wrapped, associated_data, &out);
    if (rv == CKR_OK) return out;
    bool auth_failed = CodeFor(rv) == absl::StatusCode::kDataLoss;
    if (!auth_failed && (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED)) {
      // SoftHSM 2.6 reports a GCM tag mismatch as CKR_GENERAL_ERROR. Tell an
      // authentication failure from a sick token by a self-test with the same
      // key: if a fresh wrap of a probe unwraps fine, the input was bad.
      auth_failed = SelfTest(*key, epoch);
    }
    if (auth_failed) {
      return absl::DataLossError(StrCat("pkcs11: wrapped key under root of epoch ", epoch,
                                        " failed authentication (C_Decrypt: ", CkrName(rv), " (0x", absl::Hex(rv),
                                        ")): ciphertext or associated data altered"));
    }
    return EpochError("C_Decrypt", rv, epoch);
  }

  absl::StatusOr<Ed25519PublicKey> SigningPublicKey() override {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status s = EnsureSigningKey();
    if (!s.ok()) return s;
    return signing_->public_key;
  }

  absl::StatusOr<bool> HasSigningKey() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (signing_) return true;
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> priv = FindSigning(CKO_PRIVATE_KEY);
    if (!priv.ok()) return priv.status();
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> pub = FindSigning(CKO_PUBLIC_KEY);
    if (!pub.ok()) return pub.status();
    return !priv->empty() || !pub->empty();
  }

  absl::StatusOr<Ed25519Signature> Sign(std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status s = EnsureSigningKey();
    if (!s.ok()) return s;
    absl::StatusOr<Ed25519Signature> sig = SignLocked(message);
    if (absl::IsNotFound(sig.status())) {
      // The cached handle went stale (object recreated?); look it up again.
      signing_.reset();
      s = EnsureSigningKey();
      if (!s.ok()) return s;
      sig = SignLocked(message);
    }
    return sig;
  }

 private:
  std::string RootLabel(uint64_t epoch) const { return StrCat(root_prefix_, epoch); }

  struct SigningKey {
    CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
    Ed25519PublicKey public_key{};
  };

  static CK_GCM_PARAMS GcmParams(uint8_t* iv, std::string_view aad) {
    // Empty AAD still gets a valid pointer: some tokens memcpy from it.
    static uint8_t empty = 0;
    CK_GCM_PARAMS gcm;
    std::memset(&gcm, 0, sizeof gcm);
    gcm.pIv = iv;
    gcm.ulIvLen = kIvBytes;
    gcm.ulIvBits = kIvBytes * 8;
    gcm.pAAD = aad.empty() ? &empty : reinterpret_cast<uint8_t*>(const_cast<char*>(aad.data()));
    gcm.ulAADLen = aad.size();
    gcm.ulTagBits = kTagBytes * 8;
    return gcm;
  }

  // See SetStoreToSync. Requires mu_.
  absl::Status SyncStore(std::string_view what) {
    if (store_to_sync_.empty()) return absl::OkStatus();
    int fd = ::open(store_to_sync_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = 0;
    if (fd < 0) {
      err = errno;
    } else {
      if (::syncfs(fd) != 0) err = errno;
      ::close(fd);
    }
    if (err != 0) {
      return absl::InternalError(StrCat("pkcs11: ", what,
                                        " may not be durable: syncing SoftHSM token "
                                        "directory ",
                                        store_to_sync_, " failed: ", std::strerror(err)));
    }
    return absl::OkStatus();
  }

  // AES-256-GCM inside the token: IV || ciphertext || tag. Requires mu_.
  absl::StatusOr<std::string> Encrypt(CK_OBJECT_HANDLE key, uint64_t epoch, std::span<const uint8_t> plaintext,
                                      std::string_view aad) {
    std::string out(kIvBytes + plaintext.size() + kTagBytes, '\0');
    uint8_t* iv = reinterpret_cast<uint8_t*>(out.data());
    randombytes_buf(iv, kIvBytes);
    CK_GCM_PARAMS gcm = GcmParams(iv, aad);
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof gcm};
    CK_RV rv = f_->C_EncryptInit(session_, &mech, key);
    if (rv != CKR_OK) return EpochError("C_EncryptInit", rv, epoch);
    CK_ULONG out_len = plaintext.size() + kTagBytes;
    rv = f_->C_Encrypt(session_, const_cast<uint8_t*>(plaintext.data()), plaintext.size(), iv + kIvBytes, &out_len);
    if (rv != CKR_OK) return EpochError("C_Encrypt", rv, epoch);
    if (out_len != plaintext.size() + kTagBytes) {
      return absl::InternalError(StrCat("pkcs11: C_Encrypt (CKM_AES_GCM) returned ", out_len, " bytes, expected ",
                                        plaintext.size() + kTagBytes));
    }
    return out;
  }

  // Inverse of Encrypt; `wrapped` is longer than IV + tag. Returns the
  // token's CK_RV; CKR_OK only with the full plaintext in *out. Requires mu_.
  CK_RV Decrypt(CK_OBJECT_HANDLE key, std::string_view wrapped, std::string_view aad, SecretBytes* out) {
    // The IV is copied because CK_GCM_PARAMS wants a mutable pointer.
    std::array<uint8_t, kIvBytes> iv;
    std::memcpy(iv.data(), wrapped.data(), kIvBytes);
    CK_GCM_PARAMS gcm = GcmParams(iv.data(), aad);
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof gcm};
    CK_RV rv = f_->C_DecryptInit(session_, &mech, key);
    if (rv != CKR_OK) return rv;
    const size_t ct_len = wrapped.size() - kIvBytes;  // ciphertext || tag
    // SoftHSM insists on an output buffer as large as the input (tag
    // included), so decrypt into a secure buffer of that size and copy out.
    SecretBytes buf(ct_len);
    CK_ULONG out_len = buf.size();
    rv = f_->C_Decrypt(session_, reinterpret_cast<uint8_t*>(const_cast<char*>(wrapped.data())) + kIvBytes, ct_len,
                       buf.data(), &out_len);
    if (rv != CKR_OK) return rv;
    // A token that returns OK with the wrong length is not trusted either.
    if (out_len != ct_len - kTagBytes) return CKR_GENERAL_ERROR;
    *out = SecretBytes::CopyOf(buf.span().first(out_len));
    return CKR_OK;
  }

  // True if `key` wraps and unwraps a random probe correctly. Requires mu_.
  bool SelfTest(CK_OBJECT_HANDLE key, uint64_t epoch) {
    static constexpr std::string_view kProbeAad = "shredd pkcs11 self-test";
    SecretBytes probe = SecretBytes::Random(32);
    absl::StatusOr<std::string> w = Encrypt(key, epoch, probe.span(), kProbeAad);
    if (!w.ok()) return false;
    SecretBytes back;
    if (Decrypt(key, *w, kProbeAad, &back) != CKR_OK) return false;
    return back.size() == probe.size() && sodium_memcmp(back.data(), probe.data(), probe.size()) == 0;
  }

  absl::Status EpochError(std::string_view fn, CK_RV rv, uint64_t epoch) {
    if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
      return absl::NotFoundError(StrCat("pkcs11: root of epoch ", epoch, " vanished (", fn, ": ", CkrName(rv), ")"));
    }
    return P11Error(fn, rv, StrCat("root of epoch ", epoch));
  }

  // Requires mu_.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Find(std::span<CK_ATTRIBUTE> tmpl) {
    CK_RV rv = f_->C_FindObjectsInit(session_, tmpl.data(), tmpl.size());
    if (rv != CKR_OK) return P11Error("C_FindObjectsInit", rv);
    std::vector<CK_OBJECT_HANDLE> found;
    for (;;) {
      CK_OBJECT_HANDLE batch[64];
      CK_ULONG n = 0;
      rv = f_->C_FindObjects(session_, batch, std::size(batch), &n);
      if (rv != CKR_OK) {
        f_->C_FindObjectsFinal(session_);
        return P11Error("C_FindObjects", rv);
      }
      if (n == 0) break;
      found.insert(found.end(), batch, batch + n);
    }
    rv = f_->C_FindObjectsFinal(session_);
    if (rv != CKR_OK) return P11Error("C_FindObjectsFinal", rv);
    return found;
  }

  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindOwner() {
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE tmpl[] = {Attr(CKA_CLASS, cls), Attr(CKA_TOKEN, kTrue),
                           Attr(CKA_LABEL, std::string_view(owner_label_))};
    return Find(tmpl);
  }

  // Before a root is made or destroyed: the namespace is still the one this
  // vault claimed (a daemon whose namespace another data dir took over with
  // --take-over-vault stops touching roots). No claim made (unit tests,
  // restore's check): nothing to check.
  absl::Status CheckStillOwnerLocked() {
    if (owner_.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> objs = FindOwner();
    if (!objs.ok()) return objs.status();
    std::string current;
    if (objs->size() == 1) {
      absl::StatusOr<std::string> v = GetBytes(objs->front(), CKA_VALUE);
      if (!v.ok()) return v.status();
      current = *std::move(v);
    }
    if (current == owner_) return absl::OkStatus();
    return absl::FailedPreconditionError(
        StrCat("pkcs11: the roots of token '", token_label_, "' were taken over by another shredd daemon (data dir id ",
               Printable(current), ") since this one (", owner_,
               ") started: it makes and destroys no roots any more; stop it (docs/VAULT.md)"));
  }

  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindRoots(const std::string& label) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {Attr(CKA_CLASS, cls), Attr(CKA_TOKEN, kTrue), Attr(CKA_LABEL, std::string_view(label))};
    return Find(tmpl);
  }

  absl::StatusOr<CK_OBJECT_HANDLE> FindRoot(uint64_t epoch) {
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> objs = FindRoots(RootLabel(epoch));
    if (!objs.ok()) return objs.status();
    if (objs->empty()) {
      return absl::NotFoundError(
          StrCat("pkcs11: no root of epoch ", epoch, " in token '", token_label_, "' (destroyed or never created)"));
    }
    if (objs->size() > 1) {
      return absl::FailedPreconditionError(
          StrCat("pkcs11: token '", token_label_, "' holds ", objs->size(), " objects labelled ", RootLabel(epoch)));
    }
    return objs->front();
  }

  // Value of a byte-string attribute. NOT_FOUND if the object is gone.
  absl::StatusOr<std::string> GetBytes(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    CK_RV rv = f_->C_GetAttributeValue(session_, h, &a, 1);
    if (rv != CKR_OK) return P11Error("C_GetAttributeValue", rv);
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      return absl::InternalError("pkcs11: attribute unavailable");
    }
    std::string v(a.ulValueLen, '\0');
    a.pValue = v.data();
    rv = f_->C_GetAttributeValue(session_, h, &a, 1);
    if (rv != CKR_OK) return P11Error("C_GetAttributeValue", rv);
    v.resize(a.ulValueLen);
    return v;
  }

  absl::Status CheckNonExtractable(CK_OBJECT_HANDLE key) {
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
    CK_ATTRIBUTE a[] = {{CKA_SENSITIVE, &sensitive, sizeof sensitive},
                        {CKA_EXTRACTABLE, &extractable, sizeof extractable}};
    CK_RV rv = f_->C_GetAttributeValue(session_, key, a, std::size(a));
    if (rv != CKR_OK) return P11Error("C_GetAttributeValue", rv);
    if (sensitive != CK_TRUE || extractable != CK_FALSE) {
      return absl::FailedPreconditionError(
          StrCat("pkcs11: token '", token_label_, "' did not honour CKA_SENSITIVE=TRUE/CKA_EXTRACTABLE=FALSE"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindSigning(CK_OBJECT_CLASS cls) {
    CK_ATTRIBUTE tmpl[] = {Attr(CKA_CLASS, cls), Attr(CKA_TOKEN, kTrue), Attr(CKA_LABEL, signing_label_)};
    return Find(tmpl);
  }

  absl::StatusOr<Ed25519PublicKey> ReadPublicKey(CK_OBJECT_HANDLE pub) {
    absl::StatusOr<std::string> point = GetBytes(pub, CKA_EC_POINT);
    if (!point.ok()) return point.status();
    std::string_view p = *point;
    // PKCS#11 3.0 says raw 32 bytes; SoftHSM (and v2.40 habit) returns the
    // DER OCTET STRING 04 20 <32 bytes>.
    if (p.size() == 34 && p[0] == 0x04 && p[1] == 0x20) p.remove_prefix(2);
    if (p.size() != 32) {
      return absl::FailedPreconditionError(StrCat("pkcs11: CKA_EC_POINT of '", signing_label_, "' has ", point->size(),
                                                  " bytes; not an Ed25519 public key"));
    }
    Ed25519PublicKey pk;
    std::memcpy(pk.data(), p.data(), pk.size());
    return pk;
  }

  absl::Status GenerateSigningKey() {
    CK_MECHANISM_INFO info;
    CK_RV rv = f_->C_GetMechanismInfo(slot_, CKM_EC_EDWARDS_KEY_PAIR_GEN, &info);
    if (rv == CKR_MECHANISM_INVALID) {
      return absl::UnimplementedError(
          StrCat("pkcs11: token '", token_label_, "' does not support Ed25519 (CKM_EC_EDWARDS_KEY_PAIR_GEN)"));
    }
    if (rv != CKR_OK) return P11Error("C_GetMechanismInfo", rv);

    CK_RV last = CKR_OK;
    for (std::span<const uint8_t> curve :
         {std::span<const uint8_t>(kEd25519Oid), std::span<const uint8_t>(kEd25519Name)}) {
      CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY;
      CK_KEY_TYPE type = CKK_EC_EDWARDS;
      CK_ATTRIBUTE pub_tmpl[] = {
          Attr(CKA_CLASS, pub_cls),     Attr(CKA_KEY_TYPE, type),   Attr(CKA_TOKEN, kTrue),
          Attr(CKA_PRIVATE, kFalse),    Attr(CKA_VERIFY, kTrue),    Attr(CKA_ENCRYPT, kFalse),
          Attr(CKA_WRAP, kFalse),       Attr(CKA_EC_PARAMS, curve), Attr(CKA_LABEL, signing_label_),
          Attr(CKA_ID, signing_label_),
      };
      CK_ATTRIBUTE priv_tmpl[] = {
          Attr(CKA_CLASS, priv_cls), Attr(CKA_KEY_TYPE, type),        Attr(CKA_TOKEN, kTrue),
          Attr(CKA_PRIVATE, kTrue),  Attr(CKA_SENSITIVE, kTrue),      Attr(CKA_EXTRACTABLE, kFalse),
          Attr(CKA_SIGN, kTrue),     Attr(CKA_DECRYPT, kFalse),       Attr(CKA_UNWRAP, kFalse),
          Attr(CKA_DERIVE, kFalse),  Attr(CKA_LABEL, signing_label_), Attr(CKA_ID, signing_label_),
      };
      CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, nullptr, 0};
      CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
      last = f_->C_GenerateKeyPair(session_, &mech, pub_tmpl, std::size(pub_tmpl), priv_tmpl, std::size(priv_tmpl),
                                   &pub, &priv);
      if (last == CKR_OK) return SyncStore("the new signing key");
      // Tokens differ in which curve name they accept; try the other one.
      if (last != CKR_CURVE_NOT_SUPPORTED && last != CKR_DOMAIN_PARAMS_INVALID && last != CKR_ATTRIBUTE_VALUE_INVALID &&
          last != CKR_TEMPLATE_INCONSISTENT) {
        break;
      }
    }
    return P11Error("C_GenerateKeyPair", last, "Ed25519 signing key");
  }

  // Finds (or on first use creates) the signing key pair. Requires mu_.
  absl::Status EnsureSigningKey() {
    if (signing_) return absl::OkStatus();
    for (int attempt = 0; attempt < 2; ++attempt) {
      absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> priv = FindSigning(CKO_PRIVATE_KEY);
      if (!priv.ok()) return priv.status();
      absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> pub = FindSigning(CKO_PUBLIC_KEY);
      if (!pub.ok()) return pub.status();
      if (priv->empty() && pub->empty() && attempt == 0) {
        absl::Status s = GenerateSigningKey();
        if (!s.ok()) return s;
        continue;
      }
      if (priv->size() != 1 || pub->size() != 1) {
        return absl::FailedPreconditionError(StrCat(
            "pkcs11: token '", token_label_, "' holds ", priv->size(), " private and ", pub->size(),
            " public keys labelled '", signing_label_, "'; expected one of each. Refusing to pick a signing identity"));
      }
      absl::StatusOr<Ed25519PublicKey> pk = ReadPublicKey(pub->front());
      if (!pk.ok()) return pk.status();
      signing_ = SigningKey{priv->front(), *pk};
      // Prove the pair matches before anything is signed with it.
      static constexpr std::string_view kProbe = "shredd pkcs11 key check";
      absl::StatusOr<Ed25519Signature> sig = SignLocked(kProbe);
      if (!sig.ok()) {
        signing_.reset();
        return sig.status();
      }
      return absl::OkStatus();
    }
    return absl::InternalError("pkcs11: signing key not found after creation");
  }

  // Requires mu_ and signing_.
  absl::StatusOr<Ed25519Signature> SignLocked(std::string_view message) {
    CK_MECHANISM mech = {CKM_EDDSA, nullptr, 0};
    CK_RV rv = f_->C_SignInit(session_, &mech, signing_->private_key);
    if (rv != CKR_OK) return P11Error("C_SignInit", rv, "CKM_EDDSA");
    Ed25519Signature sig;
    CK_ULONG len = sig.size();
    rv = f_->C_Sign(session_, reinterpret_cast<uint8_t*>(const_cast<char*>(message.data())), message.size(), sig.data(),
                    &len);
    if (rv != CKR_OK) return P11Error("C_Sign", rv, "CKM_EDDSA");
    if (len != sig.size()) {
      return absl::InternalError(StrCat("pkcs11: C_Sign (CKM_EDDSA) returned ", len, " bytes, expected 64"));
    }
    // A faulty token must not hand out a bad certificate signature.
    if (crypto_sign_verify_detached(sig.data(), reinterpret_cast<const uint8_t*>(message.data()), message.size(),
                                    signing_->public_key.data()) != 0) {
      return absl::InternalError(
          "pkcs11: token produced an Ed25519 signature that does not verify "
          "under its own public key");
    }
    return sig;
  }

  Module* const module_;
  CK_FUNCTION_LIST_PTR const f_;
  const CK_SLOT_ID slot_;
  const CK_SESSION_HANDLE session_;
  const std::string token_label_;
  const std::string root_prefix_;
  const std::string signing_label_;
  const std::string owner_label_;
  const std::string instance_;
  std::string owner_;  // claimed (ClaimOwnership), guarded by mu_
  bool logged_in_ = false;
  std::string store_to_sync_;  // Set once before the vault is shared.

  std::mutex mu_;
  std::optional<SigningKey> signing_;  // Guarded by mu_.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Vault>> OpenPkcs11Vault(std::string_view params) {
  if (sodium_init() < 0) {
    return absl::InternalError("pkcs11: sodium_init failed");
  }
  absl::StatusOr<Params> p = ParseParams(params);
  if (!p.ok()) return p.status();

  absl::StatusOr<Module*> m = AcquireModule(p->module);
  if (!m.ok()) return m.status();
  auto slot = FindSlot(*m, *p);
  if (!slot.ok()) {
    ReleaseModule(*m);
    return slot.status();
  }
  const std::string label = TrimLabel(slot->second.label);
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  CK_RV rv = (*m)->f->C_OpenSession(slot->first, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session);
  if (rv != CKR_OK) {
    ReleaseModule(*m);
    return P11Error("C_OpenSession", rv, StrCat("token '", label, "'"));
  }
  // From here the vault owns the session and the module reference.
  auto vault = std::make_unique<Pkcs11Vault>(*m, slot->first, session, label, p->instance);
  absl::Status s = vault->Login(*p, (slot->second.flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0);
  if (!s.ok()) return s;
  vault->SetStoreToSync(SoftHsmTokenDir(*m));
  return vault;
}

}  // namespace shredd
