#!/usr/bin/env bash
# run_cases.sh BINARY OUTDIR
#
# Runs a fixed list of `mlptrain train` / `mlptrain sweep` cases on the CPU with BINARY, each in
# its own folder OUTDIR/CASE/ (also its cwd, so every path the binary writes or prints is
# relative), and keeps what a user sees: OUTDIR/CASE/out.txt (stdout and stderr together, in
# the order written), OUTDIR/CASE/rc (the exit status) and every file the case wrote (models,
# checkpoints + .state.safetensors, metrics, summary.json). Nothing is masked here: the raw
# outputs stay as written; compare.sh masks the timing fields when it compares two OUTDIRs.
#
# Data: MNIST (IDX, gzip or raw) in $MLPTRAIN_GOLDEN_DATA, default the repo's data/mnist when it
# holds the four files, else ../shared/data/mnist beside the repo. The binary reads it through
# the link OUTDIR/_data/mnist (--data ../_data/mnist), so outputs don't depend on where it is.
# OUTDIR/_info.txt records the binary, its --version, the data folder and the core count (not
# compared: the version differs between two builds by design).
#
# Two OUTDIRs compare equal only when made on the same machine (core count and CPU decide the
# threads printed and OpenBLAS's kernels) under the same environment (OMP_*/OPENBLAS_* vars).
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY OUTDIR" >&2
    exit 2
fi
BIN=$(realpath -e "$1") || { echo "$0: no binary $1" >&2; exit 2; }
OUT=$2
[ -x "$BIN" ] || { echo "$0: $BIN is not executable" >&2; exit 2; }
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    echo "$0: $OUT exists and is not empty (give a new or empty folder)" >&2
    exit 2
fi
mkdir -p "$OUT" && OUT=$(realpath "$OUT") || exit 2

REPO=$(cd "$(dirname "$0")/../.." && pwd)
have_mnist() {
    local f
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
             t10k-labels-idx1-ubyte; do
        [ -f "$1/$f.gz" ] || [ -f "$1/$f" ] || return 1
    done
}
if [ -n "${MLPTRAIN_GOLDEN_DATA:-}" ]; then
    DATA=$MLPTRAIN_GOLDEN_DATA
elif have_mnist "$REPO/data/mnist"; then
    DATA=$REPO/data/mnist
else
    DATA=$REPO/../shared/data/mnist
fi
have_mnist "$DATA" || { echo "$0: no MNIST IDX files in $DATA (set MLPTRAIN_GOLDEN_DATA)" >&2; exit 2; }
DATA=$(realpath "$DATA")

mkdir -p "$OUT/_data" && ln -s "$DATA" "$OUT/_data/mnist"
{
    echo "binary: $BIN"
    echo "version: $("$BIN" --version 2>&1)"
    echo "data: $DATA"
    echo "nproc: $(nproc)"
    echo "date: $(date -u +%FT%TZ)"
} >"$OUT/_info.txt"

export LC_ALL=C
# Every case: CPU, no fetching, the linked data, 2000 training and 500 test samples.
COMMON=(--device cpu --no-fetch --data ../_data/mnist --train-samples 2000 --test-samples 500)

# run CASE ARGS...: BINARY ARGS... in OUTDIR/CASE (created if needed), out.txt and rc kept there.
run() {
    local dir=$OUT/$1
    shift
    mkdir -p "$dir"
    (cd "$dir" && exec timeout -k 10 300 "$BIN" "$@") >"$dir/out.txt" 2>&1 </dev/null
    echo $? >"$dir/rc"
    printf '%-28s rc %s\n' "${dir##*/}" "$(cat "$dir/rc")"
}
# seed FROM TO: copy the files case FROM wrote (not its out.txt and rc) into case TO, to resume.
seed() {
    mkdir -p "$OUT/$2"
    (cd "$OUT/$1" && find . -type f ! -path ./out.txt ! -path ./rc -print0 |
        xargs -0 -r cp --parents -p -t "$OUT/$2")
}

T=(train "${COMMON[@]}")
S=(sweep "${COMMON[@]}")
KEEP=(--metrics metrics.jsonl --save-model model.safetensors --checkpoint ckpt.safetensors)
SKEEP=(--metrics metrics.jsonl --save-dir models)

# 1. plain SGD, the defaults (lr 0.1, batch 64)
run 01_train_sgd "${T[@]}" --epochs 3 "${KEEP[@]}"
# 2. SGD momentum, step schedule, random shifts
run 02_train_momentum_step "${T[@]}" --epochs 3 --momentum 0.9 --schedule step --step-size 1 \
    --gamma 0.5 --augment-shift 1 "${KEEP[@]}"
