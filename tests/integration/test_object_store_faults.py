"""kill -9 at the worst moments with item ciphertext and the daemon's state
in the object store (issue 14, "Bad input and faults"), against the real
Ceph RGW of the ctest fixture "ceph":

- during a multipart upload (the kill comes once RGW lists a part of it):
  after the restart the item is absent, nothing of it is counted as stored,
  the unfinished multipart upload is aborted, and the upload then works;
- during shred epochs with `sync` state replication, at random moments:
  after a restart on the same data dir, or after `shredd restore` onto a
  fresh one with the same vault, every item is intact or shredded and
  certified, never in between; the shredded items' objects are deleted in
  the background (every version);
- during a 10,000-item order: after the restart the order completes with one
  certificate whose manifest names every item, none of them reads back, the
  others do, and the order's objects are deleted;
- with the store refusing the daemon's state (a bucket policy): an upload
  committed locally keeps its object, a shred's objects stay until the shred
  is in the store (a restore must never name an object that is gone), and
  in `async` mode no proof commits to a tree the store lacks, and no entry
  of it is handed out;
- with the store over its quota (an RGW user quota): RESOURCE_EXHAUSTED,
  as for a full local disk, and nothing left behind.
"""
import hashlib
import os
import random
import subprocess
import threading
import time
import unittest
import uuid

from harness import SHREDCTL, SHREDD, Daemon, ctl_offline, grpc, pb, read_json, sha256_digest
from test_object_store import MIB, PREFIX, ObjectStoreTest, ceph, rand

from shredd.v1 import log_pb2, log_pb2_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402


STATE_WRITES_DENIED = """{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
  "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::%s/%s/state/*"]}]}"""


def rename_hold_keys(wal_data):
    """Renames the keys of the hold records ("H", "h") in a WAL object's
    batches in place (bytearray): "X" instead. True if it found any (or
    ones renamed before)."""
    def varint(buf, pos):
        shift = value = 0
        while True:
            b = buf[pos]
            value |= (b & 0x7F) << shift
            pos += 1
            if b < 0x80:
                return value, pos
            shift += 7

    found = False
    pos = 8 + 8 + 8 + 8 + 4  # magic, first, last, floor, batch count
    if wal_data[:8] == b"SHRDWAL4":
        pos += 16 + 16 + 8  # the run: id, parent, fork
    while pos < len(wal_data):
        length = int.from_bytes(wal_data[pos + 12:pos + 16], "big")
        rep_end = pos + 16 + length
        rec = pos + 16 + 12  # the rep's own sequence and count
        while rec < rep_end:
            tag = wal_data[rec]
            rec += 1
            slices = {0x0: 1, 0x7: 1, 0x3: 1, 0x1: 2, 0x2: 2, 0xF: 2}[tag]
            for i in range(slices):
                n, rec = varint(wal_data, rec)
                if i == 0 and tag == 0x1 and wal_data[rec:rec + 1] in (b"H", b"h", b"X"):
                    wal_data[rec:rec + 1] = b"X"
                    found = True
                rec += n
        pos = rep_end
    return found


