"""shredctl's local files (issue 12, defect 12): private files are 0600,
a download never leaves plaintext behind, uploads take regular files only
and do not follow symlinks out of a directory unless asked, and a second
daemon on a running daemon's data dir fails before it touches anything."""
import glob
import json
import os
import shutil
import stat
import subprocess
import time
import unittest

from harness import SHREDCTL, Daemon, DaemonTest, grep_tree, pb, sha256_digest


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class CliFilesTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.old_umask = os.umask(0o022)  # shredctl inherits it

    def tearDown(self):
        os.umask(self.old_umask)
        super().tearDown()

    def ctl(self, *args, check=True):
        p = subprocess.run([SHREDCTL, "--server", self.d.address] + list(args), capture_output=True, timeout=120,
                           cwd=self.tmp)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_private_files_are_0600(self):
        secret = b"private photo bytes 0600"
        d = self.d.put_bytes(secret)
        out = os.path.join(self.tmp, "got.bin")
        self.ctl("get", d, "-o", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), secret)
        self.assertEqual(mode(out), 0o600, "get -o plaintext")
        # An older file at the path is replaced by a 0600 one.
        write(os.path.join(self.tmp, "old.bin"), b"old")
        os.chmod(os.path.join(self.tmp, "old.bin"), 0o644)
        self.ctl("get", d, "-o", os.path.join(self.tmp, "old.bin"))
        self.assertEqual(mode(os.path.join(self.tmp, "old.bin")), 0o600)

        cert = os.path.join(self.tmp, "cert.json")
        self.ctl("shred", d, "-o", cert)
        manifest = os.path.join(self.tmp, "cert.manifest.json")
        self.assertEqual(mode(manifest), 0o600, "private manifest")
        self.assertEqual(mode(cert), 0o644, "the public certificate follows the umask")
        receipt = os.path.join(self.tmp, "receipt.json")
        self.ctl("receipt", "--manifest", manifest, "--item", d, "-o", receipt)
        self.assertEqual(mode(receipt), 0o600, "receipt")
        cid = self.ctl("--json", "shred", d, "-o", os.path.join(self.tmp, "again.json")).stdout
        self.assertTrue(cid)
        m2 = os.path.join(self.tmp, "fetched.manifest.json")
        cert_id = json.loads(cid)["certificateId"]
        self.ctl("certificate", cert_id, "-o", os.path.join(self.tmp, "fetched.json"), "--manifest", m2)
        self.assertEqual(mode(m2), 0o600, "certificate --manifest")

    def no_plaintext_left(self, secret):
        hits = grep_tree(self.tmp, [secret[:32]])
        hits = [h for h in hits if not h[0].startswith(self.d.data_dir)]
        self.assertEqual(hits, [], "plaintext left behind")
        self.assertEqual(glob.glob(os.path.join(self.tmp, "**", "*.part*"), recursive=True), [])

    def test_get_into_a_directory_is_refused_and_leaves_nothing(self):
        secret = os.urandom(16) + b"plaintext that must not be left in a .part file"
        d = self.d.put_bytes(secret)
        outdir = os.path.join(self.tmp, "outdir")
        os.mkdir(outdir)
        for target in (outdir, outdir + "/"):
            p = self.ctl("get", d, "-o", target, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"is a directory", p.stderr)
            self.assertEqual(os.listdir(outdir), [])
            self.no_plaintext_left(secret)

    def test_failed_downloads_leave_nothing(self):
        secret = os.urandom(16) + b"another plaintext"
        d = self.d.put_bytes(secret)
        out = os.path.join(self.tmp, "x.bin")
        # Unknown digest.
        p = self.ctl("get", sha256_digest(b"never stored"), "-o", out, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(out))
        # A download that is killed half way leaves no named file at all.
        big = os.urandom(64 << 20)
        db = self.d.put_bytes(big)
        proc = subprocess.Popen([SHREDCTL, "--server", self.d.address, "-q", "get", db, "-o", out], cwd=self.tmp)
        time.sleep(0.3)
        proc.kill()
        proc.wait()
        self.assertFalse(os.path.exists(out) and os.path.getsize(out) != len(big))
        leftovers = [f for f in os.listdir(self.tmp) if f.startswith("x.bin.")]
        self.assertEqual(leftovers, [])
        self.no_plaintext_left(secret)

    def test_get_into_a_device_a_pipe_or_a_symlink_writes_through_it(self):
        data = os.urandom(300000)  # blob-backed
        d = self.d.put_bytes(data)
        # A character device (a /dev/null of our own, so that a regression
        # replaces this node and not the system's) stays a device.
        null = os.path.join(self.tmp, "null")
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        self.ctl("-q", "get", d, "-o", null)
        self.assertTrue(stat.S_ISCHR(os.lstat(null).st_mode))
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("null.")], [])
        # A FIFO: written in place, read by another process.
        fifo = os.path.join(self.tmp, "pipe")
        os.mkfifo(fifo)
        got = os.path.join(self.tmp, "from-pipe")
        with open(got, "wb") as sink:
            reader = subprocess.Popen(["cat", fifo], stdout=sink)
            self.ctl("-q", "get", d, "-o", fifo)
            self.assertEqual(reader.wait(timeout=30), 0)
        with open(got, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
        # Someone else's FIFO (made in /tmp by another user, who reads it):
        # private output is refused before a byte is written.
        if os.geteuid() == 0:
            theirs = os.path.join(self.tmp, "their-pipe")
            os.mkfifo(theirs)
            os.chown(theirs, 65534, 65534)
            got = os.path.join(self.tmp, "stolen")
            with open(got, "wb") as sink:
                reader = subprocess.Popen(["cat", theirs], stdout=sink)
                p = self.ctl("get", d, "-o", theirs, check=False)
                self.assertEqual(reader.wait(timeout=30), 0)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"is a FIFO owned by uid 65534", p.stderr)
            self.assertEqual(os.path.getsize(got), 0)
        # A symbolic link to a file: the file gets the bytes, the link stays.
        target = os.path.join(self.tmp, "target.bin")
        with open(target, "wb") as f:
            f.write(b"old")
        link = os.path.join(self.tmp, "link.bin")
        os.symlink(target, link)
        self.ctl("-q", "get", d, "-o", link)
        self.assertTrue(os.path.islink(link))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), data)
        # A block device is refused before anything is written.
        blk = os.path.join(self.tmp, "blk")
        os.mknod(blk, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
        p = self.ctl("get", d, "-o", blk, check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"is a block device", p.stderr)
        self.assertTrue(stat.S_ISBLK(os.lstat(blk).st_mode))
        # "-o -" is stdout, as in curl; no file named "-" appears.
        p = self.ctl("get", d, "-o", "-")
        self.assertEqual(p.stdout, data)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "-")))
        # A command that writes files only refuses "-" rather than create one.
        p = self.ctl("pubkey", "-o", "-", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"this command writes a file, not stdout", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "-")))

    def test_put_of_a_fifo_or_device_names_it(self):
        fifo = os.path.join(self.tmp, "pipe")
        os.mkfifo(fifo)
        p = self.ctl("put", fifo, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"is a FIFO", p.stderr)
        self.assertNotIn(b"no such file", p.stderr)
        p = self.ctl("put", "/dev/null", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"character device", p.stderr)
        p = self.ctl("put", os.path.join(self.tmp, "missing"), check=False)
        self.assertIn(b"No such file", p.stderr)
        # Inside a directory: skipped with a note, the rest uploaded; the
        # FIFO is never opened (that would block).
        tree = os.path.join(self.tmp, "tree")
        write(os.path.join(tree, "a.jpg"), b"a photo in a tree")
        os.mkfifo(os.path.join(tree, "fifo"))
        p = subprocess.run([SHREDCTL, "--server", self.d.address, "put", tree], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"skipping", p.stderr)
        self.assertIn(b"FIFO", p.stderr)
        self.assertIn(b"stored", p.stdout)

    def test_directory_put_does_not_follow_symlinks_unless_asked(self):
        outside = os.path.join(self.tmp, "outside")
        secret = b"a file outside the uploaded tree: must not be uploaded"
        write(os.path.join(outside, "secret.txt"), secret)
        write(os.path.join(outside, "sub", "deep.txt"), b"deep outside")
        tree = os.path.join(self.tmp, "tree")
        write(os.path.join(tree, "photo.jpg"), b"the one photo in the tree")
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(tree, "link.txt"))
        os.symlink(os.path.join(outside, "sub"), os.path.join(tree, "linkdir"))
        os.symlink(tree, os.path.join(tree, "loop"))
        p = self.ctl("--json", "put", tree)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
        stored = [l for l in lines if l["status"] in ("stored", "present")]
        self.assertEqual([os.path.basename(l["path"]) for l in stored], ["photo.jpg"])
        skipped = sorted(os.path.basename(l["path"]) for l in lines if l["status"] == "skipped")
        self.assertEqual(skipped, ["link.txt", "linkdir", "loop"])
        self.assertIn(b"symbolic link", p.stderr)
        self.assertEqual(self.d.ctl("stat", sha256_digest(secret), check=False).returncode, 4)
        # Asked: links are followed, each directory once (the loop ends).
        p = self.ctl("--json", "put", "--follow-symlinks", tree)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
        got = sorted(os.path.basename(l["path"]) for l in lines if l["status"] in ("stored", "present"))
        self.assertEqual(got, ["deep.txt", "link.txt", "photo.jpg"])
        # A link named on the command line is what the user asked for.
        self.ctl("put", os.path.join(tree, "link.txt"))


