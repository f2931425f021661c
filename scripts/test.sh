#!/usr/bin/env bash
# Sets up, builds and runs every test: the main suite (CPU tests, GPU tests
# that skip without a device, data, benchmark smoke and interop tests), then
# the Python package (tests/python.sh: built by pip into its own virtual
# environment, its tests, scikit-learn's checks and the example notebook), then
# the CPU suite under AddressSanitizer + UndefinedBehaviorSanitizer, then the
# fuzz targets for a bounded time. Every stage runs even after another fails,
# and the last lines are one summary of all of them (scripts/junit_summary.py,
# from ctest's JUnit reports), ending "N passed, N failed, N skipped". Exits
# non-zero when any stage fails.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$repo_root/scripts/setup.sh"

start=$(date +%s)
reports=$(mktemp -d)
trap 'rm -rf -- "$reports"' EXIT
stages=()
status=0

# Runs stage NAME's COMMAND..., which must pass --output-junit FILE on to ctest. A stage that
# fails before ctest writes its report (a build error) is listed with its exit code.
stage() {  # NAME COMMAND...
  local name=$1 rc=0 junit="$reports/$1.xml"
  shift
  echo "== stage $name"
  "$@" --output-junit "$junit" || rc=$?
  if [[ $rc != 0 ]]; then
    status=1
    echo "== stage $name failed (exit $rc)" >&2
  fi
  if [[ -s $junit ]]; then
    stages+=("$name=$junit")
  else
    stages+=("$name=!exit $rc before any test ran")
  fi
}

main_suite() {
  build && (cd "$repo_root" && ctest --preset "$preset" -j "$(nproc)" "$@")
}
stage main main_suite
stage python "$repo_root/tests/python.sh"
stage asan "$repo_root/tests/asan.sh"
stage fuzz "$repo_root/tests/fuzz.sh"

echo "test stages finished in $(( $(date +%s) - start )) s"
python3 "$repo_root/scripts/junit_summary.py" "${stages[@]}" || status=1
exit "$status"
