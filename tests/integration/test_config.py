"""The config file (--config) and `shredd --check-config`: the shipped example
is valid, every kind of mistake exits 1 with one line naming the key (and
its line), checking touches nothing, the daemon runs from a config, and
command-line flags override it."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import REPO, SHREDD, Daemon

EXAMPLE = os.path.join(os.environ.get("SHREDD_REPO", REPO), "systemd", "shredd.toml")


def shredd(*args, cwd=None):
    return subprocess.run([SHREDD] + list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def self_signed(dir, name):
    cert, key = os.path.join(dir, name + ".pem"), os.path.join(dir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", key, "-out", cert,
                    "-subj", "/CN=" + name, "-days", "2"], check=True, capture_output=True)
    return cert, key


class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-config-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, text, name="shredd.toml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, path, *flags):
        return shredd("--check-config", "--config", path, *flags, cwd=self.tmp)

    def assertRejected(self, text, want, *flags):
        path = self.config(text)
        before = sorted(os.listdir(self.tmp))
        p = self.check(path, *flags)
        self.assertEqual(p.returncode, 1, (text, p.stdout, p.stderr))
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertTrue(p.stderr.startswith("shredd: "), p.stderr)
        self.assertIn(want, p.stderr, text)
        self.assertEqual(p.stdout, "")
        self.assertEqual(sorted(os.listdir(self.tmp)), before, "--check-config created files")
        return p.stderr

    def test_shipped_example_is_valid(self):
        p = shredd("--check-config", "--config", EXAMPLE)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "shredd: %s is valid\n" % EXAMPLE)
        self.assertEqual(p.stderr, "")

    def test_defaults_are_valid(self):
        p = shredd("--check-config", cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("the default config is valid", p.stdout)
        self.assertEqual(os.listdir(self.tmp), [], "checking the defaults created ./var")

    def test_full_config_with_tls_files_is_valid_and_touches_nothing(self):
        cert, key = self_signed(self.tmp, "server")
        ca, _ = self_signed(self.tmp, "clients")
        path = self.config(f'''
[server]
data_dir = "{self.tmp}/data"
vault = "file:{self.tmp}/vault"
listen = ["unix:{self.tmp}/s.sock", "tcp:0.0.0.0:7443"]
log_origin = "example.com/shredd"
inline_threshold = 1024
metrics_listen = "127.0.0.1:9464"
log_format = "json"

[storage]
memory_budget_mib = 64

[tls]
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"

[[roles.local]]
uid = 1000
roles = ["writer", "deleter"]

[[roles.tls]]
subject = "CN=regulator,O=FTC"
san = ""
roles = ["auditor"]
''')
        before = sorted(os.listdir(self.tmp))
        p = self.check(path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), before)

    def test_mistakes_name_the_key_and_line(self):
        cases = [
            ('[server]\ndata_dir = "d"\ndatadir = "x"\n', "shredd.toml:3: server.datadir: unknown key"),
            ('[server]\ninline_threshold = "64k"\n', "shredd.toml:2: server.inline_threshold: expected an integer, got a string"),
            ('[server]\nlisten = "unix:/x"\n', "server.listen: expected an array of strings"),
            ('[server]\nlisten = ["http://x"]\n', "shredd.toml:2: server.listen[0]: unknown listen address"),
            ('[server]\nmetrics_listen = "0.0.0.0:9464"\n', "serves loopback only"),
            ('[server]\nlog_format = "yaml"\n', 'expected "text" or "json"'),
            ('[[roles.local]]\nuid = 1000\nroles = ["superuser"]\n', 'roles.local[0].roles: unknown role "superuser"'),
            ('[[roles.tls]]\nroles = ["auditor"]\n', "roles.tls[0]: needs subject or san"),
            ('[server\n', "shredd.toml:1: "),
            ('[server]\nlisten = ["tcp:0.0.0.0:7443"]\n', "only loopback addresses are allowed without TLS"),
            ('[tls]\ncert = "/etc/hostname"\n', "[tls] needs all of cert, key and client_ca"),
            ('[storage]\nmemory_budget_mib = 8\n',
             "shredd.toml:2: storage.memory_budget_mib: must be between 16 and 1048576, got 8"),
            ('[storage]\nmemory_budget_mib = "128M"\n',
             "shredd.toml:2: storage.memory_budget_mib: expected an integer, got a string"),
            ('[storage]\nmemory_budget_mib = 128\ncache_mib = 1\n',
             "shredd.toml:3: storage.cache_mib: unknown key (known: memory_budget_mib, min_free_mib, transfer_memory_mib, "
             "transfer_idle_s)"),
        ]
        for text, want in cases:
            self.assertRejected(text, want)

    def test_pins_are_not_echoed(self):
        err = self.assertRejected('[server]\nvault = "pkcs11:token=t;pin=8675309"\n', "needs module=PATH")
        self.assertNotIn("8675309", err)
        err = self.assertRejected('[server]\nvault = "vault:pin=8675309"\n', "unknown vault scheme")
        self.assertNotIn("8675309", err)

    def test_tls_files_are_read_and_checked(self):
        cert, key = self_signed(self.tmp, "server")
        other_cert, other_key = self_signed(self.tmp, "other")
        tls = '[tls]\ncert = "%s"\nkey = "%s"\nclient_ca = "%s"\n'
        self.assertRejected(tls % (cert, key, os.path.join(self.tmp, "missing.pem")),
                            "tls.client_ca: cannot read")
        self.assertRejected(tls % (cert, other_key, other_cert), "does not match the first certificate")
        self.assertRejected(tls % (cert, cert, other_cert), "holds no unencrypted PEM private key")
        self.assertRejected(tls % (key, key, other_cert), "tls.cert: %s holds no PEM certificate" % key)
        os.chmod(key, 0)
        if os.geteuid() != 0:  # root reads anything
            self.assertRejected(tls % (cert, key, other_cert), "tls.key: cannot read")

    def test_missing_file(self):
        p = self.check(os.path.join(self.tmp, "nope.toml"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot read config file", p.stderr)

    def test_flags_are_checked_too(self):
        path = self.config("")
        p = self.check(path, "--listen", "tcp:0.0.0.0:1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("only loopback addresses are allowed without TLS", p.stderr)
        p = self.check(path, "--metrics-listen", "10.0.0.1:9464")
        self.assertEqual(p.returncode, 1)
        p = self.check(path, "--inline-threshold", "2000000")
        self.assertEqual(p.returncode, 1)
        self.assertIn("server.inline_threshold must be at most 1048576", p.stderr)
        p = self.check(path, "--memory-budget-mib", "4")
        self.assertEqual(p.returncode, 1)
        self.assertIn("storage.memory_budget_mib must be between 16 and 1048576 (MiB), got 4", p.stderr)
        self.assertEqual(self.check(path, "--memory-budget-mib", "32").returncode, 0)
        p = shredd("--log-format", "xml")
        self.assertEqual(p.returncode, 2)
        # A uid past uid_t wrapped around: 4294967296 was uid 0 (root got
        # admin), and a number past 64 bits aborted the daemon.
        for uid in ("4294967296", "4294967295", "99999999999999999999999"):
            p = self.check(path, "--grant-uid", uid + "=admin")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--grant-uid: uid %s must be between 0 and 4294967294" % uid, p.stderr)
        self.assertEqual(self.check(path, "--grant-uid", "4294967294=admin").returncode, 0)
        # A flag fixes what the file gets wrong: flags override.
        path = self.config('[server]\nlisten = ["tcp:0.0.0.0:1"]\n')
        self.assertEqual(self.check(path).returncode, 1)
        self.assertEqual(self.check(path, "--listen", "unix:%s/x.sock" % self.tmp).returncode, 0)


class RunFromConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-config-")
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_daemon_uses_the_file_and_flags_override_it(self):
        root = os.path.join(self.tmp, "r")
        os.makedirs(root)
        config = os.path.join(self.tmp, "shredd.toml")
        with open(config, "w") as f:
            f.write('[server]\ndata_dir = "%s/from-file-data"\nvault = "file:%s/from-file-vault"\n'
                    'listen = ["unix:%s/from-file.sock"]\nlog_format = "json"\n' % (root, root, root))

        class FromFile(Daemon):
            def command(self):
                return [SHREDD, "--config", config] + self.extra_args
        self.d = FromFile(root)
        self.d.socket = os.path.join(root, "from-file.sock")
        self.d.start()
        digest = self.d.put_bytes(b"from the config file")
        self.assertTrue(os.path.isdir(os.path.join(root, "from-file-data", "db")))
        self.assertTrue(os.path.isdir(os.path.join(root, "from-file-vault")))
        self.assertTrue(self.d.log().startswith("{"), self.d.log())
        self.assertEqual(self.d.stop(), 0)

        # Flags win: another socket and text logs, same data and vault.
        self.d = FromFile(root, extra_args=["--listen", "unix:%s/flag.sock" % root, "--log-format", "text"])
        self.d.socket = os.path.join(root, "flag.sock")
        self.d.start()
        self.assertEqual(self.d.get_bytes(digest), b"from the config file")
        self.assertFalse(os.path.exists(os.path.join(root, "from-file.sock")))
        self.assertIn("shredd: serving listen=unix:%s/flag.sock" % root, self.d.log())
        self.assertEqual(self.d.stop(), 0)

    def test_a_bad_config_starts_nothing(self):
        config = os.path.join(self.tmp, "shredd.toml")
        with open(config, "w") as f:
            f.write('[server]\ndata_dir = "%s/data"\nlisten = ["unix:%s/s.sock"]\nwrong = 1\n' % (self.tmp, self.tmp))
        p = subprocess.run([SHREDD, "--config", config], capture_output=True, text=True, timeout=60, cwd=self.tmp)
        self.assertEqual(p.returncode, 1)
        self.assertIn("shredd.toml:4: server.wrong: unknown key", p.stderr)
        self.assertEqual(os.listdir(self.tmp), ["shredd.toml"])


if __name__ == "__main__":
    unittest.main()
