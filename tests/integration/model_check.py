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
      after which it serves nothing, across restarts; other orders have none.

A violation raises `Violation` naming the seed, the step and the invariant;
`tests/soak/model_soak.py --seed N` replays the same sequence of operations
(thread interleavings may differ; races are built to be hit on most runs).
"""
import base64
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time

from harness import Daemon, grpc, pb, pb_grpc, sha256_digest
from shredd.v1 import log_pb2 as lpb
from shredd.v1 import log_pb2_grpc as lpb_grpc
from shredd.v1 import orders_pb2 as opb
from shredd.v1 import orders_pb2_grpc as opb_grpc

INVARIANTS = {
    "a": "shredded content is never readable or listable, and its re-upload is refused",
    "b": "every destruction has exactly one certificate and every certificate a destruction",
    "c": "held items are never destroyed by any path",
    "d": "a refused call changes nothing (log included)",
    "e": "order status agrees with its certificate",
    "f": "nothing public holds a photo digest, personal metadata or a value computable from content alone",
    "g": "nothing acknowledged is lost, and the daemon survives the faults it must (kill -9, restart, full disk)",
    "h": "the daemon's state agrees with the reference model",
}

KINDS = {"photo": pb.KIND_PHOTO, "model": pb.KIND_MODEL}
KIND_NAME = {pb.KIND_PHOTO: "photo", pb.KIND_MODEL: "model"}
INLINE_MAX = 64 * 1024
RECEIVED = "2026-12-01"
RPC_TIMEOUT = 60
FULL_DISK_MB = 24
RESUME_SECONDS = 20  # writes must resume by themselves this soon after space comes back
PAUSE_SECONDS = 3  # a slow racing upload waits this long (at most) for the shred to finish




def run_concurrently(threads, channels, timeout):
    """Starts the client threads of a concurrent step, waits for them (each
    at most `timeout` s) and closes their channels."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    for chn in channels:
        chn.close()

def spec_key(spec):
    """An order spec as the daemon compares re-submissions: selector lists
    are sets (sorted, duplicates dropped)."""
    return (spec.id, spec.basis, spec.reference, spec.requester, spec.due,
            tuple(sorted({d.hash for d in spec.digests})), tuple(sorted(set(spec.subject_ids))),
            tuple(sorted(set(spec.datasets))), tuple(sorted(spec.labels.items())), spec.keep_subject_map)

class Violation(AssertionError):
    def __init__(self, seed, step, inv, msg, op=None):
        msg = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: "\\x%02x" % ord(m.group(0)), msg).replace("\n", "\\n")
        self.seed, self.step, self.inv, self.msg, self.op = seed, step, inv, msg, op
        super().__init__("seed %s step %s%s: invariant (%s) %s violated: %s\n  replay: "
                         "python3 tests/soak/model_soak.py --seed %s" %
                         (seed, step, " (%s)" % op if op else "", inv, INVARIANTS.get(inv, ""), msg, seed))


class R:
    """The outcome of one RPC: ok + value, or a gRPC code + details."""
    __slots__ = ("ok", "value", "code", "details")

    def __init__(self, ok, value=None, code=None, details=""):
        self.ok, self.value, self.code, self.details = ok, value, code, details

    def __repr__(self):
        return "OK" if self.ok else "%s(%s)" % (self.code.name if self.code else "?", self.details[:200])


def call(fn, *args, **kw):
    try:
        return R(True, fn(*args, **kw))
    except grpc.RpcError as e:
        return R(False, code=e.code(), details=e.details() or "")


class Content:
    """One distinct content (bytes) and what the model says about it."""

    def __init__(self, idx, data, kind):
        self.idx, self.data, self.kind = idx, data, kind  # kind: fixed at first store
        self.digest = sha256_digest(data)
        self.hex = self.digest[7:]
        self.size = len(data)
        self.state = "absent"  # absent | present | shredded | maybe
        self.subjects, self.datasets, self.labels = set(), set(), {}
        self.edges = set()  # ('d', dataset) | ('i', digest): what this model comes from
        self.certs = []  # certificates that destroyed it
        self.lifts = 0
        self.introduced = False  # sent to the daemon at least once
        self.kind_reported = False  # keep_going: a kind change was reported once
        self.resurrected = False  # keep_going: reported readable after its certificate
        self.lineage_reported = False  # keep_going: lineage on this photo reported once

    def short(self):
        return "%s#%d(%s..)" % (self.kind, self.idx, self.hex[:12])


class Model:
    def __init__(self):
        self.contents = []
        self.by_digest = {}
        self.datasets = set()  # registered dataset names
        self.holds = {}  # id -> ('i', digest) | ('d', name)
        self.orders = {}  # id -> dict(spec=OrderSpec, state, cert)
        self.certs = {}  # id -> dict(envelope, request, order, items:set, kinds:dict, payload)
        self.requests = {}  # request id -> certificate id
        self.auto_sets = {}  # frozenset(digests) -> certificate id (automatic request ids)

    def present(self, kind=None):
        return [c for c in self.contents if c.state == "present" and (kind is None or c.kind == kind)]

    def held_by(self, c):
        for hid, t in sorted(self.holds.items()):
            if t == ("i", c.digest) or (t[0] == "d" and t[1] in c.datasets):
                return hid
        return None

    def closure(self, digests=(), subjects=(), datasets=(), labels=None):
        """What an order must destroy and retain (docs/ORDERS.md: selected items,
        every model trained on a selected item, on a dataset holding one or on a
        selected dataset, every model derived from those, transitively; held
        items retained, the cascade still passes through them)."""
        labels = labels or {}
        present = self.present()
        chosen, refs, seen = {}, [], set()

        def push(ref):
            if ref not in seen:
                seen.add(ref)
                refs.append(ref)

        def choose(c, role):
            chosen[c.digest] = role
            push(("i", c.digest))
            for ds in c.datasets:
                push(("d", ds))

        for c in present:
            if (c.digest in digests or c.subjects & set(subjects) or c.datasets & set(datasets)
                    or any(c.labels.get(k) == v for k, v in labels.items())):
                choose(c, "selected")
        for ds in datasets:
            if ds in self.datasets:
                push(("d", ds))
        while refs:
            ref = refs.pop()
            for m in present:
                if ref in m.edges and m.digest not in chosen:  # (photos have none, unless a bug attached some)
                    choose(m, "derived")
        destroyed = {d for d in chosen if self.held_by(self.by_digest[d]) is None}
        retained = set(chosen) - destroyed
        return destroyed, retained

    def reaches(self, model_digest, target_digest):
        """True if model_digest derives (transitively) from target_digest."""
        todo, seen = [model_digest], set()
        while todo:
            d = todo.pop()
            if d == target_digest:
                return True
            if d in seen:
                continue
            seen.add(d)
            c = self.by_digest.get(d)
            if c:
                todo.extend(t for k, t in c.edges if k == "i")
        return False


class Stats:
    def __init__(self):
        self.steps = self.ops = self.faults = self.kills = self.restarts = self.races = self.full_disks = 0
        self.refused = self.certificates = self.checks = 0
        self.op_counts = {}

    def as_dict(self):
        return dict(steps=self.steps, ops=self.ops, faults=self.faults, kills=self.kills, full_disks=self.full_disks,
                    restarts=self.restarts, races=self.races, refused=self.refused,
                    certificates=self.certificates, checks=self.checks, op_counts=dict(self.op_counts))


def _b64(raw):
    return base64.b64encode(raw).decode()


