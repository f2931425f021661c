#!/usr/bin/env bash
# Sets up, builds and runs every test: the main suite (CPU tests, GPU tests
# that skip without a device, benchmark smoke and interop tests), then the
# CPU suite under AddressSanitizer + UndefinedBehaviorSanitizer, then the
# fuzz targets for a bounded time. Exits non-zero on any failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$repo_root/scripts/setup.sh"

start=$(date +%s)
build
(cd "$repo_root" && ctest --preset "$preset" -j "$(nproc)")
"$repo_root/tests/asan.sh"
"$repo_root/tests/fuzz.sh"
echo "all test stages passed in $(( $(date +%s) - start )) s"
