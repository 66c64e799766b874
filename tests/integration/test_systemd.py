"""systemd integration: Type=notify readiness (READY=1 only once storage is
open and the socket answers), STOPPING=1 and a clean exit on SIGTERM, and the
unit file in systemd/ passing `systemd-analyze verify`."""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

from harness import REPO, SHREDD, Daemon, pb, pb_grpc, sha256_digest

UNIT = os.path.join(os.environ.get("SHREDD_REPO", REPO), "systemd", "shredd.service")


def answers(address):
    """True if the daemon answers a Store RPC and a health check right now."""
    ch = grpc.insecure_channel(address)
    try:
        pb_grpc.StoreStub(ch).FindMissing(pb.FindMissingRequest(), timeout=2)
        health = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                                response_deserializer=None)
        return health(b"", timeout=2) == b"\x08\x01"  # SERVING
    except grpc.RpcError:
        return False
    finally:
        ch.close()


class NotifySocket(unittest.TestCase):
    """A NOTIFY_SOCKET for the daemon, and helpers to read what it sends."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-notify-")
        self.notify_path = os.path.join(self.tmp, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.d = Daemon(self.tmp, env={"NOTIFY_SOCKET": self.notify_path})
        self.log = open(self.d.log_path, "ab")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.notify.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, daemon=None):
        d = daemon or self.d
        self.proc = subprocess.Popen(d.command(), env=d.env, stdout=self.log, stderr=self.log)
        return self.proc

    def recv(self, want, timeout=20, on_message=None):
        """Receives notify datagrams until one has the line `want`; returns all
        (fields, observation) seen, where observation = on_message(fields)."""
        seen = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.notify.settimeout(max(0.01, deadline - time.time()))
            try:
                msg = self.notify.recv(4096).decode()
            except socket.timeout:
                break
            fields = msg.split("\n")
            seen.append((fields, on_message(fields) if on_message else None))
            if want in fields:
                return seen
        self.fail("no %s within %ss; got %r\n%s" % (want, timeout, seen, self.d.log()))


class NotifyTest(NotifySocket):
    def test_ready_after_socket_answers_then_stopping_on_sigterm(self):
        self.spawn()

        def observe(fields):
            # Taken the moment the datagram arrives.
            return {
                "socket": os.path.exists(self.d.socket),
                "db": os.path.exists(os.path.join(self.d.data_dir, "db", "CURRENT")),
                "answers": os.path.exists(self.d.socket) and answers(self.d.address),
            }
        seen = self.recv("READY=1", on_message=observe)
        fields, obs = seen[-1]
        self.assertEqual(obs, {"socket": True, "db": True, "answers": True}, seen)
        for f, _ in seen[:-1]:
            self.assertNotIn("READY=1", f)
        # It serves real work.
        d = self.d.put_bytes(b"notify")
        self.assertEqual(self.d.get_bytes(d), b"notify")
        self.d.channel().close()
        self.d._channel = None

        self.proc.send_signal(signal.SIGTERM)
        seen = self.recv("STOPPING=1")
        self.assertFalse(any("READY=1" in f for f, _ in seen), seen)
        self.assertEqual(self.proc.wait(timeout=30), 0, self.d.log())
        self.assertFalse(os.path.exists(self.d.socket), "socket file left behind after a clean stop")
        # Restart on the same data dir: the item is there.
        self.d.start()
        try:
            self.assertEqual(self.d.get_bytes(d), b"notify")
        finally:
            self.d.kill()

    def test_sigint_also_stops_cleanly(self):
        self.spawn()
        self.recv("READY=1")
        self.proc.send_signal(signal.SIGINT)
        self.recv("STOPPING=1")
        self.assertEqual(self.proc.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(self.d.socket))

    def test_sigterm_drains_in_flight_upload(self):
        self.spawn()
        self.recv("READY=1")
        data = os.urandom(3 << 20)
        h = sha256_digest(data)
        go = threading.Event()

        def gen():
            yield pb.PutRequest(header=pb.PutHeader(digest=pb.Digest(hash=h, size_bytes=len(data))))
            yield pb.PutRequest(data=data[:1 << 20])
            go.wait(30)
            yield pb.PutRequest(data=data[1 << 20:])
        ch = grpc.insecure_channel(self.d.address)
        fut = pb_grpc.StoreStub(ch).Put.future(gen(), timeout=60)
        tmp = os.path.join(self.d.data_dir, "tmp")
        deadline = time.time() + 20
        while not os.listdir(tmp) and time.time() < deadline:
            time.sleep(0.02)
        self.assertTrue(os.listdir(tmp), "the upload never started")
        self.proc.send_signal(signal.SIGTERM)
        self.recv("STOPPING=1")
        go.set()
        resp = fut.result(timeout=30)
        ch.close()
        self.assertEqual(resp.digest.hash, h)
        self.assertEqual(self.proc.wait(timeout=30), 0)
        self.d.start()
        try:
            self.assertEqual(self.d.get_bytes(h), data)
            self.assertEqual(os.listdir(tmp), [])
        finally:
            self.d.kill()

    def test_no_ready_when_storage_cannot_open(self):
        with open(os.path.join(self.tmp, "not-a-dir"), "w") as f:
            f.write("x")
        bad = Daemon(self.tmp, data_dir=os.path.join(self.tmp, "not-a-dir", "data"),
                     env={"NOTIFY_SOCKET": self.notify_path})
        self.spawn(bad)
        rc = self.proc.wait(timeout=30)
        self.assertNotEqual(rc, 0)
        self.notify.settimeout(0.5)
        msgs = []
        try:
            while True:
                msgs.append(self.notify.recv(4096).decode())
        except socket.timeout:
            pass
        self.assertFalse(any("READY=1" in m.split("\n") for m in msgs), msgs)
        self.assertFalse(os.path.exists(bad.socket))

    def test_second_daemon_on_same_socket_or_data_dir_refused(self):
        self.spawn()
        self.recv("READY=1")
        # Same socket, other data dir: refused, the first keeps serving.
        other = tempfile.mkdtemp(dir=self.tmp)
        d2 = Daemon(other)
        d2.socket = self.d.socket
        p = subprocess.run(d2.command(), capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"another daemon", p.stderr)
        # Same data dir, other socket: RocksDB's lock refuses it.
        d3 = Daemon(self.tmp)
        d3.socket = os.path.join(other, "d3.sock")
        p = subprocess.run(d3.command(), capture_output=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p.stderr)
        self.assertFalse(os.path.exists(d3.socket))
        self.assertTrue(answers(self.d.address))
        self.assertTrue(os.path.exists(self.d.socket))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class WatchdogTest(NotifySocket):
    def test_watchdog_pings_while_serving(self):
        # WATCHDOG_USEC as systemd sets it for WatchdogSec=; pings every half.
        self.d = Daemon(self.tmp, env={"NOTIFY_SOCKET": self.notify_path, "WATCHDOG_USEC": "400000"})
        self.d.env.pop("WATCHDOG_PID", None)
        self.spawn()
        before_ready = self.recv("READY=1")
        self.assertFalse(any("WATCHDOG=1" in f for f, _ in before_ready), before_ready)
        start = time.time()
        pings = 0
        while time.time() - start < 2.0:
            self.recv("WATCHDOG=1", timeout=2)
            pings += 1
        # ~10 expected (every 0.2 s); each one after a health RPC and a RocksDB read.
        self.assertGreaterEqual(pings, 4)  # slack for a loaded test machine
        self.assertLessEqual(pings, 15)
        self.assertIn("shredd: watchdog interval_ms=400", self.d.log())
        self.assertTrue(answers(self.d.address))
        self.proc.send_signal(signal.SIGTERM)
        seen = self.recv("STOPPING=1")
        self.assertEqual(self.proc.wait(timeout=30), 0, self.d.log())
        # Nothing after STOPPING=1 (the watchdog thread stopped first).
        self.notify.settimeout(0.5)
        late = []
        try:
            while True:
                late.append(self.notify.recv(4096).decode())
        except socket.timeout:
            pass
        self.assertEqual(late, [])

    def test_no_watchdog_without_watchdog_usec(self):
        self.d.env.pop("WATCHDOG_USEC", None)
        self.spawn()
        self.recv("READY=1")
        self.notify.settimeout(1.0)
        with self.assertRaises(socket.timeout):
            self.notify.recv(4096)
        self.assertNotIn("watchdog", self.d.log())

    def test_watchdog_for_another_pid_is_ignored(self):
        self.d = Daemon(self.tmp, env={"NOTIFY_SOCKET": self.notify_path, "WATCHDOG_USEC": "400000",
                                       "WATCHDOG_PID": "1"})
        self.spawn()
        self.recv("READY=1")
        self.notify.settimeout(1.0)
        with self.assertRaises(socket.timeout):
            self.notify.recv(4096)


class ReloadTest(NotifySocket):
    def json_lines(self):
        out = []
        for line in self.d.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def test_sighup_reloads_log_format_and_keeps_the_old_config_on_error(self):
        config = os.path.join(self.tmp, "shredd.toml")
        write(config, '[server]\nlog_format = "text"\n')
        self.d = Daemon(self.tmp, env={"NOTIFY_SOCKET": self.notify_path}, extra_args=["--config", config])
        self.spawn()
        self.recv("READY=1")
        self.assertIn("shredd: serving ", self.d.log())
        self.assertEqual(self.json_lines(), [])

        # 1. log_format = "json" and a role grant: applied at once.
        write(config, '[server]\nlog_format = "json"\n\n[[roles.local]]\nuid = 4242\nroles = ["auditor"]\n')
        self.proc.send_signal(signal.SIGHUP)
        seen = self.recv("READY=1")
        self.assertTrue(any("RELOADING=1" in f for f, _ in seen), seen)
        reloaded = [j for j in self.json_lines() if j["msg"] == "config reloaded"]
        self.assertEqual(len(reloaded), 1, self.d.log())
        self.assertEqual(reloaded[0]["log_format"], "json")
        self.assertEqual(reloaded[0]["local_grants"], 1)
        self.assertEqual(reloaded[0]["level"], "info")
        self.assertRegex(reloaded[0]["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # Later events are JSON too.
        data = b"reload"
        digest = self.d.put_bytes(data)
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)], reason="reload test"),
                                timeout=60)
        epochs = [j for j in self.json_lines() if j["msg"] == "shred epoch"]
        self.assertEqual(len(epochs), 1, self.d.log())
        self.assertEqual((epochs[0]["destroyed_epoch"], epochs[0]["installed_epoch"], epochs[0]["items"]), (1, 2, 1))
        self.assertIsInstance(epochs[0]["seconds"], float)

        # 2. A broken config: logged, the running one stays.
        write(config, '[server]\nlog_format = "text"\nlisten_on = ["unix:/x"]\n')
        self.proc.send_signal(signal.SIGHUP)
        seen = self.recv("READY=1")
        self.assertTrue(any("STATUS=serving (config reload failed)" in f for f, _ in seen), seen)
        failed = [j for j in self.json_lines() if j["msg"].startswith("config reload failed")]
        self.assertEqual(len(failed), 1, self.d.log())
        self.assertEqual(failed[0]["level"], "error")
        self.assertIn(config + ":3: server.listen_on: unknown key", failed[0]["reason"])
        self.assertTrue(answers(self.d.address))

        # 3. A key that needs a restart: said so, the rest applied.
        write(config, '[server]\nlog_format = "text"\ninline_threshold = 1000\n')
        self.proc.send_signal(signal.SIGHUP)
        self.recv("READY=1")
        log = self.d.log()
        self.assertIn("shredd: warning: config key changed; it takes effect at the next start "
                      "key=server.inline_threshold", log)
        self.assertIn("shredd: config reloaded local_grants=0 tls_grants=0 min_free_mib=256 log_format=text", log)

        # 4. The file is gone: logged, still serving.
        os.unlink(config)
        self.proc.send_signal(signal.SIGHUP)
        self.recv("READY=1")
        self.assertIn("config reload failed; the running config stays in force reason=\"cannot read config file",
                      self.d.log())
        self.proc.send_signal(signal.SIGTERM)
        self.recv("STOPPING=1")
        self.assertEqual(self.proc.wait(timeout=30), 0, self.d.log())


class OrderStopTest(unittest.TestCase):
    """SIGTERM while a large order runs: exit 0, and after the restart the
    order completes with exactly one certificate."""

    ITEMS = int(os.environ.get("SHREDD_STOP_ORDER_ITEMS", "20000"))

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-stop-")
        self.d = Daemon(self.tmp)

    def tearDown(self):
        self.d.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def fill(self, n):
        for start in range(0, n, 1000):
            req = pb.BatchPutRequest()
            for i in range(start, min(n, start + 1000)):
                data = b"stop-order-%d-" % i + os.urandom(32)
                e = req.entries.add()
                e.header.digest.hash = sha256_digest(data)
                e.header.digest.size_bytes = len(data)
                e.header.metadata.kind = pb.KIND_PHOTO
                e.header.metadata.datasets.append("big")
                e.data = data
            results = self.d.store().BatchPut(req, timeout=300).results
            self.assertTrue(all(r.code == 0 for r in results))

    def certificates_for(self, order_id):
        from shredd.v1 import log_pb2 as lpb
        from shredd.v1 import log_pb2_grpc as lpb_grpc
        log = lpb_grpc.LogStub(self.d.channel())
        size = int(log.GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30).checkpoint.split("\n")[1])
        found = []
        for start in range(0, size, 1000):
            for e in log.GetEntries(lpb.GetEntriesRequest(start=start, end=min(size, start + 1000)),
                                    timeout=60).entries:
                try:
                    env = json.loads(e)
                except ValueError:
                    continue
                if "payloadType" not in env:
                    continue
                stmt = json.loads(base64.b64decode(env["payload"]))
                if stmt["predicate"].get("order", {}).get("id") == order_id:
                    found.append(stmt["predicate"]["certificateId"])
        return found

    def test_sigterm_during_a_large_order(self):
        from shredd.v1 import orders_pb2 as opb
        from shredd.v1 import orders_pb2_grpc as opb_grpc
        self.d.start()
        self.fill(self.ITEMS)
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="big-order", basis=opb.OTHER, reference="r", datasets=["big"]),
                           timeout=60)
        deadline = time.time() + 60
        while time.time() < deadline:
            st = orders.GetOrder(opb.GetOrderRequest(order_id="big-order"), timeout=30)
            if st.state != opb.ORDER_PENDING:
                break
            time.sleep(0.01)
        self.assertEqual(st.state, opb.ORDER_RUNNING, "the order finished before SIGTERM: raise "
                                                      "SHREDD_STOP_ORDER_ITEMS")
        t0 = time.time()
        self.assertEqual(self.d.stop(timeout=60), 0, self.d.log())
        stop_seconds = time.time() - t0
        self.assertLess(stop_seconds, 30, "longer than the unit's TimeoutStopSec")
        log = self.d.log()
        self.assertIn("stopped cleanly", log)
        left = "shredd: order left for the next start order=big-order" in log
        finished = "shredd: order state order=big-order state=done" in log
        self.assertTrue(left or finished, log)
        sys.stderr.write("\n[%d items] SIGTERM while running: stopped in %.1fs, order %s\n" % (
            self.ITEMS, stop_seconds, "left checkpointed" if left else "finished first"))

        self.d.start()
        orders = opb_grpc.OrdersStub(self.d.channel())
        st = orders.GetOrder(opb.GetOrderRequest(order_id="big-order", wait=True), timeout=300)
        self.assertEqual(st.state, opb.ORDER_DONE, st.message)
        self.assertEqual(st.items_shredded, self.ITEMS)
        certs = self.certificates_for("big-order")
        self.assertEqual(certs, [st.certificate_id])
        left_over = self.d.store().List(pb.ListRequest(dataset="big", page_size=10), timeout=60)
        self.assertEqual(len(left_over.items), 0)


class UnitFileTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(UNIT):
            self.skipTest("systemd/shredd.service does not exist yet")
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        with open(UNIT) as f:
            self.text = f.read()

    def test_unit_declares_notify(self):
        self.assertRegex(self.text, r"(?m)^Type=notify\s*$")
        self.assertRegex(self.text, r"(?m)^ExecStart=")

    def test_systemd_analyze_verify(self):
        tmp = tempfile.mkdtemp(prefix="shredd-unit-")
        try:
            def rewrite(m):
                args = m.group(2).split(None, 1)
                return m.group(1) + SHREDD + (" " + args[1] if len(args) > 1 else "")
            text = re.sub(r"(?m)^(ExecStart=[-@:+!]*)(.*)$", rewrite, self.text)
            self.assertIn(SHREDD, text)
            path = os.path.join(tmp, "shredd.service")
            with open(path, "w") as f:
                f.write(text)
            p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
            about_unit = [l for l in (p.stdout + p.stderr).splitlines() if "shredd.service" in l]
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(about_unit, [], "systemd-analyze warns about the unit")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
