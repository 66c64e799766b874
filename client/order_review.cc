#include "client/order_review.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>
#include <sstream>

#include "daemon/base/strings.h"

namespace shredd::cli {
namespace {

namespace v1 = shredd::v1;
using nlohmann::json;
using ::shredd::StrCat;

constexpr std::string_view kPlanFileType = "shredd-order-plan-v1";
constexpr size_t kSummaryModels = 50;  // derived models named in the summary
constexpr size_t kDiffLines = 50;

std::string KindText(v1::Kind k) { return k == v1::KIND_MODEL ? "model" : "photo"; }
std::string EdgeText(v1::LineageEdge::Type t) {
  return t == v1::LineageEdge::TRAINED_ON ? "trained-on" : t == v1::LineageEdge::DERIVED_FROM ? "derived-from" : "?";
}

json PlannedJson(const v1::PlannedItem& p) {
  json j{{"digest", p.digest().hash()}, {"kind", KindText(p.kind())}, {"reason", p.reason()}};
  if (!p.name().empty()) j["name"] = p.name();
  if (p.subject_ids_size() > 0)
    j["subjects"] = std::vector<std::string>(p.subject_ids().begin(), p.subject_ids().end());
  if (p.edge_type() != v1::LineageEdge::TYPE_UNSPECIFIED) {
    json e{{"type", EdgeText(p.edge_type())}};
    if (!p.edge_relation().empty()) e["relation"] = p.edge_relation();
    if (!p.edge_dataset().empty()) e["dataset"] = p.edge_dataset();
    if (p.has_edge_parent()) e["parent"] = p.edge_parent().hash();
    j["edge"] = e;
  }
  if (!p.hold_id().empty()) j["hold"] = {{"id", p.hold_id()}, {"reason", p.hold_reason()}};
  return j;
}

// "trained-on dataset "faces"", "derived-from (fine-tune) model sha256:...".
std::string PulledInBy(const v1::PlannedItem& p) {
  std::string s = EdgeText(p.edge_type());
  if (!p.edge_relation().empty()) s += StrCat(" (", Shown(p.edge_relation()), ")");
  if (!p.edge_dataset().empty()) return StrCat(s, " dataset ", Shown(p.edge_dataset()));
  if (p.has_edge_parent()) return StrCat(s, " item ", Shown(p.edge_parent().hash()));
  return s;
}

std::string NameText(const v1::PlannedItem& p) { return p.name().empty() ? "(no name)" : Shown(p.name()); }

std::string Subjects(const v1::PlannedItem& p) {
  std::string s;
  for (const auto& x : p.subject_ids()) s += (s.empty() ? "" : ", ") + Shown(x);
  return s.empty() ? "" : StrCat("  subjects: ", s);
}

json SpecJson(const v1::OrderSpec& s) {
  std::vector<std::string> digests;
  for (const auto& d : s.digests()) digests.push_back(d.hash());
  return {{"id", s.id()},
          {"basis", BasisName(s.basis())},
          {"reference", s.reference()},
          {"requester", s.requester()},
          {"received", s.received()},
          {"due", s.due()},
          {"digests", digests},
          {"subjects", std::vector<std::string>(s.subject_ids().begin(), s.subject_ids().end())},
          {"datasets", std::vector<std::string>(s.datasets().begin(), s.datasets().end())},
          {"labels", std::map<std::string, std::string>(s.labels().begin(), s.labels().end())}};
}

// One member of the plan file: a string, or a list / map of strings.
const json& Member(const std::string& path, const json& j, const char* name, json::value_t type) {
  if (!j.is_object() || !j.contains(name)) throw Failure{kUsage, StrCat(path, ": \"", name, "\" is missing"), ""};
  const json& m = j.at(name);
  if (m.type() != type) {
    throw Failure{kUsage, StrCat(path, ": \"", name, "\" is a ", m.type_name(), ", not a ", json(type).type_name()),
                  ""};
  }
  return m;
}

std::vector<std::string> Strings(const std::string& path, const json& j, const char* name) {
  std::vector<std::string> out;
  for (const auto& v : Member(path, j, name, json::value_t::array)) {
    if (!v.is_string()) throw Failure{kUsage, StrCat(path, ": \"", name, "\" holds a ", v.type_name()), ""};
    out.push_back(v.get<std::string>());
  }
  return out;
}

v1::OrderSpec SpecFromJson(const std::string& path, const json& j) {
  auto str = [&](const char* name) { return Member(path, j, name, json::value_t::string).get<std::string>(); };
  v1::OrderSpec s;
  s.set_id(str("id"));
  s.set_basis(BasisFromName(str("basis"), StrCat(path, ": \"basis\"")));
  s.set_reference(str("reference"));
  s.set_requester(str("requester"));
  s.set_received(str("received"));
  s.set_due(str("due"));
  for (const auto& d : Strings(path, j, "digests")) s.add_digests()->set_hash(d);
  for (const auto& x : Strings(path, j, "subjects")) s.add_subject_ids(x);
  for (const auto& x : Strings(path, j, "datasets")) s.add_datasets(x);
  for (const auto& [k, v] : Member(path, j, "labels", json::value_t::object).items()) {
    if (!v.is_string()) throw Failure{kUsage, StrCat(path, ": label \"", Shown(k), "\" is not a string"), ""};
    (*s.mutable_labels())[k] = v.get<std::string>();
  }
  return s;
}

// "selected sha256:..." -> how the item is shown in a diff.
std::map<std::string, std::string> Listed(const json& plan) {
  std::map<std::string, std::string> out;
  for (const char* role : {"selected", "derived", "retained"}) {
    if (!plan.contains(role) || !plan[role].is_array()) continue;
    for (const auto& p : plan[role]) {
      if (!p.is_object() || !p.contains("digest") || !p["digest"].is_string()) continue;
      std::string name = p.contains("name") && p["name"].is_string() ? p["name"].get<std::string>() : "";
      std::string kind = p.contains("kind") && p["kind"].is_string() ? p["kind"].get<std::string>() : "";
      std::string what = StrCat(kind, name.empty() ? "" : StrCat(" ", Shown(name)));
      const json* hold = p.contains("hold") && p["hold"].is_object() ? &p["hold"] : nullptr;
      if (hold != nullptr) {  // the hold's id and reason are in the plan's digest: a changed one is shown
        auto text = [&](const char* m) {
          return hold->contains(m) && (*hold)[m].is_string() ? (*hold)[m].get<std::string>() : std::string();
        };
        what = StrCat(what, " (hold ", Shown(text("id")), ": ", Shown(text("reason")), ")");
      }
      out[StrCat(role, " ", p["digest"].get<std::string>())] = std::move(what);
    }
  }
  return out;
}

int64_t Count(const json& plan, const char* name) {
  return plan.contains(name) && plan[name].is_number_integer() ? plan[name].get<int64_t>() : -1;
}

}  // namespace

std::string BasisName(v1::LegalBasis b) {
  switch (b) {
    case v1::FTC_ORDER:
      return "ftc-order";
    case v1::GDPR_ART17:
      return "gdpr-art17";
    case v1::CCPA:
      return "ccpa";
    case v1::CONTRACT:
      return "contract";
    case v1::OTHER:
      return "other";
    default:
      return "";
  }
}

v1::LegalBasis BasisFromName(const std::string& s, std::string_view flag) {
  for (auto b : {v1::FTC_ORDER, v1::GDPR_ART17, v1::CCPA, v1::CONTRACT, v1::OTHER}) {
    if (BasisName(b) == s) return b;
  }
  throw Failure{kUsage, StrCat(flag, " \"", Shown(s), "\": expected ftc-order, gdpr-art17, ccpa, contract or other"),
                ""};
}

json PlanJson(const v1::Plan& plan) {
  json j{{"orderId", plan.order_id()},
         {"planDigest", plan.plan_digest()},
         {"selected", json::array()},
         {"derived", json::array()},
         {"retained", json::array()},
         {"unmatched", plan.unmatched()},
         {"selectedCount", plan.selected_count()},
         {"selectedPhotoCount", plan.selected_photo_count()},
         {"selectedModelCount", plan.selected_model_count()},
         {"derivedCount", plan.derived_count()},
         {"retainedCount", plan.retained_count()},
         {"truncated", plan.truncated()}};
  for (const auto& p : plan.selected()) j["selected"].push_back(PlannedJson(p));
  for (const auto& p : plan.derived()) j["derived"].push_back(PlannedJson(p));
  for (const auto& p : plan.retained()) j["retained"].push_back(PlannedJson(p));
  j["heldByPending"] = json::array();
  for (const auto& h : plan.held_by_pending()) {
    json held{{"certificateId", h.certificate_id()}, {"itemCount", h.item_count()}, {"digests", json::array()}};
    if (!h.order_id().empty()) held["orderId"] = h.order_id();
    for (const auto& d : h.digests()) held["digests"].push_back(d.hash());
    j["heldByPending"].push_back(std::move(held));
  }
  return j;
}

namespace {

// A plan's items that a destruction pending after a failure holds: the
// order waits for it (docs/ORDERS.md).
void HeldByPendingText(const v1::Plan& plan, std::ostringstream& t) {
  for (const auto& h : plan.held_by_pending()) {
    t << "  WAITS:    " << h.item_count() << " items of this plan are being destroyed by certificate "
      << Shown(h.certificate_id())
      << (h.order_id().empty() ? std::string() : StrCat(" of order \"", Shown(h.order_id()), "\""))
      << ", pending after a failure: a submitted order stays pending (tried again) until it is certified\n";
    size_t shown = 0;
    for (const auto& d : h.digests()) {
      if (++shown > kSummaryModels) break;
      t << "    held " << Shown(d.hash()) << "\n";
    }
    if (h.item_count() > static_cast<int64_t>(std::min(shown, kSummaryModels))) {
      t << "    ... and " << h.item_count() - static_cast<int64_t>(std::min(shown, kSummaryModels))
        << " more (--json)\n";
    }
  }
}

}  // namespace

std::string PlanSummaryText(const v1::Plan& plan) {
  std::ostringstream t;
  t << "order " << Shown(plan.order_id()) << ": plan " << Shown(plan.plan_digest()) << "\n";
  t << "  shred:    " << plan.selected_count() << " selected (" << plan.selected_photo_count() << " photos, "
    << plan.selected_model_count() << " models) and " << plan.derived_count() << " derived models\n";
  size_t shown = 0;
  for (const auto& p : plan.derived()) {
    if (++shown > kSummaryModels) break;
    t << "    model " << Shown(p.digest().hash()) << "  " << NameText(p) << "  <- " << PulledInBy(p) << "\n";
  }
  if (plan.derived_count() > static_cast<int64_t>(std::min(shown, kSummaryModels))) {
    t << "    ... and " << plan.derived_count() - static_cast<int64_t>(std::min(shown, kSummaryModels))
      << " more derived models (--list, --json)\n";
  }
  std::map<std::pair<std::string, std::string>, int64_t> holds;
  for (const auto& p : plan.retained()) ++holds[{p.hold_id(), p.hold_reason()}];
  t << "  retain:   " << plan.retained_count() << " under legal hold\n";
  for (const auto& [hold, n] : holds) {
    t << "    hold " << Shown(hold.first) << " (" << Shown(hold.second) << "): " << n << " items\n";
  }
  for (const auto& u : plan.unmatched()) t << "  unmatched: " << Shown(u) << "\n";
  HeldByPendingText(plan, t);
  if (plan.truncated()) {
    t << "  (the lists are cut to the first "
      << std::max({plan.selected_size(), plan.derived_size(), plan.retained_size()})
      << " items of each kind; the counts are exact, and the certificate's manifest will list every item)\n";
  }
  if (plan.selected_count() + plan.derived_count() == 0)
    t << "  nothing to shred: submitting this order would issue no certificate\n";
  std::string s = t.str();
  s.pop_back();
  return s;
}

std::string PlanListText(const v1::Plan& plan) {
  std::ostringstream t;
  for (const auto& p : plan.selected()) {
    t << "\n  shred   " << Shown(p.digest().hash()) << " " << KindText(p.kind()) << "  " << NameText(p) << Subjects(p)
      << "  (" << Shown(p.reason()) << ")";
  }
  for (const auto& p : plan.derived()) {
    t << "\n  shred   " << Shown(p.digest().hash()) << " model  " << NameText(p) << "  (" << PulledInBy(p) << ")";
  }
  for (const auto& p : plan.retained()) {
    t << "\n  retain  " << Shown(p.digest().hash()) << " " << KindText(p.kind()) << "  " << NameText(p) << Subjects(p)
      << "  (hold " << Shown(p.hold_id()) << ": " << Shown(p.hold_reason()) << ")";
  }
  return t.str();
}

std::string PlanFileText(const v1::OrderSpec& spec, const v1::Plan& plan) {
  json j{
      {"type", kPlanFileType}, {"spec", SpecJson(spec)}, {"planDigest", plan.plan_digest()}, {"plan", PlanJson(plan)}};
  return j.dump(2, ' ', true, json::error_handler_t::replace) + "\n";
}

ReviewedPlan ReadPlanFile(const std::string& path) {
  json j = json::parse(ReadFileOrThrow(path), nullptr, false);
  if (j.is_discarded())
    throw Failure{kUsage, StrCat(path, ": not JSON (expected a plan from shredctl order plan -o)"), ""};
  if (!j.is_object() || !j.contains("type") || j["type"] != kPlanFileType) {
    throw Failure{kUsage, StrCat(path, ": not a plan file (\"type\" is not \"", kPlanFileType, "\")"), ""};
  }
  ReviewedPlan r;
  r.spec = SpecFromJson(path, Member(path, j, "spec", json::value_t::object));
  const std::string digest = Member(path, j, "planDigest", json::value_t::string).get<std::string>();
  const bool hex = digest.size() == 71 && digest.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
  if (!digest.starts_with("sha256:") || !hex)
    throw Failure{kUsage, StrCat(path, ": \"planDigest\" is not sha256:<hex>"), ""};
  r.spec.set_expected_plan_digest(digest);
  r.plan = Member(path, j, "plan", json::value_t::object);
  return r;
}

std::vector<std::string> PlanDiff(const json& reviewed, const v1::Plan& now) {
  std::vector<std::string> out;
  const json current = PlanJson(now);
  for (const char* c : {"selectedCount", "derivedCount", "retainedCount"}) {
    if (Count(reviewed, c) != Count(current, c))
      out.push_back(StrCat(c, ": ", Count(reviewed, c), " -> ", Count(current, c)));
  }
  const auto before = Listed(reviewed), after = Listed(current);
  for (const auto& [key, what] : after) {
    auto was = before.find(key);
    if (was == before.end()) {
      out.push_back(StrCat("+ ", key, " ", what));
    } else if (was->second != what) {
      out.push_back(StrCat("~ ", key, " ", was->second, " -> ", what));
    }
  }
  for (const auto& [key, what] : before) {
    if (!after.count(key)) out.push_back(StrCat("- ", key, " ", what));
  }
  if (out.size() > kDiffLines) {
    const size_t more = out.size() - kDiffLines;
    out.resize(kDiffLines);
    out.push_back(StrCat("... and ", more, " more differences"));
  }
  return out;
}

std::string ShredSummary(const std::vector<std::string>& args, const v1::ShredRequest& req) {
  std::ostringstream t;
  t << "shred: " << req.digests_size() << " items (no cascade: derived models are not pulled in; use an order)";
  constexpr int kListed = 20;
  for (int i = 0; i < req.digests_size() && i < kListed; ++i) {
    const std::string& arg = args[static_cast<size_t>(i)];
    t << "\n  " << Shown(req.digests(i).hash()) << (arg == req.digests(i).hash() ? "" : "  " + Shown(arg));
  }
  if (req.digests_size() > kListed) t << "\n  ... and " << req.digests_size() - kListed << " more";
  return t.str();
}

void ConfirmOrThrow(bool yes, const std::string& summary, const std::string& question, const std::string& declined) {
  if (yes || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) return;
  std::cerr << summary << "\n" << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) answer.clear();
  for (auto& c : answer) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (answer == "y" || answer == "yes") return;
  throw Failure{kFail, declined, ""};
}

}  // namespace shredd::cli
