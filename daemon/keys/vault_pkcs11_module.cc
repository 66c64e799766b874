// PKCS#11 vault backend, the module, session and login plumbing: error
// reporting, the vault parameters, the process-wide module registry (shared
// C_Initialize/C_Finalize and login state), object labels and finding the
// token's slot. The Vault implementation is in vault_pkcs11.cc; what both
// use is declared in vault_pkcs11_internal.h.
#include <dlfcn.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

#include "daemon/base/secret.h"
#include "daemon/base/strings.h"

// Last: includes p11-kit's pkcs11.h, after which nothing may be included.
#include "daemon/keys/vault_pkcs11_internal.h"

namespace shredd::pkcs11_internal {
namespace {

// Object labels; with instance=NAME they become shredd-NAME-root-<epoch> and
// shredd-NAME-signing, so several daemons can share one token.
constexpr std::string_view kLabelPrefix = "shredd-";
constexpr size_t kMaxPinBytes = 256;

}  // namespace

// ---------------------------------------------------------------------------
// Error reporting

const char* CkrName(CK_RV rv) {
  switch (rv) {
#define SHREDD_CKR(x) \
  case x:             \
    return #x;
    SHREDD_CKR(CKR_OK)
    SHREDD_CKR(CKR_CANCEL)
    SHREDD_CKR(CKR_HOST_MEMORY)
    SHREDD_CKR(CKR_SLOT_ID_INVALID)
    SHREDD_CKR(CKR_GENERAL_ERROR)
    SHREDD_CKR(CKR_FUNCTION_FAILED)
    SHREDD_CKR(CKR_ARGUMENTS_BAD)
    SHREDD_CKR(CKR_NO_EVENT)
    SHREDD_CKR(CKR_NEED_TO_CREATE_THREADS)
    SHREDD_CKR(CKR_CANT_LOCK)
    SHREDD_CKR(CKR_ATTRIBUTE_READ_ONLY)
    SHREDD_CKR(CKR_ATTRIBUTE_SENSITIVE)
    SHREDD_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    SHREDD_CKR(CKR_ATTRIBUTE_VALUE_INVALID)
    SHREDD_CKR(CKR_ACTION_PROHIBITED)
    SHREDD_CKR(CKR_DATA_INVALID)
    SHREDD_CKR(CKR_DATA_LEN_RANGE)
    SHREDD_CKR(CKR_DEVICE_ERROR)
    SHREDD_CKR(CKR_DEVICE_MEMORY)
    SHREDD_CKR(CKR_DEVICE_REMOVED)
    SHREDD_CKR(CKR_AEAD_DECRYPT_FAILED)
    SHREDD_CKR(CKR_ENCRYPTED_DATA_INVALID)
    SHREDD_CKR(CKR_ENCRYPTED_DATA_LEN_RANGE)
    SHREDD_CKR(CKR_FUNCTION_CANCELED)
    SHREDD_CKR(CKR_FUNCTION_NOT_PARALLEL)
    SHREDD_CKR(CKR_FUNCTION_NOT_SUPPORTED)
    SHREDD_CKR(CKR_KEY_HANDLE_INVALID)
    SHREDD_CKR(CKR_KEY_SIZE_RANGE)
    SHREDD_CKR(CKR_KEY_TYPE_INCONSISTENT)
    SHREDD_CKR(CKR_KEY_NOT_NEEDED)
    SHREDD_CKR(CKR_KEY_CHANGED)
    SHREDD_CKR(CKR_KEY_NEEDED)
    SHREDD_CKR(CKR_KEY_INDIGESTIBLE)
    SHREDD_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    SHREDD_CKR(CKR_KEY_NOT_WRAPPABLE)
    SHREDD_CKR(CKR_KEY_UNEXTRACTABLE)
    SHREDD_CKR(CKR_MECHANISM_INVALID)
    SHREDD_CKR(CKR_MECHANISM_PARAM_INVALID)
    SHREDD_CKR(CKR_OBJECT_HANDLE_INVALID)
    SHREDD_CKR(CKR_OPERATION_ACTIVE)
    SHREDD_CKR(CKR_OPERATION_NOT_INITIALIZED)
    SHREDD_CKR(CKR_PIN_INCORRECT)
    SHREDD_CKR(CKR_PIN_INVALID)
    SHREDD_CKR(CKR_PIN_LEN_RANGE)
    SHREDD_CKR(CKR_PIN_EXPIRED)
    SHREDD_CKR(CKR_PIN_LOCKED)
    SHREDD_CKR(CKR_SESSION_CLOSED)
    SHREDD_CKR(CKR_SESSION_COUNT)
    SHREDD_CKR(CKR_SESSION_HANDLE_INVALID)
    SHREDD_CKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    SHREDD_CKR(CKR_SESSION_READ_ONLY)
    SHREDD_CKR(CKR_SESSION_EXISTS)
    SHREDD_CKR(CKR_SESSION_READ_ONLY_EXISTS)
    SHREDD_CKR(CKR_SESSION_READ_WRITE_SO_EXISTS)
    SHREDD_CKR(CKR_SIGNATURE_INVALID)
    SHREDD_CKR(CKR_SIGNATURE_LEN_RANGE)
    SHREDD_CKR(CKR_TEMPLATE_INCOMPLETE)
    SHREDD_CKR(CKR_TEMPLATE_INCONSISTENT)
    SHREDD_CKR(CKR_TOKEN_NOT_PRESENT)
    SHREDD_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    SHREDD_CKR(CKR_TOKEN_WRITE_PROTECTED)
    SHREDD_CKR(CKR_USER_ALREADY_LOGGED_IN)
    SHREDD_CKR(CKR_USER_NOT_LOGGED_IN)
    SHREDD_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    SHREDD_CKR(CKR_USER_TYPE_INVALID)
    SHREDD_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    SHREDD_CKR(CKR_USER_TOO_MANY_TYPES)
    SHREDD_CKR(CKR_RANDOM_NO_RNG)
    SHREDD_CKR(CKR_DOMAIN_PARAMS_INVALID)
    SHREDD_CKR(CKR_CURVE_NOT_SUPPORTED)
    SHREDD_CKR(CKR_BUFFER_TOO_SMALL)
    SHREDD_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    SHREDD_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    SHREDD_CKR(CKR_FIPS_SELF_TEST_FAILED)
    SHREDD_CKR(CKR_LIBRARY_LOAD_FAILED)
    SHREDD_CKR(CKR_PIN_TOO_WEAK)
    SHREDD_CKR(CKR_PUBLIC_KEY_INVALID)
    SHREDD_CKR(CKR_FUNCTION_REJECTED)
#undef SHREDD_CKR
    default:
      return rv >= CKR_VENDOR_DEFINED ? "CKR_VENDOR_DEFINED" : "CKR_?";
  }
}

absl::StatusCode CodeFor(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_USER_PIN_NOT_INITIALIZED:
      return absl::StatusCode::kUnauthenticated;
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_ACTION_PROHIBITED:
    case CKR_ATTRIBUTE_SENSITIVE:
    case CKR_KEY_UNEXTRACTABLE:
      return absl::StatusCode::kPermissionDenied;
    case CKR_AEAD_DECRYPT_FAILED:
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
      return absl::StatusCode::kDataLoss;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_SLOT_ID_INVALID:
      return absl::StatusCode::kNotFound;
    case CKR_MECHANISM_INVALID:
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_CURVE_NOT_SUPPORTED:
      return absl::StatusCode::kUnimplemented;
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_FUNCTION_CANCELED:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return absl::StatusCode::kUnavailable;
    case CKR_HOST_MEMORY:
    case CKR_DEVICE_MEMORY:
    case CKR_SESSION_COUNT:
      return absl::StatusCode::kResourceExhausted;
    case CKR_TOKEN_WRITE_PROTECTED:
    case CKR_SESSION_READ_ONLY:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_READ_WRITE_SO_EXISTS:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

// "pkcs11: C_Login: CKR_PIN_INCORRECT (0xa0) (context)". Never pass secrets
// in `context`.
absl::Status P11Error(std::string_view function, CK_RV rv, std::string_view context) {
  std::string msg = StrCat("pkcs11: ", function, " failed: ", CkrName(rv), " (0x", absl::Hex(rv), ")");
  if (!context.empty()) absl::StrAppend(&msg, " (", AbslView(context), ")");
  return absl::Status(CodeFor(rv), msg);
}

// ---------------------------------------------------------------------------
// Parameters

namespace {

absl::StatusOr<SecretBytes> ReadPinFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    return absl::Status(err == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kPermissionDenied,
                        StrCat("pkcs11: cannot open pin-file ", path, ": ", std::strerror(err)));
  }
  SecretBytes buf(kMaxPinBytes + 1);
  size_t n = 0;
  while (n < buf.size()) {
    ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      ::close(fd);
      return absl::InternalError(StrCat("pkcs11: cannot read pin-file ", path, ": ", std::strerror(err)));
    }
    if (r == 0) break;
    n += static_cast<size_t>(r);
  }
  ::close(fd);
  if (n > kMaxPinBytes) {
    return absl::InvalidArgumentError(StrCat("pkcs11: pin-file ", path, " is longer than ", kMaxPinBytes, " bytes"));
  }
  // One trailing newline (as written by echo) is not part of the PIN.
  if (n > 0 && buf.data()[n - 1] == '\n') --n;
  if (n > 0 && buf.data()[n - 1] == '\r') --n;
  return SecretBytes::CopyOf(buf.span().first(n));
}