class FaultsTest(ObjectStoreTest):
    extra_config = ""
    daemon_args = ()
    start_daemon = False  # started below, with daemon_args

    def setUp(self):
        super().setUp()
        self.d.extra_args += list(self.daemon_args)
        self.d.start(timeout=60)

    def write_config(self, root, bucket=None, state="sync"):
        path = super().write_config(root, bucket, state)
        with open(path, "a") as f:
            f.write(self.extra_config)
        return path

    def tearDown(self):
        # An upload a test left unfinished would keep the bucket from going.
        for u in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        super().tearDown()

    def until_ok(self, fn, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fn()
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def deny_state_writes(self):
        self.s3.put_bucket_policy(Bucket=self.bucket, Policy=STATE_WRITES_DENIED % (self.bucket, PREFIX))

    def uploads(self):
        return self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=PREFIX + "/").get("Uploads", [])

    def vault_roots(self):
        vault = self.d.vault[len("file:"):]
        return sorted(n for n in os.listdir(vault) if n.startswith("root-"))

    def batch_put(self, items, dataset="", d=None):
        out = []
        for start in range(0, len(items), 500):
            req = pb.BatchPutRequest()
            for data in items[start:start + 500]:
                e = req.entries.add()
                e.header.digest.hash = sha256_digest(data)
                e.header.digest.size_bytes = len(data)
                e.header.metadata.kind = pb.KIND_PHOTO
                if dataset:
                    e.header.metadata.datasets.append(dataset)
                e.data = data
            for r in (d or self.d).store().BatchPut(req, timeout=120).results:
                self.assertEqual(r.code, 0, r.message)
        return out + [sha256_digest(x) for x in items]

    def readable(self, digest, data):
        """True if it reads back byte-identical, False if NOT_FOUND; anything else fails."""
        try:
            got = self.d.get_bytes(digest)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, "%s: %s" % (digest, e.details()))
            return False
        self.assertEqual(got, data, digest)
        return True

    def restore_onto_fresh_dir(self, name):
        """The machine is lost: `shredd restore` onto an empty data dir, same vault, then start."""
        fresh = os.path.join(self.tmp, name)
        cfg = os.path.join(self.tmp, "shredd.toml")
        p = subprocess.run([SHREDD, "restore", "--config", cfg, "--data-dir", fresh, "--vault", self.d.vault],
                           capture_output=True, env=self.d.env, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.d = Daemon(self.tmp, vault=self.d.vault, data_dir=fresh, extra_args=self.d.extra_args, env=self.d.env)
        self.d.start(timeout=60)

    def certificate(self, request_id, timeout=60):
        """The certificate of a request: None if NOT_FOUND. UNAVAILABLE (the
        destruction waits for the state to be in the store) is retried."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.d.shredder().GetCertificate(pb.GetCertificateRequest(request_id=request_id), timeout=60)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def verify(self, resp, name, expected_digests):
        pem = os.path.join(self.tmp, "pub.pem")
        if not os.path.exists(pem):
            self.d.ctl("pubkey", "-o", pem)
        cert = os.path.join(self.tmp, name + ".json")
        man = os.path.join(self.tmp, name + ".manifest.json")
        with open(cert, "wb") as f:
            f.write(resp.certificate)
        with open(man, "wb") as f:
            f.write(resp.manifest)
        ctl_offline("verify", cert, "--pubkey", pem, "--manifest", man)
        self.assertEqual(sorted(i["digest"] for i in read_json(man)["items"]), sorted(expected_digests))


class KillDuringMultipartUpload(FaultsTest):
    """The daemon starts a multipart upload when the first part_size of
    ciphertext is buffered (5 MiB here), and sends each part as it fills:
    an item of at most one part is one PutObject at the end. (An earlier
    draft of this test used the default 16 MiB part size with a 16 MiB item:
    nothing could be in RGW before the whole item had been sent.) So the
    kill waits until RGW lists a finished part, while the client holds the
    last 4 MiB back."""

    daemon_args = ("--metrics-listen", "127.0.0.1:0")

    def items_stored(self):
        import re
        import urllib.request
        url = re.findall(r"metrics url=(http://127\.0\.0\.1:\d+/metrics)", self.d.log())[-1]
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        return int(float(re.search(r"^shredd_items_stored (\S+)$", text, re.M).group(1)))

    def test_kill_9_mid_multipart_upload_then_restart(self):
        before = rand(6 * MIB, 40)
        before_d = self.put(before)
        data = rand(24 * MIB, 41)  # five 5 MiB parts of ciphertext
        digest = sha256_digest(data)
        header = pb.PutHeader(digest=pb.Digest(hash=digest, size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))
        killed = threading.Event()
        sent = [0]
        errors = []

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, len(data), MIB):
                if killed.is_set():
                    return
                yield pb.PutRequest(data=data[i:i + MIB])
                sent[0] = i + MIB
                time.sleep(0.03)  # a slow client: the upload is in progress for a while
                if sent[0] == 20 * MIB:
                    killed.wait(60)  # the last 4 MiB never go before the kill

        def upload():
            try:
                self.d.store().Put(gen(), timeout=120)
            except grpc.RpcError as e:
                errors.append(e)

        t = threading.Thread(target=upload)
        t.start()
        # The kill comes while RGW holds the upload with some of its parts.
        deadline = time.monotonic() + 60
        parts = []
        while not parts and time.monotonic() < deadline:
            for u in self.uploads():
                parts = self.s3.list_parts(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
            if not parts:
                time.sleep(0.05)
        at = sent[0]
        self.d.kill()
        killed.set()
        t.join(60)
        self.assertTrue(parts, "RGW never listed a part of the upload (%d MiB sent)" % (sent[0] // MIB))
        self.assertLess(at, len(data), "the kill came after the whole item was sent")
        print("\nkill -9 after %d of 24 MiB sent, with %d part(s) in RGW" % (at // MIB, len(parts)))
        self.assertEqual(len(errors), 1, "the upload was acknowledged")
        (left,) = self.uploads()  # the crash left the unfinished multipart upload behind

        self.d.start()
        # Start-up garbage collection aborted it (it runs before the daemon serves).
        self.assertEqual(self.uploads(), [])
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.store().Stat,
                            pb.StatRequest(digest=pb.Digest(hash=digest)))
        self.assertEqual(self.items_stored(), 1)
        self.assertEqual([i.digest.hash for i in self.d.store().List(pb.ListRequest(), timeout=10).items],
                         [before_d])
        self.assertEqual(len(self.objects()), 1)
        self.assertEqual(self.d.get_bytes(before_d), before)
        # The same upload now works, and reads back after another restart.
        self.d.put_bytes(data, kind=pb.KIND_MODEL)
        self.assertEqual(self.d.get_bytes(digest), data)
        self.assertEqual(self.items_stored(), 2)
        self.d.stop()
        self.d.start()
        self.assertEqual(self.d.get_bytes(digest), data)
        self.assertEqual(len(self.objects()), 2)
        self.assertNotIn(left["Key"], self.objects())


class KillDuringShredEpochs(FaultsTest):
    RUNS = int(os.environ.get("SHREDD_S3_CRASH_RUNS", "6"))

    def test_kill_9_during_shred_epochs_then_restart_or_restore(self):
        rng = random.Random(int(os.environ.get("SHREDD_CRASH_SEED", "1414")))
        keep = [rng.randbytes(500) for _ in range(5)] + [rand(6 * MIB, 200)]
        kept = dict(zip(self.batch_put(keep[:-1]) + [self.put(keep[-1])], keep))
        kept_keys = set(self.objects())
        # How long one shred takes here (shredctl's start included): two
        # kills in three are spread over that time; every third comes as
        # soon as the daemon logs the epoch.
        calibrate = self.batch_put([rng.randbytes(1000) for _ in range(100)])
        t0 = time.monotonic()
        self.d.ctl("shred", *calibrate)
        took = time.monotonic() - t0
        doomed = {}  # digest -> data
        doomed_keys = set()
        outcomes = {"certified before the kill": 0, "certified after it": 0, "intact, then re-run": 0}
        for run in range(self.RUNS):
            before = set(self.objects())
            items = [rng.randbytes(rng.randint(10, 3000)) for _ in range(100)] + [rand(6 * MIB, 100 + run)]
            digests = self.batch_put(items[:-1]) + [self.put(items[-1])]
            (key,) = set(self.objects()) - before
            request = "s3-crash-%d" % run
            epochs = self.d.log().count("shred epoch")
            p = subprocess.Popen([SHREDCTL, "--server", self.d.address, "shred", "--request-id", request] + digests,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if run % 3 == 2:
                # Right after the epoch (new tree replicated, old root gone),
                # before the certificate: the restart must certify it.
                deadline = time.monotonic() + 30
                while self.d.log().count("shred epoch") == epochs and time.monotonic() < deadline:
                    time.sleep(0.002)
            else:
                time.sleep(rng.uniform(0.3, 1.5) * took)
            self.d.kill()
            delivered = p.wait() == 0  # shredctl had the certificate
            # Odd runs: the machine is lost; even runs: a restart.
            if run % 2:
                self.restore_onto_fresh_dir("restored-%d" % run)
            else:
                self.d.start(timeout=60)
            resp = self.certificate(request)
            states = [self.readable(dg, x) for dg, x in zip(digests, items)]
            if resp is None:
                self.assertTrue(all(states), "run %d: items lost without a certificate" % run)
                outcomes["intact, then re-run"] += 1
                resp = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=dg) for dg in digests],
                                                               request_id=request), timeout=120)
                states = [self.readable(dg, x) for dg, x in zip(digests, items)]
            else:
                outcomes["certified before the kill" if delivered else "certified after it"] += 1
            self.assertFalse(any(states), "run %d: certified but still readable" % run)
            self.verify(resp, "run-%d" % run, digests)
            self.assertEqual(len(self.vault_roots()), 1, "run %d: %s" % (run, self.vault_roots()))
            doomed.update(zip(digests, items))
            doomed_keys.add(key)
        # The last machine is lost too: the store's state has every outcome.
        self.d.kill()
        self.restore_onto_fresh_dir("restored-last")
        for dg, x in doomed.items():
            self.assertFalse(self.readable(dg, x), dg)
        for dg, x in kept.items():
            self.assertTrue(self.readable(dg, x), dg)
        # The background deletion finished what the kills interrupted.
        self.wait_for("every version of the shredded items' objects to be deleted",
                      lambda: not doomed_keys & {v["Key"] for v in self.versions()}, timeout=60)
        self.assertEqual(set(self.objects()), kept_keys)
        print("\n%d kills during shreds (one takes %.0f ms): %s; violations 0"
              % (self.RUNS, took * 1000, ", ".join("%s %d" % kv for kv in outcomes.items())))


class KillDuringLargeOrder(FaultsTest):
    extra_config = "[shred]\nepoch_items = 1000\n"

    def test_kill_9_during_a_10000_item_order(self):
        photos = [b"okc-%d-" % i + os.urandom(200) for i in range(10_000)]
        doomed = self.batch_put(photos, dataset="okc-2014")
        large = [rand(6 * MIB, 300), rand(6 * MIB, 301)]
        doomed += [self.d.put_bytes(x, kind=pb.KIND_MODEL, datasets=["okc-2014"]) for x in large]
        doomed_keys = set(self.objects())
        keep = [b"stock-%d-" % i + os.urandom(200) for i in range(200)] + [rand(6 * MIB, 302)]
        keep_d = self.batch_put(keep[:-1], dataset="stock") + [self.d.put_bytes(keep[-1], datasets=["stock"])]
        keep_keys = set(self.objects()) - doomed_keys
        orders = opb_grpc.OrdersStub(self.d.channel())
        spec = opb.OrderSpec(id="ftc-s3", basis=opb.OTHER, reference="FTC C-4765", datasets=["okc-2014"])
        orders.SubmitOrder(spec, timeout=60)
        # GetOrder reports no progress until the order is done; the daemon's
        # log has a line per epoch: kill once some epochs (not all 11) committed.
        target = random.Random(int(os.environ.get("SHREDD_CRASH_SEED", "1414"))).randint(1, 9)
        epochs = 0
        deadline = time.monotonic() + 120
        while epochs < target and time.monotonic() < deadline:
            epochs = self.d.log().count("shred epoch")
            time.sleep(0.01)
        self.d.kill()
        self.assertTrue(1 <= epochs < 11, "%d epochs at the kill" % epochs)
        print("\nkill -9 after %d of 11 epochs" % epochs)

        self.d.start(timeout=60)
        cert = os.path.join(self.tmp, "order.json")
        self.d.ctl("order", "wait", "ftc-s3", "-o", cert, "--timeout", "120")
        pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", pem)
        manifest = cert[:-5] + ".manifest.json"
        ctl_offline("verify", cert, "--pubkey", pem, "--manifest", manifest)
        self.assertEqual(sorted(i["digest"] for i in read_json(manifest)["items"]), sorted(doomed))
        # None of it reads back; everything else does.
        for start in range(0, len(doomed), 1000):
            req = pb.FindMissingRequest(digests=[pb.Digest(hash=dg) for dg in doomed[start:start + 1000]])
            missing = self.d.store().FindMissing(req, timeout=60).missing
            self.assertEqual(len(missing), len(doomed[start:start + 1000]))
        for dg in doomed[:20] + doomed[-20:]:
            self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, dg)
        for dg, x in zip(keep_d, keep):
            self.assertEqual(self.d.get_bytes(dg), x)
        self.wait_for("the order's objects to be deleted (every version)",
                      lambda: not doomed_keys & {v["Key"] for v in self.versions()}, timeout=60)
        self.assertEqual(set(self.objects()), keep_keys)


class StateNotReplicated(FaultsTest):
    """The store takes item objects but refuses the daemon's state (a bucket
    policy denies PutObject under PREFIX/state/): what is committed locally
    is not yet in the store."""

    def test_upload_committed_but_not_replicated_keeps_its_object(self):
        data = rand(7 * MIB, 400)
        self.deny_state_writes()
        # Committed locally, not replicated: UNAVAILABLE, and the item is
        # stored all the same (a retry is "already present").
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.put, data)
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.until_ok(lambda: self.put(data))  # the retry: acknowledged once the state is replicated
        self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)
        self.assertEqual(len(self.objects()), 1)
        self.d.kill()
        self.restore_onto_fresh_dir("restored")
        self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)

    def test_a_bucket_operator_who_edits_the_state_is_caught_by_restore(self):
        # The operator is not trusted (issue 14). WAL objects carried only a
        # SHA-256 checksum, which the operator can recompute: renaming the
        # hold's records in a batch restored a daemon without the hold, and
        # an order could then destroy what it held. They are signed now.
        data = rand(1000, 403)
        digest = self.put(data)
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(id="h-court", digest=pb.Digest(hash=digest),
                                                        reason="litigation")), timeout=60)
        self.put(rand(1000, 404))  # acknowledged: everything before it is in the store too
        self.d.kill()
        edited = self.rename_hold_records()
        fresh = os.path.join(self.tmp, "restored")
        cfg = os.path.join(self.tmp, "shredd.toml")
        restore = [SHREDD, "restore", "--config", cfg, "--data-dir", fresh, "--vault", self.d.vault]
        p = subprocess.run(restore, capture_output=True, env=self.d.env, timeout=300)
        self.assertEqual(p.returncode, 1, p.stdout.decode() + p.stderr.decode())
        self.assertIn("not signed by this vault's identity", p.stderr.decode())
        self.assertIn(edited, p.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(fresh, "db")), "a refused restore left a database")
        # Stripped of its signature (the unsigned format of earlier
        # versions): refused too, unless the operator is trusted on purpose.
        self.rename_hold_records(strip=True)
        p = subprocess.run(restore, capture_output=True, env=self.d.env, timeout=300)
        self.assertEqual(p.returncode, 1, p.stdout.decode() + p.stderr.decode())
        self.assertIn("--allow-unsigned-state", p.stderr.decode())
        p = subprocess.run(restore + ["--allow-unsigned-state"], capture_output=True, env=self.d.env, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        # What trusting the operator means: the hold is gone.
        self.d = Daemon(self.tmp, vault=self.d.vault, data_dir=fresh, extra_args=self.d.extra_args, env=self.d.env)
        self.d.start(timeout=60)
        self.assertEqual(list(opb_grpc.OrdersStub(self.d.channel()).ListHolds(opb.ListHoldsRequest()).holds), [])
        self.assertEqual(self.d.get_bytes(digest), data)

    def rename_hold_records(self, strip=False):
        """As a hostile bucket operator: in the WAL object that holds the
        hold, rename its records ("H..." and "h..." keys become "X...") and
        recompute the checksum; with `strip`, also drop the signature and
        write the unsigned format. Returns the object's key."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=PREFIX + "/state/wal/").get("Contents", [])
        for key in sorted(o["Key"] for o in listed):
            body = bytearray(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            trailer = 32 + (64 if body[:8] in (b"SHRDWAL3", b"SHRDWAL4") else 0)
            data, signature = body[:len(body) - trailer], body[len(body) - trailer + 32:]
            if not rename_hold_keys(data):
                continue
            if strip:
                # The unsigned format has no run fields (16 + 16 + 8 bytes
                # after the floor).
                if data[:8] == b"SHRDWAL4":
                    data = data[:32] + data[72:]
                data[:8], signature = b"SHRDWAL2", b""
            body = data + hashlib.sha256(bytes(data)).digest() + signature
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(body))
            return key
        self.fail("no WAL object holds the hold's records")

    def test_holds_and_orders_are_acknowledged_only_once_in_the_store(self):
        # They were acknowledged after the local write alone: with the store
        # unreachable, `hold add` answered OK, the machine was lost, and the
        # restored daemon held nothing (an order then destroyed the item).
        data = rand(1000, 402)
        digest = self.put(data)
        orders = opb_grpc.OrdersStub(self.d.channel())
        hold = opb.AddHoldRequest(hold=opb.Hold(id="h-legal", digest=pb.Digest(hash=digest), reason="litigation"))
        order = opb.OrderSpec(id="o-nobody", basis=opb.OTHER, reference="r", subject_ids=["nobody"])
        self.deny_state_writes()
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, orders.AddHold, hold, timeout=60)
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, orders.SubmitOrder, order, timeout=60)
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        # The retries (same id, same fields) are acknowledged once replicated.
        self.assertEqual(self.until_ok(lambda: orders.AddHold(hold, timeout=60)).id, "h-legal")
        self.assertEqual(self.until_ok(lambda: orders.SubmitOrder(order, timeout=60)).order_id, "o-nobody")
        e = self.assertRpcError(grpc.StatusCode.ALREADY_EXISTS, orders.AddHold,
                                opb.AddHoldRequest(hold=opb.Hold(id="h-legal", digest=pb.Digest(hash=digest),
                                                                 reason="other")))
        self.assertIn("another target or reason", e.details())
        self.d.kill()
        self.restore_onto_fresh_dir("restored")
        orders = opb_grpc.OrdersStub(self.d.channel())
        self.assertEqual([h.id for h in orders.ListHolds(opb.ListHoldsRequest()).holds], ["h-legal"])
        self.assertEqual(orders.GetOrder(opb.GetOrderRequest(order_id="o-nobody")).order_id, "o-nobody")
        e = self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.d.shredder().Shred,
                                pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=60)
        self.assertIn("h-legal", e.details())
        self.assertEqual(self.d.get_bytes(digest), data)
        # Removing it is acknowledged the same way.
        self.deny_state_writes()
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, orders.RemoveHold,
                            opb.RemoveHoldRequest(id="h-legal"), timeout=60)
        self.s3.delete_bucket_policy(Bucket=self.bucket)

    def test_a_shred_that_waited_for_the_store_deletes_its_object_once_it_is(self):
        # The epoch committed, then the shred waited for the store: its
        # object was queued for deletion, but the reaper was only woken by
        # the next shred or start, so the object stayed, uncounted.
        data = rand(6 * MIB, 403)
        digest = self.put(data)
        self.assertEqual(len(self.objects()), 1)
        self.deny_state_writes()
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.d.shredder().Shred,
                            pb.ShredRequest(digests=[pb.Digest(hash=digest)], request_id="later"), timeout=60)
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.wait_for("the pending certificate", lambda: self.certificate("later") is not None, timeout=90)
        self.wait_for("the object to be deleted", lambda: self.versions() == [], timeout=90)

    def test_a_subject_map_release_that_waited_for_the_store_destroys_the_old_root(self):
        # The release's epoch committed, then waited for the store: its old
        # root, which still opens the map in an old copy of the data dir,
        # stayed until the next certificate. The retrier destroys it now.
        for i in range(3):
            self.d.put_bytes(rand(500, 410 + i), subjects=["erin"])
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="o-map", basis=opb.OTHER, reference="r", subject_ids=["erin"],
                                         keep_subject_map=True), timeout=60)
        done = orders.GetOrder(opb.GetOrderRequest(order_id="o-map", wait=True), timeout=120)
        self.assertEqual(done.state, opb.ORDER_DONE, done.message)
        self.wait_for("one vault root", lambda: len(self.vault_roots()) == 1, timeout=60)
        self.deny_state_writes()
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, orders.ReleaseSubjectMap,
                            opb.SubjectMapRequest(order_id="o-map"), timeout=60)
        self.assertEqual(len(self.vault_roots()), 2, "the old root is kept while the store lacks the new tree")
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.wait_for("the old root to be destroyed", lambda: len(self.vault_roots()) == 1, timeout=90)
        # The operator retries the release that failed: the map is gone, and
        # the answer says so as the first release would have (not NOT_FOUND).
        again = orders.ReleaseSubjectMap(opb.SubjectMapRequest(order_id="o-map"), timeout=60)
        self.assertEqual(again.subjects, 1)
        e = self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: list(orders.GetSubjectMap(
            opb.SubjectMapRequest(order_id="o-map"), timeout=60)))
        self.assertIn("was released (subjects it held: 1)", e.details())

    def test_objects_of_a_shred_not_in_the_store_stay_until_it_is(self):
        data = rand(6 * MIB, 401)
        digest = self.put(data)
        (key,) = self.objects()
        self.deny_state_writes()
        e = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.d.shredder().Shred,
                                pb.ShredRequest(digests=[pb.Digest(hash=digest)], request_id="not-yet"), timeout=60)
        self.assertIn("object store", e.details())
        # Shredded locally (the epoch committed); a restart still cannot
        # replicate it: neither start-up garbage collection nor the reaper
        # may delete the object yet.
        self.d.kill()
        self.d.start(timeout=60)
        time.sleep(3)  # the reaper's first attempts
        self.assertEqual(self.objects(), [key])
        # The machine is lost: the store's state predates the shred, and the
        # vault still holds its root. The item is intact, not half-deleted.
        self.d.kill()
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        self.restore_onto_fresh_dir("restored")
        self.assertEqual(self.d.get_bytes(digest), data)
        self.assertIsNone(self.certificate("not-yet"))
        # Shredding it now certifies, and then the object goes.
        self.until_ok(lambda: self.d.shredder().Shred(
            pb.ShredRequest(digests=[pb.Digest(hash=digest)], request_id="now"), timeout=60))
        self.wait_for("the object to be deleted", lambda: self.versions() == [], timeout=60)


