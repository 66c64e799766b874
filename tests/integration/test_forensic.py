"""The forensic test of issue 3 (design invariant 1).

Store X and Y; image A = copy of the data dir; shred X; image B = copy again.
Holding images A and B and everything in the vault after the shred:
  * no plaintext of X (content, subject id, label, file name) is in A or B;
  * a daemon on image A with the current vault cannot return X (it refuses to
    start: A needs a root the vault no longer has); even after relabelling the
    surviving root as the one A wants, X does not decrypt;
  * a daemon on image B with the current vault cannot return X; Y reads back
    intact from B.
Run once with the file vault and once with a SoftHSM2 token (pkcs11:).
"""
import os
import shutil
import subprocess
import unittest

from harness import REPO, Daemon, DaemonTest, grep_tree, grpc, pb

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class ForensicBase:
    def make_vault(self):
        raise NotImplementedError

    def copy_vault(self, dst):
        """Copies everything the vault holds now; returns a spec for it and env."""
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.vault_spec, self.env = self.make_vault()
        self.d = Daemon(self.tmp, vault=self.vault_spec, env=self.env)
        self.d.start()

    def test_old_images_and_the_current_vault_do_not_recover_x(self):
        marker = os.urandom(16).hex().encode()
        x_big = (b"X-BIG-" + marker) * 20000          # ~0.9 MB, file-backed
        x_small = b"X-SMALL-" + marker + os.urandom(500)  # inline in RocksDB
        y = b"Y-CONTENT-" + os.urandom(16).hex().encode() * 100
        subject = b"subject-" + os.urandom(8).hex().encode()
        label = b"label-" + os.urandom(8).hex().encode()
        name = b"name-" + os.urandom(8).hex().encode()
        dxb = self.d.put_bytes(x_big, subjects=[subject.decode()], labels={"src": label.decode()}, name=name.decode())
        dxs = self.d.put_bytes(x_small, subjects=[subject.decode()], labels={"src": label.decode()})
        dy = self.d.put_bytes(y, subjects=["subject-y"])
        needles = [marker, subject, label, name, x_small[-64:], dxb.split(":")[1].encode(), dxs.split(":")[1].encode()]

        self.d.stop()
        image_a = os.path.join(self.tmp, "image-a")
        shutil.copytree(self.d.data_dir, image_a)
        self.d.start()
        self.d.ctl("shred", dxb, dxs, "--reason", "forensic test", "-o", os.path.join(self.tmp, "cert.json"))
        self.d.stop()
        image_b = os.path.join(self.tmp, "image-b")
        shutil.copytree(self.d.data_dir, image_b)

        # 1. no plaintext of X in either image (nor in the vault)
        for root in (image_a, image_b):
            self.assertEqual(grep_tree(root, needles), [], root)
        self.assertEqual(grep_tree(self.vault_dir(), needles), [])

        # 2. image A + the current vault: the daemon refuses, and X stays sealed
        vault_copy = os.path.join(self.tmp, "vault-copy-a")
        spec, env = self.copy_vault(vault_copy)
        da = Daemon(os.path.join(self.tmp, "run-a"), vault=spec, data_dir=self.copy(image_a, "a1"), env=env)
        os.makedirs(da.root)
        rc = da.start(expect_fail=True)
        self.assertNotEqual(rc, 0)
        self.assertIn("does not hold it", da.log())
        self.attack_with_relabelled_root(image_a, dxb, dxs, dy)

        # 3. image B + the current vault: X is gone, Y is intact
        vault_copy = os.path.join(self.tmp, "vault-copy-b")
        spec, env = self.copy_vault(vault_copy)
        db = Daemon(os.path.join(self.tmp, "run-b"), vault=spec, data_dir=self.copy(image_b, "b1"), env=env)
        os.makedirs(db.root)
        db.start()
        try:
            for d in (dxb, dxs):
                with self.assertRaises(grpc.RpcError) as cm:
                    db.get_bytes(d)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
            self.assertEqual(db.get_bytes(dy), y)
        finally:
            db.kill()

    def copy(self, src, tag):
        dst = os.path.join(self.tmp, "copy-" + tag)
        shutil.copytree(src, dst)
        return dst


