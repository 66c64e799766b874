"""Runs the README's "Verify a certificate without shredd" recipes verbatim
(certificate with jq + openssl, receipt with Python's hashlib, checkpoint
with openssl) against real daemon output: genuine, pretty-printed,
tampered and NUL-appended inputs (issue 15, part 3).

Each block is run as a user would paste it, with plain `sh -c` (no -e from
outside): it must fail by itself, with a non-zero exit and without printing
the payload."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import unittest

import nacl.signing

from harness import REPO, DaemonTest, read_text

PREDICATE = b"https://shredd.dev/attestations/deletion/v1"


def readme_block(name):
    text = read_text(os.path.join(REPO, "README.md"))
    m = re.search(r"<!-- %s:start -->\s*```sh\n(.*?)```\s*<!-- %s:end -->" % (name, name), text, re.S)
    assert m, "README lost its %s block" % name
    return m.group(1)


def run_block(name, workdir):
    return subprocess.run(["sh", "-c", readme_block(name)], cwd=workdir, capture_output=True)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


class ReadmeRecipeTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.work = os.path.join(self.tmp, "work")
        os.makedirs(self.work)
        self.photo = os.urandom(5000)
        d = self.d.put_bytes(self.photo)
        others = [self.d.put_bytes(os.urandom(700 + i)) for i in range(4)]  # a real Merkle path
        self.d.ctl("pubkey", "--format", "pem", "-o", self.path("shredd.pem"))
        self.d.ctl("shred", d, *others, "-o", self.path("issued.json"))
        self.issued = open(self.path("issued.json"), "rb").read()
        write(self.path("photo.jpg"), self.photo)
        self.d.ctl("receipt", "--manifest", self.path("issued.manifest.json"), "--item", self.path("photo.jpg"), "-o",
                   self.path("receipt.json"))

    def path(self, name):
        return os.path.join(self.work, name)

    def cert_recipe(self, cert_bytes):
        write(self.path("cert.json"), cert_bytes)
        return run_block("verify-openssl", self.work)

    def assert_cert_accepted(self, cert_bytes):
        p = self.cert_recipe(cert_bytes)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"Signature Verified Successfully", p.stdout + p.stderr)
        self.assertIn(PREDICATE, p.stdout)

    def assert_cert_refused(self, cert_bytes, why):
        p = self.cert_recipe(cert_bytes)
        self.assertNotEqual(p.returncode, 0, why)
        self.assertNotIn(PREDICATE, p.stdout, why + ": the payload was printed")
        self.assertNotIn(b"Verified Successfully", p.stdout + p.stderr, why)

    def forged(self, envelope):
        payload = base64.b64decode(envelope["payload"]).replace(b'"count":5', b'"count":0')
        self.assertIn(b'"count":0', payload)
        return dict(envelope, payload=base64.b64encode(payload).decode())

    def test_certificate_recipe_accepts_any_formatting_of_a_genuine_certificate(self):
        self.assert_cert_accepted(self.issued)
        env = json.loads(self.issued)
        self.assert_cert_accepted(json.dumps(env, indent=4).encode() + b"\n")
        pretty = subprocess.run(["python3", "-m", "json.tool", self.path("issued.json")], capture_output=True,
                                check=True).stdout
        self.assert_cert_accepted(pretty)
        self.assert_cert_accepted(json.dumps(dict(reversed(list(env.items())))).encode())

    def test_certificate_recipe_refuses_tampered_and_smuggled_certificates(self):
        env = json.loads(self.issued)
        forged = json.dumps(self.forged(env), separators=(",", ":")).encode()
        self.assert_cert_refused(forged, "forged payload")
        self.assert_cert_refused(self.issued + b"\0" + forged, "NUL then another certificate")
        self.assert_cert_refused(forged + b"\0" + self.issued, "forged, NUL, then the genuine one")
        self.assert_cert_refused(self.issued + forged, "two documents")
        dup = self.issued.replace(b'"payload":', b'"payload":' + json.dumps(self.forged(env)["payload"]).encode() +
                                  b',"payload":', 1)
        self.assert_cert_refused(dup, "payload member twice")
        self.assert_cert_refused(self.issued.replace(b"application/vnd.in-toto+json", b"text/plain"), "payload type")
        self.assert_cert_refused(b"", "empty file")

    def test_receipt_recipe_covers_the_photo_and_nothing_else(self):
        ok = self.cert_recipe(self.issued)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        p = run_block("verify-receipt", self.work)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"is covered by deletion certificate", p.stdout)
        shutil.copy(self.path("receipt.json"), self.path("receipt.orig"))

        write(self.path("photo.jpg"), self.photo + b"x")
        p = run_block("verify-receipt", self.work)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"this file's digest", p.stderr)
        self.assertNotIn(b"covered", p.stdout)
        write(self.path("photo.jpg"), self.photo)

        receipt = json.loads(read_text(self.path("receipt.orig")))
        receipt["inclusionPath"][0] = "00" * 32
        write(self.path("receipt.json"), json.dumps(receipt, indent=2).encode())
        p = run_block("verify-receipt", self.work)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"does not lead to", p.stderr)

        write(self.path("receipt.json"), open(self.path("receipt.orig"), "rb").read() + b"\0{}")
        p = run_block("verify-receipt", self.work)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn(b"covered", p.stdout)

    def test_checkpoint_recipe_verifies_the_log_signature(self):
        _, lines = self.d.ctl("log", "checkpoint", json_out=True)
        write(self.path("log.vkey"), lines[0]["verifierKey"].encode() + b"\n")
        write(self.path("checkpoint.txt"), self.d.ctl("log", "checkpoint").stdout)
        p = run_block("verify-checkpoint", self.work)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"Signature Verified Successfully", p.stdout + p.stderr)
        lines = open(self.path("checkpoint.txt"), "rb").read().split(b"\n")
        self.assertIn(lines[1], p.stdout)  # the tree size

        lines[1] = str(int(lines[1]) + 1).encode()
        write(self.path("checkpoint.txt"), b"\n".join(lines))
        p = run_block("verify-checkpoint", self.work)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn(b"Verified Successfully", p.stdout + p.stderr)

    def test_checkpoint_recipe_refuses_a_note_for_another_origin(self):
        # The same key signs, under the vkey's name, a checkpoint whose origin
        # line is another log's: the signature verifies, so only comparing
        # the origin with the vkey's name refuses it.
        _, lines = self.d.ctl("log", "checkpoint", json_out=True)
        vkey = lines[0]["verifierKey"]
        write(self.path("log.vkey"), vkey.encode() + b"\n")
        name = vkey.split("+")[0].encode()
        with open(os.path.join(self.d.vault[len("file:"):], "signing.key"), "rb") as f:
            sk = nacl.signing.SigningKey(f.read())
        body_lines = self.d.ctl("log", "checkpoint").stdout.split(b"\n\n")[0].split(b"\n")
        self.assertEqual(body_lines[0], name)
        key_hash = hashlib.sha256(name + b"\n\x01" + sk.verify_key.encode()).digest()[:4]
        for origin in (name, b"other.example/log"):
            body = b"\n".join([origin] + body_lines[1:]) + b"\n"
            sig = base64.b64encode(key_hash + sk.sign(body).signature)
            write(self.path("checkpoint.txt"), body + b"\n\xe2\x80\x94 " + name + b" " + sig + b"\n")
            p = run_block("verify-checkpoint", self.work)
            with self.subTest(origin=origin):
                if origin == name:  # the note made here is right: the origin is all that differs
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertIn(b"Signature Verified Successfully", p.stdout + p.stderr)
                else:
                    self.assertNotEqual(p.returncode, 0)
                    self.assertNotIn(b"Verified Successfully", p.stdout + p.stderr)
                    self.assertNotIn(origin, p.stdout)


if __name__ == "__main__":
    unittest.main()
