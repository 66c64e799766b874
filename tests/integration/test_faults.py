"""Bad input and faults (issue 2, "each with a test"): digest/size mismatch,
cut-off and cancelled uploads, ciphertext and wrapped keys altered on disk,
unknown and malformed digests, oversized messages, and acknowledged uploads
surviving kill -9."""
import contextlib
import ctypes
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

import grpc

from harness import PY_GEN, DaemonTest, pb, sha256_digest

CHUNK = 1 << 20
TAG = 16
STRIDE = CHUNK + TAG
INLINE_MAX = 64 * 1024
IA = grpc.StatusCode.INVALID_ARGUMENT

rng = random.Random(0xFA17)


def rand(n):
    return rng.randbytes(n)


def dmsg(h, size=0):
    return pb.Digest(hash=h, size_bytes=size)


def header(h, size, **meta):
    return pb.PutRequest(header=pb.PutHeader(digest=dmsg(h, size), metadata=pb.ItemMetadata(**meta)))


def data_msgs(data, step=CHUNK):
    return [pb.PutRequest(data=data[i:i + step]) for i in range(0, len(data), step)]


def files_under(root):
    out = set()
    for dirpath, _, files in os.walk(root):
        out |= {os.path.join(dirpath, f) for f in files}
    return out


# ---------------------------------------------------------------- RocksDB access
#
# To alter inline ciphertext, wrapped keys and item records "on disk" we need
# to rewrite single RocksDB values. Byte-editing SST/WAL files does not work:
# RocksDB's own block/record CRCs would catch it (or silently drop the WAL
# tail), so we would test RocksDB, not shredd. rocksdb-tools (ldb) is not
# installed, so instead we call RocksDB's C API through ctypes from Debian's
# librocksdb7.8 (a dependency of librocksdb-dev, which the build needs
# anyway). This is an attacker with write access to the data dir who writes
# well-formed records with altered contents. The daemon must be stopped
# while we hold the DB (RocksDB's LOCK file).