class AsyncProofs(FaultsTest):
    """`async` replication: an acknowledgement does not wait for the store,
    but no checkpoint and no proof may commit to a tree the store lacks, and
    GetEntries hands out no entry of it (a restore could roll it back)."""

    def write_config(self, root, bucket=None, state="sync"):
        return super().write_config(root, bucket, "async")

    def test_no_proof_for_a_tree_not_yet_in_the_store(self):
        log = log_pb2_grpc.LogStub(self.d.channel())
        self.d.put_bytes(b"before " + os.urandom(100))
        old = self.until_ok(lambda: log.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=30)).tree_size
        self.deny_state_writes()
        self.d.put_bytes(b"after " + os.urandom(100))  # acknowledged: async
        n = old + 1  # its custody entry
        calls = [
            lambda: log.GetEntries(log_pb2.GetEntriesRequest(start=old, end=n), timeout=60),
            lambda: log.GetInclusionProof(log_pb2.GetInclusionProofRequest(index=n - 1, tree_size=n), timeout=60),
            lambda: log.GetInclusionProof(log_pb2.GetInclusionProofRequest(index=0), timeout=60),
            lambda: log.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(first=old, second=n), timeout=60),
            lambda: log.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(first=old), timeout=60),
            lambda: log.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=60),
        ]
        for call in calls:
            self.assertRpcError(grpc.StatusCode.UNAVAILABLE, call)
        # Entries of the tree the store holds are given, and the tree size
        # they answer with is that tree's, not the local one.
        got = log.GetEntries(log_pb2.GetEntriesRequest(start=0, end=n), timeout=60)
        self.assertEqual((len(got.entries), got.tree_size), (old, old))
        # A proof within a tree the store holds is given.
        self.assertTrue(log.GetInclusionProof(log_pb2.GetInclusionProofRequest(index=0, tree_size=old),
                                              timeout=60).hashes or old == 1)
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        for call in calls:
            self.until_ok(call)
        self.assertEqual(log.GetEntries(log_pb2.GetEntriesRequest(start=old, end=n), timeout=60).tree_size, n)


