#!/usr/bin/python3
"""A throwaway single-node Ceph RGW for the object-store tests.

One ceph-mon, one ceph-osd on memstore (RAM, capped), one radosgw (beast) on
127.0.0.1, no cephx, all state under one directory. Facts behind each setting:
../shared/notes/ceph-rgw.md. Never a mock: this is Ceph's own S3 gateway.

    with CephCluster("/tmp/ceph1") as c:
        c.endpoint, c.access_key, c.secret_key

    ceph_cluster.py start DIR [--env-file F] [--json F]   # prints export AWS_...=...
    ceph_cluster.py stop DIR
    ceph_cluster.py stop-rgw DIR / start-rgw DIR --json F    # only radosgw: an unreachable store
    ceph_cluster.py available                              # exit 0 if Ceph is installed

Daemons are stopped by the PIDs in their pid files (only if /proc/PID/cmdline
names this cluster's conf). The directory should be short: admin socket paths
are limited to ~107 bytes; when DIR is too long, sockets go under /tmp.
"""

import argparse
import datetime
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
DAEMONS = ("radosgw", "osd", "mon")  # stop order
MEMSTORE_BYTES = 2 << 30
REGION = "us-east-1"


def missing_binaries():
    return [b for b in BINARIES if shutil.which(b) is None]