def _b64u(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class ModelRun:
    """One seed: a fresh daemon, `steps` random steps, a check after each."""

    OPS = [  # (name, weight)
        ("put_new", 14), ("put_trailer", 5), ("put_daemon_digest", 4), ("batch_new", 8), ("reupload", 8), ("reupload_shredded", 4),
        ("tag", 6), ("register_dataset", 3), ("model_register", 8), ("add_lineage", 3),
        ("photo_as_model", 3), ("hold_add", 5), ("hold_remove", 3), ("shred", 7), ("shred_repeat", 2),
        ("order", 7), ("order_resubmit", 3), ("subject_map", 3), ("invalid", 10), ("race_reupload_shred", 5),
        ("race_reuploads", 3), ("race_parallel_puts", 2), ("lift", 1), ("restart", 2), ("kill9", 3),
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

    # -- uploads
    def op_put_new(self, r, trailer=False, daemon_digest=False):
        kind = "photo" if r.random() < 0.8 else "model"
        c = self.new_content(kind)
        subj, ds, lab = self.r_meta(r, kind)
        ds = {x for x in ds if kind == "photo"}
        res = self.put_stream(c, kind, subj, ds, lab, trailer=trailer, daemon_digest=daemon_digest)
        self.stats.ops += 1
        what = "trailer put" if trailer else "daemon-digest put" if daemon_digest else "put"
        self.expect_put(c, kind, res, subj, ds, lab, what=what)
        if res.ok and res.value.already_present:
            self.fail("h", "a new content %s was answered already_present" % c.short())
        if res.ok and res.value.digest.hash != c.digest:
            self.fail("h", "%s of %s answered digest %s" % (what, c.short(), res.value.digest.hash))

    @staticmethod
    def digest_mode(r):
        """Where a model's digest is declared: the header, a trailer, or nowhere (the daemon's)."""
        x = r.random()
        return {"trailer": x < 0.3, "daemon_digest": 0.3 <= x < 0.5}

    def op_put_trailer(self, r):
        return self.op_put_new(r, trailer=True)

    def op_put_daemon_digest(self, r):
        return self.op_put_new(r, daemon_digest=True)

    def op_batch_new(self, r):
        n = r.randint(1, 6)
        entries, plan = [], []
        for _ in range(n):
            x = r.random()
            if x < 0.6 or not self.live("photo"):
                c = self.new_content("photo")
            elif x < 0.85:
                c = r.choice(self.live("photo"))
            else:
                shredded = [c for c in self.m.contents if c.state == "shredded" and c.kind == "photo"]
                c = r.choice(shredded) if shredded else self.new_content("photo")
            if any(p[0] is c for p in plan):
                continue
            subj, ds, lab = self.r_meta(r, "photo")
            entries.append(self.batch_entry(c, "photo", subj, ds, lab))
            plan.append((c, subj, ds, lab))
        res = call(self.store().BatchPut, pb.BatchPutRequest(entries=entries), timeout=RPC_TIMEOUT)
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "BatchPut failed as a whole: %s" % res)
        thunks = []
        for (c, subj, ds, lab), e in zip(plan, res.value.results):
            er = R(True, e) if e.code == 0 else R(False, code=grpc.StatusCode.UNKNOWN, details="%d %s" % (e.code, e.message))
            thunks.append(lambda c=c, er=er, subj=subj, ds=ds, lab=lab: self.expect_put(
                c, "photo", er, subj, ds, lab, what="batch put"))
        self.each(thunks)

    def op_reupload(self, r):
        present = self.live()
        if not present:
            return self.op_put_new(r)
        c = r.choice(present)
        kind = c.kind if r.random() < 0.8 else ("model" if c.kind == "photo" else "photo")
        subj, ds, lab = self.r_meta(r, "photo", n_subj=(1, 2), n_ds=(0, 1))
        path = r.choice(["stream", "trailer", "daemon", "batch"])
        if path == "batch":
            e = call(self.store().BatchPut, pb.BatchPutRequest(entries=[self.batch_entry(c, kind, subj, ds, lab)]),
                     timeout=RPC_TIMEOUT)
            if not e.ok:
                self.fail("h", "BatchPut failed as a whole: %s" % e)
            x = e.value.results[0]
            res = R(True, x) if x.code == 0 else R(False, code=grpc.StatusCode.UNKNOWN, details=x.message)
        else:
            res = self.put_stream(c, kind, subj, ds, lab, trailer=(path == "trailer"), daemon_digest=(path == "daemon"))
        self.stats.ops += 1
        if res.ok and not res.value.already_present:
            self.fail("h", "re-upload of present %s answered already_present=false" % c.short())
        self.expect_put(c, kind, res, subj, ds, lab, what="%s re-upload (as %s)" % (path, kind))

    def op_reupload_shredded(self, r):
        shredded = [c for c in self.m.contents if c.state == "shredded"]
        if not shredded:
            return self.op_shred(r)
        c = r.choice(shredded)
        new_ds = r.choice(self.dataset_pool)
        before = self.snapshot()
        path = r.choice(["stream", "trailer", "daemon", "batch", "tag", "dataset", "lineage"])
        if path == "batch":
            e = call(self.store().BatchPut, pb.BatchPutRequest(
                entries=[self.batch_entry(c, c.kind, (r.choice(self.subject_pool),), (new_ds,))]), timeout=RPC_TIMEOUT)
            res = e if not e.ok else (R(True) if e.value.results[0].code == 0 else R(False, details=e.value.results[0].message))
        elif path == "tag":
            res = call(self.catalog().UpdateItem, opb.UpdateItemRequest(
                digest=pb.Digest(hash=c.digest), add_subject_ids=[r.choice(self.subject_pool)], add_datasets=[new_ds]))
        elif path == "dataset":
            res = call(self.catalog().RegisterDataset, opb.RegisterDatasetRequest(
                name=new_ds, digests=[pb.Digest(hash=c.digest)]))
        elif path == "lineage":
            m = self.new_content("model")
            res = self.put_stream(m, "model", lineage={("i", c.digest)} if c.kind == "photo" else {("m", c.digest)})
            if res.ok:
                self.fail("a", "a model with lineage to shredded %s was stored" % c.short())
            m.introduced = True
        else:
            res = self.put_stream(c, c.kind, (r.choice(self.subject_pool),), (new_ds,), trailer=(path == "trailer"),
                                  daemon_digest=(path == "daemon"))
        self.stats.ops += 1
        if res.ok:
            self.fail("a", "%s of shredded content %s was accepted" % (path, c.short()))
        self.stats.refused += 1
        self.expect_unchanged(before, "%s of shredded %s" % (path, c.short()))
        self.touched.add(c.digest)

    def op_tag(self, r):
        present = self.live()
        if not present:
            return self.op_put_new(r)
        c = r.choice(present)
        subj, ds, lab = self.r_meta(r, "photo", n_subj=(0, 2), n_ds=(0, 2), n_lab=(0, 2))
        if not (subj or ds or lab):
            subj = {r.choice(self.subject_pool)}
        res = call(self.catalog().UpdateItem, opb.UpdateItemRequest(
            digest=pb.Digest(hash=c.digest), add_subject_ids=sorted(subj), add_datasets=sorted(ds), add_labels=lab))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "tag of present %s refused: %s" % (c.short(), res))
        self.apply_put_ok(c, c.kind, subj, ds, lab)

    def op_register_dataset(self, r):
        present = self.live()
        if not present:
            return self.op_put_new(r)
        name = r.choice(self.dataset_pool)
        members = r.sample(present, min(len(present), r.randint(1, 4)))
        res = call(self.catalog().RegisterDataset, opb.RegisterDatasetRequest(
            name=name, digests=[pb.Digest(hash=c.digest) for c in members]))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "RegisterDataset %s of present items refused: %s" % (name, res))
        self.m.datasets.add(name)
        for c in members:
            c.datasets.add(name)
            self.touched.add(c.digest)

    def live(self, kind=None):
        """Present items the generator may pick. Without keep_going this is
        every present item; with it, items whose violation was reported
        (resurrected, kind changed) are left alone."""
        return [c for c in self.m.present(kind) if not (c.resurrected or c.kind_reported)]

    def usable_datasets(self):
        """Registered datasets the generator may name (a buggy daemon may have
        registered refused names; the model mirrors them, never uses them)."""
        return sorted(d for d in self.m.datasets if d in self.dataset_pool)

    def r_lineage(self, r, for_model=None):
        """Valid lineage edges from the model: datasets, present photos, present models."""
        edges = set()
        for _ in range(r.randint(1, 3)):
            x = r.random()
            if x < 0.45 and self.usable_datasets():
                edges.add(("d", r.choice(self.usable_datasets())))
            elif x < 0.75 and self.live("photo"):
                edges.add(("i", r.choice(self.live("photo")).digest))
            else:
                models = [m for m in self.live("model") if for_model is None or
                          (m.digest != for_model.digest and not self.m.reaches(m.digest, for_model.digest))]
                if models:
                    edges.add(("m", r.choice(models).digest))
        return edges

    def op_model_register(self, r):
        m = self.new_content("model")
        edges = self.r_lineage(r)
        _, ds, lab = self.r_meta(r, "model", n_ds=(0, 1))
        ds = ds if r.random() < 0.2 else set()
        res = self.put_stream(m, "model", (), ds, lab, lineage=edges, **self.digest_mode(r))
        self.stats.ops += 1
        self.expect_put(m, "model", res, (), ds, lab, lineage=edges, what="model register")

    def op_add_lineage(self, r):
        models = self.live("model")
        if not models:
            return self.op_model_register(r)
        m = r.choice(models)
        edges = self.r_lineage(r, for_model=m)
        if not edges:
            return
        cyc = [t for k, t in edges if k == "m" and self.m.reaches(t, m.digest)]
        res = call(self.catalog().AddLineage, opb.AddLineageRequest(model=pb.Digest(hash=m.digest),
                                                                    edges=self.edges_pb(edges)))
        self.stats.ops += 1
        if cyc:
            if res.ok:
                self.fail("h", "AddLineage accepted a cycle on %s" % m.short())
            return
        if not res.ok:
            self.fail("h", "AddLineage to present model %s refused: %s" % (m.short(), res))
        for k, t in edges:
            m.edges.add(("d", t) if k == "d" else ("i", t))
        self.touched.add(m.digest)

    def op_photo_as_model(self, r):
        """Defect 3: a stored photo's bytes uploaded as a model with lineage."""
        photos = self.live("photo")
        if not photos or not self.usable_datasets():
            return self.op_put_new(r)
        c = r.choice(photos)
        edges = {("d", r.choice(self.usable_datasets()))}
        res = self.put_stream(c, "model", lineage=edges, **self.digest_mode(r))
        self.stats.ops += 1
        self.expect_put(c, "model", res, (), (), {}, lineage=edges, what="photo re-uploaded as a model")
        self.touched.add(c.digest)
        return True

    # -- holds
    def op_hold_add(self, r):
        hid = "hold-%s-%d" % (self.seed, self.next_hold) if r.random() < 0.7 else ""
        self.next_hold += 1
        if r.random() < 0.65 and self.live():
            c = r.choice(self.live())
            target = ("i", c.digest)
            hold = opb.Hold(id=hid, digest=pb.Digest(hash=c.digest), reason="litigation %d" % self.step)
        elif self.usable_datasets():
            name = r.choice(self.usable_datasets())
            target = ("d", name)
            hold = opb.Hold(id=hid, dataset=name, reason="preservation %d" % self.step)
        else:
            return self.op_put_new(r)
        res = call(self.orders().AddHold, opb.AddHoldRequest(hold=hold))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "AddHold on %s refused: %s" % (target, res))
        if hid and res.value.id != hid:
            self.fail("h", "AddHold returned id %r, asked for %r" % (res.value.id, hid))
        self.m.holds[res.value.id] = target

    def op_hold_remove(self, r):
        if not self.m.holds:
            return self.op_hold_add(r)
        hid = r.choice(sorted(self.m.holds))
        res = call(self.orders().RemoveHold, opb.RemoveHoldRequest(id=hid))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "RemoveHold %s refused: %s" % (hid, res))
        del self.m.holds[hid]

    # -- shreds
    def learn_certificate(self, cid, envelope=None, manifest=None, expect_request=None):
        """Records a certificate and applies its destruction to the model;
        checks (b), (c), (f) on it. Returns the set of digests it covers."""
        if cid in self.m.certs:
            cert = self.m.certs[cid]
            if envelope is not None and envelope != cert["envelope"]:
                self.fail("b", "certificate %s served with different bytes" % cid)
            return cert["items"]
        if envelope is None or manifest is None or manifest == b"":
            res = call(self.shredder().GetCertificate, pb.GetCertificateRequest(certificate_id=cid))
            if not res.ok:
                self.fail("b", "certificate %s named but not served: %s" % (cid, res))
            envelope = res.value.certificate
            manifest = self.fetch_manifest(cid, res.value)
            self.scan_public(res.value.tlog_proof, "tlog proof of certificate %s" % cid)
        env = json.loads(envelope)
        payload = json.loads(base64.b64decode(env["payload"]))
        pred = payload["predicate"]
        man = json.loads(manifest)
        items = {}
        problems = []  # reported after the certificate is recorded (so a kept-going run stays in sync)
        for it in man["items"]:
            if it["digest"] in items:
                problems.append(("b", "certificate %s lists %s twice" % (cid, it["digest"])))
            items[it["digest"]] = it["kind"]
        req = pred["request"]["id"]
        cert = dict(envelope=envelope, request=req, order=(pred.get("order") or {}).get("id"), items=set(items),
                    payload=payload, pred=pred)
        if req in self.m.requests and self.m.requests[req] != cid:
            problems.append(("b", "request %s has two certificates: %s and %s" % (req, self.m.requests[req], cid)))
        self.m.certs[cid] = cert
        self.m.requests[req] = cid
        if req.startswith("auto:"):
            self.m.auto_sets[frozenset(items)] = cid
        self.stats.certificates += 1
        unknown = [d for d in items if d not in self.m.by_digest]
        if unknown:
            problems.append(("b", "certificate %s destroys %s, which the model never stored" % (cid, unknown)))
        for d in items:
            c = self.m.by_digest.get(d)
            if c is None:
                continue
            self.touched.add(d)
            if c.state == "shredded" and c.certs and c.certs[-1] != cid and len(c.certs) > c.lifts:
                problems.append(("b", "%s destroyed by certificate %s and again by %s" % (c.short(), c.certs[-1], cid)))
            hid = self.m.held_by(c)
            if hid is not None:
                problems.append(("c", "%s under hold %s destroyed by certificate %s (request %s)" % (
                    c.short(), hid, cid, req)))
            c.state = "shredded"
            if cid not in c.certs:
                c.certs.append(cid)
        for inv, msg in problems:
            self.fail(inv, msg)
        if pred["certificateId"] != cid or man.get("certificateId") != cid:
            self.fail("b", "certificate %s names itself %s (manifest %s)" % (cid, pred["certificateId"],
                                                                          man.get("certificateId")))
        if expect_request is not None and req != expect_request:
            self.fail("e", "certificate %s has request id %r, expected %r" % (cid, req, expect_request))
        counts = pred["items"]
        if counts["count"] != len(items):
            self.fail("b", "certificate %s counts %d items, its manifest lists %d" % (cid, counts["count"], len(items)))
        want_kinds = {"photo": 0, "model": 0}
        for d in items:
            c = self.m.by_digest[d]
            want_kinds[c.kind] += 1
            if items[d] != c.kind:
                self.fail("h", "certificate %s lists %s as a %s; it was first stored as a %s" %
                          (cid, c.short(), items[d], c.kind))
        for dm in pred.get("derivedModels", []):
            c = self.m.by_digest.get(dm.get("digest"))
            if c is not None and c.kind != "model":
                self.fail("f", "certificate %s names photo %s under derivedModels" % (cid, c.short()))
        if counts["byKind"] != want_kinds:
            self.fail("b", "certificate %s byKind %s, but it destroyed %s" % (cid, counts["byKind"], want_kinds))
        self.scan_public(envelope, "certificate %s envelope" % cid)
        self.scan_public(json.dumps(payload).encode(), "certificate %s payload" % cid)
        self.scan_public(cid.encode() + b" " + req.encode(), "certificate/request id of %s" % cid)
        self.check_auto_request(cid)
        return cert["items"]

    def fetch_manifest(self, cid, reply):
        if reply.manifest and not reply.manifest_omitted:
            return reply.manifest
        res = call(lambda: b"".join(x.data for x in self.shredder().GetManifest(
            pb.GetCertificateRequest(certificate_id=cid), timeout=RPC_TIMEOUT)))
        if not res.ok:
            self.fail("b", "manifest of certificate %s not served: %s" % (cid, res))
        return res.value

    def shred_expectation(self, digests, request_id, reason=""):
        """'same:<cid>' | 'conflict:<cid>' | 'reserved' | 'refuse' | 'ok' | 'refuse-held'."""
        if request_id and request_id in self.m.requests:
            # A request id stands for one request: the same digests and
            # reason get its certificate, anything else ALREADY_EXISTS.
            cid = self.m.requests[request_id]
            cert = self.m.certs[cid]
            same = (frozenset(digests) == frozenset(cert["items"]) and
                    reason == cert["pred"]["request"].get("reason", ""))
            return ("same:" if same else "conflict:") + cid
        if request_id.startswith(("auto:", "order:")):
            return "reserved"  # the daemon's own ids: INVALID_ARGUMENT
        cs = [self.m.by_digest.get(d) for d in digests]
        if (not request_id and frozenset(digests) in self.m.auto_sets and
                all(c is not None and c.state in ("absent", "shredded") for c in cs)):
            # The same auto request again: its id (digests + custody) is the
            # same unless content was stored anew since, which a lift without
            # a re-upload does not do; the daemon may answer the certificate.
            return "same-or-refuse:" + self.m.auto_sets[frozenset(digests)]
        if any(c is None or c.state == "absent" for c in cs):
            return "refuse"
        if any(c.state == "shredded" or c.resurrected for c in cs):
            if not request_id and frozenset(digests) in self.m.auto_sets:
                return "same-or-refuse:" + self.m.auto_sets[frozenset(digests)]
            return "refuse"
        if any(self.m.held_by(c) for c in cs):
            return "refuse-held"
        return "ok"

    def do_shred(self, digests, request_id="", reason="", ch=None, judge=True):
        exp = self.shred_expectation(digests, request_id, reason)
        before = self.snapshot() if exp != "ok" and judge else None
        res = call(self.shredder(ch).Shred, pb.ShredRequest(digests=[pb.Digest(hash=d) for d in digests],
                                                            request_id=request_id, reason=reason),
                   timeout=RPC_TIMEOUT)
        self.stats.ops += 1
        if not judge:
            return res, exp
        self.judge_shred(digests, request_id, res, exp, before)
        return res, exp

    def judge_shred(self, digests, request_id, res, exp, before):
        if res.ok:
            cid = res.value.certificate_id
            if exp.startswith("same") and cid == exp.split(":", 1)[1]:
                self.learn_certificate(cid, res.value.certificate)
                return
            if exp.startswith("conflict:") or exp == "reserved":
                self.fail("h", "shred under request id %s (%s) answered certificate %s; expected %s" % (
                    request_id, exp, cid, "ALREADY_EXISTS" if exp != "reserved" else "INVALID_ARGUMENT"))
                return
            new = cid not in self.m.certs
            items = self.learn_certificate(cid, res.value.certificate, res.value.manifest)
            if not new:
                self.fail("h", "shred of %s answered old certificate %s" % (digests, cid))
            if exp == "refuse-held":  # (learn_certificate reported a held item it destroyed)
                self.fail("h", "shred naming a held item answered OK with certificate %s; expected "
                          "FAILED_PRECONDITION naming the hold" % cid)
            if exp != "ok":
                self.fail("h", "shred that had to be refused (%s) was certified: %s" % (exp, cid))
            if items != set(digests):
                self.fail("b", "shred of %d digests certified %d items" % (len(digests), len(items)))
            if not request_id:
                self.m.auto_sets[frozenset(digests)] = cid
            self.scan_public(res.value.tlog_proof, "tlog proof of %s" % cid)
        else:
            self.stats.refused += 1
            if exp == "ok":
                self.fail("h", "shred of present unheld %s refused: %s" % (digests, res))
            if exp.startswith("same:"):
                self.fail("h", "repeated shred request %s refused: %s" % (request_id, res))
            if exp.startswith("conflict:") and res.code != grpc.StatusCode.ALREADY_EXISTS:
                self.fail("h", "request id %s reused for another shred refused with %s, expected ALREADY_EXISTS" % (
                    request_id, res))
            if exp == "reserved" and res.code != grpc.StatusCode.INVALID_ARGUMENT:
                self.fail("h", "shred under the daemon's own id %s refused with %s, expected INVALID_ARGUMENT" % (
                    request_id, res))
            if exp == "refuse-held" and res.code != grpc.StatusCode.FAILED_PRECONDITION:
                self.fail("c", "shred of a held item refused with %s, expected FAILED_PRECONDITION" % res)
            if before is not None:
                self.expect_unchanged(before, "refused shred of %d digests" % len(digests))

    def op_shred(self, r):
        present = self.live()
        if not present:
            return self.op_put_new(r)
        targets = r.sample(present, min(len(present), r.choice([1, 1, 1, 2, 3])))
        rid = "" if r.random() < 0.5 else "req-%s-%d" % (self.seed, self.next_req)
        self.next_req += 1
        self.do_shred([c.digest for c in targets], rid, reason="erasure %d" % self.step)
        return True

    def op_shred_repeat(self, r):
        """The same request again: explicit id (maybe with other digests), or the same auto set."""
        if not self.m.requests:
            return self.op_shred(r)
        req = r.choice(sorted(k for k in self.m.requests if not k.startswith("order:")) or [""])
        if not req:
            return self.op_shred(r)
        cert = self.m.certs[self.m.requests[req]]
        digests = sorted(cert["items"])
        reason = cert["pred"]["request"].get("reason", "")
        if r.random() < 0.3 and self.live():
            digests = [r.choice(self.live()).digest]
        if req.startswith("auto:"):
            self.do_shred(digests, "", reason=reason)
            return True
        if r.random() < 0.2:
            reason = "another reason %d" % self.step
        if r.random() < 0.1:  # a client borrowing the daemon's own ids
            req = r.choice(["order:", "auto:"]) + req
        self.do_shred(digests, req, reason=reason)
        return True

    # -- orders
    def r_spec(self, r):
        spec = opb.OrderSpec(id="order-%s-%d" % (self.seed, self.next_order), basis=r.choice(
            [opb.FTC_ORDER, opb.GDPR_ART17, opb.CCPA, opb.CONTRACT, opb.OTHER]),
            reference="ref %d" % self.step, requester=self.requester, received=RECEIVED)
        self.next_order += 1
        kinds = r.sample(["digest", "subject", "dataset", "label"], r.choice([1, 1, 1, 2]))
        for k in kinds:
            if k == "digest":
                pool = self.live() or self.m.contents
                if pool:
                    spec.digests.extend(pb.Digest(hash=c.digest) for c in r.sample(pool, min(len(pool), r.randint(1, 2))))
            elif k == "subject":
                spec.subject_ids.extend(r.sample(self.subject_pool, r.randint(1, 2)))
            elif k == "dataset":
                spec.datasets.extend(r.sample(self.dataset_pool, r.randint(1, 2)))
            else:
                key = r.choice(self.label_keys)
                spec.labels[key] = self.label_value[key]
        if not (spec.digests or spec.subject_ids or spec.datasets or spec.labels):
            spec.subject_ids.append(r.choice(self.subject_pool))
        spec.keep_subject_map = r.random() < 0.4
        return spec

    def expected_of(self, spec):
        return self.m.closure(digests={d.hash for d in spec.digests}, subjects=set(spec.subject_ids),
                              datasets=set(spec.datasets), labels=dict(spec.labels))

    def submit_order(self, spec, ch=None):
        destroyed, retained = self.expected_of(spec)
        res = call(self.orders(ch).SubmitOrder, spec, timeout=RPC_TIMEOUT)
        self.stats.ops += 1
        if res.ok:
            self.m.orders[spec.id] = dict(spec=spec, state=None, cert=None, expect=(destroyed, retained),
                                          subject_map=self.subject_map_of(spec, destroyed))
        return res

    def finish_order(self, oid, timeout=120):
        o = self.m.orders[oid]
        res = call(self.orders().GetOrder, opb.GetOrderRequest(order_id=oid, wait=True), timeout=timeout)
        if not res.ok:
            self.fail("e", "GetOrder %s: %s" % (oid, res))
        st = res.value
        destroyed, retained = o["expect"]
        if st.state not in (opb.ORDER_DONE, opb.ORDER_EMPTY):
            self.fail("e", "order %s ended %s: %s" % (oid, opb.OrderState.Name(st.state), st.message))
        o["state"] = st.state
        if st.state == opb.ORDER_EMPTY:
            if st.certificate_id:
                self.fail("e", "EMPTY order %s names certificate %s" % (oid, st.certificate_id))
            if destroyed:
                self.fail("h", "order %s ended EMPTY; the model expected %d items destroyed: %s" %
                          (oid, len(destroyed), sorted(self.m.by_digest[d].short() for d in destroyed)))
            return
        if not st.certificate_id:
            self.fail("e", "DONE order %s has no certificate" % oid)
        o["cert"] = st.certificate_id
        items = self.learn_certificate(st.certificate_id, expect_request="order:" + oid)
        cert = self.m.certs[st.certificate_id]
        if cert["request"] != "order:" + oid:
            self.fail("e", "order %s's certificate %s has request id %r" % (oid, st.certificate_id, cert["request"]))
        if cert["order"] != oid:
            self.fail("e", "order %s's certificate %s names order %r" % (oid, st.certificate_id, cert["order"]))
        if st.items_shredded != len(items):
            self.fail("e", "order %s reports %d items shredded, its certificate %d" % (oid, st.items_shredded, len(items)))
        if items != destroyed:
            missing = sorted(self.m.by_digest[d].short() for d in destroyed - items)
            extra = sorted(self.m.by_digest[d].short() for d in items - destroyed)
            self.fail("h", "order %s destroyed the wrong closure: missing %s, extra %s" % (oid, missing, extra))
        kept = cert["pred"].get("retainedUnderHold", [])
        if len(kept) != len(retained):
            self.fail("h", "order %s's certificate retains %d items (%s), the model %d (%s)" % (
                oid, len(kept), [(k.get("kind"), k.get("holdId"), k.get("digest", "")[:19]) for k in kept],
                len(retained), [(self.m.by_digest[d].short(), self.m.held_by(self.m.by_digest[d])) for d in retained]))

    def subject_map_of(self, spec, destroyed):
        """What GetSubjectMap must serve for the order: {subject: {digests}}."""
        if not spec.keep_subject_map:
            return {}
        out = {}
        for d in destroyed:
            for s in self.m.by_digest[d].subjects:
                out.setdefault(s, set()).add(d)
        return out

    def op_subject_map(self, r):
        """GetSubjectMap of a finished order against the model, then maybe release it."""
        done = sorted(oid for oid, o in self.m.orders.items() if o["state"] == opb.ORDER_DONE)
        if not done:
            return self.op_order(r)
        oid = r.choice(done)
        o = self.m.orders[oid]
        expect = o["subject_map"]
        req = opb.SubjectMapRequest(order_id=oid)
        res = call(lambda: {s.subject_id: set(d.hash for d in s.digests)
                            for chunk in self.orders().GetSubjectMap(req, timeout=RPC_TIMEOUT) for s in chunk.subjects})
        self.stats.ops += 1
        if expect:
            if not res.ok:
                self.fail("i", "GetSubjectMap %s: %s; the model expects %d subjects" % (oid, res, len(expect)))
            if res.value != expect:
                self.fail("i", "order %s's subject map differs from the model: extra subjects %d, missing %d, "
                          "differing %d" % (oid, len(set(res.value) - set(expect)), len(set(expect) - set(res.value)),
                                            sum(1 for k in expect if k in res.value and res.value[k] != expect[k])))
        elif res.ok or res.code != grpc.StatusCode.NOT_FOUND:
            self.fail("i", "order %s (keep=%s, released=%s) should have no subject map: %s" % (
                oid, o["spec"].keep_subject_map, o.get("released", False), res))
        if r.random() < 0.5:
            before = self.snapshot()
            rel = call(self.orders().ReleaseSubjectMap, req, timeout=RPC_TIMEOUT)
            self.stats.ops += 1
            # Released already: the same count again (a retry after an
            # error must not read as a failure); never kept: NOT_FOUND.
            held = len(expect) if expect else o.get("released_subjects")
            if held is not None and (not rel.ok or rel.value.subjects != held):
                self.fail("i", "ReleaseSubjectMap %s: %s; the model expects %d subjects" % (oid, rel, held))
            if held is None and (rel.ok or rel.code != grpc.StatusCode.NOT_FOUND):
                self.fail("i", "ReleaseSubjectMap %s with no map: %s, expected NOT_FOUND" % (oid, rel))
            if expect:
                o["released_subjects"] = len(expect)
            o["subject_map"] = {}
            o["released"] = True
            self.expect_unchanged(before, "release of order %s's subject map" % oid)
        return True

    def op_order(self, r):
        spec = self.r_spec(r)
        res = self.submit_order(spec)
        if not res.ok:
            self.fail("h", "SubmitOrder %s refused: %s" % (spec.id, res))
        self.finish_order(spec.id)
        return True

    def op_order_resubmit(self, r):
        if not self.m.orders:
            return self.op_order(r)
        oid = r.choice(sorted(self.m.orders))
        o = self.m.orders[oid]
        if o["state"] is None:
            return
        spec = opb.OrderSpec()
        spec.CopyFrom(o["spec"])
        changed = r.random() < 0.6
        if changed:
            x = r.random()
            if x < 0.3:
                spec.reference += " (amended)"
            elif x < 0.6:
                spec.subject_ids.append(r.choice(self.subject_pool) + "-x")
            elif x < 0.8:
                spec.datasets.append(r.choice(self.dataset_pool))
            else:
                spec.requester = self.requester + "-2"
        if spec_key(spec) == spec_key(o["spec"]):
            changed = False  # selectors are sets: a repeated selector changes nothing (docs/ORDERS.md)
        before = self.snapshot()
        res = call(self.orders().SubmitOrder, spec, timeout=RPC_TIMEOUT)
        self.stats.ops += 1
        if changed:
            if res.ok:
                self.fail("h", "order %s re-submitted with changed fields was accepted" % oid)
            if res.code != grpc.StatusCode.ALREADY_EXISTS:
                self.fail("h", "changed re-submission of %s: %s, expected ALREADY_EXISTS" % (oid, res))
            self.stats.refused += 1
        else:
            if not res.ok:
                self.fail("h", "identical re-submission of %s refused: %s" % (oid, res))
            if res.value.state != o["state"] or (res.value.certificate_id or None) != o["cert"]:
                self.fail("e", "re-submitted order %s answers %s/%s, was %s/%s" % (
                    oid, opb.OrderState.Name(res.value.state), res.value.certificate_id,
                    opb.OrderState.Name(o["state"]), o["cert"]))
        self.expect_unchanged(before, "re-submission of order %s" % oid)

    def op_lift(self, r):
        shredded = [c for c in self.m.contents if c.state == "shredded"]
        if not shredded:
            return self.op_shred(r)
        c = r.choice(shredded)
        res = call(self.orders().LiftSuppression, opb.LiftSuppressionRequest(digest=pb.Digest(hash=c.digest),
                                                                           reason="court ruling %d" % self.step))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "LiftSuppression of shredded %s refused: %s" % (c.short(), res))
        c.state = "absent"
        c.lifts += 1
        c.subjects, c.datasets, c.labels, c.edges = set(), set(), {}, set()
        self.touched.add(c.digest)
        if r.random() < 0.7:  # stored again, same kind
            subj, ds, lab = self.r_meta(r, c.kind)
            res = self.put_stream(c, c.kind, subj, ds if c.kind == "photo" else (), lab)
            self.expect_put(c, c.kind, res, subj, ds if c.kind == "photo" else (), lab, what="put after lift")

    # -- refused calls (d)
    def op_invalid(self, r):
        kinds = ["wrong_digest", "wrong_size", "bad_subject", "bad_dataset", "too_many_datasets", "cancelled",
                 "truncated", "trailer_mismatch", "tag_unknown", "tag_bad", "shred_unknown", "shred_malformed",
                 "lineage_unknown", "order_no_selector", "order_bad_date", "hold_bad", "dataset_unknown_digest",
                 "lineage_on_photo", "batch_all_bad", "derived_from_photo", "order_stale_plan",
                 "daemon_digest_with_hash", "daemon_digest_with_trailer", "daemon_digest_truncated"]
        kind = r.choice(kinds)
        before = self.snapshot()
        new_ds = ["ds-refused-%s-%d-%d" % (self.seed, self.step, i) for i in range(2)]
        subj = ["subj-refused-%s-%d" % (self.seed, self.step)]
        c = self.new_content("photo")
        c.introduced = True
        bad_names = ["", "a\x00b", "line\nbreak", "x" * 2000, "\x1b[31mred"]
        res = None
        if kind == "wrong_digest":
            res = self.put_stream(c, "photo", subj, new_ds, declared=sha256_digest(c.data + b"!"),
                                  trailer=r.random() < 0.5, trailer_digest=sha256_digest(c.data + b"!"))
        elif kind == "wrong_size":
            res = self.put_stream(c, "photo", subj, new_ds, size=c.size + r.choice([-1, 1, 1000]))
        elif kind == "bad_subject":
            res = self.put_stream(c, "photo", [r.choice(bad_names)], new_ds, trailer=r.random() < 0.3)
        elif kind == "bad_dataset":
            res = self.put_stream(c, "photo", subj, new_ds + [r.choice(bad_names)], trailer=r.random() < 0.3)
        elif kind == "too_many_datasets":
            res = self.put_stream(c, "photo", subj, ["ds-many-%s-%d-%d" % (self.seed, self.step, i) for i in range(300)])
        elif kind == "cancelled":
            res = self.cancelled_put(c, subj, new_ds)
        elif kind == "truncated":
            res = self.put_stream(c, "photo", subj, new_ds, data=c.data[: c.size // 2], size=c.size)
        elif kind == "trailer_mismatch":
            res = self.put_stream(c, "photo", subj, new_ds, trailer=True, trailer_digest=sha256_digest(b"other"))
        elif kind == "daemon_digest_with_hash":
            res = self.put_stream(c, "photo", subj, new_ds, daemon_digest=True, header_hash=c.digest)
        elif kind == "daemon_digest_with_trailer":
            res = self.put_stream(c, "photo", subj, new_ds, daemon_digest=True, trailer=True)
        elif kind == "daemon_digest_truncated":
            res = self.put_stream(c, "photo", subj, new_ds, daemon_digest=True, data=c.data[: c.size // 2],
                                  size=c.size)
        elif kind == "tag_unknown":
            res = call(self.catalog().UpdateItem, opb.UpdateItemRequest(
                digest=pb.Digest(hash=c.digest), add_subject_ids=subj, add_datasets=new_ds))
        elif kind == "tag_bad":
            t = r.choice(self.live()) if self.live() else c
            res = call(self.catalog().UpdateItem, opb.UpdateItemRequest(
                digest=pb.Digest(hash=t.digest), add_subject_ids=[r.choice(bad_names)], add_datasets=new_ds))
        elif kind == "shred_unknown":
            ds = [c.digest] + ([r.choice(self.live()).digest] if self.live() else [])
            res = call(self.shredder().Shred, pb.ShredRequest(digests=[pb.Digest(hash=d) for d in ds]))
        elif kind == "shred_malformed":
            res = call(self.shredder().Shred, pb.ShredRequest(digests=[pb.Digest(hash="sha256:" + c.hex[:40])]))
        elif kind == "lineage_unknown":
            m = self.new_content("model")
            m.introduced = True
            edge = r.choice([("d", "ds-never-%s-%d" % (self.seed, self.step)), ("i", c.digest), ("m", c.digest)])
            res = self.put_stream(m, "model", (), new_ds, lineage={edge}, trailer=r.random() < 0.4)
        elif kind == "derived_from_photo":
            photos = self.live("photo")
            if not photos:
                return self.op_put_new(r)
            m = self.new_content("model")
            m.introduced = True
            res = self.put_stream(m, "model", (), new_ds, lineage={("m", r.choice(photos).digest)})
        elif kind == "order_no_selector":
            res = call(self.orders().SubmitOrder, opb.OrderSpec(id="order-bad-%s-%d" % (self.seed, self.step),
                                                               basis=opb.OTHER, reference="r", received=RECEIVED))
        elif kind == "order_bad_date":
            res = call(self.orders().SubmitOrder, opb.OrderSpec(
                id="order-bad-%s-%d" % (self.seed, self.step), basis=opb.OTHER, reference="r",
                received="yesterday", subject_ids=[r.choice(self.subject_pool)]))
        elif kind == "order_stale_plan":
            # A reviewed plan the store no longer matches (here: a digest no
            # plan has) is refused and changes nothing (docs/ORDERS.md).
            res = call(self.orders().SubmitOrder, opb.OrderSpec(
                id="order-bad-%s-%d" % (self.seed, self.step), basis=opb.OTHER, reference="r", received=RECEIVED,
                subject_ids=[r.choice(self.subject_pool)], expected_plan_digest=sha256_digest(c.data)))
        elif kind == "hold_bad":
            x = r.choice(["noreason", "unknown_digest", "unknown_dataset"])
            hold = {"noreason": opb.Hold(dataset=r.choice(self.usable_datasets()) if self.usable_datasets() else "x"),
                    "unknown_digest": opb.Hold(digest=pb.Digest(hash=c.digest), reason="r"),
                    "unknown_dataset": opb.Hold(dataset=new_ds[0], reason="r")}[x]
            res = call(self.orders().AddHold, opb.AddHoldRequest(hold=hold))
        elif kind == "dataset_unknown_digest":
            ds = [c.digest] + ([r.choice(self.live()).digest] if self.live() else [])
            res = call(self.catalog().RegisterDataset, opb.RegisterDatasetRequest(
                name=new_ds[0], digests=[pb.Digest(hash=d) for d in ds]))
        elif kind == "lineage_on_photo":
            photos = self.live("photo")
            if not photos or not self.usable_datasets():
                return self.op_put_new(r)
            p = r.choice(photos)
            res = call(self.catalog().AddLineage, opb.AddLineageRequest(
                model=pb.Digest(hash=p.digest), edges=self.edges_pb({("d", r.choice(self.usable_datasets()))})))
            self.touched.add(p.digest)
        elif kind == "batch_all_bad":
            c2 = self.new_content("photo")
            c2.introduced = True
            entries = [self.batch_entry(c, "photo", subj, new_ds, declared=sha256_digest(b"nope")),
                       self.batch_entry(c2, "photo", [r.choice(bad_names)], new_ds)]
            b = call(self.store().BatchPut, pb.BatchPutRequest(entries=entries), timeout=RPC_TIMEOUT)
            if not b.ok:
                res = b
            else:
                oks = [e for e in b.value.results if e.code == 0]
                res = R(True) if oks else R(False, details="; ".join(e.message for e in b.value.results))
        self.stats.ops += 1
        if res.ok:
            self.fail("d", "invalid call %s was accepted" % kind)
        self.stats.refused += 1
        self.expect_unchanged(before, "refused %s (%s)" % (kind, res))
        self.touched.add(c.digest)

    def cancelled_put(self, c, subj, ds):
        """A streamed put the client cancels after the header and part of the data."""
        gate = threading.Event()
        h = pb.PutHeader(digest=pb.Digest(hash=c.digest, size_bytes=c.size),
                         metadata=self.meta_pb("photo", subj, ds))

        def gen():
            yield pb.PutRequest(header=h)
            yield pb.PutRequest(data=c.data[: max(1, c.size // 2)])
            gate.wait(10)

        fut = self.store().Put.future(gen(), timeout=RPC_TIMEOUT)
        time.sleep(0.15)
        fut.cancel()
        gate.set()
        try:
            fut.result()
            return R(True)
        except grpc.FutureCancelledError:
            pass
        except grpc.RpcError as e:
            return R(False, code=e.code(), details=e.details() or "")
        time.sleep(0.1)  # let the daemon see the cancellation
        return R(False, code=grpc.StatusCode.CANCELLED, details="cancelled by the client")

    # -- concurrency
    def op_race_reupload_shred(self, r):
        """Re-uploads of X (slow streamed put that commits after the shred,
        trailer put, batch puts) racing a shred or an order of X."""
        present = [c for c in self.live()]
        if not present:
            return self.op_put_new(r)
        x = r.choice(present)
        self.stats.races += 1
        use_order = r.random() < 0.3
        shred_done = threading.Event()
        header_in = threading.Event()
        results = {}
        plans = []
        n = r.randint(2, 4)
        for i in range(n):
            kind = x.kind if r.random() < 0.8 else ("model" if x.kind == "photo" else "photo")
            subj = {r.choice(self.subject_pool)}
            # (never a held dataset: that would make the shred's expectation depend on the interleaving)
            unheld = [d for d in self.dataset_pool if ("d", d) not in self.m.holds.values()]
            ds = {r.choice(unheld)} if (not use_order and unheld and r.random() < 0.4) else set()
            path = ["slow", "batch", "trailer", "stream"][i] if i < 4 else r.choice(["batch", "stream"])
            plans.append((i, path, kind, subj, ds))
        spec = None
        if use_order:
            spec = self.r_spec(r)
            spec.ClearField("subject_ids")
            spec.ClearField("datasets")
            spec.ClearField("labels")
            del spec.digests[:]
            spec.digests.append(pb.Digest(hash=x.digest))
        exp = self.shred_expectation([x.digest], "") if not use_order else None
        channels = [self.new_channel() for _ in range(n + 1)]

        def uploader(i, path, kind, subj, ds):
            ch = channels[i]
            if path == "slow":
                results[i] = self.put_stream(x, kind, subj, ds, ch=ch, pause=shred_done, pause_after=header_in)
            elif path == "trailer":
                header_in.wait(5)
                results[i] = self.put_stream(x, kind, subj, ds, ch=ch, trailer=True)
            elif path == "stream":
                header_in.wait(5)
                results[i] = self.put_stream(x, kind, subj, ds, ch=ch)
            else:
                header_in.wait(5)
                out = []
                for _ in range(3):
                    e = call(pb_grpc.StoreStub(ch).BatchPut, pb.BatchPutRequest(
                        entries=[self.batch_entry(x, kind, subj, ds)]), timeout=RPC_TIMEOUT)
                    out.append(e)
                    if shred_done.is_set():
                        break
                results[i] = out

        def shredder():
            header_in.wait(5)
            time.sleep(0.05)
            try:
                if use_order:
                    results["order"] = call(self.orders(channels[n]).SubmitOrder, spec, timeout=RPC_TIMEOUT)
                    if results["order"].ok:
                        results["order_wait"] = call(self.orders(channels[n]).GetOrder, opb.GetOrderRequest(
                            order_id=spec.id, wait=True), timeout=RPC_TIMEOUT)
                else:
                    results["shred"] = call(self.shredder(channels[n]).Shred, pb.ShredRequest(
                        digests=[pb.Digest(hash=x.digest)], reason="race %d" % self.step), timeout=RPC_TIMEOUT)
            finally:
                time.sleep(0.02)
                shred_done.set()

        if use_order:
            destroyed, retained = self.expected_of(spec)
        run_concurrently([threading.Thread(target=uploader, args=p) for p in plans] +
                         [threading.Thread(target=shredder)], channels, 90)
        self.stats.ops += n + 1
        # Apply the uploads that were acknowledged (all linearize before the
        # shred if they were, or the shred covers them anyway).
        flat = []
        for i, path, kind, subj, ds in plans:
            res = results.get(i)
            rs = res if isinstance(res, list) else [res]
            for one in rs:
                if one is None:
                    continue
                if path == "batch" and one.ok:
                    e = one.value.results[0]
                    one = R(True, e) if e.code == 0 else R(False, code=grpc.StatusCode.UNKNOWN, details=e.message)
                flat.append((path, kind, subj, ds, one))
        for path, kind, subj, ds, one in flat:
            if one.ok:
                self.apply_put_ok(x, kind, subj, ds, {}, ())
        self.touched.add(x.digest)
        if use_order:
            o = results.get("order")
            if o is None or not o.ok:
                self.fail("h", "SubmitOrder in a race refused: %s" % o)
            self.m.orders[spec.id] = dict(spec=spec, state=None, cert=None, expect=(destroyed, retained),
                                          subject_map=self.subject_map_of(spec, destroyed))
            self.finish_order(spec.id)
        else:
            s = results.get("shred")
            if s is None:
                self.fail("h", "racing shred did not return")
            self.judge_shred([x.digest], "", s, exp, None)
        return True

    def op_race_reuploads(self, r):
        """Concurrent re-uploads of one present content with different metadata."""
        present = self.live()
        if not present:
            return self.op_put_new(r)
        x = r.choice(present)
        self.stats.races += 1
        n = r.randint(2, 4)
        plans = []
        for i in range(n):
            kind = x.kind if r.random() < 0.75 else ("model" if x.kind == "photo" else "photo")
            subj, ds, lab = self.r_meta(r, "photo", n_subj=(1, 2), n_ds=(0, 1))
            plans.append((i, r.choice(["stream", "trailer", "batch"]), kind, subj, ds, lab))
        results = {}
        go = threading.Barrier(n)
        channels = [self.new_channel() for _ in range(n)]

        def up(i, path, kind, subj, ds, lab):
            go.wait(5)
            if path == "batch":
                e = call(pb_grpc.StoreStub(channels[i]).BatchPut, pb.BatchPutRequest(
                    entries=[self.batch_entry(x, kind, subj, ds, lab)]), timeout=RPC_TIMEOUT)
                if e.ok:
                    v = e.value.results[0]
                    e = R(True, v) if v.code == 0 else R(False, code=grpc.StatusCode.UNKNOWN, details=v.message)
                results[i] = e
            else:
                results[i] = self.put_stream(x, kind, subj, ds, lab, ch=channels[i], trailer=(path == "trailer"))

        run_concurrently([threading.Thread(target=up, args=p) for p in plans], channels, 60)
        self.stats.ops += n
        self.each([lambda i=i, path=path, kind=kind, subj=subj, ds=ds, lab=lab: self.expect_put(
            x, kind, results.get(i) or R(False, details="no reply"), subj, ds, lab,
            what="racing %s re-upload (as %s)" % (path, kind)) for i, path, kind, subj, ds, lab in plans])
        return True

    def op_race_parallel_puts(self, r, kill_after=None):
        """Several clients upload new contents at once (streamed, slow, batch).
        With kill_after, the daemon is SIGKILLed that many seconds in; unacked
        uploads then may or may not be there (g: acked ones must be)."""
        self.stats.races += 1
        n = r.randint(2, 4)
        plans = []
        for i in range(n):
            cs = [self.new_content("photo") for _ in range(r.randint(1, 3) if i % 2 else 1)]
            fresh = "subj-par-%s-%d-%d" % (self.seed, self.step, i)
            self.extra_subjects.append(fresh)
            plans.append((i, "batch" if i % 2 else r.choice(["stream", "trailer", "slow"]), cs, fresh))
        results = {}
        channels = [self.new_channel() for _ in range(n)]
        never = threading.Event()

        def up(i, path, cs, fresh):
            if path == "batch":
                e = call(pb_grpc.StoreStub(channels[i]).BatchPut, pb.BatchPutRequest(
                    entries=[self.batch_entry(c, "photo", (fresh,), ()) for c in cs]), timeout=RPC_TIMEOUT)
                results[i] = e
            else:
                slow = path == "slow"
                results[i] = self.put_stream(cs[0], "photo", (fresh,), (), ch=channels[i], trailer=(path == "trailer"),
                                             pause=never if slow and kill_after is not None else None)

        for _, _, cs, _ in plans:
            for c in cs:
                c.introduced = True
        ts = [threading.Thread(target=up, args=p) for p in plans]
        for t in ts:
            t.start()
        if kill_after is not None:
            time.sleep(kill_after)
            self.d.kill()
        for t in ts:
            t.join(60)
        never.set()
        for chn in channels:
            chn.close()
        self.stats.ops += n
        refused = []
        for i, path, cs, fresh in plans:
            res = results.get(i)
            outs = []
            if path == "batch":
                if res is not None and res.ok:
                    for c, e in zip(cs, res.value.results):
                        outs.append((c, R(True, e) if e.code == 0 else R(False, code=grpc.StatusCode.UNKNOWN,
                                                                          details=e.message)))
                else:
                    outs = [(c, res or R(False, details="no reply")) for c in cs]
            else:
                outs = [(cs[0], res or R(False, details="no reply"))]
            for c, one in outs:
                if one.ok:
                    c.state = "present"
                    c.subjects = {fresh}
                    self.touched.add(c.digest)
                elif kill_after is not None:
                    c.state = "maybe"
                    c.maybe_subjects = {fresh}
                else:
                    c.state = "maybe"  # resolved below, so that the model stays in sync
                    c.maybe_subjects = {fresh}
                    refused.append("parallel %s upload of new %s refused: %s" % (path, c.short(), one))
        if refused:
            self.resolve_after_fault()
            self.fail("h", "; ".join(refused))
        return True

    # -- faults
    def fill_disk(self):
        path = os.path.join(self.mount, "filler-%d" % self.step)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 20, 64 << 10, 4096, 512):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError:
                        break
        finally:
            os.close(fd)
        return path

    def op_disk_full(self, r):
        """The data dir's filesystem fills up: the daemon must stay up, keep
        serving reads (and the log), refuse writes without leaving traces, and
        take writes again by itself once space is back (issue 12, defect 7)."""
        self.stats.faults += 1
        self.stats.full_disks += 1
        filler = self.fill_disk()
        try:
            # one large upload (a blob file), judged call by call
            c = self.new_content("photo", size=r.randint(INLINE_MAX + 1, 300000))
            c.introduced = True
            subj, ds, lab = self.r_meta(r, "photo")
            before = self.snapshot()
            res = self.put_stream(c, "photo", subj, ds, lab)
            self.stats.ops += 1
            self.alive_on_full_disk()
            if res.ok:
                self.expect_put(c, "photo", res, subj, ds, lab, what="put on a full disk")
            else:
                self.stats.refused += 1
                self.expect_unchanged(before, "put refused on a full disk (%s)" % res)
            # bulk ingest until the daemon's own preallocated space runs out
            fresh = "subj-full-%s-%d" % (self.seed, self.step)
            self.extra_subjects.append(fresh)
            refused_batches = 0
            for _ in range(12):
                cs = [self.new_content("photo", size=r.randint(4000, 16000)) for _ in range(30)]
                b = call(self.store().BatchPut, pb.BatchPutRequest(
                    entries=[self.batch_entry(x, "photo", (fresh,), ()) for x in cs]), timeout=RPC_TIMEOUT)
                self.stats.ops += 1
                self.alive_on_full_disk()
                for x in cs:
                    x.introduced = True
                if not b.ok:
                    refused_batches += 1
                    continue  # nothing acknowledged: the check below finds anything left behind
                oks = 0
                for x, e in zip(cs, b.value.results):
                    if e.code == 0:
                        x.state, x.subjects = "present", {fresh}
                        oks += 1
                refused_batches = refused_batches + 1 if oks == 0 else 0
                if refused_batches >= 2:
                    break
            ck = call(self.logapi().GetCheckpoint, lpb.GetCheckpointRequest())
            if not ck.ok:
                self.fail("h", "GetCheckpoint fails on a full disk: %s" % ck)
            present = self.live()
            if present:
                x = r.choice(present)
                got = self.get_bytes(x)
                if got != x.data:
                    self.fail("h", "reads fail on a full disk: %s gives %s" % (x.short(), self.describe_get(got)))
        finally:
            os.remove(filler)
        deadline = time.time() + RESUME_SECONDS
        c = self.new_content("photo")
        c.introduced = True
        last = None
        while time.time() < deadline:
            last = self.put_stream(c, "photo")
            if last.ok:
                self.expect_put(c, "photo", last, (), (), {}, what="put after space came back")
                return True
            time.sleep(1)
        self._wedged = True  # keep_going: only a restart brings such a daemon back
        self.fail("h", "writes did not resume within %d s after space came back: %s" % (RESUME_SECONDS, last))

    def alive_on_full_disk(self):
        if self.d.proc.poll() is not None:
            lines = self.d.log().splitlines()
            why = [l for l in lines if re.search(r"Assertion|abort|terminate|fatal|FATAL", l)] or lines[-3:]
            self.fail("g", "the daemon died on a full disk (exit %s): %s" % (self.d.proc.returncode, " | ".join(why[-2:])))

    def op_restart(self, r):
        rc = self.d.stop()
        self.stats.faults += 1
        self.stats.restarts += 1
        if rc != 0:
            self.fail("g", "graceful stop exited with %s" % rc)
        self.restart()
        return True

    def restart(self):
        try:
            self.d.start(timeout=60)
        except AssertionError as e:
            self.fail("g", "the daemon did not restart: %s" % str(e)[-2000:])
        self.resolve_after_fault()

    def op_kill9(self, r):
        self.stats.faults += 1
        self.stats.kills += 1
        what = r.choice(["idle", "puts", "puts", "shred", "order"])
        if what == "idle":
            self.d.kill()
        elif what == "puts":
            self.op_race_parallel_puts(r, kill_after=r.uniform(0.0, 0.25))
        elif what == "shred":
            present = [c for c in self.live() if self.m.held_by(c) is None]
            if not present:
                self.d.kill()
            else:
                targets = r.sample(present, min(len(present), r.randint(1, 3)))
                rid = "req-kill-%s-%d" % (self.seed, self.step)
                out = {}
                t = threading.Thread(target=lambda: out.setdefault("r", self.do_shred(
                    [c.digest for c in targets], rid, ch=self.new_channel(), judge=False)))
                t.start()
                time.sleep(r.uniform(0.0, 0.2))
                self.d.kill()
                t.join(60)
                self.restart()
                self.pending_request_check(rid, targets)
                return True
        else:
            spec = self.r_spec(r)
            res = self.submit_order(spec)
            time.sleep(r.uniform(0.0, 0.3))
            self.d.kill()
            self.restart()
            if res.ok:
                self.finish_order(spec.id)
            return True
        self.restart()
        return True

    def pending_request_check(self, rid, targets):
        res = call(self.shredder().GetCertificate, pb.GetCertificateRequest(request_id=rid))
        if res.ok:
            items = self.learn_certificate(res.value.certificate_id, expect_request=rid)
            if items != {c.digest for c in targets}:
                self.fail("b", "shred %s cut by kill -9 certified %d of %d items" % (rid, len(items), len(targets)))
        elif res.code != grpc.StatusCode.NOT_FOUND:
            self.fail("b", "GetCertificate(request %s) after kill -9: %s" % (rid, res))
        for c in targets:
            self.touched.add(c.digest)

    def resolve_after_fault(self):
        """After a restart: learn certificates issued by cut calls (from the
        log), resolve uploads cut by the kill."""
        self.check_log()
        for c in self.m.contents:
            if c.state != "maybe":
                continue
            st = call(self.store().Stat, pb.StatRequest(digest=pb.Digest(hash=c.digest)))
            if st.ok:
                c.state = "present"
                c.subjects = set(getattr(c, "maybe_subjects", set()))
                got = self.get_bytes(c)
                if got != c.data:
                    self.fail("g", "upload of %s cut by kill -9 reads back %s" % (c.short(), self.describe_get(got)))
            else:
                c.state = "absent"
            self.touched.add(c.digest)

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


def run_seed(seed, steps=120, log=None, extra_args=()):
    """Runs one seed; returns its Stats or raises Violation."""
    return ModelRun(seed, steps=steps, log=log, extra_args=extra_args).run()
