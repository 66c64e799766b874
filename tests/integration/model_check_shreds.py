"""ModelRun's erasure operations (model_check.py): shreds and what their
certificates must say (learn_certificate, the expectation of a shred and its
judgement), repeated shred requests, deletion orders and their re-submission,
subject maps (GetSubjectMap, ReleaseSubjectMap) and suppression lifts."""
import base64
import json

from harness import grpc, pb
from shredd.v1 import orders_pb2 as opb

from model_check_base import RECEIVED, RPC_TIMEOUT, call


def spec_key(spec):
    """An order spec as the daemon compares re-submissions: selector lists
    are sets (sorted, duplicates dropped)."""
    return (spec.id, spec.basis, spec.reference, spec.requester, spec.due,
            tuple(sorted({d.hash for d in spec.digests})), tuple(sorted(set(spec.subject_ids))),
            tuple(sorted(set(spec.datasets))), tuple(sorted(spec.labels.items())), spec.keep_subject_map)


class ShredOps:
    """Mixin of ModelRun: shreds, certificates, orders, subject maps, lifts."""

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

    def shred_expectation(self, digests, request_id, reason="", keep_models=False):
        """'same:<cid>' | 'conflict:<cid>' | 'reserved' | 'refuse' | 'ok' | 'refuse-held' | 'refuse-models'."""
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
            # With another reason it is another request: ALREADY_EXISTS.
            cid = self.m.auto_sets[frozenset(digests)]
            if reason != self.m.certs[cid]["pred"]["request"].get("reason", ""):
                return "conflict:" + cid
            return "same-or-refuse:" + cid
        if any(c is None or c.state == "absent" for c in cs):
            return "refuse"
        if any(c.state == "shredded" or c.resurrected for c in cs):
            if not request_id and frozenset(digests) in self.m.auto_sets:
                cid = self.m.auto_sets[frozenset(digests)]
                if reason != self.m.certs[cid]["pred"]["request"].get("reason", ""):
                    return "refuse"  # another reason: never the first certificate
                return "same-or-refuse:" + cid
            return "refuse"
        if any(self.m.held_by(c) for c in cs):
            return "refuse-held"
        if not keep_models and self.models_left_behind(cs):
            return "refuse-models"
        return "ok"

    def models_left_behind(self, cs):
        """A bare shred refuses to leave a model that an order naming the
        same digests would derive (docs/ORDERS.md, "Bare shreds and
        models")."""
        destroyed, retained = self.m.closure(digests=[c.digest for c in cs])
        return (destroyed | retained) - {c.digest for c in cs}

    def do_shred(self, digests, request_id="", reason="", ch=None, judge=True, keep_models=False):
        exp = self.shred_expectation(digests, request_id, reason, keep_models)
        if exp.startswith("conflict:"):
            self.count("shred:conflict-%s" % ("explicit" if request_id else "automatic"))
        before = self.snapshot() if exp != "ok" and judge else None
        res = call(self.shredder(ch).Shred, pb.ShredRequest(digests=[pb.Digest(hash=d) for d in digests],
                                                            request_id=request_id, reason=reason,
                                                            keep_models=keep_models),
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
                    request_id or "(automatic)", exp, cid,
                    "ALREADY_EXISTS" if exp != "reserved" else "INVALID_ARGUMENT"))
                return
            new = cid not in self.m.certs
            items = self.learn_certificate(cid, res.value.certificate, res.value.manifest)
            if not new:
                self.fail("h", "shred of %s answered old certificate %s" % (digests, cid))
            if exp == "refuse-models":
                self.fail("h", "bare shred of %s answered OK with certificate %s, leaving models %s derived "
                          "from it; expected FAILED_PRECONDITION" % (
                              digests, cid, sorted(self.models_left_behind([self.m.by_digest[d] for d in digests]))))
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
                    request_id or "(automatic)", res))
            if exp.startswith("conflict:") and not request_id:
                first = self.m.certs[exp.split(":", 1)[1]]["pred"]["request"].get("reason", "")
                if len(first) <= 40 and json.dumps(first) not in res.details:
                    self.fail("h", "shred of the same digests with another reason (automatic id) refused without "
                              "naming the first reason %r: %s" % (first, res))
            if exp == "reserved" and res.code != grpc.StatusCode.INVALID_ARGUMENT:
                self.fail("h", "shred under the daemon's own id %s refused with %s, expected INVALID_ARGUMENT" % (
                    request_id, res))
            if exp == "refuse-held" and res.code != grpc.StatusCode.FAILED_PRECONDITION:
                self.fail("c", "shred of a held item refused with %s, expected FAILED_PRECONDITION" % res)
            if exp == "refuse-models" and res.code != grpc.StatusCode.FAILED_PRECONDITION:
                self.fail("h", "bare shred leaving models behind refused with %s, expected FAILED_PRECONDITION" % res)
            if before is not None:
                self.expect_unchanged(before, "refused shred of %d digests" % len(digests))

    def op_shred(self, r):
        present = self.live()
        if not present:
            return self.op_put_new(r)
        targets = r.sample(present, min(len(present), r.choice([1, 1, 1, 2, 3])))
        rid = "" if r.random() < 0.5 else "req-%s-%d" % (self.seed, self.next_req)
        self.next_req += 1
        self.do_shred([c.digest for c in targets], rid, reason="erasure %d" % self.step,
                      keep_models=r.random() < 0.3)
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
            if r.random() < 0.3:  # the same digests for another reason: another request
                reason = "another reason %d" % self.step
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

    def expected_of(self, spec, roles=None):
        return self.m.closure(digests={d.hash for d in spec.digests}, subjects=set(spec.subject_ids),
                              datasets=set(spec.datasets), labels=dict(spec.labels), roles=roles)

    def submit_order(self, spec, ch=None):
        roles = {}
        destroyed, retained = self.expected_of(spec, roles)
        res = call(self.orders(ch).SubmitOrder, spec, timeout=RPC_TIMEOUT)
        self.stats.ops += 1
        if res.ok:
            self.m.orders[spec.id] = dict(spec=spec, state=None, cert=None, expect=(destroyed, retained),
                                          roles=roles, subject_map=self.subject_map_of(spec, destroyed))
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
        self.check_retained_edges(oid, kept, o.get("roles"))

    def check_retained_edges(self, oid, kept, roles):
        """A retained model the order reached through lineage says which edge
        pulled it in (pulledInBy, as a derived model); a selected item, and
        any photo, carries none."""
        if roles is None:
            return
        for k in kept:
            derived = k.get("kind") == "model" and roles.get(k.get("digest")) == "derived"
            edge = k.get("pulledInBy")
            if derived != (edge is not None):
                self.fail("h", "order %s's certificate retains %s %s %s pulledInBy; the model has it %s" % (
                    oid, k.get("kind"), k.get("digest", "")[:19], "with" if edge is not None else "without",
                    "derived" if derived else "selected"))
            if edge is not None and (edge.get("type") not in ("trained-on", "derived-from") or
                                     len({"dataset", "model", "item"} & set(edge)) != 1):
                self.fail("h", "order %s's certificate retains %s with a malformed pulledInBy %r" % (
                    oid, k.get("digest", "")[:19], edge))

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
