"""Unsafe configurations (issue 12, defect 9): a file vault inside the data
dir, or containing it (also through symlinks and ".."), is refused by
`--check-config` and by the daemon, touching nothing; a lost signing key
beside an existing log is not silently replaced (a rotation takes the
explicit --new-signing-key); a vault open to other users is refused and a
data dir open to them is warned about."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import SHREDD, Daemon, pb
from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402


def shredd(*args, cwd=None):
    return subprocess.run([SHREDD] + list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def tree(root):
    out = []
    for dirpath, dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirs + files]
    return sorted(out)


class LayoutTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-layout-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def refused(self, data_dir, vault_dir, want):
        """Both --check-config and a start refuse, with `want` in one line, creating nothing."""
        before = tree(self.tmp)
        flags = ["--data-dir", data_dir, "--vault", "file:" + vault_dir,
                 "--listen", "unix:%s/s.sock" % self.tmp]
        for extra in (["--check-config"], []):
            p = shredd(*extra, *flags, cwd=self.tmp)
            self.assertEqual(p.returncode, 1, (extra, data_dir, vault_dir, p.stdout, p.stderr))
            self.assertIn(want, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertEqual(tree(self.tmp), before, "a refused config created files")

    def test_vault_inside_the_data_dir_is_refused(self):
        t = self.tmp
        os.makedirs(os.path.join(t, "d"), mode=0o700)
        self.refused(t + "/d", t + "/d/vault", "vault inside the data dir")
        self.refused(t + "/d", t + "/d/sub/../vault", "vault inside the data dir")
        self.refused("d", "./d/x/..", "vault inside the data dir")  # relative, the same dir
        os.symlink(t + "/d", t + "/link")
        self.refused(t + "/d", t + "/link/vault", "vault inside the data dir")
        self.refused(t + "/link", t + "/d/../d", "vault inside the data dir")

    def test_vault_containing_the_data_dir_is_refused(self):
        t = self.tmp
        os.makedirs(os.path.join(t, "v"), mode=0o700)
        self.refused(t + "/v/data", t + "/v", "data dir inside the vault")
        os.symlink(t + "/v", t + "/vlink")
        self.refused(t + "/vlink/data", t + "/v", "data dir inside the vault")
        self.refused(t + "/other/../v/data", t + "/vlink", "data dir inside the vault")

    def test_apart_is_fine(self):
        p = shredd("--check-config", "--data-dir", self.tmp + "/data", "--vault", "file:%s/data-vault" % self.tmp,
                   "--listen", "unix:%s/s.sock" % self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")

    def test_vault_open_to_others_is_refused(self):
        v = os.path.join(self.tmp, "vault")
        os.makedirs(v)
        os.chmod(v, 0o755)
        self.refused(self.tmp + "/data", v, "chmod 700 " + v)
        os.chmod(v, 0o700)
        key = os.path.join(v, "signing.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o644)
        self.refused(self.tmp + "/data", v, "chmod 600 " + key)

    def test_vault_owned_by_another_user_is_refused(self):
        # 0700 says nothing when someone else owns it: they read every key.
        if os.geteuid() != 0:
            self.skipTest("needs root to chown")
        v = os.path.join(self.tmp, "their-vault")
        os.makedirs(v, mode=0o700)
        os.chown(v, 65534, 65534)
        self.refused(self.tmp + "/data", v, "owned by uid 65534")
        os.chown(v, 0, 0)
        p = shredd("--check-config", "--data-dir", self.tmp + "/data", "--vault", "file:" + v,
                   "--listen", "unix:%s/s.sock" % self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_data_dir_open_to_others_is_warned_about(self):
        data = os.path.join(self.tmp, "data")
        os.makedirs(data)
        os.chmod(data, 0o750)
        p = shredd("--check-config", "--data-dir", data, "--vault", "file:%s/vault" % self.tmp,
                   "--listen", "unix:%s/s.sock" % self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("warning: data dir %s has mode 0750" % data, p.stderr)
        d = Daemon(self.tmp, data_dir=data)
        try:
            d.start()
            self.assertIn("data dir %s has mode 0750" % data, d.log())
        finally:
            d.kill()


class SigningKeyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-signing-")
        self.d = Daemon(self.tmp)

    def tearDown(self):
        self.d.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def checkpoint(self, d):
        return lpb_grpc.LogStub(d.channel()).GetCheckpoint(lpb.GetCheckpointRequest(), timeout=10).checkpoint

    def start_with_log(self):
        self.d.start()
        self.d.put_bytes(b"an item, so the log is not empty")
        first = self.checkpoint(self.d)
        self.assertEqual(self.d.stop(), 0)
        return first

    def test_lost_signing_key_is_not_replaced(self):
        first = self.start_with_log()
        key = os.path.join(self.tmp, "vault", "signing.key")
        os.unlink(key)
        rc = self.d.start(expect_fail=True)
        self.assertEqual(rc, 1)
        self.assertIn("signing key", self.d.log())
        self.assertIn("--new-signing-key", self.d.log())
        self.assertFalse(os.path.exists(key), "a new signing key was made beside the existing log")

        # A deliberate rotation: explicit, logged, and then it sticks.
        self.d.extra_args = ["--new-signing-key"]
        self.d.start()
        self.assertIn("new signing key", self.d.log())
        self.assertTrue(os.path.exists(key))
        second = self.checkpoint(self.d)
        self.assertNotEqual(first.split("\n")[0], second.split("\n")[0], "the log origin should change")
        self.assertEqual(self.d.stop(), 0)
        # Left on by mistake, the flag refuses to rotate again.
        self.assertEqual(self.d.start(expect_fail=True), 1)
        self.assertIn("already holds a signing key", self.d.log())
        self.d.extra_args = []
        self.d.start()
        self.assertEqual(self.checkpoint(self.d), second)

    def test_replaced_signing_key_is_refused(self):
        self.start_with_log()
        key = os.path.join(self.tmp, "vault", "signing.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        self.assertEqual(self.d.start(expect_fail=True), 1)
        self.assertIn("does not verify", self.d.log())

    def test_fresh_data_dir_makes_its_key(self):
        self.d.start()
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "vault", "signing.key")))


if __name__ == "__main__":
    unittest.main()
