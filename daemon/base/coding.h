// Byte and time encodings shared by the daemon's records: the one home for
// big-endian integers and RFC 3339 timestamps (after LevelDB's
// util/coding.h).
//
// Big-endian ("network order") fixed-width integers appear in RocksDB keys
// (so that keys of the same prefix sort by number), item records, AEAD
// associated data and nonces, and the log's stored entries. These bytes are
// on-disk formats: the functions never change their output.
#ifndef SHREDD_DAEMON_BASE_CODING_H_
#define SHREDD_DAEMON_BASE_CODING_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace shredd {

// Writes `v` at p[0..3] / p[0..7], most significant byte first.
inline void StoreBigEndian32(void* p, uint32_t v) {
  auto* b = static_cast<unsigned char*>(p);
  for (int i = 3; i >= 0; --i, v >>= 8) b[i] = static_cast<unsigned char>(v & 0xff);
}
inline void StoreBigEndian64(void* p, uint64_t v) {
  auto* b = static_cast<unsigned char*>(p);
  for (int i = 7; i >= 0; --i, v >>= 8) b[i] = static_cast<unsigned char>(v & 0xff);
}

// Reads p[0..3] / p[0..7] as written by StoreBigEndian32/64. The caller
// guarantees that the bytes are there.
inline uint32_t LoadBigEndian32(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | b[i];
  return v;
}
inline uint64_t LoadBigEndian64(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}
// The first 8 bytes of `s` (s.size() >= 8).
inline uint64_t ReadBigEndian64(std::string_view s) { return LoadBigEndian64(s.data()); }

// `v` as 4 / 8 bytes, for building keys and records with StrCat.
inline std::string BigEndian32(uint32_t v) {
  std::string s(4, '\0');
  StoreBigEndian32(s.data(), v);
  return s;
}
inline std::string BigEndian64(uint64_t v) {
  std::string s(8, '\0');
  StoreBigEndian64(s.data(), v);
  return s;
}
inline void AppendBigEndian64(std::string* out, uint64_t v) { out->append(BigEndian64(v)); }

// RFC 3339 in UTC with a "Z": "2026-01-02T03:04:05.678Z" (kMillis, three
// digits always) or "2026-01-02T03:04:05Z" (kSeconds, the fraction dropped).
// Certificates, custody records, log entries and event logs use kMillis;
// an order's default "received" time uses kSeconds, as order records and
// their certificates have since the first version (docs/ORDERS.md).
enum class TimePrecision { kMillis, kSeconds };
std::string FormatRfc3339(absl::Time t, TimePrecision precision = TimePrecision::kMillis);

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_CODING_H_
