#!/usr/bin/env bash
# The CPU sweep case: N models of the default configuration (seeds 1..N, batch 64) trained
# by one `mlptrain sweep` against N sequential `mlptrain train` runs, in one run, on the
# same data. Prints both wall times, the training-pass times, and their ratios (the
# target: sweep <= 0.55x sequential for N = 8 on 2 cores), and checks that
# every sweep model ended with the test accuracy of its train run.
#
#   benchmarks/bench_sweep.sh [--models N] [--epochs E] [--data DIR] [--mlptrain BIN]
#                             [--out DIR]
#
#   --models    how many models (default 8); --epochs per model (default 2)
#   --data      the four IDX files (default ../shared/data/mnist, else data/mnist)
#   --mlptrain  the binary (default build-cpu/mlptrain, else build/mlptrain)
#   --out       where the logs and result.json go (default out/bench-sweep-DATE-TIME)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
die() { echo "bench_sweep.sh: error: $*" >&2; exit 2; }

models=8
epochs=2
data=""
bin=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) [ $# -ge 2 ] || die "--models needs a count"; models="$2"; shift 2 ;;
    --epochs) [ $# -ge 2 ] || die "--epochs needs a count"; epochs="$2"; shift 2 ;;
    --data) [ $# -ge 2 ] || die "--data needs a folder"; data="$2"; shift 2 ;;
    --mlptrain) [ $# -ge 2 ] || die "--mlptrain needs a path"; bin="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a folder"; out="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
               exit 0 ;;
    *) die "unknown argument '$1' (--help)" ;;
  esac
done
[[ "$models" =~ ^[1-9][0-9]*$ ]] || die "--models '$models' is not a positive count"
[[ "$epochs" =~ ^[1-9][0-9]*$ ]] || die "--epochs '$epochs' is not a positive count"
if [ -z "$data" ]; then
  for d in "$root/../shared/data/mnist" "$root/data/mnist"; do
    if [ -d "$d" ]; then data="$d"; break; fi
  done
fi
[ -n "$data" ] && [ -d "$data" ] || die "no data folder (give --data DIR)"
if [ -z "$bin" ]; then
  for b in "$root/build-cpu/mlptrain" "$root/build/mlptrain"; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no mlptrain binary (build it, or give --mlptrain BIN)"
out="${out:-$root/out/bench-sweep-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"

# Each phase's wall time and the CPU time (user + system) its processes used: on a shared
# machine the CPU times show what the sweep saves even when it could not get the cores.
TIMEFORMAT='%R %U %S'
cpu_of() { awk '{ printf "%.3f", $2 + $3 }' "$1"; }
wall_of() { awk '{ printf "%.3f", $1 }' "$1"; }
# Sum of the training-pass times of the epoch lines in a log.
train_seconds() { grep -oE ' time [0-9.]+s' "$1" | awk '{ sub(/s$/, "", $2); t += $2 } END { printf "%.3f", t }'; }

echo "bench_sweep: $models models x $epochs epochs, batch 64, $data, $(nproc) cores"
{ time (
  for ((s = 1; s <= models; s++)); do
    "$bin" train --data "$data" --device cpu --epochs "$epochs" --seed "$s" \
        --save-model "$out/train_seed$s.safetensors" > "$out/train_seed$s.log"
  done
) ; } 2> "$out/time_sequential"
{ time "$bin" sweep --data "$data" --device cpu --epochs "$epochs" --seed "1..$models" \
    --save-dir "$out/sweep" > "$out/sweep.log" ; } 2> "$out/time_sweep"
load=$(cut -d' ' -f1-3 /proc/loadavg)

seq_wall=$(wall_of "$out/time_sequential")
sweep_wall=$(wall_of "$out/time_sweep")
seq_cpu=$(cpu_of "$out/time_sequential")
sweep_cpu=$(cpu_of "$out/time_sweep")
seq_train=0
for ((s = 1; s <= models; s++)); do
  seq_train=$(awk -v a="$seq_train" -v b="$(train_seconds "$out/train_seed$s.log")" 'BEGIN { printf "%.3f", a + b }')
done
sweep_train=$(train_seconds "$out/sweep.log")

# Every sweep model must be the train run's model, byte for byte.
same=0
for ((s = 1; s <= models; s++)); do
  if cmp -s "$out/train_seed$s.safetensors" "$out/sweep/h128x64_lr0.1_seed$s.safetensors"; then
    same=$((same + 1))
  fi
done

python3 - "$out" "$models" "$epochs" "$seq_wall" "$sweep_wall" "$seq_train" "$sweep_train" \
    "$same" "$(nproc)" "$seq_cpu" "$sweep_cpu" "$load" <<'PY'
import json, sys
out, models, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seq_wall, sweep_wall, seq_train, sweep_train = map(float, sys.argv[4:8])
same, cores = int(sys.argv[8]), int(sys.argv[9])
seq_cpu, sweep_cpu, load = float(sys.argv[10]), float(sys.argv[11]), sys.argv[12]
r = {"models": models, "epochs": epochs, "batch_size": 64, "cores": cores,
     "load_average": load,
     "sequential_wall_s": seq_wall, "sweep_wall_s": sweep_wall,
     "sequential_cpu_s": seq_cpu, "sweep_cpu_s": sweep_cpu,
     "sequential_train_s": seq_train, "sweep_train_s": sweep_train,
     "wall_ratio": sweep_wall / seq_wall, "train_ratio": sweep_train / seq_train,
     "cpu_ratio": sweep_cpu / seq_cpu,
     "identical_models": same, "target_ratio": 0.55}
json.dump(r, open(f"{out}/result.json", "w"), indent=2)
print(f"sequential train x{models}: {seq_wall:7.2f} s wall, {seq_cpu:7.2f} s CPU, "
      f"{seq_train:7.2f} s in epoch lines")
print(f"one sweep of {models}:      {sweep_wall:7.2f} s wall, {sweep_cpu:7.2f} s CPU, "
      f"{sweep_train:7.2f} s in epoch lines (training and test passes)")
print(f"ratio sweep/sequential: wall {r['wall_ratio']:.3f} (target <= 0.55), "
      f"CPU {r['cpu_ratio']:.3f}; load average at the end {load} on {cores} cores")
print(f"sweep models identical to their train runs: {same}/{models}")
print(f"results: {out}/result.json")
PY
