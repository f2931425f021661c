#!/usr/bin/env bash
# Runs mlptrain and every baseline that can run on this machine, in one run, on
# the same data, and prints one table: each system's median epoch time,
# mlptrain's speed-up over it, and the test accuracy each reached.
#
#   benchmarks/compare.sh [--device cpu|cuda] [--quick] [--data DIR] [--out DIR]
#                         [--batch-sizes LIST] [--epochs N] [--no-torch] [--no-compile]
#                         [--build-dir DIR] [--no-sweep]
#
#   --device       cpu: mlptrain's CPU backend against NumPy (the notebook's float64 code and
#                  the float32 variant) and PyTorch eager / torch.compile on the CPU;
#                  cuda: mlptrain's CUDA backend against PyTorch eager / torch.compile /
#                  CUDA graph on the GPU. Default: cuda where nvidia-smi sees a GPU, else cpu.
#   --quick        batch sizes 64,1024 and 3 epochs (1 warm-up + 2 timed) instead of
#                  64,256,1024,8192 and 4 (1 + 3)
#   --data DIR     the four IDX files; default: MNIST from ../shared/data/mnist or
#                  data/mnist, else Fashion-MNIST from /usr/share/datasets/fashion-mnist
#   --out DIR      where the JSON results, logs and table go (default out/bench-DATE-TIME)
#   --no-torch     NumPy only (no torch install); --no-compile leaves out torch.compile
#   --no-sweep     leaves out the sweep case (CPU: benchmarks/bench_sweep.sh, 8 models of the
#                  default config in one `mlptrain sweep` against 8 sequential `train` runs;
#                  CUDA: mlptrain-bench --models 32 beside one model, and torch_vmap.py)
#   --build-dir    where to build mlptrain-bench (default build-bench-cpu, -DMLPTRAIN_CUDA=OFF;
#                  or build-bench-cuda)
#
# It builds mlptrain-bench (Release, without the tests) and sets
# up the baselines' virtual environment (benchmarks/baselines/setup_venv.sh). A baseline
# that cannot run says why in one "SKIP" line, listed under the table.
#
# Fairness on the CPU: mlptrain's CPU backend runs one thread per core at every batch size
# (host/cpu/thread_policy.hpp); every baseline of a configuration gets the same count
# (OMP/OPENBLAS/MKL_NUM_THREADS, torch.set_num_threads), shown in the table's threads column. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which some
# machines set for old OpenBLAS builds and which slow the NumPy wheel's current OpenBLAS,
# are unset for the NumPy runs only (said in the table's notes when they were set).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
baselines="$here/baselines"

args="$*"  # for the record in meta.json

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "compare.sh: error: $*" >&2; exit 2; }

device=""
quick=0
data=""
out=""
batch_sizes=""
epochs=""
torch=1
compile=1
sweep=1
build_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) [ $# -ge 2 ] || die "--device needs cpu or cuda"; device="$2"; shift 2 ;;
    --device=*) device="${1#*=}"; shift ;;
    --quick) quick=1; shift ;;
    --data) [ $# -ge 2 ] || die "--data needs a folder"; data="$2"; shift 2 ;;
    --data=*) data="${1#*=}"; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a folder"; out="$2"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --batch-sizes) [ $# -ge 2 ] || die "--batch-sizes needs a list"; batch_sizes="$2"; shift 2 ;;
    --batch-sizes=*) batch_sizes="${1#*=}"; shift ;;
    --epochs) [ $# -ge 2 ] || die "--epochs needs a number"; epochs="$2"; shift 2 ;;
    --epochs=*) epochs="${1#*=}"; shift ;;
    --no-torch) torch=0; shift ;;
    --no-compile) compile=0; shift ;;
    --no-sweep) sweep=0; shift ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a folder"; build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [ -z "$device" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    device=cuda
  else
    device=cpu
  fi
fi
case "$device" in cpu|cuda) ;; *) die "--device $device: use cpu or cuda" ;; esac
if [ "$quick" = 1 ]; then
  : "${batch_sizes:=64,1024}" "${epochs:=3}"
else
  : "${batch_sizes:=64,256,1024,8192}" "${epochs:=4}"
fi
[[ "$batch_sizes" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
  die "--batch-sizes $batch_sizes: want a comma-separated list of positive numbers"
if ! [[ "$epochs" =~ ^[1-9][0-9]*$ ]] || [ "$epochs" -lt 2 ]; then
  die "--epochs $epochs: want a number >= 2 (the first epoch is a warm-up)"
fi
warmup=1

has_idx() {
  local d="$1"
  [ -d "$d" ] || return 1
  local f
  for f in train-images-idx3-ubyte train-images.idx3-ubyte; do
    if [ -e "$d/$f" ] || [ -e "$d/$f.gz" ]; then return 0; fi
  done
  return 1
}
if [ -n "$data" ]; then
  has_idx "$data" || die "--data $data: no train-images-idx3-ubyte[.gz] there"
  data_desc="$data"
else
  for d in "$root/../shared/data/mnist" "$root/data/mnist" /usr/share/datasets/fashion-mnist; do
    if has_idx "$d"; then data="$(cd "$d" && pwd)"; break; fi
  done
  [ -n "$data" ] || die "no data set found: no MNIST in ../shared/data/mnist or data/mnist, no" \
    "Fashion-MNIST in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)" \
    "; or pass --data DIR"
  case "$data" in
    */fashion-mnist) data_desc="Fashion-MNIST ($data; no MNIST found)" ;;
    *) data_desc="MNIST ($data)" ;;
  esac
