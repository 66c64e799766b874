"""Strings that reach public artefacts (issue 12, defect 10).

Shred reasons, request ids, lineage relations, hold ids and reasons, order
ids, references and requesters go into signed certificates, log entries and
shredctl's output. The daemon refuses control, bidi and line-separator
characters (and ids outside their charset) with INVALID_ARGUMENT naming the
field, never echoes unbounded input in an error, and shredctl escapes what
it prints, even when a (fake) daemon sends it such strings."""
import concurrent.futures
import json
import os
import shutil
import tempfile
import subprocess
import unittest

from harness import SHREDCTL, DaemonTest, grpc, pb, sha256_digest

from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402
from shredd.v1 import shredd_pb2_grpc as pb_grpc  # noqa: E402

BAD_TEXT = [
    ("newline", "ok\ncertificate verified"),
    ("NUL", "ok\x00hidden"),
    ("ANSI escape", "ok\x1b[2K\x1b[1Acertificate verified"),
    ("C1 CSI", "ok\u009b31m"),
    ("bidi override", "ok\u202etxt.exe"),
    ("line separator", "ok\u2028certificate verified"),
    ("DEL", "ok\x7f"),
]
INJECTED = "certificate verified"


class DaemonRefusesTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.orders = opb_grpc.OrdersStub(self.d.channel())
        self.catalog = opb_grpc.CatalogStub(self.d.channel())
        self.photo = self.d.put_bytes(b"a photo for defect 10", datasets=["ds10"])
        self.model = self.d.put_bytes(b"a model for defect 10", kind=pb.KIND_MODEL)

    def tree_size(self):
        p = subprocess.run([SHREDCTL, "--server", self.d.address, "--json", "log", "checkpoint"],
                           capture_output=True, check=True)
        return json.loads(p.stdout)["treeSize"]

    def refused(self, fn, field, *args, **kw):
        before = self.tree_size()
        err = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, fn, *args, **kw)
        self.assertIn(field, err.details())
        self.assertLess(len(err.details()), 600, err.details()[:200])
        for ch in ("\n", "\x00", "\x1b", "\u009b", "\u202e", "\u2028", "\x7f"):
            self.assertNotIn(ch, err.details(), "the error echoes a raw unsafe character")
        self.assertEqual(self.tree_size(), before, "a refused call appended to the log")
        return err

    def shred(self, reason="", request_id=""):
        return self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.photo)], reason=reason,
                                                       request_id=request_id), timeout=60)

    def spec(self, **kw):
        fields = dict(id="o-10", basis=opb.OTHER, reference="ref", requester="who", datasets=["ds10"])
        fields.update(kw)
        return opb.OrderSpec(**fields)

    def test_shred_reason_and_request_id(self):
        for what, bad in BAD_TEXT:
            with self.subTest(what):
                self.refused(self.shred, "reason", reason=bad)
                self.refused(self.shred, "request id", request_id=bad)
        self.refused(self.shred, "request id", request_id="has space")
        self.refused(self.shred, "reason", reason="r" * 5000)
        # Nothing was shredded by any of that.
        self.assertEqual(self.d.get_bytes(self.photo), b"a photo for defect 10")

    def test_lineage_relation_via_add_lineage_and_put(self):
        for what, bad in BAD_TEXT:
            with self.subTest(what):
                edge = pb.LineageEdge(type=pb.LineageEdge.TRAINED_ON, dataset="ds10", relation=bad)
                self.refused(self.catalog.AddLineage, "relation",
                             opb.AddLineageRequest(model=pb.Digest(hash=self.model), edges=[edge]))
        data = b"another model"
        header = pb.PutHeader(digest=pb.Digest(hash=sha256_digest(data), size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=pb.KIND_MODEL),
                              lineage=[pb.LineageEdge(type=pb.LineageEdge.TRAINED_ON, dataset="ds10",
                                                      relation=BAD_TEXT[0][1])])
        self.refused(self.d.store().Put, "relation", iter([pb.PutRequest(header=header), pb.PutRequest(data=data)]))

    def test_hold_id_and_reason(self):
        def add(id="", reason="litigation"):
            return self.orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(id=id, dataset="ds10", reason=reason)))
        for what, bad in BAD_TEXT:
            with self.subTest(what):
                self.refused(add, "hold id", id=bad)
                self.refused(add, "hold reason", reason=bad)
        self.refused(add, "hold id", id="two words")
        self.refused(add, "hold id", id="-leading-dash")
        self.assertEqual(len(self.orders.ListHolds(opb.ListHoldsRequest()).holds), 0)
        self.assertEqual(add(id="h-1:ok@x/y+z.v_w").id, "h-1:ok@x/y+z.v_w")

    def test_order_fields(self):
        for what, bad in BAD_TEXT:
            with self.subTest(what):
                self.refused(self.orders.SubmitOrder, "order id", self.spec(id=bad))
                self.refused(self.orders.SubmitOrder, "reference", self.spec(reference=bad))
                self.refused(self.orders.SubmitOrder, "requester", self.spec(requester=bad))
                self.refused(self.orders.PlanOrder, "order id", self.spec(id=bad))
        self.refused(self.orders.SubmitOrder, "order id", self.spec(id="with space"))

    def test_suppression_lift_reason(self):
        self.shred(reason="done")
        for what, bad in BAD_TEXT:
            with self.subTest(what):
                self.refused(self.orders.LiftSuppression, "reason",
                             opb.LiftSuppressionRequest(digest=pb.Digest(hash=self.photo), reason=bad))

    def test_errors_never_echo_unbounded_input(self):
        huge = "x" * (1 << 20)
        calls = [
            (self.orders.SubmitOrder, self.spec(id=huge)),
            (self.orders.SubmitOrder, self.spec(received=huge)),
            (self.orders.SubmitOrder, self.spec(due="\x1b" + huge)),
            (self.orders.GetOrder, opb.GetOrderRequest(order_id=huge)),
            (self.orders.RemoveHold, opb.RemoveHoldRequest(id=huge)),
            (self.orders.AddHold, opb.AddHoldRequest(hold=opb.Hold(dataset=huge, reason="r"))),
            (self.d.shredder().GetCertificate, pb.GetCertificateRequest(request_id=huge)),
            (self.d.shredder().Shred, pb.ShredRequest(digests=[pb.Digest(hash=huge)])),
            (self.catalog.GetDatasetManifest, opb.DatasetManifestRequest(name=huge)),
        ]
        for fn, req in calls:
            with self.subTest(fn._method):
                with self.assertRaises(grpc.RpcError) as cm:
                    fn(req, timeout=30)
                code = cm.exception.code()
                self.assertIn(code, (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND),
                              cm.exception.details()[:300])
                self.assertLess(len(cm.exception.details()), 600, cm.exception.details()[:300])
                self.assertNotIn("\x1b", cm.exception.details())


