// shredctl commands for datasets, lineage, orders, holds and suppression.
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "shredd/v1/orders.grpc.pb.h"
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/order_review.h"
#include "client/progress.h"
#include "daemon/base/coding.h"
#include "daemon/base/strings.h"

namespace shredd::cli {
namespace {

namespace fs = std::filesystem;
namespace v1 = shredd::v1;
using nlohmann::json;
using ::shredd::StrCat;

std::string KindName(v1::Kind k) { return k == v1::KIND_MODEL ? "model" : "photo"; }
std::string EdgeName(v1::LineageEdge::Type t) {
  return t == v1::LineageEdge::TRAINED_ON ? "trained-on" : t == v1::LineageEdge::DERIVED_FROM ? "derived-from" : "?";
}

// Digests from a manifest file: one per line ("sha256:<hex>", optionally
// followed by anything), or JSON lines with a "digest" field (shredctl put
// --json output), or a JSON array of digests or of such objects. A "digest"
// that is not a string is refused (exit 2) rather than guessed at.
std::vector<std::string> ReadDigestList(const std::string& path) {
  std::string text = ReadFileOrThrow(path);
  std::vector<std::string> out;
  json whole = json::parse(text, nullptr, false);
  auto take = [&](const json& j, std::string_view where) {
    if (j.is_string()) {
      out.push_back(j.get<std::string>());
    } else if (j.is_object() && j.contains("digest")) {
      const json& d = j["digest"];
      if (!d.is_string()) {
        throw Failure{kUsage, StrCat(path, ": ", where, ": \"digest\" is a ", d.type_name(), ", not a string"), ""};
      }
      out.push_back(d.get<std::string>());
    }
  };
  if (!whole.is_discarded() && whole.is_array()) {
    for (size_t i = 0; i < whole.size(); ++i) take(whole[i], StrCat("element ", i));
    return out;
  }
  std::istringstream in(text);
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
      take(j, StrCat("line ", n));
    } else {
      out.push_back(line.substr(0, line.find_first_of(" \t")));
    }
  }
  return out;
}

void AddLabels(const std::vector<std::string>& labels, google::protobuf::Map<std::string, std::string>* m) {
  for (const auto& l : labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) throw Failure{kUsage, StrCat("--label \"", l, "\" is not key=value"), ""};
    (*m)[l.substr(0, eq)] = l.substr(eq + 1);
  }
}

