#!/usr/bin/env bash
# The GPU checks on a machine with an NVIDIA GPU and this project's packages (a CI runner):
# makes the bundle for that card's architecture, read from nvidia-smi (tests/gpu/bundle.sh,
# into .gpu-bundle), and runs it (tests/gpu/run.sh): the GPU suite with
# MLPTRAIN_REQUIRE_GPU=1, compute-sanitizer memcheck, racecheck, initcheck and synccheck,
# the default MNIST training, the benchmarks and the PyTorch baselines, with a summary
# table last and logs in out/gpu-DATE/ (or $OUT). A GPU machine without our packages gets
# a bundle made elsewhere instead (docs/PERFORMANCE.md, "Running the GPU check").
#
#   tests/gpu.sh
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo_root"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "tests/gpu.sh: no NVIDIA GPU: nvidia-smi is not installed on this machine; nothing was run" >&2
  exit 1
fi
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)
if ! [[ "$cap" =~ ^[0-9]+$ ]]; then
  echo "tests/gpu.sh: no NVIDIA GPU: nvidia-smi lists none${cap:+ ($cap)}; nothing was run" >&2
  exit 1
fi
tests/gpu/bundle.sh "$cap"
# run.sh's default budget fits a short lease on an H200; a CI runner's card may be slower.
MLPTRAIN_GPU_BUDGET_S=${MLPTRAIN_GPU_BUDGET_S:-1800} exec bash .gpu-bundle/run.sh
