#!/usr/bin/env bash
# A sharded sweep as a Slurm job array: task K of N runs the configurations whose index is
# K mod N and writes its models and summary.json to sweep-out/shard-K; a last job, after
# all of them, joins the summaries into one leaderboard.
#
#   sbatch docs/jobs/sweep_slurm.sh                         # 4 shards
#   sbatch --dependency=afterok:JOBID --wrap \
#       "build/mlptrain sweep-merge sweep-out/shard-* --out sweep-out/summary.json"
#
# Every task must see the same flags (the shards' summaries carry a fingerprint of them,
# and sweep-merge refuses a mix) and the same data folder.
#SBATCH --job-name=mlptrain-sweep
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=01:00:00
#SBATCH --output=sweep-out/slurm-%A_%a.log
set -euo pipefail

n_shards=$((SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1))
k=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN))
mkdir -p sweep-out
# A requeued task continues each model from its last checkpoint.
resume=()
if [ -d "sweep-out/ckpt-$k" ]; then resume=(--resume "sweep-out/ckpt-$k"); fi
exec build/mlptrain sweep --data "${DATA:-data/mnist}" --device "${DEVICE:-auto}" \
    --lr 0.02,0.05,0.1,0.2 --momentum 0,0.9 --seed 1..4 --epochs 10 \
    --threads "${SLURM_CPUS_PER_TASK:-0}" \
    --shard "$k/$n_shards" --save-dir "sweep-out/shard-$k" \
    --checkpoint-dir "sweep-out/ckpt-$k" --checkpoint-every 2 "${resume[@]}"
