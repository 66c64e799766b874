#!/usr/bin/python3
"""Where a `sync` bulk ingest's extra time goes (docs/PERFORMANCE.md, issue 14
parts 2-4): for each build, a local-disk ingest and a `sync` one, back to
back against one throwaway Ceph; wall time, CPU seconds of the daemon, of
Ceph (OSD + RGW + mon) and of the client (/proc, getrusage), the state
shipped (metrics endpoint) and what the bucket holds afterwards by kind (WAL
objects, snapshot tables, other snapshot files), and the machine's load.

  flock /tmp/ceph.lock bench/state_ingest_breakdown.py BASE_BIN [NEW_BIN ...] [--items N] [--rounds R]
      [--keep-wal DIR]   # copy the WAL objects of the last sync run of each build there

Builds are measured alternately within each round, so load noise hits all.
"""
import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import object_store as ob  # noqa: E402
from ceph_cluster import CephCluster  # noqa: E402


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        p = f.read().rsplit(")", 1)[1].split()
    return (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")


def ceph_cpu(c):
    tot = 0.0
    for name in ("osd.0", "client.rgw.shredd", "mon.a"):
        try:
            tot += cpu(int(open(os.path.join(c.dir, name + ".pid")).read()))
        except Exception:
            pass
    return tot


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bucket_bytes(c, bucket):
    """Bytes in the bucket by kind: state/wal, state/sst, the rest of state/."""
    out = ob.sh(["rclone", "ls", "s3:" + bucket], env=ob.rclone_env(c, "x")).stdout.decode()
    kinds = {"wal": [0, 0], "sst": [0, 0], "snap_other": [0, 0]}
    for line in out.splitlines():
        size, name = line.split(None, 1)
        k = "wal" if "/state/wal/" in name else "sst" if "/state/sst/" in name else "snap_other" \
            if "/state/" in name else None
        if k:
            kinds[k][0] += 1
            kinds[k][1] += int(size)
    return {k: {"objects": v[0], "mb": round(v[1] / 1e6, 1)} for k, v in kinds.items()}


def run_one(c, bindir, work, mode, bucket, items, keep_wal=None):
    root = tempfile.mkdtemp(dir=work)
    cfg, env = None, None
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if mode == "sync":
        ob.sh(["rclone", "mkdir", "s3:" + bucket], env=ob.rclone_env(c, "x"))
        cfg, env = ob.write_config(root, c, bucket), ob.aws_env(c)
    else:
        cfg = os.path.join(root, "shredd.toml")
        open(cfg, "w").close()
    with open(cfg, "a") as f:
        f.write('[server]\nmetrics_listen = "127.0.0.1:%d"\n' % port)
    d = ob.Daemon(bindir, root, cfg, env)
    load = open("/proc/loadavg").read().split()[0]
    c0, d0, k0 = ceph_cpu(c), cpu(d.proc.pid), children_cpu()
    r = json.loads(ob.sh([os.path.join(bindir, "bench_ingest"), "--server", "unix:" + d.sock, "--items",
                          str(items)]).stdout)
    c1, d1, k1 = ceph_cpu(c), cpu(d.proc.pid), children_cpu()
    m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port).read().decode()
    vals = {ln.split()[0].replace("shredd_state_", ""): float(ln.split()[1]) for ln in m.splitlines()
            if ln.startswith("shredd_state_") and not ln.startswith("#")}
    d.stop()
    res = {"seconds": round(r["seconds"], 2), "daemon_cpu": round(d1 - d0, 2), "client_cpu": round(k1 - k0, 2),
           "load_before": load, "load_after": open("/proc/loadavg").read().split()[0]}
    if mode == "sync":
        res["ceph_cpu"] = round(c1 - c0, 2)
        res.update(vals)
        res["bucket"] = bucket_bytes(c, bucket)
        if keep_wal:
            os.makedirs(keep_wal, exist_ok=True)
            ob.sh(["rclone", "copy", "s3:%s/bench/state/wal" % bucket, keep_wal], env=ob.rclone_env(c, "x"))
    shutil.rmtree(root)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep-wal")
    ap.add_argument("--no-local", action="store_true", help="only the sync ingests")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="shredd-ingest-breakdown-")
    out = {}
    try:
        with CephCluster(os.path.join(work, "ceph"), memstore_bytes=6 << 30) as c:
            for rnd in range(args.rounds):
                for i, bindir in enumerate(args.bins):
                    name = "%d:%s" % (i, bindir)
                    o = out.setdefault(name, {"local": [], "sync": []})
                    if not args.no_local:
                        o["local"].append(run_one(c, bindir, work, "local", None, args.items))
                    keep = os.path.join(args.keep_wal, str(i)) if args.keep_wal and rnd == args.rounds - 1 else None
                    o["sync"].append(run_one(c, bindir, work, "sync", "why-%d-%d" % (i, rnd), args.items, keep))
                    if o["local"]:
                        o["sync"][-1]["ratio"] = round(o["sync"][-1]["seconds"] / o["local"][-1]["seconds"], 2)
                    print(json.dumps({name: {k: v[-1] for k, v in o.items() if v}}), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
