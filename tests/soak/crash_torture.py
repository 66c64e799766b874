#!/usr/bin/python3
"""Crash-consistency torture (issue 7; invariants 2 and 3 of DESIGN.md).

Each run, against one long-lived data dir and vault:
  1. stores a dataset of hundreds of photos (BatchPut) and a model trained on
     it (plus, sometimes, a fine-tune derived from that model);
  2. starts a random mix of concurrent work: streamed uploads (small and up
     to ~1.5 MiB, some joining the dataset), batch uploads, a deletion order
     for the dataset, and sometimes a direct Shred of items of earlier runs;
  3. SIGKILLs the daemon at a random moment of that window (the window is
     scaled to how long an order takes on this machine), restarts it, and
     checks:
       - the daemon restarts, and the file vault holds exactly one root;
       - every submitted order ends: acknowledged orders exist and reach DONE;
         an order whose SubmitOrder was cut by the kill is either unknown or
         ends too; unknown ones are submitted again and must end. EMPTY,
         FAILED or a lost acknowledged order is a violation. A DONE order's
         certificate covers the whole dataset as stored before the order, the
         model and the fine-tune;
       - every certificate in the transparency log verifies offline with its
         manifest (`shredctl verify --manifest`), its tlog-proof verifies, and
         no request (order or shred) has more than one certificate;
       - no item listed in a certificate's manifest is readable;
       - every acknowledged upload not in a manifest is readable, byte for
         byte; an upload cut by the kill is readable byte for byte or absent;
         any other answer (DATA_LOSS, wrong bytes) is a violation;
       - `shredctl log monitor --state` (a witness kept across all runs, key
         pinned before the first run) accepts the new checkpoint: the log
         only grew (exit 7 = fork/rollback, a violation).
At the end every acknowledged upload of every run is checked again.

Usage: tests/soak/crash_torture.py [--runs 50] [--seed N] [--build-dir build]
       [--dataset-size 300] [--keep]
Prints one line per run and a summary (also as JSON with --json-out FILE);
exits 1 if there was any violation. tests/integration/test_crash_torture.py
runs a small version in the suite.
"""
import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

if __name__ == "__main__":
    # The harness reads the binaries' paths from the environment at import.
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--build-dir")
    _a, _ = _pre.parse_known_args()
    if _a.build_dir:
        _b = os.path.abspath(_a.build_dir)
        os.environ["SHREDD_BIN"] = os.path.join(_b, "bin", "shredd")
        os.environ["SHREDCTL_BIN"] = os.path.join(_b, "bin", "shredctl")
        os.environ["SHREDD_PY_GEN"] = os.path.join(_b, "proto", "gen", "py")

sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402
from harness import SHREDCTL, Daemon, grpc, pb, pb_grpc, sha256_digest  # noqa: E402
from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402

MiB = 1 << 20


def content(seed, size):
    return random.Random(seed).randbytes(size)


class Item:
    __slots__ = ("digest", "seed", "size", "kind", "acked", "run", "dataset")

    def __init__(self, seed, size, kind, run, dataset=None):
        self.seed, self.size, self.kind, self.run, self.dataset = seed, size, kind, run, dataset
        self.digest = sha256_digest(content(seed, size))
        self.acked = False

    def data(self):
        return content(self.seed, self.size)


