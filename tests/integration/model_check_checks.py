"""ModelRun's checks (model_check.py): reading items back, the snapshot a
refused call must leave unchanged (expect_unchanged), the needles nothing
public may hold (needles, scan_public, check_auto_request), the log, and the
comparison of the daemon with the model after each step (check, check_item,
check_lists, check_holds, check_certs_served, check_orders)."""
import base64
import hashlib
import json
import random
import re

from harness import grpc, pb
from shredd.v1 import log_pb2 as lpb
from shredd.v1 import orders_pb2 as opb

from model_check_base import KIND_NAME, RPC_TIMEOUT, call


def _b64(raw):
    return base64.b64encode(raw).decode()


def _b64u(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Checks:
    """Mixin of ModelRun: the checker (invariants a to i against the model)."""

    # ------------------------------------------------------------------ checks
    def get_bytes(self, c):
        try:
            return b"".join(x.data for x in self.store().Get(pb.GetRequest(digest=pb.Digest(hash=c.digest)),
                                                             timeout=RPC_TIMEOUT))
        except grpc.RpcError as e:
            return e

    @staticmethod
    def describe_get(got):
        if isinstance(got, grpc.RpcError):
            return "%s %s" % (got.code().name, got.details())
        return "%d bytes" % len(got)

    def list_digests(self, **kw):
        out, token = [], ""
        while True:
            res = call(self.store().List, pb.ListRequest(page_size=1000, page_token=token, **kw), timeout=RPC_TIMEOUT)
            if not res.ok:
                self.fail("h", "List(%s): %s" % (kw, res))
            out.extend(res.value.items)
            token = res.value.next_page_token
            if not token:
                return out

    def snapshot(self):
        ck = call(self.logapi().GetCheckpoint, lpb.GetCheckpointRequest())
        if not ck.ok:
            self.fail("h", "GetCheckpoint: %s" % ck)
        ds = call(self.catalog().ListDatasets, opb.ListDatasetsRequest())
        holds = call(self.orders().ListHolds, opb.ListHoldsRequest())
        if not ds.ok or not holds.ok:
            self.fail("h", "ListDatasets/ListHolds: %s %s" % (ds, holds))
        items = sorted((i.digest.hash, i.metadata.kind, tuple(sorted(i.metadata.subject_ids)),
                        tuple(sorted(i.metadata.datasets)), tuple(sorted(i.metadata.labels.items())))
                       for i in self.list_digests())
        return dict(log=(ck.value.tree_size, ck.value.root_hash.hex()),
                    datasets=sorted((d.name, d.item_count) for d in ds.value.datasets),
                    items=items, holds=sorted(h.id for h in holds.value.holds))

    def expect_unchanged(self, before, what):
        after = self.snapshot()
        diffs = []
        for k in ("log", "datasets", "items", "holds"):
            if before[k] != after[k]:
                if k == "log":
                    diffs.append("log tree %d -> %d%s" % (before[k][0], after[k][0],
                                                          " (root changed)" if before[k][0] == after[k][0] else ""))
                elif k == "datasets":
                    b, a = dict(before[k]), dict(after[k])
                    new = sorted(set(a) - set(b))
                    if new:
                        diffs.append("datasets: %d new (%s)" % (len(new), ", ".join(n[:40] for n in new[:3])))
                    else:
                        diffs.append("datasets changed (%s)" % sorted(set(before[k]) ^ set(after[k]))[:4])
                elif k == "items":
                    diffs.append("items: %d -> %d (or metadata changed)" % (len(before[k]), len(after[k])))
                else:
                    diffs.append("holds changed")
        if diffs:
            self.fail("d", "%s changed state: %s" % (what, "; ".join(diffs)))

    def needles(self):
        """Compiled regexes of what must never be public (certificates and log
        entries; for log entries dataset names too)."""
        ver = (len(self.m.contents), len(self.extra_subjects))
        if ver != self._needles_version:
            ns = set()
            for c in self.m.contents:
                if c.kind == "photo":
                    raw = bytes.fromhex(c.hex)
                    ns.update([c.hex, c.hex.upper(), _b64(raw), _b64u(raw)])
            ns.update(self.subject_pool + self.extra_subjects + list(self.label_value.values()) + [self.requester])
            ns.add("subj-refused-%s-" % self.seed)
            pat = "|".join(re.escape(n) for n in sorted(ns, key=len, reverse=True))
            self._needles_re = re.compile(pat.encode())
            log_ns = ns | set(self.dataset_pool) | {"ds-refused-%s-" % self.seed, "ds-many-%s-" % self.seed}
            self._log_needles_re = re.compile("|".join(re.escape(n) for n in sorted(log_ns, key=len, reverse=True)).encode())
            self._needles_version = ver
        return self._needles_re, self._log_needles_re

    def name_needle(self, hit):
        h = hit.decode(errors="replace")
        for c in self.m.contents:
            if h in (c.hex, c.hex.upper(), _b64(bytes.fromhex(c.hex)), _b64u(bytes.fromhex(c.hex))):
                return "the digest of %s (%s)" % (c.short(), "hex" if h.lower() == c.hex else "base64")
        return repr(h[:60])

    def scan_public(self, data, where, log_entry=False):
        if not data:
            return
        cert_re, log_re = self.needles()
        m = (log_re if log_entry else cert_re).search(data)
        if m:
            self.fail("f", "%s holds %s" % (where, self.name_needle(m.group(0))))

    def check_auto_request(self, cid):
        """(f) An automatic request id must not be computable from the content:
        recompute the known unkeyed constructions for every custody index the
        public tree size allows."""
        cert = self.m.certs[cid]
        req = cert["request"]
        if not req.startswith("auto:") or cid in self._cert_checked_auto:
            return
        self._cert_checked_auto.add(cid)
        target = req[5:].lower()
        digests = sorted(cert["items"])
        raws = [bytes.fromhex(d[7:]) for d in digests]
        ck = call(self.logapi().GetCheckpoint, lpb.GetCheckpointRequest())
        n = ck.value.tree_size if ck.ok else 0
        prefixes = [b"shredd/auto-request/v2", b"shredd/auto-request/v1", b"shredd/auto-request", b""]
        encs = [lambda raw: raw, lambda raw: raw.hex().encode(), lambda raw: b"sha256:" + raw.hex().encode()]
        for p in prefixes:
            for enc in encs:
                base = hashlib.sha256(p)
                plain = base.copy()
                for raw in raws:
                    plain.update(enc(raw))
                if plain.hexdigest() == target:
                    self.fail("f", "auto request id %s of certificate %s is SHA-256 of a fixed string and the digests"
                              % (req, cid))
                if len(raws) == 1:
                    for idx in range(0, n + 1):
                        h = base.copy()
                        h.update(enc(raws[0]))
                        h.update(b" %d;" % idx)
                        if h.hexdigest() == target:
                            c = self.m.by_digest[digests[0]]
                            self.fail("f", "auto request id %s of certificate %s is SHA-256(%r || digest of %s || "
                                      "custody index %d): computable from the content and the public tree size"
                                      % (req, cid, p.decode(), c.short(), idx))

    def check_log(self):
        """Fetches new log entries; scans them; learns certificates; (b) each
        certificate appears once in the log; the tree never shrinks."""
        ck = call(self.logapi().GetCheckpoint, lpb.GetCheckpointRequest())
        if not ck.ok:
            self.fail("h", "GetCheckpoint: %s" % ck)
        if ck.value.tree_size < self.tree_size:
            self.fail("b", "the log shrank from %d to %d entries" % (self.tree_size, ck.value.tree_size))
        self.tree_size = ck.value.tree_size
        self.scan_public(ck.value.checkpoint.encode(), "checkpoint")
        while self.log_seen < self.tree_size:
            res = call(self.logapi().GetEntries, lpb.GetEntriesRequest(start=self.log_seen, end=self.tree_size))
            if not res.ok:
                self.fail("b", "GetEntries(%d, %d): %s" % (self.log_seen, self.tree_size, res))
            if not res.value.entries:
                self.fail("b", "GetEntries(%d, %d) returned nothing" % (self.log_seen, self.tree_size))
            for e in res.value.entries:
                idx = self.log_seen
                self.log_seen += 1
                self.scan_public(e, "log entry %d" % idx, log_entry=True)
                try:
                    j = json.loads(e)
                except ValueError:
                    self.fail("b", "log entry %d is not JSON" % idx)
                if "payloadType" in j:
                    payload = json.loads(base64.b64decode(j["payload"]))
                    cid = payload["predicate"]["certificateId"]
                    self.log_cert_index.setdefault(cid, []).append(idx)
                    if len(self.log_cert_index[cid]) > 1:
                        self.fail("b", "certificate %s is in the log %d times (%s)" % (
                            cid, len(self.log_cert_index[cid]), self.log_cert_index[cid]))
                    if cid not in self.m.certs:
                        self.learn_certificate(cid)
                    if e != self.m.certs[cid]["envelope"]:
                        self.fail("b", "log entry %d differs from certificate %s as served" % (idx, cid))
                    self.scan_public(json.dumps(payload).encode(), "log entry %d (certificate payload)" % idx,
                                     log_entry=False)
                elif j.get("type") == "lineage":
                    c = self.m.by_digest.get(j.get("model"))
                    if c is not None and c.kind != "model":
                        self.fail("f", "log entry %d: lineage on photo %s" % (idx, c.short()))

    def check(self, full=False, r=None):
        self.stats.checks += 1
        if self.d.proc is None or self.d.proc.poll() is not None:
            self.fail("g", "the daemon died: %s" % self.d.log()[-3000:])
        self.check_log()
        for cid, cert in self.m.certs.items():
            if cid not in self.log_cert_index:
                self.fail("b", "certificate %s (request %s) is not in the log" % (cid, cert["request"]))
        if full:
            subset = self.m.contents
        else:
            rr = r or random.Random(self.step)
            sample = rr.sample(self.m.contents, min(6, len(self.m.contents)))
            subset = [c for c in self.m.contents if c.digest in self.touched] + sample
        # Safety first: what must be gone, then what must be there.
        for c in subset:
            if c.state != "present":
                self.check_item(c, full)
        for c in subset:
            if c.state == "present":
                self.check_item(c, full)
        self.check_lists()
        self.check_holds()
        if full:
            self.check_certs_served()
            self.check_orders()

    def check_item(self, c, full):
        if not c.introduced and c.state == "absent":
            return
        st = call(self.store().Stat, pb.StatRequest(digest=pb.Digest(hash=c.digest)))
        if c.state == "present":
            if not st.ok:
                if self.stats.kills:
                    self.fail("g", "acknowledged %s is not readable (after %d kill -9): %s" % (
                        c.short(), self.stats.kills, st))
                self.fail("b", "acknowledged %s disappeared without a certificate: %s" % (c.short(), st))
            md = st.value.metadata
            got_kind = KIND_NAME.get(md.kind)
            if got_kind != c.kind and not c.kind_reported:
                self.fail("h", "%s first stored as a %s is now a %s" % (c.short(), c.kind, got_kind))
            got = (set(md.subject_ids), set(md.datasets), dict(md.labels))
            want = (c.subjects, c.datasets, c.labels)
            if got != want:
                lost = [("subjects", sorted(c.subjects - got[0])), ("datasets", sorted(c.datasets - got[1])),
                        ("labels", sorted(set(c.labels.items()) - set(got[2].items())))]
                extra = [("subjects", sorted(got[0] - c.subjects)), ("datasets", sorted(got[1] - c.datasets)),
                         ("labels", sorted(set(got[2].items()) - set(c.labels.items())))]
                self.fail("h", "%s metadata disagrees: acknowledged but missing %s; unexpected %s" % (
                    c.short(), [x for x in lost if x[1]], [x for x in extra if x[1]]))
            if full or c.digest in self.touched:
                data = self.get_bytes(c)
                if data != c.data:
                    self.fail("g" if self.stats.kills else "h", "%s reads back %s, not its %d bytes" %
                              (c.short(), self.describe_get(data), c.size))
                lin = call(self.catalog().GetLineage, opb.LineageRequest(digest=pb.Digest(hash=c.digest)))
                if not lin.ok:
                    self.fail("h", "GetLineage(%s): %s" % (c.short(), lin))
                comes = set()
                for link in lin.value.comes_from:
                    comes.add(("d", link.dataset) if link.dataset else ("i", link.digest.hash))
                if c.kind == "photo" and comes and not c.lineage_reported:
                    self.fail("f", "lineage attached to photo %s: %s" % (c.short(), sorted(comes)))
                want_edges = {("i", "(shredded)") if k == "i" and self.m.by_digest.get(t) is not None and
                              self.m.by_digest[t].state != "present" else (k, t) for k, t in c.edges}
                if c.kind == "model" and comes != want_edges:
                    self.fail("h", "lineage of %s is %s, the model says %s" % (c.short(), sorted(comes), sorted(want_edges)))
        elif c.state == "shredded":
            if st.ok:
                self.fail("a", "shredded %s (certificate %s) is readable again: Stat answers %s with subjects %s" % (
                    c.short(), c.certs[-1] if c.certs else "?", KIND_NAME.get(st.value.metadata.kind),
                    sorted(st.value.metadata.subject_ids)))
            data = self.get_bytes(c)
            if not isinstance(data, grpc.RpcError):
                self.fail("a", "shredded %s (certificate %s) returns %d bytes on Get" % (
                    c.short(), c.certs[-1] if c.certs else "?", len(data)))
            m = re.search(r"certificate ([0-9a-f]{32})", st.details)
            if m and m.group(1) not in self.m.certs:
                self.fail("b", "%s says shredded by certificate %s, which does not exist" % (c.short(), m.group(1)))
        elif c.state == "absent":
            if st.ok:
                self.fail("d", "%s was never acknowledged but is stored" % c.short())

    def check_lists(self):
        present = self.m.present()
        for s in self.subject_pool + self.extra_subjects:
            got = {i.digest.hash for i in self.list_digests(subject_id=s)}
            want = {c.digest for c in present if s in c.subjects}
            self.compare_list("subject %s" % s, got, want)
        for ds in self.dataset_pool:
            got = {i.digest.hash for i in self.list_digests(dataset=ds)}
            want = {c.digest for c in present if ds in c.datasets}
            self.compare_list("dataset %s" % ds, got, want)
        for k, v in self.label_value.items():
            got = {i.digest.hash for i in self.list_digests(labels={k: v})}
            want = {c.digest for c in present if c.labels.get(k) == v}
            self.compare_list("label %s=%s" % (k, v), got, want)
        got = {i.digest.hash for i in self.list_digests()}
        self.compare_list("all items", got, {c.digest for c in present})
        res = call(self.catalog().ListDatasets, opb.ListDatasetsRequest())
        if not res.ok:
            self.fail("h", "ListDatasets: %s" % res)
        names = {d.name for d in res.value.datasets}
        # A dataset's count is its index entries: one left behind by a
        # shredded item (a tag that slipped past a destruction) shows here,
        # though List skips it.
        for d in res.value.datasets:
            want = sum(1 for c in present if d.name in c.datasets)
            if d.name in self.dataset_pool and d.item_count != want:
                self.fail("a", "ListDatasets counts %d items in %s, the model %d present: index entries of "
                          "shredded items left behind?" % (d.item_count, d.name, want))
        if names != self.m.datasets:
            extra = sorted(names - self.m.datasets)
            missing = sorted(self.m.datasets - names)
            inv = "d" if extra and not missing else "h"
            self.fail(inv, "datasets registered %d, model %d: unexpected %s, missing %s" % (
                len(names), len(self.m.datasets), [n[:40] for n in extra[:4]], missing[:4]))

    def compare_list(self, what, got, want):
        if got == want:
            return
        shredded = [self.m.by_digest[d].short() for d in got - want
                    if d in self.m.by_digest and self.m.by_digest[d].state == "shredded"]
        if shredded:
            self.fail("a", "List by %s shows shredded %s" % (what, shredded))
        missing = [self.m.by_digest[d].short() for d in want - got]
        extra = [self.m.by_digest[d].short() if d in self.m.by_digest else d for d in got - want]
        self.fail("h", "List by %s: acknowledged but missing %s; unexpected %s" % (what, missing, extra))

    def check_holds(self):
        res = call(self.orders().ListHolds, opb.ListHoldsRequest())
        if not res.ok:
            self.fail("h", "ListHolds: %s" % res)
        got = {h.id for h in res.value.holds}
        if got != set(self.m.holds):
            self.fail("h", "holds %s, model %s" % (sorted(got), sorted(self.m.holds)))

    def check_certs_served(self):
        """(b) Certificates are served byte-identically by id (across restarts);
        each covers only items that are gone."""
        for cid, cert in self.m.certs.items():
            res = call(self.shredder().GetCertificate, pb.GetCertificateRequest(certificate_id=cid))
            if not res.ok:
                self.fail("b", "certificate %s is no longer served: %s" % (cid, res))
            if res.value.certificate != cert["envelope"]:
                self.fail("b", "certificate %s changed" % cid)
            self.scan_public(res.value.tlog_proof, "tlog proof of %s" % cid)
            for d in cert["items"]:
                c = self.m.by_digest[d]
                if c.state != "shredded" and c.lifts == 0 and not c.resurrected:
                    self.fail("b", "%s is covered by certificate %s but the model has it %s" % (c.short(), cid, c.state))

    def check_orders(self):
        for oid, o in self.m.orders.items():
            if o["state"] is None:
                continue
            res = call(self.orders().GetOrder, opb.GetOrderRequest(order_id=oid))
            if not res.ok:
                self.fail("e", "order %s is gone: %s" % (oid, res))
            st = res.value
            if st.state != o["state"] or (st.certificate_id or None) != o["cert"]:
                self.fail("e", "order %s now %s/%s, was %s/%s" % (oid, opb.OrderState.Name(st.state), st.certificate_id,
                                                                 opb.OrderState.Name(o["state"]), o["cert"]))
            byreq = call(self.shredder().GetCertificate, pb.GetCertificateRequest(request_id="order:" + oid))
            if o["state"] == opb.ORDER_DONE:
                if not byreq.ok or byreq.value.certificate_id != o["cert"]:
                    self.fail("e", "DONE order %s: certificate by request is %s" % (oid, byreq))
            elif byreq.ok:
                self.fail("e", "EMPTY order %s has a certificate %s" % (oid, byreq.value.certificate_id))
