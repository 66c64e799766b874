#!/bin/bash
# Download A/B: one daemon per build, FILE put once into each, then ROUNDS
# rounds of `shredctl get` (to /dev/null, then to a file beside FILE),
# interleaved build by build; prints wall seconds and the daemon's CPU ticks
# per get. shredctl runs with GLIBC_TUNABLES that stop glibc trimming its heap
# (set GET_AB_TUNABLES= to run it as built). docs/PERFORMANCE.md, "Issue 17,
# part 4". usage: bench/get_ab.sh FILE ROUNDS LABEL=BINDIR [LABEL=BINDIR...]
set -euo pipefail
F=$1 R=$2
shift 2
WORK=$(mktemp -d "$(dirname "$F")/get_ab.XXXXXX")
TUN=${GET_AB_TUNABLES-glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864}
D=sha256:$(sha256sum "$F" | cut -d' ' -f1)
cleanup() {
  for p in "$WORK"/*/pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for lb in "$@"; do
  l=${lb%%=*} b=${lb#*=} dir=$WORK/${lb%%=*}
  mkdir -p "$dir"
  "$b/shredd" --data-dir "$dir/data" --vault "file:$dir/vault" --listen "unix:$dir/s.sock" >/dev/null 2>"$dir/log" &
  echo $! >"$dir/pid"
  for _ in $(seq 400); do
    [ -S "$dir/s.sock" ] && "$b/shredctl" --server "unix:$dir/s.sock" -q ls --limit 1 >/dev/null 2>&1 && break
    sleep 0.05
  done
  "$b/shredctl" --server "unix:$dir/s.sock" -q put "$F"
done
for i in $(seq "$R"); do
  for lb in "$@"; do
    l=${lb%%=*} b=${lb#*=} dir=$WORK/${lb%%=*}
    ctl=("$b/shredctl" --server "unix:$dir/s.sock" -q get "$D")
    p=$(cat "$dir/pid")
    c0=$(ticks "$p") t0=$(date +%s.%N)
    GLIBC_TUNABLES=$TUN "${ctl[@]}" >/dev/null
    c1=$(ticks "$p") t1=$(date +%s.%N)
    GLIBC_TUNABLES=$TUN "${ctl[@]}" -o "$WORK/out"
    c2=$(ticks "$p") t2=$(date +%s.%N)
    cmp -s "$F" "$WORK/out" || { echo "download differs" >&2; exit 1; }
    rm -f "$WORK/out"
    printf '%s %s: /dev/null %.3f s (daemon %d ticks), file %.3f s (daemon %d ticks), load %s\n' "$i" "$l" \
      "$(echo "$t1 - $t0" | bc)" $((c1 - c0)) "$(echo "$t2 - $t1" | bc)" $((c2 - c1)) "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
