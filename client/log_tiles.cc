// shredctl log monitor / log verify --tiles DIR_OR_URL: the transparency
// log read from its C2SP tlog-tiles copy (formats/tiles.h), from a directory
// or over http(s) with libcurl. No daemon, no gRPC, no TLS client
// certificate (docs/LOG.md "Tiles").
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <type_traits>

#include <curl/curl.h>

#include "client/log_source.h"
#include "daemon/base/strings.h"
#include "formats/encoding.h"
#include "formats/note.h"
#include "formats/tiles.h"
#include "formats/tlog.h"

namespace shredd::cli {
using ::shredd::StrCat;
namespace {

// Largest file read: a full entry bundle is at most 256 x (2 + 65535) bytes.
constexpr size_t kMaxTilesFile = 17 << 20;

bool IsUrl(const std::string& s) { return s.starts_with("http://") || s.starts_with("https://"); }

std::string Joined(const std::string& base, const std::string& rel) {
  std::string b = base;
  while (b.size() > 1 && b.back() == '/') b.pop_back();
  return StrCat(b, "/", rel);
}

absl::StatusOr<std::string> ReadLocal(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = StrCat("cannot open ", path, ": ", std::strerror(err));
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(msg);
    return absl::UnavailableError(msg);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::UnavailableError(StrCat("cannot read ", path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxTilesFile) {
      close(fd);
      return absl::FailedPreconditionError(StrCat(path, " is larger than any tiles file can be"));
    }
  }
  close(fd);
  return out;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() + size * n > kMaxTilesFile) return 0;  // aborts the transfer
  out->append(data, size * n);
  return size * n;
}

// libcurl, loaded on first use rather than linked: only `--tiles URL` needs
// it, and linked it made every shredctl run load 27 more libraries
// (Kerberos, LDAP, GnuTLS, ...: ~12 of the ~50 ms of CPU a shredctl start
// took; docs/PERFORMANCE.md "Fixed costs of a put").
struct CurlApi {
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
};

absl::StatusOr<CurlApi> OpenCurl() {
  void* lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("reading tiles over http(s) needs libcurl (Debian package libcurl4): ", dlerror()));
  }
  CurlApi api;
  bool found = true;
  auto bind = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    found = found && fn != nullptr;
  };
  decltype(&curl_global_init) global_init = nullptr;
  bind(global_init, "curl_global_init");
  bind(api.easy_init, "curl_easy_init");
  bind(api.easy_setopt, "curl_easy_setopt");
  bind(api.easy_perform, "curl_easy_perform");
  bind(api.easy_getinfo, "curl_easy_getinfo");
  bind(api.easy_cleanup, "curl_easy_cleanup");
  bind(api.easy_strerror, "curl_easy_strerror");
  if (!found) return absl::FailedPreconditionError("libcurl.so.4 lacks a function shredctl needs");
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return absl::InternalError("libcurl failed to initialise");
  return api;
}

absl::StatusOr<std::string> ReadUrl(const std::string& url) {
  static const absl::StatusOr<CurlApi> loaded = OpenCurl();  // once, thread-safe
  if (!loaded.ok()) return loaded.status();
  const CurlApi& c = *loaded;
  CURL* curl = c.easy_init();
  if (curl == nullptr) return absl::InternalError("libcurl failed to initialise");
  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  c.easy_setopt(curl, CURLOPT_URL, url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
  c.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  c.easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  c.easy_setopt(curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
  c.easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  c.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  c.easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  c.easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // gzip, identity, ...: the spec asks for gzip
  c.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 20L);
  c.easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  c.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  c.easy_setopt(curl, CURLOPT_USERAGENT, "shredctl/" SHREDD_VERSION);
  c.easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  c.easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  c.easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  const CURLcode rc = c.easy_perform(curl);
  long status = 0;
  c.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  c.easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        StrCat("GET ", url, ": ", errbuf[0] != '\0' ? std::string(errbuf) : std::string(c.easy_strerror(rc))));
  }
  if (status == 404 || status == 410) return absl::NotFoundError(StrCat("GET ", url, ": HTTP ", status));
  if (status != 200) return absl::UnavailableError(StrCat("GET ", url, ": HTTP ", status));
  return body;
}

