"""systemd integration: Type=notify readiness (READY=1 only once storage is
open and the socket answers), STOPPING=1 and a clean exit on SIGTERM, and the
unit file in systemd/ passing `systemd-analyze verify`."""
import os
import re
import shutil
import signal
import socket
import subprocess
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


class NotifyTest(unittest.TestCase):
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
