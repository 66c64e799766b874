"""Receipts for data subjects, in bulk (issue 15 part 5): an order submitted
with --keep-subject-map keeps whose items it shredded; `shredctl order
receipts ID --by-subject -o DIR` writes one private bundle per subject,
each receipt verifiable with the certificate and the person's own photo,
then releases the map by shredding its key, so that no copy of it (an old
data dir included) can be read again."""
import json
import os
import shutil
import stat

from harness import Daemon, DaemonTest, ctl_offline, grep_tree, grpc, pb, sha256_digest

from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402

SUBJECTS = ["alice@example.com", "bob-7f3a", "carol/../x", "dörte-k", "eve-93b1"]


class SubjectReceiptsTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.orders = opb_grpc.OrdersStub(self.d.channel())
        self.pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", self.pem)
        self.files = {}   # digest -> path of the photo
        self.owners = {}  # digest -> subjects

    def photos(self, n, dataset, subjects_of):
        req = pb.BatchPutRequest()
        for i in range(n):
            data = b"photo-%s-%d-" % (dataset.encode(), i) + os.urandom(150)
            d = sha256_digest(data)
            path = os.path.join(self.tmp, "p-%s.jpg" % d[7:23])
            with open(path, "wb") as f:
                f.write(data)
            self.files[d] = path
            self.owners[d] = subjects_of(i)
            e = req.entries.add()
            e.header.digest.hash = d
            e.header.digest.size_bytes = len(data)
            e.header.metadata.kind = pb.KIND_PHOTO
            e.header.metadata.datasets.append(dataset)
            e.header.metadata.subject_ids.extend(subjects_of(i))
            e.data = data
        for r in self.d.store().BatchPut(req, timeout=60).results:
            self.assertEqual(r.code, 0, r.message)

    def order(self, oid, *selectors, keep=True):
        cert = os.path.join(self.tmp, oid + ".json")
        args = ["order", "submit", "--id", oid, "--basis", "gdpr-art17", "--reference", "R-" + oid,
                *selectors, "-o", cert]
        self.d.ctl(*(args + (["--keep-subject-map"] if keep else [])))
        return cert

    def receipts(self, oid, out, *extra, check=True):
        return self.d.ctl("order", "receipts", oid, "--by-subject", "-o", out, *extra, check=check, json_out=True)

    def verify(self, cert, bundle, item, check=True):
        return ctl_offline("verify", cert, "--pubkey", self.pem, "--receipt", bundle, "--item", item, check=check)

    def test_one_bundle_per_subject_then_the_map_is_gone(self):
        # 40 photos of 5 subjects (every 7th shared by two), 5 without a subject, another dataset kept
        self.photos(40, "faces", lambda i: [SUBJECTS[i % 5]] + ([SUBJECTS[(i + 1) % 5]] if i % 7 == 0 else []))
        self.photos(5, "faces", lambda i: [])
        self.photos(6, "other", lambda i: ["alice@example.com"])
        cert = self.order("gdpr-1", "--dataset", "faces")
        # No subject id lies in plaintext anywhere in the data dir.
        self.assertEqual(grep_tree(self.d.data_dir, [s.encode() for s in SUBJECTS]), [])
        # The map survives a restart.
        self.d.stop()
        self.d.start()
        self.orders = opb_grpc.OrdersStub(self.d.channel())
        # A directory other users can enter is refused before anything is
        # written: the file names name the subjects.
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o755)
        p, _ = self.receipts("gdpr-1", shared, check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("is open to other users (mode 0755)", p.stderr.decode())
        self.assertEqual(os.listdir(shared), [])
        # A new one is made for the caller alone, whatever the umask.
        out = os.path.join(self.tmp, "new", "bundles")
        old_umask = os.umask(0o022)
        try:
            _, lines = self.receipts("gdpr-1", out)
        finally:
            os.umask(old_umask)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o700)
        self.assertEqual(lines[0]["subjects"], 5)
        self.assertEqual(lines[0]["items"],
                         sum(len(subs) for d, subs in self.owners.items() if d in self.shredded_in(cert)))
        self.assertTrue(lines[0]["released"])
        names = sorted(os.listdir(out))
        self.assertEqual(len(names), 5, names)
        self.assertIn("alice@example.com.receipts.json", names)
        self.assertIn("carol%2F..%2Fx.receipts.json", names)  # no path escapes the directory
        self.assertIn("d%C3%B6rte-k.receipts.json", names)
        for name in names:
            path = os.path.join(out, name)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, name)
            with open(path) as f:
                b = json.load(f)
            self.assertEqual(b["type"], "shredd-receipt-bundle-v1")
            self.assertEqual(b["orderId"], "gdpr-1")
            mine = sorted(d for d, subs in self.owners.items() if b["subject"] in subs and d in self.shredded_in(cert))
            self.assertEqual(sorted(r["item"]["digest"] for r in b["receipts"]), mine, b["subject"])
            # Every receipt verifies with the person's own photo.
            for d in mine:
                self.verify(cert, path, self.files[d])
        # A photo of someone else is not in alice's bundle: exit 3 with the reason.
        alice = os.path.join(out, "alice@example.com.receipts.json")
        bobs = next(d for d, s in self.owners.items() if s == ["bob-7f3a"])
        p = self.verify(cert, alice, self.files[bobs], check=False)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("holds no receipt for " + bobs, p.stdout.decode() + p.stderr.decode())
        # The "other" dataset's alice photos were not shredded and are in no bundle.
        # The map is gone: the daemon cannot tell whose items these were.
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.orders.GetSubjectMap(
            opb.SubjectMapRequest(order_id="gdpr-1")).next, contains="was released (subjects it held: 5)")
        p, _ = self.receipts("gdpr-1", os.path.join(self.tmp, "again"), check=False)
        self.assertEqual(p.returncode, 4, p.stderr)
        # Released again: nothing to do, the same answer as the release.
        self.assertEqual(self.orders.ReleaseSubjectMap(opb.SubjectMapRequest(order_id="gdpr-1")).subjects, 5)

    def shredded_in(self, cert):
        if not hasattr(self, "_manifest_digests"):
            with open(cert[:-5] + ".manifest.json") as f:
                self._manifest_digests = {i["digest"] for i in json.load(f)["items"]}
        return self._manifest_digests

    def test_keep_then_release_and_an_old_copy_of_the_map_is_useless(self):
        self.photos(12, "faces", lambda i: [SUBJECTS[i % 3]])
        self.order("gdpr-2", "--subject", "alice@example.com", "--subject", "bob-7f3a")
        out = os.path.join(self.tmp, "kept")
        _, lines = self.receipts("gdpr-2", out, "--keep")
        self.assertEqual((lines[0]["subjects"], lines[0]["items"], lines[0]["released"]), (2, 8, False))
        # The map is still there, and a copy of the data dir holds it.
        self.d.stop()
        old = os.path.join(self.tmp, "old-data")
        shutil.copytree(self.d.data_dir, old)
        self.d.start()
        _, lines = self.receipts("gdpr-2", os.path.join(self.tmp, "second"))
        self.assertEqual((lines[0]["subjects"], lines[0]["released"]), (2, True))
        # A release retried (say after an error once it committed) answers as
        # the first did; the map itself is gone, and says so.
        orders = opb_grpc.OrdersStub(self.d.channel())
        self.assertEqual(orders.ReleaseSubjectMap(opb.SubjectMapRequest(order_id="gdpr-2"), timeout=60).subjects, 2)
        p = self.d.ctl("order", "receipts", "gdpr-2", "--by-subject", "-o", os.path.join(self.tmp, "third"),
                       check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("was released (subjects it held: 2)", p.stderr.decode())
        self.d.stop()
        # The old copy with the current vault: its key tree's root is destroyed.
        stale = Daemon(os.path.join(self.tmp, "stale-root"), vault=self.d.vault, data_dir=old)
        os.makedirs(stale.root)
        stale.start(expect_fail=True)
        self.assertNotEqual(stale.proc.returncode, 0)
        self.assertIn("vault", stale.log().lower())

    def test_bundles_of_another_order_are_not_replaced(self):
        # Two orders naming the same subject, written into one directory:
        # the second run used to replace the first order's bundle, then
        # release its own map, and the first order's receipts were lost.
        self.photos(4, "one", lambda i: ["carol"])
        self.photos(4, "two", lambda i: ["carol"])
        self.order("o-one", "--dataset", "one")
        self.order("o-two", "--dataset", "two")
        out = os.path.join(self.tmp, "bundles")
        self.receipts("o-one", out)
        bundle = os.path.join(out, "carol.receipts.json")
        with open(bundle, "rb") as f:
            first = f.read()
        p, _ = self.receipts("o-two", out, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("o-one", p.stderr.decode())
        self.assertIn("keeps the subject map", p.stderr.decode())
        with open(bundle, "rb") as f:
            self.assertEqual(f.read(), first)
        # Nothing was lost: the second order's map is still there.
        _, lines = self.receipts("o-two", os.path.join(self.tmp, "bundles-two"))
        self.assertEqual((lines[0]["subjects"], lines[0]["items"], lines[0]["released"]), (1, 4, True))
        # A run of the same order again (after --keep) rewrites its own.
        self.photos(2, "three", lambda i: ["dave"])
        self.order("o-three", "--dataset", "three")
        again = os.path.join(self.tmp, "again")
        self.receipts("o-three", again, "--keep")
        self.receipts("o-three", again)

    def test_without_keep_there_is_no_map(self):
        self.photos(4, "faces", lambda i: ["bob-7f3a"])
        self.order("plain", "--subject", "bob-7f3a", keep=False)
        p, _ = self.receipts("plain", os.path.join(self.tmp, "none"), check=False)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("keeps no subject map", p.stderr.decode())
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.orders.ReleaseSubjectMap,
                            opb.SubjectMapRequest(order_id="no-such-order"))
        # The flag is part of the order: the same id with it is another order.
        p = self.d.ctl("order", "submit", "--id", "plain", "--basis", "gdpr-art17", "--reference", "R-plain",
                       "--subject", "bob-7f3a", "--keep-subject-map", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already exists with different fields", p.stderr.decode())

    def test_receipt_for_several_items_is_one_bundle(self):
        self.photos(9, "faces", lambda i: ["bob-7f3a"])
        cert = self.order("many", "--dataset", "faces", keep=False)
        manifest = cert[:-5] + ".manifest.json"
        digests = sorted(self.files)
        bundle = os.path.join(self.tmp, "three.json")
        ctl_offline("receipt", "--manifest", manifest, "--item", self.files[digests[0]], "--item", digests[1],
                    "--item", self.files[digests[2]], "-o", bundle)
        with open(bundle) as f:
            b = json.load(f)
        self.assertEqual(sorted(r["item"]["digest"] for r in b["receipts"]), digests[:3])
        for d in digests[:3]:
            self.verify(cert, bundle, self.files[d])
        p = self.verify(cert, bundle, self.files[digests[3]], check=False)
        self.assertEqual(p.returncode, 3)
        # One unknown item: nothing written, exit 4.
        p = ctl_offline("receipt", "--manifest", manifest, "--item", digests[0], "--item", "sha256:" + "0" * 64,
                        "-o", os.path.join(self.tmp, "bad.json"), check=False)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad.json")))


if __name__ == "__main__":
    import unittest
    unittest.main()
