#!/usr/bin/python3
"""`shredctl get` against a fake daemon that answers downloads with raw bytes
of its choosing. shredctl reads replies as raw gRPC bytes (proto/raw_wire.h):
the daemon's usual framing is split in gRPC's buffers, any other valid
encoding must still be decoded as protobuf decodes it, and bytes that are
no GetResponse, or content that does not hash to the digest asked for, must
fail the command and leave no output file."""
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import SHREDCTL, grpc, pb, varint

CONTENT = os.urandom(3 * 1024 * 1024 + 17)
DIGEST = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


def usual(data, total):
    """The daemon's framing: total_size (field 2), then data (field 1)."""
    return (b"\x10" + varint(total) if total else b"") + b"\x0a" + varint(len(data)) + data


def protobufs(data, total):
    """What protobuf writes: data first, then total_size."""
    return pb.GetResponse(data=data, total_size=total).SerializeToString()


class HostileDownloadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shredd-fake-get-")
        self.sock = os.path.join(self.tmp, "fake.sock")
        self.replies = []
        handler = grpc.method_handlers_generic_handler("shredd.v1.Store", {
            "Get": grpc.unary_stream_rpc_method_handler(lambda req, ctx: iter(self.replies),
                                                        request_deserializer=pb.GetRequest.FromString,
                                                        response_serializer=lambda b: b)})
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("unix:" + self.sock)
        self.server.start()

    def tearDown(self):
        self.server.stop(0)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def get(self, replies):
        self.replies = replies
        out = os.path.join(self.tmp, "out.bin")
        p = subprocess.run([SHREDCTL, "--server", "unix:" + self.sock, "-q", "get", DIGEST, "-o", out],
                           capture_output=True, timeout=60)
        return p, out

    def chunks(self, frame):
        step = 1 << 20
        parts = [CONTENT[i:i + step] for i in range(0, len(CONTENT), step)]
        return [frame(d, len(CONTENT) if i == 0 else 0) for i, d in enumerate(parts)]

    def test_every_valid_encoding_is_decoded(self):
        for name, frame in (("usual", usual), ("protobuf's", protobufs)):
            with self.subTest(framing=name):
                p, out = self.get(self.chunks(frame))
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(out, "rb") as f:
                    self.assertTrue(f.read() == CONTENT)
                os.remove(out)
        # Mixed, with an empty message and an unknown field after the data.
        replies = self.chunks(usual)
        replies.insert(1, b"")
        replies[2] += b"\x78\x01"
        p, out = self.get(replies)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            self.assertTrue(f.read() == CONTENT)

    def test_bytes_that_are_no_get_response_fail_and_leave_nothing(self):
        cases = {
            "length beyond the message": self.chunks(usual)[:1] + [b"\x0a\x05ab"],
            "truncated varint": [b"\x10\xff"],
        }
        for name, replies in cases.items():
            with self.subTest(case=name):
                p, out = self.get(replies)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(b"not a GetResponse", p.stderr)
                self.assertFalse(os.path.exists(out))

    def test_content_that_is_not_the_digest_fails_and_leaves_nothing(self):
        replies = self.chunks(usual)
        replies[-1] = usual(b"x" * (len(CONTENT) % (1 << 20)), 0)
        p, out = self.get(replies)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"hash to", p.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(os.listdir(self.tmp), ["fake.sock"])


if __name__ == "__main__":
    unittest.main()
