// Writes the seed inputs of every fuzz target into DIR/<target>/seed-*
// (fuzz/make-corpus.sh runs it for fuzz/corpus). Valid inputs come from the
// deterministic fixture (fuzz_fixture.h), invalid ones are hand-made edge
// cases. Re-running it produces identical files.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/items/item_record.h"
#include "daemon/items/metadata_codec.h"
#include "daemon/shred/pending_record.h"
#include "formats/dsse.h"
#include "fuzz/fuzz_fixture.h"

namespace fs = std::filesystem;
using namespace shredd;

namespace {

fs::path g_out;
int g_files = 0;

void Seed(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_out / target;
  fs::create_directories(dir);
  std::ofstream(dir / ("seed-" + name), std::ios::binary) << bytes;
  ++g_files;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t pos = s.find(from);
  if (pos == std::string::npos) {
    std::fprintf(stderr, "fuzz_seeds: \"%s\" not found\n", from.c_str());
    std::exit(1);
  }
  return s.replace(pos, from.size(), to);
}

std::string Envelope(const std::string& type, const std::string& payload, const std::vector<verify::Signature>& sigs) {
  verify::Envelope e;
  e.payload_type = type;
  e.payload = payload;
  e.signatures = sigs;
  return verify::SerializeEnvelope(e);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  const fuzz::Fixture& f = fuzz::GetFixture();
  const std::string type(verify::kCertificatePayloadType);
  const std::string pae = verify::PreAuthEncoding(type, f.statement);
  const std::string sig = verify::SignEd25519(f.secret(), pae);

  // dsse
  Seed("dsse", "valid", f.envelope);
  Seed("dsse", "no-keyid", Envelope(type, f.statement, {{"", sig}}));
  Seed("dsse", "two-sigs", Envelope(type, "hello", {{"k1", "abc"}, {"", std::string(64, '\0')}}));
  Seed("dsse", "empty-payload", Envelope("t", "", {{"", "x"}}));
  Seed("dsse", "no-sigs", R"({"payloadType":"t","payload":"aGk=","signatures":[]})");
  Seed("dsse", "bad-b64", R"({"payloadType":"t","payload":"aGk","signatures":[{"sig":"AA=="}]})");
  Seed("dsse", "keyid-number", R"({"payloadType":"t","payload":"","signatures":[{"keyid":7,"sig":""}]})");
  Seed("dsse", "array", R"([{"payloadType":"t"}])");
  Seed("dsse", "unicode",
       "{\"payloadType\":\"\\u00e9\\ud83d\\ude00\",\"payload\":\"\",\"extra\":[1,2,{}],"
       "\"signatures\":[{\"sig\":\"\"}]}");

  Seed("dsse", "trailing-nul", f.envelope + std::string("\0", 1) + f.envelope);
  Seed("dsse", "duplicate-payload", Replace(f.envelope, "\"payload\":", "\"payload\":\"aGk=\",\"payload\":"));
  Seed("dsse", "duplicate-sig", Replace(f.envelope, "\"sig\":", "\"sig\":\"AA==\",\"sig\":"));

  // strict_json
  Seed("strict_json", "nested", R"({"a":{"k":1},"b":[{"k":2},{"k":[true,null,-1.5e3]}],"c":"\u00e9"})");
  Seed("strict_json", "duplicate", R"({"a":1,"b":{"x":1,"x":2}})");
  Seed("strict_json", "escaped-duplicate", R"({"ab":1,"a\u0062":2})");
  Seed("strict_json", "trailing", std::string(R"({"a":1})") + std::string("\0{\"a\":2}", 8));

  // certificate: envelopes and bare statements (the target signs those)
  Seed("certificate", "valid", f.envelope);
  Seed("certificate", "statement", f.statement);
  Seed("certificate", "wrong-type", Envelope("text/plain", f.statement, {{"", sig}}));
  Seed("certificate", "wrong-keyid", Envelope(type, f.statement, {{"shredd:00", sig}}));
  Seed("certificate", "tampered", Envelope(type, Replace(f.statement, "purge", "clear"), {{"", sig}}));
  {
    nlohmann::ordered_json st = nlohmann::ordered_json::parse(f.statement);
    auto& p = st["predicate"];
    nlohmann::ordered_json z = st;
    const std::string empty_root = verify::HexEncode(verify::EmptyRoot());
    z["predicate"]["items"] = {{"count", 0},
                               {"byKind", {{"photo", 0}, {"model", 0}}},
                               {"merkleRoot", empty_root},
                               {"leafFormat", "shredd-item-v1"}};
    z["subject"][0]["digest"]["sha256"] = empty_root;
    Seed("certificate", "statement-empty", z.dump());
    nlohmann::ordered_json t = st;
    t["predicate"]["times"]["issued"] = "2026-11-26T04:27:09Z";
    Seed("certificate", "statement-issued-before-destroyed", t.dump());
    t = st;
    t["predicate"]["times"]["destroyed"] = "2026-02-30T25:61:60.9999999999999999999999999999999999Z";
    Seed("certificate", "statement-bad-time", t.dump());
    t = st;
    t["predicate"]["items"]["count"] = 18446744073709551615ull;
    Seed("certificate", "statement-count-overflow", t.dump());
    t = st;
    t["predicate"]["items"]["byKind"] = {{"photo", 18446744073709551615ull}, {"model", 6}};
    Seed("certificate", "statement-bykind-overflow", t.dump());
    t = st;
    t["subject"].push_back(t["subject"][0]);
    Seed("certificate", "statement-two-subjects", t.dump());
    t = st;
    t["predicate"]["log"] = {{"index", 12}, {"checkpoint", "x"}};
    Seed("certificate", "statement-log", t.dump());
    (void)p;
  }

  // manifest (against the fixture certificate)
  Seed("manifest", "valid", f.manifest);
  {
    nlohmann::ordered_json m = nlohmann::ordered_json::parse(f.manifest);
    nlohmann::ordered_json t = m;
    t.erase("order");
    Seed("manifest", "no-order", t.dump());
    t = m;
    std::swap(t["items"][0], t["items"][1]);
    Seed("manifest", "out-of-order", t.dump());
    t = m;
    t["items"][1] = t["items"][0];
    Seed("manifest", "duplicate", t.dump());
    t = m;
    t["items"].erase(t["items"].size() - 1);
    Seed("manifest", "missing-item", t.dump());
    t = m;
    t["order"]["private"] = "{\"requester\":\"someone else\"}";
    Seed("manifest", "altered-order", t.dump());
    t = m;
    t["items"][2]["size"] = -1;
    Seed("manifest", "negative-size", t.dump());
    t = m;
    t["items"][0]["kind"] = "model";
    Seed("manifest", "wrong-kind", t.dump());
  }
  Seed("manifest", "not-json", "{\"type\":\"shredd-manifest-v1\",\"items\":[");

  // dataset_manifest (shredctl log audit's input)
  {
    const std::string salt(64, 'a');
    nlohmann::ordered_json m = {{"type", "shredd-dataset-manifest-v1"},
                                {"dataset", "faces"},
                                {"datasetSalt", std::string(64, 'b')},
                                {"members", nlohmann::ordered_json::array()}};
    m["members"].push_back({{"digest", "sha256:" + std::string(64, 'c')},
                            {"size", 3},
                            {"kind", "photo"},
                            {"custodySalt", salt},
                            {"custodyIndex", 4},
                            {"memberIndex", 4},
                            {"deletion", nullptr}});
    m["members"].push_back({{"digest", "sha256:" + std::string(64, 'd')},
                            {"size", 5},
                            {"kind", "model"},
                            {"custodySalt", salt},
                            {"custodyIndex", 5},
                            {"memberIndex", 6},
                            {"deletion", {{"certificateId", "cert-1"}, {"logIndex", 9}}}});
    Seed("dataset_manifest", "valid", m.dump());
    nlohmann::ordered_json t = m;
    t["members"][1]["deletion"]["logIndex"] = "9";
    Seed("dataset_manifest", "string-log-index", t.dump());
    t = m;
    t["members"][0] = nlohmann::ordered_json::array();
    Seed("dataset_manifest", "member-array", t.dump());
    Seed("dataset_manifest", "truncated", m.dump().substr(0, 80));
    Seed("dataset_manifest", "entry", "{\"type\":\"item-stored\",\"item\":\"x\",\"datasets\":[\"y\"]}");
  }

  // receipt
  for (size_t i = 0; i < f.receipts.size(); ++i) Seed("receipt", "valid-" + std::to_string(i), f.receipts[i]);
  {
    nlohmann::ordered_json r = nlohmann::ordered_json::parse(f.receipts[2]);
    nlohmann::ordered_json t = r;
    t["leafIndex"] = 3;
    Seed("receipt", "wrong-index", t.dump());
    t = r;
    t["treeSize"] = 18446744073709551615ull;
    Seed("receipt", "huge-size", t.dump());
    t = r;
    t["inclusionPath"].push_back(t["inclusionPath"][0]);
    Seed("receipt", "long-path", t.dump());
    t = r;
    t["inclusionPath"] = nlohmann::ordered_json::array({1, 2});
    Seed("receipt", "path-numbers", t.dump());
  }
  Seed("receipt", "trailing-nul", f.receipts[2] + std::string("\0", 1) + f.receipts[3]);
  Seed("receipt", "duplicate-index", Replace(f.receipts[2], "\"leafIndex\":", "\"leafIndex\":0,\"leafIndex\":"));

  // checkpoint: signed notes, checkpoint texts
  Seed("checkpoint", "signed", f.checkpoint);
  Seed("checkpoint", "signed-small", f.small_checkpoint);
  Seed("checkpoint", "text", f.checkpoint.substr(0, f.checkpoint.find("\n\n") + 1));
  {
    const std::string text = f.checkpoint.substr(0, f.checkpoint.find("\n\n") + 1);
    const std::string ext = text + "extension line one\nsecond extension\n";
    Seed("checkpoint", "signed-extensions", verify::SignNoteEd25519(ext, fuzz::kLogOrigin, f.secret()));
    Seed("checkpoint", "text-extensions", ext);
    std::array<uint8_t, 64> other{};
    std::array<uint8_t, 32> seed;
    seed.fill(0x11);
    verify::PublicKey opub;
    crypto_sign_seed_keypair(opub.data(), other.data(), seed.data());
    const verify::SecretKeySpan osk(other.data(), other.size());
    std::string cosigned =
        f.checkpoint + verify::SignNoteEd25519(text, "witness.example/w1", osk).substr(text.size() + 1);
    Seed("checkpoint", "cosigned", cosigned);
    Seed("checkpoint", "wrong-key", verify::SignNoteEd25519(text, fuzz::kLogOrigin, osk));
    Seed("checkpoint", "leading-zero", Replace(text, "\n13\n", "\n013\n"));
    Seed("checkpoint", "size-overflow", Replace(text, "\n13\n", "\n18446744073709551616\n"));
  }
  Seed("checkpoint", "go-note",
       "If you think cryptography is the answer to your problem,\n"
       "then you don't know what your problem is.\n\n"
       "\xe2\x80\x94 PeterNeumann "
       "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
  Seed("checkpoint", "bad-utf8", "o\xc3\x28\n1\nAAAA\n\n\xe2\x80\x94 o AAAAAAAA\n");

  // tlog-proof
  for (size_t i : {0, 3, 7, 12}) Seed("tlog_proof", "valid-" + std::to_string(i), f.proofs[i]);
  Seed("tlog_proof", "truncated-path", Replace(f.proofs[7], "index 7\n", "index 7\n\n"));
  Seed("tlog_proof", "index-beyond", Replace(f.proofs[12], "index 12\n", "index 13\n"));
  Seed("tlog_proof", "no-checkpoint", f.proofs[0].substr(0, f.proofs[0].find("\n\n") + 2));
  Seed("tlog_proof", "bad-extra", Replace(f.proofs[3], "extra ", "extra ==="));

  // merkle: m, n (little-endian u64), selector, hashes
  {
    auto bin = [](uint64_t m, uint64_t n, uint8_t sel, int hashes) {
      std::string s(reinterpret_cast<const char*>(&m), 8);
      s.append(reinterpret_cast<const char*>(&n), 8);
      s.push_back(static_cast<char>(sel));
      for (int i = 0; i < hashes; ++i) s.append(32, static_cast<char>(0x30 + i));
      return s;
    };
    Seed("merkle", "small", bin(3, 7, 1, 4));
    Seed("merkle", "max", bin(~0ull, ~0ull, 255, 66));
    Seed("merkle", "pow2", bin(1ull << 62, 1ull << 63, 7, 10));
    Seed("merkle", "zero", bin(0, 0, 0, 2));
  }

  // keys
  Seed("keys", "pem", f.pem);
  Seed("keys", "vkey", f.vkey + "\n");
  Seed("keys", "go-vkey", "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  Seed("keys", "rsa-pem",
       "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf\n"
       "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END PUBLIC KEY-----\n");
  Seed("keys", "pem-garbage", "junk\n-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n");
  Seed("keys", "vkey-bad-hash", "shredd.local+00000000+AQ==");

  // encoding
  Seed("encoding", "b64", "aGVsbG8gd29ybGQ=");
  Seed("encoding", "b64-nonzero-bits", "aGk=aGl=");
  Seed("encoding", "hex", verify::HexEncode(verify::Sha256("x")));
  Seed("encoding", "hex-upper", "ABCDEF0123");

  // digest
  Seed("digest", "valid", fuzz::DigestOf("photo 1"));
  Seed("digest", "upper", "sha256:" + std::string(64, 'A'));
  Seed("digest", "short", "sha256:abc");
  {
    ContentDigest d;
    for (size_t i = 0; i < d.hash.size(); ++i) d.hash[i] = static_cast<uint8_t>(i * 7);
    ItemMetadata m;
    m.subject_ids = {"alice", "bob"};
    m.datasets = {"faces-2014"};
    m.labels = {{"age", "31"}, {"sex", "f"}};
    m.name = "IMG_0001.jpg";
    const std::string bin = EncodeMetadata(d, m);
    Seed("metadata", "binary", bin);
    Seed("metadata", "binary-empty", EncodeMetadata(d, ItemMetadata{}));
    Seed("metadata", "json", EncodeMetadataJson(d, m));
    Seed("metadata", "truncated", bin.substr(0, bin.size() - 3));
    Seed("metadata", "dup-label",
         std::string(1, '\x01') + std::string(32, 'h') + std::string("\x00\x00\x02\x01k\x01v\x01k\x01w\x00", 12));
  }
  Seed("digest", "sha512", "sha512:" + std::string(128, 'a'));

  // item records
  {
    const ItemRecordHeader h{ItemKind::kModel, true, 1 << 20, 77, 123456789, 1700000000000000000, "0123456789abcdef"};
    const std::string rec = EncodeItemRecord(h, std::string(40, 's'));
    Seed("item_record", "model-blob", rec);
    Seed("item_record", "photo-inline",
         EncodeItemRecord(ItemRecordHeader{ItemKind::kPhoto, false, 65536, 1, 10, 0, "fedcba9876543210"}, ""));
    Seed("item_record", "truncated", rec.substr(0, kItemRecordHeaderSize - 1));
    Seed("item_record", "version-2", Replace(rec, std::string(1, '\x01'), std::string(1, '\x02')));
  }

  // pending certification records
  {
    PendingRecord p;
    p.request_id = "req-1";
    p.reason = "erasure request";
    p.requested = "2026-01-02T03:04:05.678Z";
    p.vault = "file";
    p.order_id = "ftc-1";
    p.suppressed_by = "cert-1";
    p.planned = 3;
    p.destroyed = 2;
    p.destroyed_epoch = 4;
    p.installed_epoch = 5;
    p.order = nlohmann::json{{"id", "ftc-1"}, {"basis", "ftc-order"}};
    p.order_private = "{}";
    p.order_salt = std::string(64, 'a');
    const std::string text = EncodePendingRecord(p);
    Seed("pending_record", "full", text);
    Seed("pending_record", "bare", EncodePendingRecord(PendingRecord{}));
    Seed("pending_record", "planned-string", Replace(text, "\"planned\":3", "\"planned\":\"3\""));
    Seed("pending_record", "array", "[" + text + "]");
  }

  // config (TOML)
  Seed("config", "empty", "");
  Seed("config", "full",
       "# shredd config\n"
       "[server]\n"
       "data_dir = \"/var/lib/shredd/data\"\n"
       "vault = \"file:/var/lib/shredd-vault\"\n"
       "listen = [\"unix:/run/shredd/shredd.sock\", \"tcp:127.0.0.1:7443\"]\n"
       "log_origin = \"example.com/shredd\"\n"
       "inline_threshold = 65536\n"
       "metrics_listen = \"127.0.0.1:9464\"\n"
       "log_format = \"json\"\n"
       "\n[tls]\n"
       "cert = \"/etc/shredd/server.pem\"\nkey = \"/etc/shredd/server.key\"\nclient_ca = \"/etc/shredd/ca.pem\"\n"
       "\n[[roles.local]]\nuid = 0\nroles = [\"admin\", \"writer\", \"deleter\", \"auditor\"]\n"
       "\n[[roles.local]]\nuid = 1000\nroles = [\"writer\"]\n"
       "\n[[roles.tls]]\nsubject = \"CN=regulator,O=FTC\"\nroles = [\"auditor\"]\n"
       "\n[[roles.tls]]\nsan = \"ops.example.com\"\nsubject = \"CN=ops\"\nroles = [\"deleter\"]\n");
  Seed("config", "pkcs11",
       "[server]\nvault = \"pkcs11:token=shredd;pin-value=1234?module-path=/usr/lib/softhsm/libsofthsm2.so\"\n");
  Seed("config", "unknown-key", "[server]\ndata_dirs = \"x\"\n");
  Seed("config", "wrong-type", "[server]\ninline_threshold = \"big\"\nlisten = 7\n");
  Seed("config", "bad-role", "[[roles.local]]\nuid = -1\nroles = [\"root\", \"writer\", \"writer\"]\n");
  Seed("config", "dup-uid",
       "[[roles.local]]\nuid = 5\nroles = [\"writer\"]\n[[roles.local]]\nuid = 5\nroles = [\"admin\"]\n");
  Seed("config", "tcp-no-tls", "[server]\nlisten = [\"tcp:0.0.0.0:7443\", \"tcp:[::1]:1\", \"unix:\"]\n");
  Seed("config", "syntax", "[server\ndata_dir = \"unterminated\n[[roles.tls]]\nroles = []\n");
  Seed("config", "inline-tables",
       "server = { data_dir = \"d\", inline_threshold = 18446744073709551615 }\n"
       "roles = { local = [ { uid = 4294967296, roles = [\"admin\"] } ] }\n");

  std::printf("fuzz_seeds: wrote %d seed files under %s\n", g_files, g_out.c_str());
  return 0;
}
