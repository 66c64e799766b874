"""ModelRun's vault faults (model_check.py): the file vault stops working
for a while, made immutable with chattr +i (which stops root too; without
root or chattr the step runs a shred instead).

- The vault directory: no new root can be made, so no epoch can commit. A
  bare shred is refused UNAVAILABLE (a passing failure of the daemon's, not
  the caller's) and changes nothing; uploads go on; an order submitted now
  is not FAILED or DONE while the vault is down, and ends DONE with the
  model's closure once it works again.
- The current root file: an epoch commits but the old root cannot be
  destroyed, so no certificate may be issued while it exists (its tree
  unwraps the keys of every item stored before, in any old disk image). The
  shred answers UNAVAILABLE ("not issued yet"); its items are unreadable at
  once; a certificate asked for meanwhile is not issued; uploads go on; the
  daemon may be killed and restarted meanwhile. Once the root can go, the
  certificate is issued by itself, covers exactly the shred's items, and
  the locked root is gone by then.
"""
import glob
import os
import subprocess
import time

from harness import grpc, pb
from shredd.v1 import orders_pb2 as opb

from model_check_base import RPC_TIMEOUT, call

CERTIFY_SECONDS = 60  # how long a pending certification may take once the vault works


def chattr(flag, path):
    return subprocess.run(["chattr", flag, path], capture_output=True, timeout=30).returncode == 0


