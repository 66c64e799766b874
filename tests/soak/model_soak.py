#!/usr/bin/python3
"""Soak of the model-based test (issue 12; tests/integration/model_check.py).

Runs new seeds against a fresh daemon each until the time is up, one line per
seed (steps, operations, faults, certificates, time, first violation), then a
summary. A violation names its seed and step; replay it with --seed.

Usage: tests/soak/model_soak.py [--minutes 30] [--seed S] [--seeds N] [--steps 200]
       [--build-dir build] [--json-out FILE] [--stop-on-violation]
       [--full-disk] [--keep-going]
  --full-disk puts the data dir on a small tmpfs (root only) and adds the
  full-disk fault; --keep-going (diagnostic) records every violation of a
  seed, resyncs the model from the daemon and goes on.
  --seed S alone replays that one seed (--repeat N to run it N times);
  with --minutes it is the first of consecutive seeds.
Exits 1 if any seed found a violation.
"""
import argparse
import json
import os
import random
import re
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

if __name__ == "__main__":
    # The harness reads the binaries' paths from the environment at import.
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--build-dir")
    _a, _ = _pre.parse_known_args()
    _b = os.path.abspath(_a.build_dir or os.path.join(REPO, "build"))
    os.environ.setdefault("SHREDD_BIN", os.path.join(_b, "bin", "shredd"))
    os.environ.setdefault("SHREDCTL_BIN", os.path.join(_b, "bin", "shredctl"))
    os.environ.setdefault("SHREDD_PY_GEN", os.path.join(_b, "proto", "gen", "py"))

sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import model_check  # noqa: E402


def signature(msg):
    """A violation message with its ids, digests, names and numbers blanked."""
    m = re.sub(r"(photo|model)#\d+\([0-9a-f]+\.\.\)", r"\1#N", msg)
    m = re.sub(r"[0-9a-f]{16,}", "H", m)
    m = re.sub(r"\[[^\]]*\]", "[..]", m)
    m = re.sub(r"(subj|ds|order|req|hold)-[\w-]+", r"\1-X", m)
    m = re.sub(r"\d+", "N", m)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", type=int, help="run this many seeds (instead of, or within, --minutes)")
    ap.add_argument("--repeat", type=int, default=1, help="with --seed alone: replay it this many times")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--build-dir")
    ap.add_argument("--json-out")
    ap.add_argument("--stop-on-violation", action="store_true")
    ap.add_argument("--full-disk", action="store_true",
                    help="data dir on a %d MB tmpfs (needs mount rights) and the disk_full fault" % model_check.FULL_DISK_MB)
    ap.add_argument("--keep-going", action="store_true",
                    help="diagnostic: record every violation of a seed, resync the model from the daemon and go on "
                         "(finds the bugs a first, frequent one would hide)")
    a = ap.parse_args()

    if a.seed is not None and a.minutes is None and a.seeds is None:
        seeds = [a.seed] * a.repeat
    else:
        first = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 10**9)
        seeds = (first + i for i in range(10**9))
    deadline = time.time() + 60 * a.minutes if a.minutes else None
    limit = a.seeds

    total = dict(sequences=0, steps=0, ops=0, faults=0, kills=0, restarts=0, full_disks=0, races=0, refused=0,
                 certificates=0, violations=0)
    by_inv = {}
    kinds = {}  # (invariant, normalized message) -> [(seed, step, op)]
    failing = []
    rows = []
    t0 = time.time()
    for n, seed in enumerate(seeds):
        if limit is not None and n >= limit:
            break
        if deadline is not None and time.time() >= deadline:
            break
        run = model_check.ModelRun(seed, steps=a.steps, keep_going=a.keep_going, full_disk=a.full_disk,
                                   log=(lambda m: print(m, flush=True)) if a.keep_going else None)
        start = time.time()
        verdict, v = "ok", None
        try:
            run.run()
        except model_check.Violation as e:
            verdict, v = "VIOLATION", e
        except Exception as e:  # a harness error: report it, keep going
            verdict = "ERROR"
            v = e
            traceback.print_exc()
        st = run.stats
        secs = time.time() - start
        total["sequences"] += 1
        for k in ("steps", "ops", "faults", "kills", "restarts", "full_disks", "races", "refused", "certificates"):
            total[k] += getattr(st, k)
        row = dict(seed=seed, steps=st.steps, ops=st.ops, faults=st.faults, kills=st.kills,
                   certificates=st.certificates, seconds=round(secs, 1), verdict=verdict)
        if run.violations:
            verdict, v = "VIOLATION", run.violations[0]
            row["verdict"] = verdict
            row["all"] = [dict(step=x.step, op=x.op, invariant=x.inv, message=x.msg) for x in run.violations]
            for x in run.violations:
                sig = (x.inv, signature(x.msg))
                kinds.setdefault(sig, []).append((seed, x.step, x.op))
        if isinstance(v, model_check.Violation):
            total["violations"] += 1
            for x in (run.violations or [v]):
                by_inv[x.inv] = by_inv.get(x.inv, 0) + 1
            row.update(step=v.step, op=v.op, invariant=v.inv, message=v.msg)
            failing.append(row)
        elif v is not None:
            row.update(message=repr(v))
            failing.append(row)
        rows.append(row)
        print("seed %-10s steps %4d ops %5d faults %2d (kill -9 %d) certs %3d %6.1fs  %s%s" % (
            seed, st.steps, st.ops, st.faults, st.kills, st.certificates, secs, verdict,
            "" if v is None else "\n    %s" % str(v).replace("\n", "\n    ")), flush=True)
        if v is not None and a.stop_on_violation:
            break
    total["seconds"] = round(time.time() - t0, 1)
    print("\nsummary: %(sequences)d sequences, %(steps)d steps, %(ops)d operations, %(faults)d faults injected "
          "(%(kills)d kill -9, %(restarts)d restarts, %(full_disks)d full disks), %(races)d concurrent steps, %(refused)d refused calls, "
          "%(certificates)d certificates, %(violations)d violations, %(seconds).0f s" % total)
    if by_inv:
        print("violations by invariant: " + ", ".join("(%s) %d" % kv for kv in sorted(by_inv.items())))
    if kinds:
        print("distinct violations (invariant, message shape: seed/step/op of each):")
        for (inv, sig), where in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
            print("  (%s) %s\n      %d x: %s" % (inv, sig[:160], len(where), ", ".join(
                "%s/%s/%s" % w for w in where[:8])))
    for row in failing:
        print("  failing seed %s at step %s (%s): (%s) %s" % (row["seed"], row.get("step"), row.get("op"),
                                                           row.get("invariant", "error"), row.get("message", "")[:300]))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(dict(total=total, by_invariant=by_inv, seeds=rows,
                           distinct=[dict(invariant=k[0], shape=k[1], where=w) for k, w in kinds.items()]), f, indent=1)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
