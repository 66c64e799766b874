#!/usr/bin/env bash
# Formats every tracked C++ file with clang-format (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z '*.cc' '*.h' | xargs -0 clang-format -i
