"""Recovery from the object store (issue 14, part 2), against the real Ceph RGW
of the ctest fixture "ceph" (SHREDD_S3_CONFIG names its endpoint and keys):

- sync: ingest 10,000 small items and a multi-part large one across datasets, a model with lineage, an order;
  kill -9; delete the data dir; `shredd restore` onto an empty dir with the
  same vault; start: every acknowledged unshredded item reads back
  byte-identical, every shredded one is NOT_FOUND, and `shredctl log monitor`
  with the state it saved before the loss accepts the restored log;
- async: what was acknowledged longer than the lag ago survives the loss;
- a shred epoch while radosgw is stopped keeps the old vault root until the
  state is replicated; the certificate arrives once the store is back;
- restore refuses a non-empty dir;
- restore falls back to the previous snapshot when the newest is damaged.

Ciphertext above the inline threshold is in the same bucket (objects
directly under the prefix); the restored records find it there.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import unittest

from harness import REPO, SHREDD, Daemon, DaemonTest, pb, sha256_digest, grpc

sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import ceph_cluster  # noqa: E402

CEPH_JSON = os.environ.get("SHREDD_S3_CONFIG", "")
CEPH_DIR = os.environ.get("SHREDD_CEPH_DIR", "")
CEPH_TOOL = os.path.join(REPO, "tests", "tools", "ceph_cluster.py")


def ceph():
    if not CEPH_JSON:
        raise unittest.SkipTest("SHREDD_S3_CONFIG is not set: run through ctest (fixture ceph)")
    with open(CEPH_JSON) as f:
        j = json.load(f)
    if j.get("skip"):
        raise unittest.SkipTest(j["skip"])
    return j


class RecoveryTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.ceph = ceph()
        self.bucket = "shredd-recov-" + secrets.token_hex(5)
        status = ceph_cluster.create_bucket(self.ceph["endpoint"], self.ceph["access_key"],
                                            self.ceph["secret_key"], self.bucket)
        self.assertIn(status, (200, 409))
        self.env = {"AWS_ENDPOINT_URL": self.ceph["endpoint"], "AWS_ACCESS_KEY_ID": self.ceph["access_key"],
                    "AWS_SECRET_ACCESS_KEY": self.ceph["secret_key"],
                    "AWS_REGION": self.ceph.get("region", "us-east-1")}
        self.vault = "file:" + os.path.join(self.tmp, "vault")

    def config(self, state, lag_ms=2000, prefix="p", epoch_items=25000):
        path = os.path.join(self.tmp, "shredd-%s-%s.toml" % (state, prefix))
        with open(path, "w") as f:
            f.write('[object_store]\nurl = "s3://%s/%s"\npath_style = true\nstate = "%s"\nstate_lag_ms = %d\n'
                    % (self.bucket, prefix, state, lag_ms))
            # Small epochs: a plan larger than one epoch stages its tail
            # without the WAL (the replicator covers that with a snapshot).
            f.write("[shred]\nepoch_items = %d\n" % epoch_items)
        return path

    def daemon(self, config, data_dir):
        d = Daemon(self.tmp, vault=self.vault, data_dir=data_dir, extra_args=["--config", config], env=self.env)
        d.start(timeout=60)
        return d

    def restore(self, config, data_dir, check=True, vault=None):
        p = subprocess.run([SHREDD, "restore", "--config", config, "--data-dir", data_dir, "--vault",
                            vault or self.vault],
                           capture_output=True, env=dict(os.environ, **self.env), timeout=300)
        if check:
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        return p

    def batch(self, d, items, dataset):
        for start in range(0, len(items), 500):
            req = pb.BatchPutRequest()
            for data in items[start:start + 500]:
                e = req.entries.add()
                e.header.digest.hash = sha256_digest(data)
                e.header.digest.size_bytes = len(data)
                e.header.metadata.kind = pb.KIND_PHOTO
                e.header.metadata.datasets.append(dataset)
                e.data = data
            for r in d.store().BatchPut(req, timeout=120).results:
                self.assertEqual(r.code, 0, r.message)
        return [sha256_digest(x) for x in items]

    def assert_gone(self, d, digest):
        with self.assertRaises(grpc.RpcError) as cm:
            d.get_bytes(digest)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, cm.exception.details())

    def lose_machine(self, d):
        d.kill()  # kill -9
        shutil.rmtree(d.data_dir)

    # ------------------------------------------------------------ tests

    def test_restore_after_kill_9_sync(self):
        cfg = self.config("sync", epoch_items=300)
        d = self.daemon(cfg, os.path.join(self.tmp, "data"))
        # 10,000 small items in two datasets (the recovery test).
        keep = [b"keep-%d-" % i + os.urandom(300) for i in range(5000)]
        doomed = [b"doomed-%d-" % i + os.urandom(300) for i in range(5000)]
        keep_d = self.batch(d, keep, "stock")
        doomed_d = self.batch(d, doomed, "okc-2014")
        # Streamed puts; the last one is above inline_threshold and larger
        # than one multipart part: its ciphertext is an object in the bucket,
        # which the restored records must find again.
        single = [os.urandom(20_000) for _ in range(5)] + [os.urandom(21 * (1 << 20) + 7)]
        single_d = [d.put_bytes(x, datasets=["stock"]) for x in single]
        model_path = os.path.join(self.tmp, "face.bin")
        with open(model_path, "wb") as f:
            f.write(os.urandom(40_000))
        _, lines = d.ctl("model", "register", model_path, "--trained-on", "okc-2014", json_out=True)
        model = lines[0]["digest"]
        cert = os.path.join(self.tmp, "cert.json")
        d.ctl("order", "submit", "--id", "ftc-1", "--basis", "ftc-order", "--reference", "FTC C-4765",
              "--dataset", "okc-2014", "-o", cert)
        vkey = os.path.join(self.tmp, "log.vkey")
        d.ctl("pubkey", "--format", "vkey", "-o", vkey)
        state = os.path.join(self.tmp, "monitor.state")
        p = d.ctl("log", "monitor", "--state", state, "--vkey", vkey, check=False)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        # Acknowledged after the order too: must survive.
        late = os.urandom(5000)
        late_d = d.put_bytes(late, datasets=["stock"])

        self.lose_machine(d)
        fresh = os.path.join(self.tmp, "restored")
        out = self.restore(cfg, fresh).stdout.decode()
        self.assertIn("matches", out)
        d2 = self.daemon(cfg, fresh)
        for digest, data in zip(keep_d + single_d + [late_d], keep + single + [late]):
            self.assertEqual(d2.get_bytes(digest), data, digest)
        for digest in doomed_d[:50] + doomed_d[-50:] + [model]:
            self.assert_gone(d2, digest)
        p = d2.ctl("log", "monitor", "--state", state, "--vkey", vkey, check=False)
        self.assertEqual(p.returncode, 0, "the monitor rejected the restored log: " + p.stdout.decode() +
                         p.stderr.decode())
        # The restored daemon takes writes (and replicates them).
        d2.put_bytes(os.urandom(3000))
        d2.stop()
        # And a restore refuses a dir that is not empty.
        p = self.restore(cfg, fresh, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not empty", p.stderr.decode())

    def test_a_second_daemon_on_an_older_copy_of_the_state_refuses_to_start(self):
        # A restore drill next to the live daemon, on the same config (the
        # review's reproduction): the drill's daemon used to delete, at its
        # start, the live daemon's WAL objects beyond the drill's copy and
        # every blob object its database did not know: M2, acknowledged by
        # the live daemon, read DATA_LOSS there and was gone from the store.
        cfg = self.config("sync", prefix="drill")
        live = self.daemon(cfg, os.path.join(self.tmp, "live"))
        m1 = os.urandom(300 << 10)
        d1 = live.put_bytes(m1, kind=pb.KIND_MODEL)
        drill_vault = os.path.join(self.tmp, "drill-vault")
        shutil.copytree(os.path.join(self.tmp, "vault"), drill_vault, symlinks=True)
        drill_dir = os.path.join(self.tmp, "drill")
        self.restore(cfg, drill_dir, vault="file:" + drill_vault)
        self.assertFalse(os.path.exists(os.path.join(drill_dir, "restore-supersedes")), "the restore was complete")
        m2 = os.urandom(300 << 10)
        d2 = live.put_bytes(m2, kind=pb.KIND_MODEL)  # acknowledged after the drill's copy
        os.makedirs(os.path.join(self.tmp, "drill-root"))
        drill = Daemon(os.path.join(self.tmp, "drill-root"), vault="file:" + drill_vault, data_dir=drill_dir,
                       extra_args=["--config", cfg], env=self.env)
        rc = drill.start(timeout=60, expect_fail=True)
        self.assertNotEqual(rc, 0)
        self.assertIn("newer than this data dir", drill.log())
        self.assertIn("Nothing was deleted", drill.log())
        self.assertEqual(live.get_bytes(d1), m1)
        self.assertEqual(live.get_bytes(d2), m2)
        # The store still holds the live daemon's newest state.
        live.kill()
        again_vault = os.path.join(self.tmp, "again-vault")
        shutil.copytree(os.path.join(self.tmp, "vault"), again_vault, symlinks=True)
        again_dir = os.path.join(self.tmp, "again")
        self.restore(cfg, again_dir, vault="file:" + again_vault)
        os.makedirs(os.path.join(self.tmp, "again-root"))
        again = Daemon(os.path.join(self.tmp, "again-root"), vault="file:" + again_vault, data_dir=again_dir,
                       extra_args=["--config", cfg], env=self.env)
        again.start(timeout=60)
        try:
            self.assertEqual(again.get_bytes(d2), m2)
            self.assertEqual(again.get_bytes(d1), m1)
        finally:
            again.kill()

    def test_restore_after_kill_9_async_within_the_lag(self):
        lag_ms = 2000
        cfg = self.config("async", lag_ms=lag_ms, prefix="a")
        d = self.daemon(cfg, os.path.join(self.tmp, "data"))
        items = [b"async-%d-" % i + os.urandom(200) for i in range(500)]
        digests = self.batch(d, items, "stock")
        t_ack = time.monotonic()
        time.sleep(lag_ms / 1000 + 1.0)  # the bound: lag + one upload
        age = time.monotonic() - t_ack
        self.lose_machine(d)
        fresh = os.path.join(self.tmp, "restored")
        self.restore(cfg, fresh)
        d2 = self.daemon(cfg, fresh)
        for digest, data in zip(digests, items):
            self.assertEqual(d2.get_bytes(digest), data)
        print("async (lag %d ms): everything acknowledged %.1f s before the loss was restored" % (lag_ms, age))
        d2.stop()

    def test_restore_falls_back_to_the_previous_snapshot_if_the_newest_is_damaged(self):
        import botocore.config
        import botocore.session
        s3 = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.ceph["endpoint"], region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.ceph["access_key"], aws_secret_access_key=self.ceph["secret_key"],
            config=botocore.config.Config(s3={"addressing_style": "path"}))
        cfg = self.config("sync", prefix="fb")
        data_dir = os.path.join(self.tmp, "data")
        d = self.daemon(cfg, data_dir)  # snapshot 1
        first = [b"first-%d-" % i + os.urandom(300) for i in range(50)]
        first_d = self.batch(d, first, "stock")
        d.stop()

        def descriptors():
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket, Prefix="fb/state/desc/")["Contents"]]
            return sorted(keys, key=lambda k: tuple(int(x) for x in k.rsplit("/", 1)[1][:-5].split("-")))

        d = self.daemon(cfg, data_dir)  # snapshot 2
        # Its start snapshot first: a batch acknowledged before it would be
        # in that snapshot only (no WAL object after the previous one holds
        # it), and the fallback could not bring it back (restore then says
        # so: DATA_LOSS, as StateReplicator.AFallbackThatStopsShortOfTheDamagedSnapshotIsDataLoss).
        deadline = time.time() + 60
        while len(descriptors()) < 2 and time.time() < deadline:
            time.sleep(0.1)
        second = [b"second-%d-" % i + os.urandom(300) for i in range(50)]
        second_d = self.batch(d, second, "stock")
        self.assertEqual(len(descriptors()), 2)
        self.lose_machine(d)
        # The newest descriptor is damaged; then the newest snapshot loses a file.
        newest = descriptors()[-1]
        body = s3.get_object(Bucket=self.bucket, Key=newest)["Body"].read()
        s3.put_object(Bucket=self.bucket, Key=newest, Body=body[:len(body) // 2])
        fresh = os.path.join(self.tmp, "restored")
        out = self.restore(cfg, fresh).stdout.decode()
        self.assertIn("skipped a damaged snapshot", out)
        self.assertIn(newest, out)
        # Restore crossed from the first start's run into the second's (the
        # second began where the first left off) and says where it ended:
        # the restored daemon's run continues that one (RECOVERY.md "Runs").
        with open(os.path.join(fresh, "state-run")) as f:
            run = f.read()
        self.assertRegex(run, "^[0-9a-f]{32}$")
        d2 = self.daemon(cfg, fresh)
        self.assertIn(run, d2.log())
        for digest, data in zip(first_d + second_d, first + second):
            self.assertEqual(d2.get_bytes(digest), data)
        d2.stop()
        # The data dir's run marker is checked: a damaged one stops the start
        # with its name (a guessed parent would misplace the next run); a
        # trailing newline from an editor is fine.
        marker = os.path.join(fresh, "state-run")
        with open(marker) as f:
            run = f.read()
        with open(marker, "w") as f:
            f.write("not a run id\n")
        self.assertNotEqual(d2.start(timeout=60, expect_fail=True), 0)
        self.assertIn("state-run does not hold a state run id", d2.log())
        with open(marker, "w") as f:
            f.write(run + "\n")
        d2.start(timeout=60)
        self.assertEqual(d2.get_bytes(first_d[0]), first[0])
        d2.stop()

    def test_epoch_while_the_store_is_down_keeps_the_old_root(self):
        if not CEPH_DIR:
            self.skipTest("SHREDD_CEPH_DIR is not set")
        cfg = self.config("async", prefix="down")
        d = self.daemon(cfg, os.path.join(self.tmp, "data"))
        victim = d.put_bytes(b"victim " + os.urandom(1000))
        other = os.urandom(1000)
        other_d = d.put_bytes(other)
        vault_dir = self.vault[len("file:"):]

        def roots():
            return sorted(n for n in os.listdir(vault_dir) if n.startswith("root-"))

        self.assertEqual(len(roots()), 1)
        subprocess.run([sys.executable, CEPH_TOOL, "stop-rgw", CEPH_DIR], check=True)
        try:
            req = pb.ShredRequest(digests=[pb.Digest(hash=victim)], reason="test", request_id="down-1")
            with self.assertRaises(grpc.RpcError) as cm:
                d.shredder().Shred(req, timeout=120)
            self.assertIn("object store", cm.exception.details())
            self.assertEqual(len(roots()), 2, "the old root must stay while the new tree is not replicated")
            self.assert_gone(d, victim)  # shredded locally: the epoch committed
        finally:
            subprocess.run([sys.executable, CEPH_TOOL, "start-rgw", CEPH_DIR, "--json", CEPH_JSON], check=True)
        deadline = time.time() + 90
        resp = None
        while time.time() < deadline:
            try:
                resp = d.shredder().GetCertificate(pb.GetCertificateRequest(request_id="down-1"), timeout=60)
                break
            except grpc.RpcError:
                time.sleep(1)
        self.assertIsNotNone(resp, "no certificate after the store came back:\n" + d.log()[-3000:])
        self.assertEqual(len(roots()), 1, "the old root must be gone once certified")
        self.assertEqual(d.get_bytes(other_d), other)
        # The restored state has the destruction and the new root.
        self.lose_machine(d)
        fresh = os.path.join(self.tmp, "restored")
        self.restore(cfg, fresh)
        d2 = self.daemon(cfg, fresh)
        self.assert_gone(d2, victim)
        self.assertEqual(d2.get_bytes(other_d), other)
        d2.stop()

    def test_one_item_shred_latency_sync_vs_local(self):
        def median_shred(extra):
            data_dir = os.path.join(self.tmp, "lat-%d" % len(os.listdir(self.tmp)))
            vault = "file:" + data_dir + "-vault"
            d = Daemon(self.tmp, vault=vault, data_dir=data_dir, extra_args=extra, env=self.env)
            d.start(timeout=60)
            times = []
            for i in range(7):
                digest = d.put_bytes(b"lat-%d-" % i + os.urandom(500))
                t0 = time.monotonic()
                d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)], reason="lat"), timeout=60)
                times.append(time.monotonic() - t0)
            d.stop()
            return sorted(times)[len(times) // 2] * 1000

        local = median_shred([])
        synced = median_shred(["--config", self.config("sync", prefix="lat")])
        print("one-item shred, median of 7: local %.1f ms, sync state replication %.1f ms (%.2fx)"
              % (local, synced, synced / local))


if __name__ == "__main__":
    unittest.main()
