#!/usr/bin/env bash
# The GPU check, run from a bundle that tests/gpu/bundle.sh made on another
# machine: no build, no network, no packages of ours. On a machine with an
# NVIDIA GPU it runs, in this order, each stage under its own timeout:
#
#   smi        nvidia-smi summary (name, compute capability, driver, memory, clocks)
#   libs       which cuBLAS, cuBLASLt, CUDA runtime and driver library a short run loads
#   gpu-tests  the GPU suite with MLPTRAIN_REQUIRE_GPU=1 (an unusable GPU fails it)
#   sanitize   compute-sanitizer memcheck, racecheck, initcheck and synccheck on a short
#              training run, with graph replay and with --no-graph
#   train      the default MNIST training (10 epochs) on the GPU: final test accuracy
#   bench      mlptrain-bench at batch 64, 256, 1024, 8192, graph replay and --no-graph
#   sweep      32 models at batch 64 trained together (mlptrain-bench --models 32, the
#              sweep's batched trainer) beside one model alone, and the same 32 models in
#              PyTorch with torch.func.vmap (eager and a CUDA graph of the vmapped step)
#   torch      the PyTorch baselines in the machine's python3: eager, a CUDA graph of the
#              whole step and torch.compile, at the same batch sizes; compare_table.py
#   kernels    the kernel micro-benchmarks (a window of launches per event pair; graph
#              replay, then stream launches)
#
# Each group of stages has a cap in seconds (smi and libs 90, gpu-tests 150, sanitize 160,
# train 90, bench 90, sweep 60, torch 170, compare 30, kernels 60) and all of them one budget.
#
# and ends with a summary table (stage, pass/fail, seconds, figure) as its last lines.
# Logs and JSON go to $OUT when it is set, else out/gpu-DATE/ under the current folder,
# as at most 8 files: run.log (this output), summary.txt, results.json (every stage and
# figure) and logs.tar.gz (every stage's log and raw JSON). They are rewritten after each
# stage, so a run stopped from outside leaves what it finished.
#
# Without an NVIDIA GPU it says so and exits 1 at once, writing nothing.
#
#   bash .gpu-bundle/run.sh            (the bundle's copy; see docs/PERFORMANCE.md)
#
#   MLPTRAIN_GPU_BUDGET_S=345          seconds after which the stages left are not run (each
#                                      stage's timeout is also cut to what is left; groups of
#                                      stages have caps of their own, below)
#   MLPTRAIN_GPU_STAGES="gpu-tests sanitize train bench sweep torch kernels"
#                                      the stages to run (smi and libs always run); a
#                                      second run can leave out what the first settled
set -uo pipefail

# Console lines, and once the output folder exists, run.log too.
run_log=""
say() {
  printf '%s\n' "$*"
  [ -z "$run_log" ] || printf '%s\n' "$*" >>"$run_log"
}

# ---------------------------------------------------------------- is there a GPU at all?
if ! command -v nvidia-smi >/dev/null 2>&1; then
  say "run.sh: no NVIDIA GPU: nvidia-smi is not installed on this machine; nothing was run" >&2
  exit 1
fi
if ! gpu_list=$(timeout 20 nvidia-smi -L 2>&1) || ! grep -q '^GPU ' <<<"$gpu_list"; then
  say "run.sh: no NVIDIA GPU: nvidia-smi lists none (${gpu_list//$'\n'/ }); nothing was run" >&2
  exit 1
fi

# ---------------------------------------------------------------- the bundle
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bundle=$here
unpacked="" work=""
# What this run unpacked and its scratch folder go; the logs are in logs.tar.gz by then.
trap 'rm -rf "$unpacked" "$work"' EXIT
if [ ! -x "$bundle/bin/mlptrain" ]; then
  if [ -f "$here/payload.tar.gz" ]; then
    bundle=$(mktemp -d /tmp/mlptrain-bundle.XXXXXX)
    unpacked=$bundle
    tar -xzf "$here/payload.tar.gz" -C "$bundle" || { say "run.sh: cannot unpack $here/payload.tar.gz" >&2; exit 1; }
  else
    say "run.sh: $here holds no bundle (bin/mlptrain or payload.tar.gz); make one with tests/gpu/bundle.sh" >&2
    exit 1
  fi
fi
bin=$bundle/bin
data=$bundle/data/mnist

out_dir=${OUT:-$PWD/out/gpu-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out_dir"
work=$(mktemp -d /tmp/mlptrain-gpu-run.XXXXXX)
logs=$work/logs
mkdir -p "$logs"
run_log=$out_dir/run.log
: >"$run_log"

budget=${MLPTRAIN_GPU_BUDGET_S:-345}
stages=" ${MLPTRAIN_GPU_STAGES:-gpu-tests sanitize train bench sweep torch kernels} "
wanted() { [[ "$stages" == *" $1 "* ]]; }
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start )); }

