"""shredctl against the real daemon: put of directory trees, get/stat/ls,
the 256 MiB round trip, exit codes and messages, SHREDD_SERVER, progress
only on terminals, and no plaintext (content or personal metadata) anywhere
under the data dir."""
import hashlib
import json
import os
import pty
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

from harness import SHREDCTL, DaemonTest, file_digest, grep_tree, pb, sha256_digest

CHUNK = 1 << 20
rng = random.Random(0xC11)


def rand(n):
    return rng.randbytes(n)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def sha256sum(path):
    out = subprocess.run(["sha256sum", path], capture_output=True, check=True).stdout.decode()
    return "sha256:" + out.split()[0]


def files_equal(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(16 << 20), fb.read(16 << 20)
            if x != y:
                return False
            if not x:
                return True


class CliTest(DaemonTest):
    def ctl_env(self, *args, env=None, server=True, timeout=120):
        cmd = [SHREDCTL] + (["--server", self.d.address] if server else []) + list(args)
        return subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, cwd=self.tmp)

    def assertOneLineError(self, p, code):
        self.assertEqual(p.returncode, code, (p.stdout, p.stderr))
        err = p.stderr.decode()
        self.assertTrue(err.startswith("shredctl: "), err)
        self.assertTrue(err.endswith("\n"), err)
        self.assertEqual(len(err.splitlines()), 1, "error must be one line: %r" % err)


