#!/usr/bin/python3
"""Transfer A/B benchmark: put/get of one file through shredctl, for one or more
builds side by side, with age -e, age -d, openssl dgst -sha256 and sha256sum in
every run (ratios survive a noisy machine), and the daemon's CPU seconds per
put and get. usage: bench/transfer_ab.py old=DIR/bin,new=DIR/bin FILE REPEAT"""
import os, subprocess, sys, time, tempfile, shutil, statistics, signal, json

BINS = [b.split("=", 1) for b in sys.argv[1].split(",")]
F, REPEAT = sys.argv[2], int(sys.argv[3])
WORK = os.path.dirname(F)
size = os.path.getsize(F)

def sh(cmd):
    return subprocess.run(cmd, check=True, capture_output=True)

def hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmHWM:"):
                return int(l.split()[1]) / 1024
    return 0

key = os.path.join(WORK, "age.key")
if not os.path.exists(key):
    sh(["age-keygen", "-o", key])
recipient = [l for l in open(key).read().split() if l.startswith("age1")][0]
digest = "sha256:" + sh(["sha256sum", F]).stdout.split()[0].decode()
res = {"sha256sum": [], "age": [], "age_d": [], "openssl": []}
for lab, _ in BINS:
    for k in ["put", "get", "d_hwm_put", "d_hwm_get", "c_hwm_put", "c_hwm_get", "d_cpu_put", "d_cpu_get"]:
        res[lab + "." + k] = []

def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        p = f.read().rsplit(")", 1)[1].split()
    return (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")

def timed_ctl(args):
    t = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    # client VmHWM: read via wait4 rusage
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    out = p.stdout.read(); err = p.stderr.read()
    if status != 0:
        raise SystemExit("failed: %s %s %s" % (args, out, err))
    return dt, ru.ru_maxrss / 1024

for i in range(REPEAT):
    t = time.perf_counter(); sh(["sha256sum", F]); res["sha256sum"].append(time.perf_counter() - t)
    t = time.perf_counter(); sh(["openssl", "dgst", "-sha256", F]); res["openssl"].append(time.perf_counter() - t)
    t = time.perf_counter(); sh(["age", "-e", "-r", recipient, "-o", F + ".age", F]); res["age"].append(time.perf_counter() - t)
    t = time.perf_counter(); sh(["age", "-d", "-i", key, "-o", F + ".plain", F + ".age"]); res["age_d"].append(time.perf_counter() - t)
    os.remove(F + ".age"); os.remove(F + ".plain")
    for lab, BIN in BINS:
        root = tempfile.mkdtemp(dir=WORK)
        sock = os.path.join(root, "s.sock")
        d = subprocess.Popen([os.path.join(BIN, "shredd"), "--data-dir", os.path.join(root, "data"), "--vault",
                              "file:" + os.path.join(root, "vault"), "--listen", "unix:" + sock],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "log"), "wb"))
        ctl = [os.path.join(BIN, "shredctl"), "--server", "unix:" + sock, "-q"]
        for _ in range(400):
            if os.path.exists(sock) and subprocess.run(ctl + ["ls", "--limit", "1"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        base = hwm(d.pid)
        c0 = cpu(d.pid)
        dt, c = timed_ctl(ctl + ["put", F]); res[lab + ".put"].append(dt); res[lab + ".c_hwm_put"].append(c); res[lab + ".d_hwm_put"].append(hwm(d.pid))
        c1 = cpu(d.pid); res[lab + ".d_cpu_put"].append(c1 - c0)
        dt, c = timed_ctl(ctl + ["get", digest, "-o", F + ".out"]); res[lab + ".get"].append(dt); res[lab + ".c_hwm_get"].append(c); res[lab + ".d_hwm_get"].append(hwm(d.pid))
        res[lab + ".d_cpu_get"].append(cpu(d.pid) - c1)
        if subprocess.run(["cmp", F, F + ".out"]).returncode != 0:
            raise SystemExit("download differs")
        os.remove(F + ".out")
        d.send_signal(signal.SIGTERM); d.wait(timeout=120)
        shutil.rmtree(root)
        print("run %d %s: sha256sum %.3f openssl %.3f age -e %.3f age -d %.3f put %.3f (daemon %.2f CPU-s) get %.3f (daemon %.2f CPU-s) load %s" % (
            i, lab, res["sha256sum"][-1], res["openssl"][-1], res["age"][-1], res["age_d"][-1], res[lab + ".put"][-1],
            res[lab + ".d_cpu_put"][-1], res[lab + ".get"][-1], res[lab + ".d_cpu_get"][-1], open("/proc/loadavg").read().split()[0]), flush=True)

med = {k: statistics.median(v) for k, v in res.items()}
mb = size / 1e6
print("%d MiB, medians of %d: sha256sum %.3f s (%.0f MB/s), openssl dgst %.3f s, age -e %.3f s (%.0f MB/s), age -d %.3f s" % (
    size >> 20, REPEAT, med["sha256sum"], mb / med["sha256sum"], med["openssl"], med["age"], mb / med["age"], med["age_d"]))
for lab, _ in BINS:
    p, g = med[lab + ".put"], med[lab + ".get"]
    print("  %s: put %.3f s (%.0f MB/s, %.2fx age -e, %.2fx openssl dgst; daemon %.2f CPU-s), get %.3f s (%.0f MB/s, %.2fx age -d; daemon %.2f CPU-s); peak RSS MiB daemon %.0f/%.0f client %.0f/%.0f (put/get)" % (
        lab, p, mb / p, med["age"] / p, med["openssl"] / p, med[lab + ".d_cpu_put"], g, mb / g, med["age_d"] / g, med[lab + ".d_cpu_get"],
        max(res[lab + ".d_hwm_put"]), max(res[lab + ".d_hwm_get"]), max(res[lab + ".c_hwm_put"]), max(res[lab + ".c_hwm_get"])))
    # per-run ratios (same iteration)
    rp = [a / x for a, x in zip(res["age"], res[lab + ".put"])]
    rg = [a / x for a, x in zip(res["age_d"], res[lab + ".get"])]
    print("    per-run put vs age -e: %s; get vs age -d: %s" % (" ".join("%.2f" % r for r in rp), " ".join("%.2f" % r for r in rg)))
print(json.dumps(res))
