// Receipts for data subjects, in bulk: `order receipts ID --by-subject -o
// DIR` (one bundle per subject, from the order's subject map, which is then
// released) and `receipt --manifest M --item X [--item Y ...]` (offline).
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shredd/v1/orders.grpc.pb.h"

#include "client/cli_common.h"
#include "client/receipt_bundle.h"
#include "formats/manifest.h"

namespace shredd::cli {
namespace {

using absl::StrAppend;
using absl::StrCat;
using nlohmann::json;
namespace v1 = shredd::v1;

struct ReceiptsArgs {
  std::string order_id, dir, manifest;
  bool by_subject = false, keep = false;
};

std::string CertificateIdOf(const std::string& receipt) {
  const json j = json::parse(receipt, nullptr, false);
  return j.is_object() && j.contains("certificateId") && j["certificateId"].is_string()
             ? j["certificateId"].get<std::string>()
             : "";
}

// The receipts of `digests` from a manifest file (one pass; the tree in
// memory); refuses the manifest of another certificate.
std::map<std::string, std::string> ReceiptsOf(const std::string& manifest, const std::set<std::string>& digests,
                                              const std::string& certificate_id) {
  auto r = verify::ReceiptsFromManifestFile(manifest, digests);
  if (!r.ok()) throw Failure{kFail, StrCat(manifest, ": ", r.status().message()), ""};
  if (!certificate_id.empty() && !r->empty() && CertificateIdOf(r->begin()->second) != certificate_id) {
    throw Failure{kUsage,
                  StrCat(manifest, " is the manifest of certificate ", CertificateIdOf(r->begin()->second), ", not of ",
                         certificate_id),
                  ""};
  }
  if (!digests.empty() && r->empty()) {
    throw Failure{kNotFound, StrCat("none of the ", digests.size(), " items is in ", manifest), ""};
  }
  return std::move(*r);
}

v1::OrderStatus DoneOrder(const Global& g, const std::string& id) {
  grpc::ClientContext ctx;
  v1::GetOrderRequest req;
  req.set_order_id(id);
  v1::OrderStatus st;
  grpc::Status s = v1::Orders::NewStub(Connect(g))->GetOrder(&ctx, req, &st);
  if (!s.ok()) throw FromGrpc(s, "order lookup failed");
  if (st.state() != v1::ORDER_DONE) {
    throw Failure{kRefused, StrCat("order ", id, " is not done (", Shown(st.message()), "): no receipts yet"), ""};
  }
  return st;
}

// subject -> digests, from the daemon's subject map.
std::map<std::string, std::vector<std::string>> FetchSubjectMap(const Global& g, const std::string& id) {
  grpc::ClientContext ctx;
  v1::SubjectMapRequest req;
  req.set_order_id(id);
  auto reader = v1::Orders::NewStub(Connect(g))->GetSubjectMap(&ctx, req);
  std::map<std::string, std::vector<std::string>> map;
  v1::SubjectMapChunk chunk;
  while (reader->Read(&chunk)) {
    for (const auto& s : chunk.subjects()) {
      auto& list = map[s.subject_id()];
      for (const auto& d : s.digests()) list.push_back(d.hash());
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) throw FromGrpc(s, "subject map");
  return map;
}

std::string CertificateEnvelope(const Global& g, const std::string& certificate_id) {
  grpc::ClientContext ctx;
  v1::GetCertificateRequest req;
  req.set_certificate_id(certificate_id);
  v1::ShredResponse resp;
  grpc::Status s = v1::Shredder::NewStub(Connect(g))->GetCertificate(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, "certificate lookup failed");
  return resp.certificate();
}

struct BundleCounts {
  size_t subjects = 0, items = 0, missing = 0;
};

// One bundle per subject into `dir`; items the certificate does not list
// (shredded meanwhile by another certificate) are counted, not bundled.
BundleCounts WriteBundles(const std::map<std::string, std::vector<std::string>>& map,
                          const std::map<std::string, std::string>& receipts, ReceiptBundle base,
                          const std::string& dir) {
  BundleCounts n;
  for (const auto& [subject, digests] : map) {
    ReceiptBundle b = base;
    b.subject = subject;
    for (const auto& d : digests) {
      auto r = receipts.find(d);
      if (r == receipts.end()) {
        ++n.missing;
        continue;
      }
      b.receipts.push_back(r->second);
    }
    if (b.receipts.empty()) continue;
    WriteFileOrThrow((std::filesystem::path(dir) / SubjectFileName(subject)).string(), ReceiptBundleJson(b),
                     Privacy::kPrivate);
    ++n.subjects;
    n.items += b.receipts.size();
  }
  return n;
}

// Before anything is written (and the map released, after which receipts
// lost cannot be made again): a bundle in `dir` from another order would be
// replaced, and two subjects whose file names differ only in case would be
// one file on a case-insensitive file system. Either is refused; a bundle
// of this same order (a run with --keep, then another) is rewritten.
void CheckBundleNames(const std::map<std::string, std::vector<std::string>>& map, const std::string& dir,
                      const std::string& order_id) {
  const std::string keep = "nothing was written and the daemon keeps the subject map";
  std::map<std::string, std::string> folded;  // lower-case file name -> subject
  for (const auto& [subject, digests] : map) {
    const std::string name = SubjectFileName(subject);
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto [it, fresh] = folded.emplace(lower, subject); !fresh) {
      throw Failure{kFail,
                    StrCat("subjects ", Shown(it->second), " and ", Shown(subject),
                           " would share one bundle file on a case-insensitive file system; ", keep),
                    ""};
    }
    const std::filesystem::path path = std::filesystem::path(dir) / name;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) continue;
    std::ifstream in(path, std::ios::binary);
    const json old = json::parse(in, nullptr, /*allow_exceptions=*/false);
    const std::string other = old.is_object() && old.contains("orderId") && old["orderId"].is_string()
                                  ? old["orderId"].get<std::string>()
                                  : std::string();
    if (other != order_id) {
      throw Failure{
          kFail,
          StrCat(Shown(path.string()), " holds ",
                 other.empty() ? std::string("something else") : StrCat("order ", Shown(other), "'s receipts"),
                 "; write this order's bundles to another directory (", keep, ")"),
          ""};
    }
  }
}

// The bundles' directory: created 0700, or an existing one no other user
// can enter. The bundles are 0600, but their names name data subjects
// (alice@example.com.receipts.json), and others who can list the directory,
// or only search it for a guessed name, learn who asked for erasure.
void PrivateDirectory(const std::string& dir) {
  std::error_code ec;
  const std::filesystem::path path(dir);
  if (!std::filesystem::exists(path, ec)) {
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    if (!ec && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) ec = std::error_code(errno, std::generic_category());
    if (ec) throw Failure{kFail, StrCat("cannot create ", dir, ": ", ec.message()), ""};
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Failure{kUsage, StrCat(Shown(dir), " is not a directory"), ""};
  }
  if ((st.st_mode & 0007) != 0) {
    throw Failure{kUsage,
                  StrCat(Shown(dir), " is open to other users (mode ", absl::StrFormat("%04o", st.st_mode & 07777),
                         "): the bundles' file names name data subjects. Use a directory only you (and your group) "
                         "can enter, e.g. chmod o-rwx ",
                         Shown(dir), "; nothing was written"),
                  ""};
  }
}

// Removes a file when the scope ends, however it ends.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;

