#!/usr/bin/env bash
# Installs what mlptrain needs to build and test, from Debian's packages.
# Safe to run again: it installs only what is missing. The CUDA toolkit is
# not a Debian package here; when /usr/local/cuda (or nvcc on PATH) is absent
# the scripts build the CPU backend only.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  zlib1g-dev libdnnl2 libopenblas-openmp-dev libcli11-dev nlohmann-json3-dev libpng-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  python3 python3-venv python3-dev
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "setup: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "setup: done"
