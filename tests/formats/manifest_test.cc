// The streaming manifest verifier (formats/manifest.h): accepts what
// the DOM verifier it replaced accepted (any member order, whitespace,
// escapes), rejects what it rejected with the same messages, and also
// works piece by piece from a file with any buffer size.

#include "formats/manifest.h"

#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/certificate.h"
#include "formats/encoding.h"
#include "formats/merkle.h"
#include "tests/formats/cert_fixture.h"
#include "tests/formats/manifest_dom_reference.h"

namespace shredd::verify {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using testing_fixture::RandomItem;

std::string Msg(const absl::Status& s) { return std::string(s.message().data(), s.message().size()); }

void ExpectFailure(const absl::Status& s, std::string_view needle) {
  EXPECT_FALSE(s.ok()) << "expected failure mentioning \"" << needle << "\"";
  EXPECT_NE(Msg(s).find(needle), std::string::npos) << "message \"" << Msg(s) << "\" lacks \"" << needle << "\"";
}

// A certificate (as VerifyCertificate would report it) and its manifest.
struct Fixture {
  VerifiedCertificate cert;
  std::string manifest;
  std::vector<ItemEntry> entries;  // tree order
};

Fixture MakeFixture(size_t photos, size_t models, std::string id = "cert-m") {
  std::vector<ItemEntry> items;
  for (size_t i = 0; i < photos; ++i) {
    items.push_back(RandomItem("photo", "photo " + std::to_string(i)));
  }
  for (size_t i = 0; i < models; ++i) {
    items.push_back(RandomItem("model", "model " + std::to_string(i)));
  }
  absl::StatusOr<ItemCommitment> c = ItemCommitment::Create(std::move(items));
  EXPECT_TRUE(c.ok()) << c.status();
  Fixture f;
  f.cert.certificate_id = id;
  f.cert.merkle_root = c->root();
  f.cert.item_count = c->size();
  f.cert.count_by_kind = {{"photo", photos}, {"model", models}};
  f.cert.predicate = json::object();
  f.manifest = c->ManifestJson(id);
  f.entries = c->entries();
  return f;
}

// Temp files, removed when the process exits.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const std::string& p : paths) std::remove(p.c_str());
  }
};

