"""Store API: round trips at the inline/file and chunk boundaries, ranged
reads, dedup, FindMissing, List filters and paging, BatchPut, health and
reflection. Runs the real shredd over its unix socket."""
import os
import random
import unittest

import grpc

from harness import DaemonTest, pb, sha256_digest

CHUNK = 1 << 20          # the daemon's chunk size (plaintext bytes per AEAD chunk)
TAG = 16                 # AES-GCM tag per chunk
INLINE_MAX = 64 * 1024   # items up to this size live inside RocksDB

rng = random.Random(0x5EED)


def rand(n):
    return rng.randbytes(n)


def blob_files(data_dir):
    out = {}
    for dirpath, _, files in os.walk(os.path.join(data_dir, "blobs")):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = os.path.getsize(p)
    return out


def tmp_files(data_dir):
    d = os.path.join(data_dir, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def digest_msg(d, size=0):
    return pb.Digest(hash=d, size_bytes=size)


def entry(data, declared_hash=None, declared_size=None, **meta):
    return pb.BatchPutRequest.Entry(
        header=pb.PutHeader(
            digest=pb.Digest(hash=declared_hash if declared_hash is not None else sha256_digest(data),
                             size_bytes=len(data) if declared_size is None else declared_size),
            metadata=pb.ItemMetadata(**meta)),
        data=data)


class RoundTripTest(DaemonTest):
    SIZES = [0, 1, INLINE_MAX, INLINE_MAX + 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]

    def test_round_trip_at_inline_and_chunk_boundaries(self):
        gen = random.Random(1)
        for size in self.SIZES:
            with self.subTest(size=size):
                data = gen.randbytes(size)
                before = blob_files(self.d.data_dir)
                d = self.d.put_bytes(data)
                self.assertEqual(d, sha256_digest(data))
                msgs = list(self.d.store().Get(pb.GetRequest(digest=digest_msg(d)), timeout=60))
                self.assertGreaterEqual(len(msgs), 1)
                self.assertEqual(msgs[0].total_size, size)
                self.assertTrue(all(m.total_size == 0 for m in msgs[1:]), "total_size only on the first message")
                self.assertEqual(b"".join(m.data for m in msgs), data)
                info = self.d.store().Stat(pb.StatRequest(digest=digest_msg(d)))
                self.assertEqual((info.digest.hash, info.digest.size_bytes), (d, size))
                self.assertEqual(info.chunk_size, CHUNK)
                new = {p: s for p, s in blob_files(self.d.data_dir).items() if p not in before}
                if size <= INLINE_MAX:
                    self.assertEqual(new, {}, "items <= 64 KiB are stored inline")
                else:
                    self.assertEqual(len(new), 1, new)
                    (path, fsize), = new.items()
                    chunks = (size + CHUNK - 1) // CHUNK
                    self.assertEqual(fsize, size + chunks * TAG, "one tag per 1 MiB chunk")
                    self.assertEqual(os.path.basename(os.path.dirname(path)), os.path.basename(path)[:2])
                    self.assertRegex(os.path.basename(path), r"^[0-9a-f]{32}$")
                self.assertEqual(tmp_files(self.d.data_dir), [])
        # Everything is still there after a restart.
        # (kill, not stop: after large Gets, shutdown waits out gRPC's 10 s drain)
        self.d.kill()
        self.d.start()
        gen = random.Random(1)
        for size in self.SIZES:
            data = gen.randbytes(size)
            self.assertEqual(self.d.get_bytes(sha256_digest(data)), data, size)


class MessageFramingTest(DaemonTest):
    """How a client splits its upload into messages must not matter. (Regression:
    a final message crossing a chunk boundary made the daemon spin forever.)"""

    def _put_split(self, data, step):
        h = sha256_digest(data)

        def gen():
            yield pb.PutRequest(header=pb.PutHeader(digest=digest_msg(h, len(data))))
            for i in range(0, len(data), step):
                yield pb.PutRequest(data=data[i:i + step])
        r = self.d.store().Put(gen(), timeout=30)
        self.assertEqual(r.digest.hash, h)
        return h

    def test_any_message_size(self):
        gen = random.Random(2)
        cases = [(3 * CHUNK + 5, 3 * CHUNK + 5), (3 * CHUNK + 5, 2 * CHUNK), (2 * CHUNK, 2 * CHUNK),
                 (2 * CHUNK + 1, 700 * 1024), (CHUNK + 1, CHUNK + 1), (5 * CHUNK - 1, 1536 * 1024),
                 (INLINE_MAX, 1), (INLINE_MAX + 1, 4096), (CHUNK, 7 * 1024 + 3), (1000, 1000)]
        for size, step in cases:
            with self.subTest(size=size, step=step):
                data = gen.randbytes(size)
                h = self._put_split(data, step)
                self.assertEqual(self.d.get_bytes(h), data)
                for off in sorted({0, min(CHUNK - 1, size), size // 2}):
                    self.assertEqual(self.d.get_bytes(h, off, CHUNK + 2), data[off:off + CHUNK + 2])
        # Also a BatchPut entry larger than a chunk (appended in one piece).
        data = gen.randbytes(2 * CHUNK + 9)
        res = self.d.store().BatchPut(pb.BatchPutRequest(entries=[entry(data)]), timeout=30).results
        self.assertEqual(res[0].code, 0, res[0].message)
        self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)


class RangedReadTest(DaemonTest):
    def _get(self, d, offset, limit):
        msgs = list(self.d.store().Get(pb.GetRequest(digest=digest_msg(d), offset=offset, limit=limit),
                                       timeout=60))
        return msgs, b"".join(m.data for m in msgs)

    def test_ranges_across_chunk_boundaries(self):
        data = rand(3 * CHUNK + 5)
        size = len(data)
        d = self.d.put_bytes(data)
        offsets = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 3, 2 * CHUNK, 3 * CHUNK - 1, 3 * CHUNK,
                   size - 1, size]
        limits = [0, 1, 2, 7, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3, size, size + 100]
        for off in offsets:
            for lim in limits:
                with self.subTest(offset=off, limit=lim):
                    msgs, got = self._get(d, off, lim)
                    want = data[off:] if lim == 0 else data[off:off + lim]
                    self.assertEqual(len(got), len(want))
                    self.assertEqual(got, want)
                    self.assertEqual(msgs[0].total_size, size)
        # Some random ranges as well.
        r = random.Random(7)
        for _ in range(40):
            off = r.randrange(0, size + 1)
            lim = r.randrange(0, size)
            _, got = self._get(d, off, lim)
            self.assertEqual(got, data[off:] if lim == 0 else data[off:off + lim], (off, lim))

    def test_ranges_of_inline_item(self):
        data = rand(INLINE_MAX)
        d = self.d.put_bytes(data)
        for off, lim in [(0, 1), (1, 0), (100, 1000), (INLINE_MAX - 1, 5), (5000, INLINE_MAX)]:
            _, got = self._get(d, off, lim)
            self.assertEqual(got, data[off:] if lim == 0 else data[off:off + lim], (off, lim))

    def test_offset_at_size_is_empty(self):
        for size in (0, 10, 2 * CHUNK):
            data = rand(size)
            d = self.d.put_bytes(data)
            msgs, got = self._get(d, size, 0)
            self.assertEqual(got, b"", size)
            self.assertEqual(len(msgs), 1, "one message that carries the total size")
            self.assertEqual(msgs[0].total_size, size)
            _, got = self._get(d, size, 10)
            self.assertEqual(got, b"")

    def test_offset_beyond_size_is_out_of_range(self):
        for size in (0, 10, CHUNK + 1):
            d = self.d.put_bytes(rand(size))
            self.assertRpcError(grpc.StatusCode.OUT_OF_RANGE, self._get, d, size + 1, 0)
            self.assertRpcError(grpc.StatusCode.OUT_OF_RANGE, self._get, d, size + CHUNK * 5, 1)

    def test_negative_offset_or_limit_is_invalid(self):
        d = self.d.put_bytes(b"abc")
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self._get, d, -1, 0)
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self._get, d, 0, -1)

    def test_get_with_wrong_declared_size_is_not_found(self):
        d = self.d.put_bytes(b"abcdef")
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: list(self.d.store().Get(
            pb.GetRequest(digest=digest_msg(d, 7)))))
        self.assertEqual(b"".join(m.data for m in self.d.store().Get(pb.GetRequest(digest=digest_msg(d, 6)))),
                         b"abcdef")


