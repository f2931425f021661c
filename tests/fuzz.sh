#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` presets: clang, ASan + UBSan, only the parsers) and
# runs each for a bounded time on a generated seed corpus plus the committed crash inputs
# (fuzz/regressions/). Fails on any crash, sanitizer report, leak, timeout or out-of-memory.
#
# Usage: tests/fuzz.sh [extra ctest arguments, e.g. -R fuzz_idx]
#   MLPTRAIN_FUZZ_SECONDS    how long each target runs (default 60)
#   MLPTRAIN_FUZZ_BUILD_DIR  build folder (default build-fuzz)
#   MLPTRAIN_JOBS            parallel build and fuzz jobs (default: all cores)
#
# A failing input is written to <build>/fuzz/<target>-crash-* (or -leak-, -timeout-, -oom-).
# Reproduce it with <build>/fuzz/<target> FILE, fix the parser, and keep the input as
# fuzz/regressions/<target>/<short-name> so that tests/test_fuzz_regressions.cpp replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${MLPTRAIN_FUZZ_BUILD_DIR:-build-fuzz}"
seconds="${MLPTRAIN_FUZZ_SECONDS:-60}"
jobs="${MLPTRAIN_JOBS:-$(nproc)}"

cmake --preset fuzz -B "$build_dir" -DMLPTRAIN_FUZZ_SECONDS="$seconds"
cmake --build "$build_dir" -j "$jobs"
if ! ctest --test-dir "$build_dir" -L fuzz --output-on-failure --no-tests=error -j "$jobs" \
        "$@"; then
    echo "fuzz: failing inputs:" >&2
    find "$build_dir/fuzz" -maxdepth 1 -type f \
        \( -name '*-crash-*' -o -name '*-leak-*' -o -name '*-timeout-*' -o -name '*-oom-*' \) \
        -print >&2
    exit 1
fi
