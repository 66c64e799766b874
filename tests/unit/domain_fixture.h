// The daemon's domain objects over a temp dir, as RunDaemon assembles them
// (file vault, ItemStore, TransparencyLog, Catalog, Shredder, OrderBook),
// without gRPC: the fixture of the Shredder, OrderBook and Catalog tests.
#ifndef SHREDD_TESTS_UNIT_DOMAIN_FIXTURE_H_
#define SHREDD_TESTS_UNIT_DOMAIN_FIXTURE_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/crypto/digest.h"
#include "daemon/items/item_store.h"
#include "daemon/lineage/catalog.h"
#include "daemon/log/transparency_log.h"
#include "daemon/orders/orders.h"
#include "daemon/shred/shredder.h"
#include "formats/certificate.h"
#include "tests/unit/test_util.h"

namespace shredd::testing {

// The file vault with an outage switch: while an outage is set, creating
// or destroying a root fails as an HSM that does not answer does
// (pkcs11: CKR_DEVICE_REMOVED is UNAVAILABLE), before the vault is touched.
// Everything else is the real file vault.
class OutageVault : public Vault {
 public:
  explicit OutageVault(std::unique_ptr<Vault> real) : real_(std::move(real)) {}
  // After `after` more calls that succeed, the next `n` CreateRoot calls fail.
  void FailCreateRoot(int n, int after = 0) {
    std::lock_guard lock(mu_);
    create_after_ = after;
    create_failures_ = n;
  }
  // DestroyRoot fails while set.
  void FailDestroyRoot(bool on) { destroy_fails_.store(on); }

  std::string BackendName() const override { return real_->BackendName(); }
  std::string Describe() const override { return real_->Describe(); }
  absl::StatusOr<std::vector<uint64_t>> ListRoots() override { return real_->ListRoots(); }
  absl::Status CreateRoot(uint64_t epoch) override {
    {
      std::lock_guard lock(mu_);
      if (create_after_ > 0) {
        --create_after_;
      } else if (create_failures_ > 0) {
        --create_failures_;
        return Outage("creating root " + std::to_string(epoch));
      }
    }
    return real_->CreateRoot(epoch);
  }
  absl::Status DestroyRoot(uint64_t epoch) override {
    if (destroy_fails_.load()) return Outage("destroying root " + std::to_string(epoch));
    return real_->DestroyRoot(epoch);
  }
  absl::StatusOr<std::string> WrapWithRoot(uint64_t epoch, std::span<const uint8_t> plaintext,
                                           std::string_view ad) override {
    return real_->WrapWithRoot(epoch, plaintext, ad);
  }
  absl::StatusOr<SecretBytes> UnwrapWithRoot(uint64_t epoch, std::string_view wrapped, std::string_view ad) override {
    return real_->UnwrapWithRoot(epoch, wrapped, ad);
  }
  absl::StatusOr<Ed25519PublicKey> SigningPublicKey() override { return real_->SigningPublicKey(); }
  absl::StatusOr<bool> HasSigningKey() override { return real_->HasSigningKey(); }
  absl::StatusOr<Ed25519Signature> Sign(std::string_view message) override { return real_->Sign(message); }

 private:
  static absl::Status Outage(const std::string& what) {
    return absl::UnavailableError("vault outage (test): " + what + " failed: the token does not answer");
  }
  std::unique_ptr<Vault> real_;
  std::mutex mu_;
  int create_after_ = 0, create_failures_ = 0;
  std::atomic<bool> destroy_fails_{false};
};

// A photo's metadata: one subject and one dataset (either may be empty: none).
inline ItemMetadata Photo(const std::string& subject, const std::string& dataset) {
  ItemMetadata m;
  if (!subject.empty()) m.subject_ids = {subject};
  if (!dataset.empty()) m.datasets = {dataset};
  return m;
}

class Domain {
 public:
  explicit Domain(const std::string& root, Shredder::Options shred_options = {}, OrderRetry order_retry = {})
      : root_(root), order_retry_(order_retry) {
    OpenFaultableVault();
    Open(shred_options);
  }
  ~Domain() { Close(); }