# 3. AdamW, one-cycle schedule, random shifts
run 03_train_adamw_onecycle "${T[@]}" --epochs 3 --optimizer adamw --schedule onecycle \
    --lr 0.003 --augment-shift 1 "${KEEP[@]}"
# 4. case 1 with the fused kernels
run 04_train_fused "${T[@]}" --epochs 3 --kernels fused "${KEEP[@]}"
# 5. resume: 2 epochs with a checkpoint, then --resume it to 3 (b starts from a copy of a's files)
R5=(--momentum 0.9 --augment-shift 1 "${KEEP[@]}")
run 05a_train_resume_first "${T[@]}" --epochs 2 "${R5[@]}"
seed 05a_train_resume_first 05b_train_resume_second
run 05b_train_resume_second "${T[@]}" --epochs 3 --resume ckpt.safetensors "${R5[@]}"
# 5c. resume with a flag that differs from the checkpoint's: refused
seed 05a_train_resume_first 05c_train_resume_mismatch
run 05c_train_resume_mismatch "${T[@]}" --epochs 3 --resume ckpt.safetensors --lr 0.2 "${R5[@]}"
# 6. batch 1024 (train spreads its GEMMs over every core from batch 1024 on)
run 06_train_batch1024 "${T[@]}" --epochs 2 --batch-size 1024 "${KEEP[@]}"
# 7. progress lines every 10 steps
run 07_train_log_interval "${T[@]}" --epochs 2 --log-interval 10 --metrics metrics.jsonl
# 8. divergence: lr 1000 is non-finite at step 4 of epoch 1
run 08a_train_nan_stop "${T[@]}" --epochs 3 --lr 1000 --on-nan stop "${KEEP[@]}"      # exit 1
run 08b_train_nan_skip "${T[@]}" --epochs 3 --lr 1000 --on-nan skip-batch "${KEEP[@]}" # exit 1 in epoch 2
run 08c_train_nan_skip_finishes "${T[@]}" --epochs 3 --lr 20 --on-nan skip-batch "${KEEP[@]}" # skips, exit 0
# 9. sweep with diverging models (lr 1000: one stops, one survives)
run 09a_sweep_diverging "${S[@]}" --epochs 3 --lr 0.05,0.1,1000 --seed 1,2 "${SKEEP[@]}" \
    --save-best best.safetensors --checkpoint-dir ckpt
run 09b_sweep_all_diverge "${S[@]}" --epochs 2 --lr 1000 --seed 1,3 "${SKEEP[@]}"  # exit 1
# 10. sweep: AdamW one-cycle, two shapes (two groups), shifts
run 10_sweep_adamw_onecycle "${S[@]}" --epochs 3 --optimizer adamw --schedule onecycle \
    --lr 0.001,0.003 --hidden 128,64/32 --augment-shift 1 "${SKEEP[@]}"
# 11. sweep resume: 2 epochs into --checkpoint-dir, then --epochs 3 --resume it
S11=(--lr 0.05,0.1 --seed 1,2 --momentum 0.9 --checkpoint-dir ckpt "${SKEEP[@]}")
run 11a_sweep_resume_first "${S[@]}" --epochs 2 "${S11[@]}"
seed 11a_sweep_resume_first 11b_sweep_resume_second
run 11b_sweep_resume_second "${S[@]}" --epochs 3 --resume ckpt "${S11[@]}"
# 11c. partial resume: one model's checkpoint missing, so it starts from epoch 1 beside the others
seed 11a_sweep_resume_first 11c_sweep_resume_partial
gone=$OUT/11c_sweep_resume_partial/ckpt/h128x64_m0.9_lr0.1_seed2
[ -f "$gone.safetensors" ] || echo "$0: warning: no checkpoint $gone.safetensors to remove" >&2
rm -f "$gone.safetensors" "$gone.state.safetensors"
run 11c_sweep_resume_partial "${S[@]}" --epochs 3 --resume ckpt "${S11[@]}"
# 11d. resume of a finished sweep: every model already has its epochs (test pass only)
seed 11b_sweep_resume_second 11d_sweep_resume_finished
run 11d_sweep_resume_finished "${S[@]}" --epochs 3 --resume ckpt "${S11[@]}"
# 12. sweep with the fused kernels
run 12_sweep_fused "${S[@]}" --epochs 3 --kernels fused --lr 0.05,0.1 "${SKEEP[@]}"
# 13. bad flag values: the error text and exit status
run 13a_train_bad_batch "${T[@]}" --batch-size 0
run 13b_sweep_bad_batch "${S[@]}" --batch-size 0
run 13c_sweep_repeated_lr "${S[@]}" --lr 0.1,0.1
run 13d_train_bad_optimizer "${T[@]}" --optimizer foo
exit 0
