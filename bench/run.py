#!/usr/bin/env python3
"""shredd benchmark runner (issue 6).

Builds a Release build in build-release/, runs every benchmark with its peers
in the same run, and writes a results table to docs/PERFORMANCE.md (between
the BEGIN/END RESULTS markers) with the machine it ran on.

  bench/run.py           full scale (3,000,000 items, 1 GiB file)
  bench/run.py --quick   the same code at 1/10 scale
  bench/run.py --no-write  print the table only

Each timed step runs --repeat times (default 3; ingest and the big order run
once per repeat on a fresh daemon) and is reported as median, min and max.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(REPO, "build-release")
BIN = os.path.join(BUILD, "bin")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def build():
    subprocess.run(["cmake", "-S", REPO, "-B", BUILD, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DSHREDD_BUILD_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "--target", "shredd", "shredctl", "bench_ingest",
                    "bench_rocks_delete", "bench_verify", "bench_shred_latency", "keytree_epoch",
                    "bench_log_append"], check=True, stdout=subprocess.DEVNULL)


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%s, %d cores, %.0f GiB RAM, %s, kernel %s" % (cpu, os.cpu_count(), mem, platform.platform(), platform.release())


class Daemon:
    def __init__(self, root):
        self.root = root
        self.sock = os.path.join(root, "s.sock")
        self.proc = subprocess.Popen([os.path.join(BIN, "shredd"), "--data-dir", os.path.join(root, "data"),
                                      "--vault", "file:" + os.path.join(root, "vault"), "--listen", "unix:" + self.sock],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "log"), "wb"))
        for _ in range(200):
            if os.path.exists(self.sock) and self.ctl("ls", "--limit", "1", check=False).returncode == 0:
                break
            time.sleep(0.05)
        self.peak = 0
        self._stop = False
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()

    def rss_mib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0

    def _sample(self):
        while not self._stop:
            self.peak = max(self.peak, self.rss_mib())
            time.sleep(0.2)

    def reset_peak(self):
        self.peak = self.rss_mib()

    def cpu_s(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def wait_idle(self, limit_s=600):
        """Until the daemon's background work (flush, compaction) is done:
        under 5 % of a core over 5 s."""
        deadline = time.time() + limit_s
        while time.time() < deadline:
            c0 = self.cpu_s()
            time.sleep(5)
            if self.cpu_s() - c0 < 0.25:
                return

    def ctl(self, *args, check=True):
        return subprocess.run([os.path.join(BIN, "shredctl"), "--server", "unix:" + self.sock, "-q"] + list(args),
                              capture_output=True, check=check)

    def stop(self):
        self._stop = True
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def bench_transfer(work, size, repeat):
    """Upload (durable on return) and download of one file, next to age -e and sha256sum."""
    f = os.path.join(work, "big.bin")
    with open(f, "wb") as out:
        left = size
        while left:
            n = min(left, 64 << 20)
            out.write(os.urandom(n))
            left -= n
    sh(["age-keygen", "-o", os.path.join(work, "age.key")])
    recipient = [l for l in open(os.path.join(work, "age.key")).read().split() if l.startswith("age1")][0]
    digest = "sha256:" + sh(["sha256sum", f]).stdout.split()[0].decode()
    res = {"age": [], "sha256sum": [], "put": [], "get": [], "put_rss": [], "get_rss": []}
    for i in range(repeat):
        res["sha256sum"].append(timed(lambda: sh(["sha256sum", f])))
        res["age"].append(timed(lambda: sh(["age", "-e", "-r", recipient, "-o", f + ".age", f])))
        os.remove(f + ".age")
        root = tempfile.mkdtemp(dir=work)
        d = Daemon(root)
        d.reset_peak()
        res["put"].append(timed(lambda: d.ctl("put", f)))
        res["put_rss"].append(d.peak)
        d.reset_peak()
        res["get"].append(timed(lambda: d.ctl("get", digest, "-o", f + ".out")))
        res["get_rss"].append(d.peak)
        if sh(["cmp", f, f + ".out"]).returncode != 0:
            raise SystemExit("download differs")
        os.remove(f + ".out")
        d.stop()
        shutil.rmtree(root)
    os.remove(f)
    return res


def bench_scale(work, items, repeat):
    res = {"ingest": [], "ingest_rss": [], "order": [], "order_rss": [], "one_shred": [], "rocks_delete": [],
           "one_shred_busy": [], "cert_verify_ms": [], "manifest_verify": [], "manifest_rss": [], "log_size": [], "manifest_fetch": [],
           "log_append": [], "log_single_ms": []}
    for i in range(repeat):
        root = tempfile.mkdtemp(dir=work)
        d = Daemon(root)
        d.reset_peak()
        out = sh([os.path.join(BIN, "bench_ingest"), "--server", "unix:" + d.sock, "--items", str(items),
                  "--dataset", "source", "--seed", str(i + 1)]).stdout
        ing = json.loads(out)
        if ing["errors"]:
            raise SystemExit("ingest errors: %s" % ing)
        res["ingest"].append(ing["seconds"])
        res["ingest_rss"].append(d.peak)
        model = os.path.join(root, "model.bin")
        with open(model, "wb") as f:
            f.write(os.urandom(1 << 20))
        d.ctl("model", "register", model, "--trained-on", "source")
        # one-item shreds with the store full (RPC latency, no process start):
        # right after the ingest, while RocksDB still compacts it (session
        # 13: 8.7 ms), and once that background work is done (3.5 ms)
        def shred_latency():
            return json.loads(sh([os.path.join(BIN, "bench_shred_latency"), "--server", "unix:" + d.sock,
                                  "--count", "25"]).stdout)["median_ms"] / 1000
        res["one_shred_busy"].append(shred_latency())
        d.wait_idle()
        res["one_shred"].append(shred_latency())
        d.reset_peak()
        cert = os.path.join(root, "order.json")
        # The order end to end: plan, destruction, certificate, log entry,
        # checkpoint (submit, then wait until DONE). Fetching the private
        # manifest (~190 bytes per item) is timed on its own.
        res["order"].append(timed(lambda: (d.ctl("order", "submit", "--id", "big", "--basis", "ftc-order",
                                                 "--reference", "bench", "--dataset", "source"),
                                           d.ctl("order", "wait", "big", "--timeout", "3600"))))
        res["order_rss"].append(d.peak)
        res["manifest_fetch"].append(timed(lambda: d.ctl("order", "wait", "big", "-o", cert)))
        # Invariants at scale: the store held the dataset and the model only,
        # so nothing may be listed any more, and a content read must fail.
        left = d.ctl("--json", "ls", "--limit", "5").stdout.strip()
        if left:
            raise SystemExit("items survived the order: %s" % left[:200])
        with open(cert[:-5] + ".manifest.json") as f:
            first = re.search(r'"digest":"(sha256:[0-9a-f]{64})"', f.read(4096)).group(1)
        gone = d.ctl("get", first, "-o", os.path.join(root, "x"), check=False)
        if gone.returncode == 0:
            raise SystemExit("a shredded item was still readable")
        pem = os.path.join(root, "pub.pem")
        d.ctl("pubkey", "-o", pem)
        v = json.loads(sh([os.path.join(BIN, "bench_verify"), cert, pem, cert[:-5] + ".manifest.json"]).stdout)
        res["cert_verify_ms"].append(v["certificate_ms"])
        res["manifest_verify"].append(v["manifest_s"])
        res["manifest_rss"].append(v.get("peak_rss_mib", 0))
        res["log_size"].append(json.loads(d.ctl("--json", "log", "checkpoint").stdout)["treeSize"])
        d.stop()
        rd = json.loads(sh([os.path.join(BIN, "bench_rocks_delete"), os.path.join(root, "rocks"), str(items)]).stdout)
        res["rocks_delete"].append(rd["seconds"])
        la = json.loads(sh([os.path.join(BIN, "bench_log_append"), os.path.join(root, "logbench"), str(items)]).stdout)
        res["log_append"].append(la["entries_per_s"])
        res["log_single_ms"].append(la["single_ms"])
        shutil.rmtree(root)
    return res


def table(machine_desc, quick, items, size, tr, sc, custom=False):
    s = lambda k, src: stats(src[k])
    rows = []

    def row(name, target, st, unit, peer="", ratio="", rss="", ok=None):
        verdict = "" if ok is None else ("met" if ok else "**not met**")
        # Throughputs are derived from times, so min/max may arrive swapped.
        st = dict(st, min=min(st["min"], st["max"]), max=max(st["min"], st["max"]))
        rows.append("| %s | %s | %.3g | %.3g | %.3g | %s | %s | %s | %s | %s |" % (
            name, target, st["median"], st["min"], st["max"], unit, peer, ratio, rss, verdict))

    age, put, get = s("age", tr), s("put", tr), s("get", tr)
    mb = size / 1e6
    row("upload %d MiB (shredctl put, durable)" % (size >> 20), ">= 2.5x age -e", {k: mb / v for k, v in put.items()},
        "MB/s", "age -e %.0f MB/s" % (mb / age["median"]), "%.2fx" % (age["median"] / put["median"]),
        "%.0f MiB" % max(tr["put_rss"]), age["median"] / put["median"] >= 2.5)
    row("download %d MiB (shredctl get -o)" % (size >> 20), ">= 1 GB/s", {k: mb / v for k, v in get.items()},
        "MB/s", "sha256sum %.0f MB/s" % (mb / s("sha256sum", tr)["median"]), "", "%.0f MiB" % max(tr["get_rss"]),
        mb / get["median"] >= 1000)
    ing = s("ingest", sc)
    row("bulk ingest %d x 1 KiB" % items, "<= %d s" % (60 if not quick else 6), ing, "s", "", "",
        "%.0f MiB" % max(sc["ingest_rss"]), ing["median"] <= (60 if not quick else 6))
    order, rd = s("order", sc), s("rocks_delete", sc)
    row("order: dataset + 1 model, end to end", "<= %d s, <= 3x peer" % (10 if not quick else 1), order, "s",
        "RocksDB delete %.2f s" % rd["median"], "%.1fx" % (order["median"] / rd["median"]),
        "%.0f MiB" % max(sc["order_rss"]), order["median"] <= (10 if not quick else 1) and order["median"] <= 3 * rd["median"])
    mf = s("manifest_fetch", sc)
    row("manifest fetch (order wait -o: certificate + %d-item manifest)" % (items + 1), "(not a target)", mf, "s",
        "", "", "", None)
    one, busy = s("one_shred", sc), s("one_shred_busy", sc)
    row("one-item shred (Shred RPC, %d items stored, compactions done)" % items, "<= 5 ms",
        {k: v * 1000 for k, v in one.items()}, "ms", "", "", "", one["median"] <= 0.005)
    row("the same right after the ingest, RocksDB still compacting", "(not a target)",
        {k: v * 1000 for k, v in busy.items()}, "ms", "", "", "", None)
    la, ls = s("log_append", sc), s("log_single_ms", sc)
    row("log append (%d entries, synced batches of 1000)" % items, ">= 20000/s", la, "entries/s",
        "single synced append %.2f ms" % ls["median"], "", "", la["median"] >= 20000)
    cv = s("cert_verify_ms", sc)
    row("offline certificate verification", "< 1 ms", cv, "ms", "", "", "", cv["median"] < 1)
    mv = s("manifest_verify", sc)
    row("manifest verification (%d items)" % items, "< %d s" % (5 if not quick else 1), mv, "s", "", "",
        "%.0f MiB" % max(sc["manifest_rss"]),
        mv["median"] < (5 if not quick else 1))
    head = ["| benchmark | target | median | min | max | unit | peer | ratio | peak RSS | verdict |",
            "|---|---|---:|---:|---:|---|---|---|---:|---|"]
    return "\n".join(["Run: %s, %s, %s scale (%d items, %d MiB file)." % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine_desc,
        "custom" if custom else "quick 1/10" if quick else "full",
        items, size >> 20), ""] + head + rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--items", type=int, help="override the item count (smoke tests of the runner)")
    ap.add_argument("--size-mib", type=int, help="override the file size")
    a = ap.parse_args()
    items = a.items or (300_000 if a.quick else 3_000_000)
    size = (a.size_mib << 20) if a.size_mib else ((100 << 20) if a.quick else (1 << 30))
    if not a.no_build:
        build()
    work = tempfile.mkdtemp(prefix="shredd-bench-")
    try:
        tr = bench_transfer(work, size, a.repeat)
        sc = bench_scale(work, items, 1 if not a.quick else a.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(machine(), a.quick, items, size, tr, sc, custom=bool(a.items or a.size_mib))
    print(text)
    if a.no_write:
        return
    path = os.path.join(REPO, "docs", "PERFORMANCE.md")
    doc = open(path).read()
    begin, end = "<!-- BEGIN RESULTS -->", "<!-- END RESULTS -->"
    i, j = doc.index(begin) + len(begin), doc.index(end)
    with open(path, "w") as f:
        f.write(doc[:i] + "\n" + text + "\n" + doc[j:])


if __name__ == "__main__":
    main()
