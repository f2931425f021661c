#!/usr/bin/env bash
# Builds the CPU code and tests with AddressSanitizer + UndefinedBehaviorSanitizer (the `asan`
# presets in CMakePresets.json) and runs the whole CPU suite under them. Any sanitizer report
# aborts its test, so the script fails on the first memory error, leak or undefined behaviour.
#
# The preset adds -Wno-maybe-uninitialized: with -fsanitize, GCC 12 reports false positives in
# libstdc++'s <regex>; the ordinary builds keep the warning.
#
# Usage: tests/asan.sh [extra ctest arguments, e.g. -R Idx]
#   MLPTRAIN_ASAN_BUILD_DIR  build folder (default build-asan)
#   MLPTRAIN_JOBS            parallel build and test jobs (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${MLPTRAIN_ASAN_BUILD_DIR:-build-asan}"
jobs="${MLPTRAIN_JOBS:-$(nproc)}"

# The same options as the asan test preset; ctest --preset would ignore --test-dir.
asan_options=detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1
asan_options+=:detect_stack_use_after_return=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-$asan_options}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# OpenBLAS, not oneDNN, for the GEMMs (host/cpu/gemm_library.hpp): LeakSanitizer's thread
# tracer (GCC 12's) crashes reading the thread-local block of a dlopen'ed oneDNN ("DTLS ...
# Tracer caught signal 11") after a test has passed; OpenBLAS has none.
export MLPTRAIN_BLAS="${MLPTRAIN_BLAS:-libopenblas.so.0}"

cmake --preset asan -B "$build_dir"
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" "$@"
