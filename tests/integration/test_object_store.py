"""Item ciphertext in an S3-compatible object store (issue 14), against the
real Ceph RGW the ctest fixture "ceph" starts (tests/tools/ceph_cluster.py).

The bucket is inspected with botocore, an S3 client independent of shredd's
own (daemon/storage/s3_client.cc): what the bucket operator sees is read the
way the bucket operator would read it.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import grpc

from harness import SHREDD, DaemonTest, Daemon, pb, sha256_digest

S3_CONFIG = os.environ.get("SHREDD_S3_CONFIG", "")
PREFIX = "shredd"
MIB = 1 << 20


def ceph():
    if not S3_CONFIG or not os.path.exists(S3_CONFIG):
        raise unittest.SkipTest("SHREDD_S3_CONFIG is not set or missing: run through ctest (fixture \"ceph\")")
    with open(S3_CONFIG) as f:
        env = json.load(f)
    if env.get("skip"):
        raise unittest.SkipTest(env["skip"])
    return env


def s3_client(env, secret=None):
    import botocore.config
    import botocore.session
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=env["endpoint"], region_name=env.get("region", "us-east-1"),
        aws_access_key_id=env["access_key"], aws_secret_access_key=secret or env["secret_key"],
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


def rand(n, seed):
    import random
    return random.Random(seed).randbytes(n)


class ObjectStoreTest(DaemonTest):
    versioned = True

    def setUp(self):
        self.env = self.store_env()
        self.s3 = s3_client(self.env)
        self.bucket = "shredd-it-" + uuid.uuid4().hex[:12]
        self.s3.create_bucket(Bucket=self.bucket)
        if self.versioned:
            self.s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self.tmp = tempfile.mkdtemp(prefix="shredd-test-")
        self.d = Daemon(self.tmp, extra_args=["--config", self.write_config(self.tmp)], env=self.aws_env())
        if self.start_daemon:
            self.d.start()

    def tearDown(self):
        super().tearDown()
        for v in self.all_versions():
            self.s3.delete_object(Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])
        self.s3.delete_bucket(Bucket=self.bucket)

    def store_env(self):
        """The store and the S3 user the test's bucket and daemon use."""
        return ceph()

    def write_config(self, root, bucket=None, state="sync"):
        path = os.path.join(root, "shredd.toml")
        with open(path, "w") as f:
            f.write("[object_store]\n"
                    f"url = \"s3://{bucket or self.bucket}/{PREFIX}\"\n"
                    f"endpoint = \"{self.env['endpoint']}\"\n"
                    "path_style = true\n"
                    "part_size_mib = 5\n"
                    "concurrency = 2\n"
                    f"state = \"{state}\"\n")
        return path

    def aws_env(self, secret=None):
        return {"AWS_ACCESS_KEY_ID": self.env["access_key"],
                "AWS_SECRET_ACCESS_KEY": secret or self.env["secret_key"],
                "AWS_REGION": self.env.get("region", "us-east-1")}

    def all_versions(self):
        out = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket):
            out += page.get("Versions", []) + page.get("DeleteMarkers", [])
        return out

    # Versions of item ciphertext objects: directly under PREFIX/ (the
    # daemon's replicated state is under PREFIX/state/, docs/RECOVERY.md).
    def versions(self):
        return [v for v in self.all_versions() if "/" not in v["Key"][len(PREFIX) + 1:]]

    def objects(self):
        return sorted({v["Key"] for v in self.versions() if "Size" in v})

    def put(self, data, kind=pb.KIND_MODEL, subjects=(), datasets=()):
        self.d.put_bytes(data, kind=kind, subjects=subjects, datasets=datasets)
        return sha256_digest(data)

    def wait_for(self, what, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.1)


