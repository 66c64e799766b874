#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) over the daemon, client and formats sources,
# with the compile commands of build/ (configured by scripts/build.sh).
#   scripts/tidy.sh [FILE...]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f build/compile_commands.json ]] || { echo "build/compile_commands.json missing: run scripts/build.sh"; exit 1; }
if (($#)); then files=("$@"); else mapfile -t files < <(git ls-files 'daemon/*.cc' 'client/*.cc' 'formats/*.cc'); fi
clang-tidy -p build --quiet "${files[@]}"
