#!/usr/bin/env bash
# Makes the GPU bundle and proves it self-contained: tests/gpu/bundle.sh [ARCH], then the
# CTest test bundle.minimal_root (label bundle; tests/gpu/check_root.sh), which runs the
# bundle's binaries in a minimal Debian root with nothing but the bundle's libraries.
#
#   tests/bundle.sh [ARCH]      (default 90; needs root or sudo, the CUDA toolkit, MNIST in
#                                ../shared/data/mnist, and the Debian archive the first time)
#
# Not part of scripts/test.sh: a second CUDA build (about 4 minutes on 2 cores) and the
# first debootstrap (about 80 s, network) would double the suite's time, and it needs the
# MNIST mirror folder. Installs debootstrap when it is missing, as scripts/setup.sh does
# for the rest.
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-90}

if ! command -v debootstrap >/dev/null 2>&1; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "tests/bundle.sh: installing debootstrap"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    debootstrap >/dev/null
fi

"$repo_root/tests/gpu/bundle.sh" "$arch"
ctest --test-dir "$repo_root/build-bundle-sm$arch" -L bundle --output-on-failure
