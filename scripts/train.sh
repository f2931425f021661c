#!/usr/bin/env bash
# Sets up, builds and runs the default training (the notebook's run).
# Extra arguments go to `mlptrain train`. Without --data/--dataset it trains
# on MNIST when it can get it (the project's mirror folder, data/mnist, or a
# download), else on Fashion-MNIST from Debian's package, and says which.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$repo_root/scripts/setup.sh"
build

data_args=()
if ! printf '%s\n' "$@" | grep -qE '^--(data|dataset)$'; then
  mirror="$repo_root/../shared/data/mnist"
  if compgen -G "$mirror/train-images*idx3-ubyte*" >/dev/null; then
    # mlptrain checks the files itself (format, counts, labels), so the
    # mirror is read in place rather than copied.
    echo "data: MNIST (the mirror folder $mirror)"
    data_args=(--data "$mirror")
  elif "$repo_root/data/fetch" mnist >&2; then
    echo "data: MNIST (data/mnist)"
    data_args=(--dataset mnist)
  else
    echo "data: MNIST is not available here (no mirror folder, no download);" \
         "using Fashion-MNIST from Debian's dataset-fashion-mnist"
    data_args=(--dataset fashion-mnist)
  fi
fi
exec "$build_dir/mlptrain" train "${data_args[@]}" "$@"
