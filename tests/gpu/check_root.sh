#!/usr/bin/env bash
# Shows that the GPU bundle (tests/gpu/bundle.sh) needs nothing of this machine: its
# binaries run in a minimal Debian root (debootstrap --variant=minbase, a newer release
# than the build machine's) that has none of our packages, with nothing but the bundle's
# lib/ on LD_LIBRARY_PATH. CTest test bundle.minimal_root (label bundle); run by
# tests/bundle.sh.
#
#   tests/gpu/check_root.sh [BUNDLE_DIR]        (default: .gpu-bundle)
#
# In the root, in this order; any failure fails the script and names what failed:
#   1. none of the libraries the bundle carries is installed in the root;
#   2. ldd of every binary with LD_LIBRARY_PATH=<bundle>/lib: every library resolves to
#      the bundle or is the root's glibc, libstdc++ or libgcc_s, except cuBLAS and
#      cuBLASLt, which only the GPU machine's CUDA toolkit provides (a missing library
#      other than those is a failure that names it);
#   3. with those two added from a separate folder, /opt/device-cuda/lib (copied from this
#      machine's toolkit, standing for the GPU machine's): the CPU test suite,
#      mlptrain train --device cpu --epochs 1 on the bundle's MNIST, mlptrain-bench
#      and the CPU kernel benchmark on a few samples, the GPU suite (skips, no GPU here),
#      the GPU suite with MLPTRAIN_REQUIRE_GPU=1 (must fail with the reason) and run.sh
#      (must stop at once: no NVIDIA GPU).
#
# Needs root (chroot; sudo otherwise) and debootstrap (tests/bundle.sh installs it); the
# root is made once (about 80 s and 200 MB, from the Debian archive) and cached in
# .cache/minroot-SUITE (git-ignored; MLPTRAIN_ROOT_CACHE to put it elsewhere).
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/../.." && pwd)
bundle=$(cd "${1:-$repo_root/.gpu-bundle}" 2>/dev/null && pwd) ||
  { echo "check_root.sh: no bundle at ${1:-$repo_root/.gpu-bundle}; make one with tests/gpu/bundle.sh" >&2; exit 1; }
[ -f "$bundle/payload.tar.gz" ] || { echo "check_root.sh: $bundle has no payload.tar.gz" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "check_root.sh: needs root (chroot) or sudo" >&2; exit 1; }
  exec sudo -E bash "$0" "$bundle"
fi

suite=${MLPTRAIN_ROOT_SUITE:-trixie}
root=${MLPTRAIN_ROOT_CACHE:-$repo_root/.cache/minroot-$suite}
fail() { echo "check_root.sh: FAIL: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }

# ---------------------------------------------------------------- the minimal root
if [ ! -f "$root/.mlptrain-root-complete" ]; then
  command -v debootstrap >/dev/null 2>&1 ||
    fail "debootstrap is not installed (tests/bundle.sh installs it; or apt-get install debootstrap)"
  step "making a minimal $suite root in $root (debootstrap --variant=minbase)"
  rm -rf "$root.tmp"
  mkdir -p "$(dirname "$root")"
  # debootstrap's own default mirror unless MLPTRAIN_DEBIAN_MIRROR names one.
  debootstrap --variant=minbase "$suite" "$root.tmp" ${MLPTRAIN_DEBIAN_MIRROR:+"$MLPTRAIN_DEBIAN_MIRROR"} \
    >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; fail "debootstrap $suite failed (log: $root.log)"; }
  rm -rf "$root"
  mv "$root.tmp" "$root"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$root/.mlptrain-root-complete"
fi
echo "root: $root ($(. "$root/etc/os-release" && echo "$PRETTY_NAME"), $(chroot "$root" ldd --version | head -n 1))"

# Commands in the root: a fresh mount and PID namespace with its own /proc where this
# machine allows one, else plain chroot (nothing here needs /proc).
in_root() {
  if unshare --mount --pid --fork --mount-proc="$root/proc" true 2>/dev/null; then
    unshare --mount --pid --fork --mount-proc="$root/proc" chroot "$root" "$@"
  else
    chroot "$root" "$@"
  fi
}
clean_env=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 TMPDIR=/tmp)

# ---------------------------------------------------------------- the bundle in it
b=/opt/mlptrain-bundle
rm -rf "${root:?}$b" "$root/tmp/"*
mkdir -p "$root$b"
tar -xzf "$bundle/payload.tar.gz" -C "$root$b"
cp "$bundle/run.sh" "$root$b/run.sh"
echo "bundle: $bundle ($(head -n 1 "$root$b/manifest.txt"), $(du -sb "$bundle" | cut -f1) bytes)"

