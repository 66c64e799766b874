"""Test harness: runs the real shredd binary on a temp data dir, over a real
unix socket, and drives it with the real shredctl binary or a Python gRPC
client (generated from proto/ at build time).

Environment (set by CTest, see tests/CMakeLists.txt):
  SHREDD_BIN, SHREDCTL_BIN   paths to the binaries
  SHREDD_PY_GEN              directory with the generated shredd/v1 Python stubs
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD_BIN = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin")
SHREDD = os.environ.get("SHREDD_BIN", os.path.join(BUILD_BIN, "shredd"))
SHREDCTL = os.environ.get("SHREDCTL_BIN", os.path.join(BUILD_BIN, "shredctl"))
PY_GEN = os.environ.get("SHREDD_PY_GEN", os.path.join(BUILD_BIN, "..", "proto", "gen", "py"))
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, PY_GEN)
# No personal shredctl config (docs/CLI.md "Config file") reaches the tests:
# a `json = true` or `server = ...` in ~/.config/shredd/shredctl.toml would
# change every shredctl call they make.
os.environ.pop("SHREDCTL_CONFIG", None)
os.environ["XDG_CONFIG_HOME"] = os.path.join(tempfile.gettempdir(), "shredd-tests-no-client-config")

import grpc  # noqa: E402
from shredd.v1 import shredd_pb2 as pb  # noqa: E402
from shredd.v1 import shredd_pb2_grpc as pb_grpc  # noqa: E402


def varint(n):
    """Protobuf's base-128 varint of `n` (tests that write messages by hand)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


class Daemon:
    """One shredd process. Data dir, vault and socket live under `root`."""

    def __init__(self, root, vault=None, data_dir=None, extra_args=(), env=None):
        self.root = root
        self.data_dir = data_dir or os.path.join(root, "data")
        self.vault = vault or "file:" + os.path.join(root, "vault")
        self.socket = os.path.join(root, "shredd.sock")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log_path = os.path.join(root, "shredd.log")
        self._channel = None

    @property
    def address(self):
        return "unix:" + self.socket

    def command(self):
        return [SHREDD, "--data-dir", self.data_dir, "--vault", self.vault,
                "--listen", self.address] + self.extra_args

    def start(self, timeout=20, expect_fail=False):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=self._log, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._close()
                if expect_fail:
                    return self.proc.returncode
                raise AssertionError("shredd exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(self.socket) and self._ready():
                if expect_fail:
                    raise AssertionError("shredd started but was expected to fail")
                return 0
            time.sleep(0.05)
        raise AssertionError("shredd did not become ready:\n" + self.log())

    def _ready(self):
        try:
            ch = grpc.insecure_channel(self.address)
            pb_grpc.StoreStub(ch).FindMissing(pb.FindMissingRequest(), timeout=1)
            ch.close()
            return True
        except grpc.RpcError:
            return False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=20):
        # Close our own channel first: gRPC's server shutdown otherwise waits
        # ~5 s for an idle connected client to go away.
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        rc = self.proc.returncode if self.proc else None
        self._close()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=20)
        self._close()

    def _close(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def channel(self):
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                self.address, options=[("grpc.max_receive_message_length", 64 << 20),
                                       ("grpc.max_send_message_length", 64 << 20)])
        return self._channel

    def store(self):
        return pb_grpc.StoreStub(self.channel())

    def shredder(self):
        return pb_grpc.ShredderStub(self.channel())

    def ctl(self, *args, check=True, json_out=False, input=None, cwd=None, timeout=600):
        cmd = [SHREDCTL, "--server", self.address] + (["--json"] if json_out else []) + list(args)
        p = subprocess.run(cmd, input=input, capture_output=True, cwd=cwd, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("shredctl %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode()))
        if json_out:
            lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
            return p, lines
        return p

    def put_bytes(self, data, kind=pb.KIND_PHOTO, subjects=(), datasets=(), labels=None, name=""):
        """Uploads through the streaming RPC; returns the digest string."""
        d = sha256_digest(data)
        header = pb.PutHeader(digest=pb.Digest(hash=d, size_bytes=len(data)),
                              metadata=pb.ItemMetadata(kind=kind, subject_ids=list(subjects),
                                                       datasets=list(datasets), labels=labels or {}, name=name))

        def gen():
            yield pb.PutRequest(header=header)
            for i in range(0, len(data), 1 << 20):
                yield pb.PutRequest(data=data[i:i + (1 << 20)])
        self.store().Put(gen(), timeout=120)
        return d

    def get_bytes(self, digest, offset=0, limit=0):
        out = b""
        for r in self.store().Get(pb.GetRequest(digest=pb.Digest(hash=digest), offset=offset, limit=limit),
                                  timeout=120):
            out += r.data
        return out


def read_text(path):
    with open(path) as f:
        return f.read()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def ctl_offline(*args, check=True):
    p = subprocess.run([SHREDCTL] + list(args), capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("shredctl %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


class DaemonTest(unittest.TestCase):
    """Gives each test a temp dir and a started daemon (self.d)."""

    start_daemon = True

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-test-")
        self.d = Daemon(self.tmp)
        if self.start_daemon:
            self.d.start()

    def tearDown(self):
        if self.d.proc is not None:
            self.d.kill()
        if os.environ.get("SHREDD_KEEP_TMP"):
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def assertRpcError(self, code, fn, *args, contains=None, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if contains:
            self.assertIn(contains, cm.exception.details())
        return cm.exception


def grep_tree(root, needles):
    """Returns [(path, needle)] for every needle (bytes) found in any file under root."""
    hits = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            for n in needles:
                if n in data:
                    hits.append((p, n))
    return hits