class SecondDaemonTest(DaemonTest):
    def test_second_daemon_on_the_same_data_dir_fails_before_touching_it(self):
        # RocksDB's info log goes to shredd's own log (no LOG file in the data
        # dir), so what a second daemon must not touch is every file there:
        # none added, removed or replaced, none shortened.
        db = os.path.join(self.d.data_dir, "db")
        self.d.put_bytes(b"something so the LOG has content")

        def files():
            out = {}
            for dirpath, _, names in os.walk(self.d.data_dir):
                for n in names:
                    st = os.stat(os.path.join(dirpath, n))
                    out[os.path.relpath(os.path.join(dirpath, n), self.d.data_dir)] = (st.st_ino, st.st_size)
            return out
        before = files()
        self.assertTrue(any(k.startswith("db" + os.sep) for k in before), before)
        other_root = os.path.join(self.tmp, "second")
        os.mkdir(other_root)
        second = Daemon(other_root, vault=self.d.vault, data_dir=self.d.data_dir)
        rc = second.start(expect_fail=True)
        self.assertNotEqual(rc, 0)
        after = files()
        self.assertEqual(sorted(after), sorted(before), "files in the running daemon's data dir came or went")
        for name, (ino, size) in before.items():
            self.assertEqual(after[name][0], ino, "%s was replaced" % name)
            self.assertGreaterEqual(after[name][1], size, "%s was truncated" % name)
        self.assertEqual([f for f in os.listdir(db) if f.startswith("LOG")], [], "RocksDB wrote its own LOG")
        self.assertIn("another shredd is running", second.log())
        # The running daemon still serves.
        self.assertEqual(self.d.get_bytes(sha256_digest(b"something so the LOG has content")),
                         b"something so the LOG has content")
        # After it stops, a new one starts on the same data dir.
        self.d.stop()
        third = Daemon(other_root, vault=self.d.vault, data_dir=self.d.data_dir)
        third.start()
        third.stop()

    def test_a_second_daemon_on_the_same_vault_is_refused_and_destroys_nothing(self):
        # A copy of the data dir started next to the running daemon on the
        # same vault (a restore drill on the same machine, a copy started by
        # mistake). Both at the same epoch, the old code let both run: the
        # copy's first shred destroyed the root the running daemon's key
        # tree is wrapped under (its next start: everything unreadable), and
        # a copy that was behind took the running one's newer root for a
        # crash's leftover and destroyed it. The vault is one process's.
        self.d.put_bytes(b"before the copy")
        self.d.stop()
        copy = os.path.join(self.tmp, "copy-data")
        shutil.copytree(self.d.data_dir, copy)
        self.d.start()
        vault_dir = self.d.vault[len("file:"):]
        roots = sorted(os.listdir(vault_dir))
        other_root = os.path.join(self.tmp, "copy")
        os.mkdir(other_root)
        copy_daemon = Daemon(other_root, vault=self.d.vault, data_dir=copy)
        self.assertNotEqual(copy_daemon.start(expect_fail=True), 0)
        self.assertIn("another process is using the file vault", copy_daemon.log())
        self.assertEqual(sorted(os.listdir(vault_dir)), roots)
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=sha256_digest(b"before the copy"))]),
                                timeout=60)
        data = b"after the refused copy"
        self.d.put_bytes(data)
        self.d.stop()
        self.d.start()  # the running daemon's root survived: it starts again
        self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)
        # Once it is stopped, the vault is free for another process.
        self.d.stop()
        later = Daemon(os.path.join(self.tmp, "later"), vault=self.d.vault, data_dir=self.d.data_dir)
        os.mkdir(later.root)
        later.start()
        later.stop()

if __name__ == "__main__":
    unittest.main()