class PutTreeTest(CliTest):
    def test_put_directory_tree_json(self):
        root = os.path.join(self.tmp, "tree")
        files = {}
        sizes = [0, 1, 65536, 65535] + [rng.randrange(1, 60000) for _ in range(46)]
        for i, size in enumerate(sizes):
            rel = os.path.join("d%d" % (i % 4), "sub%d" % (i % 3), "f%02d.bin" % i) if i % 5 else "top%02d.bin" % i
            files[os.path.join(root, rel)] = rand(size)
        files[os.path.join(root, "d1", "big1.bin")] = rand(CHUNK + 12345)
        files[os.path.join(root, "d2", "deep", "er", "big2.bin")] = rand(65537)
        for p, data in files.items():
            write(p, data)
        self.assertEqual(len(files), 52)

        p, lines = self.d.ctl("put", root, "--dataset", "tree-ds", "--subject", "subj-1", "--label", "src=cli",
                              json_out=True)
        self.assertEqual(p.stderr, b"", "no progress bar or noise when stderr is not a terminal")
        self.assertEqual(len(lines), 53, lines)
        total = lines.pop()  # put ends with its total
        self.assertEqual((total["status"], total["stored"], total["present"], total["refused"]), ("total", 52, 0, 0))
        self.assertEqual(total["bytes"], sum(len(d) for d in files.values()))
        by_path = {l["path"]: l for l in lines}
        self.assertEqual(set(by_path), set(files))
        for path, data in files.items():
            l = by_path[path]
            self.assertEqual(l["digest"], sha256_digest(data), path)
            self.assertEqual(l["size"], len(data), path)
            self.assertEqual(l["status"], "stored", path)
        # Everything is stored, with its metadata and the file's name.
        for path, data in list(files.items())[::7] + [(p, d) for p, d in files.items() if "big" in p]:
            h = sha256_digest(data)
            self.assertEqual(self.d.get_bytes(h), data)
            info = self.d.store().Stat(pb.StatRequest(digest=pb.Digest(hash=h)))
            self.assertEqual(info.metadata.name, os.path.basename(path))
            self.assertEqual(list(info.metadata.subject_ids), ["subj-1"])
            self.assertEqual(list(info.metadata.datasets), ["tree-ds"])
            self.assertEqual(dict(info.metadata.labels), {"src": "cli"})
            self.assertEqual(info.metadata.kind, pb.KIND_PHOTO)
        # Again: all present, nothing new.
        p, lines = self.d.ctl("put", root, json_out=True)
        self.assertEqual(sorted(l["status"] for l in lines[:-1]), ["present"] * 52)
        self.assertEqual((lines[-1]["stored"], lines[-1]["present"]), (0, 52))
        # Without --json or --verbose: one line, the total.
        p = self.d.ctl("put", root)
        self.assertRegex(p.stdout.decode(), r"^put: 0 stored, 52 already present, 0 refused; [0-9.]+ MB in [0-9.]+ s, "
                                            r"[0-9.]+ MB/s\n$")
        p = self.d.ctl("put", "--verbose", root)
        self.assertEqual(len(p.stdout.decode().splitlines()), 53)
        self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), 52)

        # ls --json --dataset
        p, lines = self.d.ctl("ls", "--dataset", "tree-ds", json_out=True)
        self.assertEqual(sorted(l["digest"] for l in lines), sorted(sha256_digest(d) for d in files.values()))
        self.assertTrue(all(l["datasets"] == ["tree-ds"] for l in lines))
        big = [l for l in lines if l["name"] == "big1.bin"]
        self.assertEqual(len(big), 1)
        self.assertEqual(big[0]["size"], CHUNK + 12345)
        p, lines = self.d.ctl("ls", "--dataset", "no-such-ds", json_out=True)
        self.assertEqual(lines, [])
        p, lines = self.d.ctl("ls", "--label", "src=cli", "--limit", "5", json_out=True)
        self.assertEqual(len(lines), 5)
        p, lines = self.d.ctl("ls", "--subject", "subj-1", "--kind", "model", json_out=True)
        self.assertEqual(lines, [])

    def test_put_options_and_kinds(self):
        f1, f2 = os.path.join(self.tmp, "w.safetensors"), os.path.join(self.tmp, "p.jpg")
        write(f1, rand(70000))
        write(f2, rand(5000))
        # Options before and after the paths; repeated --subject / --label.
        p, lines = self.d.ctl("put", "--kind", "model", "--label", "arch=vit", f1, json_out=True)
        self.assertEqual([l["status"] for l in lines], ["stored", "total"])
        p, lines = self.d.ctl("put", f2, "--subject", "a1", "--subject", "a2", "--label", "k1=v1",
                              "--label", "k2=v=2", "--dataset", "x", json_out=True)
        self.assertEqual(len(lines), 2)
        p, st = self.d.ctl("stat", file_digest(f1), json_out=True)
        self.assertEqual(st[0]["kind"], "model")
        self.assertEqual(st[0]["labels"], {"arch": "vit"})
        self.assertEqual(st[0]["subjects"], [])
        p, st = self.d.ctl("stat", file_digest(f2), json_out=True)
        self.assertEqual(st[0]["kind"], "photo")
        self.assertEqual(st[0]["subjects"], ["a1", "a2"])
        self.assertEqual(st[0]["labels"], {"k1": "v1", "k2": "v=2"})
        self.assertEqual(st[0]["datasets"], ["x"])
        self.assertEqual(st[0]["name"], "p.jpg")
        self.assertEqual(st[0]["size"], 5000)
        self.assertEqual(st[0]["digest"], file_digest(f2))
        p, lines = self.d.ctl("ls", "--kind", "model", json_out=True)
        self.assertEqual([l["digest"] for l in lines], [file_digest(f1)])
        p, lines = self.d.ctl("ls", "--label", "k2=v=2", json_out=True)
        self.assertEqual([l["digest"] for l in lines], [file_digest(f2)])
        # Human output of stat names the digest and size.
        p = self.d.ctl("stat", file_digest(f2))
        self.assertIn(file_digest(f2).encode(), p.stdout)
        self.assertIn(b"5000", p.stdout)


class GetTest(CliTest):
    def test_get_output_matches_sha256sum(self):
        for size in (0, 1000, 3 * CHUNK + 1):
            with self.subTest(size=size):
                src = os.path.join(self.tmp, "src-%d" % size)
                write(src, rand(size))
                p, lines = self.d.ctl("put", src, json_out=True)
                digest = lines[0]["digest"]
                self.assertEqual(digest, sha256sum(src))
                out = os.path.join(self.tmp, "out-%d" % size)
                p, lines = self.d.ctl("get", digest, "-o", out, json_out=True)
                self.assertTrue(files_equal(src, out))
                self.assertEqual(sha256sum(out), digest)
                self.assertEqual(lines[-1]["bytes"], size)
                # To stdout.
                p = self.d.ctl("get", digest)
                with open(src, "rb") as f:
                    self.assertEqual(p.stdout, f.read())
                self.assertFalse(os.path.exists(out + ".part"))

    def test_get_ranges(self):
        data = rand(2 * CHUNK + 77)
        h = self.d.put_bytes(data)
        for off, length in [(0, 1), (CHUNK - 3, 6), (CHUNK, CHUNK), (5, 0), (2 * CHUNK + 76, 0), (2 * CHUNK + 77, 0),
                            (100, 10 * CHUNK)]:
            p = self.d.ctl("get", h, "--offset", str(off), "--length", str(length))
            self.assertEqual(p.stdout, data[off:] if length == 0 else data[off:off + length], (off, length))
        out = os.path.join(self.tmp, "range.bin")
        self.d.ctl("get", h, "--offset", str(CHUNK - 1), "--length", "2", "-o", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data[CHUNK - 1:CHUNK + 1])
        p = self.d.ctl("get", h, "--offset", str(len(data) + 1), check=False)
        self.assertOneLineError(p, 1)


