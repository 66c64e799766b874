#!/usr/bin/python3
"""Where a `sync` bulk ingest's extra time goes (docs/PERFORMANCE.md, issue 14
part 2): state shipped, WAL objects and snapshots (the metrics endpoint),
daemon and Ceph CPU seconds (/proc), for two builds alternately against one
throwaway Ceph.

  flock /tmp/ceph.lock bench/state_ingest_breakdown.py BASE_BIN NEW_BIN [--items N] [--rounds R]
"""
import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import object_store as ob
from ceph_cluster import CephCluster

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

ap = argparse.ArgumentParser()
ap.add_argument("base")
ap.add_argument("new")
ap.add_argument("--items", type=int, default=100000)
ap.add_argument("--rounds", type=int, default=2)
args = ap.parse_args()
work = tempfile.mkdtemp(prefix="shredd-ingest-breakdown-")
out = {}
with CephCluster(os.path.join(work, "ceph"), memstore_bytes=6 << 30) as c:
    for rnd in range(args.rounds):
        for name, bindir in (("base", args.base), ("new", args.new)):
            root = tempfile.mkdtemp(dir=work)
            bucket = "why-%s-%d" % (name, rnd)
            ob.sh(["rclone", "mkdir", "s3:" + bucket], env=ob.rclone_env(c, "x"))
            cfg = ob.write_config(root, c, bucket)
            s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
            with open(cfg, "a") as f:
                f.write('[server]\nmetrics_listen = "127.0.0.1:%d"\n' % port)
            d = ob.Daemon(bindir, root, cfg, ob.aws_env(c))
            c0, d0, t0 = ceph_cpu(c), cpu(d.proc.pid), time.time()
            r = json.loads(ob.sh([os.path.join(bindir, "bench_ingest"), "--server", "unix:" + d.sock, "--items", str(args.items)]).stdout)
            c1, d1 = ceph_cpu(c), cpu(d.proc.pid)
            m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port).read().decode()
            vals = {l.split()[0]: float(l.split()[1]) for l in m.splitlines() if l.startswith("shredd_state_") and not l.startswith("#")}
            d.stop()
            out.setdefault(name, []).append({"seconds": r["seconds"], "daemon_cpu": round(d1 - d0, 1), "ceph_cpu": round(c1 - c0, 1),
                                             "load": open("/proc/loadavg").read().split()[0], **vals})
            shutil.rmtree(root)
print(json.dumps(out, indent=1))
shutil.rmtree(work, ignore_errors=True)