// A file of this process's own (ctest runs test cases in parallel).
std::string WriteTemp(const std::string& name, std::string_view text) {
  static TempFiles files;
  const std::string path = ::testing::TempDir() + "/shredd-" + std::to_string(::getpid()) + "-" + name;
  if (std::find(files.paths.begin(), files.paths.end(), path) == files.paths.end()) {
    files.paths.push_back(path);
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(text.data(), static_cast<std::streamsize>(text.size()));
  return path;
}

// Runs the streaming verifier in memory and from a file with several buffer
// sizes, checks that they agree, and returns the in-memory result.
absl::Status VerifyAllWays(const VerifiedCertificate& cert, const std::string& manifest) {
  const absl::Status mem = VerifyManifestText(cert, manifest);
  const std::string path = WriteTemp("manifest_test.json", manifest);
  for (size_t buffer : {size_t{1}, size_t{3}, size_t{7}, size_t{64}, kManifestReadBuffer}) {
    const absl::Status file = VerifyManifestFile(cert, path, nullptr, buffer);
    EXPECT_EQ(file.ok(), mem.ok()) << "buffer " << buffer << ": " << file;
    EXPECT_EQ(Msg(file), Msg(mem)) << "buffer " << buffer;
  }
  return mem;
}

json ItemJson(const ItemEntry& e) {
  return json{{"kind", e.kind}, {"digest", e.digest}, {"size", e.size}, {"salt", HexEncode(e.salt)}};
}

// --- accepts ----------------------------------------------------------------

TEST(StreamingManifest, AcceptsGenuineManifest) {
  const Fixture f = MakeFixture(6, 3);
  EXPECT_TRUE(VerifyAllWays(f.cert, f.manifest).ok()) << VerifyManifestText(f.cert, f.manifest);
  ManifestStats stats;
  const std::string path = WriteTemp("genuine.json", f.manifest);
  ASSERT_TRUE(VerifyManifestFile(f.cert, path, &stats).ok());
  EXPECT_EQ(stats.items, 9u);
  EXPECT_EQ(stats.bytes, f.manifest.size());
  EXPECT_EQ(stats.passes, 1);
}

TEST(StreamingManifest, AcceptsEmptyManifestOfEmptyCertificate) {
  const Fixture f = MakeFixture(0, 0);
  EXPECT_EQ(f.cert.merkle_root, EmptyRoot());
  EXPECT_TRUE(VerifyAllWays(f.cert, f.manifest).ok()) << VerifyManifestText(f.cert, f.manifest);
}

TEST(StreamingManifest, AcceptsReformattedManifests) {
  const Fixture f = MakeFixture(4, 2);
  const json doc = json::parse(f.manifest);

  // Items first, header last; each item's members in reverse order.
  std::string reordered = "{\"items\":[";
  for (size_t i = 0; i < f.entries.size(); ++i) {
    const ItemEntry& e = f.entries[i];
    reordered += (i ? "," : "");
    reordered += "{\"salt\":\"" + HexEncode(e.salt) + "\",\"size\":" + std::to_string(e.size) + ",\"digest\":\"" +
                 e.digest + "\",\"kind\":\"" + e.kind + "\"}";
  }
  reordered += "],\"merkleRoot\":\"" + HexEncode(f.cert.merkle_root) +
               "\",\"certificateId\":\"cert-m\",\"type\":\"shredd-manifest-v1\"}";

  // Escapes that decode to the same strings, and unknown members of every
  // JSON type (the DOM verifier ignored them).
  std::string escaped = f.manifest;
  auto replace_all = [](std::string& s, std::string_view from, std::string_view to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
      s.replace(p, from.size(), to);
    }
  };
  replace_all(escaped, "\"kind\":\"photo\"", "\"kind\":\"\\u0070hoto\"");
  replace_all(escaped, "\"kind\":\"model\"", "\"\\u006bind\":\"model\"");
  replace_all(escaped, "\"type\":",
              "\"note\":{\"a\":[1,-2.5e3,true,false,null,\"\\ud83d\\ude00 \xc3\xa9\\/\"],\"b\":{}},\"type\":");
  replace_all(escaped, "\"size\":", "\"extra\":[[],[{}]],\"size\":");

  const std::vector<std::pair<const char*, std::string>> cases = {
      {"pretty-printed", doc.dump(2)},
      {"pretty-printed with tabs", doc.dump(1, '\t')},
      {"CRLF and spaces everywhere",
       [&] {
         std::string s;
         bool in_string = false;
         for (char c : f.manifest) {
           if (c == '"') in_string = !in_string;  // no escapes in f.manifest
           if (!in_string && (c == '{' || c == '[' || c == ',' || c == ':')) {
             s += " \r\n\t";
             s += c;
             s += "\r\n ";
           } else {
             s += c;
           }
         }
         return " \n" + s + "\r\n\t ";
       }()},
      {"sorted members (nlohmann::json dump)", doc.dump()},
      {"reordered members", reordered},
      {"escapes and unknown members", escaped},
      {"UTF-8 byte order mark", "\xEF\xBB\xBF" + f.manifest},
  };
  for (const auto& [what, text] : cases) {
    SCOPED_TRACE(what);
    EXPECT_TRUE(dom_reference::VerifyManifest(f.cert, text).ok())
        << "reference: " << dom_reference::VerifyManifest(f.cert, text);
    const absl::Status s = VerifyAllWays(f.cert, text);
    EXPECT_TRUE(s.ok()) << s;
  }
}

// --- rejects ----------------------------------------------------------------

TEST(StreamingManifest, RejectsWrongRoot) {
  Fixture f = MakeFixture(3, 2);
  const Fixture other = MakeFixture(3, 2);
  // The manifest states the certificate's root but holds other items.
  json m = json::parse(other.manifest);
  m["certificateId"] = "cert-m";
  m["merkleRoot"] = HexEncode(f.cert.merkle_root);
  ExpectFailure(VerifyAllWays(f.cert, m.dump()), "does not match certificate root");
  // The certificate commits to a different root than the manifest states.
  f.cert.merkle_root = other.cert.merkle_root;
  ExpectFailure(VerifyAllWays(f.cert, f.manifest), "states Merkle root");
}

