"""The transfer memory budget ([storage] transfer_memory_mib): concurrent
downloads and uploads of large items lease their buffers from one budget and
wait their turn, so their number does not drive the daemon's resident set; a
call that cannot get memory before its deadline is refused with
RESOURCE_EXHAUSTED naming the setting, and a cancelled one returns its lease."""
import concurrent.futures
import hashlib
import os
import re
import socket
import struct
import threading
import time
import urllib.request

from harness import Daemon, DaemonTest, grpc, pb, sha256_digest

ITEM = 24 << 20  # blob-backed; a download leases ~22 MiB of the 32 MiB budget


def metric(url, name):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no %s in the scrape" % name
    return float(m.group(1))


def wait_metric(url, name, pred, seconds=15):
    """Polls a metric until pred(value) holds or `seconds` pass; returns its last value."""
    deadline = time.time() + seconds
    while not pred(metric(url, name)) and time.time() < deadline:
        time.sleep(0.05)
    return metric(url, name)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1))


def reset_hwm(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")  # VmHWM := VmRSS (proc(5))


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):  # literal header field, never indexed, no Huffman (RFC 7541 6.2.3)
    return b"\x10" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def call_without_reading(address, method, request, end_stream=True):
    """A gRPC call from a client that never reads its reply: raw HTTP/2
    with a stream window of 0, so the daemon cannot send a byte of it (nor
    hear an answer to its pings). The call stays open until the returned
    socket is closed. `address`: a unix socket path or a (host, port);
    without `end_stream` the request is the first of a client stream."""
    sock = socket.socket(socket.AF_UNIX if isinstance(address, str) else socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(address)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, struct.pack(">HI", 4, 0)))
    headers = b"".join(hpack_literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers")])
    body = request.SerializeToString()
    sock.sendall(h2_frame(4, 1, 0) +  # ACK of the daemon's SETTINGS (sent first by any server)
                 h2_frame(1, 4, 1, headers) +
                 h2_frame(0, 1 if end_stream else 0, 1, b"\x00" + struct.pack(">I", len(body)) + body))
    return sock


class TransferMemoryTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.d.extra_args = ["--metrics-listen", "127.0.0.1:0", "--transfer-memory-mib", "32"]
        self.d.start()
        self.url = re.findall(r"shredd: metrics url=(http://127\.0\.0\.1:\d+/metrics)", self.d.log())[-1]
        self.data = os.urandom(ITEM)
        self.digest = self.d.put_bytes(self.data)

    def download_to_file(self, i):
        out = os.path.join(self.tmp, "out%d" % i)
        self.d.ctl("-q", "get", self.digest, "-o", out)
        with open(out, "rb") as f:
            ok = hashlib.sha256(f.read()).hexdigest() == self.digest.split(":")[1]
        os.unlink(out)
        return ok

    def test_concurrent_downloads_wait_their_turn_within_the_budget(self):
        pid = self.d.proc.pid
        reset_hwm(pid)
        before = vm_hwm_kib(pid)
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(self.download_to_file, range(12)))
        self.assertEqual(results, [True] * 12)
        self.assertGreaterEqual(metric(self.url, "shredd_transfer_memory_waits_total"), 1)
        # A lease is returned when the call ends in the daemon, which can be
        # just after the client has its reply (daemon/api/call_holds.h).
        self.assertEqual(wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v == 0), 0)
        # Twelve at once without the budget: ~12 x 22 MiB more; with it, one
        # lease of ~22 MiB at a time (plus gRPC's and the allocator's slack).
        grew_mib = (vm_hwm_kib(pid) - before) / 1024
        self.assertLess(grew_mib, 90, "the daemon's peak grew by %.0f MiB" % grew_mib)

    def test_concurrent_uploads_wait_their_turn(self):
        paths = []
        for i in range(6):
            p = os.path.join(self.tmp, "up%d" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(ITEM))
            paths.append(p)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            procs = list(pool.map(lambda p: self.d.ctl("--json", "put", p), paths))
        self.assertEqual([p.returncode for p in procs], [0] * 6)
        self.assertGreaterEqual(metric(self.url, "shredd_transfer_memory_waits_total"), 1)
        # A lease is returned when the call ends in the daemon, which can be
        # just after the client has its reply (daemon/api/call_holds.h).
        self.assertEqual(wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v == 0), 0)
        for p in paths:  # every upload stored whole
            with open(p, "rb") as f:
                data = f.read()
            self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)

    def test_a_call_without_memory_before_its_deadline_is_refused_and_a_cancelled_one_returns_its_lease(self):
        # A download whose client stops reading holds its lease (the daemon
        # blocks on flow control) until the call ends.
        stalled = self.d.store().Get(pb.GetRequest(digest=pb.Digest(hash=self.digest)), timeout=60)
        next(stalled)
        deadline = time.time() + 10
        while metric(self.url, "shredd_transfer_memory_bytes") == 0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertGreater(metric(self.url, "shredd_transfer_memory_bytes"), 20 << 20)

        def get_within(seconds):
            request = pb.GetRequest(digest=pb.Digest(hash=self.digest))
            return b"".join(r.data for r in self.d.store().Get(request, timeout=seconds))
        err = self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, get_within, 2.0, contains="transfer_memory_mib")
        self.assertIn("download", err.details())
        # An upload is refused the same way, and nothing of it is stored.
        other = os.urandom(ITEM)
        header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(other), size_bytes=len(other)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO))

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, len(other), 1 << 20):
                yield pb.PutRequest(data=other[i:i + (1 << 20)])
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, self.d.store().Put, gen(), timeout=2.0,
                            contains="transfer_memory_mib")
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, sha256_digest(other))

        stalled.cancel()
        self.assertEqual(wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v == 0), 0)
        self.assertEqual(self.d.get_bytes(self.digest), self.data)

    def test_a_download_waiting_for_memory_does_not_serve_an_item_shredded_meanwhile(self):
        other = os.urandom(ITEM)
        d_other = self.d.put_bytes(other)
        stalled = self.d.store().Get(pb.GetRequest(digest=pb.Digest(hash=self.digest)), timeout=60)
        next(stalled)  # holds ~22 of the 32 MiB
        waits = metric(self.url, "shredd_transfer_memory_waits_total")
        result = {}

        def download():
            try:
                result["data"] = self.d.get_bytes(d_other)
            except grpc.RpcError as e:
                result["code"] = e.code()
        t = threading.Thread(target=download)
        t.start()
        deadline = time.time() + 10
        while metric(self.url, "shredd_transfer_memory_waits_total") == waits and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(metric(self.url, "shredd_transfer_memory_waits_total"), waits + 1)  # it waits its turn
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=d_other)]))
        stalled.cancel()
        t.join(60)
        self.assertFalse("data" in result, "a shredded item's content was served")
        self.assertEqual(result.get("code"), grpc.StatusCode.NOT_FOUND)

    def test_certificate_fetches_lease_their_manifests_memory(self):
        cert = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.digest)])).certificate_id
        # An upload of a large item leases the whole budget (its queue and
        # buffers come to more than 32 MiB); it stalls after its first MiB.
        go_on = threading.Event()
        other = os.urandom(ITEM)
        header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(other), size_bytes=len(other)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO))

        def stalled_upload():
            yield pb.PutRequest(header=header)
            yield pb.PutRequest(data=other[:1 << 20])
            go_on.wait(60)
            for i in range(1 << 20, len(other), 1 << 20):
                yield pb.PutRequest(data=other[i:i + (1 << 20)])
        upload = self.d.store().Put.future(stalled_upload(), timeout=60)
        deadline = time.time() + 10
        while metric(self.url, "shredd_transfer_memory_bytes") < (32 << 20) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(metric(self.url, "shredd_transfer_memory_bytes"), 32 << 20)
        # The certificate's manifest must wait for memory: refused at its deadline.
        get = self.d.shredder().GetCertificate
        err = self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, get,
                                  pb.GetCertificateRequest(certificate_id=cert), timeout=2.0,
                                  contains="transfer_memory_mib")
        self.assertIn("certificate with its manifest", err.details())
        go_on.set()
        self.assertFalse(upload.result().already_present)
        reply = get(pb.GetCertificateRequest(certificate_id=cert), timeout=30)
        self.assertIn(self.digest.split(":")[1].encode(), reply.manifest)
        # A lease is returned when the call ends in the daemon, which can be
        # just after the client has its reply (daemon/api/call_holds.h).
        self.assertEqual(wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v == 0), 0)


    def test_a_certificate_reply_keeps_its_lease_until_the_client_has_read_it(self):
        # A unary handler returns before gRPC sends its reply; a client that
        # does not read keeps the reply in the daemon. Its lease stays with
        # the call until the call ends (daemon/api/call_holds.h).
        cert = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.digest)])).certificate_id
        stuck = call_without_reading(self.d.socket, "/shredd.v1.Shredder/GetCertificate",
                                     pb.GetCertificateRequest(certificate_id=cert))
        wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v > 0)
        time.sleep(0.5)  # long after the handler returned
        self.assertGreater(metric(self.url, "shredd_transfer_memory_bytes"), 0)
        # A client that reads gets the same certificate meanwhile.
        reply = self.d.shredder().GetCertificate(pb.GetCertificateRequest(certificate_id=cert), timeout=30)
        self.assertIn(self.digest.split(":")[1].encode(), reply.manifest)
        stuck.close()
        self.assertEqual(wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v == 0), 0)

    def test_a_shred_reply_is_charged_until_its_client_has_read_it(self):
        # The shred itself is done and certified whatever the client does;
        # its reply (manifest inline) counts against the budget until sent.
        stuck = call_without_reading(self.d.socket, "/shredd.v1.Shredder/Shred",
                                     pb.ShredRequest(digests=[pb.Digest(hash=self.digest)], reason="stuck reader"))
        wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v > 0)
        time.sleep(0.5)
        self.assertGreater(metric(self.url, "shredd_transfer_memory_bytes"), 0)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, self.digest)  # shredded all the same
        stuck.close()
        self.assertEqual(wait_metric(self.url, "shredd_transfer_memory_bytes", lambda v: v == 0), 0)