class CiphertextInTheBucket(ObjectStoreTest):
    def test_large_items_go_to_the_bucket_under_names_that_reveal_nothing(self):
        data = rand(12 * MIB + 12345, 1)  # three 5 MiB parts
        digest = self.put(data, subjects=["alice-0001"], datasets=["faces-2014"])
        small = rand(1000, 2)
        self.put(small, kind=pb.KIND_PHOTO, subjects=["alice-0001"])  # inline: stays in RocksDB
        (key,) = self.objects()
        name = key[len(PREFIX) + 1:]
        self.assertTrue(key.startswith(PREFIX + "/"), key)
        self.assertRegex(name, r"^[0-9a-f]{32}$")
        for secret in (digest.split(":")[1], "alice", "faces", digest.split(":")[1][:16]):
            self.assertNotIn(secret, key)
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        self.assertEqual(head.get("Metadata", {}), {})
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.assertGreater(len(body), len(data))  # sealed chunks with tags
        for off in (0, 5 * MIB, len(data) - 64):
            self.assertNotIn(data[off:off + 64], body)
        self.assertNotIn(b"alice-0001", body)
        self.assertEqual(self.d.get_bytes(digest), data)
        self.assertEqual(self.d.get_bytes(digest, offset=5 * MIB - 10, limit=100), data[5 * MIB - 10:5 * MIB + 90])
        self.assertEqual(self.d.get_bytes(sha256_digest(small)), small)

    def test_restart_reads_the_same_objects(self):
        data = rand(7 * MIB, 3)
        digest = self.put(data)
        self.d.stop()
        self.d.start()
        self.assertEqual(self.d.get_bytes(digest), data)
        self.assertEqual(len(self.objects()), 1)


class ShredDeletesEveryVersion(ObjectStoreTest):
    def test_every_version_goes_in_the_background(self):
        data = rand(6 * MIB, 4)
        digest = self.put(data, subjects=["bob"])
        (key,) = self.objects()
        # An older version of the same key (as a bucket replica or a
        # re-upload by someone else would leave): plain DELETE would hide,
        # not remove, them.
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"older version")
        self.assertEqual(len([v for v in self.versions() if "Size" in v]), 2)
        resp = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)], reason="test"))
        self.assertTrue(resp.certificate_id)
        self.wait_for("every version and delete marker to be gone", lambda: self.versions() == [])
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, digest)

    def test_deletion_resumes_after_a_restart(self):
        digests = [self.put(rand(6 * MIB, 10 + i)) for i in range(3)]
        self.assertEqual(len(self.objects()), 3)
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=h) for h in digests], reason="test"))
        self.d.kill()  # the deletions may not have run yet
        self.d.start()
        self.wait_for("the shredded items' objects to be deleted", lambda: self.versions() == [])


class Tampering(ObjectStoreTest):
    def test_altered_or_swapped_objects_are_data_loss_naming_nothing_wrong(self):
        a = rand(6 * MIB, 20)
        b = rand(6 * MIB, 21)
        da = self.put(a)
        key_a = self.objects()[0]
        db = self.put(b)
        (key_b,) = [k for k in self.objects() if k != key_a]
        body_a = self.s3.get_object(Bucket=self.bucket, Key=key_a)["Body"].read()
        body_b = self.s3.get_object(Bucket=self.bucket, Key=key_b)["Body"].read()
        # Swapped: A's key holds B's ciphertext.
        self.s3.put_object(Bucket=self.bucket, Key=key_a, Body=body_b)
        e = self.assertRpcError(grpc.StatusCode.DATA_LOSS, self.d.get_bytes, da)
        self.assertNotIn(b[:32].hex(), e.details())
        # One flipped byte.
        flipped = bytearray(body_a)
        flipped[len(flipped) // 2] ^= 1
        self.s3.put_object(Bucket=self.bucket, Key=key_a, Body=bytes(flipped))
        self.assertRpcError(grpc.StatusCode.DATA_LOSS, self.d.get_bytes, da)
        # Truncated.
        self.s3.put_object(Bucket=self.bucket, Key=key_a, Body=body_a[:-100])
        self.assertRpcError(grpc.StatusCode.DATA_LOSS, self.d.get_bytes, da)
        # B was never touched.
        self.assertEqual(self.d.get_bytes(db), b)


CEPH_DIR = os.environ.get("SHREDD_CEPH_DIR", "")
CEPH_TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "ceph_cluster.py")


