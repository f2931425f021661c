#!/usr/bin/env bash
# The GPU check, run from a bundle that tests/gpu/bundle.sh made on another machine: no
# build, no network, no packages of ours. It is planned for ONE call of at most 540 s on an
# H200 (docs/PERFORMANCE.md, "Running the GPU check"). On a machine with an NVIDIA GPU it runs
# these stages in this order, each within its cap in seconds (the table `plan` below is the
# one the script runs from; tests/gpu/check_run_plan.py checks its arithmetic):
#
#   smi            10  nvidia-smi summary (name, compute capability, driver, memory, clocks)
#   libs           15  which cuBLAS, cuBLASLt, CUDA runtime and driver library a short run loads
#   gpu-tests     100  the GPU suite with MLPTRAIN_REQUIRE_GPU=1 (an unusable GPU fails it)
#   train          35  the default MNIST training (10 epochs): final test accuracy, 97% or more
#   bench          40  the step benchmark, mlptrain-bench at batch 64, 256, 1024 and 8192, with
#                      graph replay and with --no-graph
#   sweep          20  32 models at batch 64 trained together (mlptrain-bench --models 32, the
#                      sweep's batched trainer) beside one model alone
#   sanitize      130  compute-sanitizer on short runs (20 to 32 training steps; racecheck's
#                      and synccheck's 4), the most wanted first: memcheck of the default step and
#                      of --kernels fused (cuBLASLt epilogues, the reductions of
#                      cuda/kernels/reduce.cu, the side stream's fork and join) with graph
#                      replay; racecheck and synccheck of the fused step; memcheck of
#                      --precision bf16; memcheck of a batched sweep (mlptrain sweep, 3 models,
#                      fused); initcheck of both paths; memcheck of the fused stream path;
#                      racecheck of the batched sweep
#   kernels        30  the kernel micro-benchmarks (graph replay, then stream launches)
#   torch          55  the PyTorch baselines in the machine's python3: eager and a CUDA graph of
#                      the whole step, at the batch sizes of bench
#   torch-sweep    35  the sweep's 32 models in PyTorch with torch.func.vmap, eager and as a
#                      CUDA graph
#   torch-compile 240  torch.compile at the batch sizes of bench; not run unless asked for
#                      (its compilation takes minutes): MLPTRAIN_GPU_TORCH_COMPILE=1
#   compare        15  compare_table.py: mlptrain (graph replay) against each baseline
#
# The default stages' caps add up to 485 s, and 45 s are left for what no cap covers (the
# bundle unpack, the bookkeeping between runs, a timed-out run's kill, the summary).
#
# Results: pass; FAIL; timeout (ran past its own limit: a failure); cut (stopped because its
# stage's cap or the budget ran out first, or a baseline past its limit: not a failure);
# not run (no time was left for it: not a failure); skip (a baseline that cannot run here,
# e.g. no torch). The exit status is 1 when any run failed (FAIL or timeout), else 0. The
# output ends with the counts and a table (stage, result, seconds, figure) as its last lines.
# Logs and JSON go to $OUT when it is set, else out/gpu-DATE/ under the current folder, as
# at most 8 files: run.log (this output), summary.txt, results.json (every run and figure)
# and logs.tar.gz (every run's log and raw JSON). They are rewritten after each run, so a
# run stopped from outside leaves what it finished.
#
# Without an NVIDIA GPU it says so and exits 1 at once, writing nothing.
#
#   bash .gpu-bundle/run.sh            (the bundle's copy; see docs/PERFORMANCE.md)
#   bash run.sh --plan                 the plan and what this environment would run; no GPU
#                                      needed, nothing written
#
#   MLPTRAIN_GPU_BUDGET_S=490          seconds from the start after which no run starts (each
#                                      run's timeout is also cut to what is left); with the 45 s
#                                      above it fits one call of 540 s
#   MLPTRAIN_GPU_STAGES="gpu-tests train bench sweep sanitize kernels torch torch-sweep compare"
#                                      the stages to run, in the plan's order whatever the
#                                      order here (smi and libs always run); a second call
#                                      can leave out what the first settled
#   MLPTRAIN_GPU_TORCH_COMPILE=1       adds torch-compile to the stages; naming it in
#                                      MLPTRAIN_GPU_STAGES does too. Give it a call of its own:
#                                      MLPTRAIN_GPU_STAGES="bench torch-compile compare"
#   MLPTRAIN_GPU_CAPS="sanitize=400"   caps other than the plan's, stage=seconds separated by
#                                      spaces: for a call that runs fewer stages
set -uo pipefail
t_start=$(date +%s)  # the budget counts from here: the bundle unpack is in it