class DedupFindMissingTest(DaemonTest):
    def test_second_put_is_already_present_and_one_item(self):
        for size in (100, 2 * CHUNK + 1):
            data = rand(size)
            d = sha256_digest(data)
            before = blob_files(self.d.data_dir)

            def put():
                def gen():
                    yield pb.PutRequest(header=pb.PutHeader(digest=digest_msg(d, size),
                                                            metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO)))
                    for i in range(0, size, CHUNK):
                        yield pb.PutRequest(data=data[i:i + CHUNK])
                return self.d.store().Put(gen(), timeout=60)

            r1 = put()
            r2 = put()
            self.assertFalse(r1.already_present)
            self.assertTrue(r2.already_present)
            self.assertEqual((r2.digest.hash, r2.digest.size_bytes), (d, size))
            new = [p for p in blob_files(self.d.data_dir) if p not in before]
            self.assertEqual(len(new), 0 if size <= INLINE_MAX else 1, new)
            self.assertEqual(tmp_files(self.d.data_dir), [])
        items = self.d.store().List(pb.ListRequest()).items
        self.assertEqual(len(items), 2, [i.digest.hash for i in items])
        # BatchPut of stored content is also already_present.
        data = rand(50)
        self.d.put_bytes(data)
        res = self.d.store().BatchPut(pb.BatchPutRequest(entries=[entry(data)])).results
        self.assertEqual(res[0].code, 0)
        self.assertTrue(res[0].already_present)
        self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), 3)

    def test_find_missing(self):
        stored = [self.d.put_bytes(rand(n)) for n in (1, 70000)]
        absent = [sha256_digest(rand(n)) for n in (5, 6)]
        ask = [stored[0], absent[0], stored[1], absent[1]]
        resp = self.d.store().FindMissing(pb.FindMissingRequest(digests=[digest_msg(h, 1) for h in ask]))
        self.assertEqual([m.hash for m in resp.missing], absent)
        self.assertEqual(list(self.d.store().FindMissing(pb.FindMissingRequest()).missing), [])
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.d.store().FindMissing,
                            pb.FindMissingRequest(digests=[digest_msg(stored[0]), digest_msg("sha256:abc")]))