class StoreDownMidUpload(ObjectStoreTest):
    def rgw(self, action):
        args = [sys.executable, CEPH_TOOL, action, CEPH_DIR]
        if action == "start-rgw":
            args += ["--json", S3_CONFIG]
        subprocess.run(args, check=True)

    def test_radosgw_stopped_mid_upload_then_started_again(self):
        if not CEPH_DIR:
            self.skipTest("SHREDD_CEPH_DIR is not set")
        before = rand(6 * MIB, 30)
        before_d = self.put(before)
        data = rand(16 * MIB, 31)  # four 5 MiB parts: the store goes away after the first
        digest = sha256_digest(data)
        header = pb.PutHeader(digest=pb.Digest(hash=digest, size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))
        stopped = []

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, len(data), MIB):
                if i == 7 * MIB and not stopped:
                    self.rgw("stop-rgw")
                    stopped.append(True)
                yield pb.PutRequest(data=data[i:i + MIB])

        try:
            e = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.d.store().Put, gen(), timeout=120)
            self.assertIn("object store", e.details())
            self.assertEqual(len(e.details().splitlines()), 1, e.details())
            # A small item while the store is down: its acknowledgement waits
            # for the replicated state (sync), so it fails the same way.
            self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.put, rand(1000, 32), pb.KIND_PHOTO)
        finally:
            if stopped:
                self.rgw("start-rgw")
        self.assertTrue(stopped)
        # Nothing of the failed upload counts as stored; what was acknowledged
        # reads back byte-identical; the same upload now succeeds.
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.store().Stat,
                            pb.StatRequest(digest=pb.Digest(hash=digest)))
        self.assertEqual(self.d.get_bytes(before_d), before)
        # A call within a second of the replicator's last failed retry (one
        # may still have been failing when radosgw came back) is answered
        # UNAVAILABLE at once rather than queued; the next retry (backoff at
        # most 5 s) finds the store.
        deadline = time.monotonic() + 30
        while True:
            try:
                self.d.put_bytes(data, kind=pb.KIND_MODEL)
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.assertEqual(self.d.get_bytes(digest), data)
        # No multipart upload is left behind in the bucket once restarted.
        self.d.stop()
        self.d.start()
        self.wait_for("no unfinished multipart upload",
                      lambda: self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []) == [])
        self.assertEqual(len(self.objects()), 2)


