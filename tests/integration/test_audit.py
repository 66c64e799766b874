"""Certificates in the transparency log and `shredctl log audit` (issue 5)."""
import base64
import json
import os
import subprocess
import sys
import unittest

from harness import REPO, DaemonTest, ctl_offline, pb, read_json, read_text, sha256_digest

TOOLS = os.path.join(REPO, "tests", "tools")


class AuditTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.vkey = os.path.join(self.tmp, "log.vkey")
        self.d.ctl("pubkey", "--format", "vkey", "-o", self.vkey)
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", self.pem)

    def batch(self, items, dataset, subject_of):
        req = pb.BatchPutRequest()
        for i, data in enumerate(items):
            e = req.entries.add()
            e.header.digest.hash = sha256_digest(data)
            e.header.digest.size_bytes = len(data)
            e.header.metadata.datasets.append(dataset)
            e.header.metadata.subject_ids.append(subject_of(i))
            e.data = data
        for r in self.d.store().BatchPut(req).results:
            self.assertEqual(r.code, 0, r.message)
        return [sha256_digest(x) for x in items]

    def audit(self, dataset, *extra):
        return self.d.ctl("--json", "log", "audit", "--dataset", dataset, "--vkey", self.vkey, *extra, check=False)

    def test_certificate_is_a_log_entry_covered_by_a_checkpoint(self):
        d = self.d.put_bytes(os.urandom(3000))
        cert = os.path.join(self.tmp, "cert.json")
        self.d.ctl("shred", d, "-o", cert)
        proof = os.path.join(self.tmp, "cert.tlog-proof")
        self.assertTrue(os.path.exists(proof), "shred -o writes the tlog-proof next to the certificate")
        pred = json.loads(base64.b64decode(read_json(cert)["payload"]))["predicate"]
        index = pred["log"]["index"]
        self.assertEqual(pred["log"]["origin"], read_text(self.vkey).split("+")[0])
        # the log entry at that index is exactly the certificate file
        p = self.d.ctl("log", "entry", str(index))
        with open(cert, "rb") as f:
            self.assertEqual(p.stdout, f.read())
        # offline: shredctl and the independent verifier accept the proof
        p = ctl_offline("log", "verify", "--entry", cert, "--proof", proof, "--vkey", self.vkey, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(["/usr/bin/python3", os.path.join(TOOLS, "tlog_verify.py"), "inclusion", self.vkey, cert, proof],
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # the certificate itself still verifies (its log position is signed)
        self.assertEqual(ctl_offline("verify", cert, "--pubkey", self.pem, check=False).returncode, 0)

    def test_audit_proves_every_custody_entry_has_a_later_deletion(self):
        photos = [b"audit-%d-" % i + os.urandom(64) for i in range(30)]
        digests = self.batch(photos, "src", lambda i: "alice" if i < 10 else "bob")
        extra = self.d.put_bytes(os.urandom(200_000), datasets=["src"], subjects=["carol"])  # file-backed, streamed
        # nothing deleted yet: every member is listed, exit 1
        p = self.audit("src")
        self.assertEqual(p.returncode, 1, p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual(report["members"], 31)
        self.assertEqual(len(report["notDeleted"]), 31)
        # a GDPR order for alice deletes 10 of them
        self.d.ctl("order", "submit", "--id", "g1", "--basis", "gdpr-art17", "--reference", "r1", "--subject", "alice",
                   "-o", os.path.join(self.tmp, "g1.json"))
        p = self.audit("src")
        self.assertEqual(p.returncode, 1)
        report = json.loads(p.stdout)
        self.assertEqual(report["deleted"], 10)
        self.assertEqual({x["digest"] for x in report["notDeleted"]}, set(digests[10:]) | {extra})
        # the whole dataset: everything deleted, exit 0
        self.d.ctl("order", "submit", "--id", "all", "--basis", "ftc-order", "--reference", "r2", "--dataset", "src",
                   "-o", os.path.join(self.tmp, "all.json"))
        p = self.audit("src")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual((report["members"], report["deleted"], report["notDeleted"]), (31, 31, []))
        # ... and it still holds after a restart
        self.d.stop()
        self.d.start()
        self.assertEqual(self.audit("src").returncode, 0)

    def test_audit_rejects_a_doctored_manifest_and_a_wrong_key(self):
        self.batch([os.urandom(40) for _ in range(3)], "ds", lambda i: "s")
        self.d.ctl("order", "submit", "--id", "o", "--basis", "other", "--reference", "r", "--dataset", "ds",
                   "-o", os.path.join(self.tmp, "o.json"))
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        manifest = json.loads(opb_grpc.CatalogStub(self.d.channel()).GetDatasetManifest(
            opb.DatasetManifestRequest(name="ds")).manifest)
        good = os.path.join(self.tmp, "ds.manifest.json")
        with open(good, "w") as f:
            json.dump(manifest, f)
        self.assertEqual(self.audit("ds", "--manifest", good).returncode, 0)
        # a member claimed with another salt does not open its custody entry
        bad = json.loads(json.dumps(manifest))
        bad["members"][0]["custodySalt"] = "00" * 32
        path = os.path.join(self.tmp, "bad.json")
        with open(path, "w") as f:
            json.dump(bad, f)
        p = self.audit("ds", "--manifest", path)
        self.assertEqual(p.returncode, 3)
        self.assertIn("does not record", p.stderr.decode())
        # a deletion claimed at an index before the custody entry
        bad = json.loads(json.dumps(manifest))
        bad["members"][0]["deletion"]["logIndex"] = 0
        with open(path, "w") as f:
            json.dump(bad, f)
        self.assertEqual(self.audit("ds", "--manifest", path).returncode, 3)
        # another daemon's key
        from harness import Daemon
        d2 = Daemon(os.path.join(self.tmp, "other"))
        os.makedirs(d2.root)
        d2.start()
        try:
            wrong = os.path.join(self.tmp, "wrong.vkey")
            d2.ctl("pubkey", "--format", "vkey", "-o", wrong)
        finally:
            d2.kill()
        p = self.d.ctl("log", "audit", "--dataset", "ds", "--vkey", wrong, check=False)
        self.assertEqual(p.returncode, 3, p.stderr)


if __name__ == "__main__":
    unittest.main()