class CrashTorture:
    """One data dir + vault, many kill -9 runs. Violations are collected as
    strings, never raised, so a soak reports all of them."""

    def __init__(self, root, seed=6962, dataset_size=(250, 400), big_max=int(1.5 * MiB),
                 log=print, timeout=180, epoch_items=0):
        self.root = root
        extra = []
        if epoch_items:
            # Small epochs: an order spans several key-tree epochs, so kills
            # land between them too (docs/ORDERS.md: resumed before serving).
            cfg = os.path.join(root, "shredd.toml")
            with open(cfg, "w") as f:
                f.write("[shred]\nepoch_items = %d\nmanifest_chunk_items = 40\ninline_manifest_items = 100\n"
                        % epoch_items)
            extra = ["--config", cfg]
        self.rng = random.Random(seed)
        self.dataset_size = dataset_size
        self.big_max = big_max
        self.log = log
        self.timeout = timeout
        self.d = Daemon(root, extra_args=extra)
        self.killing = threading.Event()  # set just before the SIGKILL of a run
        self.items = {}  # digest -> Item (first upload wins; contents are random, so no clashes)
        self.lock = threading.Lock()
        self.violations = []
        self.runs = []
        self.shredded = set()   # digests listed in any verified manifest
        self.certs_seen = {}    # certificate id -> request id
        self.requests = {}      # request id -> set of certificate ids (from the log)
        self.log_scanned = 0    # log entries scanned so far
        self.order_done_s = []  # observed submit->DONE times (calibrate the kill window)
        self.pem = os.path.join(root, "pub.pem")
        self.vkey = os.path.join(root, "log.vkey")
        self.witness = os.path.join(root, "witness.state")
        self.certdir = os.path.join(root, "certs")
        os.makedirs(self.certdir, exist_ok=True)
        self.seed_counter = self.rng.getrandbits(48)

    # ------------------------------------------------------------ helpers

    def violation(self, run, msg):
        text = "run %s: %s" % (run, msg)
        self.violations.append(text)
        self.log("VIOLATION " + text)

    def failed_while_up(self, run, what, e):
        """A client call failed. Expected once the daemon is killed; while it
        is still running, any failure is a violation (nothing in the mix
        should be refused)."""
        if not self.killing.is_set():
            self.violation(run, "%s failed while the daemon was running: %s" % (
                what, e.details() if isinstance(e, grpc.RpcError) else repr(e)))

    def new_item(self, size, kind, run, dataset=None):
        with self.lock:
            self.seed_counter += 1
            seed = self.seed_counter
        return Item(seed, size, kind, run, dataset)

    def remember(self, item):
        with self.lock:
            self.items.setdefault(item.digest, item)

    def ctl(self, *args, check=False, timeout=300):
        return subprocess.run([SHREDCTL, "--server", self.d.address] + list(args),
                              capture_output=True, timeout=timeout, check=check)

    def start(self):
        self.d.start(timeout=120)

    def channel(self):
        return grpc.insecure_channel(self.d.address, options=[
            ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])

    @staticmethod
    def header(item, datasets=(), subject=None, lineage=()):
        h = pb.PutHeader(digest=pb.Digest(hash=item.digest, size_bytes=item.size),
                         metadata=pb.ItemMetadata(kind=item.kind, datasets=list(datasets),
                                                  subject_ids=[subject] if subject else []))
        h.lineage.extend(lineage)
        return h

    def put_stream(self, store, item, datasets=(), lineage=(), timeout=120):
        data = item.data()
        hdr = self.header(item, datasets, lineage=lineage)

        def gen():
            yield pb.PutRequest(header=hdr)
            for i in range(0, len(data), MiB):
                yield pb.PutRequest(data=data[i:i + MiB])
        store.Put(gen(), timeout=timeout)

    def batch_put(self, store, items, datasets=(), subject=None, timeout=120):
        """Returns the items whose result was OK (acknowledged)."""
        req = pb.BatchPutRequest()
        for it in items:
            e = req.entries.add()
            e.header.CopyFrom(self.header(it, datasets, subject))
            e.data = it.data()
        resp = store.BatchPut(req, timeout=timeout)
        ok = []
        for it, r in zip(items, resp.results):
            if r.code == 0:
                ok.append(it)
            else:
                raise AssertionError("BatchPut entry failed: %d %s" % (r.code, r.message))
        return ok

    # ------------------------------------------------------------ setup

    def setup(self):
        self.start()
        if self.ctl("pubkey", "--format", "pem", "-o", self.pem).returncode != 0:
            raise AssertionError("shredctl pubkey failed")
        if self.ctl("pubkey", "--format", "vkey", "-o", self.vkey).returncode != 0:
            raise AssertionError("shredctl pubkey --format vkey failed")
        self.monitor("setup")

    def close(self):
        self.d.kill()

    # ------------------------------------------------------------ one run

    def run_once(self, run):
        rng = self.rng
        info = {"run": run}
        ds = "torture-ds-%d" % run
        order_id = "torture-order-%d" % run
        store = pb_grpc.StoreStub(self.d.channel())

        # 1. the dataset and the models trained on it (acknowledged up front)
        n = rng.randint(*self.dataset_size)
        photos = [self.new_item(rng.randint(20, 4000), pb.KIND_PHOTO, run, ds) for _ in range(n)]
        for start in range(0, n, 200):
            for it in self.batch_put(store, photos[start:start + 200], datasets=[ds],
                                     subject="subject-%d-%d" % (run, start // 200)):
                it.acked = True
                self.remember(it)
        model = self.new_item(rng.randint(70_000, 400_000), pb.KIND_MODEL, run)
        self.put_stream(store, model, lineage=[pb.LineageEdge(type=pb.LineageEdge.TRAINED_ON, dataset=ds)])
        model.acked = True
        self.remember(model)
        cascade = [model]
        if rng.random() < 0.5:
            ft = self.new_item(rng.randint(10_000, 100_000), pb.KIND_MODEL, run)
            self.put_stream(store, ft, lineage=[pb.LineageEdge(
                type=pb.LineageEdge.DERIVED_FROM, digest=pb.Digest(hash=model.digest), relation="fine-tune")])
            ft.acked = True
            self.remember(ft)
            cascade.append(ft)
        in_order_before = {it.digest for it in photos} | {m.digest for m in cascade}

        # Items of earlier runs that nothing else will shred: a direct Shred target.
        with self.lock:
            pool = [it for it in self.items.values()
                    if it.acked and it.run < run and it.digest not in self.shredded and it.dataset is None
                    and it.kind == pb.KIND_PHOTO]
        shred_items = rng.sample(pool, min(len(pool), rng.randint(1, 6))) if pool and rng.random() < 0.5 else []
        shred_request = "torture-shred-%d" % run

        # 2. concurrent work, then kill -9 at a random moment
        stop = threading.Event()
        state = {"order_acked": False, "order_sent": False, "order_done_at": None,
                 "shred_acked": False, "shred_sent": False, "uploads_acked": 0, "uploads_cut": 0,
                 "batches_acked": 0}
        cut = []  # items whose upload may or may not have committed
        t0 = time.monotonic()

        def uploader(big):
            ch = self.channel()
            st = pb_grpc.StoreStub(ch)
            r = random.Random(rng.getrandbits(32))
            try:
                while not stop.is_set():
                    size = r.randint(65_000, self.big_max) if big and r.random() < 0.5 else r.randint(1, 64_000)
                    it = self.new_item(size, pb.KIND_PHOTO, run, ds if r.random() < 0.3 else None)
                    try:
                        self.put_stream(st, it, datasets=[it.dataset] if it.dataset else [], timeout=60)
                    except Exception as e:  # noqa: BLE001 - the kill cuts RPCs in any way
                        self.failed_while_up(run, "streamed upload", e)
                        with self.lock:
                            cut.append(it)
                            state["uploads_cut"] += 1
                        return
                    it.acked = True
                    self.remember(it)
                    with self.lock:
                        state["uploads_acked"] += 1
            finally:
                ch.close()

        def batcher():
            ch = self.channel()
            st = pb_grpc.StoreStub(ch)
            r = random.Random(rng.getrandbits(32))
            try:
                while not stop.is_set():
                    its = [self.new_item(r.randint(1, 3000), pb.KIND_PHOTO, run) for _ in range(r.randint(5, 40))]
                    try:
                        self.batch_put(st, its, timeout=60)
                    except Exception as e:  # noqa: BLE001
                        self.failed_while_up(run, "BatchPut", e)
                        with self.lock:
                            cut.extend(its)
                        return
                    for it in its:
                        it.acked = True
                        self.remember(it)
                    with self.lock:
                        state["batches_acked"] += 1
            finally:
                ch.close()

        order_delay = rng.uniform(0, 0.3)

        def orderer():
            ch = self.channel()
            try:
                if stop.wait(order_delay):
                    return
                o = opb_grpc.OrdersStub(ch)
                state["order_sent"] = True
                sent_at = time.monotonic()
                try:
                    o.SubmitOrder(opb.OrderSpec(id=order_id, basis=opb.FTC_ORDER, reference="torture %d" % run,
                                                requester="crash torture", datasets=[ds]), timeout=60)
                except Exception as e:  # noqa: BLE001
                    self.failed_while_up(run, "SubmitOrder", e)
                    return
                state["order_acked"] = True
                try:
                    st = o.GetOrder(opb.GetOrderRequest(order_id=order_id, wait=True), timeout=120)
                except Exception as e:  # noqa: BLE001
                    self.failed_while_up(run, "GetOrder(wait)", e)
                    return
                if st.state == opb.ORDER_DONE:
                    state["order_done_at"] = time.monotonic() - sent_at
            finally:
                ch.close()

        def shredder():
            ch = self.channel()
            try:
                if stop.wait(rng.uniform(0, 0.5)):
                    return
                state["shred_sent"] = True
                try:
                    pb_grpc.ShredderStub(ch).Shred(pb.ShredRequest(
                        digests=[pb.Digest(hash=it.digest) for it in shred_items], request_id=shred_request,
                        reason="crash torture"), timeout=60)
                except Exception as e:  # noqa: BLE001
                    self.failed_while_up(run, "Shred", e)
                    return
                state["shred_acked"] = True
            finally:
                ch.close()

        threads = [threading.Thread(target=uploader, args=(True,)), threading.Thread(target=uploader, args=(False,)),
                   threading.Thread(target=batcher), threading.Thread(target=orderer)]
        if shred_items:
            threads.append(threading.Thread(target=shredder))
        for t in threads:
            t.start()
        # Kill moment, scaled to the median submit->DONE time seen so far:
        # 15% before the order is sent, 65% while it runs, 20% after it is
        # done (uploads and the shred keep running throughout).
        typical = sorted(self.order_done_s)[len(self.order_done_s) // 2] if self.order_done_s else 1.0
        aim = rng.random()
        if aim < 0.15:
            kill_at = rng.uniform(0.02, max(0.03, order_delay))
        elif aim < 0.8:
            kill_at = order_delay + rng.uniform(0, typical)
        else:
            kill_at = order_delay + typical * rng.uniform(1.0, 1.6) + 0.05
        time.sleep(max(0.0, kill_at - (time.monotonic() - t0)))
        self.killing.set()
        self.d.kill()
        stop.set()
        for t in threads:
            t.join(timeout=200)
            if t.is_alive():
                self.violation(run, "a client thread hung after the kill")
        if state["order_done_at"] is not None:
            self.order_done_s.append(state["order_done_at"])
        info.update(kill_at_s=round(kill_at, 3), dataset=n, cascade=len(cascade),
                    order="done" if state["order_done_at"] is not None else
                    "acked" if state["order_acked"] else "cut" if state["order_sent"] else "not-sent",
                    shred="none" if not shred_items else "acked" if state["shred_acked"] else
                    "cut" if state["shred_sent"] else "not-sent",
                    uploads_acked=state["uploads_acked"], batches_acked=state["batches_acked"],
                    cut=len(cut))
        for it in cut:
            self.remember(it)

        # 3. restart and check
        self.killing.clear()
        try:
            self.start()
        except AssertionError as e:
            self.violation(run, "daemon did not restart: %s" % e)
            raise
        self.check_order(run, order_id, ds, state, in_order_before, cascade, info)
        if shred_items:
            self.check_shred(run, shred_request, state, shred_items, info)
        # After the resumed work: an order resumed at start-up runs its epochs
        # in the background, and an epoch in progress legitimately holds the
        # next root (root-N.key.tmp, then root-N.key) for a moment.
        self.check_vault(run)
        self.scan_log(run)
        self.monitor(run)
        # readability: this run's items and a sample of earlier ones
        with self.lock:
            mine = [it for it in self.items.values() if it.run == run]
            older = [it for it in self.items.values() if it.run != run]
        sample = mine + self.rng.sample(older, min(len(older), 150))
        info["checked_items"] = len(sample)
        info["unacked_stored"] = self.check_items(run, sample)
        self.runs.append(info)
        return info

    # ------------------------------------------------------------ checks

    def check_vault(self, run):
        vault = os.path.join(self.root, "vault")
        roots = sorted(f for f in os.listdir(vault) if f.startswith("root-"))
        if len(roots) != 1:
            self.violation(run, "vault holds %d roots: %s" % (len(roots), roots))

    def check_order(self, run, order_id, ds, state, in_order_before, cascade, info):
        o = opb_grpc.OrdersStub(self.d.channel())
        try:
            st = o.GetOrder(opb.GetOrderRequest(order_id=order_id, wait=True), timeout=self.timeout)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                self.violation(run, "GetOrder(%s): %s %s" % (order_id, e.code(), e.details()))
                return
            if state["order_acked"]:
                self.violation(run, "acknowledged order %s is unknown after the restart" % order_id)
            info["order_resubmitted"] = True
            o.SubmitOrder(opb.OrderSpec(id=order_id, basis=opb.FTC_ORDER, reference="torture %d" % run,
                                        requester="crash torture", datasets=[ds]), timeout=60)
            st = o.GetOrder(opb.GetOrderRequest(order_id=order_id, wait=True), timeout=self.timeout)
        if st.state != opb.ORDER_DONE:
            self.violation(run, "order %s ended %s (%s), expected DONE" % (
                order_id, opb.OrderState.Name(st.state), st.message))
            return
        cert = os.path.join(self.certdir, "order-%d.json" % run)
        p = self.ctl("order", "wait", order_id, "-o", cert)
        if p.returncode != 0:
            self.violation(run, "shredctl order wait failed: %s" % p.stderr.decode())
            return
        with open(cert[:-5] + ".manifest.json") as f:
            manifest = json.load(f)
        listed = {i["digest"] for i in manifest["items"]}
        missing = in_order_before - listed
        if missing:
            self.violation(run, "order certificate misses %d items of the dataset / its models (e.g. %s)"
                           % (len(missing), sorted(missing)[0]))
        info["order_items"] = len(listed)
        # Re-submitting gives the same order (idempotency key) and certificate.
        again = o.SubmitOrder(opb.OrderSpec(id=order_id, basis=opb.FTC_ORDER, reference="torture %d" % run,
                                            requester="crash torture", datasets=[ds]), timeout=60)
        if again.certificate_id != st.certificate_id:
            self.violation(run, "re-submitting %s gave certificate %r, not %r" % (
                order_id, again.certificate_id, st.certificate_id))
        state["order_certificate"] = st.certificate_id

    def check_shred(self, run, request, state, items, info):
        sh = pb_grpc.ShredderStub(self.d.channel())
        try:
            r = sh.GetCertificate(pb.GetCertificateRequest(request_id=request), timeout=60)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                self.violation(run, "GetCertificate(%s): %s" % (request, e.details()))
                return
            if state["shred_acked"]:
                self.violation(run, "acknowledged shred %s has no certificate after the restart" % request)
            # No certificate: nothing may be destroyed (checked by check_items,
            # as these digests are in no manifest); then run it to the end.
            info["shred_rerun"] = True
            r = sh.Shred(pb.ShredRequest(digests=[pb.Digest(hash=it.digest) for it in items],
                                         request_id=request, reason="crash torture"), timeout=120)
        listed = {i["digest"] for i in json.loads(self.manifest_of(sh, r))["items"]}
        if listed != {it.digest for it in items}:
            self.violation(run, "shred %s certificate lists %d items, requested %d" % (
                request, len(listed), len(items)))

    def scan_log(self, run):
        """Reads the log's new entries; verifies every certificate among them
        offline (with its manifest and tlog-proof) and records what it shreds."""
        log = lpb_grpc.LogStub(self.d.channel())
        sh = pb_grpc.ShredderStub(self.d.channel())
        size = log.GetCheckpoint(lpb.GetCheckpointRequest(), timeout=60).tree_size
        if size < self.log_scanned:
            self.violation(run, "log shrank from %d to %d entries" % (self.log_scanned, size))
            return
        idx = self.log_scanned
        while idx < size:
            resp = log.GetEntries(lpb.GetEntriesRequest(start=idx, end=size), timeout=60)
            if not resp.entries:
                self.violation(run, "GetEntries(%d, %d) returned nothing" % (idx, size))
                return
            for entry in resp.entries:
                try:
                    j = json.loads(entry)
                except ValueError:
                    j = None
                if isinstance(j, dict) and "payloadType" in j:
                    pred = json.loads(base64.b64decode(j["payload"]))["predicate"]
                    self.check_certificate(run, sh, idx, entry, pred)
                idx += 1
        self.log_scanned = size

    def check_certificate(self, run, sh, index, entry, pred):
        cid = pred["certificateId"]
        req = pred.get("request", {}).get("id", "")
        if cid in self.certs_seen:
            self.violation(run, "certificate %s appears twice in the log (index %d)" % (cid, index))
        self.certs_seen[cid] = req
        self.requests.setdefault(req, set()).add(cid)
        if len(self.requests[req]) > 1:
            self.violation(run, "request %s has %d certificates: %s" % (
                req, len(self.requests[req]), sorted(self.requests[req])))
        r = sh.GetCertificate(pb.GetCertificateRequest(certificate_id=cid), timeout=60)
        if r.certificate != entry:
            self.violation(run, "certificate %s differs from its log entry %d" % (cid, index))
        base = os.path.join(self.certdir, "log-%d" % index)
        with open(base + ".json", "wb") as f:
            f.write(r.certificate)
        manifest = self.manifest_of(sh, r)
        with open(base + ".manifest.json", "wb") as f:
            f.write(manifest)
        p = subprocess.run([SHREDCTL, "verify", base + ".json", "--pubkey", self.pem,
                            "--manifest", base + ".manifest.json"], capture_output=True, timeout=120)
        if p.returncode != 0:
            self.violation(run, "certificate %s does not verify offline: %s" % (cid, p.stderr.decode().strip()))
            return
        if r.tlog_proof:
            with open(base + ".tlog-proof", "wb") as f:
                f.write(r.tlog_proof)
            p = subprocess.run([SHREDCTL, "log", "verify", "--entry", base + ".json", "--proof",
                                base + ".tlog-proof", "--vkey", self.vkey], capture_output=True, timeout=120)
            if p.returncode != 0:
                self.violation(run, "certificate %s: tlog-proof does not verify: %s" % (
                    cid, p.stderr.decode().strip()))
        for it in json.loads(manifest)["items"]:
            self.shredded.add(it["digest"])

    @staticmethod
    def manifest_of(sh, r):
        """The private manifest of a ShredResponse: inline, or streamed by
        GetManifest when it is too large for one reply."""
        if not r.manifest_omitted:
            return r.manifest
        return b"".join(c.data for c in sh.GetManifest(
            pb.GetCertificateRequest(certificate_id=r.certificate_id), timeout=120))

    def monitor(self, run):
        p = self.ctl("log", "monitor", "--state", self.witness, "--vkey", self.vkey)
        if p.returncode != 0:
            self.violation(run, "log monitor exit %d%s: %s" % (
                p.returncode, " (fork/rollback)" if p.returncode == 7 else "", p.stderr.decode().strip()))

    def check_items(self, run, items):
        """Returns how many cut (unacknowledged) uploads turned out stored."""
        store = pb_grpc.StoreStub(self.d.channel())
        stored_cut = 0
        for it in items:
            try:
                got = b"".join(r.data for r in store.Get(pb.GetRequest(digest=pb.Digest(hash=it.digest)),
                                                         timeout=120))
                readable = True
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    self.violation(run, "Get %s (run %d): %s %s" % (it.digest, it.run, e.code(), e.details()))
                    continue
                readable = False
            if it.digest in self.shredded:
                if readable:
                    self.violation(run, "%s is in a verified certificate's manifest and still readable"
                                   % it.digest)
                continue
            if readable:
                if got != it.data():
                    self.violation(run, "%s (run %d) reads back %d wrong bytes" % (it.digest, it.run, len(got)))
                elif not it.acked:
                    stored_cut += 1
            elif it.acked:
                self.violation(run, "acknowledged upload %s (run %d, %d bytes) is gone without a certificate"
                               % (it.digest, it.run, it.size))
        return stored_cut

    def final_check(self):
        with self.lock:
            everything = list(self.items.values())
        self.check_items("final", everything)
        self.monitor("final")
        self.check_vault("final")
        return len(everything)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--build-dir", help="take bin/shredd, bin/shredctl and proto/gen/py from here")
    ap.add_argument("--dataset-size", type=int, default=300, help="photos per order (±30%%)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    ap.add_argument("--json-out", help="write the summary as JSON here")
    ap.add_argument("--epoch-items", type=int, default=0,
                    help="[shred] epoch_items for the daemon (0: its default, one epoch per order)")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="shredd-torture-")
    t = CrashTorture(root, seed=a.seed,
                     dataset_size=(int(a.dataset_size * 0.7), int(a.dataset_size * 1.3)), epoch_items=a.epoch_items)
    print("crash torture: %d runs, seed %d, shredd %s, dir %s" % (a.runs, a.seed, harness.SHREDD, root), flush=True)
    started = time.monotonic()
    try:
        t.setup()
        for run in range(a.runs):
            info = t.run_once(run)
            print(json.dumps(info), flush=True)
        total = t.final_check()
    finally:
        t.close()
    orders = {}
    for info in t.runs:
        orders[info["order"]] = orders.get(info["order"], 0) + 1
    summary = {
        "runs": len(t.runs), "violations": len(t.violations), "seed": a.seed,
        "seconds": round(time.monotonic() - started, 1),
        "order_state_at_kill": orders,
        "shred_state_at_kill": {k: sum(1 for i in t.runs if i["shred"] == k)
                                for k in ("none", "not-sent", "cut", "acked")},
        "uploads_acked": sum(i["uploads_acked"] for i in t.runs),
        "batches_acked": sum(i["batches_acked"] for i in t.runs),
        "uploads_cut_by_kill": sum(i["cut"] for i in t.runs),
        "cut_uploads_found_stored": sum(i["unacked_stored"] for i in t.runs),
        "certificates_verified": len(t.certs_seen),
        "items_checked_at_end": total,
        "items_shredded": len(t.shredded),
        "violation_list": t.violations,
    }
    print("SUMMARY " + json.dumps(summary), flush=True)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(summary, f, indent=1)
    if a.keep:
        print("kept", root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if t.violations else 0


if __name__ == "__main__":
    sys.exit(main())