std::string StateName(v1::OrderState s) {
  switch (s) {
    case v1::ORDER_PENDING:
      return "pending";
    case v1::ORDER_RUNNING:
      return "running";
    case v1::ORDER_DONE:
      return "done";
    case v1::ORDER_EMPTY:
      return "empty";
    case v1::ORDER_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

// When a PENDING order whose attempts failed is tried again; empty if none.
std::string NextAttempt(const v1::OrderStatus& s) {
  if (s.next_attempt_unix_nanos() == 0) return "";
  return FormatRfc3339(absl::FromUnixNanos(s.next_attempt_unix_nanos()), TimePrecision::kSeconds);
}

json StatusJson(const v1::OrderStatus& s) {
  json j{{"orderId", s.order_id()},
         {"state", StateName(s.state())},
         {"message", s.message()},
         {"itemsPlanned", s.items_planned()},
         {"itemsShredded", s.items_shredded()},
         {"certificateId", s.certificate_id()},
         {"failedAttempts", s.failed_attempts()}};
  if (!NextAttempt(s).empty()) j["nextAttempt"] = NextAttempt(s);
  return j;
}

struct OrderArgs {
  std::string id, basis, reference, requester, received, due, out, manifest, plan_file;
  std::vector<std::string> datasets, subjects, digests, labels, states;
  double timeout = 3600;
  bool keep_subject_map = false;
  bool list = false, yes = false;
};

v1::OrderSpec SpecOf(const OrderArgs& a) {
  v1::OrderSpec s;
  s.set_id(a.id);
  s.set_basis(BasisFromName(a.basis));
  s.set_reference(a.reference);
  s.set_requester(a.requester);
  s.set_received(a.received);
  s.set_due(a.due);
  for (const auto& d : a.datasets) s.add_datasets(d);
  for (const auto& x : a.subjects) s.add_subject_ids(x);
  for (const auto& d : a.digests) s.add_digests()->set_hash(DigestArg(d));
  AddLabels(a.labels, s.mutable_labels());
  s.set_keep_subject_map(a.keep_subject_map);
  return s;
}

v1::Plan FetchPlan(const Global& g, const v1::OrderSpec& spec) {
  grpc::ClientContext ctx;
  v1::Plan plan;
  grpc::Status s = v1::Orders::NewStub(Connect(g))->PlanOrder(&ctx, spec, &plan);
  if (!s.ok()) throw FromGrpc(s, "plan failed");
  return plan;
}

// The plan as a summary, or with --list every listed item; with -o also
// the plan file for `order submit --plan`.
int CmdPlan(const Global& g, const OrderArgs& a) {
  const v1::OrderSpec spec = SpecOf(a);
  const v1::Plan plan = FetchPlan(g, spec);
  json j = PlanJson(plan);
  std::string text = PlanSummaryText(plan);
  if (a.list) text += PlanListText(plan);
  if (!a.out.empty()) {
    WriteFileOrThrow(a.out, PlanFileText(spec, plan), Privacy::kPrivate);
    j["planFile"] = a.out;
    text += StrCat("\nplan written to ", Shown(a.out), "; submit exactly this plan with: shredctl order submit --plan ",
                   Shown(a.out));
  }
  Emit(g, j, text);
  return kOk;
}

v1::OrderStatus Wait(const Global& g, const std::string& id, double timeout) {
  auto stub = v1::Orders::NewStub(Connect(g));
  auto end = std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000));
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::min(end, std::chrono::system_clock::now() + std::chrono::seconds(30)));
    v1::GetOrderRequest req;
    req.set_order_id(id);
    req.set_wait(true);
    v1::OrderStatus st;
    grpc::Status s = stub->GetOrder(&ctx, req, &st);
    if (!s.ok() && s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) throw FromGrpc(s, "order status failed");
    if (s.ok() && (st.state() == v1::ORDER_DONE || st.state() == v1::ORDER_EMPTY || st.state() == v1::ORDER_FAILED)) {
      return st;
    }
    if (std::chrono::system_clock::now() >= end) {
      throw Failure{kFail,
                    StrCat("order ", id, " did not finish within ", timeout, " s (state ", StateName(st.state()), ")"),
                    "DEADLINE_EXCEEDED"};
    }
  }
}

int Finish(const Global& g, const v1::OrderStatus& st, const std::string& out, const std::string& manifest) {
  if (st.state() == v1::ORDER_FAILED)
    throw Failure{kFail, StrCat("order ", st.order_id(), " failed: ", st.message()), ""};
  if (st.state() == v1::ORDER_EMPTY) {
    Emit(g, StatusJson(st), StrCat("order ", Shown(st.order_id()), ": ", Shown(st.message())));
    return kNotFound;
  }
  const std::vector<WrittenFile> files =
      out.empty() ? std::vector<WrittenFile>{} : WriteCertificate(g, st.certificate_id(), out, manifest);
  json j = StatusJson(st);
  if (!out.empty()) j["certificate"] = out;
  if (!files.empty()) j["files"] = WrittenFilesJson(files);
  Emit(g, j,
       StrCat("order ", Shown(st.order_id()), " done: ", st.items_shredded(), " items shredded, certificate ",
              Shown(st.certificate_id()), files.empty() ? "" : StrCat("; files written:", WrittenFilesText(files))));
  return kOk;
}

// A reviewed plan the daemon refused as stale: what changed, then the error.
[[noreturn]] void ThrowStale(const Global& g, const ReviewedPlan& reviewed, const grpc::Status& refusal) {
  v1::OrderSpec spec = reviewed.spec;
  spec.clear_expected_plan_digest();
  const std::vector<std::string> diff = PlanDiff(reviewed.plan, FetchPlan(g, spec));
  if (g.json) std::cout << DumpJson(json{{"orderId", spec.id()}, {"planChanged", diff}}) << "\n";
  std::cerr << "shredctl: the store changed since the plan was made; what differs (reviewed -> now):\n";
  for (const auto& line : diff) std::cerr << "  " << Shown(line) << "\n";
  if (diff.empty())
    std::cerr << "  (not in the counts or the listed items: an item beyond the lists, an edge or a hold)\n";
  throw FromGrpc(refusal, "submit refused: nothing was submitted");
}

