"""Every file shredctl is handed is untrusted (issue 13): wrong JSON types,
truncations and garbage in a manifest, certificate, receipt, digest list,
log entry, proof or monitor state must end with the documented exit code
(docs/CLI.md) and one line on stderr naming the problem, never an abort
(exit 134, "terminate called ... nlohmann::json_abi ... type_error")."""
import base64
import json
import os
import unittest

from harness import DaemonTest, ctl_offline

VERIFY_FAILED, USAGE, FAIL = 3, 2, 1

# Garbage that is not JSON at all, or JSON of the wrong shape.
GARBAGE = {
    "empty": b"",
    "binary": bytes(range(256)),
    "nul": b"\0",
    "array": b"[]",
    "string": b'"x"',
    "number": b"7",
    "null": b"null",
}


class BadFilesTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.vkey = os.path.join(self.tmp, "log.vkey")
        self.d.ctl("pubkey", "-o", self.pem)
        self.d.ctl("pubkey", "--format", "vkey", "-o", self.vkey)
        self.digests = [self.d.put_bytes(b"bad-files photo %d" % i, datasets=["ds"]) for i in range(3)]
        self.cert = os.path.join(self.tmp, "c.json")
        self.d.ctl("order", "submit", "--id", "o1", "--basis", "other", "--reference", "r", "--digest",
                   self.digests[0], "-o", self.cert)
        self.manifest = os.path.join(self.tmp, "c.manifest.json")
        self.receipt = os.path.join(self.tmp, "r.json")
        self.d.ctl("receipt", "--manifest", self.manifest, "--item", self.digests[0], "-o", self.receipt)
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        self.dataset_manifest = json.loads(opb_grpc.CatalogStub(self.d.channel()).GetDatasetManifest(
            opb.DatasetManifestRequest(name="ds")).manifest)
        self.n = 0

    # --- helpers ---------------------------------------------------------

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def write(self, data):
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        self.n += 1
        path = os.path.join(self.tmp, "bad-%d.json" % self.n)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assertRefused(self, p, code, needle=None):
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, code, "exit %d, stderr: %r" % (p.returncode, err))
        self.assertNotIn("terminate called", err)
        lines = err.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 1, "expected one line of reason, got %r" % err)
        self.assertTrue(lines[0].startswith("shredctl: ") and len(lines[0]) > len("shredctl: ") + 10, err)
        if needle:
            self.assertIn(needle, lines[0])

    def truncations(self, data):
        return [data[:n] for n in (1, len(data) // 3, len(data) // 2, len(data) - 2)]

    def audit(self, manifest, *extra):
        return self.d.ctl("log", "audit", "--dataset", "ds", "--vkey", self.vkey, "--manifest", self.write(manifest),
                          *extra, check=False)

    def verify(self, cert, *extra):
        return ctl_offline("verify", cert, "--pubkey", self.pem, *extra, check=False)

    def member_with_deletion(self, m):
        for mem in m["members"]:
            if mem.get("deletion"):
                return mem
        raise AssertionError("no member with a deletion in %r" % m)

    def mutated(self, edit):
        m = json.loads(json.dumps(self.dataset_manifest))
        edit(m)
        return m

    # --- log audit --manifest (dataset manifest) ---------------------------

    def test_genuine_files_pass(self):
        p = self.audit(self.dataset_manifest)
        self.assertEqual(p.returncode, 1, p.stderr)  # two members not deleted: listed, not a failure
        self.assertEqual(self.verify(self.cert, "--manifest", self.manifest).returncode, 0)
        self.assertEqual(self.verify(self.cert, "--receipt", self.receipt, "--item", self.digests[0]).returncode, 0)

    def test_dataset_manifest_with_a_string_log_index(self):
        p = self.audit(self.mutated(lambda m: self.member_with_deletion(m)["deletion"].update(logIndex="7")))
        self.assertRefused(p, VERIFY_FAILED, "logIndex")

    def test_dataset_manifest_wrong_types(self):
        edits = {
            "memberIndex string": lambda m: m["members"][0].update(memberIndex="4"),
            "memberIndex negative": lambda m: m["members"][0].update(memberIndex=-1),
            "memberIndex float": lambda m: m["members"][0].update(memberIndex=4.0),
            "digest number": lambda m: m["members"][0].update(digest=5),
            "custodySalt array": lambda m: m["members"][0].update(custodySalt=[]),
            "member array": lambda m: m["members"].__setitem__(0, []),
            "members object": lambda m: m.update(members={}),
            "members missing": lambda m: m.pop("members"),
            "deletion string": lambda m: self.member_with_deletion(m).update(deletion="yes"),
            "certificateId number": lambda m: self.member_with_deletion(m)["deletion"].update(certificateId=1),
            "datasetSalt number": lambda m: m.update(datasetSalt=1),
            "dataset array": lambda m: m.update(dataset=["ds"]),
            "type number": lambda m: m.update(type=1),
        }
        for name, edit in edits.items():
            with self.subTest(name):
                self.assertRefused(self.audit(self.mutated(edit)), VERIFY_FAILED)

    def test_dataset_manifest_truncated_or_garbage(self):
        good = json.dumps(self.dataset_manifest).encode()
        for i, data in enumerate(self.truncations(good) + list(GARBAGE.values()) + [good + b"\0{}"]):
            with self.subTest(i):
                self.assertRefused(self.audit(data), VERIFY_FAILED)

    def test_cert_manifest_garbage(self):
        good = self.read(self.manifest)
        for i, data in enumerate(self.truncations(good) + list(GARBAGE.values()) + [b'{"certificateId":7}']):
            with self.subTest(i):
                p = self.audit(self.dataset_manifest, "--cert-manifest", self.write(data))
                self.assertRefused(p, VERIFY_FAILED)

    # --- verify CERT, --manifest, --receipt --------------------------------

    def test_certificate_truncated_array_or_garbage(self):
        good = self.read(self.cert)
        env = json.loads(good)
        wrong = [dict(env, payload=5), dict(env, signatures={}), dict(env, signatures=[5]),
                 dict(env, payload=base64.b64encode(b"[1,2]").decode())]
        for i, data in enumerate(self.truncations(good) + list(GARBAGE.values()) + wrong + [[env]]):
            with self.subTest(i):
                self.assertRefused(self.verify(self.write(data)), VERIFY_FAILED)

    def test_certificate_that_is_a_json_array(self):
        self.assertRefused(self.verify(self.write(b"[" + self.read(self.cert) + b"]")), VERIFY_FAILED, "JSON object")

    def test_receipt_with_a_non_hex_salt(self):
        r = json.loads(self.read(self.receipt))
        r["item"]["salt"] = "zz" * 32
        p = self.verify(self.cert, "--receipt", self.write(r), "--item", self.digests[0])
        self.assertRefused(p, VERIFY_FAILED, "salt")

    def test_receipt_wrong_types_truncated_or_garbage(self):
        good = self.read(self.receipt)
        r = json.loads(good)
        wrong = [dict(r, leafIndex="0"), dict(r, treeSize=-1), dict(r, item=[]), dict(r, inclusionPath="x"),
                 dict(r, inclusionPath=[1]), dict(r, item=dict(r["item"], size="5"))]
        for i, data in enumerate(self.truncations(good) + list(GARBAGE.values()) + wrong):
            with self.subTest(i):
                p = self.verify(self.cert, "--receipt", self.write(data), "--item", self.digests[0])
                self.assertRefused(p, VERIFY_FAILED)

    def test_manifest_wrong_types_truncated_or_garbage(self):
        good = self.read(self.manifest)
        m = json.loads(good)
        wrong = [dict(m, items=[dict(m["items"][0], size="5")]), dict(m, items={}), dict(m, merkleRoot=1),
                 dict(m, items=[[]])]
        for i, data in enumerate(self.truncations(good) + list(GARBAGE.values()) + wrong):
            with self.subTest(i):
                self.assertRefused(self.verify(self.cert, "--manifest", self.write(data)), VERIFY_FAILED)
                # `receipt` refuses a malformed manifest with exit 1 (docs/CLI.md).
                p = ctl_offline("receipt", "--manifest", self.write(data), "--item", self.digests[0], check=False)
                self.assertRefused(p, FAIL)

    # --- other file arguments ----------------------------------------------

    def test_digest_list_with_wrong_types(self):
        for i, data in enumerate([[{"digest": 5}], [{"digest": None}], b'{"digest":[1]}\n']):
            with self.subTest(i):
                p = self.d.ctl("dataset", "register", "ds2", "--manifest", self.write(data), check=False)
                self.assertRefused(p, USAGE, "digest")

    def test_log_verify_and_monitor_garbage(self):
        proof = os.path.join(self.tmp, "c.tlog-proof")
        for i, data in enumerate(self.truncations(self.read(proof)) + list(GARBAGE.values())):
            with self.subTest(i):
                p = ctl_offline("log", "verify", "--entry", self.cert, "--proof", self.write(data), "--vkey", self.vkey,
                                check=False)
                self.assertRefused(p, VERIFY_FAILED)
                p = self.d.ctl("log", "monitor", "--state", self.write(data), "--vkey", self.vkey, check=False)
                self.assertRefused(p, VERIFY_FAILED)


if __name__ == "__main__":
    unittest.main()
