#!/usr/bin/env bash
# Quick start: install what is missing, build, and run shredd in the
# foreground on its embedded defaults:
#   data   ./var/shredd/data
#   vault  ./var/shredd/vault   (file vault; outside the data dir)
#   socket unix:./var/shredd/shredd.sock
# Extra arguments go to shredd (see build/bin/shredd --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
mkdir -p var/shredd
echo "shredd: try 'build/bin/shredctl put FILE' in another terminal (Ctrl-C stops the daemon)" >&2
exec build/bin/shredd "$@"