class ListTest(DaemonTest):
    def _list_all(self, page_size=0, **kw):
        seen, token, pages = [], "", 0
        while True:
            resp = self.d.store().List(pb.ListRequest(page_size=page_size, page_token=token, **kw))
            pages += 1
            seen += [i.digest.hash for i in resp.items]
            if page_size:
                self.assertLessEqual(len(resp.items), page_size)
            token = resp.next_page_token
            if not token:
                return seen, pages
            self.assertLess(pages, 50, "paging does not terminate")

    def test_filters(self):
        items = {
            "a": dict(kind=pb.KIND_PHOTO, subjects=["alice"], datasets=["faces"], labels={"src": "web", "y": "2014"}),
            "b": dict(kind=pb.KIND_PHOTO, subjects=["bob"], datasets=["faces", "eval"], labels={"src": "web"}),
            "c": dict(kind=pb.KIND_PHOTO, subjects=["alice", "carol"], datasets=["eval"], labels={"src": "scan"}),
            "m": dict(kind=pb.KIND_MODEL, datasets=["models"], labels={"arch": "resnet"}),
            "n": dict(kind=pb.KIND_MODEL, labels={"arch": "vit"}),
        }
        dig = {}
        for name, meta in items.items():
            size = 200 if name != "m" else INLINE_MAX + 10  # one file-backed item
            dig[name] = self.d.put_bytes(rand(size), **meta)

        def names(**kw):
            got, _ = self._list_all(**kw)
            self.assertEqual(len(got), len(set(got)), "duplicates in List")
            inv = {v: k for k, v in dig.items()}
            return sorted(inv[h] for h in got)

        self.assertEqual(names(), ["a", "b", "c", "m", "n"])
        self.assertEqual(names(subject_id="alice"), ["a", "c"])
        self.assertEqual(names(subject_id="carol"), ["c"])
        self.assertEqual(names(subject_id="nobody"), [])
        self.assertEqual(names(dataset="faces"), ["a", "b"])
        self.assertEqual(names(dataset="eval"), ["b", "c"])
        self.assertEqual(names(labels={"src": "web"}), ["a", "b"])
        self.assertEqual(names(labels={"src": "web", "y": "2014"}), ["a"])
        self.assertEqual(names(labels={"src": "WEB"}), [])
        self.assertEqual(names(kind=pb.KIND_MODEL), ["m", "n"])
        self.assertEqual(names(kind=pb.KIND_PHOTO), ["a", "b", "c"])
        self.assertEqual(names(kind=pb.KIND_MODEL, labels={"arch": "vit"}), ["n"])
        self.assertEqual(names(subject_id="alice", dataset="eval"), ["c"])
        self.assertEqual(names(subject_id="alice", labels={"src": "scan"}), ["c"])
        self.assertEqual(names(dataset="faces", kind=pb.KIND_MODEL), [])
        # Metadata comes back intact.
        info = self.d.store().Stat(pb.StatRequest(digest=digest_msg(dig["c"])))
        self.assertEqual(list(info.metadata.subject_ids), ["alice", "carol"])
        self.assertEqual(list(info.metadata.datasets), ["eval"])
        self.assertEqual(dict(info.metadata.labels), {"src": "scan"})
        self.assertEqual(info.metadata.kind, pb.KIND_PHOTO)

    def test_paging_returns_each_item_once(self):
        mine = {self.d.put_bytes(rand(100 + i), datasets=["ds"]) for i in range(5)}
        others = {self.d.put_bytes(rand(300 + i), datasets=["other"]) for i in range(3)}
        got, pages = self._list_all(page_size=2, dataset="ds")
        self.assertEqual(sorted(got), sorted(mine))
        self.assertGreaterEqual(pages, 3)
        got, pages = self._list_all(page_size=2)
        self.assertEqual(sorted(got), sorted(mine | others))
        self.assertGreaterEqual(pages, 4)
        got, _ = self._list_all(page_size=1, dataset="other")
        self.assertEqual(sorted(got), sorted(others))
        got, pages = self._list_all(page_size=100)
        self.assertEqual((len(got), pages), (8, 1))

    def test_bad_page_arguments(self):
        self.d.put_bytes(b"x")
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.d.store().List,
                            pb.ListRequest(page_size=-1))
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.d.store().List,
                            pb.ListRequest(page_size=10001))
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.d.store().List,
                            pb.ListRequest(page_token="not-a-token"))
        # An unknown kind used to list everything (a filter the client meant
        # silently dropped); a negative size in a Get was NOT_FOUND.
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.d.store().List, pb.ListRequest(kind=7),
                            contains="unknown kind 7")
        digest = sha256_digest(b"x")
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, lambda: b"".join(
            r.data for r in self.d.store().Get(pb.GetRequest(digest=pb.Digest(hash=digest, size_bytes=-1)))))


