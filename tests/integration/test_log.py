"""Transparency log, end to end: the real daemon and shredctl, checked by two
verifiers that share no code with shredd -- tests/tools/tlog_verify.py
(Python + PyNaCl, written from the C2SP specs and RFC 9162) and
tests/tools/tlog_verify.go (Go's golang.org/x/mod/sumdb/note and sumdb/tlog,
Debian's golang-golang-x-mod-dev; skipped only if Go is not installed).

Most tests append entries with the test-only tool bin/shredd_log_append while
the daemon is stopped (through the real TransparencyLog), which also restarts
the daemon between appends; test_custody_entries_of_puts and test_audit.py use
the daemon's own custody entries.
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import REPO, SHREDCTL, SHREDD, DaemonTest, ctl_offline, grpc, pb
from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402

TOOLS = os.path.join(REPO, "tests", "tools")
sys.path.insert(0, TOOLS)
import tlog_verify  # noqa: E402

LOG_APPEND = os.path.join(os.path.dirname(SHREDD), "shredd_log_append")
PY_VERIFIER = [sys.executable, os.path.join(TOOLS, "tlog_verify.py")]
GO_BIN = None
GO_SKIP_REASON = ""
EXIT_VERIFY_FAILED = 3
EXIT_FORK = 7


def setUpModule():
    """Builds the Go verifier once, against Debian's golang.org/x/mod sources."""
    global GO_BIN, GO_SKIP_REASON
    gopath = "/usr/share/gocode"
    if shutil.which("go") is None or not os.path.isdir(os.path.join(gopath, "src/golang.org/x/mod/sumdb/note")):
        GO_SKIP_REASON = "Go or golang-golang-x-mod-dev not installed (scripts/install-deps.sh installs them)"
        return
    go_dir = tempfile.mkdtemp(prefix="shredd-go-")
    out = os.path.join(go_dir, "tlog_verify_go")
    env = dict(os.environ, GOPATH=gopath, GO111MODULE="off", GOFLAGS="", GOCACHE=os.path.join(go_dir, "cache"))
    p = subprocess.run(["go", "build", "-o", out, os.path.join(TOOLS, "tlog_verify.go")],
                       capture_output=True, env=env, timeout=300)
    if p.returncode != 0:
        raise AssertionError("building tests/tools/tlog_verify.go failed:\n" + p.stderr.decode())
    GO_BIN = out


def tearDownModule():
    if GO_BIN:
        shutil.rmtree(os.path.dirname(GO_BIN), ignore_errors=True)