# ---------------------------------------------------------------- libraries
# Ours come from the bundle's lib/; CUDA's own (cuBLAS, cuBLASLt) from this machine's
# toolkit: where the loader already finds them, else the first folder below that has them.
find_cublas_dir() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib \
           /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/local/cuda-13*/lib; do
    [ -e "$d/libcublas.so.13" ] && { echo "$d"; return 0; }
  done
  # The CUDA 13 wheels PyTorch depends on (nvidia-cublas): .../site-packages/nvidia/cu13/lib
  d=$(python3 - 2>/dev/null <<'EOF'
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for p in sorted(glob.glob(os.path.join(r, "nvidia", "**", "libcublas.so.13"), recursive=True)):
        print(os.path.dirname(p)); sys.exit(0)
EOF
)
  [ -n "$d" ] && { echo "$d"; return 0; }
  return 1
}
lib_path=$bundle/lib
cublas_note="found by the loader (ldconfig or the binaries' RUNPATH)"
if LD_LIBRARY_PATH=$lib_path ldd "$bin/mlptrain" 2>/dev/null | grep -q 'libcublas.so.13 => not found'; then
  if cublas_dir=$(find_cublas_dir); then
    lib_path=$lib_path:$cublas_dir
    cublas_note="not known to the loader; using $cublas_dir"
  else
    cublas_note="NOT FOUND on this machine (no libcublas.so.13 in /usr/local/cuda* or python3's nvidia wheels)"
  fi
fi
# Passed to our binaries only: python3 (PyTorch) keeps its own libraries.

# ---------------------------------------------------------------- stage bookkeeping
names=() results=() times=() figures=()
record() {  # name result seconds figure
  names+=("$1") results+=("$2") times+=("$3") figures+=("$4")
  finalize
}
# A group of stages gets at most CAP seconds, so one slow group (the sanitizers, say) cannot
# leave nothing for the ones after it.
group_end=0
group() { group_end=$(( $(elapsed) + $1 )); }
# Runs "$@" with a timeout of min($1, what is left of its group and of the budget), output to
# logs/$name.log. Sets rc (124: timed out; 125: not run, no time left) and secs.
run_stage() {
  local name=$1 limit=$2; shift 2
  local left=$(( budget - $(elapsed) )) group_left=$(( group_end - $(elapsed) ))
  secs=0
  if [ "$left" -lt 10 ]; then rc=125; say "== $name: not run (time budget of ${budget}s spent)"; return; fi
  if [ "$group_left" -lt 10 ]; then rc=125; say "== $name: not run (its group's time spent)"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  [ "$limit" -gt "$group_left" ] && limit=$group_left
  say "== $name (timeout ${limit}s): $*"
  local t0; t0=$(date +%s)
  timeout -k 10 "$limit" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  local line
  while IFS= read -r line; do say "   | $line"; done < <(tail -n 15 "$logs/$name.log")
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && { rc=124; say "   ! $name timed out after ${limit}s"; }
  say "   -> exit $rc in ${secs}s"
}
verdict() { case "$rc" in 0) echo pass ;; 124) echo timeout ;; 125) echo "not run" ;; *) echo FAIL ;; esac; }

json_escape() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '%s' "${s//$'\n'/ }"; }
finalize() {
  {
    printf 'stage                result      secs  figure\n'
    local i
    for i in "${!names[@]}"; do
      printf '%-20s %-9s %6s  %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}" "${figures[$i]}"
    done
  } >"$work/table.txt"
  {
    say "mlptrain GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed) s so far"
    say "device: ${device_desc:-?}"
    say "bundle: $(head -n 3 "$bundle/manifest.txt" 2>/dev/null | tr '\n' ' ')"
    say "cuBLAS: $cublas_note"
    cat "$work/table.txt"
  } >"$out_dir/summary.txt"
  {
    printf '{\n  "date": "%s",\n  "device": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(json_escape "${device_desc:-}")"
    printf '  "bundle": "%s",\n  "cublas": "%s",\n  "seconds": %s,\n  "stages": [' \
      "$(json_escape "$(head -n 3 "$bundle/manifest.txt" 2>/dev/null)")" "$(json_escape "$cublas_note")" "$(elapsed)"
    local i sep=""
    for i in "${!names[@]}"; do
      printf '%s\n    {"stage": "%s", "result": "%s", "seconds": %s, "figure": "%s"}' "$sep" \
        "$(json_escape "${names[$i]}")" "${results[$i]}" "${times[$i]}" "$(json_escape "${figures[$i]}")"
      sep=","
    done
    printf '\n  ]\n}\n'
  } >"$out_dir/results.json"
  tar -czf "$out_dir/logs.tar.gz" -C "$work" logs 2>/dev/null
}

