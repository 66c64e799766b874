"""A root that cannot be destroyed (issue 12, defect 8): the old root's file
in the file vault is made immutable (chattr +i, which stops root too), so the
epoch commits but its old root survives. No certificate may be issued while
the old root exists; once the vault works again the pending certification
must finish by itself (no restart, no client call), every failure must be
logged and counted, and the shred's request id then answers the certificate.

A vault directory that cannot be written (no root for the next epoch) is a
passing failure too: UNAVAILABLE, nothing shredded, an order waits for it.

Needs root and a filesystem with immutable files (chattr); skipped otherwise."""
import glob
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.request

import grpc

from harness import DaemonTest, Daemon, ctl_offline, pb, sha256_digest


def chattr(flag, path):
    return subprocess.run(["chattr", flag, path], capture_output=True, timeout=30).returncode == 0


class VaultFailureTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        probe = os.path.join(self.tmp, "probe")
        open(probe, "w").close()
        if os.geteuid() != 0 or not chattr("+i", probe):
            shutil.rmtree(self.tmp, ignore_errors=True)  # tearDown does not run after a skip in setUp
            self.skipTest("needs root and chattr +i")
        chattr("-i", probe)
        self.locked = []
        self.addCleanup(self.unlock_all)
        self.d = Daemon(self.tmp, extra_args=["--metrics-listen", "127.0.0.1:0"])
        self.d.start()
        m = re.search(r"metrics url=(\S+)", self.d.log())
        self.assertTrue(m, self.d.log())
        self.metrics_url = m.group(1)

    def unlock_all(self):
        for p in self.locked:
            chattr("-i", p)

    def lock_current_root(self):
        roots = glob.glob(os.path.join(self.tmp, "vault", "root-*.key"))
        self.assertEqual(len(roots), 1, roots)
        self.assertTrue(chattr("+i", roots[0]))
        self.locked.append(roots[0])
        return roots[0]

    def unlock(self, path):
        self.assertTrue(chattr("-i", path))

    def metric(self, name):
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        self.assertTrue(m, "no %s in\n%s" % (name, text))
        return float(m.group(1))

    def shred(self, digest, request_id):
        return self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)], reason="test",
                                                       request_id=request_id), timeout=60)

    def get_certificate(self, request_id):
        return self.d.shredder().GetCertificate(pb.GetCertificateRequest(request_id=request_id), timeout=60)

    def verify(self, envelope):
        pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "--format", "pem", "-o", pem)
        cert = os.path.join(self.tmp, "cert.json")
        with open(cert, "wb") as f:
            f.write(envelope)
        p = ctl_offline("verify", cert, "--pubkey", pem, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pending_certification_finishes_by_itself_once_the_vault_works(self):
        x = os.urandom(3000)
        dx = self.d.put_bytes(x)
        root = self.lock_current_root()
        with self.assertRaises(grpc.RpcError) as cm:
            self.shred(dx, "req-ghost")
        # Not issued, and the caller is told it will be, with the id.
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception.details())
        self.assertIn("certificate", cm.exception.details())
        self.assertIn("destroy", cm.exception.details())
        # Logged and counted.
        self.assertIn("certification pending", self.d.log())
        self.assertGreaterEqual(self.metric("shredd_pending_certification_failures_total"), 1)
        self.assertEqual(self.metric("shredd_pending_certifications"), 1)
        # Still pending while the root is stuck: asking does not issue it.
        with self.assertRaises(grpc.RpcError) as cm:
            self.get_certificate("req-ghost")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertTrue(os.path.exists(root))

        # The vault works again: no call, no restart; the retry issues it.
        self.unlock(root)
        deadline = time.time() + 60
        while time.time() < deadline and self.metric("shredd_pending_certifications") != 0:
            time.sleep(0.25)
        self.assertEqual(self.metric("shredd_pending_certifications"), 0, self.d.log()[-3000:])
        self.assertFalse(os.path.exists(root), "the old root survived its certificate")
        cert = self.get_certificate("req-ghost")
        self.verify(cert.certificate)
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.get_bytes(dx)
        self.assertIn(cert.certificate_id, cm.exception.details())
        # The same shred again answers the same certificate.
        again = self.shred(dx, "req-ghost")
        self.assertEqual(again.certificate_id, cert.certificate_id)
        self.assertIn("certificate issued", self.d.log())
        self.assertIsNone(self.d.proc.poll())

    def test_get_certificate_finishes_a_pending_certification(self):
        y = os.urandom(2000)
        dy = self.d.put_bytes(y)
        root = self.lock_current_root()
        with self.assertRaises(grpc.RpcError):
            self.shred(dy, "req-y")
        self.unlock(root)
        # Asking right away finishes it (or finds it finished by the retry).
        cert = self.get_certificate("req-y")
        self.verify(cert.certificate)
        self.assertFalse(os.path.exists(root))
        self.assertEqual(self.metric("shredd_pending_certifications"), 0)

    def test_pending_certification_survives_a_restart_with_a_broken_vault(self):
        z = os.urandom(2000)
        dz = self.d.put_bytes(z)
        root = self.lock_current_root()
        with self.assertRaises(grpc.RpcError):
            self.shred(dz, "req-z")
        self.assertEqual(self.d.stop(), 0)
        # The vault is still broken at the next start: the daemon serves
        # (reads, puts) and keeps retrying, and says so.
        self.d.start()
        self.assertIn("certification pending", self.d.log())
        w = os.urandom(1000)
        dw = self.d.put_bytes(w)
        self.assertEqual(self.d.get_bytes(dw), w)
        self.unlock(root)
        deadline = time.time() + 60
        cert = None
        while time.time() < deadline and cert is None:
            try:
                cert = self.get_certificate("req-z")
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, e.details())
                time.sleep(0.25)
        self.assertIsNotNone(cert)
        self.verify(cert.certificate)

    def test_an_order_whose_certificate_is_pending_ends_done_not_failed(self):
        # The order's keys are destroyed, its certificate waits for the
        # vault: the order must not say FAILED (its items are gone) and must
        # reach DONE with the certificate once the vault works again.
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        orders = opb_grpc.OrdersStub(self.d.channel())
        data = b"ordered photo " * 50
        digest = self.d.put_bytes(data, datasets=["vault-ds"])
        root = self.lock_current_root()
        orders.SubmitOrder(opb.OrderSpec(id="vo", basis=opb.OTHER, reference="r", datasets=["vault-ds"]), timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            st = orders.GetOrder(opb.GetOrderRequest(order_id="vo"), timeout=10)
            if "pending" in st.message or st.state != opb.ORDER_PENDING and st.state != opb.ORDER_RUNNING:
                break
            time.sleep(0.2)
        self.assertEqual(st.state, opb.ORDER_RUNNING, st.message)
        self.assertIn("certificate is pending", st.message)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, lambda: self.d.get_bytes(digest))
        self.unlock(root)
        final = orders.GetOrder(opb.GetOrderRequest(order_id="vo", wait=True), timeout=90)
        self.assertEqual(final.state, opb.ORDER_DONE, final.message)
        self.assertTrue(final.certificate_id)
        cert = self.d.shredder().GetCertificate(pb.GetCertificateRequest(certificate_id=final.certificate_id))
        self.verify(cert.certificate)

    def test_no_hold_or_change_slips_into_a_destruction_left_pending(self):
        # Epochs of one item: the first commits, its old root cannot be
        # destroyed, and the second item stays staged for the retrier. A
        # hold placed on it now would not stop the retrier (it finishes what
        # was planned), and a tag would outlive it: both are refused until
        # the destruction is certified. New items still go in.
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        cfg = os.path.join(self.tmp, "epochs.toml")
        with open(cfg, "w") as f:
            f.write("[shred]\nepoch_items = 1\n")
        self.d.stop()
        self.d.extra_args = ["--config", cfg]
        self.d.start()
        orders = opb_grpc.OrdersStub(self.d.channel())
        catalog = opb_grpc.CatalogStub(self.d.channel())
        da, db = self.d.put_bytes(os.urandom(3000)), self.d.put_bytes(os.urandom(3000), datasets=["ds"])
        kept = self.d.put_bytes(os.urandom(3000))
        orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(id="h-kept", digest=pb.Digest(hash=kept), reason="r")),
                       timeout=30)
        root = self.lock_current_root()
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.d.shredder().Shred,
                            pb.ShredRequest(digests=[pb.Digest(hash=da), pb.Digest(hash=db)], request_id="two"),
                            timeout=60, contains="not issued yet")
        # The item itself reads as shredded already; its dataset does not,
        # and a hold on the dataset used to be accepted and then ignored.
        for hold in (opb.Hold(dataset="ds", reason="litigation"),
                     opb.Hold(digest=pb.Digest(hash=db), reason="litigation")):
            e = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, orders.AddHold, opb.AddHoldRequest(hold=hold),
                                    timeout=30, contains="a destruction is pending")
            self.assertIn("legal holds", e.details())
        # Nor is a hold removed: the certificate still to be issued cites
        # the holds its plan met (it used to be removed at once).
        e = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, orders.RemoveHold, opb.RemoveHoldRequest(id="h-kept"),
                                timeout=30, contains="a destruction is pending")
        self.assertIn("legal holds", e.details())
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, catalog.UpdateItem,
                            opb.UpdateItemRequest(digest=pb.Digest(hash=db), add_datasets=["late"]), timeout=30,
                            contains="a destruction is pending")
        dc = self.d.put_bytes(os.urandom(3000))  # no lineage: not held up
        self.unlock(root)
        cert = self.get_certificate("two")
        self.verify(cert.certificate)
        for d in (da, db):
            self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, d)
        self.assertEqual([h.id for h in orders.ListHolds(opb.ListHoldsRequest(), timeout=30).holds], ["h-kept"])
        # Certified: writes and holds are back.
        orders.RemoveHold(opb.RemoveHoldRequest(id="h-kept"), timeout=30)
        orders.AddHold(opb.AddHoldRequest(hold=opb.Hold(digest=pb.Digest(hash=dc), reason="litigation")), timeout=30)
        catalog.UpdateItem(opb.UpdateItemRequest(digest=pb.Digest(hash=dc), add_datasets=["late"]), timeout=30)

    def test_a_vault_that_cannot_make_a_root_is_a_passing_failure(self):
        # The vault directory is immutable: no root for the next epoch. That
        # is the daemon's own vault failing, not the caller lacking rights:
        # UNAVAILABLE (it was PERMISSION_DENIED), nothing shredded, and an
        # order waits for the vault instead of failing for good (it was
        # FAILED, and stayed so once the vault worked again).
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        orders = opb_grpc.OrdersStub(self.d.channel())
        x, y = os.urandom(3000), b"ordered photo " * 40
        dx, dy = self.d.put_bytes(x), self.d.put_bytes(y, datasets=["dir-ds"])
        vault = os.path.join(self.tmp, "vault")
        self.assertTrue(chattr("+i", vault))
        self.locked.append(vault)
        e = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.shred, dx, "req-dir", contains="nothing was shredded")
        self.assertIn("the vault cannot make root", e.details())
        self.assertEqual(self.d.get_bytes(dx), x)
        orders.SubmitOrder(opb.OrderSpec(id="vd", basis=opb.OTHER, reference="r", datasets=["dir-ds"]), timeout=30)
        deadline = time.time() + 30
        st = None
        while time.time() < deadline:
            st = orders.GetOrder(opb.GetOrderRequest(order_id="vd"), timeout=10)
            if "nothing was destroyed yet" in st.message or st.state in (opb.ORDER_FAILED, opb.ORDER_DONE):
                break
            time.sleep(0.2)
        self.assertEqual(st.state, opb.ORDER_PENDING, st.message)
        self.assertIn("the vault cannot make root", st.message)
        self.assertEqual(self.d.get_bytes(dy), y)
        self.unlock(vault)
        final = orders.GetOrder(opb.GetOrderRequest(order_id="vd", wait=True), timeout=120)
        self.assertEqual(final.state, opb.ORDER_DONE, final.message)
        self.verify(self.d.shredder().GetCertificate(
            pb.GetCertificateRequest(certificate_id=final.certificate_id)).certificate)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, dy)
        self.verify(self.shred(dx, "req-dir").certificate)
        self.assertIsNone(self.d.proc.poll())


if __name__ == "__main__":
    unittest.main()
