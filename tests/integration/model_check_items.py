"""ModelRun's item operations (model_check.py): new uploads (streamed, with
a trailer, with the daemon's digest, batched), re-uploads of present and of
shredded content, tags, dataset registration, model registration and lineage,
a photo re-uploaded as a model, and holds added and removed."""
from harness import grpc, pb
from shredd.v1 import orders_pb2 as opb

from model_check_base import R, RPC_TIMEOUT, call


class ItemOps:
    """Mixin of ModelRun: the op_* steps that store, tag, link and hold items."""

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
        if self.m.removed_holds and (not self.m.holds or r.random() < 0.25):
            # A removal again (a retry, maybe long after): OK, and nothing
            # changes, no second hold-removed entry either.
            return self.retry_hold_removal(r.choice(sorted(self.m.removed_holds)))
        if not self.m.holds:
            return self.op_hold_add(r)
        hid = r.choice(sorted(self.m.holds))
        res = call(self.orders().RemoveHold, opb.RemoveHoldRequest(id=hid))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "RemoveHold %s refused: %s" % (hid, res))
        del self.m.holds[hid]
        self.m.removed_holds.add(hid)
        if r.random() < 0.3:  # the client did not see the answer: the same call again
            self.retry_hold_removal(hid)

    def retry_hold_removal(self, hid):
        self.count("hold_remove:retry")
        before = self.snapshot()
        res = call(self.orders().RemoveHold, opb.RemoveHoldRequest(id=hid))
        self.stats.ops += 1
        if not res.ok:
            self.fail("h", "RemoveHold %s again (a retry of a removal) refused: %s; expected OK" % (hid, res))
        self.expect_unchanged(before, "RemoveHold %s again (a retry)" % hid)
