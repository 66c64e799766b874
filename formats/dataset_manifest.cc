#include "formats/dataset_manifest.h"

#include <utility>

#include "absl/status/status.h"
#include <nlohmann/json.hpp>

#include "formats/json_fields.h"
#include "formats/str_util.h"
#include "formats/strict_json.h"

namespace shredd::verify {

using internal::Cat;
using internal::GetString;
using internal::GetTyped;
using internal::GetUint;
using nlohmann::json;

namespace {

absl::StatusOr<std::optional<DatasetDeletion>> ParseDeletion(const json& member, const std::string& where) {
  auto it = member.find("deletion");
  if (it == member.end() || it->is_null()) return std::optional<DatasetDeletion>();
  if (!it->is_object()) {
    return absl::InvalidArgumentError(Cat(where, ".deletion is a ", it->type_name(), ", not an object or null"));
  }
  const std::string at = Cat(where, ".deletion");
  DatasetDeletion d;
  absl::StatusOr<std::string> id = GetString(*it, at, "certificateId");
  if (!id.ok()) return id.status();
  absl::StatusOr<uint64_t> index = GetUint(*it, at, "logIndex");
  if (!index.ok()) return index.status();
  d.certificate_id = *std::move(id);
  d.log_index = *index;
  return std::optional<DatasetDeletion>(std::move(d));
}

absl::StatusOr<DatasetMember> ParseMember(const json& j, size_t i) {
  const std::string where = Cat("dataset manifest members[", i, "]");
  DatasetMember m;
  absl::StatusOr<std::string> digest = GetString(j, where, "digest");
  if (!digest.ok()) return digest.status();
  absl::StatusOr<std::string> salt = GetString(j, where, "custodySalt");
  if (!salt.ok()) return salt.status();
  absl::StatusOr<uint64_t> index = GetUint(j, where, "memberIndex");
  if (!index.ok()) return index.status();
  absl::StatusOr<std::optional<DatasetDeletion>> deletion = ParseDeletion(j, where);
  if (!deletion.ok()) return deletion.status();
  m.digest = *std::move(digest);
  m.custody_salt = *std::move(salt);
  m.member_index = *index;
  m.deletion = *std::move(deletion);
  return m;
}

}  // namespace

absl::StatusOr<DatasetManifest> ParseDatasetManifest(std::string_view json_text) {
  absl::StatusOr<json> doc = ParseStrictJson(json_text, "the dataset manifest");
  if (!doc.ok()) return doc.status();
  constexpr std::string_view kWhere = "dataset manifest";
  absl::StatusOr<std::string> type = GetString(*doc, kWhere, "type");
  if (!type.ok()) return type.status();
  if (*type != kDatasetManifestType) {
    return absl::InvalidArgumentError(
        Cat("not a shredd dataset manifest (type \"", *type, "\", expected \"", kDatasetManifestType, "\")"));
  }
  DatasetManifest m;
  absl::StatusOr<std::string> dataset = GetString(*doc, kWhere, "dataset");
  if (!dataset.ok()) return dataset.status();
  absl::StatusOr<std::string> salt = GetString(*doc, kWhere, "datasetSalt");
  if (!salt.ok()) return salt.status();
  absl::StatusOr<const json*> members = GetTyped(*doc, kWhere, "members", json::value_t::array);
  if (!members.ok()) return members.status();
  m.dataset = *std::move(dataset);
  m.dataset_salt = *std::move(salt);
  m.members.reserve((*members)->size());
  for (size_t i = 0; i < (*members)->size(); ++i) {
    absl::StatusOr<DatasetMember> member = ParseMember((**members)[i], i);
    if (!member.ok()) return member.status();
    m.members.push_back(*std::move(member));
  }
  return m;
}

}  // namespace shredd::verify