TEST(StreamingManifest, RejectsOutOfOrderLeaves) {
  const Fixture f = MakeFixture(5, 0);
  json m = json::parse(f.manifest);
  std::swap(m["items"][2], m["items"][3]);
  const absl::Status s = VerifyAllWays(f.cert, m.dump());
  ExpectFailure(s, "manifest.items[3] is out of tree order");

  // Descending leaves whose (unsorted) tree root the certificate signed:
  // the root matches, the order check alone must refuse.
  VerifiedCertificate v = f.cert;
  std::vector<Hash> leaves;
  for (const ItemEntry& e : f.entries) leaves.push_back(ItemLeafHash(e));
  std::reverse(leaves.begin(), leaves.end());
  v.merkle_root = RootFromLeafHashes(leaves);
  json r = json::parse(f.manifest);
  std::reverse(r["items"].begin(), r["items"].end());
  r["merkleRoot"] = HexEncode(v.merkle_root);
  const absl::Status t = VerifyAllWays(v, r.dump());
  ExpectFailure(t, "manifest.items[1] is out of tree order");
  EXPECT_EQ(Msg(t).find("does not match"), std::string::npos) << Msg(t);
}

// Builds a certificate + manifest over `entries` as given (sorted into tree
// order here), bypassing ItemCommitment's own duplicate check.
Fixture RawFixture(std::vector<ItemEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const ItemEntry& a, const ItemEntry& b) { return ItemLeafHash(a) < ItemLeafHash(b); });
  Fixture f;
  std::vector<Hash> leaves;
  json items = json::array();
  for (const ItemEntry& e : entries) {
    leaves.push_back(ItemLeafHash(e));
    items.push_back(ItemJson(e));
    ++f.cert.count_by_kind[e.kind];
  }
  f.cert.count_by_kind.try_emplace("photo", 0);
  f.cert.count_by_kind.try_emplace("model", 0);
  f.cert.certificate_id = "raw";
  f.cert.merkle_root = RootFromLeafHashes(leaves);
  f.cert.item_count = entries.size();
  f.cert.predicate = json::object();
  ordered_json m;
  m["type"] = "shredd-manifest-v1";
  m["certificateId"] = "raw";
  m["merkleRoot"] = HexEncode(f.cert.merkle_root);
  m["items"] = items;
  f.manifest = m.dump();
  f.entries = std::move(entries);
  return f;
}

TEST(StreamingManifest, RejectsRepeatedDigestWithDifferentSalts) {
  std::vector<ItemEntry> entries;
  for (int i = 0; i < 200; ++i) {
    entries.push_back(RandomItem(i % 3 ? "photo" : "model", "content " + std::to_string(i)));
  }
  ItemEntry again = entries[77];
  randombytes_buf(again.salt.data(), again.salt.size());  // a fresh salt
  entries.push_back(again);
  const Fixture f = RawFixture(entries);
  const absl::Status s = VerifyAllWays(f.cert, f.manifest);
  ExpectFailure(s, "manifest lists item " + again.digest + " twice");
  EXPECT_EQ(Msg(s), Msg(dom_reference::VerifyManifest(f.cert, f.manifest)));
  ManifestStats stats;
  EXPECT_FALSE(VerifyManifestText(f.cert, f.manifest, &stats).ok());
  EXPECT_EQ(stats.passes, 2);
  EXPECT_EQ(stats.prefix_collisions, 1u);
}

TEST(StreamingManifest, RejectsRepeatedDigestAmongManyItems) {
  // Enough items for the bucketed prefix sort; the repeat is of an item
  // far from its twin in tree order.
  std::vector<ItemEntry> entries;
  for (int i = 0; i < 20000; ++i) {
    entries.push_back(RandomItem("photo", "many " + std::to_string(i)));
  }
  Fixture ok = RawFixture(entries);
  ManifestStats stats;
  EXPECT_TRUE(VerifyManifestText(ok.cert, ok.manifest, &stats).ok());
  EXPECT_EQ(stats.passes, 1);
  ItemEntry again = entries[12345];
  randombytes_buf(again.salt.data(), again.salt.size());
  entries.push_back(again);
  const Fixture f = RawFixture(entries);
  const std::string path = WriteTemp("many.json", f.manifest);
  ExpectFailure(VerifyManifestFile(f.cert, path, &stats), "manifest lists item " + again.digest + " twice");
  EXPECT_EQ(stats.passes, 2);
}