// What `order submit` says: a new order, or one that was submitted before.
std::string AcceptedText(const v1::OrderStatus& st) {
  const std::string id = Shown(st.order_id());
  switch (st.state()) {
    case v1::ORDER_PENDING:
      return StrCat("order ", id, " accepted; follow it with: shredctl order wait ", id);
    case v1::ORDER_RUNNING:
      return StrCat("order ", id, " was submitted before and is running; nothing new was started (shredctl order wait ",
                    id, ")");
    case v1::ORDER_DONE:
      return StrCat("order ", id, " was already done: ", st.items_shredded(), " items shredded, certificate ",
                    Shown(st.certificate_id()), "; nothing ran again (shredctl order wait ", id,
                    " -o CERT fetches it)");
    default:
      return StrCat("order ", id, " was submitted before and ended ", StateName(st.state()), " (", Shown(st.message()),
                    "); nothing ran again");
  }
}

int CmdSubmit(const Global& g, const OrderArgs& a) {
  std::optional<ReviewedPlan> reviewed;
  if (!a.plan_file.empty()) reviewed = ReadPlanFile(a.plan_file);
  const v1::OrderSpec spec = reviewed ? reviewed->spec : SpecOf(a);
  if (!a.yes && isatty(STDIN_FILENO) && isatty(STDERR_FILENO)) {
    v1::OrderSpec dry = spec;
    dry.clear_expected_plan_digest();
    ConfirmOrThrow(false, PlanSummaryText(FetchPlan(g, dry)),
                   StrCat("Submit order ", Shown(spec.id()), "? Its items are destroyed for good."),
                   "not confirmed: nothing was submitted");
  }
  auto stub = v1::Orders::NewStub(Connect(g));
  grpc::ClientContext ctx;
  v1::OrderStatus st;
  grpc::Status s = stub->SubmitOrder(&ctx, spec, &st);
  if (!s.ok() && reviewed && s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) ThrowStale(g, *reviewed, s);
  if (!s.ok()) throw FromGrpc(s, "submit failed");
  if (a.out.empty()) {
    json j = StatusJson(st);
    j["alreadySubmitted"] = st.state() != v1::ORDER_PENDING;
    Emit(g, j, AcceptedText(st));
    return kOk;
  }
  return Finish(g, Wait(g, st.order_id(), a.timeout), a.out, a.manifest);
}

int CmdList(const Global& g, const std::vector<std::string>& states) {
  v1::ListOrdersRequest req;
  for (const auto& name : states) {
    bool known = false;
    for (auto st : {v1::ORDER_PENDING, v1::ORDER_RUNNING, v1::ORDER_DONE, v1::ORDER_EMPTY, v1::ORDER_FAILED}) {
      if (StateName(st) == name) req.add_states(st), known = true;
    }
    if (!known) {
      throw Failure{kUsage, StrCat("--state \"", Shown(name), "\": expected pending, running, done, empty or failed"),
                    ""};
    }
  }
  grpc::ClientContext ctx;
  v1::ListOrdersResponse resp;
  grpc::Status s = v1::Orders::NewStub(Connect(g))->ListOrders(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, "order ls failed");
  for (const auto& o : resp.orders()) {
    json j = StatusJson(o);
    j["received"] = o.spec().received();
    j["basis"] = BasisName(o.spec().basis());
    j["reference"] = o.spec().reference();
    Emit(g, j,
         StrCat(Shown(o.order_id()), "  ", StateName(o.state()), "  ", Shown(o.spec().received()), "  ",
                BasisName(o.spec().basis()), " ", Shown(o.spec().reference()), "  ", o.items_shredded(), "/",
                o.items_planned(), " shredded",
                o.certificate_id().empty() ? "" : StrCat("  certificate ", Shown(o.certificate_id()))));
  }
  if (resp.orders().empty() && !g.json) std::cerr << "no orders\n";
  return kOk;
}