# ---------------------------------------------------------------- the plan
# Every stage, in the order they run: its cap in seconds and whether it runs by default
# (always: whatever MLPTRAIN_GPU_STAGES says; default; opt-in). A stage gets at most its cap:
# its runs' timeouts are cut to what is left of it, and a run that would start with less
# than a few seconds left is "not run". Keep the header above in step.
plan=$(cat <<'PLAN'
smi            10  always
libs           15  always
gpu-tests     100  default
train          35  default
bench          40  default
sweep          20  default
sanitize      130  default
kernels        30  default
torch          55  default
torch-sweep    35  default
torch-compile 240  opt-in
compare        15  default
PLAN
)
default_budget_s=490  # MLPTRAIN_GPU_BUDGET_S's default
overhead_s=45         # what no cap covers: the unpack, bookkeeping, a kill, the summary
call_limit_s=540      # the one call this plan is for

order=()
declare -A cap=() kind=()
while read -r name seconds how; do
  [ -n "$name" ] || continue
  order+=("$name") cap[$name]=$seconds kind[$name]=$how
done <<<"$plan"

usage() { echo "usage: bash run.sh [--plan]   (settings: the environment variables in its header)" >&2; exit 2; }
show_plan=0
case "${1:-}" in
  "") ;;
  --plan) show_plan=1 ;;
  -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) usage ;;
esac
[ $# -le 1 ] || usage

bad_setting() { echo "run.sh: $*; nothing was run" >&2; exit 2; }
budget=${MLPTRAIN_GPU_BUDGET_S:-$default_budget_s}
[[ "$budget" =~ ^[0-9]+$ ]] || bad_setting "MLPTRAIN_GPU_BUDGET_S=$budget is not a number of seconds"
read -r -a items <<<"${MLPTRAIN_GPU_CAPS:-}"
for item in "${items[@]}"; do
  name=${item%%=*} seconds=${item#*=}
  [ -n "${cap[$name]:-}" ] || bad_setting "MLPTRAIN_GPU_CAPS: no stage '$name' (stages: ${order[*]})"
  [[ "$item" == *=* && "$seconds" =~ ^[0-9]+$ ]] || bad_setting "MLPTRAIN_GPU_CAPS: '$item' is not stage=seconds"
  cap[$name]=$seconds
done
default_stages=()
for name in "${order[@]}"; do [ "${kind[$name]}" = default ] && default_stages+=("$name"); done
stages=" ${MLPTRAIN_GPU_STAGES:-${default_stages[*]}} "
read -r -a items <<<"$stages"
for name in "${items[@]}"; do
  [ -n "${cap[$name]:-}" ] || bad_setting "MLPTRAIN_GPU_STAGES: no stage '$name' (stages: ${order[*]})"
done
case "${MLPTRAIN_GPU_TORCH_COMPILE:-0}" in
  1) stages="$stages torch-compile " ;;
  0|"") ;;
  *) bad_setting "MLPTRAIN_GPU_TORCH_COMPILE=${MLPTRAIN_GPU_TORCH_COMPILE} (1 to run torch-compile, 0 not)" ;;
esac
wanted() { [ "${kind[$1]}" = always ] || [[ "$stages" == *" $1 "* ]]; }

if [ "$show_plan" -eq 1 ]; then
  printf '%-14s %5s  %-8s %s\n' stage cap kind "this run"
  sum_default=0 sum_run=0
  for name in "${order[@]}"; do
    run=no; wanted "$name" && run=yes && sum_run=$(( sum_run + ${cap[$name]} ))
    [ "${kind[$name]}" = opt-in ] || sum_default=$(( sum_default + ${cap[$name]} ))
    printf '%-14s %5s  %-8s %s\n' "$name" "${cap[$name]}" "${kind[$name]}" "$run"
  done
  echo "caps: ${sum_default} s for the default stages, ${sum_run} s for this run's"
  echo "budget: ${budget} s (default ${default_budget_s}); overhead: ${overhead_s} s; one call: ${call_limit_s} s"
  exit 0
