"""Smoke test: the daemon starts, stores, reads back and stops cleanly."""
import unittest

from harness import DaemonTest, pb, sha256_digest


class SmokeTest(DaemonTest):
    def test_put_get_stop(self):
        data = b"hello shredd\n" * 100
        d = self.d.put_bytes(data, subjects=["alice"])
        self.assertEqual(d, sha256_digest(data))
        self.assertEqual(self.d.get_bytes(d), data)
        info = self.d.store().Stat(pb.StatRequest(digest=pb.Digest(hash=d)))
        self.assertEqual(info.digest.size_bytes, len(data))
        self.assertEqual(list(info.metadata.subject_ids), ["alice"])
        self.assertEqual(self.d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
