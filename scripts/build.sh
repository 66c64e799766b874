#!/usr/bin/env bash
# Configures and builds shredd into ./build (binaries in build/bin/).
# BUILD_TYPE (default RelWithDebInfo) and extra CMake args may be given:
#   BUILD_TYPE=Release scripts/build.sh -DSHREDD_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
