"""Orders for humans (issue 16, part 4): `order ls`, a plan saved with
`order plan -o` and submitted as reviewed with `order submit --plan` (a
stale plan refused with what changed, at submission and again when the
order runs), the plan's summary and --list, confirmation on a terminal, and
a resubmitted finished order."""
import json
import os
import stat
import unittest

from harness import DaemonTest, SHREDCTL, grpc, pb, read_json, sha256_digest
from pty_run import run_on_pty

from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402

def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


SPEC = ["--basis", "ftc-order", "--reference", "FTC-2026-17", "--dataset", "faces"]


class OrderReviewTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.orders = opb_grpc.OrdersStub(self.d.channel())
        self.photos = [self.d.put_bytes(b"face %d" % i, datasets=["faces"], subjects=["subj-%d" % i],
                                        name="face-%d.jpg" % i) for i in range(3)]
        model = os.path.join(self.tmp, "age-model.safetensors")
        with open(model, "wb") as f:
            f.write(b"weights of the age model")
        _, lines = self.d.ctl("model", "register", model, "--trained-on", "faces", json_out=True)
        self.model = lines[0]["digest"]

    def plan(self, oid, *extra):
        path = os.path.join(self.tmp, oid + ".plan.json")
        p = self.d.ctl("order", "plan", "--id", oid, *SPEC, "-o", path, *extra)
        return path, p.stdout.decode()

    def test_plan_summary_list_and_file(self):
        path, text = self.plan("o-sum")
        self.assertIn("3 selected (3 photos, 0 models) and 1 derived models", text)
        self.assertIn("model %s  age-model.safetensors  <- trained-on dataset faces" % self.model, text)
        self.assertNotIn("face-0.jpg", text, "the summary lists no photos")
        self.assertIn("order submit --plan " + path, text)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, "the plan names subjects: private")
        plan = read_json(path)
        self.assertEqual(plan["type"], "shredd-order-plan-v1")
        self.assertEqual(plan["spec"]["datasets"], ["faces"])
        self.assertRegex(plan["planDigest"], "^sha256:[0-9a-f]{64}$")
        self.assertEqual(plan["plan"]["planDigest"], plan["planDigest"])
        # --list: every item with its file name and subjects.
        listed = self.d.ctl("order", "plan", "--id", "o-sum", *SPEC, "--list").stdout.decode()
        for i in range(3):
            self.assertRegex(listed, r"shred   %s photo  face-%d.jpg  subjects: subj-%d" % (self.photos[i], i, i))
        # The digest is the plan's, not the moment's: the same store plans the same digest.
        _, again = self.d.ctl("order", "plan", "--id", "o-sum", *SPEC, json_out=True)
        self.assertEqual(again[0]["planDigest"], plan["planDigest"])
        self.assertEqual(again[0]["selected"][0]["subjects"][0][:5], "subj-")
        # Another spec (a due date) is another plan.
        _, other = self.d.ctl("order", "plan", "--id", "o-sum", *SPEC, "--due", "2027-01-01", json_out=True)
        self.assertNotEqual(other[0]["planDigest"], plan["planDigest"])

    def test_submit_plan_certifies_exactly_the_reviewed_plan(self):
        path, _ = self.plan("o-rev")
        cert = os.path.join(self.tmp, "o-rev.json")
        p = self.d.ctl("order", "submit", "--plan", path, "-o", cert)
        self.assertIn("done: 4 items shredded", p.stdout.decode())
        manifest = read_json(os.path.join(self.tmp, "o-rev.manifest.json"))
        shredded = sorted(i["digest"] for i in manifest["items"])
        self.assertEqual(shredded, sorted(self.photos + [self.model]))
        # The order remembers the reviewed digest.
        st = self.orders.GetOrder(opb.GetOrderRequest(order_id="o-rev"))
        self.assertEqual(st.spec.expected_plan_digest, read_json(path)["planDigest"])
        # --plan with spec flags is a usage error.
        p = self.d.ctl("order", "submit", "--plan", path, "--id", "x", check=False)
        self.assertEqual(p.returncode, 2, p.stderr)

    def test_stale_plan_is_refused_with_a_diff(self):
        path, _ = self.plan("o-stale")
        late = self.d.put_bytes(b"a late face", datasets=["faces"], name="late.jpg")
        p = self.d.ctl("order", "submit", "--plan", path, check=False)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 6, err)
        self.assertIn("the store changed since the plan was made", err)
        self.assertIn("selectedCount: 3 -> 4", err)
        self.assertIn("+ selected %s photo late.jpg" % late, err)
        # Nothing was submitted, nothing shredded.
        self.assertEqual(self.d.ctl("order", "status", "o-stale", check=False).returncode, 4)
        for h in self.photos + [late, self.model]:
            self.assertEqual(self.d.ctl("stat", h, check=False).returncode, 0)
        # --json: the difference as data, then the error.
        p = self.d.ctl("--json", "order", "submit", "--plan", path, check=False)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.assertIn("+ selected %s photo late.jpg" % late, lines[0]["planChanged"])
        self.assertEqual(lines[-1]["code"], "FAILED_PRECONDITION")
        # A hold placed after review changes the plan too.
        path, _ = self.plan("o-held")
        self.d.ctl("hold", "add", "--digest", self.photos[0], "--reason", "litigation", "--id", "h1")
        p = self.d.ctl("order", "submit", "--plan", path, check=False)
        self.assertEqual(p.returncode, 6, p.stderr)
        self.assertIn("+ retained %s" % self.photos[0], p.stderr.decode())
        self.assertIn("- selected %s" % self.photos[0], p.stderr.decode())

    def test_a_hold_reason_changed_since_review_refuses_the_plan(self):
        # The certificate states each retained item's hold reason, so the
        # reviewed plan covers it: a hold removed and placed again under
        # the same id with another reason changes the plan (the digest
        # covered the hold's id only, and the order went through).
        self.d.ctl("hold", "add", "--digest", self.photos[0], "--reason", "litigation", "--id", "h1")
        path, _ = self.plan("o-reason")
        self.d.ctl("hold", "rm", "h1")
        self.d.ctl("hold", "add", "--digest", self.photos[0], "--reason", "litigation settled", "--id", "h1")
        p = self.d.ctl("order", "submit", "--plan", path, check=False)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 6, err)
        self.assertIn("the store changed since the plan was made", err)
        self.assertIn('~ retained %s photo face-0.jpg (hold h1: litigation) -> photo face-0.jpg (hold h1: '
                      'litigation settled)' % self.photos[0], err)
        self.assertEqual(self.d.ctl("order", "status", "o-reason", check=False).returncode, 4)
        for h in self.photos + [self.model]:
            self.assertEqual(self.d.ctl("stat", h, check=False).returncode, 0)

    def test_a_plan_gone_stale_after_submission_fails_when_it_runs(self):
        # The check at submission is not the only one: the order's execution
        # plans again under the shredder's lock and destroys nothing if that
        # closure is not the reviewed one. Order "busy" keeps the worker busy
        # while a photo lands in the reviewed order's dataset.
        req = pb.BatchPutRequest()
        n = 6000
        for start in range(0, n, 1000):
            req = pb.BatchPutRequest()
            for i in range(start, start + 1000):
                e = req.entries.add()
                data = b"bulk photo %d" % i
                e.header.digest.hash = sha256_digest(data)
                e.header.digest.size_bytes = len(data)
                e.header.metadata.kind = pb.KIND_PHOTO
                e.header.metadata.datasets.append("bulk")
                e.data = data
            self.d.store().BatchPut(req, timeout=120)
        path, _ = self.plan("o-race")
        self.orders.SubmitOrder(opb.OrderSpec(id="busy", basis=opb.OTHER, reference="r", datasets=["bulk"]))
        self.d.ctl("order", "submit", "--plan", path)
        late = self.d.put_bytes(b"a face after submission", datasets=["faces"])
        if self.orders.GetOrder(opb.GetOrderRequest(order_id="busy")).state not in (opb.ORDER_PENDING,
                                                                                     opb.ORDER_RUNNING):
            self.skipTest("the busy order finished before the upload: no race to test on this machine")
        st = self.orders.GetOrder(opb.GetOrderRequest(order_id="o-race", wait=True), timeout=300)
        self.assertEqual(st.state, opb.ORDER_FAILED, st)
        self.assertIn("changed since it was reviewed", st.message)
        for h in self.photos + [late, self.model]:
            self.assertEqual(self.d.ctl("stat", h, check=False).returncode, 0, "nothing was destroyed")

    def test_bad_plan_files_exit_2_naming_the_problem(self):
        path, _ = self.plan("o-bad")
        good = read_json(path)

        def variant(name, change):
            j = json.loads(json.dumps(good))
            change(j)
            out = os.path.join(self.tmp, name)
            with open(out, "w") as f:
                f.write(j if isinstance(j, str) else json.dumps(j))
            return out

        cases = [
            (variant("notjson", lambda j: None), "not JSON", lambda p: write_text(p, "{plan")),
            (variant("type", lambda j: j.update(type="shredd-dataset-manifest-v1")), "not a plan file", None),
            (variant("digest", lambda j: j.update(planDigest=7)), '"planDigest" is a number', None),
            (variant("hex", lambda j: j.update(planDigest="sha256:xyz")), '"planDigest" is not sha256:<hex>', None),
            (variant("spec", lambda j: j.pop("spec")), '"spec" is missing', None),
            (variant("ds", lambda j: j["spec"].update(datasets=[1])), '"datasets" holds a number', None),
            (variant("basis", lambda j: j["spec"].update(basis="whim")), '"basis" "whim": expected', None),
        ]
        for f, why, rewrite in cases:
            with self.subTest(why=why):
                if rewrite:
                    rewrite(f)
                p = self.d.ctl("order", "submit", "--plan", f, check=False)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(why, p.stderr.decode())
                self.assertEqual(len(p.stderr.decode().splitlines()), 1)
        self.assertEqual(self.d.ctl("order", "status", "o-bad", check=False).returncode, 4)

    def test_daemon_refuses_a_wrong_digest(self):
        spec = opb.OrderSpec(id="o-api", basis=opb.OTHER, reference="r", datasets=["faces"],
                             expected_plan_digest=sha256_digest(b"not the plan"))
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.orders.SubmitOrder, spec,
                            contains="changed since it was reviewed")
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.orders.GetOrder, opb.GetOrderRequest(order_id="o-api"))
        spec.expected_plan_digest = "sha256:XYZ"
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.orders.SubmitOrder, spec,
                            contains="is not sha256:<64 lowercase hex>")
        spec.expected_plan_digest = ""
        spec.expected_plan_digest = self.orders.PlanOrder(spec).plan_digest
        self.assertEqual(self.orders.SubmitOrder(spec).state, opb.ORDER_PENDING)

    def test_order_ls(self):
        self.d.ctl("order", "submit", "--id", "o-1", *SPEC, "--received", "2026-01-01", "-o",
                   os.path.join(self.tmp, "c.json"))
        p = self.d.ctl("order", "submit", "--id", "o-2", "--basis", "other", "--reference", "r", "--subject",
                       "nobody", "--received", "2026-02-01", "-o", os.path.join(self.tmp, "c2.json"), check=False)
        self.assertEqual(p.returncode, 4)
        _, lines = self.d.ctl("order", "ls", json_out=True)
        self.assertEqual([(l["orderId"], l["state"]) for l in lines], [("o-1", "done"), ("o-2", "empty")])
        self.assertEqual(lines[0]["reference"], "FTC-2026-17")
        self.assertEqual(lines[0]["itemsShredded"], 4)
        _, lines = self.d.ctl("order", "ls", "--state", "empty", json_out=True)
        self.assertEqual([l["orderId"] for l in lines], ["o-2"])
        text = self.d.ctl("order", "ls", "--state", "done").stdout.decode()
        self.assertRegex(text, r"^o-1  done  2026-01-01  ftc-order FTC-2026-17  4/4 shredded  certificate ")
        p = self.d.ctl("order", "ls", "--state", "finished", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("pending, running, done, empty or failed", p.stderr.decode())

    def test_resubmitted_finished_order_says_so(self):
        self.d.ctl("order", "submit", "--id", "o-r", *SPEC, "-o", os.path.join(self.tmp, "c.json"))
        out = self.d.ctl("order", "submit", "--id", "o-r", *SPEC).stdout.decode()
        self.assertIn("order o-r was already done: 4 items shredded, certificate ", out)
        self.assertIn("nothing ran again", out)
        self.assertNotIn("accepted", out)
        _, lines = self.d.ctl("order", "submit", "--id", "o-r", *SPEC, json_out=True)
        self.assertEqual((lines[0]["state"], lines[0]["alreadySubmitted"]), ("done", True))

    def test_confirmation_only_on_a_terminal(self):
        base = [SHREDCTL, "--server", self.d.address]
        # A terminal, answered no: nothing is submitted.
        rc, out = run_on_pty(base + ["order", "submit", "--id", "o-t", *SPEC], answer=b"n\n")
        self.assertEqual(rc, 1, out)
        self.assertIn(b"3 selected (3 photos, 0 models) and 1 derived models", out)
        self.assertIn(b"Submit order o-t? Its items are destroyed for good. [y/N]", out)
        self.assertIn(b"not confirmed: nothing was submitted", out)
        self.assertEqual(self.d.ctl("order", "status", "o-t", check=False).returncode, 4)
        # shred too.
        rc, out = run_on_pty(base + ["shred", self.photos[0]], answer=b"\n")
        self.assertEqual(rc, 1, out)
        self.assertIn(b"shred: 1 items", out)
        self.assertIn(b"not confirmed: nothing was shredded", out)
        self.assertEqual(self.d.ctl("stat", self.photos[0], check=False).returncode, 0)
        # Answered yes.
        rc, out = run_on_pty(base + ["order", "submit", "--id", "o-t", *SPEC], answer=b"y\n")
        self.assertEqual(rc, 0, out)
        self.assertIn(b"order o-t accepted", out)
        # --yes: no question on a terminal.
        rc, out = run_on_pty(base + ["shred", "--yes", "-o", os.path.join(self.tmp, "s.json"),
                                     self.d.put_bytes(b"one more")])
        self.assertEqual(rc, 0, out)
        self.assertNotIn(b"[y/N]", out)
        # No terminal: no question, whatever stdin holds.
        p = self.d.ctl("shred", "-o", os.path.join(self.tmp, "s2.json"), self.d.put_bytes(b"and another"), input=b"n\n")
        self.assertNotIn(b"[y/N]", p.stderr)


if __name__ == "__main__":
    unittest.main()