# A one-line figure from a stage's JSON (tests/gpu/figures.py), or "?".
figure() { python3 "$bundle/figures.py" "$1" "$2" 2>/dev/null || echo "?"; }

say "mlptrain GPU check: bundle $bundle, output $out_dir, budget ${budget}s"
while IFS= read -r line; do say "   manifest: $line"; done < <(head -n 20 "$bundle/manifest.txt" 2>/dev/null)

# ---------------------------------------------------------------- smi
group 90
run_stage smi 30 bash -c 'nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,power.limit,pstate --format=csv && nvidia-smi && nvidia-smi -q -d COMPUTE,CLOCK | head -n 60'
device_desc=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
cuda_driver=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -n 1)
record smi "$(verdict)" "$secs" "${device_desc:-?}; ${cuda_driver:-CUDA version ?}"

# ---------------------------------------------------------------- libs
# ldd for what the binary names; LD_DEBUG for what a real CUDA run loads (dlopen included:
# the CUDA runtime opens libcuda.so.1 itself).
run_stage libs 60 bash -c '
  echo "LD_LIBRARY_PATH=$0"; echo "--- ldd $1"; LD_LIBRARY_PATH=$0 ldd "$1"
  echo "--- libraries a short CUDA run initialised (LD_DEBUG=libs):"
  LD_DEBUG=libs LD_LIBRARY_PATH=$0 "$1" train --data "$2" --device cuda --epochs 1 \
    --train-samples 640 --test-samples 100 2>"$3/ld_debug.txt"; rc=$?
  grep -o "calling init: .*" "$3/ld_debug.txt" | sort -u
  exit $rc' "$lib_path" "$bin/mlptrain" "$data" "$work"
loaded=$(grep -o 'calling init: .*' "$work/ld_debug.txt" 2>/dev/null | sed 's/calling init: //' | sort -u |
         grep -E 'libcublas|libcublasLt|libcudart|libcuda\.so' | tr '\n' ' ')
[ -s "$work/ld_debug.txt" ] && ! grep -q cudart "$work/ld_debug.txt" && loaded="$loaded(cudart: linked in statically)"
say "   loaded: ${loaded:-?}"
record libs "$(verdict)" "$secs" "${loaded:-?}"

# ---------------------------------------------------------------- gpu-tests
if wanted gpu-tests; then
group 150
run_stage gpu-tests 240 env MLPTRAIN_REQUIRE_GPU=1 MLPTRAIN_MNIST_DIR="$data" \
  LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain_gpu_tests" --gtest_output=json:"$logs/gpu_tests.json"
fig=$(figure gtest "$logs/gpu_tests.json")
record gpu-tests "$(verdict)" "$secs" "$fig"
fi

# ---------------------------------------------------------------- sanitize
if wanted sanitize; then
group 160
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
# Two epochs (the graph is recorded, then replayed) of 10 steps, and an evaluation.
short=(train --data "$data" --device cuda --epochs 2 --train-samples 640 --test-samples 500)
for tool in memcheck racecheck initcheck synccheck; do
  for path in graph no-graph; do
    extra=(); [ "$path" = no-graph ] && extra=(--no-graph)
    if [ -z "$sanitizer" ]; then
      rc=1 secs=0; record "$tool/$path" FAIL 0 "compute-sanitizer not found"; continue
    fi
    run_stage "$tool-$path" 90 env LD_LIBRARY_PATH="$lib_path" "$sanitizer" --tool "$tool" \
      --error-exitcode 1 "$bin/mlptrain" "${short[@]}" "${extra[@]}"
    fig=$(grep -o 'ERROR SUMMARY: .*' "$logs/$tool-$path.log" | tail -n 1)
    record "$tool/$path" "$(verdict)" "$secs" "${fig:-no ERROR SUMMARY line}"
  done
done
fi

# ---------------------------------------------------------------- train
if wanted train; then
group 90
run_stage train 120 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain" train --data "$data" \
  --device cuda --metrics "$logs/train.jsonl"
acc=$(grep -o 'final test_acc [0-9.]*%' "$logs/train.log" | tail -n 1)
ep=$(grep -o 'epoch 10/10 .* time [0-9.]*s' "$logs/train.log" | grep -o 'time [0-9.]*s' | tail -n 1)
[ "$rc" -eq 0 ] && ! grep -q 'final test_acc \(9[7-9]\|100\)' <<<"$acc" && rc=1  # the GPU suite's bar: 97%
record train "$(verdict)" "$secs" "${acc:-no final accuracy}; last epoch ${ep:-?}"
fi

