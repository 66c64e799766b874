"""Bucket policies that deny the daemon's own user an action on some keys (a
revoked permission, Object Lock, an operator's policy), against the real
Ceph RGW of the ctest fixture "ceph": refusals while serving are
UNAVAILABLE naming the store; an object the store refuses to delete does
not stop the other deletions nor a start (split from
test_object_store_faults.py, whose FaultsTest they use).
"""
import json
import re
import threading
import time
import unittest
import urllib.request

from harness import grpc, pb, sha256_digest
from test_object_store import MIB, PREFIX, rand
from test_object_store_faults import FaultsTest


class RefusingStoreTest(FaultsTest):
    """Base: bucket policies that deny the daemon's own user an action on
    some keys (a revoked permission, Object Lock, an operator's policy)."""

    daemon_args = ("--metrics-listen", "127.0.0.1:0")

    def deny(self, actions, *keys):
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": list(actions),
            "Resource": ["arn:aws:s3:::%s/%s" % (self.bucket, k) for k in keys]}]}
        self.s3.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))

    def metric(self, name):
        url = re.findall(r"metrics url=(\S+)", self.d.log())[-1]
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        self.assertTrue(m, "no %s in\n%s" % (name, text))
        return float(m.group(1))

    def shred(self, *digests):
        return self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=h) for h in digests], reason="test"),
                                       timeout=60)


class StoreRefusalsWhileServing(RefusingStoreTest):
    """The store is the daemon's own: its refusals while serving are
    UNAVAILABLE naming the store, never a verdict on the caller
    (PERMISSION_DENIED) or on the request (NOT_FOUND)."""

    def test_a_store_that_refuses_reads_is_unavailable_not_permission_denied(self):
        data = rand(6 * MIB, 600)
        digest = self.put(data)
        self.deny(["s3:GetObject"], PREFIX + "/*")
        e = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.d.get_bytes, digest)
        self.assertIn("object store", e.details())
        self.assertIn("403", e.details())
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.assertEqual(self.until_ok(lambda: self.d.get_bytes(digest)), data)

    def test_an_upload_aborted_under_a_put_is_unavailable_not_not_found(self):
        data = rand(12 * MIB, 601)
        digest = sha256_digest(data)
        header = pb.PutHeader(digest=pb.Digest(hash=digest, size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))
        go = threading.Event()

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, len(data), MIB):
                if i == 11 * MIB:
                    go.wait(60)
                yield pb.PutRequest(data=data[i:i + MIB])

        result = {}

        def run():
            try:
                self.d.store().Put(gen(), timeout=120)
                result["code"] = grpc.StatusCode.OK
            except grpc.RpcError as e:
                result["code"], result["details"] = e.code(), e.details()

        t = threading.Thread(target=run)
        t.start()
        try:
            self.wait_for("the multipart upload", lambda: self.uploads() != [])
            for u in self.uploads():
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])
        finally:
            go.set()
            t.join(120)
        self.assertEqual(result.get("code"), grpc.StatusCode.UNAVAILABLE, result)
        self.assertIn("object store", result["details"])
        # A retry of the same put is acknowledged.
        self.d.put_bytes(data, kind=pb.KIND_MODEL)
        self.assertEqual(self.d.get_bytes(digest), data)


class UndeletableObjects(RefusingStoreTest):
    """An object the store refuses to delete stays queued and is retried
    with backoff; it neither holds up the deletion of the others nor stops
    a start (docs/OBJECT-STORE.md)."""

    DELETES = ["s3:DeleteObject", "s3:DeleteObjectVersion"]

    def test_one_undeletable_object_does_not_stall_the_deletion_of_the_others(self):
        digests = [self.put(rand(6 * MIB, 610 + i)) for i in range(2)]
        # The first in the reaper's queue order (object ids, as in the keys).
        denied = self.objects()[0]
        self.deny(self.DELETES, denied)
        self.shred(*digests)
        self.wait_for("the other object's versions to be deleted",
                      lambda: {v["Key"] for v in self.versions()} == {denied}, timeout=60)
        self.wait_for("the refused object to show in the metrics",
                      lambda: self.metric("shredd_blob_deletions_failing") == 1)
        # (The other object's queue record goes after its versions, in a
        # write that waits for the state replication: not at the same instant.)
        self.wait_for("only the refused object to stay queued",
                      lambda: self.metric("shredd_blob_deletions_pending") == 1)
        self.assertGreaterEqual(self.metric("shredd_blob_deletion_failures_total"), 1)
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.wait_for("the refused object to be deleted once allowed", lambda: self.versions() == [], timeout=90)
        self.wait_for("the queue to be empty", lambda: self.metric("shredd_blob_deletions_pending") == 0)
        self.assertEqual(self.metric("shredd_blob_deletions_failing"), 0)

    def crash_orphan(self):
        """What a crash between an object's upload and its commit leaves: a
        complete object of this daemon's (its upload intent noted) that no
        record names. Made by a kill -9 mid-upload, then the multipart
        upload completed from its parts as the daemon would have."""
        data = rand(16 * MIB, 621)
        header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(data), size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))
        killed = threading.Event()

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, 12 * MIB, MIB):
                yield pb.PutRequest(data=data[i:i + MIB])
            killed.wait(60)

        t = threading.Thread(target=lambda: self.assertRaises(grpc.RpcError, self.d.store().Put, gen(), timeout=120))
        t.start()
        parts = []
        deadline = time.monotonic() + 60
        while not parts and time.monotonic() < deadline:
            for u in self.uploads():
                parts = self.s3.list_parts(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
            time.sleep(0.05)
        self.d.kill()
        killed.set()
        t.join(60)
        (u,) = self.uploads()
        parts = self.s3.list_parts(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])["Parts"]
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
        return u["Key"]

    def test_an_orphan_the_store_refuses_to_delete_does_not_stop_a_start(self):
        kept = rand(6 * MIB, 620)
        digest = self.put(kept)
        orphan = self.crash_orphan()
        self.deny(self.DELETES, orphan)
        self.d.start(timeout=60)
        self.assertGreaterEqual(self.metric("shredd_blob_gc_failures_total"), 1)
        self.assertIn("blob garbage collection at start failed", self.d.log())
        self.assertEqual(self.d.get_bytes(digest), kept)
        # Queued for the reaper, which retries it with backoff.
        self.wait_for("the orphan to be retried", lambda: self.metric("shredd_blob_deletions_failing") == 1)
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.wait_for("the orphan to be deleted once allowed",
                      lambda: orphan not in {v["Key"] for v in self.versions()}, timeout=90)
        self.wait_for("the queue to be empty", lambda: self.metric("shredd_blob_deletions_pending") == 0)
        self.assertEqual(len(self.objects()), 1)


if __name__ == "__main__":
    unittest.main()
