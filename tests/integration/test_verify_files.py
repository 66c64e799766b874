"""`shredctl verify` reads one certificate per file (issue 12, defect 11):
a genuine certificate followed by a NUL and another document, or with a
member given twice, is refused (exit 3), and so is such a receipt."""
import json
import os
import unittest

from harness import DaemonTest, ctl_offline


class VerifyFilesTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", self.pem)
        self.digests = [self.d.put_bytes(b"verify-files photo %d" % i) for i in range(2)]
        self.cert = os.path.join(self.tmp, "a.json")
        self.other = os.path.join(self.tmp, "b.json")
        self.d.ctl("shred", self.digests[0], "--reason", "first", "-o", self.cert)
        self.d.ctl("shred", self.digests[1], "--reason", "second", "-o", self.other)
        self.receipt = os.path.join(self.tmp, "r.json")
        self.d.ctl("receipt", "--manifest", os.path.join(self.tmp, "a.manifest.json"), "--item", self.digests[0],
                   "-o", self.receipt)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def verify(self, cert, *extra):
        return ctl_offline("verify", cert, "--pubkey", self.pem, *extra, check=False)

    def test_genuine_files_verify(self):
        self.assertEqual(self.verify(self.cert).returncode, 0)
        self.assertEqual(self.verify(self.write("nl.json", self.read(self.cert) + b"\n")).returncode, 0)
        p = self.verify(self.cert, "--receipt", self.receipt, "--item", self.digests[0])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_certificate_with_a_nul_and_a_second_document_is_refused(self):
        smuggled = self.write("smuggled.json", self.read(self.cert).rstrip(b"\n") + b"\0" + self.read(self.other))
        p = self.verify(smuggled)
        self.assertEqual(p.returncode, 3, (p.stdout, p.stderr))
        self.assertIn(b"NUL", p.stderr)

    def test_duplicate_envelope_members_are_refused(self):
        env = json.loads(self.read(self.cert))
        other = json.loads(self.read(self.other))
        text = json.dumps(env, separators=(",", ":"))
        dup = text.replace('"payload":', '"payload":%s,"payload":' % json.dumps(other["payload"]), 1)
        p = self.verify(self.write("dup.json", dup.encode()))
        self.assertEqual(p.returncode, 3, (p.stdout, p.stderr))
        self.assertIn(b"duplicate member", p.stderr)

    def test_receipt_with_a_duplicate_member_or_trailing_bytes_is_refused(self):
        good = self.read(self.receipt).rstrip(b"\n")
        for name, data in (("dup-receipt.json", b'{"leafIndex":0,' + good[1:]),
                           ("nul-receipt.json", good + b"\0{}")):
            with self.subTest(name):
                p = self.verify(self.cert, "--receipt", self.write(name, data), "--item", self.digests[0])
                self.assertEqual(p.returncode, 3, (p.stdout, p.stderr))

    def test_deeply_nested_files_are_refused_not_a_crash(self):
        # Nesting beyond the strict parser's cap (1000, as the page's) is
        # refused; 200000 deep used to crash shredctl (SIGSEGV in the
        # re-serialisation of a bundle's envelope or receipt).
        deep = "[" * 200000 + "]" * 200000
        env = json.loads(self.read(self.cert))
        bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                  "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []}, "dsseEnvelope": env}
        bundle_text = json.dumps(bundle)
        receipts = {"type": "shredd-receipt-bundle-v1", "certificateId": "x",
                    "receipts": [json.loads(self.read(self.receipt))]}
        receipts_text = json.dumps(receipts)
        cases = {
            "sigstore": (bundle_text.replace('"dsseEnvelope": {', '"dsseEnvelope": {"x": %s, ' % deep, 1), ()),
            "envelope": (json.dumps(env).replace("{", '{"x": %s, ' % deep, 1), ()),
            "receipts": (self.read(self.cert).decode(),
                         ("--receipt", self.write("deep.receipts.json",
                                                  receipts_text.replace('"receipts": [{', '"receipts": [{"x": %s, ' % deep,
                                                                        1).encode()),
                          "--item", self.digests[0])),
        }
        for name, (cert, extra) in cases.items():
            with self.subTest(name):
                p = self.verify(self.write(name + ".json", cert.encode()), *extra)
                self.assertEqual(p.returncode, 3, (p.returncode, p.stderr[-300:]))
                self.assertIn(b"nested more than 1000 arrays and objects deep", p.stderr)
        # The same files without the nesting verify: the cap is what refused them.
        self.assertEqual(self.verify(self.write("b.sigstore.json", bundle_text.encode())).returncode, 0)
        self.assertEqual(self.verify(self.cert, "--receipt", self.write("r.receipts.json", receipts_text.encode()),
                                     "--item", self.digests[0]).returncode, 0)

    def test_a_bundled_receipt_is_judged_as_in_a_file_of_its_own(self):
        # A receipt bundle's receipt used to be re-serialised before it was
        # verified: "leafIndex": -0 (not a non-negative integer as read, and
        # refused in a file of its own, by shredctl and the page) came out
        # as 0 and the bundle verified.
        receipt = json.loads(self.read(self.receipt))
        self.assertEqual((receipt["leafIndex"], receipt["treeSize"]), (0, 1))
        text = json.dumps(receipt, separators=(",", ":")).replace('"leafIndex":0', '"leafIndex":-0', 1)
        self.assertIn('"leafIndex":-0', text)
        bundle = '{"type":"shredd-receipt-bundle-v1","certificateId":"x","receipts":[%s]}' % text
        for name, data in (("minus-zero.json", text), ("minus-zero.receipts.json", bundle)):
            with self.subTest(name):
                p = self.verify(self.cert, "--receipt", self.write(name, data.encode()), "--item", self.digests[0])
                self.assertEqual(p.returncode, 3, (p.stdout, p.stderr))
                self.assertIn(b"receipt.leafIndex is not a non-negative integer", p.stderr)
        # Spelled otherwise but with the same values, it verifies either way.
        plain = json.dumps(receipt, separators=(",", ":"))
        bundle = '{"type":"shredd-receipt-bundle-v1","certificateId":"x","receipts":[%s]}' % plain
        p = self.verify(self.cert, "--receipt", self.write("ok.receipts.json", bundle.encode()), "--item",
                        self.digests[0])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_sigstore_bundles_envelope_is_read_as_written(self):
        # The bundle's dsseEnvelope is read from the parsed bundle, not from a
        # re-serialisation of it. No envelope is judged differently for that
        # (its members are strings, read the same either way): this pins it.
        env = json.loads(self.read(self.cert))
        self.assertEqual(env["payloadType"], "application/vnd.in-toto+json")
        sig = env["signatures"][0]
        spelled = ('{"signatures":[{"sig":"%s","keyid":"%s"}],"x":-0,"y":1E2,'
                   '"payloadType":"\\u0061pplication\\/vnd.in-toto+json","payload":"%s"}'
                   % (sig["sig"], sig["keyid"], env["payload"]))
        head = ('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",'
                '"verificationMaterial":{"publicKey":{"hint":""},"tlogEntries":[]},"dsseEnvelope":')
        proof = os.path.join(self.tmp, "a.tlog-proof")  # the logged entry is the envelope as issued
        p = self.verify(self.write("spelled.sigstore.json", (head + spelled + "}").encode()), "--proof", proof)
        self.assertEqual(p.returncode, 0, p.stderr)
        bad = spelled.replace('"sig":"%s"' % sig["sig"], '"sig":-0', 1)
        p = self.verify(self.write("bad.sigstore.json", (head + bad + "}").encode()))
        self.assertEqual(p.returncode, 3, (p.stdout, p.stderr))
        self.assertIn(b'the Sigstore bundle\'s dsseEnvelope: signatures[0] member "sig" is a number, not a string',
                      p.stderr)


if __name__ == "__main__":
    unittest.main()