 private:
  std::string path_;
};

int64_t Release(const Global& g, const std::string& id) {
  grpc::ClientContext ctx;
  v1::SubjectMapRequest req;
  req.set_order_id(id);
  v1::ReleaseSubjectMapResponse resp;
  grpc::Status s = v1::Orders::NewStub(Connect(g))->ReleaseSubjectMap(&ctx, req, &resp);
  if (!s.ok())
    throw FromGrpc(s,
                   "releasing the subject map failed (the bundles are written; run again with --keep "
                   "to rewrite them, or retry the release)");
  return resp.subjects();
}

int CmdOrderReceipts(const Global& g, const ReceiptsArgs& a) {
  if (!a.by_subject) throw Failure{kUsage, "order receipts needs --by-subject (one bundle per data subject)", ""};
  const v1::OrderStatus st = DoneOrder(g, a.order_id);
  const auto map = FetchSubjectMap(g, a.order_id);
  PrivateDirectory(a.dir);
  CheckBundleNames(map, a.dir, a.order_id);
  std::string manifest = a.manifest;
  const std::string fetched = (std::filesystem::path(a.dir) / ".manifest.json.part").string();
  std::optional<RemoveOnExit> fetched_goes;  // the private manifest, on every path out
  if (manifest.empty()) {
    fetched_goes.emplace(fetched);
    StreamManifestTo(v1::Shredder::NewStub(Connect(g)).get(), st.certificate_id(), fetched);
    manifest = fetched;
  }
  std::set<std::string> digests;
  for (const auto& [subject, list] : map) digests.insert(list.begin(), list.end());
  const auto receipts = ReceiptsOf(manifest, digests, st.certificate_id());
  fetched_goes.reset();
  ReceiptBundle base{st.certificate_id(), a.order_id, "", CertificateEnvelope(g, st.certificate_id()), {}};
  const BundleCounts n = WriteBundles(map, receipts, base, a.dir);
  const int64_t released = a.keep ? -1 : Release(g, a.order_id);
  json j{
      {"orderId", a.order_id}, {"certificateId", st.certificate_id()}, {"directory", a.dir}, {"subjects", n.subjects},
      {"items", n.items},      {"notInCertificate", n.missing},        {"released", !a.keep}};
  std::string text = StrCat("wrote ", n.subjects, " receipt bundles (", n.items, " items) to ", Shown(a.dir),
                            " (private: each names a data subject and their items)");
  if (n.missing > 0) StrAppend(&text, "\n", n.missing, " items of the map are not in this order's certificate");
  StrAppend(&text, a.keep ? "\nthe daemon keeps the subject map (--keep): release it with another run without --keep"
                          : StrCat("\nsubject map released (", released,
                                   " subjects): the daemon can no longer tell whose items these were"));
  Emit(g, j, text);
  return kOk;
}

}  // namespace

