#!/usr/bin/env bash
# make-corpus.sh [--check] FUZZ_SEEDS_BINARY
# Writes the seed inputs (fuzz_seeds) into fuzz/corpus/<target>/seed-*,
# replacing older seed-* files; other files there are the corpus grown by
# fuzzing (minimised with -merge=1) and are kept. With --check, changes
# nothing and fails if the committed seed-* files differ from what the tool
# writes today (the suite's fuzz.seeds_up_to_date test).
set -euo pipefail
check=0
if [[ ${1:-} == --check ]]; then check=1; shift; fi
seeds_bin=${1:?usage: make-corpus.sh [--check] FUZZ_SEEDS_BINARY}
corpus=$(cd "$(dirname "$0")" && pwd)/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$seeds_bin" "$tmp" >/dev/null
if ((check)); then
  status=0
  for dir in "$tmp"/*/; do
    t=$(basename "$dir")
    if ! diff -r <(cd "$tmp/$t" && ls) <(cd "$corpus/$t" 2>/dev/null && ls seed-* 2>/dev/null) >/dev/null ||
       ! (cd "$tmp/$t" && for f in *; do cmp -s "$f" "$corpus/$t/$f" || exit 1; done); then
      echo "make-corpus: fuzz/corpus/$t seed files are stale; run fuzz/make-corpus.sh <build>/bin/fuzz_seeds" >&2
      status=1
    fi
  done
  ((status == 0)) && echo "make-corpus: seed files up to date ($(find "$tmp" -type f | wc -l) files)"
  exit $status
fi
for dir in "$tmp"/*/; do
  t=$(basename "$dir")
  mkdir -p "$corpus/$t"
  rm -f "$corpus/$t"/seed-*
  cp "$dir"/* "$corpus/$t/"
done
echo "make-corpus: wrote $(find "$tmp" -type f | wc -l) seed files under $corpus"
