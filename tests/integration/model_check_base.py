"""The reference model of model_check.py (issue 12): the invariants and the
constants the operations share, a Violation and its message, the outcome of
one RPC (R, call), and what the model keeps: each distinct content
(Content), the store's state (Model, with the closure an order must destroy)
and the counts of a run (Stats). Nothing here talks to the daemon."""
import re

from harness import grpc, pb, sha256_digest

INVARIANTS = {
    "a": "shredded content is never readable or listable, and its re-upload is refused",
    "b": "every destruction has exactly one certificate and every certificate a destruction",
    "c": "held items are never destroyed by any path",
    "d": "a refused call changes nothing (log included)",
    "e": "order status agrees with its certificate",
    "f": "nothing public holds a photo digest, personal metadata or a value computable from content alone",
    "g": "nothing acknowledged is lost, and the daemon survives the faults it must (kill -9, restart, full disk)",
    "h": "the daemon's state agrees with the reference model",
    "i": "an order's subject map serves exactly its destroyed items' subjects until released, then nothing",
}

KINDS = {"photo": pb.KIND_PHOTO, "model": pb.KIND_MODEL}
KIND_NAME = {pb.KIND_PHOTO: "photo", pb.KIND_MODEL: "model"}
INLINE_MAX = 64 * 1024
RECEIVED = "2026-12-01"
RPC_TIMEOUT = 60
FULL_DISK_MB = 24
RESUME_SECONDS = 20  # writes must resume by themselves this soon after space comes back
PAUSE_SECONDS = 3  # a slow racing upload waits this long (at most) for the shred to finish


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
        self.removed_holds = set()  # ids of holds removed (a removal again must answer OK)
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

    def closure(self, digests=(), subjects=(), datasets=(), labels=None, roles=None):
        """What an order must destroy and retain (docs/ORDERS.md: selected items,
        every model trained on a selected item, on a dataset holding one or on a
        selected dataset, or on a selected digest no longer stored, every model
        derived from those, transitively; held items retained, the cascade
        still passes through them). `roles`, if given, gets each chosen
        digest's role: "selected" or "derived"."""
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
        for d in digests:
            # A digest not stored (shredded, lifted) still pulls in what was
            # trained on or derived from it: a bare shred does not follow
            # lineage, and those models keep their edges to it.
            push(("i", d))
        while refs:
            ref = refs.pop()
            for m in present:
                if ref in m.edges and m.digest not in chosen:  # (photos have none, unless a bug attached some)
                    choose(m, "derived")
        if roles is not None:
            roles.update(chosen)
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
        self.vault_outages = 0
        self.refused = self.certificates = self.checks = 0
        self.op_counts = {}

    def as_dict(self):
        return dict(steps=self.steps, ops=self.ops, faults=self.faults, kills=self.kills, full_disks=self.full_disks,
                    vault_outages=self.vault_outages,
                    restarts=self.restarts, races=self.races, refused=self.refused,
                    certificates=self.certificates, checks=self.checks, op_counts=dict(self.op_counts))
