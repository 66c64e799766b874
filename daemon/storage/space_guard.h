// Free-space guard: RocksDB never meets a full disk through shredd's writes
// (issue 12, defect 7; docs/SERVICE.md "Full disk").
//
// Why: once a WAL append fails with ENOSPC, Debian's librocksdb (built with
// assertions) aborts the process on the next write to the same WAL writer
// (writable_file_writer.h: `sync_without_flush_called_`), and a release
// build would leave the writer poisoned until a memtable switch. No retry
// policy above RocksDB can make that path safe, so shredd keeps it out of
// reach: every foreground write is checked against the free space of the
// data dir's filesystem first and refused with RESOURCE_EXHAUSTED (nothing
// written, nothing logged) below a floor:
//   - writes that add data (puts, tags, lineage, datasets) below
//     `min_free_bytes` ([storage] min_free_mib);
//   - erasure writes (shred plans and epochs, certificates, manifests,
//     orders, legal holds (the brake on deletion must work wherever deletion
//     does), and the log entries they append), marked by an ErasureWrites
//     scope on the writing thread, only below a quarter of it: deleting
//     must still work on a disk that ingest has filled up to the floor.
// What is left: another process that takes the last free bytes between the
// check and RocksDB's write (microseconds) can still reach that abort;
// systemd restarts the daemon (Restart=on-failure) and RocksDB recovers the
// WAL. Background flushes and compactions that meet a full disk stop writes
// through RocksDB's own error handler, which StorageMonitor resumes.
#ifndef SHREDD_DAEMON_STORAGE_SPACE_GUARD_H_
#define SHREDD_DAEMON_STORAGE_SPACE_GUARD_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace shredd {

// Configures the process-wide guard once, at start-up, before any write:
// `dir` is the data dir; min_free_bytes 0 turns the guard off. Without it
// (unit tests, tools) nothing is checked.
void InstallSpaceGuard(std::string dir, uint64_t min_free_bytes);
// A new floor (config reload); 0 turns the guard off.
void SetSpaceGuardFloor(uint64_t min_free_bytes);
// Called (on the writing thread) each time writes that add data start or
// stop being refused; the refusal and the recovery are logged ("storage:
// writes are stopped" / "storage: writes resumed"). One listener: the
// StorageMonitor, which reports it to health checks and systemd.
void SetSpaceGuardListener(std::function<void()> on_change);

// OK, or RESOURCE_EXHAUSTED naming the free space and the floor that this
// thread's writes must keep (see ErasureWrites). Called by every foreground
// write path (rocks_util.h GuardedWrite), before anything is written.
absl::Status CheckFreeSpace();

// Why writes that add data are refused now, if they are (checks the disk).
std::optional<std::string> SpaceGuardRefusal();

// Free bytes of the guarded filesystem for an unprivileged writer
// (statvfs f_bavail), for metrics and messages; 0 when not installed.
uint64_t GuardedFreeBytes();

// While alive, writes on this thread are erasure writes (lower floor).
// Scopes nest.
class ErasureWrites {
 public:
  ErasureWrites();
  ~ErasureWrites();
  ErasureWrites(const ErasureWrites&) = delete;
  ErasureWrites& operator=(const ErasureWrites&) = delete;
};

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_SPACE_GUARD_H_