class BigFileTest(CliTest):
    SIZE = 256 << 20

    def test_256mib_round_trip(self):
        src = os.path.join(self.tmp, "big.bin")
        with open(src, "wb") as f:
            for _ in range(self.SIZE // (16 << 20)):
                f.write(os.urandom(16 << 20))
        t0 = time.monotonic()
        expected = sha256sum(src)
        t_sum = time.monotonic() - t0

        t0 = time.monotonic()
        p, lines = self.d.ctl("put", src, json_out=True)
        t_put = time.monotonic() - t0
        self.assertEqual(len(lines), 2)
        self.assertEqual((lines[0]["digest"], lines[0]["size"], lines[0]["status"]), (expected, self.SIZE, "stored"))

        out = os.path.join(self.tmp, "big.out")
        t0 = time.monotonic()
        self.d.ctl("-q", "get", expected, "-o", out)
        t_get = time.monotonic() - t0
        self.assertEqual(os.path.getsize(out), self.SIZE)
        self.assertTrue(files_equal(src, out), "downloaded file differs")
        self.assertEqual(sha256sum(out), expected)
        os.unlink(out)

        # Ranged gets return exactly the requested bytes.
        with open(src, "rb") as f:
            for off, length in [(100 * CHUNK - 7, 3 * CHUNK + 11), (self.SIZE - 5, 100), (12345, 1)]:
                p = self.d.ctl("get", expected, "--offset", str(off), "--length", str(length))
                f.seek(off)
                self.assertEqual(p.stdout, f.read(length), (off, length))

        mb = self.SIZE / 1e6
        t_age = self._time_age(src)
        sys.stderr.write("\n[256 MiB] put %.2fs (%.0f MB/s), get %.2fs (%.0f MB/s), sha256sum %.2fs (%.0f MB/s)%s\n" % (
            t_put, mb / t_put, t_get, mb / t_get, t_sum, mb / t_sum,
            ", age -e %.2fs (%.0f MB/s)" % (t_age, mb / t_age) if t_age else ""))

    def test_the_digest_is_the_same_whether_the_client_hashes_or_not(self):
        """Large files are addressed by the daemon's digest of what it received
        unless --verify-digest asks the client to hash as well (docs/CLI.md)."""
        src = os.path.join(self.tmp, "model.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(5 * CHUNK + 3))
        expected = sha256sum(src)
        p, lines = self.d.ctl("put", "--verify-digest", src, json_out=True)
        self.assertEqual((lines[0]["digest"], lines[0]["status"]), (expected, "stored"))
        p, lines = self.d.ctl("put", src, json_out=True)
        self.assertEqual((lines[0]["digest"], lines[0]["status"]), (expected, "present"))
        self.d.ctl("shred", expected)
        for flags in ([], ["--verify-digest"]):
            p, lines = self.d.ctl("put", *flags, src, json_out=True, check=False)
            self.assertEqual(p.returncode, 6, p.stderr.decode())
            self.assertIn("shredded", p.stderr.decode())

    def _time_age(self, src):
        """Informational only: age -e on the same file, for the throughput note."""
        if not shutil.which("age") or not shutil.which("age-keygen"):
            return None
        key = os.path.join(self.tmp, "age.key")
        subprocess.run(["age-keygen", "-o", key], capture_output=True, check=True)
        with open(key) as f:
            recipient = [l.split(": ")[1].strip() for l in f if l.startswith("# public key:")][0]
        t0 = time.monotonic()
        subprocess.run(["age", "-e", "-r", recipient, "-o", os.path.join(self.tmp, "big.age"), src], check=True)
        t = time.monotonic() - t0
        os.unlink(os.path.join(self.tmp, "big.age"))
        return t


class ProgressTest(CliTest):
    """A progress bar on transfers that take more than a moment, only when
    stderr is a terminal. The daemon is paused (SIGSTOP) for a second so the
    transfer reliably takes "more than a moment" on any machine."""

    def _put_paused(self, path, stderr, *flags):
        p = subprocess.Popen([SHREDCTL, "--server", self.d.address] + list(flags) + ["put", path],
                             stdout=subprocess.PIPE, stderr=stderr)
        os.kill(self.d.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(1.2)
        finally:
            os.kill(self.d.proc.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        return out, err

    def _on_tty(self, path, *flags):
        master, slave = pty.openpty()
        chunks = []

        def drain():
            while True:
                try:
                    b = os.read(master, 4096)
                except OSError:
                    return
                if not b:
                    return
                chunks.append(b)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        try:
            self._put_paused(path, slave, *flags)
        finally:
            os.close(slave)
            t.join(10)
            os.close(master)
        return b"".join(chunks)

    def test_progress_only_on_terminal(self):
        big = os.path.join(self.tmp, "big.bin")
        write(big, rand(24 * CHUNK))
        tty = self._on_tty(big)
        self.assertIn(b"put [", tty)
        self.assertIn(b"100.0%", tty)
        # Not a terminal: nothing on stderr.
        write(big, rand(24 * CHUNK))
        _, err = self._put_paused(big, subprocess.PIPE)
        self.assertEqual(err, b"")
        # -q: no bar even on a terminal.
        write(big, rand(24 * CHUNK))
        self.assertNotIn(b"put [", self._on_tty(big, "-q"))


class ExitCodeTest(CliTest):
    def test_unknown_digest_exit_4(self):
        h = sha256_digest(b"not stored")
        for cmd in (["get", h], ["stat", h], ["get", h, "-o", os.path.join(self.tmp, "o")]):
            p = self.ctl_env(*cmd)
            self.assertOneLineError(p, 4)
            self.assertIn(h, p.stderr.decode())
            self.assertEqual(p.stdout, b"")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "o")))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "o.part")))
        p = self.ctl_env("--json", "stat", h)
        self.assertOneLineError(p, 4)
        j = json.loads(p.stdout)
        self.assertEqual(j["code"], "NOT_FOUND")
        self.assertIn(h, j["error"])

    def test_malformed_digest_exit_1(self):
        p = self.ctl_env("--json", "stat", "sha256:XYZ")
        self.assertOneLineError(p, 1)
        self.assertEqual(json.loads(p.stdout)["code"], "INVALID_ARGUMENT")

    def test_daemon_not_running_exit_5(self):
        # No socket at all.
        p = subprocess.run([SHREDCTL, "--server", "unix:" + os.path.join(self.tmp, "nope.sock"), "stat",
                            sha256_digest(b"x")], capture_output=True, timeout=60)
        self.assertOneLineError(p, 5)
        # A stale socket file left by a killed daemon (connection refused).
        self.d.kill()
        self.assertTrue(os.path.exists(self.d.socket))
        f = os.path.join(self.tmp, "f")
        write(f, b"data")
        for cmd in (["stat", sha256_digest(b"x")], ["get", sha256_digest(b"x")], ["ls"], ["put", f],
                    ["--json", "put", f]):
            with self.subTest(cmd=cmd):
                p = self.ctl_env(*cmd)
                self.assertOneLineError(p, 5)
        p = self.ctl_env("--json", "ls")
        self.assertEqual(json.loads(p.stdout)["code"], "UNAVAILABLE")

    def test_bad_usage_exit_2(self):
        f = os.path.join(self.tmp, "f")
        write(f, b"data")
        h = sha256_digest(b"data")
        for args in ([], ["frobnicate"], ["get"], ["stat"], ["put"], ["--no-such-flag", "ls"],
                     ["put", "--kind", "banana", f], ["put", "--label", "novalue", f],
                     ["put", "--label", "=v", f], ["get", h, "--offset", "-1"], ["get", h, "--length", "x"],
                     ["ls", "--kind", "banana"], ["ls", "--label", "novalue"]):
            with self.subTest(args=args):
                p = self.ctl_env(*args)
                self.assertOneLineError(p, 2)
        # Nothing was stored by the refused puts.
        self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), 0)

    def test_put_missing_file_exit_1(self):
        p = self.ctl_env("put", os.path.join(self.tmp, "does-not-exist"))
        self.assertOneLineError(p, 1)

    def test_shredd_server_env(self):
        data = rand(3000)
        h = self.d.put_bytes(data)
        env = dict(os.environ, SHREDD_SERVER=self.d.address)
        p = self.ctl_env("get", h, env=env, server=False)
        self.assertEqual((p.returncode, p.stdout), (0, data), p.stderr)
        p = self.ctl_env("--json", "stat", h, env=env, server=False)
        self.assertEqual(json.loads(p.stdout)["size"], 3000)
        # --server wins over the environment.
        bad = dict(os.environ, SHREDD_SERVER="unix:" + os.path.join(self.tmp, "nope.sock"))
        p = self.ctl_env("stat", h, env=bad, server=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.ctl_env("stat", h, env=bad, server=False)
        self.assertOneLineError(p, 5)
        # Without either: the default ./var/shredd/shredd.sock (relative to cwd) is not there.
        env = {k: v for k, v in os.environ.items() if k != "SHREDD_SERVER"}
        p = self.ctl_env("stat", h, env=env, server=False)
        self.assertOneLineError(p, 5)


class NoPlaintextTest(CliTest):
    """No plaintext byte sequence of a stored file, nor its subject ids, labels,
    datasets or file name, nor its digest, can be found under the data dir."""

    def test_no_plaintext_under_data_dir(self):
        def tag(prefix):
            return prefix + os.urandom(12).hex()

        needles = []
        src = os.path.join(self.tmp, "src")
        # Files of every storage path: BatchPut (<= 64 KiB, inline), streamed
        # inline-size... and file-backed multi-chunk items.
        sizes = [0, 100, 4000, 65536, 65537, 300000, 2 * CHUNK + 3]
        digests = []
        for i, size in enumerate(sizes):
            marker = os.urandom(64)
            content = (marker * (size // 64 + 1))[:size]
            name = tag("fn") + ".jpg"
            path = os.path.join(src, "sub%d" % (i % 2), name)
            write(path, content)
            subject, lkey, lval, ds = tag("subj"), tag("lk"), tag("lv"), tag("ds")
            p, lines = self.d.ctl("put", path, "--subject", subject, "--label", "%s=%s" % (lkey, lval),
                                  "--dataset", ds, json_out=True)
            self.assertEqual(lines[0]["status"], "stored")
            digests.append(lines[0]["digest"])
            if size >= 64:
                needles.append(marker)
            needles += [s.encode() for s in (subject, lkey, lval, ds, name, name[:-4])]
            raw = bytes.fromhex(lines[0]["digest"][7:])
            needles += [lines[0]["digest"][7:].encode(), raw]
        # A random (non-repeating) file: sample windows of it.
        rnd = rand(3 * CHUNK)
        path = os.path.join(src, tag("rnd"))
        write(path, rnd)
        p, lines = self.d.ctl("put", path, "--subject", "plain-subject-%s" % os.urandom(4).hex(), json_out=True)
        needles += [rnd[o:o + 32] for o in range(0, len(rnd) - 32, len(rnd) // 50)]
        needles.append(lines[0]["digest"][7:].encode())
        # Also a direct API put with a label and name.
        meta_subject = tag("api-subj")
        d = self.d.put_bytes(b"\x07" * 64 + rnd[:1000], subjects=[meta_subject], labels={"who": tag("who")},
                             name=tag("apiname"))
        needles.append(meta_subject.encode())

        def check(when):
            hits = grep_tree(self.d.data_dir, needles)
            self.assertEqual(hits, [], "plaintext found under the data dir (%s)" % when)

        # Sanity: the search does find what is there.
        self.assertEqual(len(grep_tree(src, [n for n in needles if len(n) == 64])), 6)  # one per marker file
        self.assertTrue(grep_tree(src, [rnd[1000:1032]]))
        check("daemon running: WAL and blobs")
        self.assertEqual(self.d.stop(), 0)
        check("daemon stopped")
        self.d.start()  # recovery flushes the WAL into an SST file
        db = os.path.join(self.d.data_dir, "db")
        self.assertTrue([f for f in os.listdir(db) if f.endswith(".sst")], os.listdir(db))
        check("after restart: SST files")
        self.assertEqual(self.d.stop(), 0)
        check("after second stop")
        # Personal metadata is not in the daemon's log either.
        log = self.d.log().encode()
        for n in needles:
            self.assertNotIn(n, log)


if __name__ == "__main__":
    unittest.main()
