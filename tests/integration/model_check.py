"""Model-based randomized test of shredd (issue 12; DESIGN.md invariants 1, 2,
3, 6 and 7), in the spirit of RocksDB's db_stress, FoundationDB's simulation
and Jepsen's checkers.

A seeded generator drives the real daemon (real RocksDB in a temp dir, real
unix socket, the generated Python stubs) with random interleavings of every
mutating RPC: streamed puts (digest in the header, in a trailer, or the daemon's), batch
puts, racing re-uploads of the same content (other subjects, datasets, kind),
tags, dataset registration, model registration with lineage, lineage added
later, holds added and removed, bare shreds (explicit and automatic request
ids, repeated), deletion orders by digest, subject, dataset and label,
re-submitted orders (same and changed fields), suppression lifts, refused
calls of every kind, and faults: a graceful restart and `kill -9` (idle, or
in the middle of uploads, a shred or an order) followed by a restart, and
(with full_disk, data dir on a small tmpfs) a full disk: uploads while it is
full, reads and the log still served, writes back by themselves once space
returns. Some
steps run several clients at once on their own channels (a re-upload racing
a shred of the same content, parallel uploads).

A reference model keeps what must be true. After every step the checker
compares the daemon with it (a full comparison after shreds, orders, races,
faults and every few steps; the touched items and a sample otherwise):

  (a) shredded content is never readable (Stat/Get) or listable (List by
      subject, dataset, label), and its re-upload is refused;
  (b) every destruction has exactly one certificate and every certificate a
      destruction: each item that disappeared is in exactly one certificate's
      manifest, each certificate is in the log exactly once, served
      byte-identically by id (also across restarts), its manifest items are
      gone and its counts agree with them;
  (c) held items are never destroyed, by any path (shred, order, cascade);
  (d) a refused call changes nothing: tree size and root of the log, the
      datasets, every item with its metadata, and the holds are unchanged;
  (e) an order's status agrees with its certificate (DONE <=> a certificate
      for request `order:<id>` covering the expected closure);
  (f) nothing public (certificate envelope and payload, tlog proof, log
      entries, checkpoint, certificate and request ids) holds a photo's
      digest (hex, upper-case hex or base64), a subject id, a label value,
      the requester, or a dataset name (in log entries), and no automatic
      request id is computable from the content alone (the known unkeyed
      constructions are recomputed for every custody index the public tree
      size allows); lineage never attaches to a photo;
  (g) acknowledged puts survive kill -9 byte for byte, and the daemon survives
      the faults it must survive (it never dies by itself, also on a full disk);
  (h) the daemon's state agrees with the model: kind fixed at first store,
      acknowledged metadata kept (Stat, List), lineage as registered, an
      order destroys exactly its expected closure minus what is held;
  (i) an order submitted with keep_subject_map serves exactly the subjects
      of the items it destroyed (GetSubjectMap), until ReleaseSubjectMap,
      after which it serves nothing, across restarts, and a release again
      answers the same count; other orders have none.

A violation raises `Violation` naming the seed, the step and the invariant;
`tests/soak/model_soak.py --seed N` replays the same sequence of operations
(thread interleavings may differ; races are built to be hit on most runs).
"""
import os
import random
import shutil
import subprocess
import tempfile

from harness import Daemon, grpc, pb, pb_grpc, sha256_digest
from shredd.v1 import log_pb2 as lpb
from shredd.v1 import log_pb2_grpc as lpb_grpc
from shredd.v1 import orders_pb2 as opb
from shredd.v1 import orders_pb2_grpc as opb_grpc

# ModelRun is assembled here from the modules beside this file; everything
# they define is still reachable as model_check.<name>:
#   model_check_base.py    invariants, constants, Violation, R/call, the model
#                          (Content, Model, Stats)
#   model_check_items.py   ItemOps: uploads, re-uploads, tags, datasets,
#                          lineage, holds
#   model_check_shreds.py  ShredOps: shreds and certificates, orders, subject
#                          maps, lifts
#   model_check_faults.py  FaultOps: refused calls, races, full disk, restart,
#                          kill -9
#   model_check_vault.py   VaultOps: the vault cannot make a root, or cannot
#                          destroy the old one (chattr +i; root only)
#   model_check_checks.py  Checks: the checker (check_*, snapshot and
#                          expect_unchanged, needles and scan_public)
# This module keeps the run itself: OPS (the op_* steps run() picks by name,
# with their weights), setup, the stubs, put_stream and the model's side of
# an upload, run/resync/close.
from model_check_base import (FULL_DISK_MB, INLINE_MAX, INVARIANTS, KIND_NAME, KINDS, PAUSE_SECONDS, RECEIVED,
                              RESUME_SECONDS, RPC_TIMEOUT, Content, Model, R, Stats, Violation, call)