class FakeCatalog(opb_grpc.CatalogServicer):
    def GetLineage(self, request, context):
        evil = "fine-tune\n" + INJECTED + "\x1b[31m\u202e\u2028"
        return opb.LineageResponse(
            digest=request.digest, kind=pb.KIND_MODEL,
            comes_from=[opb.LineageLink(type=pb.LineageEdge.DERIVED_FROM, relation=evil,
                                        digest=pb.Digest(hash=request.digest.hash), kind=pb.KIND_MODEL)],
            feeds=[opb.LineageLink(type=pb.LineageEdge.TRAINED_ON, relation=evil, via_dataset="d\x1b]0;t\x07",
                                   digest=pb.Digest(hash=request.digest.hash))])

    def ListDatasets(self, request, context):
        return opb.ListDatasetsResponse(datasets=[opb.Dataset(name="ds\n" + INJECTED, item_count=1)])


class FakeOrders(opb_grpc.OrdersServicer):
    def ListHolds(self, request, context):
        return opb.ListHoldsResponse(holds=[opb.Hold(id="h\x1b[2J", dataset="d\u202eevil", reason="r\n" + INJECTED)])

    def GetOrder(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no order\n" + INJECTED + "\x1b[0m")


class FakeStore(pb_grpc.StoreServicer):
    def Stat(self, request, context):
        return pb.ItemInfo(digest=request.digest,
                           metadata=pb.ItemMetadata(name="a\n" + INJECTED, subject_ids=["s\x1b[1m"],
                                                    labels={"k\x07": "v\n" + INJECTED}))

    def List(self, request, context):
        return pb.ListResponse(items=[pb.ItemInfo(digest=pb.Digest(hash=sha256_digest(b"x"), size_bytes=1),
                                                  metadata=pb.ItemMetadata(name="n\r" + INJECTED + "\u2028"))])


class ShredctlEscapesTest(unittest.TestCase):
    """shredctl against a fake daemon that sends hostile strings."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-fake-")
        self.sock = os.path.join(self.tmp, "fake.sock")
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        opb_grpc.add_CatalogServicer_to_server(FakeCatalog(), self.server)
        opb_grpc.add_OrdersServicer_to_server(FakeOrders(), self.server)
        pb_grpc.add_StoreServicer_to_server(FakeStore(), self.server)
        self.server.add_insecure_port("unix:" + self.sock)
        self.server.start()

    def tearDown(self):
        self.server.stop(0)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_ctl(self, *args):
        return subprocess.run([SHREDCTL, "--server", "unix:" + self.sock] + list(args), capture_output=True,
                              timeout=60)

    def assertSafe(self, out):
        text = out.decode("utf-8", errors="strict")
        for ch in ("\x1b", "\x07", "\r", "\u202e", "\u2028", "\u009b"):
            self.assertNotIn(ch, text, repr(text))
        for line in text.splitlines():
            self.assertFalse(line.strip().startswith(INJECTED), "an injected line: %r" % text)

    def test_text_output_is_escaped(self):
        digest = sha256_digest(b"m")
        cases = ((("lineage", digest), "\\n"), (("hold", "ls"), "\\n"), (("dataset", "ls"), "\\n"),
                 (("stat", digest), "\\n"), (("ls",), "\\r"))
        for args, escape in cases:
            with self.subTest(args):
                p = self.run_ctl(*args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertSafe(p.stdout)
                # Shown, escaped, on the line it belongs to.
                self.assertIn((escape + INJECTED).encode(), p.stdout)

    def test_json_output_is_escaped(self):
        digest = sha256_digest(b"m")
        p = self.run_ctl("--json", "lineage", digest)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertSafe(p.stdout)
        self.assertEqual(len(p.stdout.decode().splitlines()), 1)

    def test_error_messages_are_escaped(self):
        p = self.run_ctl("order", "status", "o-1")
        self.assertNotEqual(p.returncode, 0)
        self.assertSafe(p.stderr)
        self.assertEqual(len(p.stderr.decode().splitlines()), 1, p.stderr)


if __name__ == "__main__":
    unittest.main()