class StalledTransferTest(DaemonTest):
    """[storage] transfer_idle_s: a download whose client stops reading, or
    an upload whose client stops sending, is cancelled once it has not moved
    for that long, and its transfer memory is returned."""
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.d.extra_args = ["--metrics-listen", "127.0.0.1:0", "--transfer-memory-mib", "32", "--transfer-idle-s", "2"]
        self.d.start()
        self.url = re.findall(r"shredd: metrics url=(http://127\.0\.0\.1:\d+/metrics)", self.d.log())[-1]

    def wait_for(self, name, pred, seconds=15):
        return wait_metric(self.url, name, pred, seconds)

    def test_a_download_nobody_reads_is_cancelled_and_returns_its_lease(self):
        data = os.urandom(ITEM)
        digest = self.d.put_bytes(data)
        stalled = self.d.store().Get(pb.GetRequest(digest=pb.Digest(hash=digest)), timeout=60)
        next(stalled)  # then nobody reads: the daemon blocks on flow control
        self.assertGreater(self.wait_for("shredd_transfer_memory_bytes", lambda v: v > 0), 0)
        self.assertEqual(self.wait_for("shredd_transfer_memory_bytes", lambda v: v == 0), 0)
        self.assertEqual(metric(self.url, "shredd_transfers_stalled_total"), 1)
        with self.assertRaises(grpc.RpcError) as e:
            for _ in stalled:
                pass
        self.assertEqual(e.exception.code(), grpc.StatusCode.CANCELLED)
        self.assertIn("transfer made no progress", self.d.log())
        self.assertEqual(self.d.get_bytes(digest), data)  # a download that reads is not cancelled

    def test_an_upload_that_stops_sending_is_cancelled_and_stores_nothing(self):
        data = os.urandom(ITEM)
        resume = threading.Event()
        header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(data), size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO))

        def stalling():
            yield pb.PutRequest(header=header)
            yield pb.PutRequest(data=data[:1 << 20])
            resume.wait(30)
            for i in range(1 << 20, len(data), 1 << 20):
                yield pb.PutRequest(data=data[i:i + (1 << 20)])
        call = self.d.store().Put.future(stalling(), timeout=60)
        self.assertGreater(self.wait_for("shredd_transfer_memory_bytes", lambda v: v > 0), 0)
        self.assertEqual(self.wait_for("shredd_transfer_memory_bytes", lambda v: v == 0), 0)
        self.assertEqual(metric(self.url, "shredd_transfers_stalled_total"), 1)
        resume.set()
        with self.assertRaises(grpc.RpcError) as e:
            call.result()
        self.assertEqual(e.exception.code(), grpc.StatusCode.CANCELLED)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, sha256_digest(data))
        self.assertEqual(self.d.get_bytes(self.d.put_bytes(data)), data)  # sent without pause, it is stored

    def test_a_manifest_stream_nobody_reads_is_cancelled(self):
        digest = self.d.put_bytes(os.urandom(1000))
        cert = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)])).certificate_id
        stuck = call_without_reading(self.d.socket, "/shredd.v1.Shredder/GetManifest",
                                     pb.GetCertificateRequest(certificate_id=cert))
        self.assertEqual(self.wait_for("shredd_transfers_stalled_total", lambda v: v >= 1), 1)
        self.assertIn("what=\"manifest stream\"", self.d.log())
        stuck.close()
        manifest = b"".join(c.data for c in self.d.shredder().GetManifest(
            pb.GetCertificateRequest(certificate_id=cert), timeout=30))
        self.assertIn(digest.split(":")[1].encode(), manifest)  # a stream that is read is not cancelled

