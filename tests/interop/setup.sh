#!/usr/bin/env bash
# Fixture of the interop tests (CTest label "interop"): makes the Python environment
# (tools/setup_venv.sh; fails, never skips, when PyPI cannot be reached and nothing is cached)
# and, in WORKDIR, a small Fashion-MNIST model with what mlptrain says about it:
#   m.safetensors      train --train-samples 5000 --epochs 2 --save-model
#   m.jsonl            its --metrics file
#   eval.json          eval --json
#   predictions.json   predict --idx <t10k images> --all --json --top-k <n_classes>
#   images.txt         the path of the test images file, labels.txt that of the labels
#
#   tests/interop/setup.sh MLPTRAIN_BINARY WORKDIR
set -euo pipefail

mlptrain="$1"
work="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

"$root/tools/setup_venv.sh" >/dev/null

# The first existing file of a glob, or nothing.
first() { for f in "$@"; do if [ -f "$f" ]; then echo "$f"; return; fi; done; }

# DESIGN.md's lookup: the project's data/ folder, then the system one.
data=""
for d in "$root/data/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  if [ -n "$(first "$d"/t10k-images*idx3-ubyte*)" ]; then data="$d"; break; fi
done
if [ -z "$data" ]; then
  echo "interop: no Fashion-MNIST in $root/data/fashion-mnist or" \
       "/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist," \
       "or data/fetch fashion-mnist)" >&2
  exit 1
fi
images="$(first "$data"/t10k-images*idx3-ubyte*)"
labels="$(first "$data"/t10k-labels*idx1-ubyte*)"

rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$mlptrain" train --data "$data" --device cpu --train-samples 5000 --epochs 2 \
  --metrics m.jsonl --save-model m.safetensors
"$mlptrain" eval --data "$data" --device cpu --model m.safetensors --json > eval.json
"$mlptrain" predict --model m.safetensors --idx "$images" --all --json --top-k 10 \
  > predictions.json
echo "$images" > images.txt
echo "$labels" > labels.txt
echo "interop: fixture ready in $work"