fi

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

elapsed() { echo $(( $(date +%s) - t_start )); }
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1

# ---------------------------------------------------------------- libraries
# Ours come from the bundle's lib/; CUDA's own (cuBLAS, cuBLASLt) from this machine's
# toolkit: where the loader already finds them, else the first folder below that has them.
find_cublas_dir() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib \
           /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/local/cuda-13*/lib; do
    [ -e "$d/libcublas.so.13" ] && { echo "$d"; return 0; }
  done
  [ "$have_python" -eq 1 ] || return 1
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

# ---------------------------------------------------------------- bookkeeping
names=() results=() times=() figures=()
record() {  # name result seconds figure
  names+=("$1") results+=("$2") times+=("$3") figures+=("$4")
  finalize
}
# begin_stage NAME: the stage may run until stage_end (its cap from now); 1, with a "not run"
# line, when the budget has less than min_start seconds left.
min_start=5
stage_end=0
begin_stage() {
  local left=$(( budget - $(elapsed) ))
  if [ "$left" -lt "$min_start" ]; then
    say "== $1: not run (the budget of ${budget}s is spent)"
    record "$1" "not run" 0 "the budget of ${budget}s was spent"
    return 1
  fi
  stage_end=$(( $(elapsed) + ${cap[$1]} ))
  say "== stage $1 (cap ${cap[$1]}s, $left s of the budget left)"
}
# run_stage NAME LIMIT COMMAND...: runs COMMAND with a timeout of LIMIT (its own limit; 0:
# the rest of its stage's cap), cut to what is left of its stage and of the budget, output to
# logs/NAME.log. Sets rc, secs and outcome: ran, timeout (past its own limit), cut (past a
# limit that the stage's cap or the budget cut shorter), not-run (less than min_start seconds
# left).
baseline=0  # 1 in the PyTorch stages: a baseline past its own limit is cut, not a failure
run_stage() {
  local name=$1 own=$2; shift 2
  local now; now=$(elapsed)
  local left=$(( budget - now )) stage_left=$(( stage_end - now ))
  secs=0 rc=0
  [ "$own" -eq 0 ] && own=$stage_left
  local limit=$own
  [ "$stage_left" -lt "$left" ] && left=$stage_left
  if [ "$left" -lt "$min_start" ]; then
    outcome=not-run; say "== $name: not run (its stage's cap or the budget is spent)"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "== $name (timeout ${limit}s): $*"
  local t0; t0=$(date +%s)
  timeout -k 5 "$limit" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  local line
  while IFS= read -r line; do say "   | $line"; done < <(tail -n 15 "$logs/$name.log")
  outcome=ran
  if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$secs" -ge "$limit" ]; }; then
    if [ "$limit" -lt "$own" ] || [ "$baseline" -eq 1 ]; then
      outcome="cut"; say "   ! $name stopped after ${limit}s (its stage's cap or the budget)"
    else
      outcome=timeout; say "   ! $name timed out after ${limit}s"
    fi
  fi
  say "   -> exit $rc in ${secs}s"
}
# The result of the last run_stage; a baseline's exit 3 ("cannot run here") is skip.
verdict() {
  case "$outcome" in
    not-run) echo "not run" ;;
    cut) echo cut ;;
    timeout) echo timeout ;;
    *) case "$rc" in 0) echo pass ;; 3) [ "$baseline" -eq 1 ] && echo skip || echo FAIL ;; *) echo FAIL ;; esac ;;
  esac
}