TEST(StreamingManifest, PrefixCollisionWithoutRepeatIsAccepted) {
  // Two different digests that share their first 8 bytes: the exact second
  // pass must find no repeat.
  std::vector<ItemEntry> entries;
  for (int i = 0; i < 20; ++i) {
    entries.push_back(RandomItem("photo", "c" + std::to_string(i)));
  }
  ItemEntry twin = entries[5];
  twin.digest.back() = twin.digest.back() == '0' ? '1' : '0';
  randombytes_buf(twin.salt.data(), twin.salt.size());
  entries.push_back(twin);
  const Fixture f = RawFixture(entries);
  ManifestStats stats;
  const std::string path = WriteTemp("collision.json", f.manifest);
  const absl::Status s = VerifyManifestFile(f.cert, path, &stats, 4096);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(stats.passes, 2);
  EXPECT_EQ(stats.prefix_collisions, 1u);
  EXPECT_TRUE(VerifyAllWays(f.cert, f.manifest).ok());
}

TEST(StreamingManifest, MalformedItemIsNamedByIndex) {
  const Fixture f = MakeFixture(5, 2);
  const json good = json::parse(f.manifest);
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"no kind", [](json& it) { it.erase("kind"); }, "manifest.items[4] has no \"kind\""},
      {"kind a number", [](json& it) { it["kind"] = 3; }, "manifest.items[4].kind is a number, not a string"},
      {"unknown kind", [](json& it) { it["kind"] = "video"; }, "manifest.items[4]: item kind \"video\" is neither"},
      {"short digest", [](json& it) { it["digest"] = "sha256:abcd"; },
       "manifest.items[4]: item digest \"sha256:abcd\" is not"},
      {"digest without prefix", [](json& it) { it["digest"] = it["digest"].get<std::string>().substr(7); },
       "manifest.items[4]: item digest"},
      {"negative size", [](json& it) { it["size"] = -1; }, "manifest.items[4].size is not a non-negative integer"},
      {"fractional size", [](json& it) { it["size"] = 1.5; }, "manifest.items[4].size is not a non-negative integer"},
      {"size null", [](json& it) { it["size"] = nullptr; }, "manifest.items[4].size is not a non-negative integer"},
      {"no size", [](json& it) { it.erase("size"); }, "manifest.items[4] has no \"size\""},
      {"uppercase salt",
       [](json& it) {
         std::string s = it["salt"];
         for (char& c : s) c = static_cast<char>(std::toupper(c));
         it["salt"] = s;
       },
       "manifest.items[4].salt: "},
      {"short salt", [](json& it) { it["salt"] = "abcd"; },
       "manifest.items[4].salt: hash must be 64 lowercase hex characters"},
      {"salt an array", [](json& it) { it["salt"] = json::array(); },
       "manifest.items[4].salt is a array, not a string"},
      {"item a string", [](json& it) { it = "photo"; }, "manifest.items[4] is not a JSON object"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    json m = good;
    k.mutate(m["items"][4]);
    const absl::Status s = VerifyAllWays(f.cert, m.dump());
    ExpectFailure(s, k.reason);
    EXPECT_EQ(Msg(s), Msg(dom_reference::VerifyManifest(f.cert, m.dump())));
  }
}

TEST(StreamingManifest, RejectsWrongCounts) {
  const Fixture f = MakeFixture(4, 2);
  VerifiedCertificate more = f.cert;
  more.item_count = 7;
  more.count_by_kind["photo"] = 5;
  ExpectFailure(VerifyAllWays(more, f.manifest), "manifest lists 6 items, certificate counts 7");
  VerifiedCertificate kinds = f.cert;
  kinds.count_by_kind = {{"photo", 3}, {"model", 3}};
  ExpectFailure(VerifyAllWays(kinds, f.manifest), "manifest lists 2 items of kind model, certificate counts 3");
  json m = json::parse(f.manifest);
  m["items"].erase(m["items"].begin());
  ExpectFailure(VerifyAllWays(f.cert, m.dump()), "manifest lists 5 items, certificate counts 6");
}

TEST(StreamingManifest, RejectsEveryTruncation) {
  const Fixture f = MakeFixture(2, 1);
  for (size_t n = 0; n < f.manifest.size(); ++n) {
    SCOPED_TRACE(n);
    const absl::Status s = VerifyManifestText(f.cert, f.manifest.substr(0, n));
    ExpectFailure(s, "manifest is not valid JSON");
  }
  const std::string path = WriteTemp("truncated.json", f.manifest.substr(0, f.manifest.size() / 2));
  ExpectFailure(VerifyManifestFile(f.cert, path, nullptr, 16), "manifest is not valid JSON: ");
}

