#!/usr/bin/env bash
# campaign.sh [BUILD_DIR] [SECONDS_PER_TARGET] [TARGET...]
# A longer fuzzing campaign (docs/RELIABILITY.md): runs each libFuzzer target
# (default: all in BUILD_DIR/bin, BUILD_DIR default build-fuzz) for SECONDS
# (default 180) on a scratch copy of its corpus, then minimises what it found
# into fuzz/corpus/<target>: the seed-* and regress-* files are kept, plus the
# fewest inputs that cover every edge reached (-set_cover_merge=1
# -use_counters=0, libFuzzer's merge), so the committed corpus stays small.
# SECONDS=0 only re-minimises the committed corpus. Prints one line per target:
# execs, exec/s, coverage, corpus files before/after, and any crash.
# Crash reproducers go to fuzz-artifacts/ in BUILD_DIR; the script exits 1 if
# any target crashed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-fuzz}
seconds=${2:-180}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
if ((${#targets[@]} == 0)); then
  for b in "$build"/bin/fuzz_*; do
    t=${b##*/fuzz_}
    [[ $t == seeds ]] || targets+=("$t")
  done
fi
art=$build/fuzz-artifacts
mkdir -p "$art"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for t in "${targets[@]}"; do
  bin=$build/bin/fuzz_$t
  corpus=$here/corpus/$t
  before=$(ls "$corpus" | wc -l)
  mkdir -p "$work/$t"
  cp "$corpus"/* "$work/$t"/
  rc=0
  : >"$work/$t.log"
  if ((seconds > 0)); then
    set +e
    "$bin" "$work/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$art/fuzz_$t-" >"$work/$t.log" 2>&1
    rc=$?
    set -e
  fi
  # Minimise: keep the seeds and regression inputs, add the fewest inputs
  # that cover every edge reached (set cover, edges without hit counts).
  mkdir -p "$work/$t.min"
  cp "$corpus"/seed-* "$work/$t.min"/
  cp "$corpus"/regress-* "$work/$t.min"/ 2>/dev/null || true
  "$bin" -set_cover_merge=1 -use_counters=0 "$work/$t.min" "$corpus" "$work/$t" >"$work/$t.merge.log" 2>&1 || true
  if [[ -n $(ls -A "$work/$t.min") ]]; then
    rm -f "$corpus"/*
    cp "$work/$t.min"/* "$corpus"/
  fi
  after=$(ls "$corpus" | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  rate=$(grep -o 'exec/s: [0-9]*' "$work/$t.log" | tail -1 | grep -o '[0-9]*' || true)
  cov=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -1 | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
  size=$(du -sk "$corpus" | cut -f1)
  status=ok
  if ((rc != 0)); then
    status="CRASH (exit $rc, see $art)"
    failed=1
    grep -E 'ERROR|runtime error|violated' "$work/$t.log" | head -3 >&2
  fi
  printf '%-12s %4ss execs %-10s exec/s %-7s cov %-6s corpus %s -> %s files (%s KiB)  %s\n' \
    "$t" "$seconds" "${execs:--}" "${rate:--}" "${cov:--}" "$before" "$after" "$size" "$status"
done
exit $failed
