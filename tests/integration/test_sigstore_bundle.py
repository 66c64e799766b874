"""Certificates as Sigstore bundles (issue 15 part 7, docs/VERIFY.md):
`shred -o CERT` and `order submit/wait -o CERT` also write CERT.sigstore.json
(bundle v0.3: the DSSE envelope, a publicKey hint, no tlog entries);
sigstore-js (@sigstore/verify from npm, pinned in tests/js/package-lock.json)
verifies it against the vendor's PEM key and refuses a tampered one; and
`shredctl verify` accepts the bundle in place of the envelope."""
import base64
import json
import os
import shutil
import subprocess
import unittest

from harness import REPO, DaemonTest, ctl_offline

NODE = shutil.which("node") or "/usr/bin/node"
JS_DIR = os.path.join(REPO, "tests", "js")
VERIFY_JS = os.path.join(JS_DIR, "verify_sigstore_bundle.js")


def sigstore_js_missing():
    if not os.path.exists(NODE):
        return "node"
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "@sigstore", "verify")):
        return "tests/js/node_modules (npm ci in tests/js)"
    return None


class SigstoreBundleTest(DaemonTest):
    def setUp(self):
        # Fail, not skip: scripts/install-deps.sh runs `npm ci` in tests/js.
        missing = sigstore_js_missing()
        if missing:
            self.fail("missing %s: run scripts/install-deps.sh" % missing)
        super().setUp()
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", self.pem)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def sigstore_js(self, bundle):
        return subprocess.run([NODE, VERIFY_JS, bundle, self.pem], capture_output=True, timeout=60)

    def shred_one(self, name):
        digest = self.d.put_bytes(b"sigstore photo " + name.encode() + os.urandom(16))
        cert = self.path(name + ".json")
        self.d.ctl("shred", digest, "--reason", "sigstore test", "-o", cert)
        return cert, self.path(name + ".sigstore.json")

    def test_shred_writes_a_bundle_that_sigstore_js_and_shredctl_verify(self):
        cert, bundle = self.shred_one("cert")
        with open(bundle) as f:
            b = json.load(f)
        with open(cert) as f:
            env = json.load(f)
        self.assertEqual(b["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json")
        keyid = env["signatures"][0]["keyid"]
        self.assertEqual(b["verificationMaterial"], {"publicKey": {"hint": keyid}, "tlogEntries": []})
        self.assertEqual(b["dsseEnvelope"], {"payload": env["payload"], "payloadType": env["payloadType"],
                                             "signatures": [{"sig": env["signatures"][0]["sig"], "keyid": keyid}]})
        self.assertEqual(os.stat(bundle).st_mode & 0o077, os.stat(cert).st_mode & 0o077)  # public, like CERT

        p = self.sigstore_js(bundle)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.decode().strip(), "OK application/vnd.in-toto+json")
        p = ctl_offline("verify", bundle, "--pubkey", self.pem, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"signature OK", p.stdout)

    def test_tampered_bundle_fails_in_sigstore_js_and_shredctl(self):
        _, bundle = self.shred_one("cert")
        with open(bundle) as f:
            b = json.load(f)
        statement = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
        statement["predicate"]["items"]["byKind"]["photo"] = 0
        statement["predicate"]["items"]["count"] = 0
        b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        tampered = self.path("tampered.sigstore.json")
        with open(tampered, "w") as f:
            json.dump(b, f)
        p = self.sigstore_js(tampered)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn(b"signature verification failed", p.stderr)
        p = ctl_offline("verify", tampered, "--pubkey", self.pem, check=False)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b"signature does not verify", p.stderr)

    def test_wrong_key_fails_in_sigstore_js(self):
        _, bundle = self.shred_one("cert")
        import nacl.signing
        der = bytes.fromhex("302a300506032b6570032100") + nacl.signing.SigningKey.generate().verify_key.encode()
        with open(self.pem, "wb") as f:
            f.write(b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n")
        p = self.sigstore_js(bundle)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)

    def test_order_wait_writes_a_bundle(self):
        self.d.put_bytes(b"order photo" + os.urandom(8), datasets=["ds"])
        cert = self.path("order.json")
        self.d.ctl("order", "submit", "--id", "sig-1", "--basis", "contract", "--reference", "R1",
                   "--dataset", "ds", "-o", cert)
        bundle = self.path("order.sigstore.json")
        p = self.sigstore_js(bundle)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        os.remove(bundle)
        self.d.ctl("order", "wait", "sig-1", "-o", cert)
        self.assertEqual(self.sigstore_js(bundle).returncode, 0)

    def test_a_bundle_without_a_dsse_envelope_is_refused(self):
        bad = self.path("bad.sigstore.json")
        with open(bad, "w") as f:
            json.dump({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                       "messageSignature": {"messageDigest": {}, "signature": ""}}, f)
        p = ctl_offline("verify", bad, "--pubkey", self.pem, check=False)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b"carries no \"dsseEnvelope\"", p.stderr)


if __name__ == "__main__":
    unittest.main()
