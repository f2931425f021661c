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

# The CUDA architecture of the first GPU that nvidia-smi lists (90 for compute capability
# 9.0); nothing where it lists none.
gpu_arch() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  local cap
  cap=$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
    head -n 1 | tr -d ' .') || return 0
  if [[ $cap =~ ^[0-9]+$ ]]; then echo "$cap"; fi
}

# Builds the mlptrain binary alone and sets trainer_bin to it. Where nvidia-smi lists a GPU
# and the CUDA toolkit is here, for that GPU's architecture only, in build-smARCH (the test
# command's build keeps the explicit list); elsewhere in the preset's folder.
build_trainer() {
  local arch dir=$build_dir configure=(--preset "$preset")
  arch=$( [ "$preset" = default ] && gpu_arch || true)
  if [ -n "$arch" ]; then
    dir="$repo_root/build-sm$arch"
    configure+=(-B "$dir" "-DCMAKE_CUDA_ARCHITECTURES=${arch}-real")
    echo "build: the trainer for this machine's GPU (sm_$arch) in ${dir#"$repo_root"/}"
  else
    echo "build: the trainer in ${dir#"$repo_root"/}" \
         "($( [ "$preset" = default ] && echo "CUDA architectures: the project's list; no GPU listed by nvidia-smi" || echo "CPU backend only"))"
  fi
  (cd "$repo_root" && cmake "${configure[@]}" >/dev/null &&
    cmake --build "$dir" --target mlptrain -j "$(nproc)")
  trainer_bin="$dir/mlptrain"
}
