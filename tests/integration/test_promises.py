"""Every promise at every entry point (issue 12, defects 1-6), against the
real daemon: uploads racing a shred never resurrect content, public ids are
not computable from content, the kind of stored content is fixed, holds bind
a bare shred, refused calls leave no trace (the log included), and a
re-upload's new metadata is merged, never dropped."""
import base64
import os
import hashlib
import json
import threading
import time
import unittest

from harness import DaemonTest, grpc, pb, sha256_digest

from shredd.v1 import log_pb2, log_pb2_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402


def header(data, kind=pb.KIND_PHOTO, subjects=(), datasets=(), trailing=False):
    d = pb.Digest(hash="" if trailing else sha256_digest(data), size_bytes=len(data))
    return pb.PutHeader(digest=d, metadata=pb.ItemMetadata(kind=kind, subject_ids=list(subjects),
                                                           datasets=list(datasets)))


def batch_request(items):
    """items: [(data, subjects, datasets)]"""
    req = pb.BatchPutRequest()
    for data, subjects, datasets in items:
        e = req.entries.add()
        e.header.CopyFrom(header(data, subjects=subjects, datasets=datasets))
        e.data = data
    return req


def payload(envelope):
    return json.loads(base64.b64decode(json.loads(envelope)["payload"]))


class PausedUpload:
    """A streamed Put whose last message is held back until release()."""

    def __init__(self, stub, data, hdr):
        self.gate = threading.Event()
        self.sent = threading.Event()
        self.result = None
        self.error = None

        def gen():
            yield pb.PutRequest(header=hdr)
            yield pb.PutRequest(data=data[:len(data) // 2])
            self.sent.set()
            self.gate.wait(60)
            yield pb.PutRequest(data=data[len(data) // 2:])
            if not hdr.digest.hash:
                yield pb.PutRequest(trailer=pb.PutTrailer(digest=pb.Digest(hash=sha256_digest(data),
                                                                         size_bytes=len(data))))

        def run():
            try:
                self.result = stub.Put(gen(), timeout=60)
            except grpc.RpcError as e:
                self.error = e
        self.thread = threading.Thread(target=run)
        self.thread.start()
        # The header and half the data are on their way; give the daemon
        # time to begin the upload (its checks pass: nothing is shredded yet).
        self.sent.wait(30)
        time.sleep(0.5)

    def release(self):
        self.gate.set()
        self.thread.join(60)


class PromisesTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.orders = opb_grpc.OrdersStub(self.d.channel())
        self.catalog = opb_grpc.CatalogStub(self.d.channel())
        self.log = log_pb2_grpc.LogStub(self.d.channel())

    def tree_size(self):
        return self.log.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=10).tree_size

    def log_entries(self):
        n = self.tree_size()
        out = []
        for start in range(0, n, 500):
            r = self.log.GetEntries(log_pb2.GetEntriesRequest(start=start, end=min(n, start + 500)), timeout=30)
            out += [bytes(e) for e in r.entries]
        return out

    def listed(self, **kw):
        return [i.digest.hash for i in self.d.store().List(pb.ListRequest(**kw), timeout=10).items]

    def assertShreddedForGood(self, data, subject):
        digest = sha256_digest(data)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(digest))
        self.assertNotIn(digest, self.listed(subject_id=subject))
        self.assertNotIn(digest, self.listed())
        # And it stays so after a restart.
        self.d.stop()
        self.d.start()
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(digest))

    # ------------------------------------------------------------ defect 1

    def check_paused_upload_after_shred(self, trailing):
        data = (b"resurrect me %d " % trailing) * 5000  # 80 KB: streamed, file-backed
        digest = self.d.put_bytes(data, subjects=["alice"])
        up = PausedUpload(self.d.store(), data, header(data, subjects=["alice"], trailing=trailing))
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=60)
        up.release()
        self.assertIsNotNone(up.error, "the upload of shredded content was acknowledged: %s" % up.result)
        self.assertEqual(up.error.code(), grpc.StatusCode.FAILED_PRECONDITION, up.error.details())
        self.assertIn("was shredded", up.error.details())
        self.assertShreddedForGood(data, "alice")

    def test_streamed_upload_in_flight_when_a_shred_commits_is_refused(self):
        self.check_paused_upload_after_shred(trailing=False)

    def test_streamed_upload_with_trailing_digest_in_flight_when_a_shred_commits_is_refused(self):
        self.check_paused_upload_after_shred(trailing=True)

    def test_batch_puts_racing_shreds_never_resurrect_content(self):
        store, shredder = self.d.store(), self.d.shredder()
        resurrected = []
        for i in range(25):
            data = b"race %d " % i * 40
            digest = sha256_digest(data)
            store.BatchPut(batch_request([(data, ["carol"], [])]), timeout=30)
            results = {}
            # Fresh fillers make the batch's unlocked work (hashing, sealing)
            # long enough for the shred to commit in the middle of it.
            fillers = [(b"filler %d %d " % (i, j) * 30, ["carol"], []) for j in range(400)]
            req = batch_request([(data, ["carol"], [])] + fillers)

            def put():
                results["put"] = store.BatchPut(req, timeout=30).results[0]

            def shred():
                try:
                    results["cert"] = shredder.Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=30)
                except grpc.RpcError as e:
                    results["shred_error"] = e
            threads = [threading.Thread(target=put), threading.Thread(target=shred)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertIn("cert", results, getattr(results.get("shred_error"), "details", lambda: "")())
            try:
                self.d.get_bytes(digest)
                resurrected.append(i)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
            if digest in self.listed(subject_id="carol"):
                resurrected.append(i)
        self.assertEqual(resurrected, [], "shredded content readable or listed again after racing puts")

    def test_model_upload_is_refused_if_its_lineage_parent_was_shredded_meanwhile(self):
        photo = b"parent photo " * 100
        pd = self.d.put_bytes(photo)
        weights = b"weights trained on the parent " * 4000
        hdr = header(weights, kind=pb.KIND_MODEL)
        hdr.lineage.add(type=pb.LineageEdge.TRAINED_ON, digest=pb.Digest(hash=pd), relation="training")
        up = PausedUpload(self.d.store(), weights, hdr)
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=pd)]), timeout=60)
        up.release()
        self.assertIsNotNone(up.error, "a model trained on shredded content was stored")
        self.assertEqual(up.error.code(), grpc.StatusCode.FAILED_PRECONDITION, up.error.details())
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(sha256_digest(weights)))

    def test_an_upload_cannot_close_a_lineage_cycle_with_an_add_lineage_made_meanwhile(self):
        # n is uploaded again declaring "derived from m": checked before its
        # bytes, no cycle then. While the bytes arrive m is declared derived
        # from n. The upload's commit checks again, under the lock
        # AddLineage commits under: it used to commit n -> m as checked
        # before, and n <-> m was a cycle in a catalog that must be a DAG.
        catalog = opb_grpc.CatalogStub(self.d.channel())
        weights = b"weights of n " * 4000
        n = self.d.put_bytes(weights, kind=pb.KIND_MODEL)
        m = self.d.put_bytes(b"weights of m " * 100, kind=pb.KIND_MODEL)
        hdr = header(weights, kind=pb.KIND_MODEL)
        hdr.lineage.add(type=pb.LineageEdge.DERIVED_FROM, digest=pb.Digest(hash=m), relation="fine-tune")
        up = PausedUpload(self.d.store(), weights, hdr)
        catalog.AddLineage(opb.AddLineageRequest(model=pb.Digest(hash=m), edges=[
            pb.LineageEdge(type=pb.LineageEdge.DERIVED_FROM, digest=pb.Digest(hash=n))]), timeout=30)
        up.release()
        self.assertIsNotNone(up.error, "the upload closed a lineage cycle")
        self.assertEqual(up.error.code(), grpc.StatusCode.FAILED_PRECONDITION, up.error.details())
        self.assertIn("lineage cycle", up.error.details())
        lineage = catalog.GetLineage(opb.LineageRequest(digest=pb.Digest(hash=n)), timeout=30)
        self.assertEqual(list(lineage.comes_from), [])

    def test_a_model_naming_too_many_lineage_edges_is_refused_before_its_bytes(self):
        # 12,000 edges used to be accepted until the commit, after the whole
        # model had been streamed, and then fail on the log entry's size.
        self.catalog.RegisterDataset(opb.RegisterDatasetRequest(name="many"), timeout=10)
        weights = os.urandom(4 << 20)
        sent = []

        def requests(n_edges):
            hdr = header(weights, kind=pb.KIND_MODEL)
            for _ in range(n_edges):
                hdr.lineage.add(type=pb.LineageEdge.TRAINED_ON, dataset="many", relation="training")
            yield pb.PutRequest(header=hdr)
            for i in range(0, len(weights), 64 << 10):
                sent.append(i)
                yield pb.PutRequest(data=weights[i:i + (64 << 10)])
        e = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT,
                                lambda: self.d.store().Put(requests(1001), timeout=60))
        self.assertIn("at most 1000", e.details())
        self.assertLess(len(sent), 64, "the upload was read to its end before the refusal")
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(sha256_digest(weights)))
        self.d.store().Put(requests(1000), timeout=60)  # the limit itself is accepted
        self.assertEqual(self.d.get_bytes(sha256_digest(weights)), weights)

    # ------------------------------------------------------------ defect 2

    def test_auto_request_id_is_not_computable_from_the_content(self):
        data = b"a photo someone holds " * 50
        digest = self.d.put_bytes(data)
        cert = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=60)
        rid = payload(cert.certificate)["predicate"]["request"]["id"]
        self.assertTrue(rid.startswith("auto:"), rid)
        raw = bytes.fromhex(digest[7:])
        # Whoever holds the photo knows its digest and the public tree size:
        # every formula over them that the daemon used (v2) or might use must miss.
        for idx in range(self.tree_size() + 1):
            for prefix in (b"shredd/auto-request/v2", b"shredd/auto-request/v3", b""):
                guess = hashlib.sha256(prefix + raw + b" %d;" % idx).hexdigest()
                self.assertNotEqual(rid, "auto:" + guess, "request id computed from content (index %d)" % idx)
        self.assertNotIn(digest[7:], rid)

    # ------------------------------------------------------------ defect 3

    def test_stored_photo_cannot_become_a_model_with_lineage(self):
        self.catalog.RegisterDataset(opb.RegisterDatasetRequest(name="d3"), timeout=10)
        photo = b"a face photo " * 100
        pd = self.d.put_bytes(photo, subjects=["dave"], datasets=["d3"])
        hdr = header(photo, kind=pb.KIND_MODEL)
        hdr.lineage.add(type=pb.LineageEdge.TRAINED_ON, dataset="d3", relation="training")

        def put_as_model():
            self.d.store().Put(iter([pb.PutRequest(header=hdr), pb.PutRequest(data=photo)]), timeout=30)
        e = self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, put_as_model, contains="already stored as a photo")
        self.assertIn("nothing was stored", e.details())
        # The photo's digest is in no lineage, no log entry, no certificate.
        lin = self.catalog.GetLineage(opb.LineageRequest(digest=pb.Digest(hash=pd)), timeout=10)
        self.assertEqual(len(lin.comes_from), 0)
        self.assertEqual(len(lin.feeds), 0)
        st = self.orders.SubmitOrder(opb.OrderSpec(id="o3", basis=opb.OTHER, reference="r", datasets=["d3"]))
        final = self.orders.GetOrder(opb.GetOrderRequest(order_id=st.order_id, wait=True), timeout=60)
        self.assertEqual(final.state, opb.ORDER_DONE, final.message)
        cert = self.d.shredder().GetCertificate(pb.GetCertificateRequest(certificate_id=final.certificate_id))
        self.assertNotIn(pd[7:].encode(), cert.certificate)
        self.assertNotIn(pd[7:].encode(), b"".join(self.log_entries()))
        # The same in a batch: a model's bytes re-sent as a photo are refused.
        weights = b"model weights " * 100
        md = self.d.put_bytes(weights, kind=pb.KIND_MODEL)
        req = batch_request([(weights, [], [])])
        r = self.d.store().BatchPut(req, timeout=30).results[0]
        self.assertEqual(r.code, grpc.StatusCode.FAILED_PRECONDITION.value[0], r.message)
        self.assertIn("already stored as a model", r.message)
        self.assertEqual(self.d.store().Stat(pb.StatRequest(digest=pb.Digest(hash=md))).metadata.kind, pb.KIND_MODEL)

    # ------------------------------------------------------------ defect 4

    def test_bare_shred_refuses_held_items(self):
        data = b"evidence photo " * 100
        digest = self.d.put_bytes(data, datasets=["case-7"])
        other = self.d.put_bytes(b"unrelated " * 100)
        hold = self.orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(digest=pb.Digest(hash=digest), reason="litigation 7")))
        size = self.tree_size()
        e = self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.d.shredder().Shred,
                                pb.ShredRequest(digests=[pb.Digest(hash=digest), pb.Digest(hash=other)]),
                                contains=hold.id)
        self.assertIn("legal hold", e.details())
        self.assertEqual(self.d.get_bytes(digest), data)
        self.assertEqual(self.d.get_bytes(other), b"unrelated " * 100)  # nothing at all was shredded
        self.assertEqual(self.tree_size(), size)
        # A hold on a dataset binds its items too.
        self.orders.RemoveHold(opb.RemoveHoldRequest(id=hold.id))
        dh = self.orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(dataset="case-7", reason="litigation 7b")))
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.d.shredder().Shred,
                            pb.ShredRequest(digests=[pb.Digest(hash=digest)]), contains=dh.id)
        self.orders.RemoveHold(opb.RemoveHoldRequest(id=dh.id))
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]), timeout=60)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(digest))

    # ------------------------------------------------------------ defect 5

    def datasets(self):
        return sorted(d.name for d in self.catalog.ListDatasets(opb.ListDatasetsRequest(), timeout=10).datasets)

    def test_refused_calls_change_nothing_not_even_the_log(self):
        self.d.put_bytes(b"baseline " * 10, datasets=["base"])
        before = (self.tree_size(), self.datasets(), self.listed())
        data = b"refused " * 100
        good = header(data, datasets=["ds-refused-1"])
        bad_digest = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(b"other"), size_bytes=len(data)),
                                  metadata=good.metadata)
        store = self.d.store()
        # A wrong digest, streamed and batched.
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, store.Put,
                            iter([pb.PutRequest(header=bad_digest), pb.PutRequest(data=data)]))
        req = pb.BatchPutRequest()
        e = req.entries.add()
        e.header.CopyFrom(bad_digest)
        e.data = data
        self.assertNotEqual(store.BatchPut(req, timeout=30).results[0].code, 0)
        # An invalid subject id, with a new dataset.
        for subject in ("", "a\nb", "x" * (1 << 20)):
            h = header(data, subjects=[subject], datasets=["ds-refused-2"])
            self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, store.Put,
                                iter([pb.PutRequest(header=h), pb.PutRequest(data=data)]))
        # Invalid dataset names, and far too many datasets.
        for names in (["ok-name", ""], ["ok-name", "nul\x00name"], ["line\nbreak"],
                      ["many-%d" % i for i in range(20000)]):
            h = header(data, datasets=names)
            self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, store.Put,
                                iter([pb.PutRequest(header=h), pb.PutRequest(data=data)]))
            r = store.BatchPut(batch_request([(data, [], names)]), timeout=60).results[0]
            self.assertEqual(r.code, grpc.StatusCode.INVALID_ARGUMENT.value[0], r.message)
        # A stream that ends early (truncated) and one without its trailer.
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, store.Put,
                            iter([pb.PutRequest(header=good), pb.PutRequest(data=data[:10])]))
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, store.Put,
                            iter([pb.PutRequest(header=header(data, datasets=["ds-refused-3"], trailing=True)),
                                  pb.PutRequest(data=data)]))
        # A cancelled stream.
        gate = threading.Event()

        def gen():
            yield pb.PutRequest(header=header(data, datasets=["ds-refused-4"]))
            yield pb.PutRequest(data=data[:5])
            gate.wait(10)
        fut = store.Put.future(gen())
        fut.cancel()
        gate.set()
        # A tag on an unknown digest, naming a new dataset.
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.catalog.UpdateItem,
                            opb.UpdateItemRequest(digest=pb.Digest(hash=sha256_digest(b"unknown")),
                                                  add_datasets=["ds-refused-5"]))
        self.assertEqual((self.tree_size(), self.datasets(), self.listed()), before)

    def test_a_dataset_named_by_an_upload_is_registered_in_the_same_write(self):
        size = self.tree_size()
        self.d.put_bytes(b"first of its dataset " * 10, datasets=["fresh"])
        self.assertIn("fresh", self.datasets())
        entries = self.log_entries()[size:]
        types = [json.loads(e)["type"] for e in entries]
        self.assertEqual(types, ["dataset-registered", "item-stored"])
        # A batch naming the same new dataset for many items registers it once.
        r = self.d.store().BatchPut(batch_request([(b"b%d" % i, [], ["fresh-2"]) for i in range(50)]))
        self.assertTrue(all(x.code == 0 for x in r.results))
        types = [json.loads(e)["type"] for e in self.log_entries()[size + 2:]]
        self.assertEqual(types.count("dataset-registered"), 1)
        self.assertEqual(types.count("item-stored"), 50)

    # ------------------------------------------------------------ defect 6

    def test_reupload_merges_new_subjects_datasets_and_labels(self):
        data = b"bob.jpg " * 100
        digest = self.d.put_bytes(data, subjects=["alice"])
        self.d.put_bytes(data, subjects=["bob"], datasets=["later"])  # streamed
        self.assertIn(digest, self.listed(subject_id="bob"))
        self.assertIn(digest, self.listed(subject_id="alice"))
        self.assertIn(digest, self.listed(dataset="later"))
        small = b"carol.jpg"
        sd = sha256_digest(small)
        self.d.store().BatchPut(batch_request([(small, ["carol"], [])]))
        r = self.d.store().BatchPut(batch_request([(small, ["erin"], []), (small, ["frank"], [])])).results
        self.assertTrue(all(x.code == 0 and x.already_present for x in r), r)
        for s in ("carol", "erin", "frank"):
            self.assertIn(sd, self.listed(subject_id=s), s)
        # An order for the new subject finds and shreds the item.
        st = self.orders.SubmitOrder(opb.OrderSpec(id="gdpr-bob", basis=opb.GDPR_ART17, reference="r",
                                                   subject_ids=["bob"]))
        final = self.orders.GetOrder(opb.GetOrderRequest(order_id=st.order_id, wait=True), timeout=60)
        self.assertEqual(final.state, opb.ORDER_DONE, final.message)
        self.assertEqual(final.items_shredded, 1)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(digest))


if __name__ == "__main__":
    unittest.main()
