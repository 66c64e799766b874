"""The Debian package (issue 16, part 6): `cpack -G DEB` builds it from the
build tree, `lintian` finds no error in it, it holds what docs/SERVICE.md
"Install the package" lists, and the packaged binaries, unit, sysusers.d
and tmpfiles.d entries, manual pages and completions work from an
extracted copy (`dpkg-deb -x`)."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import SHREDCTL, Daemon, file_digest

BUILD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(SHREDCTL)))
TOOLS = ("cpack", "dpkg-deb", "lintian", "systemd-sysusers", "systemd-tmpfiles")
EXPECTED = [
    "./usr/bin/shredd", "./usr/bin/shredctl",
    "./usr/lib/systemd/system/shredd.service",
    "./usr/lib/sysusers.d/shredd.conf", "./usr/lib/tmpfiles.d/shredd.conf",
    "./etc/shredd/shredd.toml",
    "./usr/share/man/man1/shredctl.1.gz", "./usr/share/man/man5/shredd.toml.5.gz",
    "./usr/share/man/man8/shredd.8.gz",
    "./usr/share/bash-completion/completions/shredctl", "./usr/share/zsh/vendor-completions/_shredctl",
    "./usr/share/fish/vendor_completions.d/shredctl.fish",
    "./usr/share/doc/shredd/copyright", "./usr/share/doc/shredd/changelog.gz",
]


class PackagedDaemon(Daemon):
    binary = None

    def command(self):
        return [self.binary] + super().command()[1:]


def run(*cmd, timeout=600, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


@unittest.skipUnless(all(shutil.which(t) for t in TOOLS), "needs %s (scripts/install-deps.sh)" % ", ".join(TOOLS))
class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="shredd-deb-")
        p = run("cpack", "-G", "DEB", "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake"), "-B", cls.tmp)
        assert p.returncode == 0, p.stdout + p.stderr
        debs = glob.glob(os.path.join(cls.tmp, "shredd_*.deb"))
        assert len(debs) == 1, os.listdir(cls.tmp)
        cls.deb = debs[0]
        cls.root = os.path.join(cls.tmp, "root")
        p = run("dpkg-deb", "-x", cls.deb, cls.root)
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("./"))

    def test_lintian_finds_no_errors(self):
        p = run("lintian", "--no-tag-display-limit", "--allow-root", self.deb)
        errors = [l for l in p.stdout.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], p.stdout + p.stderr)
        self.assertNotIn("E:", p.stderr)

    def test_contents_and_control(self):
        p = run("dpkg-deb", "-c", self.deb)
        self.assertEqual(p.returncode, 0, p.stderr)
        listed = {line.split()[-1] for line in p.stdout.splitlines()}
        for path in EXPECTED:
            self.assertIn(path, listed)
        control = run("dpkg-deb", "-f", self.deb).stdout
        self.assertRegex(control, r"(?m)^Package: shredd$")
        self.assertRegex(control, r"(?m)^Depends: .*libgrpc")
        self.assertEqual(run("dpkg-deb", "--ctrl-tarfile", self.deb).returncode, 0)
        conffiles = run("sh", "-c", 'dpkg-deb -I "$0" conffiles', self.deb).stdout
        self.assertEqual(conffiles.split(), ["/etc/shredd/shredd.toml"])

    def test_packaged_binaries_run(self):
        bindir = self.path("usr/bin")
        self.assertRegex(run(os.path.join(bindir, "shredctl"), "--version").stdout, r"^shredctl \d")
        self.assertRegex(run(os.path.join(bindir, "shredd"), "--version").stdout, r"^shredd \d")
        # The packaged daemon and client together, on a scratch data dir.
        work = os.path.join(self.tmp, "run")
        os.makedirs(work)
        d = PackagedDaemon(work)
        d.binary = os.path.join(bindir, "shredd")
        d.start()
        try:
            f = os.path.join(work, "photo.jpg")
            with open(f, "wb") as out:
                out.write(os.urandom(100000))
            ctl = os.path.join(bindir, "shredctl")
            p = run(ctl, "put", f, "--server", d.address, "-q")
            self.assertEqual(p.returncode, 0, p.stderr)
            p = subprocess.run([ctl, "get", file_digest(f), "--server", d.address], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(f, "rb") as src:
                self.assertEqual(p.stdout, src.read())
        finally:
            d.stop()
        # The packaged config is valid as shipped.
        p = run(os.path.join(bindir, "shredd"), "--check-config", "--config", self.path("etc/shredd/shredd.toml"))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_unit_user_and_directories(self):
        with open(self.path("usr/lib/systemd/system/shredd.service")) as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStart=/usr/bin/shredd --config /etc/shredd/shredd.toml$")
        self.assertRegex(unit, r"(?m)^User=shredd$")
        self.assertNotRegex(unit, r"(?m)^DynamicUser=")
        for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "MemoryDenyWriteExecute=yes",
                     "SystemCallFilter=@system-service", "PrivateTmp=yes", "RemoveIPC=yes"):
            self.assertRegex(unit, r"(?m)^%s$" % re.escape(line))
        p = run("systemd-analyze", "security", "--offline=true", self.path("usr/lib/systemd/system/shredd.service"))
        m = re.search(r"Overall exposure level for shredd.service: ([0-9.]+)", p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0)
        # sysusers.d and tmpfiles.d applied to the extracted tree: the user,
        # then owner-only directories that it owns.
        os.makedirs(self.path("etc"), exist_ok=True)
        p = run("systemd-sysusers", "--root", self.root)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.path("etc/passwd")) as f:
            user = [l.split(":") for l in f if l.startswith("shredd:")]
        self.assertEqual(len(user), 1)
        uid = int(user[0][2])
        p = run("systemd-tmpfiles", "--root", self.root, "--create", "shredd.conf")
        self.assertEqual(p.returncode, 0, p.stderr)
        for d in ("var/lib/shredd", "var/lib/shredd-vault"):
            st = os.stat(self.path(d))
            self.assertEqual((st.st_mode & 0o777, st.st_uid), (0o700, uid), d)

    def test_man_pages_and_completion_from_the_package(self):
        for page in ("usr/share/man/man1/shredctl.1.gz", "usr/share/man/man5/shredd.toml.5.gz",
                     "usr/share/man/man8/shredd.8.gz"):
            p = run("man", "-l", self.path(page), env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("NAME", p.stdout)
        p = run("bash", "-c", 'source "$0" && complete -p shredctl',
                self.path("usr/share/bash-completion/completions/shredctl"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("_shredctl", p.stdout)


if __name__ == "__main__":
    unittest.main()
