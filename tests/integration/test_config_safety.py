"""Unsafe configurations (issue 12, defect 9): a file vault inside the data
dir, or containing it (also through symlinks and ".."), is refused by
`--check-config` and by the daemon, touching nothing; a lost signing key
beside an existing log is not silently replaced (a rotation takes the
explicit --new-signing-key); a vault open to other users is refused and a
data dir open to them is warned about."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import SHREDCTL, SHREDD, Daemon, pb
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


NOBODY = 65534


class ConfigFileSafetyTest(unittest.TestCase):
    """Review finding: the config file decides who holds which role, yet a
    file (or a directory above it) that another local user could write was
    read at start and on every SIGHUP. Like sshd and sudo, shredd refuses it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-conffile-")
        os.chmod(self.tmp, 0o755)  # the socket must be reachable by the other uid
        self.config = os.path.join(self.tmp, "shredd.toml")
        self.write_config("auditor")
        self.d = None

    def tearDown(self):
        if self.d is not None:
            self.d.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_config(self, role):
        with open(self.config, "w") as f:
            f.write('[[roles.local]]\nuid = %d\nroles = ["%s"]\n' % (NOBODY, role))

    def run_both(self, config):
        """--check-config, then a start; both with the same flags."""
        flags = ["--config", config, "--data-dir", self.tmp + "/data", "--vault", "file:%s/vault" % self.tmp,
                 "--listen", "unix:%s/s.sock" % self.tmp]
        return [shredd(*extra, *flags, cwd=self.tmp) for extra in (["--check-config"], [])]

    def refused(self, want, config=None):
        before = tree(self.tmp)
        for p in self.run_both(config or self.config):
            self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
            self.assertIn("refusing config file %s" % (config or self.config), p.stderr)
            self.assertIn(want, p.stderr)
            self.assertIn("could grant themselves any role", p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertEqual(tree(self.tmp), before, "a refused config created files")

    def accepted(self, config=None):
        p = shredd("--check-config", "--config", config or self.config, "--data-dir", self.tmp + "/data",
                   "--vault", "file:%s/vault" % self.tmp, "--listen", "unix:%s/s.sock" % self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_config_file_others_can_write_is_refused(self):
        uid = os.geteuid()
        for mode in (0o666, 0o620, 0o602):
            with self.subTest(mode=oct(mode)):
                os.chmod(self.config, mode)
                self.refused("(mode 0%o, owner uid %d): its group or other users can write it" % (mode, uid))
                self.assertIn("chmod go-w " + self.config, self.run_both(self.config)[0].stderr)
        for mode in (0o600, 0o644, 0o400):
            with self.subTest(mode=oct(mode)):
                os.chmod(self.config, mode)
                self.accepted()

    def test_a_config_file_in_a_directory_others_can_write_is_refused(self):
        conf_dir = os.path.join(self.tmp, "etc")
        os.mkdir(conf_dir)
        config = os.path.join(conf_dir, "shredd.toml")
        shutil.copy(self.config, config)
        os.chmod(config, 0o644)
        for mode in (0o777, 0o775):
            os.chmod(conf_dir, mode)
            self.refused("directory %s (mode 0%o" % (conf_dir, mode), config)
        os.chmod(conf_dir, 0o1777)  # sticky, like /tmp: others cannot replace our file
        self.accepted(config)
        os.chmod(conf_dir, 0o755)
        self.accepted(config)
        # A symlink in a directory others can write: they could point it elsewhere.
        open_dir = os.path.join(self.tmp, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        link = os.path.join(open_dir, "shredd.toml")
        os.symlink(config, link)
        self.refused("directory %s (mode 0777" % open_dir, link)

    def test_a_config_file_owned_by_another_user_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to chown")
        os.chmod(self.config, 0o644)
        os.chown(self.config, NOBODY, NOBODY)
        self.refused("(mode 0644, owner uid %d): uid %d owns it" % (NOBODY, NOBODY))
        os.chown(self.config, 0, 0)
        self.accepted()
        conf_dir = os.path.join(self.tmp, "theirs")
        os.mkdir(conf_dir, 0o755)
        config = os.path.join(conf_dir, "shredd.toml")
        shutil.copy(self.config, config)
        os.chown(conf_dir, NOBODY, NOBODY)
        self.refused("directory %s (mode 0755, owner uid %d) lets uid %d replace the file" % (conf_dir, NOBODY, NOBODY),
                     config)

    def can_switch_uid(self):
        return os.geteuid() == 0 and shutil.which("setpriv") is not None

    def nobody_ls(self):
        cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
               SHREDCTL, "--server", self.d.address, "ls"]
        return subprocess.run(cmd, capture_output=True, timeout=120, cwd="/").returncode

    def reload(self, want):
        start = len(self.d.log())
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while want not in self.d.log()[start:] and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.d.log()[start:]

    def test_a_reload_refuses_a_config_others_can_write_and_keeps_the_roles(self):
        os.chmod(self.config, 0o600)
        self.d = Daemon(self.tmp, extra_args=["--config", self.config])
        self.d.start()
        if self.can_switch_uid():
            self.assertEqual(self.nobody_ls(), 6)  # an auditor may not list items
        # Someone who can write the file grants themselves admin.
        self.write_config("admin")
        os.chmod(self.config, 0o666)
        log = self.reload("config reload failed")
        self.assertIn("config reload failed; the running config stays in force", log)
        self.assertIn("refusing config file %s (mode 0666" % self.config, log)
        self.assertNotIn("config reloaded", log)
        if self.can_switch_uid():
            self.assertEqual(self.nobody_ls(), 6)
        # The same file, safe again, is applied.
        os.chmod(self.config, 0o600)
        log = self.reload("config reloaded")
        self.assertIn("config reloaded local_grants=1", log)
        if self.can_switch_uid():
            self.assertEqual(self.nobody_ls(), 0)


if __name__ == "__main__":
    unittest.main()
