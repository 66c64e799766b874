// The object-store BlobBackend: ciphertext objects in an S3-compatible bucket
// (AWS S3, Ceph RGW, ...) through S3Client.
//
// Keys are PREFIX/ + the object id the caller gives (item_store's ids are
// random hex: a key reveals nothing about the item). No metadata headers are
// set on objects. Tampering is caught above (AEAD); a reader only reports
// short or vanished objects, as DATA_LOSS.
//
// Writers buffer one part (options.part_size) and upload full parts by
// multipart upload, at most options.concurrency in flight, so a writer holds
// at most (concurrency + 1) parts in memory whatever the object's size; an
// object smaller than one part is one PutObject at Publish(). Publish()
// returns once the store has answered the final PutObject or
// CompleteMultipartUpload (S3 acknowledges only durable writes). Destroying
// an unpublished writer aborts its multipart upload. An object may have at
// most 10,000 parts: part_size * 10,000 bytes (16 MiB parts: 156 GiB).
//
// Delete removes every version of the object and every delete marker (a plain
// DELETE on a versioned bucket would only hide it). CollectGarbage aborts the
// multipart uploads of keys directly under the prefix that this backend is
// not running (left by a crash), and deletes, with all their versions, the
// objects directly under the prefix whose id is not live. Keys with a
// further '/' below the prefix are not blobs and are left alone, uploads
// included: another daemon may own them (its prefix below this one's).
#ifndef SHREDD_DAEMON_STORAGE_BLOB_BACKEND_S3_H_
#define SHREDD_DAEMON_STORAGE_BLOB_BACKEND_S3_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

#include "daemon/storage/blob_backend.h"
#include "daemon/storage/s3_client.h"

namespace shredd {

struct S3BlobOptions {
  uint64_t part_size = 16 << 20;  // 5 MiB .. 5 GiB (S3's limits for all parts but the last)
  int concurrency = 4;            // parts in flight per writer, 1..64
};

inline constexpr uint64_t kS3MinPartSize = 5 << 20;
inline constexpr uint64_t kS3MaxPartSize = uint64_t{5} << 30;
inline constexpr int kS3MaxParts = 10000;

// Makes no request (a bad endpoint or key shows at the first call).
absl::StatusOr<std::unique_ptr<BlobBackend>> OpenS3BlobBackend(std::shared_ptr<S3Client> client,
                                                               S3BlobOptions options = {});

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_BLOB_BACKEND_S3_H_