class StoreOverQuota(FaultsTest):
    """The bucket's owner has an RGW user quota (radosgw-admin) that the
    local free-space guard cannot see: a put beyond it is RESOURCE_EXHAUSTED
    (as on a full local disk), not a generic error, and leaves nothing."""

    QUOTA = 4 * MIB

    def admin(self, *args):
        conf = os.path.join(ceph()["dir"], "ceph.conf")
        p = subprocess.run(["radosgw-admin", "-c", conf] + list(args), capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)

    def store_env(self):
        env = dict(ceph())
        self.uid = "quota-" + uuid.uuid4().hex[:8]
        env["access_key"], env["secret_key"] = "Q" + uuid.uuid4().hex[:19].upper(), uuid.uuid4().hex
        self.admin("user", "create", "--uid", self.uid, "--display-name", "quota test",
                   "--access-key", env["access_key"], "--secret-key", env["secret_key"])
        self.admin("quota", "set", "--quota-scope=user", "--uid", self.uid, "--max-size", str(self.QUOTA))
        self.admin("quota", "enable", "--quota-scope=user", "--uid", self.uid)
        return env

    def tearDown(self):
        super().tearDown()
        self.admin("user", "rm", "--uid", self.uid, "--purge-data")

    def test_a_put_beyond_the_store_quota_is_resource_exhausted(self):
        data = rand(6 * MIB, 500)  # a 5 MiB part is already over the quota
        e = self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, self.put, data)
        self.assertIn("quota", e.details())
        self.assertIn("QuotaExceeded", e.details())
        self.wait_for("the multipart upload to be aborted", lambda: self.uploads() == [])
        self.assertEqual(self.objects(), [])
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, sha256_digest(data))
        # Small items stay inline in RocksDB: they still go in.
        small = b"inline " + os.urandom(100)
        self.assertEqual(self.d.get_bytes(self.put(small, kind=pb.KIND_PHOTO)), small)
        # Quota lifted: the same put is acknowledged and reads back.
        self.admin("quota", "disable", "--quota-scope=user", "--uid", self.uid)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.put(data)
                break
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        self.assertEqual(self.d.get_bytes(sha256_digest(data)), data)


if __name__ == "__main__":
    unittest.main()