def free_port():
    """A TCP port nobody listens on now (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def signed_list_buckets(endpoint, access_key, secret_key):
    """Authenticated ListBuckets; returns the HTTP status (0 if no answer)."""
    req = _sigv4_request("GET", endpoint + "/", access_key, secret_key)
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


def create_bucket(endpoint, access_key, secret_key, bucket):
    """PUT /BUCKET; returns the HTTP status (200: made, 409: exists)."""
    req = _sigv4_request("PUT", f"{endpoint}/{bucket}", access_key, secret_key)
    try:
        # RGW may take seconds to make a bucket on a loaded machine (8.6 s seen).
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _sigv4_request(method, url, access_key, secret_key):
    try:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        return _tiny_sigv4_request(method, url, access_key, secret_key)
    aws = AWSRequest(method=method, url=url)
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", REGION).add_auth(aws)
    return urllib.request.Request(url, method=method, headers=dict(aws.headers.items()))


def _tiny_sigv4_request(method, url, access_key, secret_key):
    """SigV4 for a body-less request without a query, to '/' or '/BUCKET' (test tooling only, no botocore)."""
    host = url.split("/")[2]
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": empty, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, ""] + [f"{k}:{headers[k]}" for k in sorted(headers)] + ["", signed, empty])
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    import hmac

    key = ("AWS4" + secret_key).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={sig}"
    del headers["host"]
    return urllib.request.Request(url, method=method, headers=headers)


class CephError(RuntimeError):
    pass


class CephCluster:
    def __init__(self, directory, memstore_bytes=MEMSTORE_BYTES, timeout=90, bluestore_bytes=0):
        """bluestore_bytes > 0: the OSD is a bluestore on a sparse file of that
        size (low RAM, for data larger than memory: the 10 GiB benchmark)
        instead of memstore."""
        self.dir = os.path.abspath(directory)
        self.memstore_bytes = memstore_bytes
        self.bluestore_bytes = bluestore_bytes
        self.timeout = timeout
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.state_file = os.path.join(self.dir, "cluster.json")
        self.endpoint = self.access_key = self.secret_key = None
        self.region = REGION
        self.start_seconds = None

    # -- life cycle ---------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        missing = missing_binaries()
        if missing:
            raise CephError(f"Ceph is not installed (missing {', '.join(missing)}): run scripts/install-deps.sh")
        t0 = time.monotonic()
        self.stop()  # leftovers of a crashed run in the same dir
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(os.path.join(self.dir, "log"))
        self.run_dir = self._run_dir()
        os.makedirs(self.run_dir, exist_ok=True)
        self.mon_port, self.rgw_port = self._ports()
        self.access_key = "SHREDD" + secrets.token_hex(7).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.endpoint = f"http://127.0.0.1:{self.rgw_port}"
        self._save_state()
        try:
            self._write_conf()
            self._start_mon()
            self._start_osd()
            self._start_rgw()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self):
        """Kills this cluster's daemons (SIGKILL: memstore holds nothing worth a clean stop)."""
        state = self._load_state()
        for name in DAEMONS:
            pid = self._pid(name)
            if pid and self._is_ours(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for name in DAEMONS:
            pid = self._pid(name)
            if pid:
                self._wait_gone(pid, 10)
        run_dir = state.get("run_dir")
        if run_dir and run_dir.startswith("/tmp/shredd-ceph-") and os.path.isdir(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)

    # -- steps ----------------------------------------------------------------
    def _run_dir(self):
        # admin sockets: DIR/run/ceph-client.rgw.shredd.<pid>.<cookie>.asok must fit in 107 bytes
        if len(self.dir) <= 48:
            return os.path.join(self.dir, "run")
        return "/tmp/shredd-ceph-" + hashlib.sha256(self.dir.encode()).hexdigest()[:12]

    def _ports(self):
        for _ in range(20):
            mon, rgw = free_port(), free_port()
            if mon != rgw and not (6800 <= mon <= 7300 or 6800 <= rgw <= 7300):
                return mon, rgw
        raise CephError("no free ports for ceph-mon and radosgw")

    def _write_conf(self):
        d, r = self.dir, self.run_dir
        self.fsid = str(uuid.uuid4())
        conf = f"""[global]
fsid = {self.fsid}
mon host = v2:127.0.0.1:{self.mon_port}
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
ms mon client mode = crc secure
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = {r}
admin socket = {r}/$cluster-$name.asok
pid file = {d}/$name.pid
log file = {d}/log/$name.log
crash dir = {d}/crash
keyring = {d}/keyring
log to stderr = false
err to stderr = false
[mon]
mon data = {d}/mon
mon initial members = a
paxos propose interval = 0.01
paxos min wait = 0.001
[osd]
osd data = {d}/osd
{self._objectstore_conf()}
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.shredd]
rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port}
rgw data = {d}/rgw
rgw dns name = localhost
rgw enable usage log = false
rgw thread pool size = 32
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        for sub in ("mon", "osd", "rgw", "crash"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)

    def _objectstore_conf(self):
        if not self.bluestore_bytes:
            return f"osd objectstore = memstore\nmemstore device bytes = {self.memstore_bytes}"
        # The block file outside the OSD's data dir: inside it, mkfs fails
        # (ELOOP). Sparse: it takes disk only as data arrives.
        return (f"osd objectstore = bluestore\nbluestore block path = {self.dir}/osd-block\n"
                f"bluestore block create = true\nbluestore block size = {self.bluestore_bytes}\n"
                "bluestore block db create = false\nbluestore block wal create = false\n"
                "bluestore cache size = 268435456")

    def _run(self, *args, timeout=60):
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise CephError(f"{' '.join(args[:3])} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-600:]}")
        return p.stdout

    def _start_mon(self):
        if port_in_use(self.mon_port):
            raise CephError(f"mon port {self.mon_port} is in use")
        monmap = os.path.join(self.dir, "monmap")
        self._run("monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
                  f"[v2:127.0.0.1:{self.mon_port}]", monmap)
        self._run("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap)
        self._run("ceph-mon", "-c", self.conf, "-i", "a")
        self._ceph("mon", "stat")  # answers once the mon formed its quorum of one

    def _ceph(self, *args):
        return self._run("ceph", "-c", self.conf, "--connect-timeout", "20", *args, timeout=40)

    def _start_osd(self):
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise CephError(f"expected OSD id 0, got {osd_id!r}")
        self._run("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid, timeout=120)
        self._run("ceph-osd", "-c", self.conf, "-i", "0")

    def _start_rgw(self):
        if port_in_use(self.rgw_port):
            raise CephError(f"radosgw port {self.rgw_port} is in use")
        self._run("radosgw-admin", "-c", self.conf, "user", "create", "--uid", "shredd",
                  "--display-name", "shredd tests", "--access-key", self.access_key,
                  "--secret-key", self.secret_key, timeout=120)
        self._run("radosgw", "-c", self.conf, "-n", "client.rgw.shredd")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            status = signed_list_buckets(self.endpoint, self.access_key, self.secret_key)
            if status == 200:
                return
            pid = self._pid("radosgw")
            if pid and not self._alive(pid):
                raise CephError(f"radosgw exited; see {self.dir}/log/client.rgw.shredd.log")
            time.sleep(0.1)
        raise CephError(f"radosgw did not answer an authenticated ListBuckets within {self.timeout} s")

    def stop_rgw(self):
        """Kills only radosgw (the store becomes unreachable; mon and OSD keep the data)."""
        pid = self._pid("radosgw")
        if pid and self._is_ours(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_gone(pid, 10)

    def start_rgw(self, access_key, secret_key):
        """Starts radosgw again on its old port (after stop_rgw) and waits until it answers."""
        state = self._load_state()
        self.endpoint, self.rgw_port = state["endpoint"], state["rgw_port"]
        self.access_key, self.secret_key = access_key, secret_key
        self._run("radosgw", "-c", self.conf, "-n", "client.rgw.shredd")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if signed_list_buckets(self.endpoint, access_key, secret_key) == 200:
                return
            time.sleep(0.1)
        raise CephError(f"radosgw did not come back within {self.timeout} s")

    # -- state and processes ------------------------------------------------
    def _save_state(self):
        with open(self.state_file, "w") as f:
            json.dump({"run_dir": self.run_dir, "mon_port": self.mon_port, "rgw_port": self.rgw_port,
                       "endpoint": self.endpoint}, f)

    def _load_state(self):
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _pid(self, name):
        pid_file = {"radosgw": "client.rgw.shredd.pid", "osd": "osd.0.pid", "mon": "mon.a.pid"}[name]
        try:
            with open(os.path.join(self.dir, pid_file)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return self.conf.encode() in f.read().split(b"\0")
        except OSError:
            return False

    @staticmethod
    def _alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is stopped
        except OSError:
            return False

    def _wait_gone(self, pid, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._alive(pid) and self._is_ours(pid):
            time.sleep(0.02)

    def env(self):
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start", help="start a cluster in DIR, print export AWS_...=... lines")
    st.add_argument("dir")
    st.add_argument("--json", help="also write endpoint and keys as JSON here (for tests)")
    st.add_argument("--skip-if-missing", action="store_true",
                    help="without Ceph installed, write {\"skip\": reason} to --json and exit 0")
    sp = sub.add_parser("stop", help="stop the cluster in DIR")
    sp.add_argument("dir")
    sp.add_argument("--json", help="remove this file too")
    sr = sub.add_parser("stop-rgw", help="stop only radosgw (tests of an unreachable store)")
    sr.add_argument("dir")
    ss = sub.add_parser("start-rgw", help="start radosgw again after stop-rgw; keys from --json")
    ss.add_argument("dir")
    ss.add_argument("--json", required=True)
    sub.add_parser("available", help="exit 0 if Ceph's binaries are installed")
    a = ap.parse_args(argv)
    if a.cmd == "available":
        missing = missing_binaries()
        if missing:
            print(f"missing: {' '.join(missing)}", file=sys.stderr)
        return 1 if missing else 0
    if a.cmd == "stop-rgw":
        CephCluster(a.dir).stop_rgw()
        return 0
    if a.cmd == "start-rgw":
        with open(a.json) as f:
            keys = json.load(f)
        CephCluster(a.dir).start_rgw(keys["access_key"], keys["secret_key"])
        return 0
    if a.cmd == "stop":
        t0 = time.monotonic()
        CephCluster(a.dir).stop()
        if a.json and os.path.exists(a.json):
            os.unlink(a.json)
        print(f"# ceph stopped in {time.monotonic() - t0:.2f} s", file=sys.stderr)
        return 0
    if a.json and os.path.exists(a.json):
        os.unlink(a.json)
    missing = missing_binaries()
    if missing and a.skip_if_missing:
        reason = f"Ceph is not installed (missing {', '.join(missing)}; scripts/install-deps.sh installs it)"
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"skip": reason}, f)
        print(f"# {reason}", file=sys.stderr)
        return 0
    c = CephCluster(a.dir).start()
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"endpoint": c.endpoint, "access_key": c.access_key, "secret_key": c.secret_key,
                       "region": c.region, "dir": c.dir}, f)
        os.replace(tmp, a.json)
    for k, v in c.env().items():
        print(f"export {k}={v}")
    print(f"# ceph started in {c.start_seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CephError as e:
        print(f"ceph_cluster: {e}", file=sys.stderr)
        sys.exit(1)