  // Like a restart: everything is closed and opened again over the same dirs.
  void Reopen(Shredder::Options shred_options = {}) {
    Close();
    OpenFaultableVault();
    Open(shred_options);
  }

  // Stores `data` with `metadata`; the digest.
  Sha256 Put(const std::string& data, ItemMetadata metadata = {}) {
    ItemStore::BatchEntry e;
    e.declared = {Sha256Hasher::Of(data), data.size()};
    e.metadata = std::move(metadata);
    e.data = data;
    auto r = store_->PutBatch(std::span<const ItemStore::BatchEntry>(&e, 1));
    EXPECT_TRUE(r[0].ok()) << r[0].status();
    return e.declared.hash;
  }
  Sha256 PutModel(const std::string& data) {
    ItemMetadata m;
    m.kind = ItemKind::kModel;
    return Put(data, m);
  }
  bool Readable(const Sha256& hash) { return store_->Lookup(hash).ok(); }
  // Places a legal hold on a stored item (id empty: the daemon's own).
  absl::Status HoldItem(const Sha256& hash, const std::string& reason, const std::string& id = "") {
    Hold hold;
    hold.id = id;
    hold.digest = ContentDigest{hash, 0};
    hold.reason = reason;
    return catalog_->AddHold(hold).status();
  }

  // Verifies an envelope with the vault's signing key (the offline verifier).
  absl::StatusOr<verify::VerifiedCertificate> Verify(const std::string& envelope) {
    auto pub = shredder_->PublicKey();
    if (!pub.ok()) return pub.status();
    auto key = verify::ParseSpkiPem(pub->spki_pem);
    if (!key.ok()) return key.status();
    return verify::VerifyCertificate(envelope, *key);
  }

  Vault* vault() { return vault_.get(); }
  OutageVault* outage() { return vault_.get(); }
  ItemStore* store() { return store_.get(); }
  TransparencyLog* log() { return log_.get(); }
  Catalog* catalog() { return catalog_.get(); }
  Shredder* shredder() { return shredder_.get(); }
  OrderBook* orders() { return orders_.get(); }
  // Opened by Open(); a Create error is kept here instead of failing it.
  absl::Status open_status;

 private:
  void OpenFaultableVault() { vault_ = std::make_unique<OutageVault>(OpenFileVaultOrDie(root_ + "/vault")); }
  void Open(const Shredder::Options& shred_options) {
    ItemStore::Options o;
    o.data_dir = root_ + "/data";
    auto store = ItemStore::Open(o, vault_.get());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto log = TransparencyLog::Open(store_->db(), vault_.get(), "test.example/log");
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    store_->set_log(log_.get());
    catalog_ = std::make_unique<Catalog>(store_.get());
    auto shredder = Shredder::Create(store_.get(), catalog_.get(), log_.get(), shred_options);
    open_status = shredder.status();
    if (!shredder.ok()) return;
    shredder_ = std::move(*shredder);
    auto orders = OrderBook::Create(store_.get(), catalog_.get(), shredder_.get(), order_retry_);
    ASSERT_TRUE(orders.ok()) << orders.status();
    orders_ = std::move(*orders);
  }
  void Close() {
    orders_.reset();
    shredder_.reset();
    catalog_.reset();
    if (store_) store_->set_log(nullptr);
    log_.reset();
    store_.reset();
    vault_.reset();
  }

  std::string root_;
  OrderRetry order_retry_;
  std::unique_ptr<OutageVault> vault_;
  std::unique_ptr<ItemStore> store_;
  std::unique_ptr<TransparencyLog> log_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Shredder> shredder_;
  std::unique_ptr<OrderBook> orders_;
};

}  // namespace shredd::testing

#endif  // SHREDD_TESTS_UNIT_DOMAIN_FIXTURE_H_
