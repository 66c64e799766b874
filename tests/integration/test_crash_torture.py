"""Crash-consistency torture at suite scale (issue 7): SHREDD_TORTURE_RUNS
(default 10) kill -9 runs of tests/soak/crash_torture.py against one data
dir — concurrent streamed and batch uploads, a dataset order of hundreds of
items with a model (and sometimes a fine-tune) trained on it, sometimes a
direct shred — then restart and check invariants 2 and 3 (see the soak
script's docstring). The soak runs 50 and more; docs/RELIABILITY.md."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak"))
import crash_torture  # noqa: E402

from harness import pb  # noqa: E402

RUNS = int(os.environ.get("SHREDD_TORTURE_RUNS", "10"))
SEED = int(os.environ.get("SHREDD_TORTURE_SEED", "1957"))


class CrashTortureTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-torture-")
        self.lines = []
        # Epochs of 32 items: each order spans several, so kills also land
        # between the epochs of one destruction.
        self.t = crash_torture.CrashTorture(self.tmp, seed=SEED, dataset_size=(120, 220), big_max=700_000,
                                            log=self.lines.append, epoch_items=32)

    def tearDown(self):
        self.t.close()
        if os.environ.get("SHREDD_KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def test_kill_9_during_uploads_and_orders(self):
        self.t.setup()
        for run in range(RUNS):
            info = self.t.run_once(run)
            self.assertEqual(self.t.violations, [], "after run %d (%s)" % (run, info))
        checked = self.t.final_check()
        self.assertEqual(self.t.violations, [])
        # The torture did what it claims: orders were certified and verified,
        # items were shredded, and kills cut some uploads.
        self.assertGreaterEqual(len(self.t.certs_seen), RUNS)
        self.assertGreater(len(self.t.shredded), RUNS * 100)
        self.assertGreater(sum(i["cut"] for i in self.t.runs), 0)
        self.assertGreater(checked, len(self.t.shredded))
        print("\ncrash torture: %d runs, %d certificates verified, %d items checked, violations: 0; "
              "order state at kill: %s" % (RUNS, len(self.t.certs_seen), checked,
                                           sorted(i["order"] for i in self.t.runs)))

    def test_the_checks_catch_violations(self):
        """Negative control: the checker is not hollow."""
        self.t.setup()
        # an "acknowledged" upload that the daemon never stored
        ghost = self.t.new_item(100, pb.KIND_PHOTO, run=0)
        ghost.acked = True
        # a stored item that a certificate supposedly lists
        real = self.t.new_item(100, pb.KIND_PHOTO, run=0)
        self.t.put_stream(self.t.d.store(), real)
        real.acked = True
        self.t.shredded.add(real.digest)
        self.t.check_items("control", [ghost, real])
        self.assertEqual(len(self.t.violations), 2, self.t.violations)
        self.assertIn("gone without a certificate", self.t.violations[0])
        self.assertIn("still readable", self.t.violations[1])
        # a second root in the vault
        with open(os.path.join(self.tmp, "vault", "root-999999"), "wb") as f:
            f.write(b"x" * 32)
        self.t.check_vault("control")
        self.assertEqual(len(self.t.violations), 3, self.t.violations)
        self.assertIn("roots", self.t.violations[2])
        # a witness state from another log: the monitor must refuse
        with open(self.t.witness, "rb") as f:
            state = f.read()
        with open(self.t.witness, "wb") as f:
            f.write(state.replace(b"\n", b"\n\n", 1))
        self.t.monitor("control")
        self.assertEqual(len(self.t.violations), 4, self.t.violations)
        self.assertIn("log monitor exit", self.t.violations[3])


if __name__ == "__main__":
    unittest.main()
