#include "formats/tlog.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"

#include "formats/encoding.h"
#include "formats/note.h"
#include "formats/str_util.h"

namespace shredd::verify {

using internal::Cat;
using internal::Sv;

namespace {

std::string B64(const Hash& h) {
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}

std::string Printable(std::string_view s) {
  std::string out(absl::CHexEscape(Sv(s.substr(0, 80))));
  if (s.size() > 80) out += "...";
  return out;
}

std::string Short(const Hash& h) { return HexEncode(h).substr(0, 16) + ".."; }

// ASCII decimal, no sign, no leading zeros (except "0"), at most 2^63-1 (the
// largest tree Go's tlog and the C2SP tools handle).
absl::StatusOr<uint64_t> ParseDecimal(std::string_view s, std::string_view what) {
  if (s.empty()) return absl::InvalidArgumentError(Cat(what, " is empty"));
  if (s.size() > 1 && s[0] == '0') {
    return absl::InvalidArgumentError(Cat(what, " \"", Printable(s), "\" has a leading zero"));
  }
  uint64_t v = 0;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (char c : s) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(Cat(what, " \"", Printable(s), "\" is not a decimal number"));
    }
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (kMax - d) / 10) return absl::InvalidArgumentError(Cat(what, " \"", Printable(s), "\" is too large"));
    v = v * 10 + d;
  }
  return v;
}

absl::StatusOr<Hash> ParseB64Hash(std::string_view s, std::string_view what) {
  absl::StatusOr<std::string> raw = Base64Decode(s);
  if (!raw.ok()) {
    return absl::InvalidArgumentError(
        Cat(what, " is not valid base64 (", raw.status().message(), "): \"", Printable(s), "\""));
  }
  if (raw->size() != 32) {
    return absl::InvalidArgumentError(Cat(what, " decodes to ", raw->size(), " bytes, not 32"));
  }
  Hash h;
  std::memcpy(h.data(), raw->data(), 32);
  return h;
}

}  // namespace

std::string FormatCheckpointText(std::string_view origin, uint64_t size, const Hash& root) {
  return Cat(origin, "\n", size, "\n", B64(root), "\n");
}

absl::StatusOr<Checkpoint> ParseCheckpointText(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("checkpoint text does not end in a newline (truncated?)");
  }
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  if (lines.size() < 3) {
    return absl::InvalidArgumentError(
        Cat("checkpoint has ", lines.size(), " lines; it needs origin, tree size and root hash"));
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) return absl::InvalidArgumentError(Cat("checkpoint line ", i + 1, " is empty"));
  }
  Checkpoint c;
  c.origin = std::string(lines[0]);
  absl::StatusOr<uint64_t> size = ParseDecimal(lines[1], "checkpoint tree size");
  if (!size.ok()) return size.status();
  c.size = *size;
  absl::StatusOr<Hash> root = ParseB64Hash(lines[2], "checkpoint root hash");
  if (!root.ok()) return root.status();
  c.root = *root;
  for (size_t i = 3; i < lines.size(); ++i) c.extensions.emplace_back(lines[i]);
  return c;
}

absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view signed_note, const NoteVerifier& verifier,
                                            std::string_view expected_origin) {
  absl::StatusOr<Note> note = OpenNote(signed_note, verifier);
  if (!note.ok()) {
    return absl::Status(note.status().code(), Cat("checkpoint: ", note.status().message()));
  }
  absl::StatusOr<Checkpoint> c = ParseCheckpointText(note->text);
  if (!c.ok()) return c.status();
  const std::string_view want = expected_origin.empty() ? std::string_view(verifier.name) : expected_origin;
  if (c->origin != want) {
    return absl::FailedPreconditionError(
        Cat("wrong origin: the checkpoint is for log \"", Printable(c->origin), "\", expected \"", want, "\""));
  }
  c->signed_note = std::string(signed_note);
  return c;
}

std::string FormatTlogProof(const TlogProof& proof) {
  std::string out = Cat(kTlogProofHeader, "\n");
  if (proof.extra.has_value()) out += Cat("extra ", Base64Encode(*proof.extra), "\n");
  out += Cat("index ", proof.index, "\n");
  for (const Hash& h : proof.path) out += Cat(B64(h), "\n");
  out += "\n";
  out += proof.checkpoint;
  return out;
}