class VaultOps:
    """Mixin of ModelRun: the vault fails and recovers."""

    def vault_can_fail(self):
        if getattr(self, "_vault_can_fail", None) is None:
            probe = os.path.join(self.root, "chattr-probe")
            open(probe, "w").close()
            self._vault_can_fail = os.geteuid() == 0 and chattr("+i", probe)
            chattr("-i", probe)
            os.remove(probe)
        return self._vault_can_fail

    def vault_dir(self):
        return os.path.join(self.root, "vault")

    def op_vault_outage(self, r):
        if not self.vault_can_fail():
            return self.op_shred(r)
        self.stats.faults += 1
        self.stats.vault_outages += 1
        if r.random() < 0.5:
            self.vault_dir_outage(r)
        else:
            self.vault_root_outage(r)
        return True

    def unheld_targets(self, r):
        present = [c for c in self.live() if self.m.held_by(c) is None]
        return r.sample(present, min(len(present), r.randint(1, 3))) if present else []

    def put_while_vault_is_down(self, r, what):
        """An upload needs no new root: it goes on. A fresh subject and no
        dataset, so that no order's closure can reach it."""
        c = self.new_content("photo")
        subj = "subj-vault-%s-%d" % (self.seed, self.step)
        self.extra_subjects.append(subj)
        res = self.put_stream(c, "photo", (subj,))
        self.stats.ops += 1
        self.expect_put(c, "photo", res, (subj,), (), {}, what="put while %s" % what)
        return c

    # -- no new root can be made
    def vault_dir_outage(self, r):
        targets = self.unheld_targets(r)
        spec = self.r_spec(r) if r.random() < 0.6 else None
        if not chattr("+i", self.vault_dir()):
            self.fail("h", "chattr +i of the vault directory failed")
        try:
            if targets:
                digests = [c.digest for c in targets]
                keep = r.random() < 0.5
                exp = self.shred_expectation(digests, "", keep_models=keep)
                before = self.snapshot()
                res, _ = self.do_shred(digests, ch=None, judge=False, keep_models=keep)
                if res.ok:
                    self.learn_certificate(res.value.certificate_id, res.value.certificate, res.value.manifest)
                    self.fail("a", "shred certified %s while the vault could make no root" % res.value.certificate_id)
                if exp == "ok" and res.code != grpc.StatusCode.UNAVAILABLE:
                    self.fail("h", "shred while the vault cannot make a root refused with %s, expected UNAVAILABLE "
                              "(a passing failure of the daemon's own vault): %s" % (res.code, res.details))
                self.stats.refused += 1
                self.expect_unchanged(before, "shred refused while the vault is down (%s)" % res)
            self.put_while_vault_is_down(r, "the vault cannot make a root")
            if spec is not None:
                res = self.submit_order(spec)
                if not res.ok:
                    self.fail("h", "SubmitOrder %s while the vault is down refused: %s" % (spec.id, res))
                time.sleep(r.uniform(0.3, 1.5))
                g = call(self.orders().GetOrder, opb.GetOrderRequest(order_id=spec.id), timeout=RPC_TIMEOUT)
                destroyed, _ = self.m.orders[spec.id]["expect"]
                if not g.ok:
                    self.fail("e", "GetOrder %s while the vault is down: %s" % (spec.id, g))
                if destroyed and g.value.state in (opb.ORDER_DONE, opb.ORDER_FAILED):
                    self.fail("e", "order %s is %s while the vault can make no root (%d items to destroy): %s" % (
                        spec.id, opb.OrderState.Name(g.value.state), len(destroyed), g.value.message))
        finally:
            chattr("-i", self.vault_dir())
        if spec is not None:
            self.finish_order(spec.id)

    # -- the old root cannot be destroyed
    def vault_root_outage(self, r):
        targets = self.unheld_targets(r)
        if not targets:
            return self.put_while_vault_is_down(r, "nothing is to be shredded")
        roots = glob.glob(os.path.join(self.vault_dir(), "root-*.key"))
        if len(roots) != 1:
            self.fail("b", "the vault holds %d roots before a shred, expected the current one: %s" % (
                len(roots), sorted(os.path.basename(p) for p in roots)))
        root = roots[0]
        rid = "req-vault-%s-%d" % (self.seed, self.step)
        digests = [c.digest for c in targets]
        keep = r.random() < 0.5
        exp = self.shred_expectation(digests, rid, keep_models=keep)
        if not chattr("+i", root):
            self.fail("h", "chattr +i of %s failed" % root)
        try:
            before = self.snapshot() if exp != "ok" else None
            res, _ = self.do_shred(digests, rid, judge=False, keep_models=keep)
            if res.ok:
                self.learn_certificate(res.value.certificate_id, res.value.certificate, res.value.manifest)
                self.fail("b", "certificate %s issued while the old root %s exists" % (
                    res.value.certificate_id, os.path.basename(root)))
            if exp != "ok":
                self.stats.refused += 1
                self.expect_unchanged(before, "shred refused while a root cannot be destroyed (%s)" % res)
                return self.put_while_vault_is_down(r, "a root cannot be destroyed")
            if res.code != grpc.StatusCode.UNAVAILABLE or "not issued yet" not in res.details:
                self.fail("b", "shred whose old root cannot be destroyed answered %s, expected UNAVAILABLE "
                          "'not issued yet': %s" % (res.code, res.details))
            for c in targets:
                got = self.get_bytes(c)
                if not isinstance(got, grpc.RpcError):
                    self.fail("a", "%s readable after its epoch committed (certificate pending)" % c.short())
            self.put_while_vault_is_down(r, "a root cannot be destroyed")
            if r.random() < 0.3:
                self.d.kill()
                self.stats.kills += 1
                self.restart()
            g = call(self.shredder().GetCertificate, pb.GetCertificateRequest(request_id=rid), timeout=RPC_TIMEOUT)
            if g.ok:
                self.learn_certificate(g.value.certificate_id, g.value.certificate)
                self.fail("b", "certificate %s issued on request while the old root %s exists" % (
                    g.value.certificate_id, os.path.basename(root)))
        finally:
            chattr("-i", root)
        self.await_pending_certificate(rid, targets, root)

    def await_pending_certificate(self, rid, targets, root):
        deadline = time.time() + CERTIFY_SECONDS
        g = None
        while time.time() < deadline:
            g = call(self.shredder().GetCertificate, pb.GetCertificateRequest(request_id=rid), timeout=RPC_TIMEOUT)
            if g.ok or g.code != grpc.StatusCode.UNAVAILABLE:
                break
            time.sleep(0.25)
        if not g.ok:
            self.fail("b", "pending certificate of %s not issued within %d s of the vault working again: %s" % (
                rid, CERTIFY_SECONDS, g))
        if os.path.exists(root):
            self.fail("b", "certificate %s issued while the old root %s exists" % (
                g.value.certificate_id, os.path.basename(root)))
        items = self.learn_certificate(g.value.certificate_id, g.value.certificate, expect_request=rid)
        if items != {c.digest for c in targets}:
            self.fail("b", "pending shred %s certified %d items, it destroyed %d" % (rid, len(items), len(targets)))