SecretBytes PinFromString(std::string_view s) {
  return SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

}  // namespace

absl::StatusOr<Params> ParseParams(std::string_view text) {
  Params p;
  std::set<std::string, std::less<>> seen;
  std::optional<std::string> pin_file;
  for (absl::string_view piece : absl::StrSplit(AbslView(text), ';', absl::SkipEmpty())) {
    std::string_view part(piece.data(), piece.size());
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      // Do not echo `part`: it might be a mistyped PIN.
      return absl::InvalidArgumentError(
          "pkcs11: vault parameters must be key=value pairs separated by ';' "
          "(keys: module, token, slot, pin, pin-file, instance)");
    }
    std::string_view key = part.substr(0, eq);
    std::string_view val = part.substr(eq + 1);
    if (!seen.insert(std::string(key)).second) {
      return absl::InvalidArgumentError(StrCat("pkcs11: parameter '", key, "' given twice"));
    }
    if (key == "module") {
      p.module = std::string(val);
    } else if (key == "token") {
      p.token = std::string(val);
    } else if (key == "slot") {
      CK_SLOT_ID slot = 0;
      auto [ptr, ec] = std::from_chars(val.data(), val.data() + val.size(), slot);
      if (val.empty() || ec != std::errc() || ptr != val.data() + val.size()) {
        return absl::InvalidArgumentError(StrCat("pkcs11: slot must be a number, got '", val, "'"));
      }
      p.slot = slot;
    } else if (key == "instance") {
      const bool valid = !val.empty() && val.size() <= 32 && std::all_of(val.begin(), val.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
      });
      if (!valid) {
        return absl::InvalidArgumentError(StrCat("pkcs11: instance must be 1 to 32 of [A-Za-z0-9_.], got '", val, "'"));
      }
      p.instance = std::string(val);
    } else if (key == "pin") {
      p.pin = PinFromString(val);
      p.have_pin = true;
    } else if (key == "pin-file") {
      pin_file = std::string(val);
    } else {
      return absl::InvalidArgumentError(
          StrCat("pkcs11: unknown parameter '", key, "' (known: module, token, slot, pin, pin-file, instance)"));
    }
  }
  if (p.module.empty()) {
    return absl::InvalidArgumentError(
        "pkcs11: missing module=PATH (the PKCS#11 library, e.g. "
        "/usr/lib/softhsm/libsofthsm2.so)");
  }
  if (p.module.front() != '/') {
    return absl::InvalidArgumentError(StrCat("pkcs11: module path must be absolute, got '", p.module, "'"));
  }
  if (!p.token && !p.slot) {
    return absl::InvalidArgumentError("pkcs11: missing token=LABEL (or slot=N)");
  }
  if (p.token && p.token->size() > 32) {
    return absl::InvalidArgumentError(StrCat("pkcs11: token label '", *p.token, "' is longer than 32 bytes"));
  }
  if (p.have_pin && pin_file) {
    return absl::InvalidArgumentError("pkcs11: give either pin= or pin-file=, not both");
  }
  if (pin_file) {
    absl::StatusOr<SecretBytes> pin = ReadPinFile(*pin_file);
    if (!pin.ok()) return pin.status();
    p.pin = *std::move(pin);
    p.have_pin = true;
  } else if (!p.have_pin) {
    if (const char* env = std::getenv(kPinEnv); env != nullptr) {
      p.pin = PinFromString(env);
      p.have_pin = true;
    }
  }
  return p;
}

