#!/usr/bin/env bash
# run-fuzzer.sh FUZZER CORPUS_DIR SECONDS ARTIFACT_DIR [libFuzzer flags...]
# Fuzzes for SECONDS starting from the committed CORPUS_DIR without writing
# into it (new inputs go to a temp dir that is removed afterwards). A crash,
# leak, timeout or property violation fails (exit != 0) and leaves the
# reproducer in ARTIFACT_DIR. Prints libFuzzer's final stats line.
set -euo pipefail
fuzzer=$1 corpus=$2 seconds=$3 artifacts=$4
shift 4
[[ -x $fuzzer ]] || { echo "run-fuzzer: $fuzzer not built" >&2; exit 2; }
[[ -n $(ls -A "$corpus" 2>/dev/null) ]] || { echo "run-fuzzer: empty corpus $corpus" >&2; exit 2; }
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log
name=$(basename "$fuzzer")
set +e
"$fuzzer" "$work" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$@" >"$log" 2>&1
rc=$?
set -e
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE)' "$log" || true
if ((rc != 0)); then
  tail -60 "$log" >&2
  echo "run-fuzzer: $name failed (exit $rc); reproducer in $artifacts/" >&2
fi
exit $rc