class TilesSource : public LogSource {
 public:
  explicit TilesSource(std::string base) : base_(std::move(base)) {}

  std::string Whose() const override { return StrCat("the tiles' (", base_, ")"); }

  std::string Checkpoint() override {
    auto text = FetchTilesFile(base_, std::string(verify::kCheckpointPath));
    if (!text.ok()) {
      throw Failure{kFail, StrCat("fetching the checkpoint failed: ", text.status().message()), ""};
    }
    return *std::move(text);
  }

  // The hash tiles are authenticated against the checkpoint's root before
  // any hash of theirs is used (verify::TileHashes), so a tile that does not
  // match is reported here, exit 3, as the tiles' fault: it is not evidence
  // of a fork, and proofs built from the tiles are the checkpoint's tree's.
  void Check(const verify::Checkpoint& latest) override {
    auto root = Tiles(latest).Root();
    if (!root.ok()) throw TilesFailure(latest, root.status(), "reading the hash tiles");
  }

  std::vector<verify::Hash> ConsistencyProof(uint64_t m, const verify::Checkpoint& latest) override {
    auto proof = Tiles(latest).ConsistencyProof(m);
    if (!proof.ok()) {
      throw TilesFailure(latest, proof.status(), StrCat("computing the consistency proof ", m, " -> ", latest.size));
    }
    return *std::move(proof);
  }

  std::vector<verify::Hash> InclusionProof(uint64_t index, const verify::Checkpoint& latest) {
    auto path = Tiles(latest).InclusionProof(index);
    if (!path.ok()) throw TilesFailure(latest, path.status(), "computing the inclusion proof");
    return *std::move(path);
  }

  // The leaf hash at `index`, authenticated against `latest`.
  verify::Hash LeafHash(uint64_t index, const verify::Checkpoint& latest) {
    auto h = Tiles(latest).SubtreeHash(0, index);
    if (!h.ok()) throw TilesFailure(latest, h.status(), StrCat("reading the leaf hash of entry ", index));
    return *h;
  }

  // DATA_LOSS (a tile of the wrong length or contents): the tiles do not
  // match their checkpoint, exit 3; anything else (cannot fetch): exit 1.
  Failure TilesFailure(const verify::Checkpoint& latest, const absl::Status& s, const std::string& what) const {
    if (absl::IsDataLoss(s)) {
      return Failure{
          kVerifyFailed,
          StrCat("the tiles at ", base_, " do not match their checkpoint (tree size ", latest.size, ", root ",
                 verify::HexEncode(latest.root), "); this is the tiles' fault, not evidence of a fork: ", s.message()),
          ""};
    }
    return Failure{kFail, StrCat(what, " from the tiles (tree size ", latest.size, ") failed: ", s.message()), ""};
  }

  verify::TileHashes& Tiles(const verify::Checkpoint& latest) {
    if (!tiles_ || tiles_->tree_size() != latest.size || root_ != latest.root) {
      root_ = latest.root;
      tiles_ = std::make_unique<verify::TileHashes>(
          latest.size, latest.root, [base = base_](const std::string& rel) { return FetchTilesFile(base, rel); });
    }
    return *tiles_;
  }

 private:
  const std::string base_;
  verify::Hash root_{};
  std::unique_ptr<verify::TileHashes> tiles_;
};

