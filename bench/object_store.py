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
  bench/object_store.py --base OLD/bin [--bin NEW/bin] measures ingest,
  one-item shred latency (local vs sync) and download for both builds back
  to back in each round, against one Ceph (ratios within each build).
  bench/object_store.py --rss-gib 10 measures only the daemon's peak RSS
  during one 10 GiB upload, against an RGW on bluestore (sparse file).
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


def bench_ingest(args, c, work, tag=""):
    res = {"local": [], "object_store": []}
    for i in range(args.repeat):
        for mode in ("local", "object_store"):
            root = tempfile.mkdtemp(dir=work)
            config, env = None, None
            if mode == "object_store":
                bucket = "bench-ingest-%s%d" % (tag, i)
                sh(["rclone", "mkdir", "s3:" + bucket], env=rclone_env(c, "bench-crypt"))
                config, env = write_config(root, c, bucket), aws_env(c)
            d = Daemon(args.bin, root, config, env)
            out = sh([os.path.join(args.bin, "bench_ingest"), "--server", "unix:" + d.sock, "--items",
                      str(args.items)]).stdout
            res[mode].append(json.loads(out)["seconds"])
            d.stop()
            shutil.rmtree(root)
    return res


def bench_shred(bindir, c, work, rounds):
    """One-item Shred RPC latency (ms), local vs `sync` state replication."""
    sys.path.insert(0, os.path.join(bindir, "..", "proto", "gen", "py"))
    import grpc
    from shredd.v1 import shredd_pb2 as pb, shredd_pb2_grpc as pb_grpc
    res = {}
    for mode in ("local", "sync"):
        root = tempfile.mkdtemp(dir=work)
        config, env = None, None
        if mode == "sync":
            bucket = "bench-shred-" + os.path.basename(root).lower().replace("_", "-").strip("-")
            sh(["rclone", "mkdir", "s3:" + bucket], env=rclone_env(c, "bench-crypt"))
            config, env = write_config(root, c, bucket), aws_env(c)
        d = Daemon(bindir, root, config, env)
        shredder = pb_grpc.ShredderStub(grpc.insecure_channel("unix:" + d.sock))
        times = []
        for i in range(rounds):
            item = os.path.join(root, "item")
            with open(item, "wb") as f:
                f.write(b"lat-%d-" % i + os.urandom(500))
            digest = "sha256:" + sh(["sha256sum", item]).stdout.split()[0].decode()
            d.ctl("put", item)
            t0 = time.perf_counter()
            shredder.Shred(pb.ShredRequest(digests=[pb.Digest(hash=digest)], reason="lat"), timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
        d.stop()
        shutil.rmtree(root)
        res[mode] = stats(times)
    res["ratio_min"] = round(res["sync"]["min"] / res["local"]["min"], 2)
    res["ratio_median"] = round(res["sync"]["median"] / res["local"]["median"], 2)
    return res


def bench_ab(args, work):
    """--base BIN: the same benchmarks for the base build and --bin, back to
    back in each round, against one Ceph: ingest, one-item shred, download."""
    f = os.path.join(work, "weights.bin")
    with open(f, "wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(1 << 20))
    digest = "sha256:" + sh(["sha256sum", f]).stdout.split()[0].decode()
    builds = {"base": args.base, "new": args.bin}
    out = {name: {"ingest_local": [], "ingest_sync": [], "shred": [], "get": []} for name in builds}
    out["rclone_crypt_get"], out["uptime"] = [], []
    with CephCluster(os.path.join(work, "ceph"), memstore_bytes=(4 * args.size_mib + 4096) << 20) as c:
        renv = rclone_env(c, "bench-crypt")
        sh(["rclone", "mkdir", "s3:bench-crypt"], env=renv)
        sh(["rclone", "copy", f, "crypt:ab"], env=renv)
        for r in range(args.repeat):
            out["uptime"].append(open("/proc/loadavg").read().split()[0])
            for name, bindir in builds.items():
                one = argparse.Namespace(bin=bindir, items=args.items, repeat=1)
                ing = bench_ingest(one, c, work, tag="%s-%d" % (name, r))
                out[name]["ingest_local"].append(ing["local"][0])
                out[name]["ingest_sync"].append(ing["object_store"][0])
                out[name]["shred"].append(bench_shred(bindir, c, work, args.shred_rounds))
            for name, bindir in builds.items():
                root = tempfile.mkdtemp(dir=work)
                bucket = "bench-get-%s-%d" % (name, r)
                sh(["rclone", "mkdir", "s3:" + bucket], env=renv)
                d = Daemon(bindir, root, write_config(root, c, bucket), aws_env(c))
                d.ctl("put", "--kind", "model", f)
                out[name]["get"].append(timed(lambda: d.ctl("get", digest, "-o", f + ".out")))
                d.stop()
                sh(["cmp", f, f + ".out"])
                os.remove(f + ".out")
                shutil.rmtree(root)
            rout = os.path.join(work, "rclone-out")
            out["rclone_crypt_get"].append(timed(lambda: sh(["rclone", "copy", "crypt:ab", rout], env=renv)))
            shutil.rmtree(rout)
            out["uptime"].append(open("/proc/loadavg").read().split()[0])
    crypt = statistics.median(out["rclone_crypt_get"])
    for name in builds:
        o = out[name]
        o["ingest_ratio"] = round(statistics.median(o["ingest_sync"]) / statistics.median(o["ingest_local"]), 2)
        o["shred_ratio_min"] = [x["ratio_min"] for x in o["shred"]]
        o["shred_ratio_median"] = [x["ratio_median"] for x in o["shred"]]
        o["get_vs_rclone_crypt"] = round(crypt / statistics.median(o["get"]), 2)
    return out


def bench_rss(args, work):
    """Daemon peak RSS during one upload of --rss-gib GiB (a sparse file: the
    content does not matter, the size does) into a bluestore-backed RGW:
    memstore cannot hold that much here."""
    f = os.path.join(work, "big.bin")
    with open(f, "wb") as out:
        out.truncate(args.rss_gib << 30)
    with CephCluster(os.path.join(work, "ceph"), bluestore_bytes=(args.rss_gib * 3 // 2 + 8) << 30) as c:
        sh(["rclone", "mkdir", "s3:bench-rss"], env=rclone_env(c, "bench-crypt"))
        root = tempfile.mkdtemp(dir=work)
        d = Daemon(args.bin, root, write_config(root, c, "bench-rss"), aws_env(c))
        seconds = timed(lambda: d.ctl("put", "--kind", "model", f))
        peak = round(d.peak, 1)
        d.stop()
    return {"rss_gib": args.rss_gib, "put_seconds": round(seconds, 1), "daemon_peak_rss_mib": peak}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rss-gib", type=int, default=0,
                    help="only measure the daemon's peak RSS during an upload of this many GiB (bluestore RGW)")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--bin", default=os.path.join(REPO, "build-release", "bin"))
    ap.add_argument("--base", help="A/B mode: the base build's bin dir, measured against --bin back to back")
    ap.add_argument("--shred-rounds", type=int, default=15)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="shredd-osbench-")
    if args.base:
        try:
            print(json.dumps(bench_ab(args, work), indent=1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if args.rss_gib:
        try:
            print(json.dumps(bench_rss(args, work), indent=1))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
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
