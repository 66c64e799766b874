"""Large destructions (issue 6) at test scale: an order is planned into
staged records, destroyed in several key-tree epochs and certified once; the
manifest is stored in chunks and, past a size, served only by GetManifest.
The [shred] config keys shrink the chunk sizes so a few hundred items
exercise every path the 3-million-item benchmark takes."""
import base64
import glob
import json
import os
import re
import time
import unittest

from harness import Daemon, DaemonTest, ctl_offline, grpc, pb, read_json, sha256_digest

from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402
from shredd.v1 import shredd_pb2_grpc as spb_grpc  # noqa: E402


def payload(cert_path):
    return json.loads(base64.b64decode(read_json(cert_path)["payload"]))


CONFIG = """
[shred]
epoch_items = %d
manifest_chunk_items = 50
inline_manifest_items = 100
"""


class ChunkedOrderTest(DaemonTest):
    start_daemon = False

    def start(self, epoch_items):
        cfg = os.path.join(self.tmp, "shredd.toml")
        with open(cfg, "w") as f:
            f.write(CONFIG % epoch_items)
        self.d = Daemon(self.tmp, extra_args=["--config", cfg])
        self.d.start()
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", self.pem)

    def photos(self, n, dataset, tag=b""):
        items = [b"photo %d %s" % (i, tag) + os.urandom(16) for i in range(n)]
        for start in range(0, n, 500):
            req = pb.BatchPutRequest()
            for data in items[start:start + 500]:
                e = req.entries.add()
                e.header.digest.hash = sha256_digest(data)
                e.header.digest.size_bytes = len(data)
                e.header.metadata.kind = pb.KIND_PHOTO
                e.header.metadata.datasets.append(dataset)
                e.header.metadata.subject_ids.append("subject-%d" % (len(e.data) % 7))
                e.data = data
            for r in self.d.store().BatchPut(req, timeout=120).results:
                self.assertEqual(r.code, 0, r.message)
        return [sha256_digest(x) for x in items]

    def model(self, dataset):
        path = os.path.join(self.tmp, "model-%s.bin" % dataset)
        with open(path, "wb") as f:
            f.write(os.urandom(200 * 1024))  # a file-backed item
        _, lines = self.d.ctl("model", "register", path, "--trained-on", dataset, json_out=True)
        return lines[0]["digest"]

    def gone(self, digest):
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.get_bytes(digest)
        return cm.exception.code() == grpc.StatusCode.NOT_FOUND

    def vault_roots(self):
        return sorted(glob.glob(os.path.join(self.tmp, "vault", "root-*.key")))

    def check_certificate(self, cert, manifest, expected_digests, epochs):
        p = ctl_offline("verify", cert, "--pubkey", self.pem, "--manifest", manifest, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        pred = payload(cert)["predicate"]
        m = read_json(manifest)
        self.assertEqual(sorted(i["digest"] for i in m["items"]), sorted(expected_digests))
        self.assertEqual(pred["items"]["count"], len(expected_digests))
        d = pred["destruction"]
        self.assertEqual(d["rootEpochInstalled"] - d["rootEpochDestroyed"], epochs, d)
        # Every root up to the installed one is gone from the vault.
        self.assertEqual([os.path.basename(r) for r in self.vault_roots()],
                         ["root-%d.key" % d["rootEpochInstalled"]])
        return pred

    def test_order_runs_in_several_epochs_with_one_certificate_and_a_streamed_manifest(self):
        self.start(epoch_items=64)
        photos = self.photos(700, "big")
        keep = self.photos(30, "other", b"keep")
        model = self.model("big")
        cert = os.path.join(self.tmp, "order.json")
        self.d.ctl("order", "submit", "--id", "big-1", "--basis", "ftc-order", "--reference", "r",
                   "--dataset", "big", "-o", cert)
        manifest = cert[:-5] + ".manifest.json"
        # 700 photos + the model: ceil(701 / 64) = 11 epochs, one certificate.
        pred = self.check_certificate(cert, manifest, photos + [model], 11)
        self.assertEqual(pred["items"]["byKind"], {"photo": 700, "model": 1})
        self.assertEqual([m["digest"] for m in pred["derivedModels"]], [model])
        self.assertEqual(len(re.findall(r"shred epoch", self.d.log())), 11)
        for dg in photos[::50] + [model]:
            self.assertTrue(self.gone(dg), dg)
        for dg in keep[:5]:
            self.assertEqual(sha256_digest(self.d.get_bytes(dg)), dg)
        # The manifest is over inline_manifest_items: GetCertificate leaves it
        # out and says so; GetManifest streams the same bytes the CLI wrote.
        shredder = spb_grpc.ShredderStub(self.d.channel())
        cid = pred["certificateId"]
        resp = shredder.GetCertificate(pb.GetCertificateRequest(certificate_id=cid))
        self.assertTrue(resp.manifest_omitted)
        self.assertEqual(resp.manifest, b"")
        self.assertEqual(resp.item_count, 701)
        streamed = b"".join(c.data for c in shredder.GetManifest(pb.GetCertificateRequest(certificate_id=cid)))
        with open(manifest, "rb") as f:
            self.assertEqual(streamed, f.read())
        # Receipts for a manifest this large are derived offline, not served.
        with self.assertRaises(grpc.RpcError) as cm:
            shredder.GetCertificate(pb.GetCertificateRequest(certificate_id=cid, include_receipts=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        # Re-uploading shredded content is refused, naming the order.
        # The model's ciphertext file goes in the background (BlobReaper).
        blobs = lambda: glob.glob(os.path.join(self.d.data_dir, "blobs", "*", "*"))
        deadline = time.monotonic() + 10
        while blobs() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(blobs(), [])
        # The daemon restarts cleanly: nothing staged is left to finish.
        self.d.stop()
        self.d.start()
        self.assertNotIn("finishing", self.d.log().split("shred epoch")[-1])
        resp2 = spb_grpc.ShredderStub(self.d.channel()).GetCertificate(
            pb.GetCertificateRequest(certificate_id=cid))
        self.assertEqual(resp2.certificate, resp.certificate)

    def test_small_manifests_stay_inline(self):
        self.start(epoch_items=64)
        photos = self.photos(80, "small")
        cert = os.path.join(self.tmp, "small.json")
        self.d.ctl("order", "submit", "--id", "s-1", "--basis", "other", "--reference", "r",
                   "--dataset", "small", "-o", cert)
        pred = self.check_certificate(cert, cert[:-5] + ".manifest.json", photos, 2)
        shredder = spb_grpc.ShredderStub(self.d.channel())
        resp = shredder.GetCertificate(pb.GetCertificateRequest(certificate_id=pred["certificateId"],
                                                                include_receipts=True))
        self.assertFalse(resp.manifest_omitted)
        self.assertEqual(len(resp.receipts), 80)
        self.assertEqual(json.loads(resp.manifest), read_json(cert[:-5] + ".manifest.json"))

    def test_a_plan_over_many_items_lists_ten_thousand_and_counts_all(self):
        # A dry run over a dataset larger than a reply's list (10,000 per
        # kind): exact counts, a list cut to distinct stored items, and
        # nothing changes; the order itself still shreds every item.
        self.start(epoch_items=4096)
        photos = self.photos(10007, "big")
        model = self.model("big")
        spec = opb.OrderSpec(id="p-big", basis=opb.OTHER, reference="r", datasets=["big"])
        plan = opb_grpc.OrdersStub(self.d.channel()).PlanOrder(spec, timeout=300)
        self.assertEqual(plan.selected_count, 10007)
        self.assertEqual(plan.derived_count, 1)
        self.assertTrue(plan.truncated)
        listed = [p.digest.hash for p in plan.selected]
        self.assertEqual(len(listed), 10000)
        self.assertEqual(len(set(listed)), 10000)
        self.assertLessEqual(set(listed), set(photos))
        self.assertEqual([p.digest.hash for p in plan.derived], [model])
        # The same plan twice lists the same items (the smallest item keys).
        again = opb_grpc.OrdersStub(self.d.channel()).PlanOrder(spec, timeout=300)
        self.assertEqual([p.digest.hash for p in again.selected], listed)
        _, lines = self.d.ctl("order", "plan", "--id", "p-big", "--basis", "other", "--reference", "r",
                              "--dataset", "big", json_out=True)
        self.assertEqual((lines[0]["selectedCount"], lines[0]["derivedCount"], lines[0]["truncated"]),
                         (10007, 1, True))
        self.assertEqual(len(lines[0]["selected"]), 10000)
        text = self.d.ctl("order", "plan", "--id", "p-big", "--basis", "other", "--reference", "r",
                          "--dataset", "big").stdout.decode()
        self.assertIn("10007 selected (10007 photos, 0 models) and 1 derived models", text)
        self.assertIn("cut to the first 10000", text)
        self.assertEqual(self.d.get_bytes(photos[0])[:6], b"photo ")  # a plan changes nothing
        # A small plan is not cut.
        small = self.photos(3, "few")
        plan = opb_grpc.OrdersStub(self.d.channel()).PlanOrder(
            opb.OrderSpec(id="p-few", basis=opb.OTHER, reference="r", datasets=["few"]), timeout=60)
        self.assertEqual((plan.selected_count, len(plan.selected), plan.truncated), (3, 3, False))
        self.assertEqual(sorted(p.digest.hash for p in plan.selected), sorted(small))

    def test_audit_fetches_a_streamed_manifest(self):
        # The certificate's manifest (150 items) is over inline_manifest_items
        # (100): `log audit` must stream it with GetManifest.
        self.start(epoch_items=64)
        photos = self.photos(150, "aud")
        cert = os.path.join(self.tmp, "aud.json")
        self.d.ctl("order", "submit", "--id", "a-1", "--basis", "other", "--reference", "r",
                   "--dataset", "aud", "-o", cert)
        resp = spb_grpc.ShredderStub(self.d.channel()).GetCertificate(
            pb.GetCertificateRequest(certificate_id=payload(cert)["predicate"]["certificateId"]))
        self.assertTrue(resp.manifest_omitted)
        vkey = os.path.join(self.tmp, "log.vkey")
        self.d.ctl("pubkey", "--format", "vkey", "-o", vkey)
        p, lines = self.d.ctl("log", "audit", "--dataset", "aud", "--vkey", vkey, check=False, json_out=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual((lines[0]["members"], lines[0]["deleted"], lines[0]["notDeleted"]), (150, 150, []))
        self.assertTrue(all(self.gone(d) for d in photos[:3]))

    def test_kill_during_the_destruction_resumes_to_one_certificate(self):
        # 2,000 photos in epochs of 8: 250 synced epochs, long enough to kill
        # the daemon in the middle.
        self.start(epoch_items=8)
        photos = self.photos(2000, "victims")
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="crash-1", basis=opb.OTHER, reference="r", datasets=["victims"]))
        killed_after = None
        deadline = time.time() + 60
        while time.time() < deadline:
            n = len(re.findall(r"shred epoch", self.d.log()))
            if n >= 3:
                self.d.kill()
                killed_after = n
                break
            time.sleep(0.005)
        self.assertIsNotNone(killed_after, "the destruction never started")
        self.assertLess(killed_after, 250, "the destruction finished before the kill")
        self.d.start(timeout=120)  # finishes the destruction and certifies before serving
        orders = opb_grpc.OrdersStub(self.d.channel())
        st = orders.GetOrder(opb.GetOrderRequest(order_id="crash-1", wait=True), timeout=120)
        self.assertEqual(st.state, opb.ORDER_DONE, st.message)
        cert = os.path.join(self.tmp, "crash.json")
        self.d.ctl("order", "wait", "crash-1", "-o", cert)
        # One certificate over all 250 epochs, those before the kill included.
        self.check_certificate(cert, cert[:-5] + ".manifest.json", photos, 250)
        # Epochs logged before the kill plus those after the restart: each
        # ran once (one that committed just before the kill may lack its line).
        self.assertIn(len(re.findall(r"shred epoch", self.d.log())), (249, 250))
        for dg in photos[::97]:
            self.assertTrue(self.gone(dg), dg)
        # Exactly one certificate in the transparency log, and it is this one.
        log = lpb_grpc.LogStub(self.d.channel())
        entries, start = [], 0
        while True:
            r = log.GetEntries(lpb.GetEntriesRequest(start=start, end=start + 1000))
            entries += list(r.entries)
            start += len(r.entries)
            if start >= r.tree_size or not r.entries:
                break
        certs = [e for e in entries if e.startswith(b"{") and b'"payloadType"' in e]
        self.assertEqual(len(certs), 1)
        with open(cert, "rb") as f:
            self.assertEqual(certs[0], f.read().strip())

    def test_sigterm_stops_between_epochs_and_the_next_start_finishes(self):
        self.start(epoch_items=8)
        photos = self.photos(2000, "victims")
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="term-1", basis=opb.OTHER, reference="r", datasets=["victims"]))
        deadline = time.time() + 60
        while time.time() < deadline and len(re.findall(r"shred epoch", self.d.log())) < 3:
            time.sleep(0.005)
        self.assertEqual(self.d.stop(timeout=30), 0)  # exits 0, after the epoch in progress
        log = self.d.log()
        done_before = len(re.findall(r"shred epoch", log))
        self.assertLess(done_before, 250, "the destruction ran to the end instead of stopping")
        self.assertIn("order left for the next start", log)
        self.assertNotIn("certificate issued", log)
        self.d.start(timeout=120)
        cert = os.path.join(self.tmp, "term.json")
        self.d.ctl("order", "wait", "term-1", "-o", cert)
        self.check_certificate(cert, cert[:-5] + ".manifest.json", photos, 250)
        self.assertEqual(len(re.findall(r"shred epoch", self.d.log())), 250)

    def test_get_order_shows_progress_while_the_order_runs(self):
        # 2,000 photos in epochs of 8: 250 synced epochs. GetOrder used to
        # answer 0 planned / 0 shredded until the order ended.
        self.start(epoch_items=8)
        self.photos(2000, "victims")
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="progress-1", basis=opb.OTHER, reference="r", datasets=["victims"]))
        seen = []
        deadline = time.time() + 120
        while time.time() < deadline:
            st = orders.GetOrder(opb.GetOrderRequest(order_id="progress-1"), timeout=30)
            if st.state not in (opb.ORDER_PENDING, opb.ORDER_RUNNING):
                break
            if st.state == opb.ORDER_RUNNING:
                seen.append((st.items_planned, st.items_shredded))
            time.sleep(0.01)
        self.assertEqual(st.state, opb.ORDER_DONE, st.message)
        self.assertEqual((st.items_planned, st.items_shredded), (2000, 2000))
        midway = [s for (p, s) in seen if p == 2000 and 0 < s < 2000]
        self.assertTrue(midway, "no progress seen while the order ran: %s" % seen[-5:])
        # Never backwards, and in whole epochs.
        shredded = [s for (_, s) in seen]
        self.assertEqual(shredded, sorted(shredded))
        self.assertTrue(all(s % 8 == 0 for s in shredded), shredded[-5:])


if __name__ == "__main__":
    unittest.main()