int CmdStatus(const Global& g, const std::string& id) {
  auto stub = v1::Orders::NewStub(Connect(g));
  grpc::ClientContext ctx;
  v1::GetOrderRequest req;
  req.set_order_id(id);
  v1::OrderStatus st;
  grpc::Status s = stub->GetOrder(&ctx, req, &st);
  if (!s.ok()) throw FromGrpc(s, "order status failed");
  Emit(g, StatusJson(st),
       StrCat("order ", Shown(id), ": ", StateName(st.state()), " (", Shown(st.message()), "), ", st.items_shredded(),
              "/", st.items_planned(), " items shredded",
              st.certificate_id().empty() ? "" : StrCat(", certificate ", Shown(st.certificate_id())),
              st.failed_attempts() == 0 ? "" : StrCat(", ", st.failed_attempts(), " attempts failed"),
              NextAttempt(st).empty() ? "" : StrCat(", the next at ", NextAttempt(st))));
  return kOk;
}

int CmdModelRegister(const Global& g, const std::string& file, const std::vector<std::string>& trained_on,
                     const std::vector<std::string>& derived_from, const std::string& relation,
                     const std::vector<std::string>& labels, const std::vector<std::string>& datasets) {
  if (trained_on.empty() && derived_from.empty()) {
    throw Failure{kUsage, "a model needs --trained-on or --derived-from", ""};
  }
  FileDigest d = DigestFile(file);
  v1::PutHeader h;
  h.mutable_metadata()->set_kind(v1::KIND_MODEL);
  h.mutable_metadata()->set_name(fs::path(file).filename().string());
  for (const auto& ds : datasets) h.mutable_metadata()->add_datasets(ds);
  AddLabels(labels, h.mutable_metadata()->mutable_labels());
  for (const auto& t : trained_on) {
    auto* e = h.add_lineage();
    e->set_type(v1::LineageEdge::TRAINED_ON);
    if (LooksLikeDigest(t) || fs::is_regular_file(t))
      e->mutable_digest()->set_hash(DigestArg(t));
    else
      e->set_dataset(t);
  }
  for (const auto& m : derived_from) {
    auto* e = h.add_lineage();
    e->set_type(v1::LineageEdge::DERIVED_FROM);
    e->mutable_digest()->set_hash(DigestArg(m));
    e->set_relation(relation);
  }
  Progress progress("model register", d.size, !g.quiet);
  UploadResult r = StreamFile(g, file, d, std::move(h), [&](uint64_t n) { progress.Add(n); });
  progress.Finish();
  if (!r.status.ok()) throw FromGrpc(r.status, StrCat("upload of ", file, " failed"));
  Emit(g,
       json{{"path", file}, {"digest", d.hash}, {"size", d.size}, {"status", r.already_present ? "present" : "stored"}},
       StrCat(d.hash, " ", d.size, " ", r.already_present ? "present" : "stored", " ", Shown(file)));
  return kOk;
}

v1::LineageResponse FetchLineage(v1::Catalog::Stub* stub, const std::string& hash) {
  grpc::ClientContext ctx;
  v1::LineageRequest req;
  req.mutable_digest()->set_hash(hash);
  v1::LineageResponse resp;
  grpc::Status s = stub->GetLineage(&ctx, req, &resp);
  if (!s.ok()) throw FromGrpc(s, StrCat("lineage of ", hash, " failed"));
  return resp;
}

json LinkJson(const v1::LineageLink& l) {
  json j{{"type", EdgeName(l.type())}};
  if (!l.relation().empty()) j["relation"] = l.relation();
  if (!l.dataset().empty()) j["dataset"] = l.dataset();
  if (l.has_digest()) j["digest"] = l.digest().hash(), j["kind"] = KindName(l.kind());
  if (!l.via_dataset().empty()) j["viaDataset"] = l.via_dataset();
  return j;
}

std::string FeedText(const v1::LineageLink& l) {
  return StrCat(Shown(l.digest().hash()), " (", EdgeName(l.type()),
                l.via_dataset().empty() ? "" : " via dataset " + Shown(l.via_dataset()),
                l.relation().empty() ? "" : ", " + Shown(l.relation()), ")");
}