fi

stamp="$(date +%Y%m%d-%H%M%S)"
out="${out:-$root/out/bench-$stamp}"
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
start=$(date +%s)
# Other work on the machine slows every system, unevenly: the table shows the load.
load_start="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "compare.sh: device $device, data $data_desc"
echo "compare.sh: batch sizes $batch_sizes, $epochs epochs each (first $warmup untimed); results in $out"

# --- build -----------------------------------------------------------------------------------
build_dir="${build_dir:-$root/build-bench-$device}"
cuda_flag=OFF
[ "$device" = cuda ] && cuda_flag=ON
generator=()
command -v ninja >/dev/null 2>&1 && [ ! -f "$build_dir/CMakeCache.txt" ] && generator=(-G Ninja)
echo "compare.sh: building mlptrain-bench in $build_dir (log: $out/logs/build.log)"
if ! { cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
         -DMLPTRAIN_CUDA=$cuda_flag -DMLPTRAIN_TESTS=OFF &&
       cmake --build "$build_dir" --target mlptrain-bench mlptrain -j "$(nproc)"; } >"$out/logs/build.log" 2>&1; then
  tail -20 "$out/logs/build.log" >&2
  echo "compare.sh: error: the build failed (log: $out/logs/build.log)" >&2
  exit 1
fi
bench="$build_dir/benchmarks/mlptrain-bench"

# --- baselines' environment -----------------------------------------------------------------
venv="${MLPTRAIN_VENV:-$root/.venv-bench}"
py="$venv/bin/python"
echo "compare.sh: setting up $venv (log: $out/logs/setup_venv.log)"
set +e
"$baselines/setup_venv.sh" "$([ "$torch" = 1 ] && echo torch || echo numpy)" \
  >"$out/logs/setup_venv.log" 2>&1
venv_rc=$?
set -e
case "$venv_rc" in
  0) ;;
  3) echo "compare.sh: torch could not be installed here; its baselines will be skipped" ;;
  *) tail -5 "$out/logs/setup_venv.log" >&2
     echo "compare.sh: warning: setup_venv.sh failed ($venv_rc); baselines that need it will skip" >&2
     [ -x "$py" ] || py=python3 ;;
esac

# --- runs ------------------------------------------------------------------------------------
notes=()
# One line from a result file: median epoch time and test accuracy.
summary() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = d[0] if isinstance(d, list) else d
print("median epoch %.3f s, test acc %.2f%%" % (r["median_epoch_s"], 100 * r["test_accuracy"]))' \
    "$1" 2>/dev/null ||
    echo "(no result file)"
}

# run NAME CMD...: runs one system, its result in NAME.json, its output in logs/NAME.log. A
# "SKIP" exit (3) leaves that line in NAME.skip; any other failure a "FAILED" line there, and
# the script then exits 1 after the table.
failed=0
run() {
  local name="$1"; shift
  local log="$out/logs/$name.log"
  local t0 rc
  t0=$(date +%s)
  printf 'compare.sh: %-28s ' "$name"
  set +e
  "$@" >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    echo "done in $(( $(date +%s) - t0 )) s: $(summary "$out/$name.json")"
  elif [ "$rc" = 3 ] && grep -q '^SKIP' "$log"; then
    grep '^SKIP' "$log" | tail -1 | tee "$out/$name.skip"
  else
    echo "FAILED $name: exit status $rc (log: $log): $(tail -1 "$log" | cut -c1-200)" |
      tee "$out/$name.skip"
    failed=1
  fi
}

# Threads mlptrain used (CPU) in its result file $1, so each baseline gets the same.
threads_of() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0].get("threads") or 1)' "$1"
}

if [ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]; then
  notes+=("OPENBLAS_CORETYPE='${OPENBLAS_CORETYPE:-}' OPENBLAS_L2_SIZE='${OPENBLAS_L2_SIZE:-}' were set; unset for the NumPy runs only")
fi
numpy_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
common=(--data "$data" --epochs "$epochs" --warmup "$warmup")

