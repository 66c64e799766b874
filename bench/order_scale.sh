#!/usr/bin/env bash
# Times one order over a whole ingested dataset plus one model trained on it
# (the "order" row of bench/run.py, without the rest of the suite), and
# prints the daemon's phase times and peak RSS.
#
#   bench/order_scale.sh [--bin DIR] [--items N] [--work DIR] [--runs N] [--snapshot DIR] [--epoch-items N]
#
# The dataset is ingested once per binary directory and item count with the
# same commands as bench/run.py (bench_ingest --dataset source, then
# `shredctl model register --trained-on source`), the daemon stopped, and
# its data dir and vault kept as a snapshot under --work; every run copies
# the snapshot, starts a fresh daemon on it and times
# `order submit` + `order wait`. For A/B comparisons run two binary
# directories back to back, e.g.
#   for i in 1 2 3; do bench/order_scale.sh --bin /tmp/old/bin; bench/order_scale.sh --bin build-release/bin; done
# daemon_cpu_s (user + system CPU of the daemon, start-up included) is the
# steadier figure on a shared machine. ORDER_PERF=FILE records a perf
# profile (perf record -g) of the daemon during the order;
# ORDER_METRICS=127.0.0.1:PORT has the daemon serve its metrics there
# (e.g. to sample shredd_memory_bytes during the order; ORDER_SAMPLE=FILE
# with it writes RSS and those gauges to FILE every 0.5 s, and
# SHREDD_ROCKSDB_LOG=info puts RocksDB's flushes and compactions in the
# daemon's log). page_faults are the
# daemon's minor + major faults during the order (/proc/PID/stat; the same
# count as `perf stat -e page-faults -p PID`); the snapshot step prints the
# ingest's figures the same way. The daemon inherits MALLOC_CONF, so
# jemalloc settings can be compared without a rebuild.
set -euo pipefail

BIN=build-release/bin
ITEMS=300000
WORK=/tmp/shredd-order-bench
RUNS=1
SNAP=
EPOCH_ITEMS=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --items) ITEMS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --snapshot) SNAP=$2; shift 2 ;;
    --epoch-items) EPOCH_ITEMS=$2; shift 2 ;;  # [shred] epoch_items for the order (default: the daemon's)  # reuse (or make) this snapshot, e.g. one ingested by an older build of the same format
    *) echo "usage: $0 [--bin DIR] [--items N] [--work DIR] [--runs N] [--snapshot DIR] [--epoch-items N]" >&2; exit 2 ;;
  esac
done
BIN=$(cd "$BIN" && pwd)
mkdir -p "$WORK"
# One snapshot per binary (its own record formats) and item count.
SNAP=${SNAP:-"$WORK/snap-$(echo "$BIN" | sha256sum | cut -c1-8)-$ITEMS"}

start_daemon() {  # $1: root dir
  local root=$1
  local config=()
  if [[ -n $EPOCH_ITEMS ]]; then
    printf '[shred]\nepoch_items = %s\n' "$EPOCH_ITEMS" >"$root/shredd.toml"
    config=(--config "$root/shredd.toml")
  fi
  if [[ -n ${ORDER_METRICS:-} ]]; then  # ORDER_METRICS=HOST:PORT: the daemon serves /metrics there
    config+=(--metrics-listen "$ORDER_METRICS")
  fi
  "$BIN/shredd" "${config[@]}" --data-dir "$root/data" --vault "file:$root/vault" --listen "unix:$root/s.sock" \
    >/dev/null 2>>"$root/log" &
  DPID=$!
  for _ in $(seq 400); do
    if [[ -S $root/s.sock ]] && "$BIN/shredctl" --server "unix:$root/s.sock" -q ls --limit 1 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  echo "daemon did not start" >&2
  exit 1
}
stop_daemon() {
  kill -TERM "$DPID"
  wait "$DPID" || true
}
ctl() { "$BIN/shredctl" --server "unix:$ROOT/s.sock" -q "$@"; }
# One line per 0.5 s: seconds, RSS (MiB), then shredd_memory_bytes by kind
# (MiB) from the metrics endpoint (docs/SERVICE.md#metrics).
sample_memory() {  # $1: daemon pid
  local t0 rss
  t0=$(date +%s.%N)
  while kill -0 "$1" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$1/status" 2>/dev/null || echo 0)
    printf '%.1f rss=%s %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$rss" \
      "$(curl -s --max-time 1 "http://$ORDER_METRICS/metrics" |
        awk '/^shredd_memory_bytes/ {split($1, a, "\""); printf "%s=%d ", a[2], $2 / 1048576}')"
    sleep 0.5
  done
}

