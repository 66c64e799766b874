"""Smoke test: the daemon starts, stores, reads back and stops cleanly."""
import os
import unittest

from harness import DaemonTest, pb, sha256_digest


class SmokeTest(DaemonTest):
    def test_put_get_stop(self):
        data = b"hello shredd\n" * 100
        d = self.d.put_bytes(data, subjects=["alice"])
        self.assertEqual(d, sha256_digest(data))
        self.assertEqual(self.d.get_bytes(d), data)
        info = self.d.store().Stat(pb.StatRequest(digest=pb.Digest(hash=d)))
        self.assertEqual(info.digest.size_bytes, len(data))
        self.assertEqual(list(info.metadata.subject_ids), ["alice"])
        self.assertEqual(self.d.stop(), 0)


if __name__ == "__main__":
    unittest.main()


class TcpListenTest(unittest.TestCase):
    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="shredd-tcp-")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_loopback_tcp_serves_and_other_addresses_are_refused(self):
        import socket
        from harness import Daemon
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        d = Daemon(self.tmp, extra_args=["--listen", "tcp:127.0.0.1:%d" % port])
        d.start()
        try:
            data = os.urandom(5000)
            path = os.path.join(self.tmp, "x.bin")
            with open(path, "wb") as f:
                f.write(data)
            import subprocess
            from harness import SHREDCTL
            p = subprocess.run([SHREDCTL, "--server", "tcp:127.0.0.1:%d" % port, "--json", "put", path],
                               capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = subprocess.run([SHREDCTL, "--server", "tcp:127.0.0.1:%d" % port, "get", sha256_digest(data)],
                               capture_output=True)
            self.assertEqual(p.stdout, data)
        finally:
            d.kill()
        bad = Daemon(os.path.join(self.tmp, "b"), extra_args=["--listen", "tcp:0.0.0.0:%d" % port])
        os.makedirs(bad.root)
        self.assertNotEqual(bad.start(expect_fail=True), 0)
        self.assertIn("only loopback addresses are allowed without TLS", bad.log())
