#!/usr/bin/env bash
# Makes the bundle that the GPU check runs from on a machine without our packages
# (docs/PERFORMANCE.md, "Running the GPU check"):
#
#   tests/gpu/bundle.sh [ARCH] [--out DIR]
#
# ARCH is one CUDA architecture, default 90 (H100, H200). It builds Release for that
# architecture only ("ARCH-real": machine code, no PTX; never "native") in its own build
# folder build-bundle-smARCH, with the CUDA runtime linked statically, and collects into
# DIR (default .gpu-bundle in the repository root, git-ignored):
#
#   run.sh        tests/gpu/run.sh, the one command to run there
#   manifest.txt  commit, date, architecture, build flags, sizes, newest glibc symbol needed
#   payload.tar.gz, holding bin/ (mlptrain, mlptrain_gpu_tests, mlptrain_tests,
#                 mlptrain-bench, mlptrain-bench-kernels, mlptrain-bench-kernels-cpu),
#                 lib/ (every shared library they load but glibc's, libstdc++, libgcc_s and
#                 CUDA's own, resolved with ldd, and libopenblas.so.0, the GEMM library
#                 the CPU backend loads at run time where oneDNN is absent, with its
#                 own), baselines/ (the Python baselines and compare_table.py),
#                 data/mnist/ (from ../shared/data/mnist, else data/mnist, which
#                 data/fetch mnist fills), run.sh, figures.py and the manifest
#
# cuBLAS and cuBLASLt are not in it: they come from the GPU machine's CUDA toolkit, and
# run.sh says which path they were loaded from. What travels must stay under 48 MiB.
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/../.." && pwd)

arch=90
out=$repo_root/.gpu-bundle
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "bundle.sh: --out needs a folder" >&2; exit 2; }; out=$2; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) arch=$1; shift ;;
    *) echo "bundle.sh: unknown argument '$1' (tests/gpu/bundle.sh [ARCH] [--out DIR])" >&2; exit 2 ;;
  esac
done
[[ "$arch" =~ ^[0-9]{2,3}[af]?$ ]] || { echo "bundle.sh: ARCH $arch: want e.g. 90, 90a or 100" >&2; exit 2; }
limit_bytes=$(( 48 * 1024 * 1024 ))

nvcc=/usr/local/cuda/bin/nvcc
command -v nvcc >/dev/null 2>&1 && nvcc=$(command -v nvcc)
[ -x "$nvcc" ] || { echo "bundle.sh: no CUDA toolkit (nvcc) here; the bundle needs one to build" >&2; exit 1; }
mnist=$repo_root/../shared/data/mnist
[ -d "$mnist" ] || mnist=$repo_root/data/mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -e "$mnist/$f.gz" ] || [ -e "$mnist/$f" ] || { echo "bundle.sh: no MNIST: $mnist has no ${f}[.gz] (data/fetch mnist fills data/mnist)" >&2; exit 1; }
done

build_dir=$repo_root/build-bundle-sm$arch
targets=(mlptrain mlptrain_gpu_tests mlptrain_tests mlptrain-bench mlptrain-bench-kernels
         mlptrain-bench-kernels-cpu)
flags=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch-real"
       -DMLPTRAIN_CUDART_STATIC=ON -DCMAKE_CUDA_RUNTIME_LIBRARY=Static -DMLPTRAIN_BUNDLE_TEST=ON)
echo "bundle.sh: building ${targets[*]} for sm_$arch in $build_dir"
t0=$(date +%s)
cmake -S "$repo_root" -B "$build_dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}"
echo "bundle.sh: built in $(( $(date +%s) - t0 )) s"

