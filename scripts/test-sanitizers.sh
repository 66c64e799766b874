#!/usr/bin/env bash
# Builds shredd with AddressSanitizer + UndefinedBehaviorSanitizer (CMake
# preset "asan", build dir build-asan/) and runs the whole test suite against
# the sanitized binaries: unit tests, the fuzz corpus replays, and the Python
# integration tests (CTest points SHREDD_BIN/SHREDCTL_BIN at build-asan/bin).
# Any ASan report, any undefined behaviour (-fno-sanitize-recover) and any
# leak at exit fails the test that hit it. LeakSanitizer suppressions, for
# third-party libraries only, are in tests/sanitizers/lsan.supp.
#
#   scripts/test-sanitizers.sh [ctest args, e.g. -R integration.test_store]
#
# Not part of .ci/run: it takes much longer than the normal suite (see
# docs/RELIABILITY.md for the measured time). TEST_JOBS (default 2) sets the
# ctest parallelism, BUILD_JOBS (default nproc) the build's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
cmake --preset asan >/dev/null
cmake --build --preset asan -j"${BUILD_JOBS:-$(nproc)}"

# Same values as the "asan" test preset in CMakePresets.json.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0"

cd build-asan
start=$(date +%s)
set +e
ctest --output-on-failure -j"${TEST_JOBS:-2}" --timeout 3600 "$@"
rc=$?
set -e
echo "test-sanitizers: ctest exit $rc after $(( $(date +%s) - start )) s (ASan+UBSan, build-asan/)" >&2
exit $rc