// Every model derived from the item, however indirectly (what an order on
// it would pull in): breadth first, each model once, with the model it was
// reached from and its depth. Direct feeds are depth 1.
void AppendDownstream(v1::Catalog::Stub* stub, const v1::LineageResponse& root, json& closure, std::ostream& t) {
  struct Pending {
    v1::LineageLink link;
    std::string parent;
    int depth;
  };
  std::deque<Pending> queue;
  for (const auto& l : root.feeds()) queue.push_back({l, root.digest().hash(), 1});
  std::set<std::string> seen{root.digest().hash()};
  while (!queue.empty()) {
    Pending p = std::move(queue.front());
    queue.pop_front();
    const std::string& hash = p.link.digest().hash();
    if (!seen.insert(hash).second) continue;
    json j = LinkJson(p.link);
    j["from"] = p.parent;
    j["depth"] = p.depth;
    closure.push_back(std::move(j));
    t << "\n  " << std::string(2 * static_cast<size_t>(p.depth - 1), ' ')
      << (p.depth == 1 ? "feeds:      " : "└ feeds:    ") << FeedText(p.link);
    const v1::LineageResponse below = FetchLineage(stub, hash);
    for (const auto& l : below.feeds()) queue.push_back({l, hash, p.depth + 1});
  }
}

int CmdLineage(const Global& g, const std::string& digest) {
  auto stub = v1::Catalog::NewStub(Connect(g));
  const v1::LineageResponse resp = FetchLineage(stub.get(), DigestArg(digest));
  json j{{"digest", resp.digest().hash()},
         {"kind", KindName(resp.kind())},
         {"comesFrom", json::array()},
         {"feeds", json::array()},
         {"downstream", json::array()}};
  std::ostringstream t;
  t << Shown(resp.digest().hash()) << " (" << KindName(resp.kind()) << ")";
  for (const auto& l : resp.comes_from()) {
    j["comesFrom"].push_back(LinkJson(l));
    t << "\n  comes from: " << EdgeName(l.type()) << " "
      << (l.dataset().empty() ? Shown(l.digest().hash()) + " (" + KindName(l.kind()) + ")"
                              : "dataset " + Shown(l.dataset()))
      << (l.relation().empty() ? "" : " [" + Shown(l.relation()) + "]");
  }
  for (const auto& l : resp.feeds()) j["feeds"].push_back(LinkJson(l));
  AppendDownstream(stub.get(), resp, j["downstream"], t);
  if (resp.comes_from_size() + resp.feeds_size() == 0) t << "\n  no lineage";
  Emit(g, j, t.str());
  return kOk;
}

// Each group registers its subcommands; option storage is static (the
// callbacks run after this returns, while the app lives).
// dataset register / ls
void AddDatasetCommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  auto* ds = app.add_subcommand("dataset", "register and list datasets");
  ds->require_subcommand(1);
  static std::string ds_name, ds_manifest;
  static std::vector<std::string> ds_digests;
  auto* ds_reg = ds->add_subcommand("register", "add stored items to a dataset (created if new)");
  ds_reg->add_option("name", ds_name, "dataset name")->required();
  ds_reg->add_option("digests", ds_digests, "digests or files");
  ds_reg->add_option("--manifest", ds_manifest, "file listing digests (lines, or shredctl put --json output)")
      ->check(CLI::ExistingFile);
  ds_reg->callback([&] {
    action = [&] {
      v1::RegisterDatasetRequest req;
      req.set_name(ds_name);
      std::vector<std::string> all = ds_digests;
      if (!ds_manifest.empty()) {
        auto more = ReadDigestList(ds_manifest);
        all.insert(all.end(), more.begin(), more.end());
      }
      for (const auto& d : all) req.add_digests()->set_hash(DigestArg(d));
      grpc::ClientContext ctx;
      v1::Dataset resp;
      grpc::Status s = v1::Catalog::NewStub(Connect(g))->RegisterDataset(&ctx, req, &resp);
      if (!s.ok()) throw FromGrpc(s, "dataset register failed");
      Emit(g, json{{"dataset", resp.name()}, {"items", resp.item_count()}},
           StrCat("dataset ", Shown(resp.name()), ": ", resp.item_count(), " items"));
      return static_cast<int>(kOk);
    };
  });
  ds->add_subcommand("ls", "list datasets")->callback([&] {
    action = [&] {
      grpc::ClientContext ctx;
      v1::ListDatasetsResponse resp;
      grpc::Status s = v1::Catalog::NewStub(Connect(g))->ListDatasets(&ctx, v1::ListDatasetsRequest(), &resp);
      if (!s.ok()) throw FromGrpc(s, "dataset ls failed");
      for (const auto& d : resp.datasets()) {
        Emit(g, json{{"dataset", d.name()}, {"items", d.item_count()}}, StrCat(Shown(d.name()), " ", d.item_count()));
      }
      return static_cast<int>(kOk);
    };
  });
}

