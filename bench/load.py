#!/usr/bin/python3
"""Load test (issue 7): N concurrent clients (default 16, one process each)
against one shredd on a loopback unix socket for --duration seconds
(default 180), mixing

  put-small   streamed upload, 8 B .. 64 KiB (inline in RocksDB)
  put-1mib    streamed upload, ~1 MiB (file-backed)
  batch       BatchPut of 10 small items
  get         download of one of the client's own items, checked byte for byte
  plan        PlanOrder (dry run) over the client's dataset
  order       small deletion order (1-3 of the client's items by digest),
              waited for until DONE

Reports the error count (must be 0; any failed RPC or wrong byte is one),
p50/p99/max latency and throughput per operation kind, and the daemon's RSS
sampled every second from /proc/PID/status: at the start, after the warm-up,
at the end, the maximum, the least-squares slope (MiB/min) over the whole
run and after the warm-up, and the range and slope over the second half of
the run (the plateau). Every 10 s it also scrapes the daemon's metrics for
where the memory is (malloc in use / free but held, RocksDB memtables, table
readers, block cache), and once more --idle seconds (default 15) after the
clients end: what stays when no call is in flight. Exits 1 if there was any
error.

  bench/load.py [--clients 16] [--duration 180] [--build-dir build]
                [--server unix:PATH --pid PID [--metrics-url URL]]
                [--daemon-arg=--memory-budget-mib=64 ...] [--daemon-env K=V ...]
                [--max-items N] [--json-out FILE]

Without --server it starts its own daemon on a temp data dir, with metrics on
a free loopback port; --daemon-arg / --daemon-env add flags / environment to
that daemon (e.g. --daemon-env SHREDD_MALLOC_TUNING=off). Clients are
Python processes; on a small machine they compete with the daemon for CPU,
so latencies include client-side time (see docs/RELIABILITY.md).
"""
import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))

KINDS = ("put-small", "put-1mib", "batch", "get", "plan", "order")
WEIGHTS = (30, 8, 7, 30, 15, 10)


def set_env(build_dir):
    if build_dir:
        b = os.path.abspath(build_dir)
        os.environ["SHREDD_BIN"] = os.path.join(b, "bin", "shredd")
        os.environ["SHREDCTL_BIN"] = os.path.join(b, "bin", "shredctl")
        os.environ["SHREDD_PY_GEN"] = os.path.join(b, "proto", "gen", "py")


