"""`shredctl verify --format text|json|html` (issue 15 part 2) on a real
order's certificate: the text summary, every check in JSON, and an HTML
report rendered by headless Chromium from Debian (a screenshot and a PDF
print: one page per certificate), plus `shredctl lineage` showing the whole
derived closure (part 8)."""
import base64
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import DaemonTest, ctl_offline, read_text

EXIT_VERIFY_FAILED = 3
CHROMIUM = shutil.which("chromium")


def chromium_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


class VerifyReportTest(DaemonTest):
    def setUp(self):
        super().setUp()
        d = self.d
        self.photos = [os.urandom(900 + i) for i in range(3)]
        paths = []
        for i, data in enumerate(self.photos):
            paths.append(self.file("photo-%d.jpg" % i, data))
        d.ctl("put", *paths, "--subject", "subject-7", "--dataset", "okc-2014")
        base = self.file("base.bin", os.urandom(50_000))
        tune = self.file("tune.bin", os.urandom(40_000))
        _, out = d.ctl("model", "register", base, "--trained-on", "okc-2014", json_out=True)
        self.base = out[0]["digest"]
        _, out = d.ctl("model", "register", tune, "--derived-from", self.base, "--relation", "fine-tune",
                       json_out=True)
        self.tune = out[0]["digest"]
        self.pem = os.path.join(self.tmp, "shredd.pem")
        d.ctl("pubkey", "--format", "pem", "-o", self.pem)

    def file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def order(self):
        cert = os.path.join(self.tmp, "cert.json")
        p = self.d.ctl("order", "submit", "--id", "ftc-7", "--basis", "ftc-order", "--reference", "FTC C-4765",
                       "--requester", "FTC", "--dataset", "okc-2014", "-o", cert)
        return cert, p

    def verify(self, *args):
        return ctl_offline("verify", *args, "--pubkey", self.pem, check=False)

    def test_lineage_shows_the_whole_derived_closure(self):
        photo = self.file("p0", self.photos[0])
        _, out = self.d.ctl("lineage", photo, json_out=True)
        down = {m["digest"]: m for m in out[0]["downstream"]}
        self.assertEqual(set(down), {self.base, self.tune})
        self.assertEqual(down[self.base]["depth"], 1)
        self.assertEqual(down[self.tune]["depth"], 2)
        self.assertEqual(down[self.tune]["from"], self.base)
        self.assertEqual(down[self.tune]["relation"], "fine-tune")
        text = self.d.ctl("lineage", photo).stdout.decode()
        self.assertIn(self.tune, text)  # the fine-tune, two steps away

    def test_text_and_json_reports_summarise_what_how_when_basis_and_log(self):
        cert, p = self.order()
        out = p.stdout.decode()
        self.assertIn("PRIVATE", out)  # order wait -o says which files it wrote and which are private
        self.assertIn("cert.tlog-proof", out)
        proof = cert[:-5] + ".tlog-proof"
        manifest = cert[:-5] + ".manifest.json"
        p = self.verify(cert, "--proof", proof, "--manifest", manifest)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        text = p.stdout.decode()
        for needle in ["VALID deletion certificate", "3 photos and 2 models deleted", "fine-tune", self.tune,
                       "trained-on dataset okc-2014", "NIST SP 800-88", "vault backend file", "order ftc-7",
                       "legal basis ftc-order", "FTC C-4765", "requested ", "destroyed ", "issued ",
                       "included in the checkpoint of size", "fingerprint SHA256:", "manifest OK",
                       "log inclusion OK"]:
            self.assertIn(needle, text)
        self.assertNotIn("subject-7", text)

        p = self.verify(cert, "--proof", proof, "--format", "json")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        rep = json.loads(p.stdout)
        self.assertTrue(rep["valid"])
        self.assertEqual([(c["check"], c["ok"]) for c in rep["checks"]], [("signature", True), ("log inclusion", True)])
        self.assertEqual(rep["summary"]["order"]["basis"], "ftc-order")
        self.assertFalse(rep["logInclusion"]["reformatted"])

        # A proof for another entry, or of another log, fails the inclusion check (exit 3).
        other = self.file("other.tlog-proof", self.d.ctl("log", "proof", "0").stdout)
        p = self.verify(cert, "--proof", other, "--format", "json")
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED)
        rep = json.loads(p.stdout)
        self.assertFalse(rep["valid"])
        self.assertEqual(rep["stage"], "log inclusion")

    def test_html_report_renders_in_chromium_one_page_per_certificate(self):
        self.assertTrue(CHROMIUM, "chromium is not installed (scripts/install-deps.sh installs it)")
        cert, _ = self.order()
        proof = cert[:-5] + ".tlog-proof"
        good, bad = os.path.join(self.tmp, "good.html"), os.path.join(self.tmp, "bad.html")
        p = self.verify(cert, "--proof", proof, "--format", "html", "-o", good)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        env = json.loads(read_text(cert))
        payload = base64.b64decode(env["payload"]).replace(b"FTC C-4765", b"FTC C-0000")
        forged = self.file("forged.json", json.dumps(dict(env, payload=base64.b64encode(payload).decode())).encode())
        p = self.verify(forged, "--format", "html", "-o", bad)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED)
        html = read_text(good)
        self.assertIn("Content-Security-Policy", html)
        self.assertNotRegex(html, r"<script|https?://")

        driver = chromium_driver()
        try:
            shots = {}
            for name, path, result in [("good", good, "valid"), ("bad", bad, "invalid")]:
                driver.get("file://" + path)
                verdict = driver.find_element("css selector", ".verdict")
                self.assertEqual(verdict.get_attribute("data-result"), result)
                self.assertTrue(verdict.is_displayed())
                body = driver.find_element("tag name", "body").text
                shots[name] = driver.get_screenshot_as_png()
                self.assertGreater(len(shots[name]), 10_000, name)  # a rendered page, not a blank one
                if result == "valid":
                    for needle in ["VALID", "3 photos and 2 models deleted", "FTC C-4765", "passed",
                                   "Summary", "fingerprint SHA256:", "checkpoint of size"]:
                        self.assertIn(needle, body)
                    self.assertEqual(verdict.value_of_css_property("color"), "rgba(10, 93, 31, 1)")
                else:
                    self.assertIn("INVALID", body)
                    self.assertIn("FAILED", body)
                    self.assertNotIn("FTC C-0000", body)  # nothing unverified is shown
                    self.assertNotIn("Summary", body)
            self.assertNotEqual(shots["good"], shots["bad"])
            with open(os.path.join(self.tmp, "report.png"), "wb") as f:
                f.write(shots["good"])
        finally:
            driver.quit()

        pdf = os.path.join(self.tmp, "report.pdf")
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                        "--print-to-pdf=" + pdf, "file://" + good], capture_output=True, timeout=120, check=True)
        pages = re.findall(rb"/Type\s*/Page[^s]", open(pdf, "rb").read())
        self.assertEqual(len(pages), 1, "one certificate, one printed page")


if __name__ == "__main__":
    unittest.main()
