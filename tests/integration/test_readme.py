"""Runs the README's "Verify a certificate without shredd" block verbatim
against a real certificate, and against a tampered one."""
import base64
import json
import os
import re
import subprocess
import unittest

from harness import REPO, DaemonTest, read_text


def readme_block():
    text = read_text(os.path.join(REPO, "README.md"))
    m = re.search(r"<!-- verify-openssl:start -->\s*```sh\n(.*?)```\s*<!-- verify-openssl:end -->", text, re.S)
    assert m, "README lost its verify-openssl block"
    return m.group(1)


class ReadmeOpensslTest(DaemonTest):
    def run_block(self, workdir):
        return subprocess.run(["sh", "-eu", "-c", readme_block()], cwd=workdir, capture_output=True)

    def test_readme_recipe_accepts_a_real_certificate_and_rejects_a_forged_one(self):
        d = self.d.put_bytes(os.urandom(5000))
        work = os.path.join(self.tmp, "work")
        os.makedirs(work)
        self.d.ctl("pubkey", "--format", "pem", "-o", os.path.join(work, "shredd.pem"))
        self.d.ctl("shred", d, "-o", os.path.join(work, "cert.json"))
        p = self.run_block(work)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"Signature Verified Successfully", p.stdout + p.stderr)
        self.assertIn(b"https://shredd.dev/attestations/deletion/v1", p.stdout)
        # forge: change the payload, keep the signature
        env = json.loads(read_text(os.path.join(work, "cert.json")))
        payload = base64.b64decode(env["payload"]).replace(b'"count":1', b'"count":0')
        env["payload"] = base64.b64encode(payload).decode()
        with open(os.path.join(work, "cert.json"), "w") as f:
            f.write(json.dumps(env, separators=(",", ":")))
        p = self.run_block(work)
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