def _load_rocksdb():
    for name in ("librocksdb.so.7.8", "librocksdb.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        p = ctypes.c_void_p
        sz = ctypes.c_size_t
        err = ctypes.POINTER(ctypes.c_char_p)
        for fn, res, args in [
            ("rocksdb_options_create", p, []),
            ("rocksdb_options_destroy", None, [p]),
            ("rocksdb_open", p, [p, ctypes.c_char_p, err]),
            ("rocksdb_close", None, [p]),
            ("rocksdb_readoptions_create", p, []),
            ("rocksdb_readoptions_destroy", None, [p]),
            ("rocksdb_writeoptions_create", p, []),
            ("rocksdb_writeoptions_destroy", None, [p]),
            ("rocksdb_writeoptions_set_sync", None, [p, ctypes.c_ubyte]),
            ("rocksdb_put", None, [p, p, ctypes.c_char_p, sz, ctypes.c_char_p, sz, err]),
            ("rocksdb_delete", None, [p, p, ctypes.c_char_p, sz, err]),
            ("rocksdb_create_iterator", p, [p, p]),
            ("rocksdb_iter_destroy", None, [p]),
            ("rocksdb_iter_seek_to_first", None, [p]),
            ("rocksdb_iter_valid", ctypes.c_ubyte, [p]),
            ("rocksdb_iter_next", None, [p]),
            ("rocksdb_iter_key", p, [p, ctypes.POINTER(sz)]),
            ("rocksdb_iter_value", p, [p, ctypes.POINTER(sz)]),
        ]:
            f = getattr(lib, fn)
            f.restype = res
            f.argtypes = args
        return lib
    return None


ROCKS = _load_rocksdb()


class Rocks:
    def __init__(self, path):
        self.opts = ROCKS.rocksdb_options_create()
        e = ctypes.c_char_p()
        self.db = ROCKS.rocksdb_open(self.opts, path.encode(), ctypes.byref(e))
        if e.value:
            raise AssertionError("cannot open RocksDB at %s: %s" % (path, e.value.decode()))
        self.ro = ROCKS.rocksdb_readoptions_create()
        self.wo = ROCKS.rocksdb_writeoptions_create()
        ROCKS.rocksdb_writeoptions_set_sync(self.wo, 1)

    def items(self):
        out = {}
        it = ROCKS.rocksdb_create_iterator(self.db, self.ro)
        ROCKS.rocksdb_iter_seek_to_first(it)
        n = ctypes.c_size_t()
        while ROCKS.rocksdb_iter_valid(it):
            k = ctypes.string_at(ROCKS.rocksdb_iter_key(it, ctypes.byref(n)), n.value)
            v = ctypes.string_at(ROCKS.rocksdb_iter_value(it, ctypes.byref(n)), n.value)
            out[k] = v
            ROCKS.rocksdb_iter_next(it)
        ROCKS.rocksdb_iter_destroy(it)
        return out

    def put(self, k, v):
        e = ctypes.c_char_p()
        ROCKS.rocksdb_put(self.db, self.wo, k, len(k), v, len(v), ctypes.byref(e))
        if e.value:
            raise AssertionError(e.value.decode())

    def delete(self, k):
        e = ctypes.c_char_p()
        ROCKS.rocksdb_delete(self.db, self.wo, k, len(k), ctypes.byref(e))
        if e.value:
            raise AssertionError(e.value.decode())

    def close(self):
        ROCKS.rocksdb_readoptions_destroy(self.ro)
        ROCKS.rocksdb_writeoptions_destroy(self.wo)
        ROCKS.rocksdb_close(self.db)
        ROCKS.rocksdb_options_destroy(self.opts)


@contextlib.contextmanager
def rocks(data_dir):
    r = Rocks(os.path.join(data_dir, "db"))
    try:
        yield r
    finally:
        r.close()


def flip(b, i):
    b = bytearray(b)
    b[i] ^= 0x01
    return bytes(b)


class FaultTest(DaemonTest):
    def tmp_dir(self):
        return os.path.join(self.d.data_dir, "tmp")

    def blobs_dir(self):
        return os.path.join(self.d.data_dir, "blobs")

    def assertNotStored(self, *hashes):
        for h in hashes:
            self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.store().Stat, pb.StatRequest(digest=dmsg(h)))
        missing = self.d.store().FindMissing(pb.FindMissingRequest(digests=[dmsg(h) for h in hashes])).missing
        self.assertEqual(sorted(m.hash for m in missing), sorted(hashes))

    def wait_until(self, cond, what, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.02)
        self.fail("timed out waiting for " + what)

    def part_files(self):
        return sorted(os.listdir(self.tmp_dir()))

    def wait_for_part(self, min_size):
        def ok():
            for f in self.part_files():
                try:
                    if os.path.getsize(os.path.join(self.tmp_dir(), f)) >= min_size:
                        return True
                except OSError:
                    pass
            return False
        self.wait_until(ok, "a .part file of at least %d bytes in tmp/" % min_size)

    def get_all(self, h, offset=0, limit=0):
        """Returns (bytes received before any error, RpcError or None)."""
        got = b""
        try:
            for m in self.d.store().Get(pb.GetRequest(digest=dmsg(h), offset=offset, limit=limit), timeout=60):
                got += m.data
        except grpc.RpcError as e:
            return got, e
        return got, None

    def restart(self, kill=False):
        if kill:
            self.d.kill()
        else:
            self.assertEqual(self.d.stop(), 0)
        self.d.start()


# ---------------------------------------------------------------- mismatches