absl::StatusOr<TlogProof> ParseTlogProof(std::string_view text) {
  if (text.size() > kMaxNoteBytes + 64 * 1024) return absl::InvalidArgumentError("tlog-proof is too large");
  std::string_view rest = text;
  int line_no = 0;
  // Returns the next line (without '\n'), or nullopt if the text ends first.
  auto next_line = [&]() -> std::optional<std::string_view> {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    ++line_no;
    return line;
  };
  auto truncated = [&](std::string_view where) {
    return absl::InvalidArgumentError(Cat("tlog-proof is truncated: it ends ", where));
  };
  std::optional<std::string_view> line = next_line();
  if (!line) return truncated("before its first line is complete");
  if (*line != kTlogProofHeader) {
    return absl::InvalidArgumentError(
        Cat("not a tlog-proof: first line is \"", Printable(*line), "\", expected \"", kTlogProofHeader, "\""));
  }
  TlogProof proof;
  line = next_line();
  if (!line) return truncated("after the header");
  if (line->starts_with("extra ")) {
    absl::StatusOr<std::string> extra = Base64Decode(line->substr(6));
    if (!extra.ok()) {
      return absl::InvalidArgumentError(Cat("tlog-proof extra data is not valid base64: ", extra.status().message()));
    }
    proof.extra = std::move(*extra);
    line = next_line();
    if (!line) return truncated("after the extra line");
  }
  if (!line->starts_with("index ")) {
    return absl::InvalidArgumentError(
        Cat("tlog-proof line ", line_no, " should be \"index N\", is \"", Printable(*line), "\""));
  }
  absl::StatusOr<uint64_t> index = ParseDecimal(line->substr(6), "tlog-proof index");
  if (!index.ok()) return index.status();
  proof.index = *index;
  for (;;) {
    line = next_line();
    if (!line) {
      return truncated(
          Cat("inside the inclusion path, after ", proof.path.size(), " hashes and before the checkpoint"));
    }
    if (line->empty()) break;
    if (proof.path.size() >= kMaxProofHashes) {
      return absl::InvalidArgumentError(Cat("tlog-proof has more than ", kMaxProofHashes, " path hashes"));
    }
    absl::StatusOr<Hash> h = ParseB64Hash(*line, Cat("tlog-proof path hash ", proof.path.size() + 1));
    if (!h.ok()) return h.status();
    proof.path.push_back(*h);
  }
  if (rest.empty()) return truncated("before the checkpoint");
  proof.checkpoint = std::string(rest);
  return proof;
}

absl::StatusOr<VerifiedInclusion> VerifyTlogProof(std::string_view proof_file, std::string_view entry,
                                                  const NoteVerifier& verifier, std::optional<uint64_t> expected_index,
                                                  std::string_view expected_origin) {
  absl::StatusOr<TlogProof> proof = ParseTlogProof(proof_file);
  if (!proof.ok()) return proof.status();
  absl::StatusOr<Checkpoint> cp = VerifyCheckpoint(proof->checkpoint, verifier, expected_origin);
  if (!cp.ok()) return cp.status();
  if (expected_index.has_value() && *expected_index != proof->index) {
    return absl::InvalidArgumentError(
        Cat("the proof is for index ", proof->index, ", not for index ", *expected_index));
  }
  if (proof->index >= cp->size) {
    return absl::InvalidArgumentError(
        Cat("the proof is for index ", proof->index, " but its checkpoint covers only ", cp->size, " entries"));
  }
  if (auto s = VerifyInclusion(proof->index, cp->size, LeafHash(entry), proof->path, cp->root); !s.ok()) {
    return absl::InvalidArgumentError(Cat("the proof does not prove this entry at index ", proof->index,
                                          " of the tree of size ", cp->size, ": ", s.message()));
  }
  VerifiedInclusion out;
  out.index = proof->index;
  out.checkpoint = std::move(*cp);
  return out;
}

absl::Status VerifyCheckpointConsistency(const Checkpoint& older, const Checkpoint& newer,
                                         std::span<const Hash> proof) {
  if (older.origin != newer.origin) {
    return absl::InvalidArgumentError(Cat("checkpoints are of different logs: \"", Printable(older.origin), "\" and \"",
                                          Printable(newer.origin), "\""));
  }
  if (newer.size < older.size) {
    return absl::FailedPreconditionError(Cat("ROLLBACK: the log shrank from ", older.size, " to ", newer.size,
                                             " entries (root ", Short(older.root), " -> ", Short(newer.root), ")"));
  }
  if (newer.size == older.size) {
    if (newer.root != older.root) {
      return absl::FailedPreconditionError(Cat("FORK: two different roots for tree size ", older.size, ": ",
                                               Short(older.root), " and ", Short(newer.root)));
    }
    if (!proof.empty()) {
      return absl::FailedPreconditionError(
          Cat("FORK: consistency proof between equal sizes ", older.size, " must be empty"));
    }
    return absl::OkStatus();
  }
  if (auto s = VerifyConsistency(older.size, newer.size, older.root, newer.root, proof); !s.ok()) {
    return absl::FailedPreconditionError(Cat("FORK: the tree of size ", newer.size,
                                             " does not extend the tree of size ", older.size, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace shredd::verify