def import_api():
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import harness  # noqa: F401
    from harness import grpc, pb, pb_grpc
    from shredd.v1 import orders_pb2 as opb
    from shredd.v1 import orders_pb2_grpc as opb_grpc
    return grpc, pb, pb_grpc, opb, opb_grpc


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def client(idx, address, duration, build_dir, seed, max_items, out_q):
    """One client process: runs the mix until the deadline, sends back
    [(kind, seconds, ok)] and the first few error messages. With max_items,
    an order over the cap also deletes the client's oldest items down to it
    (steady state: the data stops growing)."""
    set_env(build_dir)
    grpc, pb, pb_grpc, opb, opb_grpc = import_api()
    ch = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                 ("grpc.max_send_message_length", 64 << 20)])
    store, orders = pb_grpc.StoreStub(ch), opb_grpc.OrdersStub(ch)
    rng = random.Random(seed)
    dataset = "load-c%d" % idx
    mine = {}  # digest -> sha256 of content (content is not kept: re-derived from the seed)
    samples, errors = [], []
    n_orders = 0

    def content(s, size):
        # The 64-bit seed leads, so no two uploads share content (and thus a
        # digest) by chance, even at a few bytes: tiny random items would
        # collide, and an item shared by two clients' datasets would be
        # shredded by one client's order under the other's feet.
        return (s.to_bytes(8, "big") + random.Random(s).randbytes(size))[:max(size, 8)]

    def put(size):
        s = rng.getrandbits(64)
        data = content(s, size)
        d = digest_of(data)
        hdr = pb.PutHeader(digest=pb.Digest(hash=d, size_bytes=size),
                           metadata=pb.ItemMetadata(kind=pb.KIND_PHOTO, datasets=[dataset],
                                                    subject_ids=["load-subject-%d" % (s % 50)]))

        def gen():
            yield pb.PutRequest(header=hdr)
            for i in range(0, size, 1 << 20):
                yield pb.PutRequest(data=data[i:i + (1 << 20)])
        store.Put(gen(), timeout=60)
        mine[d] = (s, size)

    def op(kind):
        nonlocal n_orders
        if kind == "put-small":
            put(rng.randint(8, 64 << 10))
        elif kind == "put-1mib":
            put(rng.randint((1 << 20) - 4096, (1 << 20) + 4096))
        elif kind == "batch":
            req = pb.BatchPutRequest()
            new = {}
            for _ in range(10):
                s = rng.getrandbits(64)
                size = rng.randint(8, 4096)
                data = content(s, size)
                e = req.entries.add()
                e.header.digest.hash = digest_of(data)
                e.header.digest.size_bytes = size
                e.header.metadata.kind = pb.KIND_PHOTO
                e.header.metadata.datasets.append(dataset)
                e.data = data
                new[e.header.digest.hash] = (s, size)
            for r in store.BatchPut(req, timeout=60).results:
                if r.code != 0:
                    raise RuntimeError("BatchPut entry: %d %s" % (r.code, r.message))
            mine.update(new)
        elif kind == "get":
            if not mine:
                put(1000)
            d = rng.choice(list(mine))
            s, size = mine[d]
            got = b"".join(r.data for r in store.Get(pb.GetRequest(digest=pb.Digest(hash=d)), timeout=60))
            if got != content(s, size):
                raise RuntimeError("Get %s returned %d wrong bytes" % (d, len(got)))
        elif kind == "plan":
            if not mine:
                put(1000)
            plan = orders.PlanOrder(opb.OrderSpec(id="plan-%d" % idx, basis=opb.OTHER, reference="load",
                                                  datasets=[dataset]), timeout=60)
            listed = {p.digest.hash for p in plan.selected}
            if plan.selected_count != len(mine) or len(listed) != min(len(mine), 10000) or not listed <= set(mine):
                raise RuntimeError("plan selected %d items (%d listed), the dataset holds %d" % (
                    plan.selected_count, len(listed), len(mine)))
        elif kind == "order":
            while len(mine) < 4:
                put(rng.randint(100, 5000))
            victims = rng.sample(list(mine), rng.randint(1, 3))
            if max_items and len(mine) > max_items:
                oldest = [d for d in list(mine)[:len(mine) - max_items + len(victims)] if d not in victims]
                victims += oldest[:len(mine) - max_items]
            n_orders += 1
            oid = "load-%d-%d-%d" % (idx, seed, n_orders)
            orders.SubmitOrder(opb.OrderSpec(id=oid, basis=opb.GDPR_ART17, reference="load test",
                                             digests=[pb.Digest(hash=v) for v in victims]), timeout=60)
            st = orders.GetOrder(opb.GetOrderRequest(order_id=oid, wait=True), timeout=120)
            if st.state != opb.ORDER_DONE or st.items_shredded != len(victims):
                raise RuntimeError("order %s ended %s (%s), %d items" % (
                    oid, opb.OrderState.Name(st.state), st.message, st.items_shredded))
            for v in victims:
                del mine[v]

    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        kind = rng.choices(KINDS, WEIGHTS)[0]
        t = time.monotonic()
        ok = True
        try:
            op(kind)
        except Exception as e:  # noqa: BLE001 - every failure is an error to report
            ok = False
            if len(errors) < 5:
                errors.append("%s: %s" % (kind, e.details() if hasattr(e, "details") else e))
        samples.append((kind, time.monotonic() - t, ok))
    ch.close()
    out_q.put((idx, samples, errors))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def slope_mib_per_min(points):
    """Least-squares slope of [(seconds, KiB)] in MiB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return 0.0 if den == 0 else sum((p[0] - mx) * (p[1] - my) for p in points) / den * 60 / 1024


MEMORY_KINDS = ("malloc_in_use", "malloc_free_held", "rocksdb_memtables", "rocksdb_table_readers",
                "rocksdb_block_cache", "rocksdb_block_cache_pinned")


def scrape_memory(url):
    """{kind: MiB} from the daemon's shredd_memory_bytes gauges, or None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for m in re.finditer(r'^shredd_memory_bytes\{kind="([a-z_]+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = round(float(m.group(2)) / 1048576, 1)
    return out


def metrics_url_from_log(daemon, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r"metrics url=(http://\S+)", daemon.log())
        if m:
            return m.group(1)
        time.sleep(0.1)
    return None


def per_minute(points):
    """[(minute, min MiB, max MiB)] of [(seconds, KiB)]."""
    out = {}
    for t, k in points:
        m = int(t // 60)
        lo, hi = out.get(m, (k, k))
        out[m] = (min(lo, k), max(hi, k))
    return [(m, round(lo / 1024, 1), round(hi / 1024, 1)) for m, (lo, hi) in sorted(out.items())]


def pct(sorted_values, q):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=180, help="seconds (default 180)")
    ap.add_argument("--warmup", type=float, default=30, help="seconds excluded from the post-warm-up RSS slope")
    ap.add_argument("--idle", type=float, default=15,
                    help="after the clients end, wait this long (the daemon trims every 10 s), then sample again")
    ap.add_argument("--build-dir", help="take bin/shredd and proto/gen/py from here (default build/)")
    ap.add_argument("--server", help="use a running daemon at this address (needs --pid)")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--metrics-url", help="with --server: the daemon's /metrics, for the memory breakdown")
    ap.add_argument("--daemon-arg", action="append", default=[], help="extra flag for the daemon it starts")
    ap.add_argument("--daemon-env", action="append", default=[], help="KEY=VALUE for the daemon it starts")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--max-items", type=int, default=0,
                    help="per client: orders also delete the oldest items above this many (steady state; "
                         "default 0: the data grows through the run)")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    set_env(a.build_dir)
    daemon = tmp = None
    if a.server:
        if not a.pid:
            ap.error("--server needs --pid (for RSS sampling)")
        address, pid = a.server, a.pid
        metrics_url = a.metrics_url
    else:
        sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
        import harness
        tmp = tempfile.mkdtemp(prefix="shredd-load-")
        env = dict(kv.split("=", 1) for kv in a.daemon_env)
        daemon = harness.Daemon(tmp, extra_args=["--metrics-listen", "127.0.0.1:0"] + a.daemon_arg, env=env)
        daemon.start()
        daemon._close()  # no gRPC channel in this process while clients start (spawn)
        address, pid = daemon.address, daemon.proc.pid
        metrics_url = metrics_url_from_log(daemon)
        print("load: daemon %s%s" % (" ".join(daemon.command()[1:]),
                                     "".join(" (env %s)" % kv for kv in a.daemon_env)), flush=True)
    print("load: %d clients, %.0f s, daemon pid %d at %s" % (a.clients, a.duration, pid, address), flush=True)

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=client, args=(i, address, a.duration, a.build_dir, a.seed * 1000 + i, a.max_items, q))
             for i in range(a.clients)]
    rss, memory = [], []
    t0 = time.monotonic()
    rss.append((0.0, rss_kib(pid)))
    if metrics_url:
        memory.append((0, scrape_memory(metrics_url)))
    next_scrape = 10.0
    for p in procs:
        p.start()
    results = []
    next_sample = 1.0
    while len(results) < len(procs):
        try:
            results.append(q.get(timeout=0.2))
        except Exception:  # noqa: BLE001 - queue.Empty
            pass
        now = time.monotonic() - t0
        if now >= next_sample:
            rss.append((now, rss_kib(pid)))
            next_sample += 1.0
        if metrics_url and now >= next_scrape:
            memory.append((round(now), scrape_memory(metrics_url)))
            next_scrape += 10.0
        if now > a.duration + 600:
            print("load: clients did not finish", file=sys.stderr)
            break
    for p in procs:
        p.join(timeout=30)
    rss.append((time.monotonic() - t0, rss_kib(pid)))
    if metrics_url:
        memory.append((round(time.monotonic() - t0), scrape_memory(metrics_url)))
    elapsed = time.monotonic() - t0
    # Idle: what stays once no call is in flight (not part of the series above).
    time.sleep(a.idle)
    idle = {"after_s": a.idle, "rss_mib": round(rss_kib(pid) / 1024, 1),
            "memory_mib": scrape_memory(metrics_url) if metrics_url else None}
    if daemon:
        rc = daemon.stop(timeout=60)
        if rc != 0:
            print("load: daemon exited %s on SIGTERM" % rc, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)

    samples = [s for _, ss, _ in results for s in ss]
    errors = [e for _, _, es in results for e in es]
    n_err = sum(1 for s in samples if not s[2])
    per_kind = {}
    for kind in KINDS:
        lat = sorted(s[1] for s in samples if s[0] == kind and s[2])
        per_kind[kind] = {"ops": sum(1 for s in samples if s[0] == kind),
                          "errors": sum(1 for s in samples if s[0] == kind and not s[2]),
                          "p50_ms": round(pct(lat, 0.50) * 1000, 1),
                          "p99_ms": round(pct(lat, 0.99) * 1000, 1),
                          "max_ms": round((lat[-1] if lat else 0) * 1000, 1),
                          "ops_per_s": round(len(lat) / a.duration, 2)}
    warm = [p for p in rss if p[0] >= a.warmup] or rss
    half = [p for p in rss if p[0] >= a.duration / 2] or rss
    summary = {
        "clients": a.clients, "duration_s": a.duration, "max_items": a.max_items, "elapsed_s": round(elapsed, 1),
        "ops": len(samples), "errors": n_err, "error_samples": errors[:10],
        "ops_per_s": round(len(samples) / a.duration, 1),
        "per_kind": per_kind,
        "rss_mib": {"start": round(rss[0][1] / 1024, 1),
                    "after_warmup": round(warm[0][1] / 1024, 1),
                    "end": round(rss[-1][1] / 1024, 1),
                    "max": round(max(p[1] for p in rss) / 1024, 1),
                    "slope_mib_per_min": round(slope_mib_per_min(rss), 2),
                    "slope_after_warmup_mib_per_min": round(slope_mib_per_min(warm), 2),
                    "second_half_min": round(min(p[1] for p in half) / 1024, 1),
                    "second_half_max": round(max(p[1] for p in half) / 1024, 1),
                    "slope_second_half_mib_per_min": round(slope_mib_per_min(half), 2),
                    "samples": len(rss),
                    # every 10th sample: (seconds, MiB)
                    "series": [(round(t), round(k / 1024, 1)) for t, k in rss[::10]],
                    # per minute of the run: (minute, min, max)
                    "per_minute": per_minute(rss)},
        # every 10 s: (seconds, {kind: MiB}) from the daemon's metrics
        "memory_mib": memory,
        "idle": idle,
    }
    print("%-10s %8s %6s %9s %9s %9s %8s" % ("kind", "ops", "errors", "p50 ms", "p99 ms", "max ms", "ops/s"))
    for kind, k in per_kind.items():
        print("%-10s %8d %6d %9.1f %9.1f %9.1f %8.2f" % (kind, k["ops"], k["errors"], k["p50_ms"], k["p99_ms"],
                                                         k["max_ms"], k["ops_per_s"]))
    r = summary["rss_mib"]
    print("RSS MiB: start %.1f, after %.0f s warm-up %.1f, end %.1f, max %.1f; slope %.2f MiB/min "
          "(after warm-up %.2f MiB/min), %d samples" % (r["start"], a.warmup, r["after_warmup"], r["end"], r["max"],
                                                       r["slope_mib_per_min"], r["slope_after_warmup_mib_per_min"],
                                                       r["samples"]))
    print("RSS MiB, second half of the run (from %.0f s): %.1f .. %.1f, slope %.2f MiB/min"
          % (a.duration / 2, r["second_half_min"], r["second_half_max"], r["slope_second_half_mib_per_min"]))
    print("RSS MiB every 10 s: " + " ".join("%.0f" % m for _, m in r["series"]))
    print("RSS MiB per minute (min..max): " + " ".join("%d:%.0f..%.0f" % x for x in r["per_minute"]))
    if memory:
        print("memory MiB (daemon metrics), every 60 s:")
        print("%6s %7s" % ("s", "rss") + "".join(" %14s" % k[:14] for k in MEMORY_KINDS))
        rss_at = dict((round(t), k) for t, k in rss)
        for t, m in memory[::6] + ([memory[-1]] if (len(memory) - 1) % 6 else []):
            if not m:
                continue
            near = min(rss_at, key=lambda x: abs(x - t))
            print("%6d %7.1f" % (t, rss_at[near] / 1024) + "".join(" %14.1f" % m.get(k, 0) for k in MEMORY_KINDS))
    print("idle %.0f s after the clients ended: RSS %.1f MiB%s" % (
        a.idle, idle["rss_mib"], (", " + ", ".join("%s %.1f" % kv for kv in idle["memory_mib"].items()))
        if idle["memory_mib"] else ""))
    print("errors: %d%s" % (n_err, (" e.g. " + "; ".join(errors[:3])) if errors else ""))
    print("SUMMARY " + json.dumps(summary), flush=True)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if n_err else 0


if __name__ == "__main__":
    sys.exit(main())
