"""Observability: the Prometheus endpoint (metrics_listen) holds the right
values after puts, gets, shreds and an order, in valid text format; the
structured logs (text and JSON) record the life cycle and never hold subject
ids, labels, names, datasets or content digests of photos."""
import json
import os
import re
import signal
import subprocess
import unittest
import urllib.error
import urllib.request

from harness import DaemonTest, grpc, pb, sha256_digest
from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_exposition(text):
    """Prometheus text format 0.0.4 -> ({(name, labels): value}, {family: type}).
    Fails on any line that is not a comment or a well-formed sample."""
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = typ
            continue
        m = SAMPLE.match(line)
        assert m, "malformed sample line: %r" % line
        labels = ()
        if m.group(3):
            pairs = LABEL.findall(m.group(3))
            assert ",".join('%s="%s"' % (k, v) for k, v, _ in pairs) == m.group(3), line
            labels = tuple(sorted((k, v) for k, v, _ in pairs))
        key = (m.group(1), labels)
        assert key not in samples, "duplicate sample %r" % (key,)
        samples[key] = float(m.group(4))
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1)) if m.group(1) not in types else m.group(1)
        assert family in types and family in helps, "sample %s without HELP/TYPE" % m.group(1)
    return samples, types


class MetricsTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.d.extra_args = ["--metrics-listen", "127.0.0.1:0"]
        self.d.start()
        self.url = self.metrics_url()

    def metrics_url(self):
        urls = re.findall(r"shredd: metrics url=(http://127\.0\.0\.1:\d+/metrics)", self.d.log())
        self.assertTrue(urls, self.d.log())
        return urls[-1]

    def scrape(self):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            samples, types = parse_exposition(r.read().decode())
        return samples, types

    def requests(self, samples, method, code="OK"):
        return samples.get(("shredd_requests_total", (("code", code), ("method", method))), 0)

    def test_values_after_puts_gets_shreds_and_an_order(self):
        before, types = self.scrape()
        self.assertEqual(types["shredd_requests_total"], "counter")
        self.assertEqual(types["shredd_shred_epoch_seconds"], "histogram")
        self.assertEqual(types["shredd_items_stored"], "gauge")
        self.assertEqual(before[("shredd_items_stored", ())], 0)
        self.assertEqual(before[("shredd_shred_epoch_seconds_count", ())], 0)
        for state in ("pending", "running", "done", "empty", "failed"):
            self.assertEqual(before[("shredd_orders", (("state", state),))], 0)

        # 3 streaming puts (one of 3 MiB: a file-backed item), 4 batch puts, a duplicate.
        streamed = [os.urandom(100), os.urandom(70_000), os.urandom(3 << 20)]
        for data in streamed:
            self.d.put_bytes(data, subjects=["s-1"])
        self.d.put_bytes(streamed[0])  # already present: no new item, still received
        req = pb.BatchPutRequest()
        batch = [os.urandom(500 + i) for i in range(4)]
        for data in batch:
            e = req.entries.add()
            e.header.digest.hash = sha256_digest(data)
            e.header.digest.size_bytes = len(data)
            e.header.metadata.kind = pb.KIND_PHOTO
            e.header.metadata.datasets.append("metrics-ds")
            e.data = data
        self.d.store().BatchPut(req, timeout=60)
        received = sum(map(len, streamed)) + len(streamed[0]) + sum(map(len, batch))
        # Gets: one whole, one range, one unknown.
        self.assertEqual(self.d.get_bytes(sha256_digest(streamed[2])), streamed[2])
        self.assertEqual(len(self.d.get_bytes(sha256_digest(streamed[1]), offset=10, limit=1000)), 1000)
        with self.assertRaises(grpc.RpcError):
            self.d.get_bytes(sha256_digest(b"never stored"))
        sent = len(streamed[2]) + 1000
        # A shred of one item, an order over the dataset (4 items).
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=sha256_digest(streamed[0]))],
                                                reason="metrics"), timeout=60)
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="metrics-order", basis=opb.OTHER, reference="r",
                                         datasets=["metrics-ds"]), timeout=60)
        st = orders.GetOrder(opb.GetOrderRequest(order_id="metrics-order", wait=True), timeout=120)
        self.assertEqual(st.state, opb.ORDER_DONE)
        log_size = int(lpb_grpc.LogStub(self.d.channel()).GetCheckpoint(
            lpb.GetCheckpointRequest(), timeout=30).checkpoint.split("\n")[1])

        after, _ = self.scrape()
        delta = lambda key: after.get(key, 0) - before.get(key, 0)  # noqa: E731
        self.assertEqual(delta(("shredd_bytes_received_total", ())), received)
        self.assertEqual(delta(("shredd_bytes_sent_total", ())), sent)
        self.assertEqual(self.requests(after, "/shredd.v1.Store/Put") - self.requests(before, "/shredd.v1.Store/Put"), 4)
        self.assertEqual(self.requests(after, "/shredd.v1.Store/BatchPut"), 1)
        self.assertEqual(self.requests(after, "/shredd.v1.Store/Get"), 2)
        self.assertEqual(self.requests(after, "/shredd.v1.Store/Get", "NOT_FOUND"), 1)
        self.assertEqual(self.requests(after, "/shredd.v1.Shredder/Shred"), 1)
        self.assertEqual(self.requests(after, "/shredd.v1.Orders/SubmitOrder"), 1)
        self.assertEqual(after[("shredd_items_stored", ())], 7 - 1 - 4)
        self.assertEqual(after[("shredd_orders", (("state", "done"),))], 1)
        self.assertEqual(after[("shredd_orders", (("state", "pending"),))], 0)
        self.assertEqual(after[("shredd_orders", (("state", "running"),))], 0)
        self.assertEqual(after[("shredd_shred_epoch_seconds_count", ())], 2)
        self.assertEqual(after[("shredd_shred_epoch_seconds_bucket", (("le", "+Inf"),))], 2)
        self.assertGreater(after[("shredd_shred_epoch_seconds_sum", ())], 0)
        buckets = sorted((float(dict(l)["le"]), v) for (n, l), v in after.items()
                         if n == "shredd_shred_epoch_seconds_bucket")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), "buckets are cumulative")
        self.assertEqual(after[("shredd_log_size", ())], log_size)
        self.assertEqual(after[("shredd_root_epoch", ())], 3)
        # No personal data in any label.
        labels = " ".join(v for (_, ls), _ in after.items() for _, v in ls)
        self.assertNotIn("s-1", labels)
        self.assertNotIn("metrics-ds", labels)
        self.assertNotIn("sha256", labels)

        # After a restart the gauges start from the stored state.
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        self.url = self.metrics_url()
        again, _ = self.scrape()
        self.assertEqual(again[("shredd_items_stored", ())], 2)
        self.assertEqual(again[("shredd_orders", (("state", "done"),))], 1)
        self.assertEqual(again[("shredd_log_size", ())], log_size)
        self.assertEqual(again[("shredd_bytes_received_total", ())], 0)

    def test_other_paths_and_methods(self):
        base = self.url[:-len("/metrics")]
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(base + "/", timeout=10)
        self.assertEqual(cm.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(urllib.request.Request(self.url, data=b"x", method="POST"), timeout=10)
        self.assertEqual(cm.exception.code, 405)

    def test_metrics_listen_beyond_loopback_is_refused(self):
        self.d.kill()
        self.d.extra_args = ["--metrics-listen", "0.0.0.0:9464"]
        self.assertNotEqual(self.d.start(expect_fail=True), 0)
        self.assertIn("serves loopback only", self.d.log())


class LogPrivacyTest(DaemonTest):
    """Everything personal the daemon is given, and nothing of it in its log."""

    start_daemon = False
    SUBJECT = "subject-alice-7d1e"
    LABEL = "okc-profile-3f9a"
    NAME = "IMG_alice_beach.jpg"
    DATASET = "dating-2014-c4e2"

    def exercise(self):
        photos = [os.urandom(2000) for _ in range(3)] + [os.urandom(2 << 20)]
        for p in photos:
            self.d.put_bytes(p, subjects=[self.SUBJECT], datasets=[self.DATASET], labels={"source": self.LABEL},
                             name=self.NAME)
        self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=sha256_digest(photos[0]))],
                                                reason="GDPR Art. 17 request 42"), timeout=60)
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="privacy-order", basis=opb.GDPR_ART17, reference="req-42",
                                         requester="Alice Example", subject_ids=[self.SUBJECT]), timeout=60)
        st = orders.GetOrder(opb.GetOrderRequest(order_id="privacy-order", wait=True), timeout=120)
        self.assertEqual(st.state, opb.ORDER_DONE, st.message)
        # A failed request with personal data in it.
        with self.assertRaises(grpc.RpcError):
            self.d.put_bytes(photos[1])  # shredded by the order: refused (suppressed)
        self.d.proc.send_signal(signal.SIGHUP)
        self.assertEqual(self.d.stop(), 0)
        return photos

    def check_log(self, photos):
        log = self.d.log()
        needles = [self.SUBJECT, self.LABEL, self.NAME, self.DATASET, "Alice Example"]
        for p in photos:
            needles.append(sha256_digest(p)[7:])  # hex of a photo's digest
            needles.append(sha256_digest(p)[7:23])
        for n in needles:
            self.assertNotIn(n, log, "the daemon's log holds %r" % n)
        # The events are there.
        for event in ("serving", "shred epoch", "order accepted", "order state", "stopping: draining in-flight calls",
                      "stopped cleanly"):
            self.assertIn(event, log)
        return log

    def test_text_log(self):
        self.d.start()
        log = self.check_log(self.exercise())
        self.assertIn("shredd: order state order=privacy-order state=done", log)
        for line in log.strip().splitlines():
            self.assertTrue(line.startswith("shredd: "), line)

    def test_json_log(self):
        self.d.extra_args = ["--log-format", "json"]
        self.d.start()
        log = self.check_log(self.exercise())
        events = [json.loads(line) for line in log.strip().splitlines()]
        for e in events:
            self.assertEqual(list(e)[:3], ["ts", "level", "msg"], e)
            self.assertIn(e["level"], ("info", "warning", "error"))
        epochs = [e for e in events if e["msg"] == "shred epoch"]
        self.assertEqual(len(epochs), 2)
        self.assertEqual(epochs[1]["order"], "privacy-order")
        self.assertEqual(epochs[1]["items"], 3)
        self.assertEqual(epochs[1]["installed_epoch"], epochs[1]["destroyed_epoch"] + 1)
        states = [e["state"] for e in events if e["msg"] == "order state" and e["order"] == "privacy-order"]
        self.assertEqual(states[-1], "done")
        self.assertIn("running", states)


if __name__ == "__main__":
    unittest.main()