// The index of an entry equal to `entry` whose leaf hash the tiles prove
// (authenticated against `cp`), from the entry bundles; nullopt if none.
// The bundles are not authenticated: an entry equal to `entry` in a slot
// whose proven leaf hash differs is a rewritten bundle, skipped, and so is a
// bundle that cannot be parsed (*problem says so), so that neither hides the
// genuine entry further on.
std::optional<uint64_t> FindInBundles(TilesSource& source, const std::string& base, const verify::Checkpoint& cp,
                                      const std::string& entry, std::string* problem) {
  const verify::Hash leaf = verify::LeafHash(entry);
  for (uint64_t n = 0; n * verify::kTileWidth < cp.size; ++n) {
    auto entries = ReadEntryBundle(base, n, cp.size);
    if (!entries.ok()) {
      if (!absl::IsDataLoss(entries.status())) {
        throw Failure{kFail, StrCat("reading the entry bundles failed: ", entries.status().message()), ""};
      }
      if (problem->empty()) *problem = std::string(entries.status().message());
      continue;
    }
    for (size_t i = 0; i < entries->size(); ++i) {
      if ((*entries)[i] != entry) continue;
      const uint64_t index = n * verify::kTileWidth + i;
      if (source.LeafHash(index, cp) == leaf) return index;
      if (problem->empty()) {
        *problem = StrCat("entry bundle ", verify::EntryBundlePath(n, verify::TileWidthAt(0, n, cp.size)),
                          " holds these bytes at index ", index, ", but the log's leaf hash there differs");
      }
    }
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::string> FetchTilesFile(const std::string& dir_or_url, const std::string& rel_path) {
  if (IsUrl(dir_or_url)) return ReadUrl(Joined(dir_or_url, rel_path));
  std::string dir = dir_or_url;
  if (dir.starts_with("file://")) dir = dir.substr(7);
  return ReadLocal(Joined(dir, rel_path));
}

absl::StatusOr<std::vector<std::string>> ReadEntryBundle(const std::string& dir_or_url, uint64_t n, uint64_t size) {
  const unsigned width = verify::TileWidthAt(0, n, size);
  auto data = FetchTilesFile(dir_or_url, verify::EntryBundlePath(n, width));
  if (!data.ok() && absl::IsNotFound(data.status()) && width < verify::kTileWidth) {
    auto full = FetchTilesFile(dir_or_url, verify::EntryBundlePath(n, verify::kTileWidth));
    if (full.ok()) data = std::move(full);  // the partial may be gone; the full bundle starts the same
  }
  if (!data.ok()) return data.status();
  auto entries = verify::ParseEntryBundle(*data);
  if (!entries.ok() || entries->size() < width) {
    return absl::DataLossError(StrCat("entry bundle ", verify::EntryBundlePath(n, width), " is malformed: ",
                                      entries.ok() ? StrCat("holds ", entries->size(), " entries, expected ", width)
                                                   : std::string(entries.status().message())));
  }
  entries->resize(width);
  return entries;
}

std::unique_ptr<LogSource> TilesLogSource(const std::string& dir_or_url) {
  return std::make_unique<TilesSource>(dir_or_url);
}

int CmdLogVerifyTiles(const Global& g, const std::string& entry_path, const std::string& tiles,
                      const std::string& vkey_path, std::optional<uint64_t> index) {
  const verify::NoteVerifier vkey = ReadVkey(vkey_path);
  const LoggedEntry entry = LoggedEntryFrom(ReadFileOrThrow(entry_path));
  TilesSource source(tiles);
  verify::TlogProof proof;
  proof.checkpoint = source.Checkpoint();
  proof.index = index.value_or(0);
  auto cp = verify::VerifyCheckpoint(proof.checkpoint, vkey);
  // A checkpoint that does not verify is reported as `log verify` reports it.
  if (!cp.ok()) return ReportLogVerify(g, entry, entry_path, verify::FormatTlogProof(proof), vkey, index);
  source.Check(*cp);
  if (!index) {
    std::string problem;
    index = FindInBundles(source, tiles, *cp, entry.bytes, &problem);
    if (!index) {
      std::string reason =
          StrCat("no entry of the log's entry bundles (tree size ", cp->size, ") has these exact bytes");
      if (!problem.empty()) reason += StrCat(" (and the bundles do not match the log: ", problem, ")");
      if (g.json) std::cout << DumpJson(nlohmann::json{{"valid", false}, {"reason", reason}}) << "\n";
      std::cerr << "shredctl: log proof verification FAILED: " << reason << "\n";
      return kVerifyFailed;
    }
    proof.index = *index;
  }
  if (proof.index < cp->size) proof.path = source.InclusionProof(proof.index, *cp);
  return ReportLogVerify(g, entry, entry_path, verify::FormatTlogProof(proof), vkey, index);
}

}  // namespace shredd::cli
