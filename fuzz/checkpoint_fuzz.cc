// Fuzz target: signed notes and checkpoints (formats/note.h, tlog.h):
// ParseNote, OpenNote and VerifyCheckpoint under the fixture's verifier key,
// ParseCheckpointText, and checkpoint text signed by the harness so the
// checkpoint parser behind the signature is reached with arbitrary text.
// What `shredctl log monitor` reads from a server or a state file.
// Properties: an opened note is a parsed note; a parsed checkpoint without
// extensions re-formats to the same text (one spelling per checkpoint); a
// checkpoint is consistent with itself and never with a different root.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const fuzz::Fixture& f = fuzz::GetFixture();
  const std::string_view input = fuzz::AsView(data, size);

  auto note = verify::ParseNote(input);
  auto opened = verify::OpenNote(input, f.verifier);
  if (opened.ok()) {
    FUZZ_CHECK(note.ok());
    FUZZ_CHECK(opened->text == note->text);
    FUZZ_CHECK(!opened->text.empty() && opened->text.back() == '\n');
  }
  if (note.ok()) {
    FUZZ_CHECK(note->text.size() < input.size());
    FUZZ_CHECK(!note->signatures.empty());
  }
  if (auto c = verify::VerifyCheckpoint(input, f.verifier); c.ok()) {
    FUZZ_CHECK(opened.ok());
    FUZZ_CHECK(c->origin == f.verifier.name);
    FUZZ_CHECK(verify::VerifyCheckpointConsistency(*c, *c, {}).ok());
  }

  auto text = verify::ParseCheckpointText(input);
  if (text.ok()) {
    if (text->extensions.empty()) {
      FUZZ_CHECK(verify::FormatCheckpointText(text->origin, text->size, text->root) == input);
    }
    verify::Checkpoint other = *text;
    other.root[0] ^= 1;
    FUZZ_CHECK(!verify::VerifyCheckpointConsistency(*text, other, {}).ok());
    // Sign it as the log would; the verifier must now accept it iff the
    // origin is the key name, and must reject it under a wrong origin.
    if (input.size() < 4096) {
      const std::string signed_note = verify::SignNoteEd25519(input, fuzz::kLogOrigin, f.secret());
      auto c = verify::VerifyCheckpoint(signed_note, f.verifier);
      // The text may still fail note rules (control characters, bad UTF-8).
      if (verify::ParseNote(signed_note).ok()) {
        FUZZ_CHECK(c.ok() == (text->origin == fuzz::kLogOrigin));
        if (c.ok()) {
          FUZZ_CHECK(c->size == text->size && c->root == text->root);
          FUZZ_CHECK(!verify::VerifyCheckpoint(signed_note, f.verifier, "other.origin/log").ok());
        }
      } else {
        FUZZ_CHECK(!c.ok());
      }
    }
  }
  return 0;
}
