"""A full disk (issue 12, defect 7): the data dir on a real 20 MiB tmpfs, the
vault outside it. BatchPuts fill it until RESOURCE_EXHAUSTED; the daemon must
stay alive, keep serving reads, say NOT_SERVING to health checks, log why,
and take writes again by itself (no restart) once space is freed, with
everything acknowledged before intact. The free-space guard
([storage] min_free_mib, daemon/storage/space_guard.h) refuses writes that add data
before RocksDB meets the full disk, and keeps a quarter of the floor for
erasures: a shred still works on a disk that ingest has filled.

Needs root (mount -t tmpfs); skipped otherwise."""
import os
import random
import shutil
import subprocess
import time
import unittest

import grpc

from harness import DaemonTest, Daemon, pb, sha256_digest
from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402

FS_MIB = 20
# Freed later. Larger than what the items will take: to resume, RocksDB
# first flushes its memtable (everything written so far, ~ the WAL) to a
# table file, which needs that much free space. RocksDB takes ~5 MiB at open
# (its MANIFEST is preallocated), which leaves ~7 MiB, 3 above the floor.
FILLER_MIB = 8
ITEM = 60 * 1024  # inline items (BatchPut, <= 64 KiB)
PER_BATCH = 8
MIN_FREE_MIB = 4  # [storage] min_free_mib: writes stop below 4 MiB, erasures below 1 MiB
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]  # 8
SERVING, NOT_SERVING = b"\x08\x01", b"\x08\x02"


def health(daemon):
    """grpc.health.v1 Check for the whole server: raw response bytes."""
    return daemon.channel().unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)


def mount_tmpfs(path, mib):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % mib, "tmpfs", path],
                       capture_output=True, timeout=30)
    return p.returncode == 0


class DiskFullTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.fs = os.path.join(self.tmp, "smallfs")
        if os.geteuid() != 0 or not mount_tmpfs(self.fs, FS_MIB):
            shutil.rmtree(self.tmp, ignore_errors=True)  # tearDown does not run after a skip in setUp
            self.skipTest("needs root and a mountable tmpfs")
        # Data dir on the small filesystem, vault (and socket, log) outside it.
        self.d = Daemon(self.tmp, data_dir=os.path.join(self.fs, "data"),
                        extra_args=["--min-free-mib", str(MIN_FREE_MIB)])
        self.filler = os.path.join(self.fs, "filler")
        with open(self.filler, "wb") as f:
            f.write(b"\0" * (FILLER_MIB << 20))
        self.rng = random.Random(0xD15C)

    def tearDown(self):
        # Unmount first, so that the harness can remove the temp dir.
        if self.d.proc is not None:
            self.d.kill()
        if getattr(self, "fs", None) and os.path.ismount(self.fs):
            subprocess.run(["umount", "-l", self.fs], capture_output=True, timeout=30)
        super().tearDown()

    def batch(self, n):
        entries, items = [], {}
        for _ in range(n):
            data = self.rng.randbytes(ITEM)
            d = sha256_digest(data)
            items[d] = data
            entries.append(pb.BatchPutRequest.Entry(
                header=pb.PutHeader(digest=pb.Digest(hash=d, size_bytes=len(data))), data=data))
        return pb.BatchPutRequest(entries=entries), items

    def put_batch(self, n=PER_BATCH):
        """-> (acknowledged {digest: data}, [(code, message)] of refused entries)."""
        req, items = self.batch(n)
        try:
            res = self.d.store().BatchPut(req, timeout=60).results
        except grpc.RpcError as e:
            return {}, [(e.code().value[0], e.details())]
        acked = {r.digest.hash: items[r.digest.hash] for r in res if r.code == 0}
        return acked, [(r.code, r.message) for r in res if r.code != 0]

    def assertAlive(self):
        self.assertIsNone(self.d.proc.poll(), "the daemon died:\n" + self.d.log()[-4000:])

    def assertIntact(self, stored):
        for d, data in stored.items():
            self.assertEqual(self.d.get_bytes(d), data, d)

    def checkpoint(self):
        return lpb_grpc.LogStub(self.d.channel()).GetCheckpoint(lpb.GetCheckpointRequest(), timeout=10)

    def free_mib(self):
        st = os.statvfs(self.fs)
        return st.f_bavail * st.f_frsize / (1 << 20)

    def fill_to(self, free_mib, name):
        """Writes a file that leaves about `free_mib` MiB free on the small fs."""
        path = os.path.join(self.fs, name)
        with open(path, "wb") as f:
            while self.free_mib() > free_mib + 0.25:
                f.write(b"\0" * (256 << 10))
                f.flush()
        return path

    def shred(self, digest):
        try:
            return self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=60), None
        except grpc.RpcError as e:
            return None, e

    def test_erasures_keep_a_reserve_that_ingest_cannot_take(self):
        os.unlink(self.filler)
        self.d.start()
        stored = {}
        for _ in range(3):
            acked, refused = self.put_batch(2)
            self.assertFalse(refused, refused)
            stored.update(acked)
        victims = list(stored)
        # Between the two floors: ingest is refused with a reason, erasure works.
        big = self.fill_to(MIN_FREE_MIB - 1.5, "big")
        self.assertLess(self.free_mib(), MIN_FREE_MIB)
        self.assertGreater(self.free_mib(), MIN_FREE_MIB / 4)
        acked, refused = self.put_batch(1)
        self.assertEqual(acked, {})
        self.assertEqual({c for c, _ in refused}, {RESOURCE_EXHAUSTED}, refused)
        self.assertTrue(all("not enough free space" in m and "min_free_mib" in m for _, m in refused), refused)
        cert, err = self.shred(victims[0])
        self.assertIsNone(err, err and err.details())
        self.assertTrue(cert.certificate_id)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.d.get_bytes(victims[0])
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)
        # A legal hold, the brake on deletion, works wherever deletion does
        # (it used to be refused here while shreds went on).
        orders = opb_grpc.OrdersStub(self.d.channel())
        hold = orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(digest=pb.Digest(hash=victims[2]), reason="court")),
                              timeout=30)
        cert, err = self.shred(victims[2])
        self.assertEqual(err.code(), grpc.StatusCode.FAILED_PRECONDITION, err.details())
        orders.RemoveHold(opb.RemoveHoldRequest(id=hold.id), timeout=30)
        self.assertAlive()

        # Below the erasure reserve: a shred is refused too, and changes nothing.
        size_before = self.checkpoint().tree_size
        last = self.fill_to(0.4, "last")
        cert, err = self.shred(victims[1])
        self.assertIsNone(cert)
        self.assertEqual(err.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, err.details())
        self.assertIn("erasures keep", err.details())
        self.assertEqual(self.d.get_bytes(victims[1]), stored[victims[1]])
        self.assertEqual(self.checkpoint().tree_size, size_before)
        self.assertAlive()

        # Space back: the same shred goes through, without a restart.
        os.unlink(last)
        os.unlink(big)
        cert, err = self.shred(victims[1])
        self.assertIsNone(err, err and err.details())
        with self.assertRaises(grpc.RpcError):
            self.d.get_bytes(victims[1])
        acked, refused = self.put_batch(1)
        self.assertTrue(acked, refused)
        for d in victims[2:]:
            self.assertEqual(self.d.get_bytes(d), stored[d])

    def test_full_disk_refuses_writes_keeps_reads_and_recovers_without_restart(self):
        self.d.start()
        self.assertEqual(health(self.d), SERVING)
        stored, refused = {}, []
        for _ in range(200):  # 20 MiB / ~0.5 MiB per batch: full long before
            acked, refused = self.put_batch()
            self.assertAlive()
            stored.update(acked)
            if refused:
                break
        self.assertTrue(refused, "the small filesystem never filled up")
        self.assertGreater(len(stored), 20)
        codes = {c for c, _ in refused}
        self.assertEqual(codes, {RESOURCE_EXHAUSTED}, refused)
        self.assertTrue(any("space" in m.lower() for _, m in refused), refused)

        # Stuck, not dead: more writes are refused the same way, reads work,
        # health says NOT_SERVING, and the log says why.
        for _ in range(5):
            acked, again = self.put_batch()
            self.assertAlive()
            stored.update(acked)
            if not acked:
                self.assertEqual({c for c, _ in again}, {RESOURCE_EXHAUSTED}, again)
        first = next(iter(stored))
        self.assertEqual(self.d.get_bytes(first), stored[first])
        self.assertEqual(self.d.store().Stat(pb.StatRequest(digest=pb.Digest(hash=first)), timeout=10).digest.hash,
                         first)
        self.checkpoint()  # a read: must not fail while writes are stuck
        deadline = time.time() + 10
        while time.time() < deadline and health(self.d) != NOT_SERVING:
            time.sleep(0.1)
        self.assertEqual(health(self.d), NOT_SERVING)
        self.assertIn("writes are stopped", self.d.log())
        self.assertFalse(os.path.exists(os.path.join(self.fs, "data", "db", "LOG")),
                         "RocksDB's info log is written into the full data dir")

        # Space comes back: writes resume by themselves, within a bounded time.
        os.unlink(self.filler)
        deadline = time.time() + 60
        resumed = {}
        while time.time() < deadline and not resumed:
            time.sleep(0.5)
            self.assertAlive()
            resumed, _ = self.put_batch(1)
        self.assertTrue(resumed, "writes did not resume within 60 s of freeing space:\n" + self.d.log()[-4000:])
        stored.update(resumed)
        deadline = time.time() + 30
        while time.time() < deadline and health(self.d) != SERVING:
            time.sleep(0.2)
        self.assertEqual(health(self.d), SERVING)
        self.assertIn("writes resumed", self.d.log())
        size = self.checkpoint().checkpoint
        self.assertTrue(size)
        self.assertIntact(stored)

        # And after a restart.
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        self.assertIntact(stored)


if __name__ == "__main__":
    unittest.main()
