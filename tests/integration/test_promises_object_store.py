"""The promises of test_promises.py (issue 12) with item ciphertext in the
object store (issue 14), against the real Ceph RGW of the ctest fixture
"ceph", `sync` state replication: every test of PromisesTest runs again on
this backend (uploads racing a shred never resurrect content, refused calls
leave no trace, ...), plus the race with a multipart upload: an upload of
content shredded while its parts were going out is refused, and leaves no
object, no unfinished multipart upload and nothing counted as stored; and a
seed of the model-based test (test_model_based.py: re-uploads racing
shreds and orders, kill -9, restarts, refused calls) on the object store.
"""
import os
import unittest

import test_promises
from harness import grpc, pb
from model_check import ModelRun, Violation
from test_object_store import MIB, PREFIX, ObjectStoreTest, rand


class PromisesOnObjectStore(test_promises.PromisesTest, ObjectStoreTest):
    # setUp: PromisesTest's, whose super() is ObjectStoreTest's (bucket,
    # config, daemon); tearDown: ObjectStoreTest's (empties the bucket).

    def uploads(self):
        return self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=PREFIX + "/").get("Uploads", [])

    def test_multipart_upload_in_flight_when_a_shred_commits_is_refused(self):
        data = rand(11 * MIB, 500)  # three 5 MiB parts; half of it goes before the shred
        digest = self.d.put_bytes(data, kind=pb.KIND_MODEL, subjects=["alice"])
        (stored,) = self.objects()
        up = test_promises.PausedUpload(self.d.store(), data,
                                        test_promises.header(data, kind=pb.KIND_MODEL, subjects=["alice"]))
        self.wait_for("the racing upload's first part in the bucket", lambda: any(
            self.s3.list_parts(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts")
            for u in self.uploads()), timeout=30)
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=60)
        up.release()
        self.assertIsNotNone(up.error, "the upload of shredded content was acknowledged: %s" % up.result)
        self.assertEqual(up.error.code(), grpc.StatusCode.FAILED_PRECONDITION, up.error.details())
        self.assertIn("was shredded", up.error.details())
        self.assertEqual(self.uploads(), [])
        self.wait_for("every object version to be gone", lambda: self.versions() == [], timeout=60)
        self.assertEqual(self.listed(), [])
        self.assertShreddedForGood(data, "alice")
        self.assertNotIn(stored, [v["Key"] for v in self.versions()], "an object came back after the restart")


class ModelBasedOnObjectStore(ObjectStoreTest):
    start_daemon = False
    SEED = int(os.environ.get("SHREDD_S3_MODEL_SEED", "6"))
    STEPS = int(os.environ.get("SHREDD_S3_MODEL_STEPS", "60"))

    def test_model_based_seed_on_the_object_store(self):
        saved = dict(os.environ)
        os.environ.update(self.aws_env())  # the model run's daemon inherits them
        try:
            run = ModelRun(self.SEED, steps=self.STEPS, extra_args=["--config", self.write_config(self.tmp)])
            try:
                st = run.run()
            except Violation as v:
                self.fail(str(v))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        print("\nseed %d on the object store: %d steps, %d operations, %d races, %d kill -9, %d certificates"
              % (self.SEED, st.steps, st.ops, st.races, st.kills, st.certificates))
        self.assertEqual(st.steps, self.STEPS)
        self.assertGreater(st.races, 0)
        self.assertGreater(len(self.objects()) + len(self.versions()), 0, "nothing reached the bucket")


if __name__ == "__main__":
    unittest.main()
