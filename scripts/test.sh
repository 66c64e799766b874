#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit tests
# and integration tests against the real daemon), two jobs at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j"${TEST_JOBS:-2}" --timeout 1200 "$@"
