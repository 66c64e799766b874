"""Certificates in the transparency log and `shredctl log audit` (issue 5)."""
import base64
import json
import os
import subprocess
import sys
import time
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

    def manifest(self, dataset):
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        return json.loads(opb_grpc.CatalogStub(self.d.channel()).GetDatasetManifest(
            opb.DatasetManifestRequest(name=dataset)).manifest)

    @staticmethod
    def tree_size(d):
        return d.ctl("log", "checkpoint", json_out=True)[1][0]["treeSize"]

    def write_json(self, name, doc):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

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

    def test_audit_refuses_a_manifest_that_leaves_out_a_member(self):
        # A vendor that hands over the manifest without the members it still
        # holds must not pass: the audit reads the whole log and finds every
        # custody entry of the dataset.
        digests = self.batch([os.urandom(40) for _ in range(4)], "kept", lambda i: "s%d" % i)
        tagged = self.d.put_bytes(os.urandom(50))
        self.d.ctl("tag", tagged, "--dataset", "kept")  # joins by a dataset-member entry
        self.d.ctl("shred", digests[0])
        m = self.manifest("kept")
        p = self.audit("kept", "--manifest", self.write_json("m.json", m))
        self.assertEqual(p.returncode, 1, p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual((report["members"], report["deleted"]), (5, 1))
        self.assertEqual(report["treeSize"], self.tree_size(self.d))
        for left_out in (digests[1], tagged):
            bad = dict(m, members=[x for x in m["members"] if x["digest"] != left_out])
            p = self.audit("kept", "--manifest", self.write_json("bad.json", bad))
            self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
            self.assertIn('leaves out 1 of the log\'s custody entries for dataset "kept"', p.stderr.decode())
        # Leaving out only deleted members fails the same way.
        bad = dict(m, members=[x for x in m["members"] if x["digest"] != digests[0]])
        self.assertEqual(self.audit("kept", "--manifest", self.write_json("bad.json", bad)).returncode, 3)

    def test_audit_refuses_a_made_up_dataset_salt(self):
        # Nothing shredded: a manifest with a salt of the vendor's choosing
        # and no members opens a commitment no custody entry carries, and
        # used to pass as "every member deleted" (exit 0).
        self.batch([os.urandom(40) for _ in range(2)], "faces", lambda i: "s")
        m = self.manifest("faces")
        p = self.audit("faces", "--manifest", self.write_json("m.json", m))
        self.assertEqual(p.returncode, 1, p.stderr)
        fake = dict(m, datasetSalt=os.urandom(32).hex(), members=[])
        p = self.audit("faces", "--manifest", self.write_json("fake.json", fake))
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn('no dataset-registered entry of the log has the commitment of dataset "faces"',
                      p.stderr.decode())
        # A dataset registered with no items is truly empty, and audits so.
        empty = os.path.join(self.tmp, "none.txt")
        open(empty, "w").close()
        self.d.ctl("dataset", "register", "empty", "--manifest", empty)
        p = self.audit("empty")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(json.loads(p.stdout)["members"], 0)

    def test_an_item_stored_again_after_its_shred_is_audited_per_custody(self):
        # Shredded, its suppression lifted, stored again: two custody
        # entries, each with its own salt; the first one's deletion stays
        # proven, whatever the second incarnation's datasets are.
        for ds, again_in in (("a1", ["a1"]), ("a2", [])):
            photo = os.urandom(64)
            digest = self.d.put_bytes(photo, datasets=[ds])
            self.d.ctl("shred", digest)
            self.d.ctl("suppression", "lift", digest, "--reason", "stored again by mistake")
            self.d.put_bytes(photo, datasets=again_in)
            p = self.audit(ds)
            report = json.loads(p.stdout)
            if again_in:
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertEqual((report["members"], report["deleted"]), (2, 1))
                self.assertEqual([x["digest"] for x in report["notDeleted"]], [digest])
            else:
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual((report["members"], report["deleted"]), (1, 1))
            self.d.ctl("shred", digest)
            self.assertEqual(self.audit(ds).returncode, 0)
            # Lifted again with nothing stored since: the last custody's
            # deletion is still named.
            self.d.ctl("suppression", "lift", digest, "--reason", "next round")
            self.assertEqual(self.audit(ds).returncode, 0)

class AuditFromTilesTest(DaemonTest):
    """`log audit --tiles`: a regulator with the public tiles, the dataset
    manifest and the certificates' manifests handed over needs no daemon."""

    def setUp(self):
        super().setUp()
        self.tiles = os.path.join(self.tmp, "tiles")
        self.d.stop()
        self.d.extra_args = ["--log-tiles-dir", self.tiles]
        self.d.start()

    def test_audit_from_the_tiles_without_the_daemon(self):
        vkey = os.path.join(self.tmp, "log.vkey")
        self.d.ctl("pubkey", "--format", "vkey", "-o", vkey)
        for i in range(300):  # more than one entry bundle of 256
            self.d.put_bytes(b"photo %d" % i, datasets=["faces"] if i % 3 == 0 else [])
        out = os.path.join(self.tmp, "o.json")
        self.d.ctl("order", "submit", "--id", "o", "--basis", "other", "--reference", "r", "--dataset", "faces",
                   "-o", out)
        from shredd.v1 import orders_pb2 as opb, orders_pb2_grpc as opb_grpc
        manifest = opb_grpc.CatalogStub(self.d.channel()).GetDatasetManifest(
            opb.DatasetManifestRequest(name="faces")).manifest
        cert_id = json.loads(manifest)["members"][0]["deletion"]["certificateId"]
        cert_manifest = self.d.shredder().GetCertificate(pb.GetCertificateRequest(certificate_id=cert_id)).manifest
        files = {}
        for name, data in (("ds.json", manifest), ("cert.manifest.json", cert_manifest)):
            files[name] = os.path.join(self.tmp, name)
            with open(files[name], "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode())
        size = AuditTest.tree_size(self.d)
        deadline = time.time() + 30
        while time.time() < deadline and read_text(os.path.join(self.tiles, "checkpoint")).split("\n")[1] != str(size):
            time.sleep(0.05)
        self.d.stop()
        p = ctl_offline("--json", "log", "audit", "--dataset", "faces", "--vkey", vkey, "--tiles", self.tiles,
                        "--manifest", files["ds.json"], "--cert-manifest", files["cert.manifest.json"], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual((report["members"], report["deleted"], report["treeSize"]), (100, 100, size))
        # A tampered entry bundle no longer matches the signed checkpoint.
        bundle = os.path.join(self.tiles, "tile", "entries", "000")
        with open(bundle, "r+b") as f:
            data = bytearray(f.read())
            data[-3] ^= 1
            f.seek(0)
            f.write(data)
        p = ctl_offline("log", "audit", "--dataset", "faces", "--vkey", vkey, "--tiles", self.tiles,
                        "--manifest", files["ds.json"], "--cert-manifest", files["cert.manifest.json"], check=False)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("do not match its checkpoint", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