json_escape() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '%s' "${s//$'\n'/ }"; }
finalize() {
  {
    printf '%-31s %-8s %5s  %s\n' stage result secs figure
    local i
    for i in "${!names[@]}"; do
      printf '%-31s %-8s %5s  %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}" "${figures[$i]}"
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
    printf '  "bundle": "%s",\n  "cublas": "%s",\n  "budget": %s,\n  "seconds": %s,\n  "stages": [' \
      "$(json_escape "$(head -n 3 "$bundle/manifest.txt" 2>/dev/null)")" "$(json_escape "$cublas_note")" \
      "$budget" "$(elapsed)"
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

# A one-line figure from a run's JSON (tests/gpu/figures.py), or "?".
figure() { python3 "$bundle/figures.py" "$1" "$2" 2>/dev/null || echo "?"; }
# The last line of a compute-sanitizer log that sums up what it found.
sanitizer_summary() {
  grep -o -E '(ERROR|RACECHECK) SUMMARY: .*' "$1" 2>/dev/null | tail -n 1
}

batches=64,256,1024,8192
mkdir -p "$logs/compare"

# ---------------------------------------------------------------- the stages
stage_smi() {
  run_stage smi 0 bash -c 'nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,power.limit,pstate --format=csv && nvidia-smi && nvidia-smi -q -d COMPUTE,CLOCK | head -n 60'
  device_desc=$(timeout 10 nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
  cuda_driver=$(timeout 10 nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -n 1)
  record smi "$(verdict)" "$secs" "${device_desc:-?}; ${cuda_driver:-CUDA version ?}"
}

# ldd for what the binary names; LD_DEBUG for what a real CUDA run loads (dlopen included:
# the CUDA runtime opens libcuda.so.1 itself).
stage_libs() {
  # shellcheck disable=SC2016  # the inner bash expands them
  run_stage libs 0 bash -c '
    echo "LD_LIBRARY_PATH=$0"; echo "--- ldd $1"; LD_LIBRARY_PATH=$0 ldd "$1"
    echo "--- libraries a short CUDA run initialised (LD_DEBUG=libs):"
    LD_DEBUG=libs LD_LIBRARY_PATH=$0 "$1" train --data "$2" --device cuda --epochs 1 \
      --train-samples 640 --test-samples 100 2>"$3/ld_debug.txt"; rc=$?
    grep -o "calling init: .*" "$3/ld_debug.txt" | sort -u
    exit $rc' "$lib_path" "$bin/mlptrain" "$data" "$work"
  local loaded
  loaded=$(grep -o 'calling init: .*' "$work/ld_debug.txt" 2>/dev/null | sed 's/calling init: //' | sort -u |
           grep -E 'libcublas|libcublasLt|libcudart|libcuda\.so' | tr '\n' ' ')
  [ -s "$work/ld_debug.txt" ] && ! grep -q cudart "$work/ld_debug.txt" && loaded="$loaded(cudart: linked in statically)"
  say "   loaded: ${loaded:-?}"
  record libs "$(verdict)" "$secs" "${loaded:-?}"
}

stage_gpu_tests() {
  run_stage gpu-tests 0 env MLPTRAIN_REQUIRE_GPU=1 MLPTRAIN_MNIST_DIR="$data" \
    LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain_gpu_tests" --gtest_output=json:"$logs/gpu_tests.json"
  record gpu-tests "$(verdict)" "$secs" "$(figure gtest "$logs/gpu_tests.json")"
}

stage_train() {
  run_stage train 0 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain" train --data "$data" \
    --device cuda --metrics "$logs/train.jsonl"
  local acc ep
  acc=$(grep -o 'final test_acc [0-9.]*%' "$logs/train.log" | tail -n 1)
  ep=$(grep -o 'epoch 10/10 .* time [0-9.]*s' "$logs/train.log" | grep -o 'time [0-9.]*s' | tail -n 1)
  # The GPU suite's bar: 97%.
  [ "$outcome" = ran ] && [ "$rc" -eq 0 ] && ! grep -q 'final test_acc \(9[7-9]\|100\)' <<<"$acc" && rc=1
  record train "$(verdict)" "$secs" "${acc:-no final accuracy}; last epoch ${ep:-?}"
}

stage_bench() {
  local path json extra
  for path in graph no-graph; do
    extra=(); [ "$path" = no-graph ] && extra=(--no-graph)
    json=$logs/bench_$path.json
    [ "$path" = graph ] && json=$logs/compare/mlptrain_cuda.json
    run_stage "bench-$path" 30 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain-bench" \
      --data "$data" --device cuda --batch-sizes "$batches" --json "$json" "${extra[@]}"
    record "bench/$path" "$(verdict)" "$secs" "$(figure bench "$json")"
  done
}

stage_sweep() {
  run_stage sweep-mlptrain 0 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain-bench" \
    --data "$data" --device cuda --batch-sizes 64 --models 32 --epochs 3 \
    --json "$logs/sweep_mlptrain.json"
  record "sweep/mlptrain" "$(verdict)" "$secs" "$(figure sweep "$logs/sweep_mlptrain.json")"
}

# Short runs, the most wanted first; each has its own limit, and what the stage's cap leaves
# no time for is listed as not run. Two epochs with graph replay (the epoch is recorded, then
# replayed) and an evaluation: 10 steps each for train, 16 for the sweep (3 models in one
# batched step); racecheck (slow: shared memory) and synccheck check what happens inside the
# kernels, so one epoch of 4 steps launched one by one does.
stage_sanitize() {
  local sanitizer
  # shellcheck disable=SC2012  # a path or nothing
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
  if [ -z "$sanitizer" ]; then
    record sanitize FAIL 0 "compute-sanitizer not found"
    return
  fi
  # tool, name, command, size, extra flags
  local runs=(
    "memcheck  generic       train short"
    "memcheck  fused         train short --kernels fused"
    "racecheck fused         train tiny  --kernels fused"
    "synccheck fused         train tiny  --kernels fused"
    "memcheck  fused-bf16    train short --kernels fused --precision bf16"
    "memcheck  sweep-fused   sweep short --kernels fused"
    "initcheck fused         train short --kernels fused"
    "initcheck generic       train short"
    "memcheck  fused-stream  train short --kernels fused --no-graph"
    "racecheck sweep-fused   sweep tiny  --kernels fused"
  )
  local r tool what command size rest extra args
  for r in "${runs[@]}"; do
    read -r tool what command size rest <<<"$r"
    read -r -a extra <<<"$rest"
    args=("$command" --data "$data" --device cuda)
    # The sweep: 3 models (seeds) in one batched step, 16 steps an epoch on 1024 samples.
    [ "$command" = sweep ] && args+=(--seed "1,2,3")
    case "$command:$size" in
      train:short) args+=(--epochs 2 --train-samples 640 --test-samples 500) ;;
      sweep:short) args+=(--epochs 2 --train-samples 1024 --test-samples 512) ;;
      *:tiny) args+=(--epochs 1 --train-samples 256 --test-samples 100 --no-graph) ;;
    esac
    run_stage "$tool-$what" 45 env LD_LIBRARY_PATH="$lib_path" "$sanitizer" --tool "$tool" \
      --error-exitcode 1 "$bin/mlptrain" "${args[@]}" "${extra[@]}"
    if [ "$outcome" = not-run ]; then
      record "sanitize/$tool-$what" "not run" 0 "no time left in the stage's ${cap[sanitize]}s"
    else
      local fig; fig=$(sanitizer_summary "$logs/$tool-$what.log")
      record "sanitize/$tool-$what" "$(verdict)" "$secs" "${fig:-no SUMMARY line}"
    fi
  done
}

