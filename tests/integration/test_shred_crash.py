"""kill -9 during shreds (issue 3, invariant 2): after a restart every item of
an interrupted request is either intact (and no certificate exists) or
shredded and certified by a certificate that verifies — never shredded
without a certificate, never certified while recoverable."""
import json
import os
import random
import subprocess
import time
import unittest

from harness import SHREDCTL, DaemonTest, ctl_offline, grpc, pb, sha256_digest

RUNS = int(os.environ.get("SHREDD_CRASH_RUNS", "12"))


class ShredCrashTest(DaemonTest):
    def batch_put(self, items):
        req = pb.BatchPutRequest()
        for data in items:
            e = req.entries.add()
            e.header.digest.hash = sha256_digest(data)
            e.header.digest.size_bytes = len(data)
            e.header.metadata.subject_ids.append("crash-subject")
            e.data = data
        resp = self.d.store().BatchPut(req, timeout=60)
        for r in resp.results:
            self.assertEqual(r.code, 0, r.message)
        return [sha256_digest(x) for x in items]

    def readable(self, digest, data):
        try:
            return self.d.get_bytes(digest) == data
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, e.details())
            return False

    def test_kill_at_random_moments_during_shreds(self):
        rng = random.Random(int(os.environ.get("SHREDD_CRASH_SEED", "6962")))
        pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", pem)
        certified = interrupted_intact = 0
        for run in range(RUNS):
            items = [os.urandom(rng.randint(10, 3000)) for _ in range(150)]
            items.append(os.urandom(300_000))  # one file-backed item too
            digests = self.batch_put(items[:-1]) + [self.d.put_bytes(items[-1])]
            request = "crash-%d" % run
            p = subprocess.Popen([SHREDCTL, "--server", self.d.address, "shred", "--request-id", request,
                                  "-o", os.path.join(self.tmp, "c%d.json" % run)] + digests,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 0.08))
            self.d.kill()
            p.wait()
            self.d.start()
            # exactly one root in the vault after recovery
            roots = [f for f in os.listdir(os.path.join(self.tmp, "vault")) if f.startswith("root-")]
            self.assertEqual(len(roots), 1, roots)
            try:
                r = self.d.shredder().GetCertificate(pb.GetCertificateRequest(request_id=request))
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, e.details())
                r = None
            states = [self.readable(d, x) for d, x in zip(digests, items)]
            if r is None:
                self.assertTrue(all(states), "run %d: items lost without a certificate" % run)
                interrupted_intact += 1
                # the order can be re-run and is then certified
                r = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=d) for d in digests],
                                                            request_id=request))
                states = [self.readable(d, x) for d, x in zip(digests, items)]
            else:
                certified += 1
            self.assertFalse(any(states), "run %d: certified but still readable" % run)
            cert = os.path.join(self.tmp, "v%d.json" % run)
            man = os.path.join(self.tmp, "v%d.manifest.json" % run)
            with open(cert, "wb") as f:
                f.write(r.certificate)
            with open(man, "wb") as f:
                f.write(r.manifest)
            ctl_offline("verify", cert, "--pubkey", pem, "--manifest", man)
            self.assertEqual(json.loads(r.manifest)["items"].__len__(), len(digests))
            # a second request for the same request id: the same certificate
            again = self.d.shredder().Shred(pb.ShredRequest(digests=[pb.Digest(hash=d) for d in digests],
                                                            request_id=request))
            self.assertEqual(again.certificate_id, r.certificate_id)
        print("\ncrash runs: %d, certified before the kill: %d, intact then re-run: %d, violations: 0"
              % (RUNS, certified, interrupted_intact))


if __name__ == "__main__":
    unittest.main()