// tag: metadata for a stored item
void AddTagCommand(CLI::App& app, const Global& g, std::function<int()>& action) {
  static std::string tag_digest;
  static std::vector<std::string> tag_subjects, tag_datasets, tag_labels;
  auto* tag = app.add_subcommand("tag", "add subject ids, datasets or labels to a stored item");
  tag->add_option("digest", tag_digest, "sha256:<hex> or a file")->required();
  tag->add_option("--subject", tag_subjects, "subject id (repeatable)");
  tag->add_option("--dataset", tag_datasets, "dataset (repeatable)");
  tag->add_option("--label", tag_labels, "label key=value (repeatable)");
  tag->callback([&] {
    action = [&] {
      v1::UpdateItemRequest req;
      req.mutable_digest()->set_hash(DigestArg(tag_digest));
      for (const auto& x : tag_subjects) req.add_add_subject_ids(x);
      for (const auto& x : tag_datasets) req.add_add_datasets(x);
      AddLabels(tag_labels, req.mutable_add_labels());
      grpc::ClientContext ctx;
      v1::ItemInfo info;
      grpc::Status s = v1::Catalog::NewStub(Connect(g))->UpdateItem(&ctx, req, &info);
      if (!s.ok()) throw FromGrpc(s, "tag failed");
      Emit(g, json{{"digest", info.digest().hash()}, {"status", "updated"}},
           StrCat(Shown(info.digest().hash()), " updated"));
      return static_cast<int>(kOk);
    };
  });
}

// model register, lineage
void AddModelCommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  auto* model = app.add_subcommand("model", "register model weights with their lineage");
  model->require_subcommand(1);
  static std::string m_file, m_relation = "derived";
  static std::vector<std::string> m_trained, m_derived, m_labels, m_datasets;
  auto* mreg = model->add_subcommand("register", "upload a model file with lineage edges");
  mreg->add_option("file", m_file, "weights file")->required()->check(CLI::ExistingFile);
  mreg->add_option("--trained-on", m_trained, "dataset name, or a digest/file of a data item (repeatable)");
  mreg->add_option("--derived-from", m_derived, "digest/file of a parent model (repeatable)");
  mreg->add_option("--relation", m_relation, "kind of derivation: fine-tune, distillation, embedding, ...")
      ->capture_default_str();
  mreg->add_option("--label", m_labels, "label key=value (repeatable)");
  mreg->add_option("--dataset", m_datasets, "also list the model in this dataset (repeatable)");
  mreg->callback([&] {
    action = [&] { return CmdModelRegister(g, m_file, m_trained, m_derived, m_relation, m_labels, m_datasets); };
  });

  static std::string lin_digest;
  auto* lin = app.add_subcommand("lineage", "show what an item feeds and what a model comes from");
  lin->add_option("digest", lin_digest, "sha256:<hex> or a file")->required();
  lin->callback([&] { action = [&] { return CmdLineage(g, lin_digest); }; });
}

