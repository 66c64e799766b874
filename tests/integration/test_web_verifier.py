"""The verification page (`shredctl web-verifier`, docs/VERIFY.md) in a real
browser: headless Chromium from Debian, driven by Selenium, opens the page
from file:// and is given real files made by the real daemon (an order over a
dataset with two derived models, its tlog-proof, a data subject's receipt).
Each case asserts the verdict (#verdict data-result and reason) and the
summary, and that `shredctl verify` agrees; the page must make no network
request (CSP, and Chromium's network log shows only the page itself)."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import nacl.signing

from harness import SHREDCTL, Daemon, ctl_offline, file_digest

# A test signer for crafted certificates and logs (docs/FORMATS.md, LOG.md).
TEST_SK = nacl.signing.SigningKey(bytes(range(1, 33)))
TEST_PK = TEST_SK.verify_key.encode()
IN_TOTO = "application/vnd.in-toto+json"


def sha256(b):
    return hashlib.sha256(b).digest()


def b64(b):
    return base64.b64encode(b).decode()


def test_envelope(payload, extra=None):
    """The canonical envelope of `payload`, signed with the test key."""
    pae = b"DSSEv1 %d %s %d " % (len(IN_TOTO), IN_TOTO.encode(), len(payload)) + payload
    env = {"payloadType": IN_TOTO, "payload": b64(payload),
           "signatures": [{"keyid": "shredd:" + hashlib.sha256(TEST_PK).hexdigest(),
                           "sig": b64(TEST_SK.sign(pae).signature)}]}
    env.update(extra or {})
    return json.dumps(env, separators=(",", ":")).encode()


def test_vkey(name):
    key_hash = sha256(name.encode() + b"\n\x01" + TEST_PK)[:4]
    return ("%s+%s+%s\n" % (name, key_hash.hex(), b64(b"\x01" + TEST_PK))).encode()


def test_tlog_proof(entries, index, origin):
    """A c2sp.org/tlog-proof@v1 for entries[index], its checkpoint signed
    with the test key under `origin` (RFC 9162 tree)."""
    def mth(hs):
        if len(hs) == 1:
            return hs[0]
        k = 1
        while k * 2 < len(hs):
            k *= 2
        return sha256(b"\x01" + mth(hs[:k]) + mth(hs[k:]))

    def path(m, hs):
        if len(hs) <= 1:
            return []
        k = 1
        while k * 2 < len(hs):
            k *= 2
        return path(m, hs[:k]) + [mth(hs[k:])] if m < k else path(m - k, hs[k:]) + [mth(hs[:k])]

    leaves = [sha256(b"\x00" + e) for e in entries]
    text = "%s\n%d\n%s\n" % (origin, len(leaves), b64(mth(leaves)))
    key_hash = sha256(origin.encode() + b"\n\x01" + TEST_PK)[:4]
    note = text + "\n\u2014 %s %s\n" % (origin, b64(key_hash + TEST_SK.sign(text.encode()).signature))
    return ("c2sp.org/tlog-proof@v1\nindex %d\n" % index + "".join(b64(h) + "\n" for h in path(index, leaves))
            + "\n" + note).encode()


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INPUTS = ["cert", "key", "proof", "receipt", "photo"]


def missing_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    return missing


class WebVerifierTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Fail, not skip: scripts/install-deps.sh installs them.
        missing = missing_browser()
        if missing:
            raise AssertionError("missing %s: run scripts/install-deps.sh (chromium chromium-driver python3-selenium)"
                                 % ", ".join(missing))
        cls.tmp = tempfile.mkdtemp(prefix="shredd-web-")
        try:
            cls.make_files()
            cls.start_browser()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "driver", None):
            cls.driver.quit()
        if os.environ.get("SHREDD_KEEP_TMP"):
            print("kept", cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp, name)

    @classmethod
    def write(cls, name, data):
        with open(cls.path(name), "wb") as f:
            f.write(data)
        return cls.path(name)

    @classmethod
    def read(cls, name):
        with open(cls.path(name), "rb") as f:
            return f.read()

    @classmethod
    def make_files(cls):
        d = Daemon(os.path.join(cls.tmp, "daemon"))
        os.makedirs(d.root)
        d.start()
        try:
            d.ctl("pubkey", "-o", cls.path("pub.pem"))
            d.ctl("pubkey", "--format", "vkey", "-o", cls.path("log.vkey"))
            _, cp = d.ctl("log", "checkpoint", json_out=True)
            cls.origin = cp[0]["origin"]
            photos = []
            for i in range(3):
                photos.append(cls.write("photo%d.jpg" % i, b"\xff\xd8 a person's photo %d " % i + os.urandom(64)))
            d.ctl("put", *photos, "--dataset", "faces", "--subject", "alice")
            face = cls.write("face.bin", b"face model " + os.urandom(4000))
            _, lines = d.ctl("model", "register", face, "--trained-on", "faces", json_out=True)
            cls.face = lines[0]["digest"]
            tune = cls.write("tune.bin", b"fine-tune " + os.urandom(3000))
            _, lines = d.ctl("model", "register", tune, "--derived-from", cls.face, "--relation", "fine-tune",
                             json_out=True)
            cls.tune = lines[0]["digest"]
            d.ctl("order", "submit", "--id", "web-order-1", "--basis", "gdpr-art17", "--reference", "DPA-2026-042",
                  "--requester", "the DPA", "--dataset", "faces", "-o", cls.path("cert.json"), "--keep-subject-map")
            # alice's bundle: her three photos' receipts (issue 15 part 5).
            d.ctl("order", "receipts", "web-order-1", "--by-subject", "-o", cls.path("bundles"))
            shutil.copy(os.path.join(cls.path("bundles"), "alice.receipts.json"), cls.path("bundle.json"))
            cls.photo_digest = file_digest(photos[0])
            d.ctl("receipt", "--manifest", cls.path("cert.manifest.json"), "--item", photos[0],
                  "-o", cls.path("receipt.json"))
            # Another certificate, and its receipt: the wrong receipt for cert.json.
            other = cls.write("other.jpg", b"another person's photo " + os.urandom(64))
            d.ctl("put", other)
            d.ctl("shred", other, "--reason", "another request", "-o", cls.path("other.json"))
            d.ctl("receipt", "--manifest", cls.path("other.manifest.json"), "--item", other,
                  "-o", cls.path("other-receipt.json"))
        finally:
            d.stop()
        cls.page = cls.path("verify.html")
        ctl_offline("web-verifier", "-o", cls.page)
        # Derived inputs.
        cert = cls.read("cert.json")
        pretty = subprocess.run(["/usr/bin/python3", "-m", "json.tool", cls.path("cert.json")],
                                capture_output=True, check=True).stdout
        cls.write("pretty.json", pretty)
        env = json.loads(cert)
        statement = json.loads(base64.b64decode(env["payload"]))
        statement["predicate"]["order"]["reference"] = "FORGED"
        env["payload"] = base64.b64encode(json.dumps(statement, separators=(",", ":")).encode()).decode()
        cls.write("tampered.json", json.dumps(env, separators=(",", ":")).encode())
        cls.write("nul.json", cert + b"\0" + cls.read("other.json"))
        other_payload = json.loads(cls.read("other.json"))["payload"]
        cls.write("dup.json", cert.replace(b'"payload":', b'"payload":"%s","payload":' % other_payload.encode(), 1))
        wrong = nacl.signing.SigningKey.generate().verify_key.encode()
        der = bytes.fromhex("302a300506032b6570032100") + wrong
        cls.write("wrong.pem", b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n")

    @classmethod
    def start_browser(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-default-apps", "--disable-sync", "--user-data-dir=" + cls.path("chromium-profile")):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        cls.driver.set_page_load_timeout(30)

    def open(self, **inputs):
        """Loads the page, gives it the files, waits for the verdict.
        Returns (result, verdict text, checks text, summary text)."""
        from selenium.webdriver.common.by import By
        drv = self.driver
        drv.get_log("browser")  # drop what earlier tests left
        drv.get("file://" + self.page)
        for name in INPUTS:
            if name in inputs:
                drv.find_element(By.ID, name).send_keys(self.path(inputs[name]))
        want = ",".join(n for n in INPUTS if n in inputs)
        verdict = drv.find_element(By.ID, "verdict")
        deadline = time.time() + 30
        while time.time() < deadline:
            if verdict.get_attribute("data-checked") == want and verdict.get_attribute("data-result") != "pending":
                break
            time.sleep(0.05)
        result = verdict.get_attribute("data-result")
        self.assertIn(result, ("valid", "invalid"), "no verdict for %s: %r" % (inputs, verdict.text))
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        self.assertEqual(errors, [], "console errors")
        if os.environ.get("SHREDD_WEB_SCREENSHOT"):
            drv.set_window_size(1000, 2600)
            drv.save_screenshot(os.environ["SHREDD_WEB_SCREENSHOT"])
        return (result, verdict.text, drv.find_element(By.ID, "checks").text,
                drv.find_element(By.ID, "summary").text)

    def shredctl_verify(self, cert, key="pub.pem", *extra):
        return ctl_offline("verify", self.path(cert), "--pubkey", self.path(key), *extra, check=False).returncode

    # ------------------------------------------------------------ the cases

    def test_genuine_certificate_with_log_proof(self):
        result, verdict, checks, summary = self.open(cert="cert.json", key="pub.pem", proof="cert.tlog-proof")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("VALID", verdict)
        self.assertIn("of log " + self.origin, verdict)
        self.assertNotIn("reformatted", verdict + summary)
        for text in ("Items 5 items: 3 photos, 2 models", "Derived models 2 models pulled in by lineage",
                     '%s \u2190 trained-on dataset "faces"' % self.face,
                     '%s \u2190 derived-from model %s (relation "fine-tune")' % (self.tune, self.face),
                     "Technique cryptographic erase", "Standard NIST SP 800-88 Rev. 1, Purge",
                     "Vault backend file", "Root key epochs destroyed epoch",
                     "Requested 20", "Destroyed 20", "Certificate issued 20",
                     "Order id web-order-1", "Legal basis GDPR Art. 17 (right to erasure) (gdpr-art17)",
                     "Reference DPA-2026-042", "Request id order:web-order-1",
                     "Log origin " + self.origin, "Checkpoint size", "Inclusion proven: the certificate is entry"):
            self.assertIn(text, summary)
        self.assertNotIn("alice", summary)  # no subject id in a public certificate
        self.assertIn("Log checkpoint signed by shredd:", checks)
        self.assertEqual(self.shredctl_verify("cert.json"), 0)

    def test_pretty_printed_certificate_proves_inclusion_and_says_it_was_reformatted(self):
        self.assertNotEqual(self.read("pretty.json"), self.read("cert.json"))
        result, verdict, _, summary = self.open(cert="pretty.json", key="log.vkey", proof="cert.tlog-proof")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("This file was reformatted; its canonical form is the logged certificate", verdict)
        self.assertIn("This file was reformatted; its canonical form is the logged certificate", summary)
        self.assertIn("Inclusion proven", summary)
        self.assertEqual(self.shredctl_verify("pretty.json"), 0)
        # One trailing newline is a reformatting too.
        self.write("newline.json", self.read("cert.json") + b"\n")
        result, verdict, _, _ = self.open(cert="newline.json", key="pub.pem", proof="cert.tlog-proof")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("This file was reformatted", verdict)

    def test_tampered_payload_is_invalid_and_shows_no_summary(self):
        result, verdict, _, summary = self.open(cert="tampered.json", key="pub.pem", proof="cert.tlog-proof")
        self.assertEqual(result, "invalid")
        self.assertIn("INVALID (certificate): signature does not verify under the given key shredd:", verdict)
        self.assertEqual(summary, "")  # nothing of the forged payload is shown
        self.assertEqual(self.shredctl_verify("tampered.json"), 3)

    def test_wrong_key_is_invalid(self):
        result, verdict, _, summary = self.open(cert="cert.json", key="wrong.pem", proof="cert.tlog-proof")
        self.assertEqual(result, "invalid")
        self.assertIn("INVALID (certificate): no signature is by the given key", verdict)
        self.assertEqual(summary, "")
        self.assertEqual(self.shredctl_verify("cert.json", "wrong.pem"), 3)

    def test_nul_appended_certificate_is_invalid(self):
        result, verdict, _, _ = self.open(cert="nul.json", key="pub.pem")
        self.assertEqual(result, "invalid")
        self.assertIn("a NUL byte at offset %d" % len(self.read("cert.json")), verdict)
        self.assertEqual(self.shredctl_verify("nul.json"), 3)

    def test_duplicate_member_is_invalid(self):
        result, verdict, _, _ = self.open(cert="dup.json", key="pub.pem")
        self.assertEqual(result, "invalid")
        self.assertIn('envelope has a duplicate member "payload" in one object', verdict)
        self.assertEqual(self.shredctl_verify("dup.json"), 3)

    def test_photo_with_its_receipt_is_covered(self):
        result, verdict, _, summary = self.open(cert="cert.json", key="pub.pem", proof="cert.tlog-proof",
                                                receipt="receipt.json", photo="photo0.jpg")
        self.assertEqual(result, "valid", verdict)
        covered = "This file (%s) is covered by this deletion." % self.photo_digest
        self.assertIn(covered, verdict)
        self.assertIn(covered, summary)
        self.assertEqual(self.shredctl_verify("cert.json", "pub.pem", "--receipt", self.path("receipt.json"),
                                              "--item", self.path("photo0.jpg")), 0)

    def test_receipt_without_the_file_and_file_without_a_receipt(self):
        result, verdict, _, summary = self.open(cert="cert.json", key="pub.pem", receipt="receipt.json")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("The receipt proves that an item %s is covered; give your file" % self.photo_digest, summary)
        result, verdict, checks, _ = self.open(cert="cert.json", key="pub.pem", photo="photo0.jpg")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("Your file was not checked: no receipt.", verdict)
        self.assertIn("This file (%s) was not checked: a certificate names no item" % self.photo_digest, checks)

    def test_a_subjects_bundle_covers_each_of_their_photos_and_no_other(self):
        for photo in ("photo1.jpg", "photo2.jpg"):
            result, verdict, _, summary = self.open(cert="cert.json", key="pub.pem", receipt="bundle.json", photo=photo)
            self.assertEqual(result, "valid", verdict)
            self.assertIn("This file (%s) is covered by this deletion." % file_digest(self.path(photo)), summary)
        result, verdict, _, summary = self.open(cert="cert.json", key="pub.pem", receipt="bundle.json")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("The receipt bundle proves that its 3 items are covered", summary)
        result, verdict, _, _ = self.open(cert="cert.json", key="pub.pem", receipt="bundle.json", photo="other.jpg")
        self.assertEqual(result, "invalid", verdict)
        other = file_digest(self.path("other.jpg"))
        self.assertIn("INVALID (receipt): the receipt bundle (3 receipts) holds no receipt for %s" % other, verdict)
        self.assertEqual(self.shredctl_verify("cert.json", "pub.pem", "--receipt", self.path("bundle.json"),
                                              "--item", self.path("photo2.jpg")), 0)
        self.assertEqual(self.shredctl_verify("cert.json", "pub.pem", "--receipt", self.path("bundle.json"),
                                              "--item", self.path("other.jpg")), 3)

    def test_wrong_photo_is_not_covered(self):
        result, verdict, _, summary = self.open(cert="cert.json", key="pub.pem", receipt="receipt.json",
                                                photo="photo1.jpg")
        self.assertEqual(result, "invalid")
        other = file_digest(self.path("photo1.jpg"))
        self.assertIn("INVALID (receipt): receipt is for item %s, not %s" % (self.photo_digest, other), verdict)
        self.assertIn("This file (%s) is NOT shown to be covered" % other, summary)
        self.assertEqual(self.shredctl_verify("cert.json", "pub.pem", "--receipt", self.path("receipt.json"),
                                              "--item", self.path("photo1.jpg")), 3)

    def test_receipt_of_another_certificate_is_invalid(self):
        result, verdict, _, _ = self.open(cert="cert.json", key="pub.pem", receipt="other-receipt.json",
                                          photo="other.jpg")
        self.assertEqual(result, "invalid")
        self.assertIn("INVALID (receipt): receipt is for certificate", verdict)
        self.assertEqual(self.shredctl_verify("cert.json", "pub.pem", "--receipt", self.path("other-receipt.json"),
                                              "--item", self.path("other.jpg")), 3)

    def test_proof_of_another_entry_is_invalid(self):
        result, verdict, _, summary = self.open(cert="cert.json", key="pub.pem", proof="other.tlog-proof")
        self.assertEqual(result, "invalid")
        self.assertIn("INVALID (log proof): the proof is for index", verdict)
        self.assertIn("Inclusion NOT proven", summary)

    def test_page_makes_no_network_request(self):
        from selenium.webdriver.common.by import By
        self.open(cert="cert.json", key="pub.pem", proof="cert.tlog-proof", receipt="receipt.json",
                  photo="photo0.jpg")
        meta = self.driver.find_element(By.CSS_SELECTOR, 'meta[http-equiv="Content-Security-Policy"]')
        policy = meta.get_attribute("content")
        for directive in ("default-src 'none'", "connect-src 'none'", "img-src 'none'", "form-action 'none'"):
            self.assertIn(directive, policy)
        self.assertIn("script-src 'sha256-", policy)
        self.assertNotIn("unsafe", policy)
        # Chromium's network log while the page verified everything: the
        # page's document asked for nothing but itself, and nothing at all
        # went to the network (the browser's own chrome:// pages aside).
        page_url = "file://" + self.page
        by_page, network = set(), set()
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                url = msg["params"]["request"]["url"]
                if msg["params"].get("documentURL") == page_url:
                    by_page.add(url)
                if not url.startswith(("file://", "data:", "chrome://", "chrome-untrusted://", "devtools://")):
                    network.add(url)
        self.assertEqual(by_page, {page_url})
        self.assertEqual(network, set())
        # And a fetch from the page is refused by the policy.
        outcome = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('http://127.0.0.1:9/x').then(() => done('fetched'), (e) => done('refused: ' + e));")
        self.assertTrue(outcome.startswith("refused"), outcome)
        log = " ".join(e["message"] for e in self.driver.get_log("browser"))
        self.assertIn("violates the following Content Security Policy directive: \"connect-src 'none'\"", log)

    def test_page_and_shredctl_agree_on_malformed_statements_and_envelopes(self):
        """Statements and envelopes that break one rule each, signed with a
        test key: the page and `shredctl verify` reach the same verdict, with
        the same reason (JSON syntax errors aside, whose wording differs)."""
        sk = nacl.signing.SigningKey(bytes(range(1, 33)))
        pk = sk.verify_key.encode()
        keyid = "shredd:" + hashlib.sha256(pk).hexdigest()
        der = bytes.fromhex("302a300506032b6570032100") + pk
        self.write("test.pem", b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n")
        base = json.loads(base64.b64decode(json.loads(self.read("cert.json"))["payload"]))
        pt = "application/vnd.in-toto+json"

        def envelope(payload, sigs=None, payload_type=pt, extra=None):
            pae = b"DSSEv1 %d %s %d " % (len(payload_type), payload_type.encode(), len(payload)) + payload
            sig = base64.b64encode(sk.sign(pae).signature).decode()
            env = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
                   "signatures": [{"keyid": keyid, "sig": sig}] if sigs is None else sigs(sig)}
            env.update(extra or {})
            return json.dumps(env, separators=(",", ":")).encode()

        def statement(mutate):
            st = json.loads(json.dumps(base))
            mutate(st, st["predicate"])
            return json.dumps(st, separators=(",", ":")).encode()

        def setp(path, value):
            def f(st, p):
                obj = st
                for k in path[:-1]:
                    obj = obj[k]
                obj[path[-1]] = value
            return f

        def delp(path):
            def f(st, p):
                obj = st
                for k in path[:-1]:
                    obj = obj[k]
                del obj[path[-1]]
            return f

        root = base["predicate"]["items"]["merkleRoot"]
        count = base["predicate"]["items"]["count"]
        text = json.dumps(base, separators=(",", ":")).encode()
        cases = {
            "genuine": statement(lambda st, p: None),
            "_type": statement(setp(["_type"], "https://in-toto.io/Statement/v0.1")),
            "predicateType": statement(setp(["predicateType"], "https://example.com/other")),
            "two subjects": statement(lambda st, p: st["subject"].append(st["subject"][0])),
            "subject name": statement(setp(["subject", 0, "name"], "shredd-deletion:other")),
            "subject digest": statement(setp(["subject", 0, "digest", "sha256"], "0" * 64)),
            "root uppercase": statement(lambda st, p: (setp(["subject", 0, "digest", "sha256"], root.upper())(st, p),
                                                       setp(["predicate", "items", "merkleRoot"], root.upper())(st, p))),
            "count sum": statement(setp(["predicate", "items", "count"], count + 1)),
            "negative count": statement(setp(["predicate", "items", "count"], -1)),
            "byKind string": statement(setp(["predicate", "items", "byKind", "photo"], "3")),
            "byKind overflow": statement(setp(["predicate", "items", "byKind"],
                                              {"photo": 2 ** 64 - 1, "model": 1})),
            "empty with root": statement(lambda st, p: p["items"].update(count=0, byKind={"photo": 0, "model": 0})),
            "leafFormat": statement(setp(["predicate", "items", "leafFormat"], "shredd-item-v2")),
            "issued before destroyed": statement(setp(["predicate", "times", "issued"], "2000-01-01T00:00:00Z")),
            "fractions compare as numbers": statement(lambda st, p: p["times"].update(
                destroyed="2026-01-01T00:00:00.25Z", issued="2026-01-01T00:00:00.5Z")),
            "fraction earlier": statement(lambda st, p: p["times"].update(
                destroyed="2026-01-01T00:00:00.5Z", issued="2026-01-01T00:00:00.25Z")),
            "time not RFC 3339": statement(setp(["predicate", "times", "requested"], "2026-01-01 00:00:00Z")),
            "time not UTC": statement(setp(["predicate", "times", "requested"], "2026-01-01T00:00:00+01:00")),
            "derivedModels object": statement(setp(["predicate", "derivedModels"], {})),
            "log string": statement(setp(["predicate", "log"], "log")),
            "no method": statement(delp(["predicate", "method"])),
            "no request id": statement(delp(["predicate", "request", "id"])),
            "empty certificateId": statement(lambda st, p: (p.update(certificateId=""),
                                                            st["subject"][0].update(name="shredd-deletion:"))),
            "count float": text.replace(b'"count":%d' % count, b'"count":%d.0' % count),
            "duplicate member": b'{"_type":"x",' + text[1:],
            "trailing bytes": text + b" x",
            "statement NUL": text + b"\0",
        }
        envelopes = {name: envelope(payload) for name, payload in cases.items()}
        genuine = cases["genuine"]
        envelopes.update({
            "extra envelope member": envelope(genuine, extra={"note": "hi"}),
            "no keyid": envelope(genuine, sigs=lambda sig: [{"sig": sig}]),
            "other signer first": envelope(genuine, sigs=lambda sig: [{"keyid": "shredd:" + "0" * 64, "sig": sig[:-4] + "AAA="},
                                                                      {"keyid": keyid, "sig": sig}]),
            "only another keyid": envelope(genuine, sigs=lambda sig: [{"keyid": "other", "sig": sig}]),
            "no signatures": envelope(genuine, sigs=lambda sig: []),
            "payloadType": envelope(genuine, payload_type="application/json"),
            "keyid not a string": envelope(genuine, sigs=lambda sig: [{"keyid": 7, "sig": sig}]),
        })
        # Non-zero unused bits in the payload's last base64 character: the
        # payload padded with spaces to 3n+1 bytes ("==", 4 unused bits).
        padded = genuine + b" " * ((1 - len(genuine)) % 3)
        env = json.loads(envelope(padded))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = env["payload"][-3]
        env["payload"] = env["payload"][:-3] + alphabet[alphabet.index(last) | 1] + "=="
        envelopes["base64 unused bits"] = json.dumps(env, separators=(",", ":")).encode()
        envelopes["payload padded"] = envelope(padded)
        valid = {"genuine", "fractions compare as numbers", "extra envelope member", "no keyid", "other signer first",
                 "payload padded"}
        for name, env in envelopes.items():
            with self.subTest(name):
                path = self.write("case.json", env)
                p = ctl_offline("verify", path, "--pubkey", self.path("test.pem"), check=False)
                result, verdict, _, _ = self.open(cert="case.json", key="test.pem")
                self.assertEqual(result, "valid" if name in valid else "invalid", verdict)
                self.assertEqual(p.returncode, 0 if name in valid else 3, p.stderr)
                if result == "invalid":
                    reason = p.stderr.decode().strip().split("verification FAILED (certificate): ", 1)[1]
                    page = verdict.split("INVALID (certificate): ", 1)[1]
                    if "is not valid JSON" in reason:
                        self.assertEqual(page.split(" is not valid JSON")[0], reason.split(" is not valid JSON")[0])
                    else:
                        self.assertEqual(page, reason)

    def assertSameReason(self, verdict, stage, stderr, cxx_prefix):
        page = verdict.split("INVALID (%s): " % stage, 1)[1]
        reason = stderr.decode().strip().split(cxx_prefix, 1)[1]
        if "is not valid JSON" in reason:
            self.assertEqual(page.split(" is not valid JSON")[0], reason.split(" is not valid JSON")[0])
        else:
            self.assertEqual(page, reason)

    def test_page_and_shredctl_agree_on_broken_receipts(self):
        base = json.loads(self.read("receipt.json"))

        def mutated(f):
            r = json.loads(json.dumps(base))
            f(r)
            return json.dumps(r, separators=(",", ":")).encode()

        def flip(h):
            return ("0" if h[0] != "0" else "1") + h[1:]

        text = json.dumps(base, separators=(",", ":")).encode()
        cases = {
            "genuine": text,
            "pretty": json.dumps(base, indent=2).encode(),
            "type": mutated(lambda r: r.update(type="shredd-receipt-v2")),
            "certificateId": mutated(lambda r: r.update(certificateId="other")),
            "merkleRoot": mutated(lambda r: r.update(merkleRoot=flip(r["merkleRoot"]))),
            "treeSize": mutated(lambda r: r.update(treeSize=r["treeSize"] + 1)),
            "leafIndex": mutated(lambda r: r.update(leafIndex=r["leafIndex"] + 1)),
            "leafIndex string": mutated(lambda r: r.update(leafIndex=str(r["leafIndex"]))),
            "path hash": mutated(lambda r: r["inclusionPath"].__setitem__(0, flip(r["inclusionPath"][0]))),
            "path too long": mutated(lambda r: r["inclusionPath"].append(r["inclusionPath"][0])),
            "path too short": mutated(lambda r: r["inclusionPath"].pop()),
            "path number": mutated(lambda r: r["inclusionPath"].__setitem__(0, 7)),
            "kind": mutated(lambda r: r["item"].update(kind="video")),
            "digest uppercase": mutated(lambda r: r["item"].update(digest=r["item"]["digest"].upper())),
            "size": mutated(lambda r: r["item"].update(size=r["item"]["size"] + 1)),
            "salt short": mutated(lambda r: r["item"].update(salt=r["item"]["salt"][:62])),
            "duplicate member": b'{"leafIndex":0,' + text[1:],
            "NUL": text + b"\0{}",
        }
        self.assertGreaterEqual(len(base["inclusionPath"]), 1)
        for name, data in cases.items():
            with self.subTest(name):
                path = self.write("case-receipt.json", data)
                p = ctl_offline("verify", self.path("cert.json"), "--pubkey", self.path("pub.pem"), "--receipt", path,
                                "--item", self.path("photo0.jpg"), check=False)
                result, verdict, _, _ = self.open(cert="cert.json", key="pub.pem", receipt="case-receipt.json",
                                                  photo="photo0.jpg")
                want_valid = name in ("genuine", "pretty")
                self.assertEqual(result, "valid" if want_valid else "invalid", verdict)
                self.assertEqual(p.returncode, 0 if want_valid else 3, p.stderr)
                if not want_valid:
                    self.assertSameReason(verdict, "receipt", p.stderr, "verification FAILED (receipt): ")

    def test_page_and_shredctl_log_verify_agree_on_broken_proofs(self):
        proof = self.read("cert.tlog-proof").decode()
        head, checkpoint = proof.split("\n\n", 1)
        lines = head.split("\n")  # header, "index N", path hashes
        index = json.loads(base64.b64decode(json.loads(self.read("cert.json"))["payload"]))["predicate"]["log"]["index"]
        self.assertEqual(lines[1], "index %d" % index)
        self.assertGreaterEqual(len(lines), 3)  # at least one path hash
        cp_lines = checkpoint.split("\n")  # origin, size, root, "", signature, ""

        def with_lines(ls, cp=checkpoint):
            return "\n".join(ls) + "\n\n" + cp

        def flip_b64(h):
            return ("A" if h[0] != "A" else "B") + h[1:]

        cases = {
            "genuine": proof,
            "extra line": with_lines(lines[:1] + ["extra AAAA"] + lines[1:]),
            "header": with_lines(["c2sp.org/tlog-proof@v2"] + lines[1:]),
            "index line": with_lines(lines[:1] + ["idx %d" % index] + lines[2:]),
            "index leading zero": with_lines(lines[:1] + ["index 0%d" % index] + lines[2:]),
            "other index": with_lines(lines[:1] + ["index %d" % (index - 1)] + lines[2:]),
            "path hash": with_lines(lines[:2] + [flip_b64(lines[2])] + lines[3:]),
            "path too long": with_lines(lines + [lines[2]]),
            "path too short": with_lines(lines[:-1]),
            "path not base64": with_lines(lines[:2] + ["!!!!"] + lines[3:]),
            "path short hash": with_lines(lines[:2] + ["AAAA"] + lines[3:]),
            "truncated": head + "\n",
            "checkpoint root": with_lines(lines, "\n".join(cp_lines[:2] + [flip_b64(cp_lines[2])] + cp_lines[3:])),
            "checkpoint size": with_lines(lines, "\n".join(cp_lines[:1] + [str(int(cp_lines[1]) + 1)] + cp_lines[2:])),
            "signature name": with_lines(lines, checkpoint.replace("\u2014 " + self.origin, "\u2014 other.example/log")),
            "signature bytes": with_lines(lines, checkpoint.replace(cp_lines[4][-6:], "AAAAA=" if cp_lines[4][-6:] != "AAAAA=" else "BBBBB=")),
            "no signature": with_lines(lines, "\n".join(cp_lines[:4]) + "\n"),
            "CRLF": proof.replace("\n", "\r\n"),
        }
        for name, data in cases.items():
            with self.subTest(name):
                path = self.write("case.tlog-proof", data.encode())
                p = ctl_offline("log", "verify", "--entry", self.path("cert.json"), "--proof", path, "--vkey",
                                self.path("log.vkey"), "--index", str(index), check=False)
                result, verdict, _, _ = self.open(cert="cert.json", key="log.vkey", proof="case.tlog-proof")
                want_valid = name in ("genuine", "extra line")
                self.assertEqual(result, "valid" if want_valid else "invalid", verdict)
                self.assertEqual(p.returncode, 0 if want_valid else 3, p.stderr)
                if not want_valid:
                    self.assertSameReason(verdict, "log proof", p.stderr, "log proof verification FAILED: ")

    def crafted_statement(self, log):
        """The real certificate's statement with predicate.log = `log` (or
        none), to be signed with the test key."""
        st = json.loads(base64.b64decode(json.loads(self.read("cert.json"))["payload"]))
        st["predicate"].pop("log", None)
        if log is not None:
            st["predicate"]["log"] = log
        return json.dumps(st, separators=(",", ":")).encode()

    def write_test_keys(self):
        der = bytes.fromhex("302a300506032b6570032100") + TEST_PK
        self.write("test.pem", b"-----BEGIN PUBLIC KEY-----\n" + b64(der).encode() + b"\n-----END PUBLIC KEY-----\n")
        self.write("logA.vkey", test_vkey("example.com/logA"))

    def test_a_vkey_only_proves_inclusion_in_its_own_log(self):
        # Log B's certificate and proof, signed by the same key as log A:
        # with log A's vkey both verifiers refuse it (shredctl verify used to
        # take the origin from the certificate and ignore the vkey's name).
        self.write_test_keys()
        cert = test_envelope(self.crafted_statement({"origin": "example.com/logB", "index": 1}))
        self.write("logB.json", cert)
        self.write("logB.tlog-proof", test_tlog_proof([b"entry 0", cert], 1, "example.com/logB"))
        result, verdict, _, _ = self.open(cert="logB.json", key="logA.vkey", proof="logB.tlog-proof")
        self.assertEqual(result, "invalid", verdict)
        p = ctl_offline("verify", self.path("logB.json"), "--pubkey", self.path("logA.vkey"), "--proof",
                        self.path("logB.tlog-proof"), check=False)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertSameReason(verdict, "log proof", p.stderr, "verification FAILED (log inclusion): ")
        self.assertIn('the certificate names log "example.com/logB" but the verifier key is for log '
                      '"example.com/logA"', verdict)
        # With the PEM (which names no log) it is log B's, and proven.
        result, verdict, _, _ = self.open(cert="logB.json", key="test.pem", proof="logB.tlog-proof")
        self.assertEqual(result, "valid", verdict)
        self.assertEqual(ctl_offline("verify", self.path("logB.json"), "--pubkey", self.path("test.pem"), "--proof",
                                     self.path("logB.tlog-proof"), check=False).returncode, 0)

    def test_a_certificate_that_names_no_log_entry_proves_no_inclusion(self):
        # No predicate.log: shredctl refused the proof, the page took the
        # checkpoint's origin and the proof's index and said VALID.
        self.write_test_keys()
        cert = test_envelope(self.crafted_statement(None))
        self.write("nolog.json", cert)
        self.write("nolog.tlog-proof", test_tlog_proof([b"entry 0", cert], 1, "example.com/logA"))
        for key in ("test.pem", "logA.vkey"):
            with self.subTest(key):
                result, verdict, _, _ = self.open(cert="nolog.json", key=key, proof="nolog.tlog-proof")
                self.assertEqual(result, "invalid", verdict)
                self.assertIn("INVALID (log proof): the certificate names no log entry (no predicate.log)", verdict)
                p = ctl_offline("verify", self.path("nolog.json"), "--pubkey", self.path(key), "--proof",
                                self.path("nolog.tlog-proof"), check=False)
                self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
                self.assertSameReason(verdict, "log proof", p.stderr, "verification FAILED (log inclusion): ")
        # Without a proof it is a valid certificate (inclusion not checked).
        result, verdict, _, _ = self.open(cert="nolog.json", key="test.pem")
        self.assertEqual(result, "valid", verdict)

    def test_a_file_that_is_both_an_envelope_and_a_sigstore_bundle_is_refused_by_both(self):
        # The page read the envelope, shredctl the bundle's dsseEnvelope: two
        # valid certificates from one file, each verifier showing another.
        self.write_test_keys()
        outer = json.loads(test_envelope(self.crafted_statement(None)))
        inner = json.loads(test_envelope(self.crafted_statement({"origin": "example.com/logA", "index": 9})))
        poly = dict(outer, mediaType="application/vnd.dev.sigstore.bundle.v0.3+json",
                    verificationMaterial={"publicKey": {"hint": ""}, "tlogEntries": []}, dsseEnvelope=inner)
        self.write("poly.json", json.dumps(poly).encode())
        result, verdict, _, summary = self.open(cert="poly.json", key="test.pem")
        self.assertEqual(result, "invalid", verdict)
        self.assertEqual(summary, "")
        self.assertIn('the file is both a Sigstore bundle and a DSSE envelope (it has "mediaType" and "payloadType")',
                      verdict)
        p = ctl_offline("verify", self.path("poly.json"), "--pubkey", self.path("test.pem"), check=False)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertSameReason(verdict, "certificate", p.stderr, "verification FAILED (certificate): ")
        # Each half alone is a valid certificate to its reader.
        self.write("outer.json", json.dumps(outer).encode())
        self.assertEqual(self.open(cert="outer.json", key="test.pem")[0], "valid")
        del poly["payloadType"], poly["payload"], poly["signatures"]
        self.write("inner.sigstore.json", json.dumps(poly).encode())
        self.assertEqual(ctl_offline("verify", self.path("inner.sigstore.json"), "--pubkey", self.path("test.pem"),
                                     check=False).returncode, 0)

    def test_a_sigstore_bundle_is_the_certificate_it_carries(self):
        # `order submit -o cert.json` wrote cert.sigstore.json. The page used
        # to refuse it (it read the bundle as an envelope) while shredctl
        # verified it.
        bundle = json.loads(self.read("cert.sigstore.json"))
        self.assertEqual(bundle["dsseEnvelope"]["payload"], json.loads(self.read("cert.json"))["payload"])
        for key in ("pub.pem", "log.vkey"):
            with self.subTest(key):
                result, verdict, checks, summary = self.open(cert="cert.sigstore.json", key=key,
                                                             proof="cert.tlog-proof")
                self.assertEqual(result, "valid", verdict)
                self.assertIn("of log " + self.origin, verdict)
                self.assertNotIn("reformatted", verdict + summary)
                self.assertIn("Sigstore bundle: the certificate is the DSSE envelope it carries", checks)
                for text in ("Items 5 items: 3 photos, 2 models", "Order id web-order-1",
                             "Inclusion proven: the certificate is entry"):
                    self.assertIn(text, summary)
                p = ctl_offline("verify", self.path("cert.sigstore.json"), "--pubkey", self.path(key), "--proof",
                                self.path("cert.tlog-proof"), check=False)
                self.assertEqual(p.returncode, 0, p.stderr)
        result, verdict, _, summary = self.open(cert="cert.sigstore.json", key="pub.pem", receipt="receipt.json",
                                                photo="photo0.jpg")
        self.assertEqual(result, "valid", verdict)
        self.assertIn("This file (%s) is covered by this deletion." % self.photo_digest, verdict)

    def test_page_and_shredctl_agree_on_sigstore_bundles(self):
        bundle = json.loads(self.read("cert.sigstore.json"))
        dsse = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(dsse["payload"]))
        statement["predicate"]["order"]["reference"] = "FORGED"
        forged = base64.b64encode(json.dumps(statement, separators=(",", ":")).encode()).decode()
        other = json.loads(self.read("other.json"))

        def with_dsse(d, **outer):
            b = dict(bundle, **outer)
            if d is None:
                del b["dsseEnvelope"]
            else:
                b["dsseEnvelope"] = d
            return json.dumps(b).encode()

        text = json.dumps(bundle, separators=(",", ":")).encode()
        spelled = ('{"signatures":[{"sig":"%s","keyid":"%s"}],"note":[1,-0,{"x":null}],'
                   '"payloadType":"\\u0061pplication\\/vnd.in-toto+json","payload":"%s"}'
                   % (dsse["signatures"][0]["sig"], dsse["signatures"][0]["keyid"], dsse["payload"]))
        cases = {
            "genuine": (text, "valid"),
            "pretty": (json.dumps(bundle, indent=2).encode(), "valid"),
            "v0.1 media type": (with_dsse(dsse, mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1"),
                                "valid"),
            "envelope spelled otherwise": (text.replace(json.dumps(dsse, separators=(",", ":")).encode(),
                                                        spelled.encode()), "valid"),
            "tampered": (with_dsse(dict(dsse, payload=forged)), "signature does not verify under the given key"),
            "another certificate's signature": (with_dsse(dict(dsse, signatures=other["signatures"])),
                                                "signature does not verify under the given key"),
            "no dsseEnvelope": (with_dsse(None, messageSignature={"signature": ""}),
                                'the Sigstore bundle carries no "dsseEnvelope"'),
            "dsseEnvelope a string": (with_dsse(json.dumps(dsse)), 'the Sigstore bundle carries no "dsseEnvelope"'),
            "no signatures": (with_dsse({k: v for k, v in dsse.items() if k != "signatures"}),
                              'the Sigstore bundle\'s dsseEnvelope: envelope has no "signatures" array'),
            "sig a number": (with_dsse(dict(dsse, signatures=[{"sig": 7}])),
                             'the Sigstore bundle\'s dsseEnvelope: signatures[0] member "sig" is a number'),
            "payload not base64": (with_dsse(dict(dsse, payload="!" + dsse["payload"][1:])),
                                   "the Sigstore bundle's dsseEnvelope: envelope member \"payload\": invalid"),
            "payloadType": (with_dsse(dict(dsse, payloadType="application/json")), "envelope payloadType is"),
            "media type not a string": (with_dsse(dsse, mediaType=["application/vnd.dev.sigstore.bundle"]),
                                        'envelope has no "payloadType"'),
            "also an envelope": (with_dsse(dsse, payload=dsse["payload"]), "the file is both a Sigstore bundle"),
            "duplicate member": (text.replace(b'"dsseEnvelope":{', b'"dsseEnvelope":{"payload":"%s",'
                                              % other["payload"].encode(), 1), 'duplicate member "payload"'),
        }
        for name, (data, want) in cases.items():
            with self.subTest(name):
                self.write("case.sigstore.json", data)
                p = ctl_offline("verify", self.path("case.sigstore.json"), "--pubkey", self.path("pub.pem"),
                                "--proof", self.path("cert.tlog-proof"), check=False)
                result, verdict, _, summary = self.open(cert="case.sigstore.json", key="pub.pem",
                                                        proof="cert.tlog-proof")
                if want == "valid":
                    self.assertEqual(result, "valid", verdict)
                    self.assertIn("Inclusion proven", summary)
                    self.assertEqual(p.returncode, 0, p.stderr)
                else:
                    self.assertEqual(result, "invalid", verdict)
                    self.assertEqual(summary, "")
                    self.assertIn(want, verdict)
                    self.assertEqual(p.returncode, 3, p.stderr)
                    self.assertSameReason(verdict, "certificate", p.stderr, "verification FAILED (certificate): ")

    def test_page_and_shredctl_cap_json_nesting_alike(self):
        # A value inside 1000 arrays and objects (the envelope and 999
        # arrays) is read by both; inside 1001, by neither (the page allowed
        # 10000, shredctl had no cap and crashed deeper).
        self.write_test_keys()
        genuine = self.crafted_statement(None)
        for arrays, want in ((999, "valid"), (1000, "invalid")):
            with self.subTest(arrays):
                nested = b"[" * arrays + b"1" + b"]" * arrays
                self.write("deep.json", test_envelope(genuine, extra={"x": 0}).replace(b'"x":0}', b'"x":' + nested + b"}"))
                result, verdict, _, _ = self.open(cert="deep.json", key="test.pem")
                self.assertEqual(result, want, verdict)
                p = ctl_offline("verify", self.path("deep.json"), "--pubkey", self.path("test.pem"), check=False)
                self.assertEqual(p.returncode, 0 if want == "valid" else 3, p.stderr[-300:])
                if want == "invalid":
                    self.assertSameReason(verdict, "certificate", p.stderr, "verification FAILED (certificate): ")
                    self.assertIn("nested more than 1000 arrays and objects deep", verdict)

    def test_web_verifier_writes_the_same_page_to_stdout(self):
        p = subprocess.run([SHREDCTL, "web-verifier"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.read("verify.html"))


if __name__ == "__main__":
    unittest.main()