class FileVaultForensicTest(ForensicBase, DaemonTest):
    start_daemon = False

    def make_vault(self):
        return "file:" + self.vault_dir(), None

    def vault_dir(self):
        return os.path.join(self.tmp, "vault")

    def copy_vault(self, dst):
        shutil.copytree(self.vault_dir(), dst)
        return "file:" + dst, None

    def attack_with_relabelled_root(self, image_a, dxb, dxs, dy):
        """The attacker renames the surviving root file to the epoch image A
        wants: the daemon starts, but nothing under the old tree decrypts."""
        vault = os.path.join(self.tmp, "vault-attack")
        shutil.copytree(self.vault_dir(), vault)
        roots = [f for f in os.listdir(vault) if f.startswith("root-")]
        self.assertEqual(len(roots), 1, roots)  # the old root is gone from the vault
        epoch = int(roots[0][5:-4])
        os.rename(os.path.join(vault, roots[0]), os.path.join(vault, "root-%d.key" % (epoch - 1)))
        dd = Daemon(os.path.join(self.tmp, "run-attack"), vault="file:" + vault,
                    data_dir=self.copy(image_a, "attack"))
        os.makedirs(dd.root)
        rc = dd.start(expect_fail=True)  # the system key itself does not unwrap
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot unwrap the system key", dd.log())


@unittest.skipUnless(os.path.exists(SOFTHSM_MODULE), "SoftHSM2 not installed")
class Pkcs11VaultForensicTest(ForensicBase, DaemonTest):
    start_daemon = False

    def make_vault(self):
        tokdir = os.path.join(self.tmp, "token")
        out = subprocess.run(["sh", os.path.join(REPO, "scripts", "softhsm-token.sh"), tokdir],
                             capture_output=True, check=True).stdout.decode()
        conf = out.strip().split("=", 1)[1].strip("'")
        self.conf = conf
        return "pkcs11:module=%s;token=shredd;pin=1234" % SOFTHSM_MODULE, {"SOFTHSM2_CONF": conf}

    def vault_dir(self):
        return os.path.join(self.tmp, "token")

    def copy_vault(self, dst):
        # Copy the token's object store and point a config at the copy.
        shutil.copytree(self.vault_dir(), dst)
        conf = os.path.join(dst, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n" % dst)
        return self.vault_spec, {"SOFTHSM2_CONF": conf}

    def test_a_second_daemon_on_the_same_token_and_instance_is_refused(self):
        # Two daemons on one label namespace destroy each other's roots (a
        # shred of one destroys the root the other's tree is wrapped under).
        # A new data dir was refused already (the vault holds roots); a
        # restored one (a drill on the production token) was not. The token
        # now names its owner's data dir.
        vault, env, first = self.vault_spec, self.env, self.d
        data = b"held by the first daemon"
        digest = first.put_bytes(data)
        first.stop()
        root = os.path.join(self.tmp, "second")
        shutil.copytree(first.data_dir, os.path.join(root, "data"))  # as `shredd restore` makes it:
        owner_file = os.path.join(root, "data", "vault-owner")        # a data dir of its own
        if os.path.exists(owner_file):
            os.remove(owner_file)
        first.start()
        second = Daemon(root, vault=vault, env=env)
        self.assertNotEqual(second.start(expect_fail=True), 0)
        self.assertIn("belong to another shredd daemon", second.log())
        self.assertIn("--take-over-vault", second.log())
        self.assertEqual(first.get_bytes(digest), data)
        first.stop()
        # The first daemon is gone for good: the second takes the vault over.
        second.extra_args.append("--take-over-vault")
        second.start()
        self.assertEqual(second.get_bytes(digest), data)
        second.stop()
        self.assertNotEqual(first.start(expect_fail=True), 0)
        self.assertIn("belong to another shredd daemon", first.log())

    def attack_with_relabelled_root(self, image_a, dxb, dxs, dy):
        # Token objects are non-extractable and cannot be relabelled to an
        # older epoch without the token's cooperation; what we can check is
        # that the old root object is really gone from the token.
        p = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--login", "--pin", "1234",
                            "--token-label", "shredd", "--list-objects"],
                           capture_output=True, env=dict(os.environ, SOFTHSM2_CONF=self.conf))
        listing = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("shredd-root-2", listing)
        self.assertNotIn("shredd-root-1\n", listing)
        self.assertNotIn("label:      shredd-root-1", listing)


if __name__ == "__main__":
    unittest.main()
