#!/usr/bin/env bash
# build-clang-fuzzers.sh SOURCE_DIR BUILD_DIR CLANG CLANGXX
# Configures SOURCE_DIR with clang and SHREDD_FUZZ=ON into BUILD_DIR and
# builds only the fuzz targets (the shredd_formats library, daemon/crypto/digest.cc
# and fuzz/*.cc). Used by the suite's fuzz.libfuzzer.build test; incremental.
set -euo pipefail
src=$1 dir=$2 cc=$3 cxx=$4
if [[ ! -f $dir/build.ninja ]]; then
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
    -DSHREDD_FUZZ=ON -DSHREDD_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$dir" --target fuzz_all -j"${SHREDD_FUZZ_BUILD_JOBS:-2}"