stage=$(mktemp -d "${TMPDIR:-/tmp}/mlptrain-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
payload=$stage/payload
mkdir -p "$payload/bin" "$payload/lib" "$payload/baselines" "$payload/data/mnist"
for t in "${targets[@]}"; do
  f=$(find "$build_dir" -maxdepth 3 -type f -name "$t" -perm -u+x | head -n 1)
  [ -n "$f" ] || { echo "bundle.sh: $t was not built" >&2; exit 1; }
  cp "$f" "$payload/bin/"
done

# Libraries: what ldd resolves for the binaries, less the C library family (glibc), the
# C++ runtime (libstdc++, libgcc_s), which every Linux has in a new enough version, and
# CUDA's own, which the GPU machine's driver and toolkit provide.
system_lib='^(linux-vdso|ld-linux|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libanl|libstdc\+\+|libgcc_s)\.so'
cuda_lib='^(libcuda|libcudart|libcublas|libcublasLt|libnvrtc|libnvJitLink)\.so'
declare -A seen=()
missing=()
for b in "$payload"/bin/*; do
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then missing+=("$soname (for $(basename "$b"))"); continue; fi
    [[ "$soname" =~ $system_lib || "$soname" =~ $cuda_lib ]] && continue
    [ -n "${seen[$soname]:-}" ] && continue
    seen[$soname]=$path
    cp -L "$path" "$payload/lib/$soname"
  done < <(ldd "$b")
done
# The CPU backend loads its GEMM library at run time (host/cpu/gemm_library.hpp), so ldd of
# the binaries does not list it. OpenBLAS travels, with what it needs, found as the loader
# would; oneDNN (40 MB) does not, so there the backend takes OpenBLAS, its fallback.
gemm_lib=$(ldconfig -p | awk '$1 == "libopenblas.so.0" && /x86-64/ { print $NF; exit }')
[ -n "$gemm_lib" ] || { echo "bundle.sh: libopenblas.so.0 not found here (scripts/setup.sh)" >&2; exit 1; }
cp -L "$gemm_lib" "$payload/lib/libopenblas.so.0"
while read -r soname arrow path _; do
  [ "$arrow" = "=>" ] || continue
  [[ "$soname" =~ $system_lib || -n "${seen[$soname]:-}" ]] && continue
  seen[$soname]=$path
  cp -L "$path" "$payload/lib/$soname"
done < <(ldd "$gemm_lib")
[ ${#missing[@]} -eq 0 ] || { echo "bundle.sh: not found here: ${missing[*]}" >&2; exit 1; }

cp "$repo_root"/benchmarks/baselines/*.py "$repo_root/benchmarks/compare_table.py" "$payload/baselines/"
cp -L "$mnist"/*-ubyte* "$payload/data/mnist/"
cp "$repo_root/tests/gpu/run.sh" "$repo_root/tests/gpu/figures.py" "$payload/"

# Manifest: the first three lines are what run.sh quotes in its summary.
commit=$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$repo_root" diff --quiet HEAD 2>/dev/null || commit="$commit+uncommitted changes"
glibc_needed=$(for f in "$payload"/bin/* "$payload"/lib/*; do objdump -T "$f" 2>/dev/null; done |
               grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
cxx_needed=$(for f in "$payload"/bin/* "$payload"/lib/*; do objdump -T "$f" 2>/dev/null; done |
             grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -n 1)
{
  echo "commit: $commit"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "arch: sm_$arch ($arch-real, no PTX)"
  echo "built on: $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -n 1), nvcc $("$nvcc" --version | grep -o "release [0-9.]*, V[0-9.]*")"
  echo "cmake flags: ${flags[*]}"
  echo "needs: $glibc_needed, $cxx_needed (libstdc++), and from the GPU machine: libcublas.so.13, libcublasLt.so.13 (CUDA 13 toolkit), libcuda.so.1 (driver for CUDA >= 13.0)"
  echo "compiled-in paths: MLPTRAIN_SOURCE_DIR=$repo_root, MLPTRAIN_BINARY=$build_dir/mlptrain (see tests/gpu/check_root.sh)"
  echo "files (bytes):"
  (cd "$payload" && find . -type f ! -name manifest.txt -printf '%s %P\n' | sort -k2)
} >"$payload/manifest.txt"

raw=$(du -sb "$payload" | cut -f1)
# gzip, not xz: every Linux has gzip, a minimal Debian has no xz.
echo "bundle.sh: packing $(( raw / 1024 / 1024 )) MiB with gzip"
tar -cf - -C "$payload" . | gzip -6 >"$stage/payload.tar.gz"
packed=$(stat -c %s "$stage/payload.tar.gz")
echo "raw: $raw bytes; packed: $packed bytes" >>"$payload/manifest.txt"

rm -rf "$out.new"
mkdir -p "$out.new"
mv "$stage/payload.tar.gz" "$out.new/"
cp "$payload/run.sh" "$payload/manifest.txt" "$out.new/"
total=$(du -sb "$out.new" | cut -f1)
if [ "$total" -gt "$limit_bytes" ]; then
  echo "bundle.sh: the bundle is $total bytes, over the 48 MiB that may travel" >&2
  rm -rf "$out.new"
  exit 1
fi
rm -rf "$out"
mv "$out.new" "$out"
echo "bundle.sh: $out: $total bytes ($(( total / 1024 / 1024 )) MiB; $(( raw / 1024 / 1024 )) MiB unpacked)"
ls -l "$out"
