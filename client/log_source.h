// Where `shredctl log monitor` and `log verify` read the transparency log
// from: the daemon over gRPC (cli_log.cc) or a C2SP tlog-tiles copy of it,
// a directory or an http(s):// URL (log_tiles.cc, docs/LOG.md "Tiles"). The
// monitor's checks, messages and exit codes are the same for both
// (RunMonitor).
#ifndef SHREDD_CLIENT_LOG_SOURCE_H_
#define SHREDD_CLIENT_LOG_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "client/cli_common.h"
#include "formats/keys.h"
#include "formats/merkle.h"
#include "formats/tlog.h"

namespace shredd::cli {

// Help text of --tiles.
inline constexpr const char* kTilesOptionHelp =
    "read the log from its tiles (c2sp.org/tlog-tiles) in DIR or at an http(s):// URL, not from the daemon";

class LogSource {
 public:
  virtual ~LogSource() = default;
  // Whose checkpoint, for messages: "the daemon's", "the tiles' (URL)".
  virtual std::string Whose() const = 0;
  // The latest signed checkpoint, unverified. Throws Failure if it cannot be had.
  virtual std::string Checkpoint() = 0;
  // Called once the latest checkpoint verified: a source that can check
  // what it serves against it does (the tiles: their tree hash must be the
  // checkpoint's root). Throws Failure (kVerifyFailed) if not.
  virtual void Check(const verify::Checkpoint& /*latest*/) {}
  // PROOF(m, D[latest.size]). Throws Failure if it cannot be had.
  virtual std::vector<verify::Hash> ConsistencyProof(uint64_t m, const verify::Checkpoint& latest) = 0;
};

// `shredctl log monitor` (docs/LOG.md "Monitoring"): exit 0, 3 (a checkpoint
// does not verify, or the source's own data does not match it) or 7
// (FORK/ROLLBACK DETECTED).
int RunMonitor(const Global& g, const std::string& state_path, const std::string& vkey_path, LogSource& source);

// The tiles in `dir_or_url` (a directory, file://PATH, http:// or https://).
std::unique_ptr<LogSource> TilesLogSource(const std::string& dir_or_url);

// One file under a tiles prefix: the bytes, NOT_FOUND if there is none,
// another error if it cannot be read.
absl::StatusOr<std::string> FetchTilesFile(const std::string& dir_or_url, const std::string& rel_path);

// The entries of entry bundle `n` of a tree of `size` entries (n * 256 <
// size), from the partial bundle or, once it is gone, the full one. Errors:
// as FetchTilesFile; DATA_LOSS for a malformed bundle.
absl::StatusOr<std::vector<std::string>> ReadEntryBundle(const std::string& dir_or_url, uint64_t n, uint64_t size);

// `shredctl log verify --entry E --proof P`: the verdict on a tlog-proof
// (exit 0 or 3), printed as `log verify` prints it.
int ReportLogVerify(const Global& g, const LoggedEntry& entry, const std::string& entry_path, const std::string& proof,
                    const verify::NoteVerifier& vkey, std::optional<uint64_t> index);
// `shredctl log verify --entry E --tiles T`: finds the entry (at --index, or
// by scanning the entry bundles), builds its tlog-proof from the hash tiles
// and reports as ReportLogVerify.
int CmdLogVerifyTiles(const Global& g, const std::string& entry_path, const std::string& tiles,
                      const std::string& vkey_path, std::optional<uint64_t> index);

// A signed-note verifier key file ("<name>+<hash>+<base64>"); throws Failure (kUsage).
verify::NoteVerifier ReadVkey(const std::string& path);
// Durable replace: a fresh, exclusively created temporary file next to PATH
// written and fsynced, renamed over PATH, directory fsynced.
void WriteFileDurably(const std::string& path, std::string_view data);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_LOG_SOURCE_H_