# The CPU suite reads a few paths compiled in at build time: the source tree's
# fuzz/regressions and the mlptrain binary it spawns. They are made in the root at the
# same paths, from the bundle's binary and the sources' committed files.
src_dir=$(sed -n 's/^compiled-in paths: MLPTRAIN_SOURCE_DIR=\([^,]*\), .*/\1/p' "$root$b/manifest.txt")
bin_path=$(sed -n 's/^compiled-in paths: .*MLPTRAIN_BINARY=\([^ ]*\) .*/\1/p' "$root$b/manifest.txt")
[ -n "$src_dir" ] && [ -n "$bin_path" ] || fail "the manifest names no compiled-in paths"
mkdir -p "$root$src_dir/fuzz" "$root$(dirname "$bin_path")"
cp -r "$repo_root/fuzz/regressions" "$root$src_dir/fuzz/"
ln -sf "$b/bin/mlptrain" "$root$bin_path"

# ---------------------------------------------------------------- 1. nothing of ours there
step "1. the root has none of the libraries the bundle carries"
for lib in "$root$b"/lib/*; do
  name=$(basename "$lib")
  found=$(find "$root/usr/lib" "$root/lib" -name "$name" 2>/dev/null | head -n 1 || true)
  if [ -n "$found" ]; then echo "   root has $name too (${found#"$root"}); the bundle's comes first"
  else echo "   $name: bundle only"; fi
done
if in_root dpkg-query -W -f='${Package}\n' 2>/dev/null | grep -E -- '-dev$|^libopenblas|^libgtest|^libbenchmark|^libpng|^libgomp|^libgfortran'; then
  fail "the root has one of our packages (above)"
fi
echo "   no -dev package, OpenBLAS, GoogleTest, benchmark, libpng, libgomp or libgfortran installed"

# ---------------------------------------------------------------- 2. ldd
step "2. ldd of every binary with LD_LIBRARY_PATH=$b/lib"
expected_missing='^(libcublas\.so\.13|libcublasLt\.so\.13)$'
root_ok='^(linux-vdso|ld-linux-x86-64|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libstdc\+\+|libgcc_s)\.so'
problems=()
for bin in "$root$b"/bin/*; do
  name=$(basename "$bin")
  out=$(in_root "${clean_env[@]}" LD_LIBRARY_PATH="$b/lib" ldd "$b/bin/$name" 2>&1) || true
  cuda_missing=()
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then
      if [[ "$soname" =~ $expected_missing ]]; then cuda_missing+=("$soname")
      else problems+=("$name needs $soname: not found in the root with only the bundle's lib/"); fi
    elif [[ "$path" != "$b/lib/"* ]] && ! [[ "$soname" =~ $root_ok ]]; then
      problems+=("$name loads $soname from the root's $path, not from the bundle")
    fi
  done <<<"$out"
  if [ ${#cuda_missing[@]} -eq 0 ]; then echo "   $name: every library found"
  else echo "   $name: every library found but ${cuda_missing[*]} (CUDA's: the GPU machine's toolkit)"; fi
done
[ ${#problems[@]} -eq 0 ] || fail "$(printf '%s; ' "${problems[@]}")"

# ---------------------------------------------------------------- 3. running them
step "3. the binaries run (cuBLAS from /opt/device-cuda/lib, standing for the GPU machine's toolkit)"
mkdir -p "$root/opt/device-cuda/lib"
host_ldd=$(ldd "$root$b/bin/mlptrain")
for so in libcublas.so.13 libcublasLt.so.13; do
  src=$(awk -v so="$so" '$1 == so && $2 == "=>" { print $3 }' <<<"$host_ldd")
  [ -n "$src" ] && [ -e "$src" ] || fail "this machine has no $so to stand for the GPU machine's"
  # Kept between runs (cuBLASLt is half a gigabyte); copied again when it changed.
  [ "$(stat -L -c %s "$src")" = "$(stat -c %s "$root/opt/device-cuda/lib/$so" 2>/dev/null)" ] ||
    cp -L "$src" "$root/opt/device-cuda/lib/$so"
done
run_env=("${clean_env[@]}" LD_LIBRARY_PATH="$b/lib:/opt/device-cuda/lib"
         MLPTRAIN_MNIST_DIR="$b/data/mnist" MLPTRAIN_DATA_DIR=/nonexistent)
# The whole CPU suite (about 10 s) but two tests that need what a minimal root lacks by
# design: Debian's Fashion-MNIST package, and a mount namespace, which a chrooted process
# may not make. MLPTRAIN_ROOT_GTEST_FILTER replaces the filter.
filter=${MLPTRAIN_ROOT_GTEST_FILTER:--EndToEnd.FashionMnistDefaultRunReaches86Percent:CheckpointWrites.FullFileSystemKeepsPrevious}
t0=$(date +%s)
in_root "${run_env[@]}" "$b/bin/mlptrain_tests" --gtest_filter="$filter" --gtest_brief=1 \
  >"$root/tmp/cpu_tests.log" 2>&1 || { tail -n 40 "$root/tmp/cpu_tests.log"; fail "mlptrain_tests --gtest_filter=$filter failed in the root"; }
tail -n 3 "$root/tmp/cpu_tests.log" | sed 's/^/   /'
echo "   mlptrain_tests (filter $filter): passed in $(( $(date +%s) - t0 )) s"

out=$(in_root "${run_env[@]}" "$b/bin/mlptrain" train --data "$b/data/mnist" --device cpu --epochs 1 2>&1) ||
  { echo "$out"; fail "mlptrain train --device cpu --epochs 1 failed in the root"; }
echo "$out" | tail -n 2 | sed 's/^/   /'
acc=$(grep -o 'final test_acc [0-9]*' <<<"$out" | grep -o '[0-9]*$' || echo 0)
[ "$acc" -ge 90 ] || fail "mlptrain train --epochs 1 on MNIST reached ${acc}% (expected >= 90%)"

in_root "${run_env[@]}" "$b/bin/mlptrain-bench" --data "$b/data/mnist" --device cpu \
  --train-samples 2000 --test-samples 500 --epochs 2 --batch-sizes 64 >"$root/tmp/bench.log" 2>&1 ||
  { cat "$root/tmp/bench.log"; fail "mlptrain-bench --device cpu failed in the root"; }
echo "   mlptrain-bench --device cpu: ran"
in_root "${run_env[@]}" "$b/bin/mlptrain-bench-kernels-cpu" --benchmark_filter='/b64/' \
  --benchmark_min_time=0.001 >"$root/tmp/kernels_cpu.log" 2>&1 ||
  { cat "$root/tmp/kernels_cpu.log"; fail "mlptrain-bench-kernels-cpu failed in the root"; }
! grep -q 'ERROR OCCURRED' "$root/tmp/kernels_cpu.log" ||
  { cat "$root/tmp/kernels_cpu.log"; fail "a CPU kernel case failed its check in the root"; }
echo "   mlptrain-bench-kernels-cpu (batch 64 cases): ran, every check passed"

out=$(in_root "${run_env[@]}" "$b/bin/mlptrain_gpu_tests" --gtest_brief=1 2>&1) ||
  { echo "$out"; fail "mlptrain_gpu_tests without a GPU did not skip"; }
echo "   mlptrain_gpu_tests without a GPU: exit 0, $(sed -n 's/^\[  SKIPPED \] \([0-9]* tests\{0,1\}\)\.$/\1 skipped/p' <<<"$out" | head -n 1)"
if out=$(in_root "${run_env[@]}" MLPTRAIN_REQUIRE_GPU=1 "$b/bin/mlptrain_gpu_tests" 2>&1); then
  fail "MLPTRAIN_REQUIRE_GPU=1 mlptrain_gpu_tests passed without a GPU"
fi
echo "   MLPTRAIN_REQUIRE_GPU=1 mlptrain_gpu_tests: failed, as it must: $(grep -m 1 -o 'no usable CUDA device although.*' <<<"$out")"
if out=$(in_root "${clean_env[@]}" bash "$b/run.sh" 2>&1); then fail "run.sh passed without a GPU"; fi
grep -q 'no NVIDIA GPU' <<<"$out" || { echo "$out"; fail "run.sh without a GPU did not say 'no NVIDIA GPU'"; }
echo "   run.sh: $out"

# run.sh itself, past the GPU check: with a stand-in nvidia-smi that lists a GPU, and cuBLAS
# in /usr/local/cuda/lib64 (not where the binaries' RUNPATH looks), it must unpack the bundle
# with the root's own tools, find cuBLAS there, run the GPU suite (which fails: the GPU is not
# real), and write its four files and the summary table.
mkdir -p "$root/usr/local/bin" "$root/usr/local/cuda"
printf '#!/bin/sh\ncase "$1" in -L) echo "GPU 0: stand-in for check_root.sh (UUID: GPU-0)" ;; --query-gpu=*) echo "stand-in, 9.0, 0, 0 MiB" ;; *) echo "stand-in nvidia-smi" ;; esac\n' \
  >"$root/usr/local/bin/nvidia-smi"
chmod +x "$root/usr/local/bin/nvidia-smi"
ln -sfn /opt/device-cuda/lib "$root/usr/local/cuda/lib64"
rm -rf "$root/tmp/gpu-out"
mkdir -p "$root/tmp/gpu-out"
set +e
out=$(in_root "${clean_env[@]}" OUT=/tmp/gpu-out MLPTRAIN_GPU_STAGES=gpu-tests bash "$b/run.sh" 2>&1)
rc=$?
set -e
rm -f "$root/usr/local/bin/nvidia-smi" "$root/usr/local/cuda/lib64"
files=$(cd "$root/tmp/gpu-out" && ls | tr '\n' ' ')
if [ "$rc" -eq 0 ] || [ "$files" != "logs.tar.gz results.json run.log summary.txt " ] ||
   ! grep -q '^gpu-tests  *FAIL' <<<"$out" || ! grep -q 'using /usr/local/cuda/lib64' <<<"$out"; then
  echo "$out" | tail -n 30
  fail "run.sh with a stand-in GPU: exit $rc, files '$files' (expected a FAIL line for gpu-tests, cuBLAS from /usr/local/cuda/lib64 and four files)"
fi
echo "   run.sh with a stand-in GPU: exit $rc; wrote $files; last lines:"
tail -n 4 <<<"$out" | sed 's/^/     /'
echo
echo "check_root.sh: the bundle's binaries run in a minimal $suite root with only its own libraries and CUDA's"
