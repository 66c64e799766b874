"""The forensic test of issue 14: the issue-3 forensic test (test_forensic.py)
extended to the object store, against the real Ceph RGW of the "ceph" fixture.

With bucket versioning enabled and every old version kept: store X and Y
(X's large part is a multi-part object); image A = a copy of the data dir and
of every object version in the bucket; shred X; image B = the same again.
Holding images A and B, every object version, every state backup in the
store and the current vault:
  * no plaintext of X (content, subject id, label, file name, digest) is in
    either image, in any object version, or in the vault;
  * a restore of the store's state with the current vault cannot return X,
    and returns Y intact;
  * a restore of image A's state (an older state backup) with the current
    vault is refused: it needs a root the vault no longer holds;
  * a daemon on image A's data dir with the current vault refuses to start;
  * a daemon on image B's data dir cannot return X, even with X's old object
    versions put back into the bucket; Y reads back intact.
"""
import os
import shutil
import subprocess
import unittest
import uuid

from harness import SHREDD, Daemon, grep_tree, grpc, pb, sha256_digest
from test_object_store import MIB, ObjectStoreTest, rand


class ForensicObjectStoreTest(ObjectStoreTest):
    def download_image(self, name):
        """Every object version in the bucket, one file each; returns {key: latest body}."""
        root = os.path.join(self.tmp, name)
        os.makedirs(root)
        latest = {}
        for i, v in enumerate(self.all_versions()):
            if "Size" not in v:
                continue  # a delete marker has no body
            body = self.s3.get_object(Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            with open(os.path.join(root, "%05d" % i), "wb") as f:
                f.write(body)
            if v.get("IsLatest"):
                latest[v["Key"]] = body
        return root, latest

    def restore(self, bucket, data_dir):
        cfg_root = os.path.join(self.tmp, "cfg-" + uuid.uuid4().hex[:6])
        os.makedirs(cfg_root)
        cfg = self.write_config(cfg_root, bucket=bucket)
        return subprocess.run([SHREDD, "restore", "--config", cfg, "--data-dir", data_dir, "--vault",
                               self.d.vault], capture_output=True, env=dict(os.environ, **self.aws_env()), timeout=300)

    def daemon_on(self, name, data_dir, state="sync"):
        """A daemon on a copied data dir. Those on old images do not
        replicate (state "off"): one writer per prefix."""
        root = os.path.join(self.tmp, "run-" + name)
        os.makedirs(root)
        return Daemon(root, vault=self.d.vault, data_dir=data_dir,
                      extra_args=["--config", self.write_config(root, state=state)], env=self.aws_env())

    def assert_gone(self, d, digest):
        with self.assertRaises(grpc.RpcError) as cm:
            d.get_bytes(digest)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, cm.exception.details())

    def test_images_of_the_data_dir_and_of_every_object_version_do_not_recover_x(self):
        marker = os.urandom(16).hex().encode()
        x_big = (b"X-BIG-" + marker) * (7 * MIB // 38)  # ~7 MiB: two 5 MiB parts
        x_small = b"X-SMALL-" + marker + os.urandom(500)  # inline in RocksDB
        y = rand(6 * MIB, 60)
        subject = "subject-" + os.urandom(8).hex()
        label = "label-" + os.urandom(8).hex()
        name = "name-" + os.urandom(8).hex()
        dxb = self.d.put_bytes(x_big, subjects=[subject], labels={"src": label}, name=name)
        dxs = self.d.put_bytes(x_small, subjects=[subject], labels={"src": label})
        dy = self.d.put_bytes(y, subjects=["subject-y"])
        needles = [marker, subject.encode(), label.encode(), name.encode(), x_small[-64:],
                   dxb.split(":")[1].encode(), dxs.split(":")[1].encode()]

        self.d.stop()
        image_a = shutil.copytree(self.d.data_dir, os.path.join(self.tmp, "image-a"))
        bucket_a, latest_a = self.download_image("bucket-a")
        self.d.start()
        self.d.ctl("shred", dxb, dxs, "--reason", "forensic test", "-o", os.path.join(self.tmp, "cert.json"))
        self.wait_for("X's object versions to be deleted", lambda: len(self.objects()) == 1)
        self.d.stop()
        image_b = shutil.copytree(self.d.data_dir, os.path.join(self.tmp, "image-b"))
        bucket_b, _ = self.download_image("bucket-b")

        # 1. No plaintext of X anywhere.
        for root in (image_a, image_b, bucket_a, bucket_b, self.d.vault[len("file:"):]):
            self.assertEqual(grep_tree(root, needles), [], root)

        # 2. The store's state restored with the current vault: X gone, Y intact.
        fresh = os.path.join(self.tmp, "restored")
        p = self.restore(self.bucket, fresh)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        dr = self.daemon_on("restored", fresh)
        dr.start(timeout=60)
        try:
            self.assert_gone(dr, dxb)
            self.assert_gone(dr, dxs)
            self.assertEqual(dr.get_bytes(dy), y)
        finally:
            dr.kill()

        # 3. Image A's state backup (as the store held it before the shred),
        # in a bucket of its own, with the current vault: refused.
        old_bucket = "shredd-img-" + uuid.uuid4().hex[:10]
        self.s3.create_bucket(Bucket=old_bucket)
        try:
            for key, body in latest_a.items():
                self.s3.put_object(Bucket=old_bucket, Key=key, Body=body)
            p = self.restore(old_bucket, os.path.join(self.tmp, "restored-a"))
            self.assertNotEqual(p.returncode, 0, p.stdout.decode())
            self.assertIn("does not hold it", p.stderr.decode())
        finally:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=old_bucket):
                for o in page.get("Contents", []):
                    self.s3.delete_object(Bucket=old_bucket, Key=o["Key"])
            self.s3.delete_bucket(Bucket=old_bucket)

        # 4. Image A's data dir with the current vault: the daemon refuses.
        da = self.daemon_on("a", shutil.copytree(image_a, os.path.join(self.tmp, "copy-a")), state="off")
        self.assertNotEqual(da.start(expect_fail=True), 0)
        self.assertIn("does not hold it", da.log())

        # 5. Image B's data dir, with X's old object versions put back into
        # the bucket under their old keys: X stays gone, Y reads back.
        for key, body in latest_a.items():
            if "/" not in key[len("shredd/"):] and key not in self.objects():
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        db = self.daemon_on("b", shutil.copytree(image_b, os.path.join(self.tmp, "copy-b")), state="off")
        db.start(timeout=60)
        try:
            self.assert_gone(db, dxb)
            self.assert_gone(db, dxs)
            self.assertEqual(db.get_bytes(dy), y)
        finally:
            db.kill()


if __name__ == "__main__":
    unittest.main()