void AddOrderReceiptsCommand(CLI::App* order, const Global& g, std::function<int()>& action) {
  static ReceiptsArgs ra;
  auto* c = order->add_subcommand("receipts", "per-subject receipt bundles of a done order, then forget the subjects");
  c->add_option("id", ra.order_id, "order id (submitted with --keep-subject-map)")->required();
  c->add_flag("--by-subject", ra.by_subject, "one bundle per data subject");
  c->add_option("-o,--output", ra.dir, "directory for the bundles (created; files 0600)")->required();
  c->add_option("--manifest", ra.manifest, "the order's private manifest (default: fetched from the daemon)")
      ->check(CLI::ExistingFile);
  c->add_flag("--keep", ra.keep, "keep the daemon's subject map (default: release it once the bundles are written)");
  c->callback([&] { action = [&] { return CmdOrderReceipts(g, ra); }; });
}

int CmdReceipt(const Global& g, const std::string& manifest_path, const std::vector<std::string>& items,
               const std::string& out) {
  (void)g;
  std::set<std::string> wanted;
  for (const auto& i : items) wanted.insert(DigestArg(i));
  std::string text;
  if (wanted.size() == 1) {
    // Streaming: bounded memory for a manifest of any size (formats/manifest.h).
    const std::string& digest = *wanted.begin();
    auto r = verify::ReceiptFromManifestFile(manifest_path, digest);
    if (absl::IsNotFound(r.status()) && std::filesystem::exists(manifest_path)) {
      throw Failure{kNotFound, StrCat(digest, " is not in ", manifest_path), ""};
    }
    if (!r.ok()) throw Failure{kFail, StrCat(manifest_path, ": ", r.status().message()), ""};
    text = *r + "\n";
  } else {
    const auto receipts = ReceiptsOf(manifest_path, wanted, "");
    for (const auto& d : wanted) {
      if (!receipts.count(d)) throw Failure{kNotFound, StrCat(d, " is not in ", manifest_path), ""};
    }
    ReceiptBundle b;
    b.certificate_id = CertificateIdOf(receipts.begin()->second);
    for (const auto& [d, r] : receipts) b.receipts.push_back(r);
    text = ReceiptBundleJson(b);
  }
  if (out.empty())
    std::cout << text;
  else
    WriteFileOrThrow(out, text, Privacy::kPrivate);
  return kOk;
}

}  // namespace shredd::cli
