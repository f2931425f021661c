#!/usr/bin/env bash
# Runs a Python script with the tools' environment (tools/setup_venv.sh, cached after the first
# run): tests/interop/run_python.sh SCRIPT ARGS...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$("$root/tools/setup_venv.sh")"
exec "$python" "$@"