class SharedPrefix(ObjectStoreTest):
    """Two daemons on one prefix by mistake, state replication off (so
    nothing in the store says another daemon writes there, RECOVERY.md "One
    writer per prefix"): the second one's start-up garbage collection used
    to delete every object the first had stored, and abort its upload in
    flight; the first's acknowledged items then read DATA_LOSS. It deletes
    and aborts only what it began itself now (upload intents,
    OBJECT-STORE.md), and counts the rest."""
    start_daemon = False

    def daemon(self, name):
        root = os.path.join(self.tmp, name)
        os.makedirs(root)
        return Daemon(root, extra_args=["--config", self.write_config(root, state="off"), "--metrics-listen",
                                        "127.0.0.1:0"], env=self.aws_env())

    def metric(self, d, name):
        import re
        import urllib.request
        url = re.findall(r"metrics url=(http://127\.0\.0\.1:\d+/metrics)", d.log())[-1]
        with urllib.request.urlopen(url, timeout=10) as r:
            return float(re.search(r"^%s (\S+)$" % name, r.read().decode(), re.M).group(1))

    def test_a_second_daemon_on_the_same_prefix_deletes_nothing_of_the_first(self):
        import threading
        first = self.daemon("first")
        first.start()
        kept = rand(6 * MIB, 50)
        kept_d = first.put_bytes(kept, kind=pb.KIND_MODEL)
        # An upload of the first daemon in flight while the second starts.
        data = rand(16 * MIB, 51)
        header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(data), size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))
        go_on = threading.Event()
        outcome = []

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, len(data), MIB):
                if i == 8 * MIB:
                    go_on.wait(120)
                yield pb.PutRequest(data=data[i:i + MIB])

        def upload():
            try:
                outcome.append(first.store().Put(gen(), timeout=180))
            except grpc.RpcError as e:
                outcome.append(e)

        t = threading.Thread(target=upload)
        t.start()
        try:
            self.wait_for("a part of the upload in the store",
                          lambda: any(self.s3.list_parts(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])
                                      .get("Parts") for u in
                                      self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])))
            second = self.daemon("second")
            second.start()
            try:
                self.assertEqual(first.get_bytes(kept_d), kept)
                self.assertIn("neither holds nor began", second.log())
                self.assertGreaterEqual(self.metric(second, "shredd_blob_unknown_objects"), 2)
            finally:
                second.stop()
        finally:
            go_on.set()
            t.join(180)
        self.assertEqual(len(outcome), 1)
        self.assertNotIsInstance(outcome[0], grpc.RpcError, outcome[0])
        self.assertEqual(first.get_bytes(kept_d), kept)
        self.assertEqual(first.get_bytes(sha256_digest(data)), data)
        first.stop()
        first.start()
        self.assertEqual(first.get_bytes(kept_d), kept)
        self.assertEqual(self.metric(first, "shredd_blob_unknown_objects"), 0)
        first.stop()


class UnusableStoreAtStart(ObjectStoreTest):
    versioned = False
    start_daemon = False

    def start_fails(self, root, config, env):
        d = Daemon(root, extra_args=["--config", config], env=env)
        d.start(expect_fail=True)
        self.assertNotEqual(d.proc.returncode, 0)
        log = d.log()
        self.assertFalse(os.path.exists(os.path.join(root, "vault")), "the vault was created")
        self.assertFalse(os.path.exists(os.path.join(root, "data", "db")), "RocksDB was created")
        return log

    def test_wrong_secret_and_missing_bucket_are_refused_before_anything_is_written(self):
        root = os.path.join(self.tmp, "bad-secret")
        os.makedirs(root)
        log = self.start_fails(root, self.write_config(root), self.aws_env(secret="wrong" * 8))
        self.assertIn("not usable", log)
        self.assertNotIn("wrong" * 8, log)
        root = os.path.join(self.tmp, "no-bucket")
        os.makedirs(root)
        log = self.start_fails(root, self.write_config(root, bucket="no-such-bucket-" + uuid.uuid4().hex[:8]),
                               self.aws_env())
        self.assertIn("no-such-bucket-", log)
        self.assertEqual(self.all_versions(), [])

    def test_check_config_probe_asks_the_store_and_touches_nothing(self):
        root = os.path.join(self.tmp, "probe")
        os.makedirs(root)
        cfg = self.write_config(root)
        base = [SHREDD, "--config", cfg, "--data-dir", os.path.join(root, "data"), "--vault",
                "file:" + os.path.join(root, "vault"), "--check-config"]

        def run(args, secret=None):
            return subprocess.run(base + args, capture_output=True, env=dict(os.environ, **self.aws_env(secret)),
                                   timeout=120)

        good = run(["--probe"])
        self.assertEqual(good.returncode, 0, good.stderr.decode())
        self.assertIn("object store answers", good.stdout.decode())
        bad = run(["--probe"], secret="wrong" * 8)
        self.assertEqual(bad.returncode, 1)
        err = bad.stderr.decode()
        self.assertIn("not usable", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertNotIn("wrong" * 8, err)
        # Without --probe the store is not asked: the config itself is valid.
        self.assertEqual(run([], secret="wrong" * 8).returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(root, "vault")))
        self.assertEqual(self.all_versions(), [])


if __name__ == "__main__":
    unittest.main()
