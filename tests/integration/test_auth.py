"""Who may do what (docs/SECURITY.md): roles by TLS client certificate on TCP
and by uid on the unix socket (and on plaintext loopback TCP), refusals with
PERMISSION_DENIED that name the missing role and change nothing, and the
issue's bar: a regulator with only an auditor certificate can run
`shredctl log monitor` and `shredctl verify` against a TLS endpoint and can
do nothing else.

Certificates come from a throwaway CA made with openssl here. Tests that run
shredctl as another user need root (setpriv); they are skipped otherwise.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from harness import (REPO, SHREDCTL, SHREDD, Daemon, file_digest, pb, pb_grpc, read_json)  # noqa: F401
import grpc
import auth_sweep
from shredd.v1 import log_pb2, log_pb2_grpc, orders_pb2, orders_pb2_grpc

NOBODY = 65534
AUDITOR_SUBJECT = "CN=ftc-auditor,O=FTC"
WRITER_SAN = "ingest.vendor.example"
DELETER_SUBJECT = "CN=compliance,O=Vendor"
WORKLOAD_URI = "spiffe://vendor.example/ingest"

# What an auditor may call; everything else must be PERMISSION_DENIED.
AUDITOR_METHODS = {"/shredd.v1.Shredder/GetCertificate", "/shredd.v1.Shredder/GetPublicKey"} | {
    "/shredd.v1.Log/" + m.name for m in log_pb2.DESCRIPTOR.services_by_name["Log"].methods}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(d, name, cn):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)


def make_leaf(d, ca, name, subj, ext):
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\n" + ext)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)


def make_pki(d):
    make_ca(d, "ca", "shredd test CA")
    make_ca(d, "rogue-ca", "someone else's CA")
    make_leaf(d, "ca", "server", "/CN=shredd",
              "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    make_leaf(d, "ca", "auditor", "/O=FTC/CN=ftc-auditor", "extendedKeyUsage=clientAuth\n")
    make_leaf(d, "ca", "writer", "/O=Vendor/CN=ingest",
              "subjectAltName=DNS:%s\nextendedKeyUsage=clientAuth\n" % WRITER_SAN)
    make_leaf(d, "ca", "nobody", "/O=Vendor/CN=intern", "extendedKeyUsage=clientAuth\n")
    # SANs of another type that read like a granted one: CAs of user
    # certificates often let the holder choose an e-mail or URI SAN.
    make_leaf(d, "ca", "email-san", "/O=Vendor/CN=mailbox",
              "subjectAltName=email:%s,email:%s\nextendedKeyUsage=clientAuth\n" % (WRITER_SAN, WORKLOAD_URI))
    make_leaf(d, "ca", "uri-san", "/O=Vendor/CN=link",
              "subjectAltName=URI:%s\nextendedKeyUsage=clientAuth\n" % WRITER_SAN)
    make_leaf(d, "ca", "workload", "/O=Vendor/CN=workload",
              "subjectAltName=URI:%s\nextendedKeyUsage=clientAuth\n" % WORKLOAD_URI)
    make_leaf(d, "ca", "deleter", "/O=Vendor/CN=compliance", "extendedKeyUsage=clientAuth\n")
    # Same subject as the auditor, other CA: must not get in.
    make_leaf(d, "rogue-ca", "rogue", "/O=FTC/CN=ftc-auditor", "extendedKeyUsage=clientAuth\n")


# As the caller: accept connections on a loopback port and relay each to the
# daemon (127.0.0.1:argv[2]) from an AF_INET6 socket bound to local port argv[1].
RELAY = r"""
import select, socket, sys
shared, daemon = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
print("ready", ls.getsockname()[1], flush=True)
while True:
    c, _ = ls.accept()
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("::ffff:127.0.0.1", shared))
        s.connect(("::ffff:127.0.0.1", daemon))
    except OSError:
        c.close()
        continue
    open_ = True
    while open_:
        for r in select.select([c, s], [], [])[0]:
            data = r.recv(65536)
            if not data:
                open_ = False
                break
            (s if r is c else c).sendall(data)
    c.close()
    s.close()