// order plan / submit / ls / status / wait
void AddOrderSubcommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  static OrderArgs oa;
  auto* order = app.add_subcommand("order", "plan, submit and follow deletion orders");
  order->require_subcommand(1);
  // Required unless the spec comes from a plan file (checked in the callbacks).
  auto add_spec = [](CLI::App* c) {
    c->add_option("--id", oa.id, "order id (idempotency key)");
    c->add_option("--basis", oa.basis, "ftc-order, gdpr-art17, ccpa, contract or other");
    c->add_option("--reference", oa.reference, "docket number, request id, ...");
    c->add_option("--requester", oa.requester, "who ordered it");
    c->add_option("--received", oa.received, "date received (YYYY-MM-DD or RFC 3339; default now)");
    c->add_option("--due", oa.due, "due date (YYYY-MM-DD or RFC 3339)");
    c->add_option("--dataset", oa.datasets, "select a dataset (repeatable)");
    c->add_option("--subject", oa.subjects, "select a data subject's items (repeatable)");
    c->add_option("--digest", oa.digests, "select an item by digest or file (repeatable)");
    c->add_option("--label", oa.labels, "select items with label key=value (repeatable)");
    c->add_flag("--keep-subject-map", oa.keep_subject_map,
                "keep whose items were shredded, for `order receipts --by-subject` (released there)");
  };
  auto require_spec = [] {
    const std::pair<const std::string*, const char*> required[] = {
        {&oa.id, "--id"}, {&oa.basis, "--basis"}, {&oa.reference, "--reference"}};
    for (const auto& [value, flag] : required) {
      if (value->empty()) throw CLI::RequiredError(flag);
    }
  };
  auto* plan = order->add_subcommand("plan", "dry run: the full closure, nothing changes");
  add_spec(plan);
  plan->add_option("-o,--output", oa.out, "also write the plan to FILE (private) for order submit --plan");
  plan->add_flag("--list", oa.list, "list the items with their file names and subjects");
  plan->callback([&, require_spec] {
    require_spec();
    action = [&] { return CmdPlan(g, oa); };
  });
  auto* submit = order->add_subcommand("submit", "execute an order (in the background unless -o)");
  add_spec(submit);
  submit->add_option("--plan", oa.plan_file, "submit exactly the plan in FILE (from order plan -o)");
  submit->add_option("-o,--output", oa.out, "wait, then write the certificate to FILE");
  submit->add_option("--manifest", oa.manifest, "write the private manifest to FILE (default: next to -o)");
  submit->add_option("--timeout", oa.timeout, "seconds to wait with -o")->capture_default_str();
  submit->add_flag("-y,--yes", oa.yes, "do not ask for confirmation on a terminal");
  submit->callback([&, require_spec, submit] {
    if (oa.plan_file.empty()) {
      require_spec();
    } else {
      for (const char* flag : {"--id", "--basis", "--reference", "--requester", "--received", "--due", "--dataset",
                               "--subject", "--digest", "--label", "--keep-subject-map"}) {
        if (submit->count(flag) > 0) throw CLI::ValidationError(StrCat(flag, " cannot be combined with --plan"));
      }
    }
    action = [&] { return CmdSubmit(g, oa); };
  });
  auto* ls = order->add_subcommand("ls", "list orders");
  ls->add_option("--state", oa.states, "only orders in this state: pending, running, done, empty, failed (repeatable)");
  ls->callback([&] { action = [&] { return CmdList(g, oa.states); }; });
  static std::string order_id;
  auto* status = order->add_subcommand("status", "show an order's state and progress");
  status->add_option("id", order_id, "order id")->required();
  status->callback([&] { action = [&] { return CmdStatus(g, order_id); }; });
  auto* wait = order->add_subcommand("wait", "wait for an order to finish");
  wait->add_option("id", order_id, "order id")->required();
  wait->add_option("-o,--output", oa.out, "write the certificate to FILE");
  wait->add_option("--manifest", oa.manifest, "write the private manifest to FILE (default: next to -o)");
  wait->add_option("--timeout", oa.timeout, "seconds to wait")->capture_default_str();
  wait->callback([&] { action = [&] { return Finish(g, Wait(g, order_id, oa.timeout), oa.out, oa.manifest); }; });
  AddOrderReceiptsCommand(order, g, action);
}