# ---------------------------------------------------------------- bench
batches=64,256,1024,8192
mkdir -p "$logs/compare"
if wanted bench; then
group 90
for path in graph no-graph; do
  extra=(); [ "$path" = no-graph ] && extra=(--no-graph)
  json=$logs/bench_$path.json
  [ "$path" = graph ] && json=$logs/compare/mlptrain_cuda.json
  run_stage "bench-$path" 120 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain-bench" \
    --data "$data" --device cuda --batch-sizes "$batches" --json "$json" "${extra[@]}"
  fig=$(figure bench "$json")
  record "bench/$path" "$(verdict)" "$secs" "$fig"
done
fi

# ---------------------------------------------------------------- sweep
if wanted sweep; then
group 60
run_stage sweep-mlptrain 40 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain-bench" \
  --data "$data" --device cuda --batch-sizes 64 --models 32 --epochs 3 \
  --json "$logs/sweep_mlptrain.json"
record "sweep/mlptrain" "$(verdict)" "$secs" "$(figure sweep "$logs/sweep_mlptrain.json")"
for mode in graph eager; do
  run_stage "sweep-torch-vmap-$mode" 40 env PYTHONUNBUFFERED=1 python3 \
    "$bundle/baselines/torch_vmap.py" --data "$data" --models 32 --mode "$mode" \
    --device cuda --batch-size 64 --epochs 3 --json "$logs/sweep_torch_vmap_$mode.json"
  res=$(verdict); [ "$rc" -eq 3 ] && res=skip
  record "sweep/torch-vmap-$mode" "$res" "$secs" \
    "$(figure sweep "$logs/sweep_torch_vmap_$mode.json")"
done
fi

# ---------------------------------------------------------------- torch
if wanted torch; then
group 170
# torch.compile last: its compilation is the slowest part and gets what the group has left.
for mode in eager graph compile; do
  limit=60; [ "$mode" = compile ] && limit=100
  figs="" worst=0 total=0
  for b in ${batches//,/ }; do
    run_stage "torch-$mode-b$b" "$limit" env PYTHONUNBUFFERED=1 python3 \
      "$bundle/baselines/torch_mlp.py" --data "$data" --mode "$mode" --device cuda \
      --batch-size "$b" --epochs 4 --json "$logs/compare/torch_${mode}_b$b.json"
    total=$(( total + secs ))
    if [ "$rc" -eq 0 ]; then
      figs="$figs b$b $(figure torch "$logs/compare/torch_${mode}_b$b.json")"
    elif [ "$rc" -eq 3 ]; then  # the baseline's "cannot run here", with its reason
      figs="$figs b$b skip"; worst=$rc
      grep -h '^SKIP' "$logs/torch-$mode-b$b.log" >"$logs/compare/torch_${mode}_b$b.skip" 2>/dev/null
    else
      figs="$figs b$b $(verdict)"; worst=$rc
    fi
  done
  rc=$worst
  res=$(verdict); [ "$rc" -eq 3 ] && res=skip
  record "torch/$mode" "$res" "$total" "${figs# }"
done
group 30
run_stage compare 30 python3 "$bundle/baselines/compare_table.py" "$logs/compare"
record compare "$(verdict)" "$secs" "mlptrain (graph) against torch: logs/compare.log"
fi

# ---------------------------------------------------------------- kernels
if wanted kernels; then
group 60
for timing in graph stream; do
  run_stage "kernels-$timing" 120 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain-bench-kernels" \
    --timing "$timing" --launches 100 --benchmark_min_time=0.05 \
    --benchmark_out="$logs/kernels_$timing.json" --benchmark_out_format=json
  fig=$(figure kernels "$logs/kernels_$timing.json")
  [ "$rc" -eq 0 ] && grep -q 'ERROR OCCURRED' "$logs/kernels-$timing.log" && rc=1
  record "kernels/$timing" "$(verdict)" "$secs" "$fig"
done
fi

# ---------------------------------------------------------------- summary
# A baseline that cannot run here (no torch) is listed as skip and fails nothing.
failed=0 skipped=0
for r in "${results[@]}"; do
  case "$r" in pass) ;; skip) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
finalize
say ""
say "== summary: ${device_desc:-?}; bundle $(sed -n 's/^commit: //p' "$bundle/manifest.txt" 2>/dev/null | head -n 1); $(elapsed) s; $failed stage(s) failed or not run, $skipped skipped; files in $out_dir"
say "   cuBLAS: $cublas_note"
while IFS= read -r line; do say "$line"; done <"$work/table.txt"
[ "$failed" -eq 0 ]
