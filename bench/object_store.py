#!/usr/bin/python3
"""Object-store benchmark (issue 14): shredd with its ciphertext in a local
Ceph RGW against rclone, Debian's closest tool that encrypts into object
storage, in the same run against the same RGW.

  bench/object_store.py [--size-mib 1024] [--repeat 3] [--items 100000] [--bin build-release/bin]

Measures, each --repeat times (median, min, max):
  - upload of one file: `shredctl put --kind model` (durable on return: the
    object complete in the store and the records synced), `rclone copy` to a
    crypt remote, and plain `rclone copy` (no encryption);
  - download: `shredctl get -o`, `rclone copy` from the crypt remote;
  - daemon peak RSS during the transfers;
  - bulk ingest of --items 1 KiB items (bench_ingest) with the object store
    configured against a local-only daemon (small items stay inline in
    RocksDB: this measures what the configuration costs them).
Starts and stops its own throwaway Ceph (tests/tools/ceph_cluster.py).
Prints one JSON object.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
from ceph_cluster import CephCluster  # noqa: E402


def sh(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, env=env)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s%s" % (cmd, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")))
    return p


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def stats(xs):
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3), "max": round(max(xs), 3)}


class Daemon:
    def __init__(self, bindir, root, config=None, env=None):
        self.bindir, self.sock = bindir, os.path.join(root, "s.sock")
        args = [os.path.join(bindir, "shredd"), "--data-dir", os.path.join(root, "data"), "--vault",
                "file:" + os.path.join(root, "vault"), "--listen", "unix:" + self.sock]
        if config:
            args += ["--config", config]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "log"), "wb"),
                                     env=env)
        for _ in range(400):
            if os.path.exists(self.sock) and self.ctl("ls", "--limit", "1", check=False).returncode == 0:
                break
            if self.proc.poll() is not None:
                raise SystemExit("shredd exited: " + open(os.path.join(root, "log")).read())
            time.sleep(0.05)
        self.peak, self._stop = 0, False
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while not self._stop:
            try:
                with open("/proc/%d/status" % self.proc.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.1)

    def ctl(self, *args, check=True):
        p = subprocess.run([os.path.join(self.bindir, "shredctl"), "--server", "unix:" + self.sock, "-q"] + list(args),
                           capture_output=True)
        if check and p.returncode != 0:
            raise SystemExit("shredctl %s failed: %s" % (args, p.stderr.decode(errors="replace")))
        return p

    def stop(self):
        self._stop = True
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def rclone_env(c, crypt_bucket):
    obscured = sh(["rclone", "obscure", "bench-password"]).stdout.decode().strip()
    # rclone's AWS SDK fails on AWS_CA_BUNDLE with its own transport; the
    # local RGW is plain http anyway.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return dict(env, RCLONE_CONFIG_S3_TYPE="s3", RCLONE_CONFIG_S3_PROVIDER="Ceph",
                RCLONE_CONFIG_S3_ENDPOINT=c.endpoint, RCLONE_CONFIG_S3_ACCESS_KEY_ID=c.access_key,
                RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=c.secret_key, RCLONE_CONFIG_S3_REGION="us-east-1",
                RCLONE_CONFIG_CRYPT_TYPE="crypt", RCLONE_CONFIG_CRYPT_REMOTE="s3:" + crypt_bucket,
                RCLONE_CONFIG_CRYPT_PASSWORD=obscured)


def write_config(root, c, bucket):
    path = os.path.join(root, "shredd.toml")
    with open(path, "w") as f:
        f.write('[object_store]\nurl = "s3://%s/bench"\nendpoint = "%s"\npath_style = true\n' % (bucket, c.endpoint))
    return path


def aws_env(c):
    return dict(os.environ, AWS_ACCESS_KEY_ID=c.access_key, AWS_SECRET_ACCESS_KEY=c.secret_key)


def bench_transfer(args, c, work, f, digest):
    res = {k: [] for k in ("shredd_put", "shredd_get", "rclone_crypt_put", "rclone_crypt_get", "rclone_plain_put",
                           "shredd_rss_mib")}
    renv = rclone_env(c, "bench-crypt")
    for i in range(args.repeat):
        for b in ("bench-crypt", "bench-plain", "bench-shredd-%d" % i):
            sh(["rclone", "mkdir", "s3:" + b], env=renv)
        root = tempfile.mkdtemp(dir=work)
        d = Daemon(args.bin, root, write_config(root, c, "bench-shredd-%d" % i), aws_env(c))
        res["shredd_put"].append(timed(lambda: d.ctl("put", "--kind", "model", f)))
        res["shredd_get"].append(timed(lambda: d.ctl("get", digest, "-o", f + ".out")))
        res["shredd_rss_mib"].append(round(d.peak, 1))
        d.stop()
        sh(["cmp", f, f + ".out"])
        os.remove(f + ".out")
        shutil.rmtree(root)
        res["rclone_crypt_put"].append(timed(lambda: sh(["rclone", "copy", f, "crypt:%d" % i], env=renv)))
        out = os.path.join(work, "rclone-out")
        res["rclone_crypt_get"].append(timed(lambda: sh(["rclone", "copy", "crypt:%d" % i, out], env=renv)))
        sh(["cmp", f, os.path.join(out, os.path.basename(f))])
        shutil.rmtree(out)
        res["rclone_plain_put"].append(timed(lambda: sh(["rclone", "copy", f, "s3:bench-plain/%d" % i], env=renv)))
    return res


def bench_ingest(args, c, work):
    res = {"local": [], "object_store": []}
    for i in range(args.repeat):
        for mode in ("local", "object_store"):
            root = tempfile.mkdtemp(dir=work)
            config, env = None, None
            if mode == "object_store":
                bucket = "bench-ingest-%d" % i
                sh(["rclone", "mkdir", "s3:" + bucket], env=rclone_env(c, "bench-crypt"))
                config, env = write_config(root, c, bucket), aws_env(c)
            d = Daemon(args.bin, root, config, env)
            out = sh([os.path.join(args.bin, "bench_ingest"), "--server", "unix:" + d.sock, "--items",
                      str(args.items)]).stdout
            res[mode].append(json.loads(out)["seconds"])
            d.stop()
            shutil.rmtree(root)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--bin", default=os.path.join(REPO, "build-release", "bin"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="shredd-osbench-")
    f = os.path.join(work, "weights.bin")
    with open(f, "wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(1 << 20))
    digest = "sha256:" + sh(["sha256sum", f]).stdout.split()[0].decode()
    # memstore keeps objects in RAM at about twice their size.
    with CephCluster(os.path.join(work, "ceph"), memstore_bytes=(6 * args.size_mib + 2048) << 20) as c:
        transfer = bench_transfer(args, c, work, f, digest)
        ingest = bench_ingest(args, c, work)
    shutil.rmtree(work, ignore_errors=True)
    mb = args.size_mib * (1 << 20) / 1e6
    out = {k: stats(v) for k, v in transfer.items()}
    out["ingest_seconds"] = {k: stats(v) for k, v in ingest.items()}
    med = {k: statistics.median(v) for k, v in transfer.items()}
    out["ratios"] = {
        "put_vs_rclone_crypt": round(med["rclone_crypt_put"] / med["shredd_put"], 2),
        "put_vs_rclone_plain": round(med["rclone_plain_put"] / med["shredd_put"], 2),
        "get_vs_rclone_crypt": round(med["rclone_crypt_get"] / med["shredd_get"], 2),
        "ingest_object_store_vs_local": round(statistics.median(ingest["object_store"]) /
                                              statistics.median(ingest["local"]), 2),
        "shredd_put_MBps": round(mb / med["shredd_put"], 1),
        "shredd_get_MBps": round(mb / med["shredd_get"], 1),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