class VanishedClientTest(DaemonTest):
    """[server] keepalive_s: a client that vanishes mid-upload (its machine
    lost: TCP never closes by itself) is found by an unanswered ping, and its
    call ends and returns its transfer memory."""
    start_daemon = False

    def test_an_upload_whose_client_vanished_returns_its_lease(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.d.extra_args = ["--metrics-listen", "127.0.0.1:0", "--keepalive-s", "2",
                             "--listen", "tcp:127.0.0.1:%d" % port]
        self.d.start()
        url = re.findall(r"shredd: metrics url=(http://127\.0\.0\.1:\d+/metrics)", self.d.log())[-1]
        header = pb.PutHeader(digest=pb.Digest(size_bytes=ITEM), daemon_digest=True,
                              metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO))
        # The upload starts (and leases its buffers), then its client goes
        # silent without closing: it answers nothing, not even pings.
        silent = call_without_reading(("127.0.0.1", port), "/shredd.v1.Store/Put", pb.PutRequest(header=header),
                                      end_stream=False)
        deadline = time.time() + 10
        while metric(url, "shredd_transfer_memory_bytes") == 0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertGreater(metric(url, "shredd_transfer_memory_bytes"), 0)
        # A ping every 2 s, unanswered for 2 s: dropped within a few seconds
        # (with the default 60 s the lease would still be held).
        deadline = time.time() + 15
        while metric(url, "shredd_transfer_memory_bytes") != 0 and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(metric(url, "shredd_transfer_memory_bytes"), 0)
        silent.close()
        data = os.urandom(1 << 20)  # the daemon serves on
        self.assertEqual(self.d.get_bytes(self.d.put_bytes(data)), data)


