#!/usr/bin/env bash
# The daemon's peak resident set under many transfers at once (the "RSS
# <= 256 MiB everywhere" promise; docs/PERFORMANCE.md "Concurrent transfers
# and the memory budget"): a fresh daemon, N concurrent `shredctl put` of
# distinct SIZE_MIB files, then N concurrent `shredctl get` of one of them
# (to a file each: never -o /dev/null with an old shredctl, which replaced
# the device node). Prints wall times, the daemon's VmHWM after each phase
# and its transfer-memory waits.
#
#   bench/concurrent_transfers.sh [--bin DIR] [--n N] [--size-mib M] [--work DIR] [-- DAEMON_FLAGS...]
#
# e.g. bench/concurrent_transfers.sh --n 16 -- --transfer-memory-mib 96
set -euo pipefail
BIN=build/bin N=16 SIZE=40 WORK=${TMPDIR:-/tmp}/shredd-concurrent
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --size-mib) SIZE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN=$(cd "$BIN" && pwd)
rm -rf "$WORK" && mkdir -p "$WORK/in" "$WORK/out"
for i in $(seq 1 "$N"); do head -c $((SIZE << 20)) /dev/urandom >"$WORK/in/f$i"; done
"$BIN/shredd" --data-dir "$WORK/d" --vault "file:$WORK/v" --listen "unix:$WORK/s.sock" \
  --metrics-listen 127.0.0.1:0 "$@" >"$WORK/daemon.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$WORK/s.sock" ] && break; sleep 0.1; done
export SHREDD_SERVER="unix:$WORK/s.sock"
hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$PID/status"; }
now() { date +%s.%N; }
t0=$(now)
# Failures are counted, not fatal: beyond [server] max_calls gRPC refuses
# calls (shredctl put retries them; get does not).
fail() { echo x >>"$WORK/failed"; }
for i in $(seq 1 "$N"); do ("$BIN/shredctl" -q put "$WORK/in/f$i" >/dev/null 2>>"$WORK/errors" || fail) & done
wait $(jobs -p | grep -v "^$PID$") || true
t1=$(now)
put_hwm=$(hwm)
D=$("$BIN/shredctl" --json put "$WORK/in/f1" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["digest"])')
t2=$(now)
for i in $(seq 1 "$N"); do ("$BIN/shredctl" -q get "$D" -o "$WORK/out/g$i" 2>>"$WORK/errors" || fail) & done
wait $(jobs -p | grep -v "^$PID$") || true
t3=$(now)
URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$WORK/daemon.log" | tail -1)
waits=$(curl -s "$URL" | awk '$1 == "shredd_transfer_memory_waits_total" {print $2}')
printf 'n=%s size=%sMiB puts %.2f s (peak %s MiB) gets %.2f s (peak %s MiB) waits %s failed %s load %s\n' \
  "$N" "$SIZE" "$(echo "$t1 - $t0" | bc)" "$put_hwm" "$(echo "$t3 - $t2" | bc)" "$(hwm)" "${waits:-n/a}" \
  "$(cat "$WORK/failed" 2>/dev/null | wc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
[ -s "$WORK/errors" ] && sort "$WORK/errors" | uniq -c | sort -rn | head -3
rm -rf "$WORK"
