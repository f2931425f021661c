#!/usr/bin/env bash
# Create (or reuse) the virtual environment that tools/*.py and the interop tests run in.
#
#   tools/setup_venv.sh          # prints the environment's python on the last line
#
# Where:   $MLPTRAIN_TOOLS_VENV, else .venv-tools at the repository root.
# Python:  $PYTHON, else python3 (3.10 or newer).
# Packages come from PyPI by the pins in tools/requirements.txt; pip's own settings and PIP_*
# variables apply (e.g. PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR on an offline machine).
# A finished install leaves a stamp holding the hash of requirements.txt, so a second run with
# the same pins only checks that the packages import (about a second). Any failure exits non-zero
# and says why: the interop tests fail rather than skip when their environment cannot be made.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${MLPTRAIN_TOOLS_VENV:-$root/.venv-tools}"
python="${PYTHON:-python3}"
requirements="$here/requirements.txt"
stamp="$venv/.mlptrain-requirements.sha256"

say() { echo "setup_venv: $*" >&2; }
fail() { echo "setup_venv: error: $*" >&2; exit 1; }

case "${1:-}" in
  -h|--help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0 ;;
  "") ;;
  *) fail "no arguments expected (got '$1')" ;;
esac

# Imports every package the tools use; run after an install and on every cached reuse.
imports_work() {
  "$venv/bin/python" -c 'import numpy, safetensors.numpy, onnx, onnxruntime, matplotlib' 2>&1
}

# One installer at a time (CTest may start several tests that need the environment).
mkdir -p "$venv"
exec 9>"$venv/.lock"
flock 9

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  if msg="$(imports_work)"; then
    echo "$venv/bin/python"
    exit 0
  fi
  say "cached environment $venv is broken ($msg); reinstalling"
fi

if [ ! -x "$venv/bin/python" ]; then
  command -v "$python" >/dev/null || fail "no '$python' on PATH (set PYTHON)"
  say "creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv" ||
    fail "'$python -m venv $venv' failed (on Debian: apt-get install python3-venv)"
fi
rm -f "$stamp"
say "pip install -r $requirements"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements" ||
  fail "pip install -r $requirements into $venv failed (is PyPI reachable?)"
msg="$(imports_work)" || fail "packages installed but do not import: $msg"
echo "$want" > "$stamp"
say "ready: $venv ($(du -sh "$venv" | cut -f1))"
echo "$venv/bin/python"