class MismatchTest(FaultTest):
    def _put(self, reqs):
        return self.d.store().Put(iter(reqs), timeout=60)

    def test_declared_digest_mismatch_names_both_and_stores_nothing(self):
        for size in (100, INLINE_MAX + 1, 2 * CHUNK + 7):
            with self.subTest(size=size):
                sent, claimed = rand(size), rand(size)
                before = files_under(self.d.data_dir + "/blobs") | files_under(self.tmp_dir())
                e = self.assertRpcError(IA, self._put,
                                        [header(sha256_digest(claimed), size)] + data_msgs(sent))
                self.assertIn(sha256_digest(claimed), e.details())
                self.assertIn(sha256_digest(sent), e.details())
                self.assertNotStored(sha256_digest(claimed), sha256_digest(sent))
                after = files_under(self.d.data_dir + "/blobs") | files_under(self.tmp_dir())
                self.assertEqual(after, before, "a failed upload left files behind")

    def test_declared_size_mismatch_stores_nothing(self):
        for size in (50, 3 * CHUNK):
            with self.subTest(size=size):
                data = rand(size)
                h = sha256_digest(data)
                # Declared larger than sent (the stream ends early) ...
                e = self.assertRpcError(IA, self._put, [header(h, size + 1)] + data_msgs(data))
                self.assertIn(h, e.details())
                self.assertIn(str(size + 1), e.details())
                self.assertIn(str(size), e.details())
                # ... and declared smaller (more bytes than declared).
                self.assertRpcError(IA, self._put, [header(h, size - 1)] + data_msgs(data))
                self.assertNotStored(h)
                self.assertEqual(self.part_files(), [])
                self.assertEqual(files_under(self.blobs_dir()), set())

    def test_stream_cut_short_names_both_digests(self):
        data = rand(3 * CHUNK)
        h = sha256_digest(data)
        half = data[:CHUNK + CHUNK // 2]
        e = self.assertRpcError(IA, self._put, [header(h, len(data))] + data_msgs(half))
        self.assertIn(h, e.details())
        self.assertIn(sha256_digest(half), e.details())
        self.assertNotStored(h, sha256_digest(half))
        self.assertEqual(self.part_files(), [])
        self.assertEqual(files_under(self.blobs_dir()), set())

    def test_more_bytes_than_declared(self):
        for declared, sent in ((100, rand(200)), (2 * CHUNK, rand(3 * CHUNK)), (0, b"x")):
            with self.subTest(declared=declared):
                h = sha256_digest(sent[:declared])
                e = self.assertRpcError(IA, self._put, [header(h, declared)] + data_msgs(sent))
                self.assertIn("declared size", e.details())
                self.assertNotStored(h, sha256_digest(sent))
                self.wait_until(lambda: self.part_files() == [], "tmp/ to be empty")
                self.assertEqual(files_under(self.blobs_dir()), set())

    def test_upload_protocol_errors(self):
        data = b"hello"
        h = sha256_digest(data)
        self.assertRpcError(IA, self._put, [])  # empty stream
        self.assertRpcError(IA, self._put, [pb.PutRequest(data=data), header(h, 5)])  # data before header
        self.assertRpcError(IA, self._put, [header(h, 5), header(h, 5), pb.PutRequest(data=data)])
        self.assertRpcError(IA, self._put, [header(h, -5), pb.PutRequest(data=data)])  # negative size
        self.assertRpcError(IA, self._put, [header(h, 1 << 41)])  # beyond the maximum item size
        self.assertRpcError(IA, self._put, [header(h, 5, kind=7), pb.PutRequest(data=data)])  # unknown kind
        self.assertNotStored(h)
        self.assertEqual(self.part_files(), [])


class TrailingDigestTest(FaultTest):
    """The digest declared after the data (PutTrailer), as shredctl put does
    for large files: the same checks as a header digest, nothing stored on
    any mismatch."""

    def _put(self, reqs):
        return self.d.store().Put(iter(reqs), timeout=60)

    def trailer(self, h, size):
        return pb.PutRequest(trailer=pb.PutTrailer(digest=dmsg(h, size)))

    def test_trailer_round_trip(self):
        for size in (0, 100, INLINE_MAX + 1, 2 * CHUNK + 7, 3 * CHUNK):
            with self.subTest(size=size):
                data = rand(size)
                h = sha256_digest(data)
                r = self._put([header("", size)] + data_msgs(data, 3 * CHUNK // 2) + [self.trailer(h, size)])
                self.assertEqual(r.digest.hash, h)
                self.assertFalse(r.already_present)
                self.assertEqual(self.get_all(h)[0], data)
                # Header and trailer may both carry it if they agree.
                r = self._put([header(h, size)] + data_msgs(data) + [self.trailer(h, size)])
                self.assertTrue(r.already_present)

    def test_trailer_mismatch_names_both_and_stores_nothing(self):
        for size in (100, INLINE_MAX + 1, 2 * CHUNK + 7):
            with self.subTest(size=size):
                sent, claimed = rand(size), rand(size)
                before = files_under(self.d.data_dir + "/blobs") | files_under(self.tmp_dir())
                e = self.assertRpcError(IA, self._put, [header("", size)] + data_msgs(sent) +
                                        [self.trailer(sha256_digest(claimed), size)])
                self.assertIn(sha256_digest(claimed), e.details())
                self.assertIn(sha256_digest(sent), e.details())
                self.assertNotStored(sha256_digest(claimed), sha256_digest(sent))
                self.wait_until(lambda: self.part_files() == [], "tmp/ to be empty")
                after = files_under(self.d.data_dir + "/blobs") | files_under(self.tmp_dir())
                self.assertEqual(after, before, "a failed upload left files behind")

    def test_trailer_protocol_errors(self):
        data = rand(INLINE_MAX + 10)
        h, n = sha256_digest(data), len(data)
        other = sha256_digest(b"other")
        cases = {
            "no trailer": [header("", n)] + data_msgs(data),
            "trailer size differs": [header("", n)] + data_msgs(data) + [self.trailer(h, n + 1)],
            "header and trailer differ": [header(h, n)] + data_msgs(data) + [self.trailer(other, n)],
            "two trailers": [header("", n)] + data_msgs(data) + [self.trailer(h, n), self.trailer(h, n)],
            "data after the trailer": [header("", n)] + data_msgs(data[:-1]) + [self.trailer(h, n),
                                                                              pb.PutRequest(data=data[-1:])],
            "malformed trailer": [header("", n)] + data_msgs(data) + [self.trailer("sha256:xyz", n)],
        }
        for name, reqs in cases.items():
            with self.subTest(case=name):
                self.assertRpcError(IA, self._put, reqs)
                self.assertNotStored(h)
                self.wait_until(lambda: self.part_files() == [], "tmp/ to be empty")
        self.assertEqual(files_under(self.blobs_dir()), set())


class DaemonDigestTest(FaultTest):
    """Uploads addressed by the daemon's digest (PutHeader.daemon_digest, as
    shredctl put sends large files): the item is addressed by the SHA-256 of
    what the daemon received, with every check a declared digest gets
    (size, shredded content, lineage); nothing stored on any refusal."""

    def _put(self, reqs):
        return self.d.store().Put(iter(reqs), timeout=60)

    @staticmethod
    def daemon_header(size, h="", **meta):
        return pb.PutRequest(header=pb.PutHeader(digest=dmsg(h, size), metadata=pb.ItemMetadata(**meta),
                                                 daemon_digest=True))

    def test_round_trip_is_addressed_by_what_arrived(self):
        for size in (0, 100, INLINE_MAX + 1, 2 * CHUNK + 7):
            with self.subTest(size=size):
                data = rand(size)
                h = sha256_digest(data)
                r = self._put([self.daemon_header(size)] + data_msgs(data, CHUNK // 3))
                self.assertEqual(r.digest.hash, h)
                self.assertEqual(r.digest.size_bytes, size)
                self.assertFalse(r.already_present)
                self.assertEqual(self.get_all(h)[0], data)
                r = self._put([self.daemon_header(size)] + data_msgs(data))
                self.assertTrue(r.already_present)

    def test_refused_combinations_store_nothing(self):
        data = rand(INLINE_MAX + 10)
        h, n = sha256_digest(data), len(data)
        cases = {  # name: (requests, what the error says)
            "with a header hash": ([self.daemon_header(n, h)] + data_msgs(data), "must not declare a hash"),
            "with a trailer": ([self.daemon_header(n)] + data_msgs(data) +
                               [pb.PutRequest(trailer=pb.PutTrailer(digest=dmsg(h, n)))], "a trailer in an upload"),
            "fewer bytes than declared": ([self.daemon_header(n)] + data_msgs(data[:-1]),
                                          "received %d bytes, the upload's header declared %d" % (n - 1, n)),
            "more bytes than declared": ([self.daemon_header(n - 1)] + data_msgs(data), "more than the declared size"),
        }
        for name, (reqs, says) in cases.items():
            with self.subTest(case=name):
                e = self.assertRpcError(IA, self._put, reqs)
                self.assertIn(says, e.details())
                self.assertNotStored(h)
                self.wait_until(lambda: self.part_files() == [], "tmp/ to be empty")
        self.assertEqual(files_under(self.blobs_dir()), set())

    def test_shredded_content_is_refused(self):
        data = rand(2 * CHUNK + 3)
        h = sha256_digest(data)
        self._put([self.daemon_header(len(data))] + data_msgs(data))
        self.d.shredder().Shred(pb.ShredRequest(digests=[dmsg(h, len(data))]), timeout=60)
        e = self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self._put,
                                [self.daemon_header(len(data))] + data_msgs(data))
        self.assertIn("shredded", e.details())
        self.assertNotStored(h)


# ---------------------------------------------------------------- cut-off uploads

CLIENT_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import grpc
from shredd.v1 import shredd_pb2 as pb, shredd_pb2_grpc as pb_grpc
size = int(sys.argv[4])
def gen():
    yield pb.PutRequest(header=pb.PutHeader(digest=pb.Digest(hash=sys.argv[3], size_bytes=size)))
    for _ in range(2):
        yield pb.PutRequest(data=b"\x5a" * (1 << 20))
    time.sleep(600)
ch = grpc.insecure_channel(sys.argv[2])
pb_grpc.StoreStub(ch).Put(gen())
"""


class CutOffTest(FaultTest):
    SIZE = 8 * CHUNK  # file-backed, so the upload shows up as a .part file

    def _blocking_upload(self, fail_with=None):
        """Starts an upload that sends 2 MiB and then blocks; returns (future, release)."""
        release = threading.Event()
        h = sha256_digest(b"\x5a" * self.SIZE)

        def gen():
            yield header(h, self.SIZE)
            yield pb.PutRequest(data=b"\x5a" * CHUNK)
            yield pb.PutRequest(data=b"\x5a" * CHUNK)
            release.wait(30)
            if fail_with:
                raise fail_with
        return self.d.store().Put.future(gen(), timeout=60), release, h

    def _assert_clean_after_restart(self, h):
        self.restart()
        self.assertEqual(self.part_files(), [])
        self.assertEqual(files_under(self.blobs_dir()), set(), "orphan ciphertext under blobs/")
        self.assertNotStored(h)

    def test_client_cancels_mid_upload(self):
        fut, release, h = self._blocking_upload()
        self.wait_for_part(STRIDE)  # chunk 0 sealed and written: truly mid-upload
        fut.cancel()
        release.set()
        with self.assertRaises(grpc.FutureCancelledError):
            fut.result()
        self.wait_until(lambda: self.part_files() == [], "the daemon to remove the cancelled upload's .part")
        self.assertNotStored(h)
        self._assert_clean_after_restart(h)

    def test_request_iterator_raises_mid_upload(self):
        fut, release, h = self._blocking_upload(fail_with=RuntimeError("client gives up"))
        self.wait_for_part(STRIDE)
        release.set()
        with self.assertRaises(grpc.RpcError) as cm:
            fut.result()
        self.assertNotEqual(cm.exception.code(), grpc.StatusCode.OK)
        self.wait_until(lambda: self.part_files() == [], "the daemon to remove the aborted upload's .part")
        self.assertNotStored(h)
        self._assert_clean_after_restart(h)

    def test_client_process_killed_mid_upload(self):
        h = sha256_digest(b"\x5a" * self.SIZE)
        client = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, PY_GEN, self.d.address, h, str(self.SIZE)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.wait_for_part(STRIDE)
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait()
        self.wait_until(lambda: self.part_files() == [], "the daemon to remove the dead client's .part")
        self.assertNotStored(h)
        self._assert_clean_after_restart(h)

    def test_daemon_killed_mid_upload_leaves_nothing_after_restart(self):
        fut, release, h = self._blocking_upload()
        self.wait_for_part(STRIDE)
        self.d.kill()
        release.set()
        with self.assertRaises(grpc.RpcError):
            fut.result()
        self.assertNotEqual(self.part_files(), [], "precondition: the killed upload left a .part")
        self.d.start()
        self.assertEqual(self.part_files(), [])
        self.assertEqual(files_under(self.blobs_dir()), set())
        self.assertNotStored(h)

    def test_orphan_blob_is_collected_at_startup(self):
        # What a crash between publishing the ciphertext file and committing
        # its records leaves: a file under blobs/ that no record names.
        live = rand(2 * CHUNK)
        h = self.d.put_bytes(live)
        (live_path,) = files_under(self.blobs_dir())
        self.d.kill()
        orphan = os.path.join(self.blobs_dir(), "ab", "ab" + "0" * 30)
        os.makedirs(os.path.dirname(orphan), exist_ok=True)
        with open(orphan, "wb") as f:
            f.write(os.urandom(1000))
        with open(os.path.join(self.tmp_dir(), "cd" + "1" * 30 + ".part"), "wb") as f:
            f.write(os.urandom(1000))
        self.d.start()
        self.assertEqual(files_under(self.blobs_dir()), {live_path})
        self.assertEqual(self.part_files(), [])
        self.assertEqual(self.d.get_bytes(h), live)


# ---------------------------------------------------------------- tampering

class TamperBlobTest(FaultTest):
    """Ciphertext of a file-backed item altered on disk: DATA_LOSS, and no
    byte that differs from the original ever reaches the client."""

    def setUp(self):
        super().setUp()
        self.data = rand(3 * CHUNK + 5)  # chunks of 1 MiB, 1 MiB, 1 MiB, 5 bytes
        self.h = self.d.put_bytes(self.data)
        (self.path,) = files_under(self.blobs_dir())
        with open(self.path, "rb") as f:
            self.orig = f.read()
        self.assertEqual(len(self.orig), len(self.data) + 4 * TAG)

    def write_blob(self, content):
        with open(self.path, "wb") as f:
            f.write(content)

    def assertDataLoss(self, offset=0, limit=0, max_good=None):
        got, err = self.get_all(self.h, offset, limit)
        self.assertIsNotNone(err, "altered ciphertext was served without error")
        self.assertEqual(err.code(), grpc.StatusCode.DATA_LOSS, err.details())
        want = self.data[offset:] if limit == 0 else self.data[offset:offset + limit]
        self.assertEqual(got, want[:len(got)], "the client received bytes that differ from the original")
        if max_good is not None:
            self.assertLessEqual(len(got), max_good)
        return got

    def test_flipped_byte_in_chunk(self):
        self.write_blob(flip(self.orig, STRIDE + 12345))  # inside chunk 1's ciphertext
        got = self.assertDataLoss(max_good=CHUNK)  # at most the intact chunk 0
        self.assertDataLoss(offset=CHUNK, max_good=0)
        self.assertDataLoss(offset=CHUNK - 10, limit=20, max_good=10)
        # Other chunks still read: tampering is detected per chunk.
        self.assertEqual(self.get_all(self.h, 2 * CHUNK, 0), (self.data[2 * CHUNK:], None))
        self.assertEqual(self.get_all(self.h, 0, CHUNK), (self.data[:CHUNK], None))
        self.assertLessEqual(len(got), CHUNK)

    def test_flipped_byte_in_tag_and_last_chunk(self):
        self.write_blob(flip(self.orig, CHUNK + 3))  # chunk 0's tag
        self.assertDataLoss(max_good=0)
        self.write_blob(flip(self.orig, len(self.orig) - 1))  # the 5-byte last chunk's tag
        self.assertDataLoss(max_good=3 * CHUNK)
        self.assertDataLoss(offset=3 * CHUNK + 1, max_good=0)

    def test_swapped_chunks(self):
        c1, c2 = self.orig[STRIDE:2 * STRIDE], self.orig[2 * STRIDE:3 * STRIDE]
        self.write_blob(self.orig[:STRIDE] + c2 + c1 + self.orig[3 * STRIDE:])
        self.assertDataLoss(max_good=CHUNK)
        self.assertDataLoss(offset=CHUNK, max_good=0)

    def test_truncated_and_missing_blob(self):
        self.write_blob(self.orig[:-1])
        self.assertDataLoss(max_good=3 * CHUNK)
        self.write_blob(self.orig[:STRIDE + 100])
        self.assertDataLoss(max_good=CHUNK)
        os.unlink(self.path)
        self.assertDataLoss(max_good=0)

    def test_blob_of_another_item(self):
        other = rand(len(self.data))
        self.d.put_bytes(other)
        (other_path,) = files_under(self.blobs_dir()) - {self.path}
        shutil.copyfile(other_path, self.path)  # same size, valid ciphertext, wrong item
        self.assertDataLoss(max_good=0)

    def test_shredctl_get_of_altered_item_fails_and_writes_nothing(self):
        self.write_blob(flip(self.orig, 2 * STRIDE + 1))
        out = os.path.join(self.tmp, "out.bin")
        p, lines = self.d.ctl("-q", "get", self.h, "-o", out, check=False, json_out=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(lines[-1].get("code"), "DATA_LOSS", lines)
        self.assertTrue(p.stderr.startswith(b"shredctl: "), p.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".part"))
        self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p.stderr)


@unittest.skipIf(ROCKS is None, "librocksdb.so.7.8 (Debian librocksdb7.8) not loadable through ctypes")
class TamperRocksTest(FaultTest):
    """Inline ciphertext, wrapped data keys and item records altered inside
    RocksDB (see the comment at Rocks above)."""

    def put_and_capture(self, data):
        """Puts `data` and returns the RocksDB records it added (daemon stopped after)."""
        self.d.kill()
        with rocks(self.d.data_dir) as r:
            before = r.items()
        self.d.start()
        h = self.d.put_bytes(data, subjects=["s-" + hashlib.md5(data).hexdigest()])
        self.d.kill()
        with rocks(self.d.data_dir) as r:
            after = r.items()
        new = {k: v for k, v in after.items() if k not in before}
        self.d.start()
        return h, new

    def one(self, new, prefix, size=None):
        ks = [k for k in new if k[:1] == prefix and (size is None or len(k) == size)]
        self.assertEqual(len(ks), 1, "expected one %r record, got %r" % (prefix, ks))
        return ks[0]

    def test_altered_inline_records(self):
        items = {name: rand(1000) for name in ("ct", "dek", "meta", "swap", "gone", "intact")}
        recs = {}
        for name, data in items.items():
            h, new = self.put_and_capture(data)
            recs[name] = (h, new)
        self.d.kill()
        with rocks(self.d.data_dir) as r:
            # inline ciphertext: "c" + 16-byte object id
            k = self.one(recs["ct"][1], b"c", 17)
            r.put(k, flip(recs["ct"][1][k], 500))
            # wrapped DEK: "k" + 8-byte big-endian slot
            k = self.one(recs["dek"][1], b"k", 9)
            self.assertNotEqual(k, b"k" + bytes(8), "slot 0 is the system key")
            r.put(k, flip(recs["dek"][1][k], 40))
            # item record (sealed metadata): "i" + 32-byte keyed hash
            k = self.one(recs["meta"][1], b"i", 33)
            r.put(k, flip(recs["meta"][1][k], len(recs["meta"][1][k]) - 20))
            # valid ciphertext of another item of the same size
            ks, ki = self.one(recs["swap"][1], b"c", 17), self.one(recs["intact"][1], b"c", 17)
            r.put(ks, recs["intact"][1][ki])
            # ciphertext record removed
            r.delete(self.one(recs["gone"][1], b"c", 17))
        self.d.start()
        for name in ("ct", "dek", "meta", "swap", "gone"):
            with self.subTest(altered=name):
                got, err = self.get_all(recs[name][0])
                self.assertIsNotNone(err, "altered record was served")
                self.assertEqual(err.code(), grpc.StatusCode.DATA_LOSS, err.details())
                self.assertEqual(got, b"")
        for name in ("dek", "meta"):  # the metadata cannot be opened either
            self.assertRpcError(grpc.StatusCode.DATA_LOSS, self.d.store().Stat,
                                pb.StatRequest(digest=dmsg(recs[name][0])))
        self.assertEqual(self.d.get_bytes(recs["intact"][0]), items["intact"])

    def test_altered_system_key_refuses_to_start(self):
        self.d.put_bytes(b"abc")
        self.d.kill()
        with rocks(self.d.data_dir) as r:
            k = b"k" + bytes(8)
            v = r.items()[k]
            r.put(k, flip(v, 30))
        os.unlink(self.d.socket)  # left by the killed daemon
        self.assertEqual(self.d.start(expect_fail=True), 1)
        self.assertIn("system key", self.d.log())
        self.assertFalse(os.path.exists(self.d.socket), "bound a socket despite unusable storage")


# ---------------------------------------------------------------- digests

class DigestTest(FaultTest):
    H = hashlib.sha256(b"x").hexdigest()
    MALFORMED = [
        "sha256:XYZ",
        "sha256:" + H.upper(),
        "sha256:" + H[:-1],
        "sha256:" + H + "0",
        "sha256:" + H[:-1] + "g",
        "md5:" + hashlib.md5(b"x").hexdigest(),
        "SHA256:" + H,
        H,
        "",
        "sha256:",
        " sha256:" + H,
        "sha512:" + hashlib.sha512(b"x").hexdigest(),
    ]

    def test_unknown_digest_not_found(self):
        self.d.put_bytes(b"something else")
        h = sha256_digest(b"never stored")
        e = self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.store().Stat, pb.StatRequest(digest=dmsg(h)))
        self.assertIn(h, e.details())
        got, err = self.get_all(h)
        self.assertEqual((got, err.code()), (b"", grpc.StatusCode.NOT_FOUND))
        got, err = self.get_all(h, 5, 5)
        self.assertEqual((got, err.code()), (b"", grpc.StatusCode.NOT_FOUND))

    def test_malformed_digest_invalid_argument(self):
        stored = self.d.put_bytes(b"x")
        for bad in self.MALFORMED:
            with self.subTest(digest=bad):
                e = self.assertRpcError(IA, self.d.store().Stat, pb.StatRequest(digest=dmsg(bad)))
                self.assertIn("digest", e.details())
                got, err = self.get_all(bad)
                self.assertEqual((got, err.code()), (b"", IA), err.details())
                self.assertRpcError(IA, self.d.store().Put, iter([header(bad, 1), pb.PutRequest(data=b"x")]))
                self.assertRpcError(IA, self.d.store().FindMissing,
                                    pb.FindMissingRequest(digests=[dmsg(bad)]))
                res = self.d.store().BatchPut(pb.BatchPutRequest(entries=[
                    pb.BatchPutRequest.Entry(header=pb.PutHeader(digest=dmsg(bad, 1)), data=b"x")])).results
                self.assertEqual(res[0].code, IA.value[0], res[0].message)
        # The well-formed lowercase digest of the same content is the one stored.
        self.assertEqual(stored, "sha256:" + self.H)
        self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), 1)
        self.assertEqual(self.part_files(), [])


# ---------------------------------------------------------------- oversized messages

class OversizedTest(FaultTest):
    def test_oversized_data_message(self):
        big = rand(9 * CHUNK)
        h = sha256_digest(big)
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, self.d.store().Put,
                            iter([header(h, len(big)), pb.PutRequest(data=big)]), timeout=30)
        self.assertIsNone(self.d.proc.poll(), "daemon died")
        self.assertNotStored(h)
        self.wait_until(lambda: self.part_files() == [], "tmp/ to be empty")
        # Oversized unary request too.
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, self.d.store().BatchPut,
                            pb.BatchPutRequest(entries=[pb.BatchPutRequest.Entry(
                                header=pb.PutHeader(digest=dmsg(h, len(big))), data=big)]), timeout=30)
        self.assertIsNone(self.d.proc.poll(), "daemon died")
        # The daemon still serves, including the same content sent properly.
        self.assertEqual(self.d.put_bytes(big), h)
        self.assertEqual(self.d.get_bytes(h), big)
        small = self.d.put_bytes(b"after")
        self.assertEqual(self.d.get_bytes(small), b"after")


# ---------------------------------------------------------------- durability

class KillAfterAckTest(FaultTest):
    def test_acknowledged_uploads_survive_kill9(self):
        expected = {}
        for round_ in range(2):
            batch = [rand(300 + i) for i in range(10)]
            singles = [rand(10 + 37 * i) for i in range(15)] + [rand(CHUNK + CHUNK // 2) for _ in range(3)]
            res = self.d.store().BatchPut(pb.BatchPutRequest(entries=[
                pb.BatchPutRequest.Entry(header=pb.PutHeader(digest=dmsg(sha256_digest(b), len(b))), data=b)
                for b in batch])).results
            self.assertEqual([r.code for r in res], [0] * len(batch))
            for b in batch:
                expected[sha256_digest(b)] = b
            for b in singles:
                r = self.d.store().Put(iter([header(sha256_digest(b), len(b))] + data_msgs(b)), timeout=60)
                self.assertFalse(r.already_present)
                expected[r.digest.hash] = b
            # SIGKILL right after the last acknowledgement.
            os.kill(self.d.proc.pid, signal.SIGKILL)
            self.d.kill()
            self.d.start()
            for h, b in expected.items():
                self.assertEqual(self.d.get_bytes(h), b, h)
            self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), len(expected))
        self.assertEqual(len(expected), 56)


if __name__ == "__main__":
    unittest.main()
