#include "formats/note.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"

#include "formats/encoding.h"
#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;

namespace {

constexpr std::string_view kEmDashSpace = "\xe2\x80\x94 ";  // U+2014 U+0020

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;
  return n;
}

absl::Status CheckNoteCharacters(std::string_view s) {
  size_t line = 1;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      ++line;
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrFormat("note has a control character 0x%02x on line %d", c, line));
    }
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return absl::InvalidArgumentError(Cat("note is not valid UTF-8 (line ", line, ")"));
    i += n;
  }
  return absl::OkStatus();
}

bool IsValidSignatureName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == ' ' || c == '+') return false;
  }
  return true;
}

std::string Printable(std::string_view s) {
  std::string out(absl::CHexEscape(Sv(s.substr(0, 80))));
  if (s.size() > 80) out += "...";
  return out;
}

}  // namespace

absl::StatusOr<Note> ParseNote(std::string_view msg) {
  if (msg.size() > kMaxNoteBytes) {
    return absl::InvalidArgumentError(Cat("note is larger than ", kMaxNoteBytes, " bytes"));
  }
  if (msg.empty()) return absl::InvalidArgumentError("note is empty");
  if (auto s = CheckNoteCharacters(msg); !s.ok()) return s;
  if (msg.back() != '\n') {
    return absl::InvalidArgumentError("note does not end in a newline (truncated?)");
  }
  // The text ends at the last blank line; what follows are the signatures.
  const size_t blank = msg.rfind("\n\n");
  if (blank == std::string_view::npos) {
    return absl::InvalidArgumentError("note has no blank line between the text and its signatures");
  }
  Note note;
  note.text = std::string(msg.substr(0, blank + 1));
  std::string_view sigs = msg.substr(blank + 2);
  if (sigs.empty()) return absl::InvalidArgumentError("note has no signature lines");
  int line_no = 0;
  while (!sigs.empty()) {
    ++line_no;
    const size_t nl = sigs.find('\n');  // present: msg ends in '\n'
    const std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (note.signatures.size() >= kMaxNoteSignatures) {
      return absl::InvalidArgumentError(Cat("note has more than ", kMaxNoteSignatures, " signatures"));
    }
    if (!line.starts_with(kEmDashSpace)) {
      return absl::InvalidArgumentError(
          Cat("signature line ", line_no, " does not start with \"— \": \"", Printable(line), "\""));
    }
    const std::string_view rest = line.substr(kEmDashSpace.size());
    const size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) {
      return absl::InvalidArgumentError(Cat("signature line ", line_no, " has no signature after the key name"));
    }
    const std::string_view name = rest.substr(0, sp);
    if (!IsValidSignatureName(name)) {
      return absl::InvalidArgumentError(
          Cat("signature line ", line_no, " has an invalid key name \"", Printable(name), "\""));
    }
    absl::StatusOr<std::string> raw = Base64Decode(rest.substr(sp + 1));
    if (!raw.ok()) {
      return absl::InvalidArgumentError(
          Cat("signature line ", line_no, " (", name, "): bad base64: ", raw.status().message()));
    }
    if (raw->size() < 5) {
      return absl::InvalidArgumentError(
          Cat("signature line ", line_no, " (", name, ") is too short: ", raw->size(), " bytes"));
    }
    NoteSignature sig;
    sig.name = std::string(name);
    for (int k = 0; k < 4; ++k) sig.key_id = (sig.key_id << 8) | static_cast<unsigned char>((*raw)[k]);
    sig.signature = raw->substr(4);
    note.signatures.push_back(std::move(sig));
  }
  return note;
}

absl::StatusOr<Note> OpenNote(std::string_view signed_note, const NoteVerifier& verifier) {
  absl::StatusOr<Note> note = ParseNote(signed_note);
  if (!note.ok()) return note.status();
  bool verified = false;
  std::vector<std::string> other_ids;
  for (const NoteSignature& sig : note->signatures) {
    if (sig.name != verifier.name) {
      other_ids.push_back(sig.name);
      continue;
    }
    if (sig.key_id != verifier.key_hash) {
      other_ids.push_back(absl::StrFormat("%s (key ID %08x)", sig.name, sig.key_id));
      continue;
    }
    if (auto s = VerifyEd25519(verifier.key, note->text, sig.signature); !s.ok()) {
      return absl::UnauthenticatedError(Cat("signature by ", verifier.name,
                                            " does not verify: the note text was altered or the "
                                            "signature is corrupt (",
                                            s.message(), ")"));
    }
    verified = true;
  }
  if (verified) return note;
  // Say as precisely as possible why no signature applied.
  for (const NoteSignature& sig : note->signatures) {
    if (sig.name == verifier.name) {
      return absl::UnauthenticatedError(
          absl::StrFormat("note is signed by a different key named %s (key ID %08x, the verifier key has %08x): wrong "
                          "verifier key, or a key the log does not hold",
                          verifier.name, sig.key_id, verifier.key_hash));
    }
  }
  std::string names;
  for (const auto& n : other_ids) names += (names.empty() ? "" : ", ") + n;
  return absl::UnauthenticatedError(Cat("unknown key name: the note carries no signature by ", verifier.name,
                                        " (it is signed by ", names, "); wrong verifier key or wrong log?"));
}

std::string NoteSignatureLine(std::string_view name, uint32_t key_id, std::string_view signature) {
  std::string raw;
  raw.reserve(4 + signature.size());
  for (int shift = 24; shift >= 0; shift -= 8) raw.push_back(static_cast<char>((key_id >> shift) & 0xff));
  raw.append(signature);
  return Cat(kEmDashSpace, name, " ", Base64Encode(raw), "\n");
}

std::string AssembleSignedNote(std::string_view text, std::string_view name, uint32_t key_id,
                               std::string_view signature) {
  return Cat(text, "\n", NoteSignatureLine(name, key_id, signature));
}

std::string SignNoteEd25519(std::string_view text, std::string_view name, SecretKeySpan secret_key) {
  const PublicKey pub = PublicKeyOf(secret_key);
  return AssembleSignedNote(text, name, NoteKeyHash(name, pub), SignEd25519(secret_key, text));
}

}  // namespace shredd::verify