IFS=, read -r -a sizes <<<"$batch_sizes"
for b in "${sizes[@]}"; do
  # mlptrain first, then the baselines of the same configuration right after it, so that
  # all of them meet the same conditions on a machine whose load changes.
  run "mlptrain-b$b" "$bench" --data "$data" --device "$device" --batch-sizes "$b" \
    --epochs "$epochs" --warmup "$warmup" --json "$out/mlptrain-b$b.json"
  if [ ! -f "$out/mlptrain-b$b.json" ]; then
    cat "$out/logs/mlptrain-b$b.log" >&2
    echo "compare.sh: error: mlptrain-bench failed (log: $out/logs/mlptrain-b$b.log)" >&2
    exit 1
  fi
  if [ "$device" = cpu ]; then
    t="$(threads_of "$out/mlptrain-b$b.json")"
    run "numpy-b$b" "${numpy_env[@]}" "$py" "$baselines/numpy_mlp.py" "${common[@]}" \
      --batch-size "$b" --threads "$t" --json "$out/numpy-b$b.json"
    run "numpy-f32-b$b" "${numpy_env[@]}" "$py" "$baselines/numpy_mlp.py" "${common[@]}" \
      --dtype float32 --batch-size "$b" --threads "$t" --json "$out/numpy-f32-b$b.json"
    if [ "$torch" = 1 ]; then
      run "torch-eager-cpu-b$b" "$py" "$baselines/torch_mlp.py" "${common[@]}" --mode eager \
        --device cpu --batch-size "$b" --threads "$t" --json "$out/torch-eager-cpu-b$b.json"
      if [ "$compile" = 1 ]; then
        run "torch-compile-cpu-b$b" "$py" "$baselines/torch_mlp.py" "${common[@]}" \
          --mode compile --device cpu --batch-size "$b" --threads "$t" \
          --json "$out/torch-compile-cpu-b$b.json"
      fi
    fi
  elif [ "$torch" = 1 ]; then
    for mode in eager compile graph; do
      if [ "$mode" = compile ] && [ "$compile" = 0 ]; then continue; fi
      run "torch-$mode-cuda-b$b" "$py" "$baselines/torch_mlp.py" "${common[@]}" --mode "$mode" \
        --device cuda --batch-size "$b" --json "$out/torch-$mode-cuda-b$b.json"
    done
  fi
done

# --- table -----------------------------------------------------------------------------------
if [ "$device" = cuda ]; then
  device_desc="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
else
  device_desc="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
fi
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit+local changes"
fi
command_line="benchmarks/compare.sh${args:+ $args}"
load="$load_start -> $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
python3 - "$out/meta.json" "$device" "$device_desc" "$data_desc" "$commit" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$command_line" "$batch_sizes" "$epochs" "$warmup" "$load" \
  "${notes[@]+"${notes[@]}"}" <<'EOF'
import json, sys
(path, device, device_desc, data, commit, date, command, batch_sizes, epochs, warmup, load,
 *notes) = sys.argv[1:]
meta = {"device": device, "device_desc": device_desc, "data": data, "commit": commit,
        "date": date, "command": command, "batch_sizes": batch_sizes, "epochs": int(epochs),
        "warmup": int(warmup), "load_average": load, "notes": notes}
with open(path, "w") as f:
    json.dump(meta, f, indent=2)
EOF
echo
python3 "$here/compare_table.py" "$out" --markdown
# --- the sweep case --------------------------------------------------------------------------
# On the CPU: many models in one process against as many processes, in this same run. On
# CUDA: 32 models at batch 64 trained together (the sweep's batched trainer) beside one model
# alone (the target: at most 2x its epoch time), and the same 32 models in PyTorch with
# torch.func.vmap; model-samples/s for each. Its JSON goes to sweep/, apart from the table's.
if [ "$sweep" = 1 ] && [ "$device" = cpu ]; then
  echo
  if ! "$here/bench_sweep.sh" --mlptrain "$build_dir/mlptrain" --data "$data" \
       --out "$out/sweep" >"$out/logs/sweep.log" 2>&1; then
    echo "FAILED sweep (log: $out/logs/sweep.log)"
    failed=1
  fi
  tail -n 12 "$out/logs/sweep.log"
elif [ "$sweep" = 1 ]; then
  echo
  mkdir -p "$out/sweep"
  run sweep-mlptrain "$bench" --data "$data" --device cuda --batch-sizes 64 --models 32 \
    --epochs "$epochs" --warmup "$warmup" --json "$out/sweep/mlptrain.json"
  tail -n 4 "$out/logs/sweep-mlptrain.log"
  if [ "$torch" = 1 ]; then
    for mode in eager graph; do
      run "sweep-torch-vmap-$mode" "$py" "$baselines/torch_vmap.py" "${common[@]}" \
        --models 32 --mode "$mode" --device cuda --batch-size 64 \
        --json "$out/sweep/torch-vmap-$mode.json"
      tail -n 1 "$out/logs/sweep-torch-vmap-$mode.log"
    done
  fi
fi
echo
echo "compare.sh: done in $(( $(date +%s) - start )) s; results, logs and table.md in $out"
if [ "$failed" = 1 ]; then
  echo "compare.sh: error: some runs failed (FAILED lines above)" >&2
  exit 1
fi