stage_kernels() {
  local timing
  for timing in graph stream; do
    run_stage "kernels-$timing" 20 env LD_LIBRARY_PATH="$lib_path" "$bin/mlptrain-bench-kernels" \
      --timing "$timing" --launches 100 --benchmark_min_time=0.05 \
      --benchmark_out="$logs/kernels_$timing.json" --benchmark_out_format=json
    [ "$outcome" = ran ] && [ "$rc" -eq 0 ] && grep -q 'ERROR OCCURRED' "$logs/kernels-$timing.log" && rc=1
    record "kernels/$timing" "$(verdict)" "$secs" "$(figure kernels "$logs/kernels_$timing.json")"
  done
}

severity() { case "$1" in pass) echo 0 ;; skip) echo 1 ;; "not run"|cut) echo 2 ;; *) echo 3 ;; esac; }
# torch_mlp.py in MODE at each batch size, each run limited to LIMIT; one table line.
torch_mode() {  # stage mode limit
  local stage=$1 mode=$2 limit=$3 b figs="" worst=pass total=0 res
  if [ "$have_python" -eq 0 ]; then record "$stage" skip 0 "no python3 on this machine"; return; fi
  baseline=1
  for b in ${batches//,/ }; do
    run_stage "torch-$mode-b$b" "$limit" env PYTHONUNBUFFERED=1 python3 \
      "$bundle/baselines/torch_mlp.py" --data "$data" --mode "$mode" --device cuda \
      --batch-size "$b" --epochs 4 --json "$logs/compare/torch_${mode}_b$b.json"
    total=$(( total + secs ))
    res=$(verdict)
    case "$res" in
      pass) figs="$figs b$b $(figure torch "$logs/compare/torch_${mode}_b$b.json")" ;;
      skip) figs="$figs b$b skip"  # the baseline's "cannot run here", with its reason
            grep -h '^SKIP' "$logs/torch-$mode-b$b.log" >"$logs/compare/torch_${mode}_b$b.skip" 2>/dev/null ;;
      *) figs="$figs b$b $res" ;;
    esac
    # The line's result: the worst of its runs (FAIL, then cut or not run, then skip).
    [ "$(severity "$res")" -gt "$(severity "$worst")" ] && worst=$res
  done
  baseline=0
  record "$stage" "$worst" "$total" "${figs# }"
}