if [[ ! -d $SNAP ]]; then
  ROOT="$SNAP.tmp"
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  start_daemon "$ROOT"
  read -r cpu0 flt0 < <(awk '{print ($14 + $15) / 100, $10 + $12}' "/proc/$DPID/stat")
  wchar0=$(awk '/^wchar/ {print $2}' "/proc/$DPID/io")  # bytes written (WAL, flush, compaction)
  "$BIN/bench_ingest" --server "unix:$ROOT/s.sock" --items "$ITEMS" --dataset source --seed 1 >"$ROOT/ingest.raw"
  # The ingest as bench/run.py times it, plus the daemon's side of it.
  read -r cpu1 flt1 < <(awk '{print ($14 + $15) / 100, $10 + $12}' "/proc/$DPID/stat")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
  wchar1=$(awk '/^wchar/ {print $2}' "/proc/$DPID/io")
  printf '{"ingest":%s,"daemon_cpu_s":%s,"written_mib":%d,"page_faults":%d,"peak_rss_mib":%d,"load":"%s"}\n' "$(cat "$ROOT/ingest.raw")" \
    "$(echo "$cpu1 - $cpu0" | bc)" $(((wchar1 - wchar0) >> 20)) $((flt1 - flt0)) $((hwm / 1024)) "$(cut -d' ' -f1-3 /proc/loadavg)" >"$ROOT/ingest.json"
  head -c $((1 << 20)) /dev/urandom >"$ROOT/model.bin"
  ctl model register "$ROOT/model.bin" --trained-on source >/dev/null
  stop_daemon
  rm -f "$ROOT/log" "$ROOT/s.sock" "$ROOT/ingest.raw"
  mv "$ROOT" "$SNAP"
  echo "ingested: $(cat "$SNAP/ingest.json")" >&2
fi

for _ in $(seq "$RUNS"); do
  ROOT=$(mktemp -d "$WORK/run.XXXXXX")
  cp -a "$SNAP/data" "$SNAP/vault" "$ROOT/"
  sync
  start_daemon "$ROOT"
  if [[ -n ${ORDER_PERF:-} ]]; then  # ORDER_PERF=out.data: perf record -g the daemon during the order
    perf record -g -o "$ORDER_PERF" -p "$DPID" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.5
  fi
  if [[ -n ${ORDER_SAMPLE:-} ]]; then  # ORDER_SAMPLE=FILE (with ORDER_METRICS): RSS and shredd_memory_bytes every 0.5 s
    sample_memory "$DPID" >"$ORDER_SAMPLE" &
    SAMPLE_PID=$!
  fi
  flt0=$(awk '{print $10 + $12}' "/proc/$DPID/stat")
  t0=$(date +%s.%N)
  ctl order submit --id big --basis ftc-order --reference bench --dataset source >/dev/null
  ctl order wait big --timeout 3600 >/dev/null
  t1=$(date +%s.%N)
  if [[ -n ${ORDER_PERF:-} ]]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
  if [[ -n ${ORDER_SAMPLE:-} ]]; then kill "$SAMPLE_PID"; wait "$SAMPLE_PID" || true; fi
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
  cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$DPID/stat")
  sys=$(awk '{print $15 / 100}' "/proc/$DPID/stat")  # system time: page faults, purges, I/O
  flt=$(( $(awk '{print $10 + $12}' "/proc/$DPID/stat") - flt0 ))  # = perf stat -e page-faults of the daemon
  left=$(ctl --json ls --limit 5)
  stop_daemon
  [[ -z $left ]] || { echo "items survived the order: $left" >&2; exit 1; }
  field() { grep "shredd: $1 " "$ROOT/log" | head -1 | grep -o " $2=[0-9.e+-]*" | cut -d= -f2 || true; }
  plan=$(field "shred planned" seconds)
  destroy=$(field "certificate issued" destroy_seconds)
  certify=$(field "certificate issued" certify_seconds)
  plan_cpu=$(field "shred planned" cpu_seconds)
  destroy_cpu=$(field "certificate issued" destroy_cpu_seconds)
  certify_cpu=$(field "certificate issued" certify_cpu_seconds)
  epochs=$(grep -c 'shredd: shred epoch ' "$ROOT/log" || true)
  printf '{"bin":"%s","items":%s,"order_s":%.3f,"plan_s":%s,"destroy_s":%s,"certify_s":%s,"cpu_plan_s":%s,"cpu_destroy_s":%s,"cpu_certify_s":%s,"epochs":%s,"daemon_cpu_s":%s,"daemon_sys_s":%s,"page_faults":%d,"peak_rss_mib":%d,"malloc_conf":"%s","load":"%s"}\n' \
    "$BIN" "$ITEMS" "$(echo "$t1 - $t0" | bc)" "${plan:-null}" "${destroy:-null}" "${certify:-null}" "${plan_cpu:-null}" \
    "${destroy_cpu:-null}" "${certify_cpu:-null}" "$epochs" "$cpu" "$sys" "$flt" \
    $((hwm / 1024)) "${MALLOC_CONF:-}" "$(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$ROOT"
done
