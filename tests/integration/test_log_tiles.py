"""The transparency log as C2SP tlog-tiles (--log-tiles-dir), end to end: the
real daemon writes its tiles, `python3 -m http.server` serves them, and
`shredctl log monitor --tiles http://...` follows the log with no daemon
access (no socket, no TLS), accepting growth and detecting a rollback and a
fork with the same messages and exit codes as the gRPC monitor
(test_log.py). The layout is checked by tests/tools/tiles_verify.go, which
reads the tiles with Go's golang.org/x/mod/sumdb/tlog only (skipped only if
Go is not installed).
"""
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from harness import REPO, SHREDD, Daemon, DaemonTest, ctl_offline, pb, read_text

TOOLS = os.path.join(REPO, "tests", "tools")
LOG_APPEND = os.path.join(os.path.dirname(SHREDD), "shredd_log_append")
EXIT_VERIFY_FAILED = 3
EXIT_FORK = 7
GO_BIN = None
GO_SKIP_REASON = ""


def setUpModule():
    """Builds the Go tiles verifier once, against Debian's golang.org/x/mod sources."""
    global GO_BIN, GO_SKIP_REASON
    gopath = "/usr/share/gocode"
    if shutil.which("go") is None or not os.path.isdir(os.path.join(gopath, "src/golang.org/x/mod/sumdb/tlog")):
        GO_SKIP_REASON = "Go or golang-golang-x-mod-dev not installed (scripts/install-deps.sh installs them)"
        return
    go_dir = tempfile.mkdtemp(prefix="shredd-go-")
    out = os.path.join(go_dir, "tiles_verify_go")
    env = dict(os.environ, GOPATH=gopath, GO111MODULE="off", GOFLAGS="", GOCACHE=os.path.join(go_dir, "cache"))
    p = subprocess.run(["go", "build", "-o", out, os.path.join(TOOLS, "tiles_verify.go")],
                       capture_output=True, env=env, timeout=300)
    if p.returncode != 0:
        raise AssertionError("building tests/tools/tiles_verify.go failed:\n" + p.stderr.decode())
    GO_BIN = out


def tearDownModule():
    if GO_BIN:
        shutil.rmtree(os.path.dirname(GO_BIN), ignore_errors=True)


def log_append(data_dir, vault, count, prefix):
    """Appends entries to a stopped daemon's log (the test-only tool)."""
    p = subprocess.run([LOG_APPEND, data_dir, vault, str(count), prefix], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(p.stderr.decode())
    return int(p.stdout)


def flip(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x01]))


def parse_bundle(data):
    out = []
    while data:
        n = int.from_bytes(data[:2], "big")
        out.append(data[2:2 + n])
        data = data[2 + n:]
    return out


class TilesTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.tiles = os.path.join(self.tmp, "tiles")
        self.d = Daemon(self.tmp, extra_args=["--log-tiles-dir", self.tiles])
        self.d.start()
        # A static web server over site/, where site/log is a symlink the
        # tests point at one tiles directory or another.
        self.site = os.path.join(self.tmp, "site")
        os.mkdir(self.site)
        self.publish(self.tiles)
        self.http = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                                      "--directory", self.site], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.http.stdout.readline().decode()
        self.assertIn("port", line)
        self.url = "http://127.0.0.1:%d/log" % int(line.split("port")[1].split()[0])

    def tearDown(self):
        self.http.kill()
        self.http.wait()
        self.http.stdout.close()
        super().tearDown()

    # ------------------------------------------------------------ helpers

    def publish(self, tiles_dir):
        link = os.path.join(self.site, "log")
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(tiles_dir, link)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(data)
        return path

    def vkey(self):
        """Derived from the raw public key and the default origin rule, not the daemon's word."""
        raw = self.d.shredder().GetPublicKey(pb.GetPublicKeyRequest(), timeout=30).ed25519_public_key
        origin = "shredd.local/" + hashlib.sha256(raw).hexdigest()[:16]
        typed = b"\x01" + raw
        key_id = hashlib.sha256(origin.encode() + b"\n" + typed).digest()[:4].hex()
        return "%s+%s+%s" % (origin, key_id, base64.b64encode(typed).decode())

    def tiles_size(self, tiles_dir):
        try:
            with open(os.path.join(tiles_dir, "checkpoint")) as f:
                return int(f.read().split("\n")[1])
        except (OSError, IndexError, ValueError):
            return -1

    def wait_tiles(self, size, tiles_dir=None):
        tiles_dir = tiles_dir or self.tiles
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.tiles_size(tiles_dir) == size:
                return
            time.sleep(0.05)
        self.fail("the tiles in %s did not reach tree size %d (at %d)" % (tiles_dir, size,
                                                                          self.tiles_size(tiles_dir)))

    def log_size(self):
        return self.d.ctl("log", "checkpoint", json_out=True)[1][0]["treeSize"]

    def grow(self, count, prefix="test entry"):
        self.assertEqual(self.d.stop(), 0)
        n = log_append(self.d.data_dir, self.d.vault, count, prefix)
        self.d.start()
        return n

    def monitor(self, state, vkey_file, tiles=None, json_out=False):
        """Runs the monitor with no daemon address at all: tiles only."""
        args = ["log", "monitor", "--tiles", tiles or self.url, "--state", state, "--vkey", vkey_file]
        if json_out:
            args = ["--json"] + args
        p = ctl_offline(*args, check=False)
        if json_out:
            import json
            return p, [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        return p

    def go_verify(self, vkey_file, tiles_dir, *old, ok=True):
        if GO_BIN is None:
            return
        p = subprocess.run([GO_BIN, vkey_file, tiles_dir] + list(old), capture_output=True, timeout=120)
        out = (p.stdout + p.stderr).decode()
        if ok:
            self.assertEqual(p.returncode, 0, out)
            self.assertIn("OK tiles", out)
        else:
            self.assertNotEqual(p.returncode, 0, out)
        return out

    # ------------------------------------------------------------ tests

    def test_monitor_over_http_accepts_growth_and_detects_rollback_and_fork(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.assertEqual(self.grow(4), 4)  # appended while stopped: the daemon catches up on start
        self.wait_tiles(4)
        self.go_verify(vkey_file, self.tiles)
        # A copy of the daemon's state at size 4 (data dir and vault: the same
        # signing key), for the fork below, and of its tiles, for the rollback.
        self.assertEqual(self.d.stop(), 0)
        backup_data, backup_vault = os.path.join(self.tmp, "data-at-4"), os.path.join(self.tmp, "vault-at-4")
        shutil.copytree(self.d.data_dir, backup_data)
        shutil.copytree(self.d.vault[len("file:"):], backup_vault)
        tiles_at_4 = os.path.join(self.tmp, "tiles-at-4")
        shutil.copytree(self.tiles, tiles_at_4)
        self.d.start()

        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("trust on first use", p.stdout.decode())
        p, lines = self.monitor(state, vkey_file, json_out=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(lines[0]["status"], "unchanged")
        state_at_4 = read_text(state)

        # Live appends (custody entries of uploads): tiles follow, the monitor accepts.
        for i in range(3):
            self.d.put_bytes(b"photo %d " % i + os.urandom(8), subjects=["s%d" % i])
        n = self.log_size()
        self.assertGreater(n, 4)
        self.wait_tiles(n)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("grew from 4 to %d" % n, p.stdout.decode())
        self.go_verify(vkey_file, self.tiles, self.write("cp4", state_at_4))
        with open(state) as f:
            state_at_n = f.read()
        self.assertIn("\n%d\n" % n, state_at_n)

        # log verify from the tiles: by index, and by scanning the bundles.
        entry = os.path.join(self.tmp, "entry")
        self.d.ctl("log", "entry", str(n - 1), "-o", entry)
        for extra in ([], ["--index", str(n - 1)]):
            p = ctl_offline("--json", "log", "verify", "--entry", entry, "--tiles", self.url, "--vkey", vkey_file,
                            *extra)
            self.assertIn('"valid":true', p.stdout.decode())
            self.assertIn('"index":%d' % (n - 1), p.stdout.decode())
        p = ctl_offline("log", "verify", "--entry", entry, "--tiles", self.url, "--vkey", vkey_file, "--index", "0",
                        check=False)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("does not prove", p.stderr.decode())
        other = self.write("other-entry", "never logged")
        p = ctl_offline("log", "verify", "--entry", other, "--tiles", self.url, "--vkey", vkey_file, check=False)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("no entry of the log's entry bundles", p.stderr.decode())

        # Rollback: the web server serves the older copy of the tiles.
        self.publish(tiles_at_4)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
        err = p.stderr.decode()
        self.assertIn("FORK/ROLLBACK DETECTED", err)
        self.assertIn("ROLLBACK", err)
        self.assertIn("from %d to 4" % n, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertEqual(read_text(state), state_at_n, "the monitor must keep the checkpoint it trusted")
        self.assertTrue(os.path.exists(state + ".conflict"))

        # Fork: a second daemon with the same signing key and origin (the
        # copy of size 4) appends other entries up to size n, then beyond.
        root2 = os.path.join(self.tmp, "d2")
        os.mkdir(root2)
        tiles2 = os.path.join(self.tmp, "tiles2")
        shutil.copytree(tiles_at_4, tiles2)  # it catches up from the old copy
        log_append(backup_data, "file:" + backup_vault, n - 4, "forked entry")
        d2 = Daemon(root2, vault="file:" + backup_vault, data_dir=backup_data, extra_args=["--log-tiles-dir", tiles2])
        d2.start()
        try:
            self.wait_tiles(n, tiles2)
            self.go_verify(vkey_file, tiles2)  # a well-formed log of its own
            self.publish(tiles2)
            p, lines = self.monitor(state, vkey_file, json_out=True)
            self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
            self.assertEqual(lines[0]["status"], "fork-or-rollback")
            self.assertIn("FORK: two different roots for tree size %d" % n, lines[0]["reason"])
            # ... and beyond it, where no consistency proof can hold.
            self.assertEqual(d2.stop(), 0)
            log_append(backup_data, "file:" + backup_vault, 3, "forked entry")
            d2.start()
            self.wait_tiles(n + 3, tiles2)
            p = self.monitor(state, vkey_file)
            self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
            self.assertIn("FORK: the tree of size %d does not extend the tree of size %d" % (n + 3, n),
                          p.stderr.decode())
            # The Go verifier agrees: the forked tree does not extend the trusted one.
            self.go_verify(vkey_file, tiles2, state, ok=False)
        finally:
            d2.stop()
        self.assertEqual(read_text(state), state_at_n)

        # Back to the daemon's own tiles: consistent again.
        self.publish(self.tiles)
        p, lines = self.monitor(state, vkey_file, json_out=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(lines[0]["status"], "unchanged")

    def test_restored_data_dir_rewrites_the_tiles_and_monitors_see_the_rollback(self):
        """As over gRPC (test_log.py): a data dir restored from a backup is a
        rollback, and the daemon's tiles say so."""
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.grow(4)
        self.wait_tiles(4)
        self.assertEqual(self.monitor(state, vkey_file, tiles=self.tiles).returncode, 0)
        self.assertEqual(self.d.stop(), 0)
        backup = os.path.join(self.tmp, "data-backup")
        shutil.copytree(self.d.data_dir, backup)
        self.d.start()
        self.assertEqual(self.grow(300), 304)  # crosses a full tile
        self.wait_tiles(304)
        self.go_verify(vkey_file, self.tiles)
        p = self.monitor(state, vkey_file, tiles=self.tiles)  # a directory, not a URL
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("grew from 4 to 304", p.stdout.decode())
        self.assertTrue(os.path.exists(os.path.join(self.tiles, "tile", "0", "000")))
        self.assertTrue(os.path.exists(os.path.join(self.tiles, "tile", "1", "000.p", "1")))

        # Missing tiles are rebuilt at start.
        self.assertEqual(self.d.stop(), 0)
        full = os.path.join(self.tiles, "tile", "0", "000")
        with open(full, "rb") as f:
            full_bytes = f.read()
        os.unlink(full)
        shutil.rmtree(os.path.join(self.tiles, "tile", "entries"))
        self.d.start()
        wanted = [full] + [os.path.join(self.tiles, "tile", "entries", p) for p in ("000", "001.p/48")]
        deadline = time.time() + 30
        while not all(os.path.exists(w) for w in wanted) and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("tiles_repaired=", self.d.log())
        with open(full, "rb") as f:
            self.assertEqual(f.read(), full_bytes)
        self.go_verify(vkey_file, self.tiles)

        # Restore the old data dir: the daemon rewrites its tiles to its (shorter) log.
        self.assertEqual(self.d.stop(), 0)
        shutil.rmtree(self.d.data_dir)
        shutil.copytree(backup, self.d.data_dir)
        self.d.start()
        self.wait_tiles(4)
        self.assertIn("checkpoint of another tree", self.d.log())
        p = self.monitor(state, vkey_file, tiles=self.tiles)
        self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
        self.assertIn("FORK/ROLLBACK DETECTED: ROLLBACK", p.stderr.decode())
        self.assertIn("from 304 to 4", p.stderr.decode())

    def test_tiles_that_do_not_match_their_checkpoint_are_rejected(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.grow(5)
        self.wait_tiles(5)
        bad = os.path.join(self.tmp, "bad-tiles")
        shutil.copytree(self.tiles, bad)
        tile = os.path.join(bad, "tile", "0", "000.p", "5")
        with open(tile, "r+b") as f:
            f.write(b"\xff" * 32)
        self.publish(bad)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("do not match their checkpoint", p.stderr.decode())
        self.assertFalse(os.path.exists(state), "nothing is trusted from tiles that do not match")
        self.go_verify(vkey_file, bad, ok=False)
        # A checkpoint under another key: exit 3, as over gRPC.
        fake = b"\x01" + bytes(range(32))
        origin = self.vkey().split("+")[0]
        fake_id = hashlib.sha256(origin.encode() + b"\n" + fake).digest()[:4].hex()
        wrong = self.write("wrong.vkey", "%s+%s+%s\n" % (origin, fake_id, base64.b64encode(fake).decode()))
        self.publish(self.tiles)
        p = self.monitor(state, wrong)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("checkpoint does NOT verify", p.stderr.decode())
        self.assertIn("different key", p.stderr.decode())
        # Nothing served there at all: a plain failure, not a verdict.
        p = self.monitor(state, vkey_file, tiles=self.url + "/nothing-here")
        self.assertEqual(p.returncode, 1, p.stderr.decode())
        self.assertIn("HTTP 404", p.stderr.decode())

    # Anyone who can change the served files (bucket, CDN, network) but has
    # no key: the next three tests.

    def monitored_at_4_grown_to_304(self):
        """A monitor that trusted the tree of 4; the log (and its tiles) now at 304."""
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.grow(4)
        self.wait_tiles(4)
        self.assertEqual(self.monitor(state, vkey_file, tiles=self.tiles).returncode, 0)
        self.assertEqual(self.grow(300), 304)
        self.wait_tiles(304)
        return vkey_file, state

    def test_a_damaged_tile_the_proof_reads_is_exit_3_not_a_fork(self):
        """It was reported as a FORK (exit 7, the consistent checkpoint saved
        as evidence): the tree hash reads only the rightmost tiles, and the
        tiles under them were trusted."""
        vkey_file, state = self.monitored_at_4_grown_to_304()
        state_at_4 = read_text(state)
        # A byte of full tile 0/000, which the tree hash does not read and
        # PROOF(4, 304) does (its hash 6, in MTH(D[4:8])).
        bad = os.path.join(self.tmp, "bad-tile")
        shutil.copytree(self.tiles, bad)
        flip(os.path.join(bad, "tile", "0", "000"), 6 * 32 + 5)
        p = self.monitor(state, vkey_file, tiles=bad)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("do not match their checkpoint", p.stderr.decode())
        self.assertIn("not evidence of a fork", p.stderr.decode())
        self.assertIn("tile/0/000 does not match", p.stderr.decode())
        self.assertNotIn("FORK", p.stderr.decode())
        self.assertFalse(os.path.exists(state + ".conflict"), "a damaged tile is no evidence")
        self.assertEqual(read_text(state), state_at_4)
        self.go_verify(vkey_file, bad, self.write("cp4", state_at_4), ok=False)
        # log verify of a genuine entry whose proof reads the tile: the tiles' fault too.
        entry = os.path.join(self.tmp, "entry3")
        self.d.ctl("log", "entry", "3", "-o", entry)
        p = ctl_offline("log", "verify", "--entry", entry, "--tiles", bad, "--vkey", vkey_file, "--index", "3",
                        check=False)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("do not match their checkpoint", p.stderr.decode())
        # The daemon's own tiles: consistent.
        p = self.monitor(state, vkey_file, tiles=self.tiles)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("grew from 4 to 304", p.stdout.decode())

    def test_a_rewritten_bundle_slot_does_not_hide_the_genuine_entry(self):
        """`log verify --tiles` without --index took the first bundle slot
        with the entry's bytes, unchecked, and stopped there."""
        vkey_file, _ = self.monitored_at_4_grown_to_304()
        entry = os.path.join(self.tmp, "entry270")
        self.d.ctl("log", "entry", "270", "-o", entry)
        with open(entry, "rb") as f:
            entry_bytes = f.read()
        bad = os.path.join(self.tmp, "bad-bundle")
        shutil.copytree(self.tiles, bad)
        bundle = os.path.join(bad, "tile", "entries", "000")
        with open(bundle, "rb") as f:
            entries = parse_bundle(f.read())
        entries[5] = entry_bytes  # slot 5 now holds entry 270's bytes
        with open(bundle, "wb") as f:
            f.write(b"".join(len(e).to_bytes(2, "big") + e for e in entries))
        p = ctl_offline("--json", "log", "verify", "--entry", entry, "--tiles", bad, "--vkey", vkey_file,
                        check=False)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn('"index":270', p.stdout.decode())
        # Slot 5's own entry is nowhere now: not found, and the bundle named.
        entry5 = os.path.join(self.tmp, "entry5")
        self.d.ctl("log", "entry", "5", "-o", entry5)
        with open(entry5, "rb") as f:
            self.assertNotIn(f.read(), entries)
        p = ctl_offline("log", "verify", "--entry", entry5, "--tiles", bad, "--vkey", vkey_file, check=False)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("no entry of the log's entry bundles", p.stderr.decode())

    def test_tiles_damaged_in_place_are_rewritten_on_start(self):
        """A tile of the right length was kept however wrong its bytes."""
        vkey_file, state = self.monitored_at_4_grown_to_304()
        self.assertEqual(self.d.stop(), 0)
        damaged = {os.path.join(self.tiles, *rel.split("/")): None
                   for rel in ("tile/0/001.p/48", "tile/1/000.p/1", "tile/entries/001.p/48")}
        for path in damaged:
            with open(path, "rb") as f:
                damaged[path] = f.read()
            flip(path, 0)
        logged = len(self.d.log())
        self.d.start()
        deadline = time.time() + 30
        while "tiles_repaired=" not in self.d.log()[logged:] and time.time() < deadline:
            time.sleep(0.05)
        # tile 0/001 with its bundle, and tile 1/000
        self.assertIn("published_size=304 log_size=304 tiles_repaired=2", self.d.log()[logged:])
        for path, data in damaged.items():
            with open(path, "rb") as f:
                self.assertEqual(f.read(), data, path)
        p = self.monitor(state, vkey_file, tiles=self.tiles)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.go_verify(vkey_file, self.tiles)

    def test_check_config_shows_the_tiles_dir(self):
        base = [SHREDD, "--check-config", "--data-dir", self.d.data_dir, "--vault", self.d.vault]
        p = subprocess.run(base + ["--log-tiles-dir", self.tiles], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("tiles (c2sp.org/tlog-tiles) in " + self.tiles, p.stdout.decode())
        p = subprocess.run(base + ["--log-tiles-dir", os.path.join(self.d.data_dir, "tiles")], capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("outside the data dir", p.stderr.decode())
        conf = self.write("shredd.toml", '[log]\ntiles_dir = "%s"\n' % self.tiles)
        p = subprocess.run(base + ["--config", conf], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn(self.tiles, p.stdout.decode())

    def test_the_tiles_dir_is_the_daemons_alone_and_no_link_is_written_through(self):
        # A link planted where the old writer put its temp file (path.tmp)
        # made the daemon overwrite the link's target with public bytes.
        precious = self.write("precious", "root key material")
        for name in ("checkpoint.tmp", os.path.join("tile", "entries", "000.p", "1.tmp")):
            path = os.path.join(self.tiles, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(precious, path)
        size = self.log_size()
        self.d.put_bytes(os.urandom(100))
        self.wait_tiles(size + 1)
        with open(precious) as f:
            self.assertEqual(f.read(), "root key material")
        self.assertTrue(os.path.islink(os.path.join(self.tiles, "checkpoint.tmp")))
        self.assertFalse(os.path.islink(os.path.join(self.tiles, "checkpoint")))
        # A crash's temp files are removed at start; a tiles dir others can
        # write is refused.
        self.d.stop()
        leftover = os.path.join(self.tiles, "checkpoint.tmp-0123456789abcdef")
        self.write(leftover, "partial")
        self.d.start()
        self.assertFalse(os.path.exists(leftover))
        self.d.stop()
        os.chmod(self.tiles, 0o777)
        self.d.start(expect_fail=True)
        self.assertIn("writable by no one else (it is mode 0777", self.d.log())

    def test_go_verifier_is_available(self):
        if GO_BIN is None:
            self.skipTest(GO_SKIP_REASON)
        self.assertTrue(os.access(GO_BIN, os.X_OK))


if __name__ == "__main__":
    unittest.main()