def mth(leaves):
    """RFC 9162 2.1.1 over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return tlog_verify.node_hash(mth(leaves[:k]), mth(leaves[k:]))


class LogTest(DaemonTest):

    # ------------------------------------------------------------ helpers

    def log(self):
        return lpb_grpc.LogStub(self.d.channel())

    def checkpoint(self):
        return self.log().GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30)

    def size(self):
        return self.checkpoint().tree_size

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path

    def grow(self, count, prefix="test entry"):
        """Stops the daemon, appends `count` entries, starts it again."""
        self.assertEqual(self.d.stop(), 0)
        p = subprocess.run([LOG_APPEND, self.d.data_dir, self.d.vault, str(count), prefix],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.d.start()
        return int(p.stdout)

    def vkey(self):
        """The log's verifier key, derived here from the raw public key and
        the default origin rule -- not taken from the daemon's word."""
        raw = self.d.shredder().GetPublicKey(pb.GetPublicKeyRequest(), timeout=30).ed25519_public_key
        origin = "shredd.local/" + hashlib.sha256(raw).hexdigest()[:16]
        typed = b"\x01" + raw
        key_id = hashlib.sha256(origin.encode() + b"\n" + typed).digest()[:4].hex()
        vkey = "%s+%s+%s" % (origin, key_id, base64.b64encode(typed).decode())
        cp = self.checkpoint()
        self.assertEqual(cp.origin, origin)
        self.assertEqual(cp.note_verifier_key, vkey)
        return vkey

    def independent(self, *args, ok=True):
        """Runs the Python and (if installed) Go verifiers; both must agree with `ok`."""
        runs = [("python", PY_VERIFIER + list(args))]
        if GO_BIN:
            runs.append(("go", [GO_BIN] + list(args)))
        for name, cmd in runs:
            p = subprocess.run(cmd, capture_output=True, timeout=60)
            out = (p.stdout + p.stderr).decode()
            if ok:
                self.assertEqual(p.returncode, 0, "%s verifier rejected %s: %s" % (name, args, out))
                self.assertIn("OK", out)
            else:
                self.assertNotEqual(p.returncode, 0, "%s verifier accepted %s: %s" % (name, args, out))

    def entries(self, start, end):
        r = self.log().GetEntries(lpb.GetEntriesRequest(start=start, end=end), timeout=30)
        return list(r.entries)

    def monitor(self, state, vkey_file, json_out=False):
        return self.d.ctl("log", "monitor", "--state", state, "--vkey", vkey_file, check=False, json_out=json_out)

    # ------------------------------------------------------------ tests

    def test_checkpoint_verifies_with_independent_implementations(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        cp = self.checkpoint()
        self.assertEqual(cp.tree_size, 0)
        self.assertEqual(cp.root_hash, hashlib.sha256(b"").digest())
        self.assertEqual(cp.checkpoint, "%s\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u2014 %s " % (
            cp.origin, cp.origin) + cp.checkpoint.split(" ")[-1])
        self.independent("checkpoint", vkey_file, self.write("cp0", cp.checkpoint))

        self.assertEqual(self.grow(5), 5)
        cp = self.checkpoint()
        self.assertEqual(cp.tree_size, 5)
        entries = self.entries(0, 5)
        self.assertEqual(entries, [b"test entry %d" % i for i in range(5)])
        self.assertEqual(cp.root_hash, mth([tlog_verify.leaf_hash(e) for e in entries]))
        cp_file = self.write("cp5", cp.checkpoint)
        self.independent("checkpoint", vkey_file, cp_file)
        # shredctl prints the same note; --json carries the same facts.
        self.assertEqual(self.d.ctl("log", "checkpoint").stdout.decode(), cp.checkpoint)
        _, lines = self.d.ctl("log", "checkpoint", json_out=True)
        self.assertEqual(lines[0]["checkpoint"], cp.checkpoint)
        self.assertEqual(lines[0]["treeSize"], 5)
        self.assertEqual(lines[0]["rootHash"], cp.root_hash.hex())
        # Tampered (another size, same signature) or under another key: rejected.
        self.independent("checkpoint", vkey_file, self.write("cp5bad", cp.checkpoint.replace("\n5\n", "\n6\n")),
                         ok=False)
        other = base64.b64encode(b"\x01" + bytes(32)).decode()
        name = cp.origin
        key_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + bytes(32)).digest()[:4].hex()
        self.independent("checkpoint", self.write("other.vkey", "%s+%s+%s" % (name, key_id, other)), cp_file,
                         ok=False)
        # The same checkpoint is served until the log grows (no re-signing).
        self.assertEqual(self.checkpoint().checkpoint, cp.checkpoint)

    def test_entries_and_tlog_proofs(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        self.grow(4)
        self.grow(3)  # a restart between appends
        self.assertEqual(self.size(), 7)
        for i in range(7):
            entry = os.path.join(self.tmp, "e%d" % i)
            proof = os.path.join(self.tmp, "p%d.tlog-proof" % i)
            self.d.ctl("log", "entry", str(i), "-o", entry)
            with open(entry, "rb") as f:
                self.assertEqual(f.read(), b"test entry %d" % i)
            self.assertEqual(self.d.ctl("log", "entry", str(i)).stdout, b"test entry %d" % i)
            self.d.ctl("log", "proof", str(i), "-o", proof)
            with open(proof) as f:
                text = f.read()
            self.assertTrue(text.startswith("c2sp.org/tlog-proof@v1\nindex %d\n" % i), text)
            self.independent("inclusion", vkey_file, entry, proof)
            p, lines = self.d.ctl("log", "verify", "--entry", entry, "--proof", proof, "--vkey", vkey_file,
                                  json_out=True)
            self.assertTrue(lines[0]["valid"])
            self.assertEqual(lines[0]["index"], i)
            self.assertEqual(lines[0]["treeSize"], 7)
            # By leaf hash, over gRPC: the same index and path.
            r = self.log().GetInclusionProof(lpb.GetInclusionProofRequest(
                leaf_hash=tlog_verify.leaf_hash(b"test entry %d" % i)), timeout=30)
            self.assertEqual(r.index, i)
            root = self.checkpoint().root_hash
            self.assertEqual(tlog_verify.inclusion_root(i, 7, tlog_verify.leaf_hash(b"test entry %d" % i),
                                                        list(r.hashes)), root)

        # Offline rejections, each with its reason (exit 3).
        good_entry, good_proof = os.path.join(self.tmp, "e3"), os.path.join(self.tmp, "p3.tlog-proof")
        with open(good_proof) as f:
            proof_text = f.read()

        def rejected(entry, proof, vkey, reason):
            p = ctl_offline("log", "verify", "--entry", entry, "--proof", proof, "--vkey", vkey, check=False)
            self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
            self.assertIn(reason, p.stderr.decode())
            self.independent("inclusion", vkey, entry, proof, ok=False)

        rejected(os.path.join(self.tmp, "e4"), good_proof, vkey_file, "does not prove")
        rejected(good_entry, self.write("wrongidx", proof_text.replace("index 3\n", "index 2\n")), vkey_file,
                 "does not prove")
        lines = proof_text.split("\n")
        rejected(good_entry, self.write("short", "\n".join(lines[:2] + lines[3:])), vkey_file, "too few")
        rejected(good_entry, self.write("cut", proof_text[:len(proof_text) // 3]), vkey_file, "truncated")
        rejected(good_entry, self.write("tampered", proof_text.replace("\n7\n", "\n8\n")), vkey_file,
                 "does not verify")
        rejected(good_entry, self.write("b64", proof_text.replace(lines[2], "!" + lines[2][1:])), vkey_file,
                 "base64")
        origin = self.checkpoint().origin
        fake = b"\x01" + bytes(range(32))
        fake_id = hashlib.sha256(origin.encode() + b"\n" + fake).digest()[:4].hex()
        rejected(good_entry, good_proof, self.write("wrong.vkey", "%s+%s+%s\n" % (
            origin, fake_id, base64.b64encode(fake).decode())), "different key")
        other_id = hashlib.sha256(b"other.example/log\n" + fake).digest()[:4].hex()
        rejected(good_entry, good_proof, self.write("unknown.vkey", "other.example/log+%s+%s\n" % (
            other_id, base64.b64encode(fake).decode())), "unknown key name")

    def test_certificate_inclusion_survives_reformatting_but_not_alteration(self):
        """Issue 15 part 4: the log holds a certificate's canonical envelope, so
        a regulator's pretty-printed copy still proves inclusion (and is told it
        was reformatted); an altered one never does."""
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        digest = self.d.put_bytes(os.urandom(3000))
        cert = os.path.join(self.tmp, "cert.json")
        self.d.ctl("shred", digest, "-o", cert)
        proof = cert[:-len(".json")] + ".tlog-proof"
        with open(cert, "rb") as f:
            issued = f.read()
        env = json.loads(issued)

        def verify(entry_bytes, name):
            entry = self.write(name, entry_bytes)
            return ctl_offline("--json", "log", "verify", "--entry", entry, "--proof", proof, "--vkey", vkey_file,
                               check=False)

        p = verify(issued, "issued.json")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertFalse(json.loads(p.stdout)["reformatted"])
        for name, spelling in [("indent", json.dumps(env, indent=2) + "\n"),
                               ("reordered", json.dumps(dict(reversed(list(env.items()))))),
                               ("newline", issued + b"\n")]:
            p = verify(spelling, name)
            self.assertEqual(p.returncode, 0, "%s: %s" % (name, p.stderr.decode()))
            self.assertTrue(json.loads(p.stdout)["reformatted"], name)
        text = ctl_offline("log", "verify", "--entry", os.path.join(self.tmp, "indent"), "--proof", proof, "--vkey",
                           vkey_file).stdout.decode()
        self.assertIn("reformatted", text)

        payload = base64.b64decode(env["payload"]).replace(b'"count":1', b'"count":2')
        altered = dict(env, payload=base64.b64encode(payload).decode())
        p = verify(json.dumps(altered, indent=2), "altered")
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("does not prove", p.stderr.decode())
        p = verify(json.dumps(dict(env, comment="added")), "extra-member")
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("no canonical form", p.stderr.decode())
        self.assertIn("comment", p.stderr.decode())
        p = verify(issued + b"\0" + json.dumps(altered).encode(), "nul")
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED)

    def test_consistency_proofs(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        self.grow(3)
        old = self.write("old.cp", self.checkpoint().checkpoint)
        self.grow(6)
        new = self.write("new.cp", self.checkpoint().checkpoint)
        for m in range(0, 10):
            r = self.log().GetConsistencyProof(lpb.GetConsistencyProofRequest(first=m, second=9), timeout=30)
            self.assertEqual((r.first, r.second), (m, 9))
        r = self.log().GetConsistencyProof(lpb.GetConsistencyProofRequest(first=3), timeout=30)
        self.assertEqual(r.second, 9)
        hashes = [base64.b64encode(h).decode() for h in r.hashes]
        proof = self.write("proof", "\n".join(hashes) + "\n")
        self.independent("consistency", vkey_file, old, new, proof)
        self.independent("consistency", vkey_file, new, new, self.write("empty", ""))
        bad = list(hashes)
        bad[0] = base64.b64encode(bytes(32)).decode()
        self.independent("consistency", vkey_file, old, new, self.write("bad", "\n".join(bad) + "\n"), ok=False)
        self.independent("consistency", vkey_file, old, new, self.write("short", "\n".join(hashes[1:]) + "\n"),
                         ok=False)
        self.independent("consistency", vkey_file, new, old, self.write("empty2", ""), ok=False)

    def test_requests_beyond_the_tree_are_out_of_range(self):
        self.grow(3)
        log = self.log()
        for call, req, numbers in [
            (log.GetInclusionProof, lpb.GetInclusionProofRequest(index=3), ("3",)),
            (log.GetInclusionProof, lpb.GetInclusionProofRequest(index=0, tree_size=4), ("4", "3")),
            (log.GetConsistencyProof, lpb.GetConsistencyProofRequest(first=1, second=5), ("5", "3")),
            (log.GetConsistencyProof, lpb.GetConsistencyProofRequest(first=4), ("4", "3")),
            (log.GetEntries, lpb.GetEntriesRequest(start=3, end=4), ("3",)),
            (log.GetTlogProof, lpb.GetTlogProofRequest(index=7), ("7", "3")),
        ]:
            e = self.assertRpcError(grpc.StatusCode.OUT_OF_RANGE, call, req, timeout=30)
            for n in numbers:
                self.assertIn(n, e.details())
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, log.GetEntries, lpb.GetEntriesRequest(start=1, end=1),
                            timeout=30)
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, log.GetInclusionProof,
                            lpb.GetInclusionProofRequest(leaf_hash=bytes(32)), timeout=30)
        # end beyond the tree is clamped.
        self.assertEqual(len(self.entries(1, 100)), 2)
        p = self.d.ctl("log", "proof", "3", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("beyond the log's tree size of 3", p.stderr.decode())

    def test_monitor_accepts_growth_and_detects_rollback_and_fork(self):
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.grow(4)
        # First run: trust on first use.
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("trust on first use", p.stdout.decode())
        with open(state) as f:
            self.assertIn("\n4\n", f.read())
        p, lines = self.monitor(state, vkey_file, json_out=True)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(lines[0]["status"], "unchanged")

        # Back up the data dir at size 4, grow to 9 across a restart: accepted.
        self.assertEqual(self.d.stop(), 0)
        backup = os.path.join(self.tmp, "data-backup")
        shutil.copytree(self.d.data_dir, backup)
        self.d.start()
        self.assertEqual(self.grow(5), 9)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("grew from 4 to 9", p.stdout.decode())
        with open(state) as f:
            state_at_9 = f.read()
        self.assertIn("\n9\n", state_at_9)

        # Restore the old copy: the log rolled back to 4.
        self.assertEqual(self.d.stop(), 0)
        shutil.rmtree(self.d.data_dir)
        shutil.copytree(backup, self.d.data_dir)
        self.d.start()
        self.assertEqual(self.size(), 4)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
        err = p.stderr.decode()
        self.assertIn("FORK/ROLLBACK DETECTED", err)
        self.assertIn("ROLLBACK", err)
        self.assertIn("from 9 to 4", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        # A smaller checkpoint is what a rolled-back log and a replayed old
        # checkpoint (a stale cache) both look like: reported, not evidence.
        self.assertIn("not by itself proof of a fork", err)
        with open(state) as f:
            self.assertEqual(f.read(), state_at_9, "the monitor must keep the checkpoint it trusted")
        self.assertTrue(os.path.exists(state + ".conflict"))

        # The restored log grows again, with other entries: a fork at size 9,
        # proven by the two signed checkpoints. The monitor cannot save the
        # conflicting one (a directory in its way, as a full disk would be):
        # the fork is still reported, exit 7.
        self.assertEqual(self.grow(5, prefix="forked entry"), 9)
        os.remove(state + ".conflict")
        os.mkdir(state + ".conflict")
        with open(os.path.join(state + ".conflict", "in the way"), "w") as f:
            f.write("x")
        p, lines = self.monitor(state, vkey_file, json_out=True)
        self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
        self.assertEqual(lines[0]["status"], "fork-or-rollback")
        self.assertEqual(lines[0]["kind"], "fork")
        self.assertIn("FORK: two different roots for tree size 9", lines[0]["reason"])
        self.assertIn("saveError", lines[0])
        self.assertIn("could NOT be saved", p.stderr.decode())
        shutil.rmtree(state + ".conflict")
        # ... and beyond it, where no consistency proof can hold.
        self.assertEqual(self.grow(3, prefix="forked entry"), 12)
        p, lines = self.monitor(state, vkey_file, json_out=True)
        self.assertEqual(p.returncode, EXIT_FORK, p.stderr.decode())
        self.assertIn("FORK: the tree of size 12 does not extend the tree of size 9", p.stderr.decode())
        self.assertIn("evidence anyone can check", p.stderr.decode())
        self.assertEqual(lines[0]["kind"], "fork")
        self.assertEqual(lines[0]["evidence"], state + ".conflict")
        with open(state) as f:
            self.assertEqual(f.read(), state_at_9)

    def test_monitors_on_one_state_run_one_at_a_time_and_write_only_their_own_files(self):
        # Two runs that overlapped (cron, a slow server) used to read the same
        # state and write in turn: the slower one put back the older
        # checkpoint, and a fork that conflicted only with the lost one then
        # passed. Their temporary file had a fixed name, opened without
        # O_EXCL: a symlink there was written through and became the state.
        import fcntl
        import time
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.grow(3)
        self.assertEqual(self.monitor(state, vkey_file).returncode, 0)
        self.grow(2)
        with open(state + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another monitor's run
            waiting = subprocess.Popen([SHREDCTL, "--server", self.d.address, "log", "monitor", "--state", state,
                                        "--vkey", vkey_file], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1.5)
            self.assertIsNone(waiting.poll(), "a second monitor on the same state must wait for the first")
            fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = waiting.communicate(timeout=60)
        self.assertEqual(waiting.returncode, 0, err.decode())
        self.assertIn("grew from 3 to 5", out.decode())
        victim = self.write("victim", "not the monitor's\n")
        for name in (state + ".tmp", state + ".conflict.tmp"):
            os.symlink(victim, name)
        self.grow(1)
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertFalse(os.path.islink(state))
        with open(state) as f:
            self.assertIn("\n6\n", f.read())
        with open(victim) as f:
            self.assertEqual(f.read(), "not the monitor's\n")
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith("monitor.state")),
                         ["monitor.state", "monitor.state.conflict.tmp", "monitor.state.lock", "monitor.state.tmp"])

    def test_monitor_rejects_wrong_keys_and_a_tampered_state(self):
        vkey = self.vkey()
        vkey_file = self.write("log.vkey", vkey + "\n")
        state = os.path.join(self.tmp, "monitor.state")
        self.grow(2)
        origin = vkey.split("+")[0]
        fake = b"\x01" + bytes(range(32))
        fake_id = hashlib.sha256(origin.encode() + b"\n" + fake).digest()[:4].hex()
        wrong = self.write("wrong.vkey", "%s+%s+%s\n" % (origin, fake_id, base64.b64encode(fake).decode()))
        p = self.monitor(state, wrong)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("different key", p.stderr.decode())
        self.assertFalse(os.path.exists(state), "nothing is trusted from a checkpoint that does not verify")
        self.assertEqual(self.monitor(state, vkey_file).returncode, 0)
        with open(state) as f:
            good = f.read()
        with open(state, "w") as f:
            f.write(good.replace("\n2\n", "\n1\n"))
        p = self.monitor(state, vkey_file)
        self.assertEqual(p.returncode, EXIT_VERIFY_FAILED, p.stderr.decode())
        self.assertIn("does not verify", p.stderr.decode())
        pem = self.write("key.pem", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGlzZBxQ8OExB6DDFvOEqqIF+xWSaqr8sMTiLNbLXRNY=\n"
                                    "-----END PUBLIC KEY-----\n")
        p = self.monitor(state, pem)
        self.assertEqual(p.returncode, 2, p.stderr.decode())
        self.assertIn("verifier key", p.stderr.decode())

    def test_custody_entries_of_puts(self):
        """Custody entries of an upload prove offline and carry no plaintext
        personal data (invariant 6)."""
        before = self.size()
        data = b"a photo of subject-77 " + os.urandom(16)
        digest = self.d.put_bytes(data, subjects=["subject-77"], datasets=["dataset-secret"], name="face.jpg")
        after = self.size()
        self.assertGreater(after, before, "an upload must append a custody entry")
        vkey_file = self.write("log.vkey", self.vkey() + "\n")
        for i in range(before, after):
            entry = self.entries(i, i + 1)[0]
            for secret in (b"subject-77", b"dataset-secret", b"face.jpg", digest.encode(), digest[7:].encode(), data):
                self.assertNotIn(secret, entry, "log entry %d leaks %r" % (i, secret))
            e = self.write("c%d" % i, entry)
            proof = os.path.join(self.tmp, "c%d.tlog-proof" % i)
            self.d.ctl("log", "proof", str(i), "-o", proof)
            self.independent("inclusion", vkey_file, e, proof)

    def test_go_verifier_is_available(self):
        if GO_BIN is None:
            self.skipTest(GO_SKIP_REASON)
        self.assertTrue(os.access(GO_BIN, os.X_OK))


if __name__ == "__main__":
    unittest.main()