// ---------------------------------------------------------------------------
// Process-wide module registry.
//
// C_Initialize/C_Finalize and the login state are per process and module, so
// vaults that share a module share them. Modules are never dlclose'd: several
// PKCS#11 libraries (and the OpenSSL they link) do not survive unloading.

PinTag TagPin(std::span<const uint8_t> pin) {
  static const std::array<uint8_t, crypto_generichash_KEYBYTES> key = [] {
    std::array<uint8_t, crypto_generichash_KEYBYTES> k;
    randombytes_buf(k.data(), k.size());
    return k;
  }();
  PinTag tag;
  crypto_generichash(tag.data(), tag.size(), pin.data(), pin.size(), key.data(), key.size());
  return tag;
}

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}

namespace {

std::map<void*, std::unique_ptr<Module>>& Registry() {
  static auto* modules = new std::map<void*, std::unique_ptr<Module>>();
  return *modules;
}

}  // namespace

absl::StatusOr<Module*> AcquireModule(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    return absl::Status(err == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
                        StrCat("pkcs11: module ", path, ": ", std::strerror(err)));
  }
  std::lock_guard<std::mutex> lock(RegistryMutex());
  ::dlerror();
  void* dl = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (dl == nullptr) {
    const char* why = ::dlerror();
    return absl::FailedPreconditionError(
        StrCat("pkcs11: cannot load module ", path, ": dlopen: ", why != nullptr ? why : "unknown error"));
  }
  auto& reg = Registry();
  auto it = reg.find(dl);
  if (it == reg.end()) {
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(dl, "C_GetFunctionList"));
    if (get_list == nullptr) {
      ::dlclose(dl);
      return absl::FailedPreconditionError(StrCat("pkcs11: ", path, " is not a PKCS#11 module (no C_GetFunctionList)"));
    }
    CK_FUNCTION_LIST_PTR f = nullptr;
    CK_RV rv = get_list(&f);
    if (rv != CKR_OK || f == nullptr) {
      ::dlclose(dl);
      return P11Error("C_GetFunctionList", rv, path);
    }
    auto m = std::make_unique<Module>();
    m->path = path;
    m->dl = dl;
    m->f = f;
    it = reg.emplace(dl, std::move(m)).first;
  } else {
    ::dlclose(dl);  // Drop the extra reference; the registry holds one.
  }
  Module* m = it->second.get();
  if (m->users == 0) {
    CK_C_INITIALIZE_ARGS args;
    std::memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = m->f->C_Initialize(&args);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      // Someone else in this process initialised it; leave finalising to them.
      m->finalize_when_unused = false;
    } else if (rv != CKR_OK) {
      return P11Error("C_Initialize", rv, path);
    } else {
      m->finalize_when_unused = true;
    }
  }
  ++m->users;
  return m;
}