TEST(StreamingManifest, RejectsTrailingGarbage) {
  const Fixture f = MakeFixture(2, 1);
  const std::vector<std::string> tails = {"x", "}", " {}", ",", "\n\"\"", std::string(1, '\0'), "]"};
  for (const std::string& tail : tails) {
    SCOPED_TRACE(tail);
    ExpectFailure(VerifyAllWays(f.cert, f.manifest + tail), "manifest is not valid JSON");
  }
  const absl::Status s = VerifyManifestText(f.cert, f.manifest + " x");
  ExpectFailure(s, "at byte " + std::to_string(f.manifest.size() + 1));
}

TEST(StreamingManifest, SyntaxErrorNamesItem) {
  const Fixture f = MakeFixture(5, 0);
  json m = json::parse(f.manifest);
  std::string text = m.dump();
  // Break the fourth item (index 3): drop the colon after its "size".
  size_t p = 0;
  for (int i = 0; i < 4; ++i) p = text.find("\"size\":", p + 1);
  text.erase(p + 6, 1);
  ExpectFailure(VerifyAllWays(f.cert, text), "(in manifest.items[3])");
}

TEST(StreamingManifest, RejectsRepeatedMembers) {
  const Fixture f = MakeFixture(3, 0);
  std::string dup_item = f.manifest;
  const size_t p = dup_item.find("\"size\":");
  dup_item.insert(p, "\"size\":1,");
  ExpectFailure(VerifyAllWays(f.cert, dup_item), "manifest.items[0] has \"size\" twice");
  std::string dup_items = f.manifest;
  dup_items.insert(dup_items.size() - 1, ",\"items\":[]");
  ExpectFailure(VerifyAllWays(f.cert, dup_items), "manifest has \"items\" twice");
}

TEST(StreamingManifest, MissingFileIsNotFound) {
  const Fixture f = MakeFixture(1, 0);
  const absl::Status s = VerifyManifestFile(f.cert, ::testing::TempDir() + "/no-such-manifest");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
}

TEST(StreamingManifest, OrderPrivateFieldsAsBefore) {
  Fixture f = MakeFixture(2, 1);
  const std::string priv = R"({"requester":"FTC","selectors":["subject:42"]})";
  std::string salt(32, '\0');
  randombytes_buf(salt.data(), salt.size());
  f.cert.predicate = {{"order", {{"privateCommitment", HexEncode(Sha256(salt + priv))}}}};
  json m = json::parse(f.manifest);
  m["order"] = {{"private", priv}, {"salt", HexEncode(salt)}};
  EXPECT_TRUE(VerifyAllWays(f.cert, m.dump()).ok());
  EXPECT_TRUE(VerifyAllWays(f.cert, m.dump(2)).ok());
  json altered = m;
  altered["order"]["private"] = R"({"requester":"FTC","selectors":[]})";
  ExpectFailure(VerifyAllWays(f.cert, altered.dump()), "does not match the certificate's privateCommitment");
  json missing = m;
  missing.erase("order");
  ExpectFailure(VerifyAllWays(f.cert, missing.dump()), "manifest lacks the order's private fields");
  json bad_salt = m;
  bad_salt["order"]["salt"] = 7;
  ExpectFailure(VerifyAllWays(f.cert, bad_salt.dump()), "manifest.order needs string fields");
}

// --- differential: the DOM reference and the streaming verifier agree ------

// Same verdict; same message unless the input is not valid JSON (different
// parsers word syntax errors differently) or repeats a member or holds a raw
// NUL byte (which only the streaming verifier refuses).
void ExpectSameVerdict(const VerifiedCertificate& cert, const std::string& text) {
  const absl::Status ref = dom_reference::VerifyManifest(cert, text);
  const absl::Status got = VerifyManifestText(cert, text);
  if (Msg(got).find("\" twice") != std::string::npos && Msg(got).find("manifest lists item") == std::string::npos) {
    return;  // a repeated member
  }
  if (ref.ok() && text.find('\0') != std::string::npos) {
    // nlohmann took a raw NUL byte for the end of input and ignored the
    // rest; the streaming verifier refuses it (deliberately stricter).
    EXPECT_EQ(Msg(got).rfind("manifest is not valid JSON", 0), 0u) << got;
    return;
  }
  ASSERT_EQ(got.ok(), ref.ok()) << "streaming: " << got << "\nreference: " << ref << "\ninput: " << json(text).dump();
  if (!ref.ok()) {
    const bool ref_syntax = Msg(ref).rfind("manifest is not valid JSON", 0) == 0;
    const bool got_syntax = Msg(got).rfind("manifest is not valid JSON", 0) == 0;
    ASSERT_EQ(got_syntax, ref_syntax) << "streaming: " << got << "\nreference: " << ref;
    if (!ref_syntax) {
      EXPECT_EQ(Msg(got), Msg(ref)) << "input: " << json(text).dump();
    }
  }
}

