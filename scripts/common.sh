# Shared by the scripts: repository root and the CMake preset to build.
# shellcheck shell=bash
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The CUDA backend is built whenever the toolkit is installed, GPU or not.
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  preset=default
  build_dir="$repo_root/build"
else
  preset=cpu
  build_dir="$repo_root/build-cpu"
  echo "note: no CUDA toolkit found; building the CPU backend only" >&2
fi

build() {
  (cd "$repo_root" && cmake --preset "$preset" >/dev/null && cmake --build --preset "$preset" -j "$(nproc)")
}
