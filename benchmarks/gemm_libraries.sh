#!/usr/bin/env bash
# Measures, in one run, the GEMM libraries the CPU backend can load (host/cpu/gemm_library.hpp),
# through the production code: whole training epochs (mlptrain-bench) and the GEMM shapes of
# one default training step (mlptrain-bench-kernels-cpu, batch 64 and 1024), one library after
# another, and prints one table. docs/PERFORMANCE.md says which won and why.
#
#   benchmarks/gemm_libraries.sh [--build-dir DIR] [--data DIR] [--batch-sizes LIST]
#                                [--epochs N] [--out DIR] [--install]
#
# Rows:
#   onednn             the default: oneDNN's dnnl_sgemm (libdnnl.so.2; Debian's libdnnl2)
#   openblas-features  the fallback: OpenBLAS with the kernel set mlptrain picks from the
#                      CPU's features (AVX2: Haswell, or Zen on AMD; AVX-512: SkylakeX)
#   openblas-prescott  OpenBLAS's SSE3 kernels, what Debian 12's OpenBLAS 0.3.21 falls back to
#                      on a CPU it does not know (OPENBLAS_CORETYPE=Prescott)
#   blis               BLIS (libblis.so.4; Debian's libblis4-openmp)
#   mkl                MKL's cblas_sgemm (libmkl_rt from PyPI's mkl, in the benchmark venv)
# Each row names its library with MLPTRAIN_BLAS.
# A library that is not installed is one SKIP line; --install installs the Debian packages
# (apt-get) and PyPI's mkl into the baselines' venv (.venv-bench, or $MLPTRAIN_VENV) first.
# Every row runs the same threads (the trainer's default: one per core).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
die() { echo "gemm_libraries.sh: error: $*" >&2; exit 2; }

build_dir="$root/build-bench-cpu"
data=""
batch_sizes="64,256,1024,8192"
epochs=4
out=""
install=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --batch-sizes) batch_sizes="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --install) install=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
venv="${MLPTRAIN_VENV:-$root/.venv-bench}"
out="${out:-$root/out/gemm-libraries-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
if [ -z "$data" ]; then
  for d in "$root/../shared/data/mnist" "$root/data/mnist"; do
    [ -e "$d/train-images-idx3-ubyte.gz" ] || [ -e "$d/train-images-idx3-ubyte" ] && { data="$d"; break; }
  done
fi
[ -n "$data" ] || die "no MNIST found; pass --data DIR"

if [ "$install" = 1 ]; then
  apt-get install -y libblis4-openmp libdnnl2 >"$out/install.log" 2>&1 ||
    echo "gemm_libraries.sh: apt-get install failed (log: $out/install.log)" >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q mkl >>"$out/install.log" 2>&1 ||
    echo "gemm_libraries.sh: pip install mkl failed (log: $out/install.log)" >&2
fi

echo "gemm_libraries.sh: building in $build_dir (log: $out/build.log)"
{ cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMLPTRAIN_CUDA=OFF \
    -DMLPTRAIN_TESTS=OFF -DMLPTRAIN_BENCHMARKS=ON &&
  cmake --build "$build_dir" --target mlptrain-bench mlptrain-bench-kernels-cpu; } \
  >"$out/build.log" 2>&1 || die "build failed (log: $out/build.log)"
bench="$build_dir/benchmarks/mlptrain-bench"
kernels="$build_dir/benchmarks/mlptrain-bench-kernels-cpu"

lib_path() { ldconfig -p | awk -v n="$1" '$1 == n && /x86-64/ { print $NF; exit }'; }
mkl=$(ls "$venv"/lib/libmkl_rt.so* 2>/dev/null | head -n 1 || true)

rows=(onednn openblas-features openblas-prescott blis mkl)
skips=()
for row in "${rows[@]}"; do
  env_args=(env -u OPENBLAS_CORETYPE -u MLPTRAIN_BLAS -u DNNL_MAX_CPU_ISA -u ONEDNN_MAX_CPU_ISA)
  case "$row" in
    onednn) p=$(lib_path libdnnl.so.2)
      [ -n "$p" ] || { skips+=("onednn: libdnnl.so.2 not installed (Debian: libdnnl2; --install)"); continue; }
      env_args+=(MLPTRAIN_BLAS="$p") ;;
    openblas-features) env_args+=(MLPTRAIN_BLAS=libopenblas.so.0) ;;
    openblas-prescott) env_args+=(MLPTRAIN_BLAS=libopenblas.so.0 OPENBLAS_CORETYPE=Prescott) ;;
    blis) p=$(lib_path libblis.so.4)
      [ -n "$p" ] || { skips+=("blis: libblis.so.4 not installed (Debian: libblis4-openmp; --install)"); continue; }
      env_args+=(MLPTRAIN_BLAS="$p") ;;
    mkl) [ -n "$mkl" ] || { skips+=("mkl: no libmkl_rt in $venv/lib (PyPI: mkl; --install)"); continue; }
      env_args+=(MLPTRAIN_BLAS="$mkl") ;;
  esac
  echo "gemm_libraries.sh: $row"
  "${env_args[@]}" "$bench" --data "$data" --device cpu --batch-sizes "$batch_sizes" \
    --epochs "$epochs" --json "$out/$row-epochs.json" >"$out/$row-epochs.log" 2>&1 ||
    { skips+=("$row: mlptrain-bench failed (log: $out/$row-epochs.log)"); continue; }
  "${env_args[@]}" "$kernels" --benchmark_filter='^gemm_(fwd|dW|dX)/' --benchmark_min_time=0.2 \
    --benchmark_format=json --benchmark_out="$out/$row-gemms.json" >"$out/$row-gemms.log" 2>&1 ||
    { skips+=("$row: mlptrain-bench-kernels-cpu failed (log: $out/$row-gemms.log)"); continue; }
done

python3 - "$out" "${rows[@]}" <<'EOF' | tee "$out/table.md"
import json, os, sys
out, rows = sys.argv[1], sys.argv[2:]
print(f"CPU: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}, "
      f"{os.cpu_count()} cores")
print()
print("| library | device line | batch | epoch (s) | GEMMs of a step (us) | GEMM GFLOP/s |")
print("|---|---|---:|---:|---:|---:|")
for row in rows:
    e, g = f"{out}/{row}-epochs.json", f"{out}/{row}-gemms.json"
    if not (os.path.exists(e) and os.path.exists(g)):
        continue
    epochs = json.load(open(e))
    gemms = json.load(open(g))["benchmarks"]
    for r in epochs:
        b = r["batch_size"]
        mine = [x for x in gemms if f"/b{b}/" in x["name"] and "error_occurred" not in x]
        us = sum(x["real_time"] for x in mine) / 1e3 if mine else None
        flops = sum(x["GFLOP/s"] * x["real_time"] for x in mine) / (us * 1e3) if mine else None
        print(f"| {row} | {r['device_name']} | {b} | {r['median_epoch_s']:.3f} | "
              f"{'' if us is None else f'{us:.0f}'} | {'' if flops is None else f'{flops:.1f}'} |")
EOF
for s in "${skips[@]}"; do echo "SKIP $s"; done | tee -a "$out/table.md"
echo "gemm_libraries.sh: results in $out"