class BatchPutTest(DaemonTest):
    def test_mixed_good_and_bad_entries(self):
        good1, good2, other, big = rand(10), rand(20000), rand(30), rand(INLINE_MAX + 100)
        mismatched = rand(40)
        entries = [
            entry(good1, subject_ids=["s1"]),                             # 0 ok
            entry(rand(5), declared_hash="sha256:XYZ"),                   # 1 malformed digest
            entry(mismatched, declared_hash=sha256_digest(other)),        # 2 bytes do not match
            entry(good2, datasets=["d"]),                                 # 3 ok
            entry(other, declared_size=len(other) + 1),                   # 4 size mismatch
            entry(good1),                                                 # 5 duplicate of 0
            entry(big),                                                   # 6 ok, larger than inline
            entry(b""),                                                   # 7 ok, empty
        ]
        res = self.d.store().BatchPut(pb.BatchPutRequest(entries=entries)).results
        self.assertEqual(len(res), len(entries))
        codes = [r.code for r in res]
        ia = grpc.StatusCode.INVALID_ARGUMENT.value[0]
        self.assertEqual(codes, [0, ia, ia, 0, ia, 0, 0, 0], [r.message for r in res])
        self.assertIn(sha256_digest(other), res[2].message)
        self.assertIn(sha256_digest(mismatched), res[2].message)
        self.assertTrue(res[5].already_present)
        self.assertFalse(res[0].already_present)
        for i, data in ((0, good1), (3, good2), (6, big), (7, b"")):
            self.assertEqual(res[i].digest.hash, sha256_digest(data))
            self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)
        for data in (mismatched, other):
            self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.store().Stat,
                                pb.StatRequest(digest=digest_msg(sha256_digest(data))))
        self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), 4)
        info = self.d.store().Stat(pb.StatRequest(digest=digest_msg(sha256_digest(good1))))
        self.assertEqual(list(info.metadata.subject_ids), ["s1"])
        self.assertEqual(tmp_files(self.d.data_dir), [])

    def test_empty_batch(self):
        self.assertEqual(len(self.d.store().BatchPut(pb.BatchPutRequest()).results), 0)

    def test_concurrent_batches_share_commits_and_survive_kill(self):
        # Batches commit with a group commit (written in log order under the
        # locks, one WAL sync for all batches written by then, outside them).
        # Concurrent batches, overlapping in content, each item stored once,
        # every acknowledged item readable after kill -9, the log dense.
        import threading
        from shredd.v1 import log_pb2 as lpb, log_pb2_grpc as lpb_grpc
        items = [rand(100 + i) for i in range(600)]
        batches = [items[i:i + 100] for i in range(0, 600, 50)]  # each item in two batches
        results, errors = [], []

        def run(batch):
            try:
                res = self.d.store().BatchPut(pb.BatchPutRequest(
                    entries=[entry(x, datasets=["g"], subject_ids=["s%d" % (len(x) % 7)]) for x in batch]),
                    timeout=60).results
                results.append((batch, res))
            except grpc.RpcError as e:
                errors.append(e)

        threads = [threading.Thread(target=run, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        new = {}
        for batch, res in results:
            self.assertEqual([r.code for r in res], [0] * len(batch), [r.message for r in res])
            for x, r in zip(batch, res):
                new[sha256_digest(x)] = new.get(sha256_digest(x), 0) + (0 if r.already_present else 1)
        self.assertEqual(sorted(set(new.values())), [1], "every item stored exactly once")
        self.assertEqual(len(new), 600)
        size = lpb_grpc.LogStub(self.d.channel()).GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30).tree_size
        self.d.kill()
        self.d.start()
        for x in items:
            self.assertEqual(self.d.get_bytes(sha256_digest(x)), x)
        self.assertEqual(len(self.d.store().List(pb.ListRequest(page_size=1000)).items), 600)
        log = lpb_grpc.LogStub(self.d.channel())
        after = log.GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30).tree_size
        self.assertGreaterEqual(after, size)
        stored, start = 0, 0
        while start < after:
            got = log.GetEntries(lpb.GetEntriesRequest(start=start, end=after), timeout=30).entries
            self.assertTrue(got)
            stored += sum(b'"type":"item-stored"' in e for e in got)
            start += len(got)
        self.assertEqual(stored, 600)


class HealthReflectionTest(DaemonTest):
    """Generic gRPC tools must be able to talk to the daemon. The Debian python
    lacks grpc_health/grpc_reflection, so these use raw protobuf bytes."""

    def test_health_check_serving(self):
        check = self.d.channel().unary_unary("/grpc.health.v1.Health/Check",
                                             request_serializer=None, response_deserializer=None)
        # HealthCheckRequest{} -> HealthCheckResponse{status: SERVING (1)}
        self.assertEqual(check(b"", timeout=5), b"\x08\x01")

    def test_reflection_lists_services(self):
        info = self.d.channel().stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                              request_serializer=None, response_deserializer=None)
        # ServerReflectionRequest{list_services: "*"} (field 7)
        resp = b"".join(info(iter([b"\x3a\x01*"]), timeout=5))
        self.assertIn(b"shredd.v1.Store", resp)
        self.assertIn(b"shredd.v1.Shredder", resp)


if __name__ == "__main__":
    unittest.main()