stage_torch() {
  torch_mode torch/eager eager 20
  torch_mode torch/graph graph 20
}

stage_torch_sweep() {
  local mode
  if [ "$have_python" -eq 0 ]; then record torch-sweep skip 0 "no python3 on this machine"; return; fi
  baseline=1
  for mode in graph eager; do
    run_stage "sweep-torch-vmap-$mode" 25 env PYTHONUNBUFFERED=1 python3 \
      "$bundle/baselines/torch_vmap.py" --data "$data" --models 32 --mode "$mode" \
      --device cuda --batch-size 64 --epochs 3 --json "$logs/sweep_torch_vmap_$mode.json"
    record "torch-sweep/vmap-$mode" "$(verdict)" "$secs" \
      "$(figure sweep "$logs/sweep_torch_vmap_$mode.json")"
  done
  baseline=0
}

stage_torch_compile() {
  torch_mode torch-compile compile 100
}

stage_compare() {
  if [ "$have_python" -eq 0 ]; then record compare skip 0 "no python3 on this machine"; return; fi
  if ! compgen -G "$logs/compare/*.json" >/dev/null; then
    record compare skip 0 "no results in logs/compare to compare"; return
  fi
  run_stage compare 0 python3 "$bundle/baselines/compare_table.py" "$logs/compare"
  record compare "$(verdict)" "$secs" "mlptrain (graph) against torch: logs/compare.log"
}

# ---------------------------------------------------------------- the run
say "mlptrain GPU check: bundle $bundle, output $out_dir, budget ${budget}s"
say "   stages: $(for s in "${order[@]}"; do wanted "$s" && printf '%s(%ss) ' "$s" "${cap[$s]}"; done)"
while IFS= read -r line; do say "   manifest: $line"; done < <(head -n 20 "$bundle/manifest.txt" 2>/dev/null)

for s in "${order[@]}"; do
  wanted "$s" || continue
  begin_stage "$s" || continue
  "stage_${s//-/_}"
done

# ---------------------------------------------------------------- summary
failed=0 not_run=0 skipped=0 passed=0
for r in "${results[@]}"; do
  case "$r" in
    pass) passed=$((passed + 1)) ;;
    skip) skipped=$((skipped + 1)) ;;
    "not run"|cut) not_run=$((not_run + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
finalize
say ""
say "== summary: ${device_desc:-?}; bundle $(sed -n 's/^commit: //p' "$bundle/manifest.txt" 2>/dev/null | head -n 1); $(elapsed) s of a ${budget}s budget; files in $out_dir"
say "   cuBLAS: $cublas_note"
say "   $passed passed, $failed failed (FAIL or timeout), $not_run not run or cut for lack of time, $skipped skipped"
while IFS= read -r line; do say "$line"; done <"$work/table.txt"
[ "$failed" -eq 0 ]
