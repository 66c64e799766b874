"""Shredding and certificates (issue 3) against the real daemon, checked by
shredctl's offline verifier, the independent PyNaCl verifier
(tests/tools/verify_cert.py) and plain openssl (tests/tools/openssl_verify.sh)."""
import base64
import json
import os
import subprocess
import unittest

from harness import REPO, DaemonTest, ctl_offline, grpc, pb, pb_grpc, read_json, read_text, sha256_digest
from shredd.v1 import log_pb2 as lpb, log_pb2_grpc as lpb_grpc

PYNACL_VERIFIER = os.path.join(REPO, "tests", "tools", "verify_cert.py")
OPENSSL_VERIFIER = os.path.join(REPO, "tests", "tools", "openssl_verify.sh")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


class ShredTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.x = os.urandom(200_000)   # file-backed
        self.y = os.urandom(1000)      # inline
        self.z = os.urandom(3000)
        self.dx = self.d.put_bytes(self.x, subjects=["subject-x"])
        self.dy = self.d.put_bytes(self.y)
        self.dz = self.d.put_bytes(self.z, kind=pb.KIND_MODEL)
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "--format", "pem", "-o", self.pem)

    def shred(self, *digests, extra=()):
        cert = os.path.join(self.tmp, "cert-%d.json" % len(os.listdir(self.tmp)))
        self.d.ctl("shred", *digests, "--reason", "test order", "-o", cert, *extra)
        manifest = cert[:-5] + ".manifest.json"
        self.assertTrue(os.path.exists(manifest))
        return cert, manifest

    def log_size(self):
        return lpb_grpc.LogStub(self.d.channel()).GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30).tree_size

    def verify(self, cert, *extra, pub=None):
        return ctl_offline("verify", cert, "--pubkey", pub or self.pem, *extra, check=False)

    def test_shred_makes_item_unreadable_and_certificate_verifies_everywhere(self):
        cert, manifest = self.shred(self.dx, self.dz)
        for d in (self.dx, self.dz):
            e = self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, d)
            self.assertIn("shredded", e.details())
        self.assertEqual(self.d.get_bytes(self.dy), self.y)
        # shredctl (offline), with the manifest
        p = self.verify(cert, "--manifest", manifest)
        self.assertEqual(p.returncode, 0, p.stderr)
        # an independent implementation (PyNaCl), with the manifest
        p = subprocess.run(["/usr/bin/python3", PYNACL_VERIFIER, cert, "--pubkey", self.pem, "--manifest", manifest],
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # only openssl and the shell (the README's recipe)
        p = subprocess.run(["sh", OPENSSL_VERIFIER, cert, self.pem], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # content of the predicate
        env = read_json(cert)
        stmt = json.loads(base64.b64decode(env["payload"]))
        pred = stmt["predicate"]
        self.assertEqual(pred["items"]["count"], 2)
        self.assertEqual(pred["items"]["byKind"], {"photo": 1, "model": 1})
        self.assertEqual(pred["method"]["technique"], "cryptographic-erase")
        self.assertEqual(pred["destruction"]["vaultBackend"], "file")
        self.assertEqual(pred["destruction"]["rootEpochInstalled"], pred["destruction"]["rootEpochDestroyed"] + 1)
        self.assertEqual(pred["request"]["reason"], "test order")
        # invariant 6: no bare digest of a shredded item in the public certificate
        text = read_text(cert) + base64.b64decode(env["payload"]).decode()
        for d in (self.dx, self.dz):
            self.assertNotIn(d.split(":")[1], text)

    def test_receipts_prove_membership_offline(self):
        cert, manifest = self.shred(self.dx, self.dz)
        itemfile = write(os.path.join(self.tmp, "x.bin"), self.x)
        receipt = os.path.join(self.tmp, "x.receipt.json")
        ctl_offline("receipt", "--manifest", manifest, "--item", itemfile, "-o", receipt)
        p = self.verify(cert, "--receipt", receipt, "--item", itemfile)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.verify(cert, "--receipt", receipt, "--item", self.dx)
        self.assertEqual(p.returncode, 0, p.stderr)
        # a receipt does not prove another item
        p = self.verify(cert, "--receipt", receipt, "--item", self.dy)
        self.assertEqual(p.returncode, 3)
        self.assertIn("receipt", p.stderr.decode())
        # an item not in the certificate has no receipt
        p = ctl_offline("receipt", "--manifest", manifest, "--item", self.dy, check=False)
        self.assertEqual(p.returncode, 4)
        # receipts from the RPC are the same format
        r = self.d.shredder().GetCertificate(pb.GetCertificateRequest(
            certificate_id=read_json(manifest)["certificateId"], include_receipts=True))
        self.assertEqual(len(r.receipts), 2)
        for rc in r.receipts:
            rj = json.loads(rc)
            path = write(os.path.join(self.tmp, "r.json"), rc)
            self.assertEqual(self.verify(cert, "--receipt", path, "--item", rj["item"]["digest"]).returncode, 0)

    def test_tampering_and_wrong_keys_fail_with_a_reason(self):
        cert, manifest = self.shred(self.dx, self.dz)
        env = read_json(cert)
        # tampered payload (re-encoded, signature kept)
        stmt = json.loads(base64.b64decode(env["payload"]))
        stmt["predicate"]["items"]["byKind"]["photo"] = 0
        stmt["predicate"]["items"]["byKind"]["model"] = 2
        bad = dict(env, payload=base64.b64encode(json.dumps(stmt).encode()).decode())
        p = self.verify(write(os.path.join(self.tmp, "bad1.json"), json.dumps(bad).encode()))
        self.assertEqual(p.returncode, 3)
        self.assertIn("signature", p.stderr.decode())
        # tampered signature
        sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
        sig[5] ^= 1
        bad = dict(env, signatures=[dict(env["signatures"][0], sig=base64.b64encode(bytes(sig)).decode())])
        p = self.verify(write(os.path.join(self.tmp, "bad2.json"), json.dumps(bad).encode()))
        self.assertEqual(p.returncode, 3)
        # the independent verifiers agree
        for path in ("bad1.json", "bad2.json"):
            q = subprocess.run(["/usr/bin/python3", PYNACL_VERIFIER, os.path.join(self.tmp, path), "--pubkey", self.pem],
                               capture_output=True)
            self.assertNotEqual(q.returncode, 0)
            q = subprocess.run(["sh", OPENSSL_VERIFIER, os.path.join(self.tmp, path), self.pem], capture_output=True)
            self.assertNotEqual(q.returncode, 0)
        # wrong key
        other = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, check=True).stdout
        otherpub = subprocess.run(["openssl", "pkey", "-pubout"], input=other, capture_output=True, check=True).stdout
        p = self.verify(cert, pub=write(os.path.join(self.tmp, "other.pem"), otherpub))
        self.assertEqual(p.returncode, 3)
        # tampered manifest: a changed salt, a dropped item
        m = read_json(manifest)
        m2 = json.loads(json.dumps(m))
        m2["items"][0]["salt"] = "00" * 32
        p = self.verify(cert, "--manifest", write(os.path.join(self.tmp, "m2.json"), json.dumps(m2).encode()))
        self.assertEqual(p.returncode, 3)
        self.assertIn("manifest", p.stderr.decode())
        m3 = json.loads(json.dumps(m))
        m3["items"] = m3["items"][:1]
        p = self.verify(cert, "--manifest", write(os.path.join(self.tmp, "m3.json"), json.dumps(m3).encode()))
        self.assertEqual(p.returncode, 3)
        # tampered receipt path
        r = json.loads(ctl_offline("receipt", "--manifest", manifest, "--item", self.dx).stdout)
        r["inclusionPath"][0] = "ff" * 32
        p = self.verify(cert, "--receipt", write(os.path.join(self.tmp, "r.json"), json.dumps(r).encode()),
                        "--item", self.dx)
        self.assertEqual(p.returncode, 3)

    def test_vkey_export_verifies_too(self):
        vkey = os.path.join(self.tmp, "pub.vkey")
        self.d.ctl("pubkey", "--format", "vkey", "-o", vkey)
        text = read_text(vkey).strip()
        name, keyhash, b64 = text.split("+", 2)
        self.assertEqual(len(keyhash), 8)
        self.assertEqual(base64.b64decode(b64)[0], 1)  # Ed25519 algorithm byte
        cert, manifest = self.shred(self.dy)
        self.assertEqual(self.verify(cert, "--manifest", manifest, pub=vkey).returncode, 0)

    def test_unknown_and_already_shredded_digests(self):
        unknown = sha256_digest(b"never stored")
        p = self.d.ctl("shred", unknown, check=False)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("not stored", p.stderr.decode())
        p = self.d.ctl("shred", "sha256:nothex", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("malformed digest", p.stderr.decode())
        # nothing changed: no epoch was spent, the item is intact
        self.assertEqual(self.d.get_bytes(self.dy), self.y)

        r1 = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], request_id="order-1"))
        # same request id again: the same certificate, no new destruction
        r2 = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], request_id="order-1"))
        self.assertEqual(r1.certificate_id, r2.certificate_id)
        self.assertEqual(r1.certificate, r2.certificate)
        # another request for the same digest: refused, naming the certificate
        e = self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.d.shredder().Shred,
                                pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], request_id="order-2"))
        self.assertIn(r1.certificate_id, e.details())
        # without a request id, repeating the same set returns one certificate
        a = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dz)]))
        b = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dz)]))
        self.assertEqual(a.certificate_id, b.certificate_id)
        # and re-upload of shredded content is refused
        self.assertRpcError(grpc.StatusCode.FAILED_PRECONDITION, self.d.put_bytes, self.y)

    def test_a_request_id_stands_for_one_request(self):
        # An idempotency key answers a retry of its request, not another
        # request: the same id with other digests or another reason used
        # to return the first certificate, leaving the second item readable.
        shred = self.d.shredder().Shred
        first = shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dx)], reason="art. 17", request_id="t-1"))
        for digests, reason in (([self.dy], "art. 17"), ([self.dx, self.dy], "art. 17"), ([self.dx], "other")):
            e = self.assertRpcError(grpc.StatusCode.ALREADY_EXISTS, shred,
                                    pb.ShredRequest(digests=[pb.Digest(hash=h) for h in digests], reason=reason,
                                                    request_id="t-1"))
            self.assertIn(first.certificate_id, e.details())
            self.assertIn("own request id", e.details())
        self.assertEqual(self.d.get_bytes(self.dy), self.y)
        # the retry itself (repeated digests, in any order) is answered
        again = shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dx)] * 2, reason="art. 17", request_id="t-1"))
        self.assertEqual(again.certificate_id, first.certificate_id)
        by_request = self.d.shredder().GetCertificate(pb.GetCertificateRequest(request_id="t-1"))
        self.assertEqual(by_request.certificate_id, first.certificate_id)
        # The daemon's own request ids are not open to clients: a shred
        # under "order:o1" used to complete a later order o1 with its
        # certificate, destroying nothing of what the order named.
        for rid in ("order:o1", "auto:" + "0" * 64):
            e = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, shred,
                                    pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], request_id=rid))
            self.assertIn("keeps for its own ids", e.details())
        self.assertEqual(self.d.get_bytes(self.dy), self.y)
        self.d.ctl("order", "submit", "--id", "o1", "--basis", "gdpr-art17", "--reference", "r-1", "--digest", self.dy)
        self.d.ctl("order", "wait", "o1", "--timeout", "60")
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, self.dy)

    def test_an_automatic_request_id_is_bound_to_its_reason(self):
        # Without a request id the daemon derives one from the digests; the
        # same digests with another reason used to answer OK with the first
        # certificate, which states the first reason.
        shred = self.d.shredder().Shred
        first = shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], reason="art. 17"))
        log_size = self.log_size()
        e = self.assertRpcError(grpc.StatusCode.ALREADY_EXISTS, shred,
                                pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], reason="another reason"))
        self.assertIn(first.certificate_id, e.details())
        self.assertIn('"art. 17"', e.details())
        self.assertEqual(self.log_size(), log_size)
        again = shred(pb.ShredRequest(digests=[pb.Digest(hash=self.dy)], reason="art. 17"))
        self.assertEqual(again.certificate_id, first.certificate_id)

    def test_a_wrong_size_is_refused_and_nothing_is_shredded(self):
        # A digest is hash and size: a 300-byte item shredded as 7 bytes used
        # to be shredded, the size ignored. It is INVALID_ARGUMENT, as a Put
        # of the wrong size; not NOT_FOUND, which a deleting client could
        # read as "already gone".
        data = os.urandom(300)
        dw = self.d.put_bytes(data)
        log_size = self.log_size()
        for size in (7, 301):
            digests = [pb.Digest(hash=self.dy), pb.Digest(hash=dw, size_bytes=size)]
            e = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.d.shredder().Shred,
                                    pb.ShredRequest(digests=digests, reason="r"))
            self.assertIn("is stored with size 300, not %d" % size, e.details())
        self.assertEqual(self.d.get_bytes(dw), data)
        self.assertEqual(self.d.get_bytes(self.dy), self.y)
        self.assertEqual(self.log_size(), log_size)
        r = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=dw, size_bytes=300)], reason="r"))
        self.assertEqual(r.item_count, 1)

    def test_a_download_in_progress_stops_at_the_shred(self):
        # The reader holds the content key, which the destruction cannot
        # reach: it used to go on serving every byte after the certificate.
        big = os.urandom(48 << 20)
        digest = self.d.put_bytes(big)
        # A client that reads slowly: no BDP-grown window, so the daemon
        # cannot have sent everything before it reads on.
        ch = grpc.insecure_channel(self.d.address, options=[("grpc.http2.bdp_probe", 0)])
        stream = pb_grpc.StoreStub(ch).Get(pb.GetRequest(digest=pb.Digest(hash=digest)), timeout=60)
        got = len(next(stream).data)
        cert = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)]))
        self.assertTrue(cert.certificate_id)
        with self.assertRaises(grpc.RpcError) as cm:
            for reply in stream:
                got += len(reply.data)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, cm.exception.details())
        self.assertIn("shredded during the download", cm.exception.details())
        self.assertLess(got, 16 << 20, "%d of %d bytes came after the shred" % (got, len(big)))
        ch.close()

    def test_certificates_survive_restart(self):
        cert, manifest = self.shred(self.dx)
        cid = read_json(manifest)["certificateId"]
        self.d.stop()
        self.d.start()
        out = os.path.join(self.tmp, "again.json")
        self.d.ctl("certificate", cid, "-o", out)
        self.assertEqual(read_text(out), read_text(cert))
        self.assertEqual(self.d.get_bytes(self.dy), self.y)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.d.get_bytes, self.dx)


if __name__ == "__main__":
    unittest.main()
