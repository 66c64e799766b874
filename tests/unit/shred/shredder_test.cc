// Shredder (daemon/shredder.h) without a server: a shred destroys exactly
// what it names and returns a certificate the offline verifier accepts;
// requests are idempotent; held items are refused; a certification left
// pending by a vault that cannot destroy the old root is finished by the
// next start (crash recovery), never lost and never doubled.
#include "daemon/shred/shredder.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/time/clock.h"
#include <gtest/gtest.h>

#include "daemon/base/metrics.h"
#include "daemon/shred/shredder_records.h"
#include "daemon/storage/keyspace.h"
#include "tests/unit/domain_fixture.h"

namespace shredd {
namespace {

using testing::Domain;
using testing::TempDir;

ShredSpec SpecFor(std::vector<Sha256> hashes, std::string request_id = "") {
  ShredSpec s;
  s.hashes = std::move(hashes);
  s.reason = "unit test";
  s.request_id = std::move(request_id);
  return s;
}

TEST(ShredderTest, ShredDestroysExactlyTheNamedItemsWithAVerifiableCertificate) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 a = d.Put("alice's photo"), b = d.Put("bob's photo"), keep = d.Put("carol's photo");
  const uint64_t log_before = d.log()->size();
  auto cert = d.shredder()->Shred(SpecFor({a, b}, "req-1"));
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(cert->item_count, 2u);
  EXPECT_FALSE(d.Readable(a));
  EXPECT_FALSE(d.Readable(b));
  EXPECT_TRUE(d.Readable(keep));
  auto verified = d.Verify(cert->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->certificate_id, cert->certificate_id);
  EXPECT_EQ(verified->item_count, 2u);
  EXPECT_TRUE(verify::VerifyManifest(*verified, cert->manifest).ok());
  EXPECT_EQ(d.log()->size(), log_before + 1);  // the certificate is one log entry
  EXPECT_FALSE(cert->tlog_proof.empty());
  // The public certificate holds no digest of what it destroyed (invariant 6).
  for (const Sha256& h : {a, b}) {
    EXPECT_EQ(cert->envelope.find(ContentDigest{h, 0}.HashString().substr(7)), std::string::npos);
  }
}

TEST(ShredderTest, ARepeatedRequestReturnsItsCertificateAndANewOneIsRefused) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 a = d.Put("a");
  auto first = d.shredder()->Shred(SpecFor({a}, "req-a"));
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t log_after = d.log()->size();
  auto again = d.shredder()->Shred(SpecFor({a}, "req-a"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->certificate_id, first->certificate_id);
  EXPECT_EQ(again->envelope, first->envelope);
  auto other = d.shredder()->Shred(SpecFor({a}, "req-b"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition) << other.status();
  EXPECT_NE(other.status().message().find(first->certificate_id), std::string::npos) << other.status();
  EXPECT_EQ(d.log()->size(), log_after);  // neither call appended anything
  auto by_request = d.shredder()->GetCertificate("", "req-a", CertificateParts::kManifest);
  ASSERT_TRUE(by_request.ok()) << by_request.status();
  EXPECT_EQ(by_request->certificate_id, first->certificate_id);
}

ShredSpec AutoSpec(std::vector<Sha256> hashes, std::string reason) {
  ShredSpec s = SpecFor(std::move(hashes));
  s.reason = std::move(reason);
  return s;
}

// An automatic request id stands for its digests; the reason is bound too,
// as for an id the client gives. The same digests again with another
// reason used to answer OK with the first certificate, stating the first
// reason. A retry with the same reason (also of one left pending, as a
// crash cut leaves it) answers the first certificate, and so does a record
// of an earlier version, which holds no binding (it compares the reason).
TEST(ShredderTest, AnAutomaticRequestIdIsBoundToItsReason) {
  TempDir dir;
  Domain d(dir.path());
  const Sha256 a = d.Put("a"), b = d.Put("b");
  auto first = d.shredder()->Shred(AutoSpec({a}, "art. 17"));
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t log_after = d.log()->size();
  auto again = d.shredder()->Shred(AutoSpec({a}, "art. 17"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->certificate_id, first->certificate_id);
  auto other = d.shredder()->Shred(AutoSpec({a}, "another reason"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
  EXPECT_NE(other.status().message().find(first->certificate_id), std::string::npos) << other.status();
  EXPECT_NE(other.status().message().find("\"art. 17\""), std::string::npos) << other.status();
  EXPECT_EQ(d.log()->size(), log_after);

  // A record written before bindings: the certificate id alone.
  std::string request_key;
  std::unique_ptr<rocksdb::Iterator> it(d.store()->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(keyspace::kRequest); it->Valid() && it->key().starts_with(keyspace::kRequest); it->Next()) {
    if (it->value().starts_with(first->certificate_id)) request_key = it->key().ToString();
  }
  ASSERT_FALSE(request_key.empty());
  ASSERT_TRUE(d.store()->db()->Put(rocksdb::WriteOptions(), request_key, first->certificate_id).ok());
  again = d.shredder()->Shred(AutoSpec({a}, "art. 17"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->certificate_id, first->certificate_id);
  other = d.shredder()->Shred(AutoSpec({a}, "another reason"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
  EXPECT_NE(other.status().message().find("\"art. 17\""), std::string::npos) << other.status();

  // Pending (the old root cannot be destroyed): another reason is refused,
  // naming the pending one's; the same reason answers its certificate once
  // the vault works.
  d.outage()->FailDestroyRoot(true);
  auto pending = d.shredder()->Shred(AutoSpec({b}, "contract ended"));
  ASSERT_EQ(pending.status().code(), absl::StatusCode::kUnavailable) << pending.status();
  other = d.shredder()->Shred(AutoSpec({b}, "another reason"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
  EXPECT_NE(other.status().message().find("\"contract ended\""), std::string::npos) << other.status();
  d.outage()->FailDestroyRoot(false);
  auto retried = d.shredder()->Shred(AutoSpec({b}, "contract ended"));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->item_count, 1u);
  auto verified = d.Verify(retried->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
}

// A digest is its hash and its size: a declared size that is not the
// stored item's is refused and nothing is shredded (it used to be ignored).
TEST(ShredderTest, ADeclaredSizeThatIsNotTheStoredItemsIsRefused) {
  TempDir dir;
  Domain d(dir.path());
  const std::string data(300, 'x');
  const Sha256 a = d.Put(data), b = d.Put("b");
  const uint64_t log_before = d.log()->size();
  ShredSpec wrong = SpecFor({b, a});
  wrong.sizes = {0, 7};  // b: not given
  auto refused = d.shredder()->Shred(wrong);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("stored with size 300, not 7"), std::string::npos) << refused.status();
  EXPECT_TRUE(d.Readable(a));
  EXPECT_TRUE(d.Readable(b));
  EXPECT_EQ(d.log()->size(), log_before);
  ShredSpec right = SpecFor({b, a});
  right.sizes = {1, 300};
  auto cert = d.shredder()->Shred(right);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(cert->item_count, 2u);
}

TEST(ShredderTest, UnknownOrHeldItemsAreRefusedAndNothingIsShredded) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 a = d.Put("a"), held = d.Put("held");
  const uint64_t log_before = d.log()->size();
  auto unknown = d.shredder()->Shred(SpecFor({a, Sha256Hasher::Of("never stored")}));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  ASSERT_TRUE(d.HoldItem(held, "litigation", "hold-1").ok());
  const uint64_t log_held = d.log()->size();
  auto refused = d.shredder()->Shred(SpecFor({a, held}));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("hold-1"), std::string::npos) << refused.status();
  EXPECT_TRUE(d.Readable(a));
  EXPECT_TRUE(d.Readable(held));
  EXPECT_EQ(d.log()->size(), log_held);
  EXPECT_GE(log_held, log_before);
}

TEST(ShredderTest, ADestructionOfManyEpochsIsOneCertificate) {
  TempDir dir;
  Shredder::Options o;
  o.epoch_items = 3;
  o.manifest_chunk_items = 2;
  Domain d(dir.path(), o);
  std::vector<Sha256> items;
  for (int i = 0; i < 10; ++i) items.push_back(d.Put("item " + std::to_string(i)));
  const uint64_t epoch_before = d.store()->key_tree().epoch();
  auto cert = d.shredder()->Shred(SpecFor(items, "req-many"));
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(cert->item_count, 10u);
  EXPECT_GE(d.store()->key_tree().epoch(), epoch_before + 4);  // ceil(10 / 3) epochs
  for (const auto& h : items) EXPECT_FALSE(d.Readable(h));
  auto verified = d.Verify(cert->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verify::VerifyManifest(*verified, cert->manifest).ok());
}

// A stored manifest chunk is one RocksDB value, which RocksDB holds whole in
// one block wherever it reads it: with 20,000 items a chunk was 3.7 MB and a
// 3,000,000-item order's compactions took the daemon to 280 MiB
// (docs/CONFIG.md, manifest_chunk_items). The default keeps them small.
TEST(ShredderTest, TheDefaultManifestChunksAreSmallRocksDbValues) {
  TempDir dir;
  Domain d(dir.path());
  std::vector<Sha256> items;
  for (int i = 0; i < 1500; ++i) items.push_back(d.Put("photo " + std::to_string(i)));
  auto cert = d.shredder()->Shred(SpecFor(items, "req-chunks"));
  ASSERT_TRUE(cert.ok()) << cert.status();
  size_t chunks = 0;
  for (;; ++chunks) {
    std::string value;
    auto s = d.store()->db()->Get(rocksdb::ReadOptions(),
                                  shred_internal::ManifestChunkKey(cert->certificate_id, static_cast<uint32_t>(chunks)),
                                  &value);
    if (s.IsNotFound()) break;
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_LE(value.size(), 256u << 10) << "manifest chunk " << chunks;
  }
  EXPECT_EQ(chunks, 2u);  // 1,000 + 500 items
  auto verified = d.Verify(cert->envelope);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verify::VerifyManifest(*verified, cert->manifest).ok());
}

// Receipts are built in memory, ~1.6 KB each: a certificate over
// receipt_items is refused them, and a Shred that asks for them for too many
// items is refused before anything is destroyed.
TEST(ShredderTest, ReceiptsAreServedOnlyForSmallCertificates) {
  TempDir dir;
  Shredder::Options o;
  o.receipt_items = 2;
  Domain d(dir.path(), o);
  Sha256 a = d.Put("a"), b = d.Put("b"), c = d.Put("c");
  ShredSpec three = SpecFor({a, b, c}, "req-three");
  three.include_receipts = true;
  auto refused = d.shredder()->Shred(three);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("nothing was shredded"), std::string::npos) << refused.status();
  for (const Sha256& h : {a, b, c}) EXPECT_TRUE(d.Readable(h));
  ShredSpec two = SpecFor({a, b, a}, "req-two");  // duplicates count once
  two.include_receipts = true;
  auto small = d.shredder()->Shred(two);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->receipts.size(), 2u);
  auto plain = d.shredder()->Shred(SpecFor({c}, "req-c"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  Sha256 e = d.Put("e"), f = d.Put("f"), g = d.Put("g");
  auto big = d.shredder()->Shred(SpecFor({e, f, g}, "req-big"));
  ASSERT_TRUE(big.ok()) << big.status();
  auto with_receipts = d.shredder()->GetCertificate(big->certificate_id, "", CertificateParts::kManifestAndReceipts);
  EXPECT_EQ(with_receipts.status().code(), absl::StatusCode::kFailedPrecondition) << with_receipts.status();
  EXPECT_NE(with_receipts.status().message().find("(issued)"), std::string::npos) << with_receipts.status();
  auto without = d.shredder()->GetCertificate(big->certificate_id, "", CertificateParts::kManifest);
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(without->item_count, 3u);
  EXPECT_FALSE(without->manifest.empty());
  // The envelope alone (an auditor's fetch, a lookup by request id): the
  // manifest is neither read nor leased for.
  bool asked = false;
  auto envelope = d.shredder()->GetCertificate("", "req-big", CertificateParts::kEnvelope, [&](uint64_t) {
    asked = true;
    return absl::OkStatus();
  });
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  EXPECT_FALSE(asked);
  EXPECT_EQ(envelope->certificate_id, big->certificate_id);
  EXPECT_EQ(envelope->envelope, without->envelope);
  EXPECT_EQ(envelope->item_count, 3u);
  EXPECT_TRUE(envelope->manifest.empty());
  EXPECT_FALSE(envelope->manifest_omitted);
}

bool Chattr(const char* flag, const std::string& path) {
  return std::system(("chattr " + std::string(flag) + " '" + path + "' 2>/dev/null").c_str()) == 0;
}

std::vector<std::string> RootFiles(const std::string& vault_dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(vault_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("root-", 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

TEST(ShredderTest, APendingCertificationIsFinishedByTheNextStart) {
  TempDir dir;
  Domain d(dir.path());
  Sha256 a = d.Put("a");
  auto roots = RootFiles(dir / "vault");
  ASSERT_EQ(roots.size(), 1u);
  if (geteuid() != 0 || !Chattr("+i", roots[0])) GTEST_SKIP() << "needs root and chattr +i";
  // The old root cannot be destroyed: the destruction commits, the
  // certificate waits (no certificate may exist while the old root does).
  auto cert = d.shredder()->Shred(SpecFor({a}, "req-pending"));
  EXPECT_FALSE(cert.ok());
  EXPECT_FALSE(d.Readable(a));  // destroyed all the same
  auto pending = d.shredder()->GetCertificate("", "req-pending", CertificateParts::kManifest);
  EXPECT_EQ(pending.status().code(), absl::StatusCode::kUnavailable) << pending.status();
  // A start with the vault still broken comes up and keeps it pending.
  d.Reopen();
  ASSERT_TRUE(d.open_status.ok()) << d.open_status;
  EXPECT_EQ(d.shredder()->GetCertificate("", "req-pending", CertificateParts::kManifest).status().code(),
            absl::StatusCode::kUnavailable);
  // The vault works again: the next start issues the certificate, once.
  ASSERT_TRUE(Chattr("-i", roots[0]));
  const uint64_t log_before = d.log()->size();
  d.Reopen();
  ASSERT_TRUE(d.open_status.ok()) << d.open_status;
  auto issued = d.shredder()->GetCertificate("", "req-pending", CertificateParts::kManifest);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->item_count, 1u);
  ASSERT_TRUE(d.Verify(issued->envelope).ok());
  EXPECT_EQ(d.log()->size(), log_before + 1);
  EXPECT_EQ(RootFiles(dir / "vault").size(), 1u);  // the old root is gone, the new one stays
  auto again = d.shredder()->Shred(SpecFor({a}, "req-pending"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->certificate_id, issued->certificate_id);
}

// A destruction of two one-item epochs: the first commits, the vault then
// stops creating roots, and the second item stays staged, pending. A
// second shred of that item meanwhile (the vault answering again, after
// the pending destruction's own retry failed once more) used to stage,
// destroy and certify it too: two certificates for one item, and the
// pending retry shredding its key-tree slot again. It is refused, naming
// the pending certificate, and the item is certified once, by it.
TEST(ShredderTest, AnItemStagedByAPendingDestructionIsNotShreddedByAnother) {
  TempDir dir;
  Shredder::Options o;
  o.epoch_items = 1;
  o.pending_retry.initial = o.pending_retry.max = std::chrono::hours(1);  // retried when asked only
  Domain d(dir.path(), o);
  Sha256 a = d.Put("a"), b = d.Put("b");
  const uint64_t failures = Metrics().pending_certification_failures.value();
  d.outage()->FailCreateRoot(1 << 30, 1);  // the first epoch's root, then none
  auto first = d.shredder()->Shred(SpecFor({a, b}, "req-first"));
  ASSERT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
  const std::string msg(first.status().message());
  const std::string cert_id = msg.substr(12, msg.find(' ', 12) - 12);  // "certificate <id> is not issued yet"
  // The retry the failure started has failed too (and now waits an hour).
  for (int i = 0; i < 500 && Metrics().pending_certification_failures.value() < failures + 2; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(Metrics().pending_certification_failures.value(), failures + 2);
  EXPECT_FALSE(d.Readable(a));
  EXPECT_TRUE(d.Readable(b));  // staged, not destroyed yet
  // The vault fails once more (the pending destruction's attempt inside
  // the next shred), then answers.
  d.outage()->FailCreateRoot(1);
  auto second = d.shredder()->Shred(SpecFor({b}, "req-second"));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_NE(second.status().message().find("is being destroyed by certificate " + cert_id), std::string::npos)
      << second.status();
  EXPECT_EQ(d.shredder()->PhaseOf("req-second").value_or(Shredder::Phase::kCertified), Shredder::Phase::kNotBegun);
  EXPECT_TRUE(d.Readable(b));
  // The pending destruction finishes: one certificate for both items.
  auto issued = d.shredder()->GetCertificate("", "req-first", CertificateParts::kManifest);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->item_count, 2u);
  EXPECT_FALSE(d.Readable(b));
  auto again = d.shredder()->Shred(SpecFor({b}, "req-second"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  EXPECT_NE(again.status().message().find(cert_id), std::string::npos) << again.status();
}

}  // namespace
}  // namespace shredd
