"""The transparency log as C2SP tlog-tiles in the object store
([object_store] log_tiles, issue 15 part 6), against the real Ceph RGW of the
ctest fixture "ceph": the daemon keeps its tiles under PREFIX/tiles/, the
bucket serves them to anonymous readers through a bucket policy (as a
vendor would publish them), and `shredctl log monitor --tiles URL` follows
the log from the bucket with no daemon access. The layout is checked with
Go's golang.org/x/mod/sumdb/tlog (tests/tools/tiles_verify.go) on a copy
downloaded with botocore; the bucket's contents are read with botocore, not
with shredd's own S3 client.
"""
import json
import os
import unittest
import urllib.error
import urllib.request

import test_log_tiles
from harness import read_text
from test_object_store import PREFIX, ObjectStoreTest

# TilesTest is not bound by name here: unittest would run its tests again.
EXIT_FORK = test_log_tiles.EXIT_FORK

TILES = PREFIX + "/tiles/"


def setUpModule():
    test_log_tiles.setUpModule()


def tearDownModule():
    test_log_tiles.tearDownModule()


class TilesInTheBucket(ObjectStoreTest):
    versioned = True

    def write_config(self, root, bucket=None, state="sync"):
        path = super().write_config(root, bucket, state)
        with open(path, "a") as f:
            f.write("log_tiles = true\n")
        return path

    def setUp(self):
        super().setUp()
        # Anonymous readers may GET what is under PREFIX/tiles/, nothing else.
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::%s/%s*" % (self.bucket, TILES)]}]}
        self.s3.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))
        self.url = "%s/%s/%s" % (self.env["endpoint"], self.bucket, TILES.rstrip("/"))

    # ------------------------------------------------------------ helpers

    vkey = test_log_tiles.TilesTest.vkey
    write = test_log_tiles.TilesTest.write

    def monitor(self, state, vkey_file, json_out=False):
        return test_log_tiles.TilesTest.monitor(self, state, vkey_file, json_out=json_out)

    def anonymous_get(self, key):
        with urllib.request.urlopen("%s/%s/%s" % (self.env["endpoint"], self.bucket, key), timeout=10) as r:
            return r.read()

    def tiles_size(self):
        try:
            return int(self.anonymous_get(TILES + "checkpoint").decode().split("\n")[1])
        except (urllib.error.URLError, IndexError, ValueError):
            return -1

    def wait_tiles(self, size):
        self.wait_for("the bucket's tiles at tree size %d (at %d)" % (size, self.tiles_size()),
                      lambda: self.tiles_size() == size, timeout=30)

    def log_size(self):
        return self.d.ctl("log", "checkpoint", json_out=True)[1][0]["treeSize"]

    def tile_versions(self):
        return [v for v in self.all_versions() if v["Key"].startswith(TILES)]

    def current_tiles(self):
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=TILES):
            for o in page.get("Contents", []):
                out[o["Key"][len(TILES):]] = o["ETag"]
        return out

    def download_tiles(self, name):
        """A copy of the bucket's tiles, for the Go verifier."""
        root = os.path.join(self.tmp, name)
        for rel in self.current_tiles():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(self.s3.get_object(Bucket=self.bucket, Key=TILES + rel)["Body"].read())
        return root

    def go_verify(self, vkey_file, tiles_dir, *old):
        return test_log_tiles.TilesTest.go_verify(self, vkey_file, tiles_dir, *old)

    def wait_partials_gone(self):
        """Partial tiles go just after the checkpoint that made them full."""
        def left():
            return [v["Key"] for v in self.tile_versions()
                    if v["Key"].startswith((TILES + "tile/0/000.p/", TILES + "tile/entries/000.p/"))]
        self.wait_for("the partial versions of the full tile 000 to go (left: %s)\n%s" % (left(), self.d.log()),
                      lambda: left() == [], timeout=10)

    def put_photos(self, count, tag):
        for i in range(count):
            self.d.put_bytes(b"%s photo %d " % (tag, i) + os.urandom(8), subjects=["s%d" % i])

    # ------------------------------------------------------------ tests

    def test_a_monitor_follows_the_log_from_the_bucket_alone(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.put_photos(3, b"first")
        n1 = self.log_size()
        self.wait_tiles(n1)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("trust on first use", p.stdout.decode())
        state_at_n1 = read_text(state)
        old_checkpoint = self.anonymous_get(TILES + "checkpoint")

        # Past a full tile (256 entries: custody entries of uploads): the
        # monitor accepts the growth, Go's tlog reads the same tree, and the
        # partial tiles the full ones replaced are gone, every version.
        self.put_photos(260, b"second")
        n2 = self.log_size()
        self.assertGreater(n2, 256)
        self.wait_tiles(n2)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("grew from %d to %d" % (n1, n2), p.stdout.decode())
        self.go_verify(vkey_file, self.download_tiles("copy"), self.write("cp1", state_at_n1))
        self.wait_partials_gone()
        tiles = self.current_tiles()
        self.assertIn("tile/0/000", tiles)
        self.assertIn("tile/entries/000", tiles)
        # Level 1's tile 000 is not full: its partials stay.
        self.assertTrue(any(k.startswith("tile/1/000.p/") for k in tiles), tiles)
        # One current checkpoint, not one version per publish (the previous
        # version goes just after the next one is written: a publish may be
        # between the two).
        def checkpoints():
            return [v for v in self.tile_versions() if v["Key"] == TILES + "checkpoint"]
        self.wait_for("one checkpoint version (%s)" % checkpoints(), lambda: len(checkpoints()) == 1, timeout=10)
        # Nothing but tiles is readable anonymously.
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.anonymous_get(PREFIX + "/state/")
        self.assertEqual(e.exception.code, 403)

        # The bucket serves an older checkpoint (a rollback by whoever runs
        # it): the monitor cries rollback and keeps what it trusted ...
        self.assertEqual(self.d.stop(), 0)
        self.s3.put_object(Bucket=self.bucket, Key=TILES + "checkpoint", Body=old_checkpoint)
        self.s3.delete_object(Bucket=self.bucket, Key=TILES + "tile/0/000")
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
        self.assertIn("ROLLBACK", p.stderr.decode())
        # ... and the daemon, on start, finds the checkpoint of its own older
        # tree, puts back the tile that went missing and publishes again.
        self.d.start()
        self.wait_tiles(n2)
        self.wait_partials_gone()
        self.assertEqual(self.current_tiles().keys(), tiles.keys())
        self.assertEqual(self.current_tiles()["tile/0/000"], tiles["tile/0/000"])
        p, lines = self.monitor(state, vkey_file, json_out=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(lines[0]["status"], "unchanged")
        cps = [v for v in self.tile_versions() if v["Key"] == TILES + "checkpoint"]
        self.assertEqual(len(cps), 1, "the versions of earlier runs go too: %s" % cps)

    def test_shredding_keeps_the_tiles_and_the_ciphertext_apart(self):
        # The blob backend's garbage collection (keys directly under PREFIX/)
        # and the tiles (under PREFIX/tiles/) never touch each other.
        digest = self.put(os.urandom(200 << 10), subjects=["alice"])
        self.d.ctl("shred", digest)
        n = self.log_size()
        self.wait_tiles(n)
        self.wait_for("the shredded item's objects to go", lambda: self.objects() == [])
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        self.wait_tiles(n)
        self.assertIn("checkpoint", self.current_tiles())


class TilesInAnUnversionedBucket(TilesInTheBucket):
    versioned = False

    def test_shredding_keeps_the_tiles_and_the_ciphertext_apart(self):
        raise unittest.SkipTest("covered by the versioned bucket")


if __name__ == "__main__":
    unittest.main()