"""


def can_switch_uid():
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def as_nobody(cmd):
    return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + cmd


class TlsAuthTest(unittest.TestCase):
    """One daemon with a unix socket (the operator, root = the daemon's uid)
    and a mutual-TLS port (everyone else); data seeded by the operator."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="shredd-auth-")
        cls.pki = os.path.join(cls.tmp, "pki")
        os.mkdir(cls.pki)
        make_pki(cls.pki)
        cls.port = free_port()
        cls.d = Daemon(cls.tmp, extra_args=[
            "--listen", "tcp:127.0.0.1:%d" % cls.port,
            "--tls-cert", cls.p("server.pem"), "--tls-key", cls.p("server.key"),
            "--tls-client-ca", cls.p("ca.pem"),
            "--grant-tls", "%s=auditor" % AUDITOR_SUBJECT,
            "--grant-tls", "san:%s=writer" % WRITER_SAN,
            "--grant-tls", "san:uri:%s=writer" % WORKLOAD_URI,
            "--grant-tls", "%s=deleter" % DELETER_SUBJECT])
        cls.d.start()
        # The operator (unix socket) stores two photos, shreds one, keeps one.
        cls.work = os.path.join(cls.tmp, "work")
        os.mkdir(cls.work)
        for name, data in (("keep.jpg", b"kept photo " * 100), ("gone.jpg", b"shredded photo " * 100)):
            with open(os.path.join(cls.work, name), "wb") as f:
                f.write(data)
        cls.d.ctl("put", os.path.join(cls.work, "keep.jpg"), "--subject", "alice", "--dataset", "ds1")
        cls.d.ctl("put", os.path.join(cls.work, "gone.jpg"), "--subject", "bob", "--dataset", "ds-gone")
        cls.kept = file_digest(os.path.join(cls.work, "keep.jpg"))
        cls.gone = file_digest(os.path.join(cls.work, "gone.jpg"))
        _, lines = cls.d.ctl("shred", cls.gone, "--reason", "GDPR Art. 17 request 7",
                             "-o", os.path.join(cls.work, "op-cert.json"), json_out=True)
        cls.cert_id = lines[0]["certificateId"]

    @classmethod
    def tearDownClass(cls):
        cls.d.kill()
        if os.environ.get("SHREDD_KEEP_TMP"):
            print("kept", cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def p(cls, name):
        return os.path.join(cls.pki, name)

    def tls_ctl(self, who, *args, ca="ca.pem", server=None, extra=(), cwd=None):
        cmd = [SHREDCTL, "--server", server or "tcp:127.0.0.1:%d" % self.port, "--tls-ca", self.p(ca)]
        if who:
            cmd += ["--tls-cert", self.p(who + ".pem"), "--tls-key", self.p(who + ".key")]
        cmd += list(extra) + list(args)
        return subprocess.run(cmd, capture_output=True, timeout=120, cwd=cwd or self.work)

    def tls_channel(self, who):
        def rd(n):
            with open(self.p(n), "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(rd("ca.pem"), rd(who + ".key"), rd(who + ".pem"))
        return grpc.secure_channel("127.0.0.1:%d" % self.port, creds)

    def state(self):
        """(log size, items held), as the operator sees them."""
        cp = log_pb2_grpc.LogStub(self.d.channel()).GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=10)
        items = self.d.store().List(pb.ListRequest(), timeout=10)
        return cp.tree_size, len(items.items)

    def assertRefused(self, p, method, needs):
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 6, "%s: exit %d, %s" % (method, p.returncode, err))
        self.assertIn("%s needs role %s" % (method, needs), err)
        return err

    # ------------------------------------------------------------ the bar

    def test_regulator_with_an_auditor_certificate_monitors_the_log_and_verifies_certificates(self):
        w = tempfile.mkdtemp(dir=self.tmp)
        for fmt, out in (("pem", "shredd.pem"), ("vkey", "shredd.vkey")):
            p = self.tls_ctl("auditor", "pubkey", "--format", fmt, "-o", out, cwd=w)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = self.tls_ctl("auditor", "log", "checkpoint", cwd=w)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("\n\u2014 ", p.stdout.decode())  # a signed note
        p = self.tls_ctl("auditor", "log", "monitor", "--state", "witness.state", "--vkey", "shredd.vkey", cwd=w)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        # The log grows (the operator stores something); the witness sees it grow.
        self.d.put_bytes(os.urandom(300))
        p = self.tls_ctl("auditor", "log", "monitor", "--state", "witness.state", "--vkey", "shredd.vkey", cwd=w)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        # The certificate: public envelope and log proof, never the private manifest.
        p = self.tls_ctl("auditor", "--json", "certificate", self.cert_id, "-o", "cert.json", cwd=w)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = json.loads(p.stdout.decode().splitlines()[0])
        self.assertNotIn("manifest", out)
        self.assertFalse(os.path.exists(os.path.join(w, "cert.manifest.json")))
        self.assertTrue(os.path.exists(os.path.join(w, "cert.tlog-proof")))
        with open(os.path.join(w, "cert.json")) as f:
            self.assertEqual(json.load(f)["payloadType"], "application/vnd.in-toto+json")
        # Offline: no daemon, no certificate of ours needed.
        v = subprocess.run([SHREDCTL, "verify", "cert.json", "--pubkey", "shredd.pem"], cwd=w,
                           capture_output=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stderr.decode())
        v = subprocess.run([SHREDCTL, "log", "verify", "--entry", "cert.json", "--proof", "cert.tlog-proof",
                            "--vkey", "shredd.vkey"], cwd=w, capture_output=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stderr.decode())

    def test_auditor_cannot_look_up_certificates_by_derived_request_ids(self):
        # Issue 12, defect 2: an auto: request id is derived from content;
        # a lookup by it is for roles that may know the content.
        op = self.d.shredder()
        env = json.loads(op.GetCertificate(pb.GetCertificateRequest(certificate_id=self.cert_id)).certificate)
        rid = json.loads(base64.b64decode(env["payload"]))["predicate"]["request"]["id"]
        self.assertTrue(rid.startswith("auto:"), rid)
        stub = pb_grpc.ShredderStub(self.tls_channel("auditor"))
        with self.assertRaises(grpc.RpcError) as cm:
            stub.GetCertificate(pb.GetCertificateRequest(request_id=rid), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED, cm.exception.details())
        self.assertIn("auto:", cm.exception.details())
        self.assertEqual(stub.GetCertificate(pb.GetCertificateRequest(certificate_id=self.cert_id),
                                             timeout=10).certificate_id, self.cert_id)
        self.assertEqual(op.GetCertificate(pb.GetCertificateRequest(request_id=rid)).certificate_id, self.cert_id)

    def test_a_deleter_plans_without_photo_names_or_subjects(self):
        # Plans name photos and subjects only for callers who may read item
        # metadata (writer, admin; docs/SECURITY.md); the operator may.
        spec = ("order", "plan", "--id", "o-names", "--basis", "other", "--reference", "r", "--dataset", "ds1")
        _, mine = self.d.ctl(*spec, json_out=True)
        self.assertEqual((mine[0]["selected"][0]["name"], mine[0]["selected"][0]["subjects"]), ("keep.jpg", ["alice"]))
        p = self.tls_ctl("deleter", "--json", *spec)
        self.assertEqual(p.returncode, 0, p.stderr)
        item = json.loads(p.stdout)["selected"][0]
        self.assertEqual(item["digest"], self.kept)
        self.assertNotIn("name", item)
        self.assertNotIn("subjects", item)
        self.assertNotIn(b"alice", p.stdout)
        self.assertNotIn(b"keep.jpg", p.stdout)
        self.assertEqual(self.tls_ctl("deleter", "order", "ls").returncode, 0)

    def test_auditor_can_do_nothing_else_and_nothing_changes(self):
        before = self.state()
        w = self.work
        cases = [
            (("put", "keep.jpg"), "Store.BatchPut", "writer or admin"),
            (("get", self.kept), "Store.Get", "writer or admin"),
            (("stat", self.kept), "Store.Stat", "writer or admin"),
            (("ls",), "Store.List", "writer or admin"),
            (("shred", self.kept, "--reason", "x"), "Shredder.Shred", "deleter or admin"),
            (("order", "plan", "--id", "o1", "--basis", "ftc-order", "--reference", "r", "--dataset", "ds1"),
             "Orders.PlanOrder", "deleter or admin"),
            (("order", "submit", "--id", "o1", "--basis", "ftc-order", "--reference", "r", "--dataset", "ds1"),
             "Orders.SubmitOrder", "deleter or admin"),
            (("order", "status", "o1"), "Orders.GetOrder", "deleter or admin"),
            (("order", "ls"), "Orders.ListOrders", "deleter or admin"),
            (("hold", "add", "--dataset", "ds1", "--reason", "litigation"), "Orders.AddHold", "deleter or admin"),
            (("hold", "ls"), "Orders.ListHolds", "deleter or admin"),
            (("hold", "rm", "h1"), "Orders.RemoveHold", "deleter or admin"),
            (("suppression", "lift", self.gone, "--reason", "x"), "Orders.LiftSuppression", "admin"),
            (("lineage", self.kept), "Catalog.GetLineage", "writer, deleter or admin"),
            (("dataset", "register", "ds2", self.kept), "Catalog.RegisterDataset", "writer or admin"),
            (("dataset", "ls"), "Catalog.ListDatasets", "writer, deleter or admin"),
            (("tag", self.kept, "--label", "k=v"), "Catalog.UpdateItem", "writer or admin"),
            (("log", "audit", "--dataset", "ds1", "--vkey", "x.vkey"), "Catalog.StreamDatasetManifest",
             "deleter or admin"),
        ]
        self.d.ctl("pubkey", "--format", "vkey", "-o", os.path.join(w, "x.vkey"))
        for args, method, needs in cases:
            with self.subTest(args=args):
                p = self.tls_ctl("auditor", *args, cwd=w)
                err = self.assertRefused(p, method, needs)
                self.assertIn('caller TLS subject "%s" has: auditor' % AUDITOR_SUBJECT, err)
                self.assertNotIn("sha256:", p.stdout.decode())
        self.assertEqual(self.state(), before, "a refused call changed the log or the store")
        self.assertEqual(self.d.get_bytes(self.kept), b"kept photo " * 100)

    def test_every_rpc_is_refused_unless_the_role_table_allows_it(self):
        before = self.state()
        for who, allowed, has in (("auditor", AUDITOR_METHODS, "has: auditor"), ("nobody", set(), "has no roles")):
            ch = self.tls_channel(who)
            result = auth_sweep.sweep(ch)
            ch.close()
            self.assertGreaterEqual(len(result), 27)
            for method, (code, details) in result.items():
                with self.subTest(who=who, method=method):
                    if method in allowed:
                        self.assertNotEqual(code, "PERMISSION_DENIED", details)
                    else:
                        self.assertEqual(code, "PERMISSION_DENIED", details)
                        self.assertIn("needs role", details)
                        self.assertIn(has, details)
        self.assertEqual(self.state(), before)

    def test_auditor_audits_a_dataset_with_manifests_handed_over_out_of_band(self):
        w = tempfile.mkdtemp(dir=self.tmp)
        # The vendor's operator hands over the dataset manifest and the certificate's manifest.
        m = orders_pb2_grpc.CatalogStub(self.d.channel()).GetDatasetManifest(
            orders_pb2.DatasetManifestRequest(name="ds-gone"), timeout=10)
        with open(os.path.join(w, "ds.json"), "wb") as f:
            f.write(m.manifest)
        shutil.copy(os.path.join(self.work, "op-cert.manifest.json"), os.path.join(w, "cert.manifest.json"))
        self.assertEqual(self.tls_ctl("auditor", "pubkey", "--format", "vkey", "-o", "v", cwd=w).returncode, 0)
        audit = ("log", "audit", "--dataset", "ds-gone", "--vkey", "v", "--manifest", "ds.json")
        p = self.tls_ctl("auditor", *audit, cwd=w)
        self.assertEqual(p.returncode, 6, p.stderr.decode())
        self.assertIn("pass it with --cert-manifest", p.stderr.decode())
        p = self.tls_ctl("auditor", *audit, "--cert-manifest", "cert.manifest.json", cwd=w)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("1 custody entries, 1 with a later verified deletion entry", p.stdout.decode())

    def test_auditor_gets_no_private_manifest_or_receipts(self):
        ch = self.tls_channel("auditor")
        resp = pb_grpc.ShredderStub(ch).GetCertificate(
            pb.GetCertificateRequest(certificate_id=self.cert_id, include_receipts=True), timeout=10)
        ch.close()
        self.assertTrue(resp.certificate)
        self.assertTrue(resp.tlog_proof)
        self.assertEqual(resp.manifest, b"")
        self.assertEqual(len(resp.receipts), 0)
        self.assertNotIn(self.gone.encode(), resp.SerializeToString())
        # The operator (all roles) gets them.
        own = self.d.shredder().GetCertificate(
            pb.GetCertificateRequest(certificate_id=self.cert_id, include_receipts=True), timeout=10)
        self.assertIn(self.gone.encode(), own.manifest)
        self.assertEqual(len(own.receipts), 1)

    def test_writer_certificate_can_put_but_not_shred(self):
        path = os.path.join(self.work, "w.bin")
        data = os.urandom(5000)
        with open(path, "wb") as f:
            f.write(data)
        p = self.tls_ctl("writer", "put", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        digest = file_digest(path)
        self.assertEqual(self.d.get_bytes(digest), data)
        before = self.state()
        p = self.tls_ctl("writer", "shred", digest, "--reason", "x")
        err = self.assertRefused(p, "Shredder.Shred", "deleter or admin")
        self.assertIn('caller TLS subject "CN=ingest,O=Vendor" has: writer', err)
        self.assertEqual(self.state(), before)
        self.assertEqual(self.d.get_bytes(digest), data)
        p = self.tls_ctl("writer", "stat", digest)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_a_san_of_another_type_does_not_pass_for_a_granted_one(self):
        # Review finding: DNS names, URIs, e-mail addresses and IP addresses
        # were one list, so an e-mail SAN "ingest.vendor.example" got the
        # DNS grant's writer role.
        path = os.path.join(self.work, "san.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(3000))
        before = self.state()
        for who, subject in (("email-san", "CN=mailbox,O=Vendor"), ("uri-san", "CN=link,O=Vendor")):
            with self.subTest(who=who):
                p = self.tls_ctl(who, "put", path)
                err = self.assertRefused(p, "Store.BatchPut", "writer or admin")  # a small file: one batch
                self.assertIn('caller TLS subject "%s" has no roles' % subject, err)
        self.assertEqual(self.state(), before)
        # The typed grant (uri:) and the inferred one (a DNS name) still admit their clients.
        for who in ("workload", "writer"):
            with self.subTest(who=who):
                p = self.tls_ctl(who, "stat", self.kept)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = self.tls_ctl("workload", "put", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_no_certificate_or_a_foreign_one_does_not_get_through_the_handshake(self):
        for who, ca, extra in ((None, "ca.pem", ()),            # no client certificate
                               ("rogue", "ca.pem", ()),         # same subject, other CA
                               ("auditor", "rogue-ca.pem", ())):  # daemon's certificate not trusted
            with self.subTest(who=who, ca=ca):
                p = self.tls_ctl(who, "log", "checkpoint", ca=ca, extra=extra)
                self.assertEqual(p.returncode, 5, p.stderr.decode())
                self.assertIn("UNAVAILABLE", self.tls_ctl(who, "--json", "pubkey", ca=ca).stdout.decode())
        # A plaintext client on the TLS port.
        p = subprocess.run([SHREDCTL, "--server", "tcp:127.0.0.1:%d" % self.port, "log", "checkpoint"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 5, p.stderr.decode())
        # With the right certificate, by host name.
        p = self.tls_ctl("auditor", "log", "checkpoint", server="tcp:localhost:%d" % self.port)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = self.tls_ctl("auditor", "log", "checkpoint", extra=("--tls-server-name", "localhost"))
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_environment_variables_configure_tls(self):
        env = dict(os.environ, SHREDD_SERVER="tcp:127.0.0.1:%d" % self.port, SHREDD_TLS_CA=self.p("ca.pem"),
                   SHREDD_TLS_CERT=self.p("auditor.pem"), SHREDD_TLS_KEY=self.p("auditor.key"))
        p = subprocess.run([SHREDCTL, "log", "checkpoint"], capture_output=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = subprocess.run([SHREDCTL, "ls"], capture_output=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 6, p.stderr.decode())


class LocalAuthTest(unittest.TestCase):
    """Roles by uid: the unix socket (SO_PEERCRED) and plaintext loopback TCP."""

    def setUp(self):
        if not can_switch_uid():
            self.skipTest("needs root and setpriv to run shredctl as another uid")
        self.tmp = tempfile.mkdtemp(prefix="shredd-auth-local-")
        os.chmod(self.tmp, 0o755)  # the socket must be reachable by the other uid
        self.port = free_port()
        self.d = None

    def tearDown(self):
        if self.d is not None:
            self.d.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *extra):
        if self.d is not None:
            self.d.stop()
        self.d = Daemon(self.tmp, extra_args=["--listen", "tcp:127.0.0.1:%d" % self.port] + list(extra))
        self.d.start()

    def nobody(self, *args, server=None):
        cmd = [SHREDCTL, "--server", server or self.d.address] + list(args)
        return subprocess.run(as_nobody(cmd), capture_output=True, timeout=120, cwd="/")

    def test_another_uid_is_refused_unless_granted(self):
        self.start()
        self.d.put_bytes(b"photo of alice")
        p = self.nobody("log", "checkpoint")
        self.assertEqual(p.returncode, 6, p.stderr.decode())
        self.assertIn("Log.GetCheckpoint needs role deleter, auditor or admin; caller uid %d has no roles" % NOBODY,
                      p.stderr.decode())
        p = self.nobody("ls")
        self.assertEqual(p.returncode, 6, p.stderr.decode())
        # The daemon's own uid keeps every role (the Quick start).
        self.assertEqual(self.d.ctl("ls").returncode, 0)

        self.start("--grant-uid", "%d=auditor" % NOBODY)
        p = self.nobody("log", "checkpoint")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = self.nobody("ls")
        self.assertEqual(p.returncode, 6, p.stderr.decode())
        self.assertIn("caller uid %d has: auditor" % NOBODY, p.stderr.decode())
        self.assertEqual(self.d.ctl("ls").returncode, 0)

    def test_a_role_withdrawn_by_a_reload_stops_calls_in_progress(self):
        # A reload withdrew roles for new calls only: a download, manifest
        # stream or upload that had begun went on to the end under the role
        # it began with (docs/SECURITY.md "Revoking access").
        config = os.path.join(self.tmp, "shredd.toml")
        with open(config, "w") as f:
            f.write("[[roles.local]]\nuid = %d\nroles = [\"writer\"]\n" % NOBODY)
        self.d = Daemon(self.tmp, extra_args=["--config", config])
        self.d.start()
        data = os.urandom(24 << 20)
        digest = self.d.put_bytes(data)
        env = dict(os.environ, SHREDD_PY_GEN=auth_sweep.PY_GEN or "", PYTHONDONTWRITEBYTECODE="1")
        # As uid 65534: read the first chunk, say so, wait for a line on
        # stdin, read on; print the bytes received and the final status.
        script = (
            "import os, sys\n"
            "sys.path.insert(0, os.environ['SHREDD_PY_GEN'])\n"
            "import grpc\n"
            "from shredd.v1 import shredd_pb2 as pb, shredd_pb2_grpc as pbg\n"
            "stub = pbg.StoreStub(grpc.insecure_channel(sys.argv[1]))\n"
            "got, code, details = 0, 'OK', ''\n"
            "try:\n"
            "    for i, r in enumerate(stub.Get(pb.GetRequest(digest=pb.Digest(hash=sys.argv[2])), timeout=120)):\n"
            "        got += len(r.data)\n"
            "        if i == 0:\n"
            "            print('first', flush=True)\n"
            "            sys.stdin.readline()\n"
            "except grpc.RpcError as e:\n"
            "    code, details = e.code().name, e.details()\n"
            "print(got, code, details, flush=True)\n")
        p = subprocess.Popen(as_nobody([sys.executable, "-c", script, self.d.address, digest]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/")
        first = p.stdout.readline().decode().strip()
        if first != "first":
            p.kill()
            self.fail("the download did not start: " + first + p.communicate()[1].decode())
        with open(config, "w") as f:
            f.write("")
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "config reloaded" not in self.d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("config reloaded local_grants=0", self.d.log())
        out, err = p.communicate(b"go\n", timeout=120)
        got, code, details = (out.decode().strip().split(" ", 2) + ["", ""])[:3]
        self.assertEqual(code, "PERMISSION_DENIED", err.decode() + out.decode())
        self.assertIn("roles changed by a configuration reload during the call", details)
        self.assertLess(int(got), len(data))
        self.assertIn("permission withdrawn during a call method=Store.Get", self.d.log())
        # New calls are refused as before; the daemon's own uid keeps its roles.
        self.assertEqual(self.nobody("ls").returncode, 6)
        self.assertEqual(self.d.get_bytes(digest), data)

    def test_a_reload_withdraws_roles_even_if_the_next_start_would_refuse_the_config(self):
        # A reload was refused as a whole over files used only at start
        # (here the tiles dir a web deploy made group-writable; or a renewed
        # TLS certificate), so the grant it removed stayed in force.
        config = os.path.join(self.tmp, "shredd.toml")
        tiles = os.path.join(self.tmp, "tiles")
        with open(config, "w") as f:
            f.write('[log]\ntiles_dir = "%s"\n\n[[roles.local]]\nuid = %d\nroles = ["writer"]\n' % (tiles, NOBODY))
        self.d = Daemon(self.tmp, extra_args=["--config", config])
        self.d.start()
        self.assertEqual(self.nobody("ls").returncode, 0)
        os.chmod(tiles, 0o775)
        with open(config, "w") as f:
            f.write('[log]\ntiles_dir = "%s"\n' % tiles)
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "config reload" not in self.d.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = self.d.log()
        self.assertIn("config reloaded local_grants=0", log)
        self.assertIn("config reloaded, but the next start would refuse it", log)
        self.assertIn("log.tiles_dir", log)
        p = self.nobody("ls")
        self.assertEqual(p.returncode, 6, p.stderr.decode())

    def test_every_rpc_refused_for_an_unknown_uid_on_the_unix_socket(self):
        self.start()
        env = dict(os.environ, SHREDD_PY_GEN=auth_sweep.PY_GEN or "", PYTHONDONTWRITEBYTECODE="1")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "auth_sweep.py")
        p = subprocess.run(as_nobody([sys.executable, script, self.d.address]), capture_output=True,
                           timeout=120, env=env, cwd="/")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        result = json.loads(p.stdout)
        self.assertGreaterEqual(len(result), 27)
        for method, (code, details) in result.items():
            with self.subTest(method=method):
                self.assertEqual(code, "PERMISSION_DENIED", details)
                self.assertIn("caller uid %d has no roles" % NOBODY, details)
        # gRPC's health check is open to everyone (raw bytes: HealthCheckRequest{} in,
        # HealthCheckResponse{status: SERVING} = 08 01 out).
        p = subprocess.run(as_nobody([sys.executable, "-c",
                                      "import grpc,sys\n"
                                      "ch = grpc.insecure_channel(sys.argv[1])\n"
                                      "print(ch.unary_unary('/grpc.health.v1.Health/Check')(b'', timeout=10).hex())\n",
                                      self.d.address]),
                           capture_output=True, timeout=60, cwd="/")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout.decode().strip(), "0801")

    def test_plaintext_loopback_tcp_identifies_the_uid(self):
        self.start()
        tcp = "tcp:127.0.0.1:%d" % self.port
        p = subprocess.run([SHREDCTL, "--server", tcp, "ls"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = self.nobody("ls", server=tcp)
        self.assertEqual(p.returncode, 6, p.stderr.decode())
        self.assertIn("caller uid %d (loopback TCP) has no roles" % NOBODY, p.stderr.decode())
        self.start("--grant-uid", "%d=writer" % NOBODY)
        p = self.nobody("ls", server=tcp)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def test_plaintext_loopback_tcp_over_ipv6(self):
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        port = free_port()
        self.d = Daemon(self.tmp, extra_args=["--listen", "tcp:[::1]:%d" % port])
        self.d.start()
        tcp = "tcp:[::1]:%d" % port
        p = subprocess.run([SHREDCTL, "--server", tcp, "ls"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = self.nobody("ls", server=tcp)
        self.assertEqual(p.returncode, 6, p.stderr.decode())
        self.assertIn("caller uid %d (loopback TCP) has no roles" % NOBODY, p.stderr.decode())

    def test_plaintext_loopback_tcp_is_not_fooled_by_another_connection_from_the_same_port(self):
        # Review finding: the caller's socket was looked up by its local
        # address and the remote *port* alone, in /proc/net/tcp before tcp6.
        # Another user's connection from the same local port to another
        # loopback address on the daemon's port number (the kernel shares a
        # local port across destinations) stood in for the caller's, and the
        # caller got that user's roles.
        self.start()
        # root (the daemon's uid: every role) is connected to a service of
        # its own on 127.0.0.2, same port number, from 127.0.0.1:SHARED.
        other = socket.socket()
        other.bind(("127.0.0.2", self.port))
        other.listen(4)
        victim = socket.socket()
        victim.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        victim.bind(("127.0.0.1", 0))
        victim.connect(("127.0.0.2", self.port))
        shared = victim.getsockname()[1]
        # uid 65534 reaches the daemon from an AF_INET6 socket on the same
        # local port (SO_REUSEADDR here; an unprivileged loop of connects
        # finds the port as well), through a relay shredctl talks to.
        relay = subprocess.Popen(as_nobody([sys.executable, "-c", RELAY, str(shared), str(self.port)]),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        try:
            line = relay.stdout.readline().decode().split()
            self.assertEqual(line[:1], ["ready"], relay.stderr.read1().decode() if not line else line)
            p = self.nobody("ls", server="tcp:127.0.0.1:%s" % line[1])
            self.assertEqual(p.returncode, 6, p.stderr.decode())
            self.assertIn("caller uid %d (loopback TCP) has no roles" % NOBODY, p.stderr.decode())
        finally:
            relay.kill()
            relay.wait()
            victim.close()
            other.close()

    def test_tls_allows_non_loopback_listeners_plaintext_does_not(self):
        pki = os.path.join(self.tmp, "pki")
        os.mkdir(pki)
        make_pki(pki)
        port = free_port()
        bad = Daemon(os.path.join(self.tmp, "plain"), extra_args=["--listen", "tcp:0.0.0.0:%d" % port])
        os.mkdir(bad.root)
        self.assertNotEqual(bad.start(expect_fail=True), 0)
        self.assertIn("only loopback addresses are allowed without TLS", bad.log())
        self.d = Daemon(os.path.join(self.tmp, "tls"), extra_args=[
            "--listen", "tcp:0.0.0.0:%d" % port,
            "--tls-cert", os.path.join(pki, "server.pem"), "--tls-key", os.path.join(pki, "server.key"),
            "--tls-client-ca", os.path.join(pki, "ca.pem"), "--grant-tls", "%s=auditor" % AUDITOR_SUBJECT])
        os.mkdir(self.d.root)
        self.d.start()
        p = subprocess.run([SHREDCTL, "--server", "tcp:127.0.0.1:%d" % port, "--tls-ca", os.path.join(pki, "ca.pem"),
                            "--tls-cert", os.path.join(pki, "auditor.pem"), "--tls-key",
                            os.path.join(pki, "auditor.key"), "log", "checkpoint"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())


class RoleTableDocTest(unittest.TestCase):
    """docs/SECURITY.md's role table names every RPC of every service (the
    daemon's own table is checked by tests/unit/api/auth_test.cc)."""

    def test_every_rpc_is_in_the_documented_role_table(self):
        from shredd.v1 import shredd_pb2
        with open(os.path.join(REPO, "docs", "SECURITY.md")) as f:
            rows = [line for line in f if line.startswith("| `")]
        documented = set()
        for row in rows:
            cell = row.split("|")[1]
            for name in re.findall(r"`([A-Za-z]+)\.([A-Za-z]+)`|`([A-Za-z]+)`", cell):
                service, method, bare = name
                if service:
                    documented.add((service, method))
                    last = service
                elif bare and documented:
                    documented.add((last, bare))  # "`Catalog.GetDatasetManifest`, `StreamDatasetManifest`"
        missing = []
        for module in (shredd_pb2, orders_pb2, log_pb2):
            for service in module.DESCRIPTOR.services_by_name.values():
                for m in service.methods:
                    if (service.name, m.name) not in documented:
                        missing.append("%s.%s" % (service.name, m.name))
        self.assertEqual(missing, [], "RPCs missing from docs/SECURITY.md's role table")


if __name__ == "__main__":
    unittest.main()
