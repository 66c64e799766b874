// C2SP signed notes (c2sp.org/signed-note), as produced and read by
// golang.org/x/mod/sumdb/note: a UTF-8 text ending in '\n', a blank line, and
// one or more signature lines
//
//   "— " <key name> " " base64(4-byte big-endian key ID || signature) "\n"
//
// ("—" is U+2014). shredd signs with Ed25519 (signature type 0x01): the key
// ID is verify::NoteKeyHash(name, key) and the signature covers the note text
// including its final newline, but not the blank line.
//
// Everything here is a pure function of its arguments and thread-safe.

#ifndef SHREDD_FORMATS_NOTE_H_
#define SHREDD_FORMATS_NOTE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "formats/keys.h"

namespace shredd::verify {

// Limits applied when parsing: the signed-note spec asks verifiers to accept
// at least 16 signatures; shredd's notes are a few hundred bytes.
inline constexpr size_t kMaxNoteBytes = 1 << 20;
inline constexpr size_t kMaxNoteSignatures = 100;

struct NoteSignature {
  std::string name;
  uint32_t key_id = 0;
  std::string signature;  // raw bytes after the key ID (64 for Ed25519)
};

struct Note {
  std::string text;  // includes the final '\n'
  std::vector<NoteSignature> signatures;
};

// Splits a signed note into text and signature lines without checking any
// signature. InvalidArgument, naming the problem, if it is not well-formed:
// not UTF-8, a control character other than '\n', no blank line before the
// signatures, a malformed signature line, bad base64, or too large.
absl::StatusOr<Note> ParseNote(std::string_view signed_note);

// Parses `signed_note` and checks it against `verifier` as the spec says:
// signatures by other keys are ignored; a signature whose key name and key ID
// match `verifier` must verify. Returns the note on success. Otherwise:
//   InvalidArgument   - malformed note (see ParseNote);
//   Unauthenticated   - no signature line names the key ("unknown key name"),
//                       the name matches but the key ID differs ("signed by a
//                       different key"), or the signature does not verify
//                       (the text was altered).
absl::StatusOr<Note> OpenNote(std::string_view signed_note, const NoteVerifier& verifier);

// "— <name> <base64(key_id || signature)>\n"
std::string NoteSignatureLine(std::string_view name, uint32_t key_id, std::string_view signature);

// text + "\n" + the signature line. Requires `text` to end in '\n'.
std::string AssembleSignedNote(std::string_view text, std::string_view name, uint32_t key_id,
                               std::string_view signature);

// Signs `text` (ending in '\n') as a note under `name` with an Ed25519 key
// held in memory (tests and tools; the daemon signs through its Vault).
std::string SignNoteEd25519(std::string_view text, std::string_view name, SecretKeySpan secret_key);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_NOTE_H_
