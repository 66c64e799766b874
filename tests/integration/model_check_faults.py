"""ModelRun's fault and race operations (model_check.py): refused calls of
every kind (invalid input, a cancelled upload), several clients at once (a
re-upload racing a shred or an order, racing re-uploads, parallel uploads),
and faults: a full disk, a graceful restart, kill -9 (idle or in the middle
of uploads, a shred or an order) and what is resolved after one."""
import os
import re
import threading
import time

from harness import grpc, pb, pb_grpc, sha256_digest
from shredd.v1 import log_pb2 as lpb
from shredd.v1 import orders_pb2 as opb

from model_check_base import INLINE_MAX, R, RECEIVED, RESUME_SECONDS, RPC_TIMEOUT, call


def run_concurrently(threads, channels, timeout):
    """Starts the client threads of a concurrent step, waits for them (each
    at most `timeout` s) and closes their channels."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    for chn in channels:
        chn.close()


class FaultOps:
    """Mixin of ModelRun: refused calls, concurrent clients, faults."""

    # -- refused calls (d)
    def op_invalid(self, r):
        kinds = ["wrong_digest", "wrong_size", "bad_subject", "bad_dataset", "too_many_datasets", "cancelled",
                 "truncated", "trailer_mismatch", "tag_unknown", "tag_bad", "shred_unknown", "shred_malformed",
                 "lineage_unknown", "order_no_selector", "order_bad_date", "hold_bad", "dataset_unknown_digest",
                 "lineage_on_photo", "batch_all_bad", "derived_from_photo", "order_stale_plan",
                 "daemon_digest_with_hash", "daemon_digest_with_trailer", "daemon_digest_truncated",
                 "shred_wrong_size", "hold_remove_unknown"]
        kind = r.choice(kinds)
        self.count("invalid:" + kind)
        before = self.snapshot()
        new_ds = ["ds-refused-%s-%d-%d" % (self.seed, self.step, i) for i in range(2)]
        subj = ["subj-refused-%s-%d" % (self.seed, self.step)]
        c = self.new_content("photo")
        c.introduced = True
        bad_names = ["", "a\x00b", "line\nbreak", "x" * 2000, "\x1b[31mred"]
        res = None
        want_code = None  # the code a refusal must have, where one is promised
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
        elif kind == "shred_wrong_size":
            # A digest is hash and size: another size than the stored item's
            # is INVALID_ARGUMENT and shreds nothing (not even the digests
            # named beside it).
            if not self.live():
                return self.op_put_new(r)
            t = r.choice(self.live())
            size = r.choice(sorted({s for s in (t.size + 1, t.size + 1000, t.size - 1, 7) if s > 0 and s != t.size}))
            ds = [pb.Digest(hash=t.digest, size_bytes=size)]
            others = [x for x in self.live() if x is not t]
            if others and r.random() < 0.5:
                o = r.choice(others)
                ds.insert(r.randint(0, 1), pb.Digest(hash=o.digest, size_bytes=r.choice([0, o.size])))
            want_code = grpc.StatusCode.INVALID_ARGUMENT
            res = call(self.shredder().Shred, pb.ShredRequest(digests=ds, reason="wrong size %d" % self.step,
                                                              keep_models=r.random() < 0.5), timeout=RPC_TIMEOUT)
            self.touched.update(d.hash for d in ds)
        elif kind == "hold_remove_unknown":
            want_code = grpc.StatusCode.NOT_FOUND
            res = call(self.orders().RemoveHold, opb.RemoveHoldRequest(id="hold-never-%s-%d" % (self.seed, self.step)))
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
        if want_code is not None and res.code != want_code:
            self.fail("h", "invalid call %s refused with %s, expected %s" % (kind, res, want_code.name))
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
        # keep_models: racing re-uploads may add datasets to x (and so
        # models behind it); this race is about the uploads.
        reason = "race %d" % self.step
        exp = self.shred_expectation([x.digest], "", reason=reason, keep_models=True) if not use_order else None
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
                        digests=[pb.Digest(hash=x.digest)], reason=reason, keep_models=True),
                        timeout=RPC_TIMEOUT)
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