void ReleaseModule(Module* m) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  if (--m->users == 0) {
    m->logins.clear();
    if (m->finalize_when_unused) m->f->C_Finalize(nullptr);
  }
}

// ---------------------------------------------------------------------------
// Labels

std::string TrimLabel(const CK_UTF8CHAR (&label)[32]) {
  std::string s(reinterpret_cast<const char*>(label), sizeof label);
  size_t end = s.find_last_not_of(" \0", std::string::npos, 2);
  return end == std::string::npos ? std::string() : s.substr(0, end + 1);
}

std::string RootLabelPrefix(std::string_view instance) {
  return instance.empty() ? StrCat(kLabelPrefix, "root-") : StrCat(kLabelPrefix, instance, "-root-");
}

std::string OwnerLabel(std::string_view instance) {
  return instance.empty() ? StrCat(kLabelPrefix, "owner") : StrCat(kLabelPrefix, instance, "-owner");
}

std::string SigningLabel(std::string_view instance) {
  return instance.empty() ? StrCat(kLabelPrefix, "signing") : StrCat(kLabelPrefix, instance, "-signing");
}

// Epoch of a root label with the given prefix: canonical decimal only, so
// that "shredd-root-" never matches another instance's "shredd-root-x-1".
std::optional<uint64_t> ParseRootLabel(std::string_view prefix, std::string_view label) {
  if (label.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view digits = label.substr(prefix.size());
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) {
    return std::nullopt;
  }
  uint64_t epoch = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), epoch);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) {
    return std::nullopt;
  }
  return epoch;
}