from model_check_checks import Checks
from model_check_faults import FaultOps, run_concurrently
from model_check_items import ItemOps
from model_check_shreds import ShredOps, spec_key
from model_check_vault import VaultOps

__all__ = [
    "FULL_DISK_MB", "INLINE_MAX", "INVARIANTS", "KIND_NAME", "KINDS", "PAUSE_SECONDS", "RECEIVED", "RESUME_SECONDS",
    "RPC_TIMEOUT", "Content", "Model", "ModelRun", "R", "Stats", "Violation", "call", "run_concurrently", "run_seed",
    "spec_key", "Daemon", "grpc", "pb", "pb_grpc", "sha256_digest", "lpb", "lpb_grpc", "opb", "opb_grpc",
]


class ModelRun(ItemOps, ShredOps, FaultOps, VaultOps, Checks):
    """One seed: a fresh daemon, `steps` random steps, a check after each."""

    OPS = [  # (name, weight)
        ("put_new", 14), ("put_trailer", 5), ("put_daemon_digest", 4), ("batch_new", 8), ("reupload", 8), ("reupload_shredded", 4),
        ("tag", 6), ("register_dataset", 3), ("model_register", 8), ("add_lineage", 3),
        ("photo_as_model", 3), ("hold_add", 5), ("hold_remove", 3), ("shred", 7), ("shred_repeat", 2),
        ("order", 7), ("order_resubmit", 3), ("subject_map", 3), ("invalid", 10), ("race_reupload_shred", 5),
        ("race_reuploads", 3), ("race_parallel_puts", 2), ("lift", 1), ("restart", 2), ("kill9", 3), ("vault_outage", 2),
    ]
    FULL_DISK_OPS = [("disk_full", 3)]

    def __init__(self, seed, steps=120, root=None, log=None, full_every=8, extra_args=(), keep_going=False,
                 full_disk=False):
        self.seed = seed
        self.full_disk = full_disk  # data dir on a small tmpfs; adds the disk_full fault (needs mount rights)
        self.keep_going = keep_going  # diagnostic: record violations, resync the model, go on
        self.violations = []
        self._seen_violations = set()
        self.steps = steps
        self.full_every = full_every
        self.log = log or (lambda *a: None)
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="shredd-model-")
        self.mount = None
        data_dir = None
        if full_disk:
            self.mount = os.path.join(self.root, "data-mnt")
            os.makedirs(self.mount, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % FULL_DISK_MB, "tmpfs", self.mount],
                           check=True, capture_output=True)
            data_dir = os.path.join(self.mount, "data")
            # The free-space guard's floor, scaled to the small filesystem:
            # writes stop below 4 MiB free, erasures below 1 MiB.
            # SHREDD_MODEL_MIN_FREE_MIB=0 turns the guard off (to see the
            # abort it prevents).
            extra_args = list(extra_args) + ["--min-free-mib", os.environ.get("SHREDD_MODEL_MIN_FREE_MIB", "4")]
        self.d = Daemon(self.root, data_dir=data_dir, extra_args=list(extra_args))
        self.m = Model()
        self.stats = Stats()
        self.step = 0
        self.op = None
        self.touched = set()
        srng = random.Random("%s/names" % seed)
        tok = lambda: "".join(srng.choice("abcdefghijkmnpqrstuvwxyz") for _ in range(8))  # noqa: E731
        self.subject_pool = ["subj-%s-%d-%s" % (seed, i, tok()) for i in range(7)]
        self.dataset_pool = ["ds-%s-%d-%s" % (seed, i, tok()) for i in range(9)]
        self.label_keys = ["cam", "src", "grp"]
        self.label_value = {k: "%s-%s" % (k, tok()) for k in self.label_keys}
        self.requester = "requester-%s" % tok()
        self.extra_subjects = []
        # log bookkeeping
        self.log_seen = 0
        self.log_cert_index = {}  # certificate id -> [log indices]
        self.tree_size = 0
        self._needles_version = -1
        self._needles_re = None
        self._log_needles_re = None
        self._cert_checked_auto = set()
        self.next_hold = 0
        self.next_order = 0
        self.next_req = 0

    # ------------------------------------------------------------------ basics
    def count(self, what):
        """Counts a variant of an operation (stats.op_counts, "op:variant")."""
        self.stats.op_counts[what] = self.stats.op_counts.get(what, 0) + 1

    def fail(self, inv, msg):
        raise Violation(self.seed, self.step, inv, msg, self.op)

    @staticmethod
    def each(thunks):
        """Runs every judgement, then raises the first violation: one bad
        entry of a batch must not keep the model from applying the others."""
        first = None
        for t in thunks:
            try:
                t()
            except Violation as v:
                first = first or v
        if first is not None:
            raise first

    def ch(self):
        return self.d.channel()

    def store(self, ch=None):
        return pb_grpc.StoreStub(ch or self.ch())

    def shredder(self, ch=None):
        return pb_grpc.ShredderStub(ch or self.ch())

    def orders(self, ch=None):
        return opb_grpc.OrdersStub(ch or self.ch())

    def catalog(self, ch=None):
        return opb_grpc.CatalogStub(ch or self.ch())

    def logapi(self, ch=None):
        return lpb_grpc.LogStub(ch or self.ch())

    def new_channel(self):
        return grpc.insecure_channel(self.d.address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                              ("grpc.max_send_message_length", 64 << 20)])

    def new_content(self, kind, size=None):
        idx = len(self.m.contents)
        r = random.Random("%s/data/%d" % (self.seed, idx))
        if size is None:
            x = r.random()
            if kind == "model":
                size = r.randint(1000, 60000) if x < 0.85 else r.randint(INLINE_MAX + 1, 200000)
            else:
                size = r.randint(20, 3000) if x < 0.7 else (r.randint(3000, INLINE_MAX) if x < 0.95
                                                             else r.randint(INLINE_MAX + 1, 160000))
        data = (b"shredd-model-check seed=%s item=%d\n" % (str(self.seed).encode(), idx)) + r.randbytes(size)
        c = Content(idx, data, kind)
        self.m.contents.append(c)
        self.m.by_digest[c.digest] = c
        return c

    def r_meta(self, r, kind, n_subj=(0, 2), n_ds=(0, 2), n_lab=(0, 1), datasets=True):
        subjects = set(r.sample(self.subject_pool, r.randint(*n_subj))) if kind == "photo" else set()
        ds = set(r.sample(self.dataset_pool, r.randint(*n_ds))) if datasets else set()
        labels = {k: self.label_value[k] for k in r.sample(self.label_keys, r.randint(*n_lab))}
        return subjects, ds, labels

    @staticmethod
    def meta_pb(kind, subjects=(), datasets=(), labels=None, name=""):
        return pb.ItemMetadata(kind=KINDS[kind], subject_ids=sorted(subjects), datasets=sorted(datasets),
                               labels=labels or {}, name=name)

    @staticmethod
    def edges_pb(edges, relation=""):
        out = []
        for k, t in sorted(edges):
            if k == "d":
                out.append(pb.LineageEdge(type=pb.LineageEdge.TRAINED_ON, dataset=t, relation=relation))
            elif k == "i":
                out.append(pb.LineageEdge(type=pb.LineageEdge.TRAINED_ON, digest=pb.Digest(hash=t),
                                          relation=relation))
            else:  # 'm': derived from a model (stored as ('i', digest) in the model)
                out.append(pb.LineageEdge(type=pb.LineageEdge.DERIVED_FROM, digest=pb.Digest(hash=t),
                                          relation=relation or "fine-tune"))
        return out

    # ---------------------------------------------------------------- uploads
    def put_stream(self, c, kind, subjects=(), datasets=(), labels=None, lineage=(), trailer=False,
                   ch=None, pause=None, pause_after=None, data=None, declared=None, size=None,
                   trailer_digest=None, name="", daemon_digest=False, header_hash=None):
        """Streamed Put. `pause`: an Event waited on (at most PAUSE_SECONDS) after the
        header and the first part of the data; `pause_after` is set then.
        `trailer`: the digest follows the data; `daemon_digest`: no digest at
        all, the daemon's is the address (PutHeader.daemon_digest);
        `header_hash` forces the header's hash (refused combinations)."""
        data = c.data if data is None else data
        size = len(data) if size is None else size
        hash_ = "" if (trailer or daemon_digest) else (declared or c.digest)
        h = pb.PutHeader(digest=pb.Digest(hash=hash_ if header_hash is None else header_hash, size_bytes=size),
                         metadata=self.meta_pb(kind, subjects, datasets, labels, name),
                         lineage=self.edges_pb(lineage), daemon_digest=daemon_digest)

        def gen():
            yield pb.PutRequest(header=h)
            step = max(1, min(len(data), 256 << 10) // 2) if len(data) else 1
            first = True
            for i in range(0, len(data), step):
                yield pb.PutRequest(data=data[i:i + step])
                if first and pause is not None:
                    first = False
                    if pause_after is not None:
                        pause_after.set()
                    pause.wait(PAUSE_SECONDS)
            if pause is not None and first:
                if pause_after is not None:
                    pause_after.set()
                pause.wait(PAUSE_SECONDS)
            if trailer:
                yield pb.PutRequest(trailer=pb.PutTrailer(digest=pb.Digest(
                    hash=trailer_digest or c.digest, size_bytes=size)))
        return call(self.store(ch).Put, gen(), timeout=RPC_TIMEOUT)

    @staticmethod
    def batch_entry(c, kind, subjects=(), datasets=(), labels=None, declared=None, data=None):
        data = c.data if data is None else data
        return pb.BatchPutRequest.Entry(
            header=pb.PutHeader(digest=pb.Digest(hash=declared or c.digest, size_bytes=len(data)),
                                metadata=ModelRun.meta_pb(kind, subjects, datasets, labels)),
            data=data)

    def apply_put_ok(self, c, kind, subjects, datasets, labels, lineage=()):
        """The model's effect of an acknowledged upload or tag: metadata merged
        (never dropped), lineage only onto models, datasets registered."""
        self.touched.add(c.digest)
        self.m.datasets |= set(datasets)
        if c.state == "shredded":
            return  # a resurrection: the checker reports it (the item must stay gone)
        c.subjects |= set(subjects)
        c.datasets |= set(datasets)
        c.labels.update(labels or {})
        if c.kind == "model" and kind == "model":
            for k, t in lineage:
                c.edges.add(("d", t) if k == "d" else ("i", t))

    def expect_put(self, c, kind, res, subjects, datasets, labels, lineage=(), what="put"):
        """Judges one upload's outcome against the model and applies it."""
        c.introduced = True
        if c.state == "shredded":
            if res.ok:
                self.fail("a", "%s of shredded content %s was acknowledged (%s)" % (what, c.short(), res))
            return
        if c.state == "absent":
            if not res.ok:
                self.fail("h", "%s of new content %s refused: %s" % (what, c.short(), res))
            c.state = "present"
            c.kind = kind
            self.apply_put_ok(c, kind, subjects, datasets, labels, lineage)
            return
        # present: merged, or refused with a reason
        if res.ok:
            if kind != c.kind and lineage:
                # lineage may only attach to models (issue 12, defect 3); the
                # checker also looks at GetLineage and the log.
                self.touched.add(c.digest)
            self.apply_put_ok(c, kind, subjects, datasets, labels, lineage if c.kind == kind else ())
        else:
            # Refusing is allowed for a conflicting kind, for lineage, and for
            # new metadata (issue 12: "merge ... or refuse; never answer
            # success and drop them"); the checks then find anything changed.
            self.stats.refused += 1
            new_meta = (set(subjects) - c.subjects or set(datasets) - c.datasets or
                        any(c.labels.get(k) != v for k, v in (labels or {}).items()))
            if kind == c.kind and not lineage and not new_meta:
                self.fail("h", "%s re-upload of present %s (nothing new) refused: %s" % (what, c.short(), res))

    # ------------------------------------------------------------------ steps
    def run(self):
        """Runs all steps; raises the first Violation (or, with keep_going,
        records each, resyncs the model from the daemon and goes on)."""
        self.d.start()
        try:
            self.guarded(lambda: self.check(full=True))
            for self.step in range(1, self.steps + 1):
                r = random.Random("%s/step/%d" % (self.seed, self.step))
                ops = self.OPS + (self.FULL_DISK_OPS if self.full_disk else [])
                names = [n for n, _ in ops]
                weights = [w for _, w in ops]
                self.op = r.choices(names, weights)[0]
                self.touched = set()
                self.stats.steps += 1
                self.stats.op_counts[self.op] = self.stats.op_counts.get(self.op, 0) + 1

                def one():
                    full = getattr(self, "op_" + self.op)(r)
                    self.check(full=bool(full) or self.step % self.full_every == 0, r=r)
                self.guarded(one)
            self.op = "final"
            self.guarded(lambda: self.check(full=True))
            return self.stats
        finally:
            self.close()

    def guarded(self, fn):
        try:
            fn()
        except Violation as v:
            if not self.keep_going:
                raise
            if (v.inv, v.msg) not in self._seen_violations:  # a persisting one is recorded once
                self._seen_violations.add((v.inv, v.msg))
                self.violations.append(v)
                self.log("  %s" % str(v).splitlines()[0])
            self.resync()

    def resync(self):
        """After a recorded violation (keep_going only): make the model agree
        with the daemon again, so that later steps find other bugs."""
        if self.d.proc is None or self.d.proc.poll() is not None or getattr(self, "_wedged", False):
            self._wedged = False
            self.d.kill()
            self.d.start(timeout=60)
        for _ in range(3):
            try:
                self.check_log()
                break
            except Violation:
                continue
        for c in self.m.contents:
            if not c.introduced:
                continue
            st = call(self.store().Stat, pb.StatRequest(digest=pb.Digest(hash=c.digest)))
            if st.ok:
                md = st.value.metadata
                if c.state == "shredded":
                    self.violations.append(Violation(self.seed, self.step, "a", "shredded %s (certificate %s) is "
                                                     "readable again (found when resyncing)" % (
                                                         c.short(), c.certs[-1] if c.certs else "?"), self.op))
                    c.resurrected = True
                if KIND_NAME.get(md.kind) != c.kind:
                    c.kind_reported = True
                c.state = "present"
                c.subjects, c.datasets, c.labels = set(md.subject_ids), set(md.datasets), dict(md.labels)
                lin = call(self.catalog().GetLineage, opb.LineageRequest(digest=pb.Digest(hash=c.digest)))
                if lin.ok and c.kind == "photo" and lin.value.comes_from:
                    c.lineage_reported = True
                if lin.ok:  # edges to what is gone show as "(shredded)": keep the model's own for those
                    gone = {(k, t) for k, t in c.edges if k == "i" and (self.m.by_digest.get(t) is None or
                                                                      self.m.by_digest[t].state != "present")}
                    if not any(x.digest.hash == "(shredded)" for x in lin.value.comes_from):
                        gone = set()  # (e.g. a resurrected model: its old lineage went with its shred)
                    c.edges = {("d", x.dataset) if x.dataset else ("i", x.digest.hash) for x in lin.value.comes_from
                               if x.digest.hash != "(shredded)"} | gone
            elif c.state in ("present", "maybe"):
                c.state = "shredded" if "shredded" in st.details else "absent"
        ds = call(self.catalog().ListDatasets, opb.ListDatasetsRequest())
        if ds.ok:
            self.m.datasets = {d.name for d in ds.value.datasets}
        holds = call(self.orders().ListHolds, opb.ListHoldsRequest())
        if holds.ok:
            self.m.holds = {h.id: (("i", h.digest.hash) if h.digest.hash else ("d", h.dataset))
                            for h in holds.value.holds}
        for oid, o in self.m.orders.items():
            g = call(self.orders().GetOrder, opb.GetOrderRequest(order_id=oid))
            if g.ok:
                o["state"], o["cert"] = g.value.state, (g.value.certificate_id or None)

    def close(self):
        try:
            self.d.kill()
        except Exception:
            pass
        if self.mount:
            subprocess.run(["umount", "-l", self.mount], capture_output=True)
            self.mount = None
        if self.own_root and not os.environ.get("SHREDD_KEEP_TMP"):
            shutil.rmtree(self.root, ignore_errors=True)


def run_seed(seed, steps=120, log=None, extra_args=()):
    """Runs one seed; returns its Stats or raises Violation."""
    return ModelRun(seed, steps=steps, log=log, extra_args=extra_args).run()