TEST(StreamingManifestDifferential, HandPickedEdgeCases) {
  const Fixture f = MakeFixture(2, 1);
  const std::string m = f.manifest;
  auto with = [&](std::string_view from, std::string_view to) {
    std::string s = m;
    const size_t p = s.find(from);
    if (p != std::string::npos) s.replace(p, from.size(), to);
    return s;
  };
  const std::vector<std::string> cases = {
      "",
      " ",
      "{}",
      "[]",
      "null",
      "\"manifest\"",
      "1",
      "{\"type\":1}",
      "\xEF\xBB",
      "\xEF\xBB\xBF",
      "\xEF\xBB\xBF{}",
      " \xEF\xBB\xBF{}",
      with("{", "{\"x\":1e400,"),
      with("{", "{\"x\":-1e400,"),
      with("{", "{\"x\":1e-400,"),
      with("{", "{\"x\":18446744073709551616,"),
      with("{", "{\"x\":-9223372036854775809,"),
      with("{", "{\"x\":01,"),
      with("{", "{\"x\":1.,"),
      with("{", "{\"x\":.5,"),
      with("{", "{\"x\":-,"),
      with("{", "{\"x\":+1,"),
      with("{", "{\"x\":1E+2,"),
      with("{", "{\"x\":-0,"),
      with("{", "{\"x\":tru,"),
      with("{", "{\"x\":nul,"),
      with("{", "{\"x\":True,"),
      with("{", "{\"x\":\"\\ud800\","),
      with("{", "{\"x\":\"\\udc00\","),
      with("{", "{\"x\":\"\\ud800\\u0041\","),
      with("{", "{\"x\":\"\\u12g4\","),
      with("{", "{\"x\":\"\\x\","),
      with("{", "{\"x\":\"a\tb\","),
      with("{", "{\"x\":\"\x7f\","),
      with("{", "{\"x\":\"\xc0\xaf\","),
      with("{", "{\"x\":\"\xed\xa0\x80\","),
      with("{", "{\"x\":\"\xf4\x90\x80\x80\","),
      with("{", "{\"x\":\"\xe2\x82\xac\","),
      with("{", "{\"x\":\"\xf0\x9f\x98\x80\","),
      with("{", "{\"x\":\"\xe2\x82\","),
      with("{", "{\"x\":[1,],"),
      with("{", "{\"x\":{\"a\":1,},"),
      with("{", "{\"x\":[[[[[[[[]]]]]]]],"),
      with("{", "{,"),
      with("{", "{\"x\" 1,"),
      with("{", "{'x':1,"),
      with("{", "{\"\\u0000\":1,"),
      with("\"size\":", "\"size\":-0,\"y\":"),
      with("\"size\":", "\"size\" : "),
      with("\"size\":", "\"size\":\n"),
      with("\"items\":[", "\"items\":[ "),
      with("\"items\":[", "\"items\":{"),
      with("\"items\":[", "\"items\":[1,"),
      with("\"items\":[", "\"items\":[[],"),
      with("\"type\":\"shredd-manifest-v1\"", "\"type\":null"),
      with("\"type\":\"shredd-manifest-v1\",", ""),
      with("\"certificateId\":\"cert-m\"", "\"certificateId\":[]"),
      with("\"merkleRoot\":\"", "\"merkleRoot\":\"0"),
      with("\"merkleRoot\":", "\"merkleRoot\":true,\"z\":"),
      with("\"size\":", "\"size\":12345678901234567890123,\"q\":"),
      with("\"kind\":\"", "\"kind\":\"\\u0070"),
      m + std::string(1, '\0'),
      m + "\n",
      with("{", "{\"order\":5,"),
      with("{", "{\"order\":{\"private\":1},"),
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameVerdict(f.cert, cases[i]);
  }
}

