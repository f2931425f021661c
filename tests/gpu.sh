#!/usr/bin/env bash
# The GPU checks, for a machine with an NVIDIA GPU: builds for that card's
# architecture (read from nvidia-smi, stated explicitly, never "native"),
# runs the GPU suite, then compute-sanitizer memcheck, racecheck and
# initcheck on a short training run, then the default training.
#   tests/gpu.sh [DATA_DIR]     (default: MNIST mirror, else Fashion-MNIST)
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo_root"

cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')
[ -n "$cap" ] || { echo "tests/gpu.sh: nvidia-smi reported no GPU" >&2; exit 1; }
build_dir=build-gpu-sm$cap
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$cap" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" -L gpu --output-on-failure

data=${1:-}
if [ -z "$data" ]; then
  if [ -f ../shared/data/mnist/train-images-idx3-ubyte.gz ]; then data=../shared/data/mnist
  else data=/usr/share/datasets/fashion-mnist; fi
fi
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
short=(train --data "$data" --device cuda --epochs 2 --train-samples 2048 --test-samples 1000)
for tool in memcheck racecheck initcheck; do
  echo "== compute-sanitizer --tool $tool"
  "$sanitizer" --tool "$tool" --error-exitcode 1 "$build_dir/mlptrain" "${short[@]}"
done
echo "== compute-sanitizer memcheck, stream path (--no-graph)"
"$sanitizer" --tool memcheck --error-exitcode 1 "$build_dir/mlptrain" "${short[@]}" --no-graph

echo "== default training on $data"
"$build_dir/mlptrain" train --data "$data" --device cuda