// hold add / rm / ls
void AddHoldCommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  auto* hold = app.add_subcommand("hold", "legal holds: items or datasets that orders must not shred");
  hold->require_subcommand(1);
  static std::string h_digest, h_dataset, h_reason, h_id;
  auto* hadd = hold->add_subcommand("add", "place a hold");
  hadd->add_option("--digest", h_digest, "hold one item (digest or file)");
  hadd->add_option("--dataset", h_dataset, "hold a whole dataset");
  hadd->add_option("--reason", h_reason, "why (litigation, investigation, ...)")->required();
  hadd->add_option("--id", h_id, "hold id (default: generated)");
  hadd->callback([&] {
    if (h_digest.empty() == h_dataset.empty()) throw CLI::ValidationError("give exactly one of --digest and --dataset");
    action = [&] {
      v1::AddHoldRequest req;
      req.mutable_hold()->set_id(h_id);
      req.mutable_hold()->set_reason(h_reason);
      if (!h_digest.empty())
        req.mutable_hold()->mutable_digest()->set_hash(DigestArg(h_digest));
      else
        req.mutable_hold()->set_dataset(h_dataset);
      grpc::ClientContext ctx;
      v1::Hold resp;
      grpc::Status s = v1::Orders::NewStub(Connect(g))->AddHold(&ctx, req, &resp);
      if (!s.ok()) throw FromGrpc(s, "hold add failed");
      Emit(g, json{{"holdId", resp.id()}}, StrCat("hold ", Shown(resp.id()), " placed"));
      return static_cast<int>(kOk);
    };
  });
  auto* hrm = hold->add_subcommand("rm", "lift a hold");
  hrm->add_option("id", h_id, "hold id")->required();
  hrm->callback([&] {
    action = [&] {
      v1::RemoveHoldRequest req;
      req.set_id(h_id);
      grpc::ClientContext ctx;
      v1::RemoveHoldResponse resp;
      grpc::Status s = v1::Orders::NewStub(Connect(g))->RemoveHold(&ctx, req, &resp);
      if (!s.ok()) throw FromGrpc(s, "hold rm failed");
      Emit(g, json{{"holdId", h_id}, {"status", "removed"}}, StrCat("hold ", Shown(h_id), " removed"));
      return static_cast<int>(kOk);
    };
  });
  hold->add_subcommand("ls", "list holds")->callback([&] {
    action = [&] {
      grpc::ClientContext ctx;
      v1::ListHoldsResponse resp;
      grpc::Status s = v1::Orders::NewStub(Connect(g))->ListHolds(&ctx, v1::ListHoldsRequest(), &resp);
      if (!s.ok()) throw FromGrpc(s, "hold ls failed");
      for (const auto& h : resp.holds()) {
        std::string target = h.has_digest() ? h.digest().hash() : "dataset " + h.dataset();
        Emit(g, json{{"holdId", h.id()}, {"target", target}, {"reason", h.reason()}},
             StrCat(Shown(h.id()), " ", Shown(target), " (", Shown(h.reason()), ")"));
      }
      return static_cast<int>(kOk);
    };
  });
}

// suppression lift
void AddSuppressionCommands(CLI::App& app, const Global& g, std::function<int()>& action) {
  auto* sup = app.add_subcommand("suppression", "shredded content is refused on re-ingest; admins may lift that");
  sup->require_subcommand(1);
  static std::string s_digest, s_reason;
  auto* lift = sup->add_subcommand("lift", "allow a shredded digest to be stored again (recorded)");
  lift->add_option("digest", s_digest, "sha256:<hex> or a file")->required();
  lift->add_option("--reason", s_reason, "why")->required();
  lift->callback([&] {
    action = [&] {
      v1::LiftSuppressionRequest req;
      req.mutable_digest()->set_hash(DigestArg(s_digest));
      req.set_reason(s_reason);
      grpc::ClientContext ctx;
      v1::LiftSuppressionResponse resp;
      grpc::Status s = v1::Orders::NewStub(Connect(g))->LiftSuppression(&ctx, req, &resp);
      if (!s.ok()) throw FromGrpc(s, "suppression lift failed");
      Emit(g, json{{"digest", req.digest().hash()}, {"lifted", resp.lifted_order()}},
           StrCat("suppression of ", Shown(req.digest().hash()), " lifted (was: ", Shown(resp.lifted_order()), ")"));
      return static_cast<int>(kOk);
    };
  });
}

}  // namespace

void AddOrderCommands(Commands cmds) {
  AddDatasetCommands(cmds.app, cmds.global, cmds.action);
  AddTagCommand(cmds.app, cmds.global, cmds.action);
  AddModelCommands(cmds.app, cmds.global, cmds.action);
  AddOrderSubcommands(cmds.app, cmds.global, cmds.action);
  AddHoldCommands(cmds.app, cmds.global, cmds.action);
  AddSuppressionCommands(cmds.app, cmds.global, cmds.action);
}

}  // namespace shredd::cli