TEST(StreamingManifestDifferential, RandomMutations) {
  const Fixture f = MakeFixture(3, 2);
  const std::string base = json::parse(f.manifest).dump(1);
  std::mt19937_64 rng(20261126);
  const std::string alphabet = "{}[],:\"\\ 0123456789abcdef-.eEtrunlsx\n\x80\xc3\xff";
  int accepted = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string s = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (s.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          if (pos < s.size()) s[pos] = c;
          break;
        case 1:
          s.insert(pos, 1, c);
          break;
        default:
          if (pos < s.size()) s.erase(pos, 1);
          break;
      }
    }
    SCOPED_TRACE(round);
    ExpectSameVerdict(f.cert, s);
    if (VerifyManifestText(f.cert, s).ok()) ++accepted;
    if (HasFatalFailure()) return;
  }
  // Whitespace-only edits keep the manifest valid: some mutants pass.
  EXPECT_GT(accepted, 0);
}

TEST(StreamingManifest, ThousandsOfItemsFromFile) {
  const Fixture f = MakeFixture(3000, 500);
  const std::string path = WriteTemp("large.json", f.manifest);
  ManifestStats stats;
  const absl::Status s = VerifyManifestFile(f.cert, path, &stats, 4096);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(stats.items, 3500u);
  EXPECT_TRUE(dom_reference::VerifyManifest(f.cert, f.manifest).ok());
}

// --- receipts from a manifest (streaming) --------------------------------

// Every item of manifests of 1..70 items: the streamed receipt is the one
// the in-memory commitment builds, from memory and from a file with small
// read pieces, and it verifies against the certificate.
TEST(StreamingReceipt, EqualsTheInMemoryReceiptForEveryItem) {
  for (size_t n : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{8}, size_t{13}, size_t{33}, size_t{70}}) {
    const Fixture f = MakeFixture(n - n / 3, n / 3, "cert-r");
    absl::StatusOr<ItemCommitment> c = ItemCommitment::Create(f.entries);
    ASSERT_TRUE(c.ok());
    const std::string path = WriteTemp("receipt.json", f.manifest);
    for (uint64_t i = 0; i < n; ++i) {
      const std::string& digest = f.entries[i].digest;
      absl::StatusOr<std::string> want = c->ReceiptJson("cert-r", i);
      ASSERT_TRUE(want.ok());
      absl::StatusOr<std::string> got = ReceiptFromManifestText(f.manifest, digest);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, *want) << "n=" << n << " i=" << i;
      absl::StatusOr<std::string> file = ReceiptFromManifestFile(path, digest, 7);
      ASSERT_TRUE(file.ok()) << file.status();
      EXPECT_EQ(*file, *want);
      EXPECT_TRUE(VerifyReceipt(f.cert, *got, digest).ok());
    }
  }
}

TEST(StreamingReceipt, RefusesMissingItemsAndBadManifests) {
  const Fixture f = MakeFixture(6, 1, "cert-x");
  const ItemEntry other = RandomItem("photo", "not in it");
  absl::StatusOr<std::string> r = ReceiptFromManifestText(f.manifest, other.digest);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();

  json swapped = json::parse(f.manifest);
  std::swap(swapped["items"][1], swapped["items"][2]);
  r = ReceiptFromManifestText(swapped.dump(), f.entries[0].digest);
  ExpectFailure(r.status(), "out of tree order");

  json rooted = json::parse(f.manifest);
  rooted["merkleRoot"] = HexEncode(Hash{});
  r = ReceiptFromManifestText(rooted.dump(), f.entries[0].digest);
  ExpectFailure(r.status(), "does not match its stated merkleRoot");

  json bad = json::parse(f.manifest);
  bad["items"][4]["salt"] = "00";
  r = ReceiptFromManifestText(bad.dump(), f.entries[0].digest);
  ExpectFailure(r.status(), "manifest.items[4].salt");

  r = ReceiptFromManifestText(f.manifest.substr(0, f.manifest.size() / 2), f.entries[0].digest);
  ExpectFailure(r.status(), "not valid JSON");

  r = ReceiptFromManifestFile(::testing::TempDir() + "/no-such-manifest.json", f.entries[0].digest);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace shredd::verify
