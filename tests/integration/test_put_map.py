"""Bulk ingest (issue 16, part 5): `put --map FILE.csv` stores a whole
collection with each file's subjects, datasets and labels in one call and
ends with one total; bad rows are refused with their line numbers before
anything is stored; `model register` shows a progress bar on a terminal."""
import os
import re
import signal
import time
import unittest

from harness import DaemonTest, SHREDCTL, pb, sha256_digest
from pty_run import run_on_pty

TOTAL = re.compile(r"^put: (\d+) stored, (\d+) already present, (\d+) refused(, \d+ skipped)?; "
                   r"[0-9.]+ MB in [0-9.]+ s, [0-9.]+ MB/s\n$")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class PutMapTest(DaemonTest):
    def stat(self, h):
        return self.d.store().Stat(pb.StatRequest(digest=pb.Digest(hash=h)))

    def test_5000_files_in_one_call_with_one_summary_line(self):
        coll = os.path.join(self.tmp, "collection")
        rows = ["path,subjects,datasets,labels"]
        digests = []
        for i in range(5000):
            data = b"profile photo %d" % i
            write(os.path.join(coll, "p%02d" % (i % 50), "img%04d.jpg" % i), data)
            digests.append(sha256_digest(data))
            rows.append("p%02d/img%04d.jpg,user-%d;user-%d,okc-2014,src=okc;year=2014" % (i % 50, i, i, i + 1))
        # RFC 4180: a name with a comma and a quote, a label value with a
        # comma, a cell over two lines, CRLF line ends.
        odd = 'odd, "quoted".jpg'
        write(os.path.join(coll, odd), b"an odd name")
        rows.append('"odd, ""quoted"".jpg",user-odd,,"note=a, b"')
        with open(os.path.join(coll, "map.csv"), "w", newline="") as f:
            f.write("\r\n".join(rows) + "\r\n")
        p = self.d.ctl("put", "--map", os.path.join(coll, "map.csv"))
        self.assertEqual(p.stderr, b"")
        m = TOTAL.match(p.stdout.decode())
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(m.groups()[:3], ("5001", "0", "0"))
        for i in (0, 1234, 4999):
            info = self.stat(digests[i])
            self.assertEqual(sorted(info.metadata.subject_ids), sorted(["user-%d" % i, "user-%d" % (i + 1)]))
            self.assertEqual(list(info.metadata.datasets), ["okc-2014"])
            self.assertEqual(dict(info.metadata.labels), {"src": "okc", "year": "2014"})
            self.assertEqual(info.metadata.name, "img%04d.jpg" % i)
        info = self.stat(sha256_digest(b"an odd name"))
        self.assertEqual((info.metadata.name, list(info.metadata.subject_ids), dict(info.metadata.labels)),
                         (odd, ["user-odd"], {"note": "a, b"}))
        _, ds = self.d.ctl("dataset", "ls", json_out=True)
        self.assertEqual(ds, [{"dataset": "okc-2014", "items": 5000}])
        # Again, with a flag for every row: all present; --json has every file.
        p, lines = self.d.ctl("put", "--map", os.path.join(coll, "map.csv"), "--dataset", "okc-all", json_out=True)
        self.assertEqual(len(lines), 5002)
        self.assertEqual(lines[-1]["status"], "total")
        self.assertEqual((lines[-1]["stored"], lines[-1]["present"]), (0, 5001))
        self.assertEqual(sorted(self.stat(digests[7]).metadata.datasets), ["okc-2014", "okc-all"])

    def test_bad_rows_are_refused_with_line_numbers_before_anything_is_stored(self):
        d = os.path.join(self.tmp, "bad")
        for n in ("a.jpg", "b.jpg", "c.jpg"):
            write(os.path.join(d, n), n.encode())
        os.mkdir(os.path.join(d, "dir"))
        bad = ("path,subjects,datasets,labels\n"
               "a.jpg,alice,,\n"                  # line 2: good
               "missing.jpg,bob,,\n"              # line 3: no such file
               "b.jpg,carol,,novalue\n"           # line 4: label without =
               "c.jpg,dave,ds\n"                  # line 5: 3 fields
               '"c.jpg\nsecond line",x,,\n'       # lines 6-7: a name over two lines (no such file)
               "a.jpg,eve,,\n"                    # line 8: a.jpg twice
               "c.jpg,a;;b,,\n"                   # line 9: an empty value
               "dir,x,,\n"                        # line 10: a directory
               'c.jpg,x"y,,\n'                    # line 11: a stray quote
               "c.jpg,\x1b[31mred,,\n")           # line 12: a control character
        with open(os.path.join(d, "map.csv"), "w") as f:
            f.write(bad)
        p = self.d.ctl("put", "--map", os.path.join(d, "map.csv"), check=False)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertEqual(p.stdout, b"")
        for line, what in ((3, "No such file"), (4, "is not key=value"), (5, "3 fields, the header has 4"),
                           (6, "No such file"), (8, "listed already on line 2"), (9, "an empty value"),
                           (10, "a directory"), (11, "a quote inside an unquoted field"),
                           (12, "control or formatting characters")):
            self.assertRegex(err, r"map.csv: line %d: [^\n]*%s" % (line, re.escape(what)))
        self.assertIn("10 problems; nothing was stored", err)
        self.assertNotIn("line 2:", err)
        self.assertEqual(len(self.d.store().List(pb.ListRequest()).items), 0)
        # Header problems.
        for text, why in (("file,subjects\nx,y\n", 'unknown column "file"'), ("subjects\nx\n", 'no "path" column'),
                          ("", "no header row"), ("path\n", "no rows after the header"),
                          ('path\n"a.jpg\n', "line 2: a quoted field is never closed")):
            with self.subTest(text=text):
                with open(os.path.join(d, "map.csv"), "w") as f:
                    f.write(text)
                p = self.d.ctl("put", "--map", os.path.join(d, "map.csv"), check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(why, p.stderr.decode())
        # Paths and --map together, or neither: a usage error.
        self.assertEqual(self.d.ctl("put", "--map", os.path.join(d, "map.csv"), os.path.join(d, "a.jpg"),
                                    check=False).returncode, 2)
        self.assertEqual(self.d.ctl("put", check=False).returncode, 2)

    def test_model_register_shows_progress_on_a_terminal(self):
        self.d.put_bytes(b"a face", datasets=["faces"])
        big = os.path.join(self.tmp, "weights.bin")
        write(big, os.urandom(32 << 20))

        def register(*flags):
            # The daemon paused for a moment makes the transfer take over half a second.
            cmd = [SHREDCTL, "--server", self.d.address] + list(flags) + ["model", "register", big,
                                                                         "--trained-on", "faces"]
            os.kill(self.d.proc.pid, signal.SIGSTOP)
            try:
                import threading
                t = threading.Timer(1.2, lambda: os.kill(self.d.proc.pid, signal.SIGCONT))
                t.start()
                rc, out = run_on_pty(cmd)
                t.join()
            finally:
                os.kill(self.d.proc.pid, signal.SIGCONT)
            self.assertEqual(rc, 0, out)
            return out

        self.assertIn(b"model register [", register())
        write(big, os.urandom(32 << 20))
        self.assertNotIn(b"model register [", register("-q"))


if __name__ == "__main__":
    unittest.main()