std::array<uint8_t, 8> EpochId(uint64_t epoch) {
  std::array<uint8_t, 8> id;
  for (int i = 7; i >= 0; --i) {
    id[i] = static_cast<uint8_t>(epoch & 0xff);
    epoch >>= 8;
  }
  return id;
}

// ---------------------------------------------------------------------------
// Slots

// Finds the slot holding the wanted token. Returns its label too.
absl::StatusOr<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>> FindSlot(Module* m, const Params& p) {
  CK_FUNCTION_LIST_PTR f = m->f;
  CK_ULONG n = 0;
  CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &n);
  if (rv != CKR_OK) return P11Error("C_GetSlotList", rv, m->path);
  std::vector<CK_SLOT_ID> slots(n);
  if (n > 0) {
    rv = f->C_GetSlotList(CK_TRUE, slots.data(), &n);
    if (rv != CKR_OK) return P11Error("C_GetSlotList", rv, m->path);
    slots.resize(n);
  }
  std::vector<std::string> seen;
  std::vector<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>> matches;
  for (CK_SLOT_ID slot : slots) {
    if (p.slot && *p.slot != slot) continue;
    CK_TOKEN_INFO info;
    rv = f->C_GetTokenInfo(slot, &info);
    if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED) continue;
    if (rv != CKR_OK) return P11Error("C_GetTokenInfo", rv, m->path);
    std::string label = TrimLabel(info.label);
    seen.push_back(StrCat("'", label, "'"));
    if (p.token && label != *p.token) continue;
    matches.emplace_back(slot, info);
  }
  std::string wanted = p.token ? StrCat("token '", *p.token, "'") : StrCat("a token in slot ", *p.slot);
  if (p.token && p.slot) absl::StrAppend(&wanted, " in slot ", *p.slot);
  if (matches.empty()) {
    return absl::NotFoundError(StrCat("pkcs11: no ", wanted, " in ", m->path,
                                      " (tokens present: ", seen.empty() ? "none" : absl::StrJoin(seen, ", "), ")"));
  }
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(
        StrCat("pkcs11: ", matches.size(), " slots hold ", wanted, " in ", m->path, "; add slot=N to choose"));
  }
  const CK_TOKEN_INFO& info = matches.front().second;
  if (!(info.flags & CKF_TOKEN_INITIALIZED)) {
    return absl::FailedPreconditionError(StrCat("pkcs11: ", wanted, " is not initialised"));
  }
  if (!(info.flags & CKF_USER_PIN_INITIALIZED)) {
    return absl::FailedPreconditionError(StrCat("pkcs11: ", wanted, " has no user PIN set"));
  }
  if (info.flags & CKF_WRITE_PROTECTED) {
    return absl::FailedPreconditionError(StrCat("pkcs11: ", wanted, " is write-protected"));
  }
  return matches.front();
}

// The token directory of a SoftHSM2 module with the file object store, read
// from its configuration file (SOFTHSM2_CONF, else the packaged default), or
// "" if the module is not SoftHSM or the directory cannot be determined.
std::string SoftHsmTokenDir(Module* m) {
  CK_INFO info;
  if (m->f->C_GetInfo(&info) != CKR_OK) return "";
  if (TrimLabel(info.manufacturerID).rfind("SoftHSM", 0) != 0) return "";
  const char* conf = std::getenv("SOFTHSM2_CONF");
  FILE* f = std::fopen(conf != nullptr ? conf : "/etc/softhsm/softhsm2.conf", "re");
  if (f == nullptr) return "";
  std::string dir;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    std::string_view l(line);
    size_t eq = l.find('=');
    if (eq == std::string_view::npos) continue;
    auto trim = [](std::string_view v) {
      size_t b = v.find_first_not_of(" \t\r\n");
      size_t e = v.find_last_not_of(" \t\r\n");
      return b == std::string_view::npos ? std::string_view() : v.substr(b, e - b + 1);
    };
    if (trim(l.substr(0, eq)) == "directories.tokendir") {
      dir = std::string(trim(l.substr(eq + 1)));
    }
  }
  std::fclose(f);
  return dir.empty() || dir.front() != '/' ? "" : dir;
}

}  // namespace shredd::pkcs11_internal