class GrpcBuffersTest(DaemonTest):
    """What gRPC itself buffers for calls ([server] stream_window_kib and
    max_calls): an upload waiting for transfer memory holds at most one
    HTTP/2 stream window of its data, and calls beyond max_calls are refused
    before they run, with a message that names the setting."""
    start_daemon = False

    def start_with(self, *flags):
        self.d.extra_args = ["--transfer-memory-mib", "16", *flags]
        self.d.start()

    def files(self, n, size):
        paths = []
        for i in range(n):
            p = os.path.join(self.tmp, "f%d" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(size))
            paths.append(p)
        return paths

    def put_all_at_once(self, paths):
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
            return list(pool.map(lambda p: self.d.ctl("-q", "put", p, check=False), paths))

    def peak_growth_mib(self, window_kib, paths):
        root = os.path.join(self.tmp, "window%d" % window_kib)  # a fresh store: every put uploads
        os.makedirs(root)
        self.d = Daemon(root)
        self.start_with("--stream-window-kib", str(window_kib))
        pid = self.d.proc.pid
        reset_hwm(pid)
        before = vm_hwm_kib(pid)
        procs = self.put_all_at_once(paths)
        self.assertEqual([p.returncode for p in procs], [0] * len(paths), [p.stderr for p in procs])
        grew = (vm_hwm_kib(pid) - before) / 1024
        self.d.stop()
        return grew

    def test_uploads_waiting_for_memory_hold_one_stream_window_each(self):
        # A 16 MiB budget lets one upload run at a time; the others wait,
        # and what they have sent meanwhile sits in gRPC. With windows as
        # large as the files (64 MiB), each waiting upload's whole file does
        # (~23 x 16 MiB); with the default 512 KiB, half a MiB each.
        paths = self.files(24, 16 << 20)
        small = self.peak_growth_mib(512, paths)
        large = self.peak_growth_mib(65536, paths)
        self.assertLess(small, 110, "24 uploads with 512 KiB windows grew the daemon by %.0f MiB" % small)
        self.assertGreater(large, 250, "the measure cannot tell windows apart (%.0f MiB)" % large)

    def test_calls_beyond_max_calls_are_refused_before_they_run(self):
        self.start_with("--max-calls", "8")
        blobs = [os.urandom(4 << 20) for _ in range(40)]

        def upload(data):
            header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(data), size_bytes=len(data)),
                                  metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO))
            yield pb.PutRequest(header=header)
            for i in range(0, len(data), 1 << 20):
                yield pb.PutRequest(data=data[i:i + (1 << 20)])
        calls = [self.d.store().Put.future(upload(b), timeout=120) for b in blobs]
        outcomes = [c.exception() for c in calls]  # all done before checking (checks are calls too)
        refused = 0
        for data, e in zip(blobs, outcomes):
            if e is None:
                self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)
            else:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
                self.assertEqual(e.details(), "Server Threadpool Exhausted")
                # refused before its handler ran: nothing of it stored
                self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, sha256_digest(data))
                refused += 1
        self.assertGreater(refused, 0, "40 uploads at once against max_calls = 8: none refused")
        # shredctl makes a refused call again (with backoff): the same storm
        # through 40 shredctl processes stores everything.
        paths = self.files(40, 4 << 20)
        procs = self.put_all_at_once(paths)
        self.assertEqual([p.returncode for p in procs], [0] * 40, [p.stderr for p in procs if p.returncode])
        for path in paths:
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)
        # Downloads the same: 40 `shredctl get` at once all succeed.
        procs = self.get_all_at_once(paths)
        self.assertEqual([p.returncode for p in procs], [0] * 40, [p.stderr for p in procs if p.returncode])
        for path in paths:
            with open(path, "rb") as f, open(path + ".out", "rb") as g:
                self.assertEqual(f.read(), g.read())

    def get_all_at_once(self, paths):
        def get(path):
            with open(path, "rb") as f:
                digest = sha256_digest(f.read())
            return self.d.ctl("-q", "get", digest, "-o", path + ".out", check=False)
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
            return list(pool.map(get, paths))

if __name__ == "__main__":
    import unittest
    unittest.main()
