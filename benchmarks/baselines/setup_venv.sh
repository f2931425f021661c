#!/usr/bin/env bash
# Create (or update) the virtual environment the Python baselines run in.
#
#   benchmarks/baselines/setup_venv.sh numpy   # numpy only (numpy_mlp.py)
#   benchmarks/baselines/setup_venv.sh torch   # numpy + torch (torch_mlp.py too); the default
#
# Where:   $MLPTRAIN_VENV, else .venv-bench at the repository root.
# Python:  $PYTHON, else python3 (torch 2.15 needs Python >= 3.11).
# Packages come from PyPI by the pins in requirements-*.txt (pip's own settings and PIP_*
# variables apply, e.g. PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels on an offline machine).
#
# torch: PyPI's Linux wheel is built for CUDA and pulls ~2.5 GB of nvidia-*/cuda-*/triton wheels.
#   - where `nvidia-smi -L` works (a GPU machine): the full install, as PyPI intends it;
#   - elsewhere, lean, stopping at the first stage whose torch imports and trains a tiny model:
#       1. torch --no-deps + its pure-Python dependencies (works where a matching CUDA runtime
#          is installed system-wide);
#       2. + the few CUDA libraries a system CUDA toolkit usually lacks or has too old
#          (cuFile, cuSPARSELt, NVSHMEM, NCCL: ~0.5 GB), the rest coming from the system
#          toolkit (e.g. /usr/local/cuda-13.0 on this project's machines);
#       3. the full install.
#   MLPTRAIN_TORCH_INSTALL=full forces the full install, =lean stops after stage 2.
#
# Exit status: 0 ready; 1 error; 3 numpy is ready but torch could not be made to work (the
# torch baseline will then print "SKIP torch ..." and exit 3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${MLPTRAIN_VENV:-$root/.venv-bench}"
python="${PYTHON:-python3}"
what="${1:-torch}"
install_mode="${MLPTRAIN_TORCH_INSTALL:-auto}"

case "$what" in
  numpy|torch) ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "usage: $0 [numpy|torch]  (got '$what')" >&2; exit 1 ;;
esac
case "$install_mode" in
  auto|lean|full) ;;
  *) echo "error: MLPTRAIN_TORCH_INSTALL must be auto, lean or full (got '$install_mode')" >&2; exit 1 ;;
esac

say() { echo "setup_venv: $*"; }

if [ ! -x "$venv/bin/python" ]; then
  command -v "$python" >/dev/null || { echo "error: no '$python' on PATH (set PYTHON)" >&2; exit 1; }
  say "creating $venv with $("$python" --version 2>&1)"
  if ! "$python" -m venv "$venv"; then
    echo "error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
# pip for the lean stages: its resolver then complains that torch's CUDA wheels are missing,
# which is the point; show its output only when pip itself fails.
pip_lean() {
  local log
  log="$(mktemp)"
  if ! pip "$@" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; return 1
  fi
  if grep -q "dependency conflicts" "$log"; then
    say "(pip notes that torch's other CUDA wheels are not installed: intended)"
  fi
  rm -f "$log"
}

say "numpy: pip install -r requirements-numpy.txt"
pip install -q -r "$here/requirements-numpy.txt"
"$py" -c 'import numpy; print("setup_venv: numpy", numpy.__version__, "OK")'

[ "$what" = numpy ] && { say "ready: $venv ($(du -sh "$venv" | cut -f1))"; exit 0; }

# ------------------------------------------------------------------------------------- torch

# Trains two SGD steps of a tiny MLP on the CPU (and checks CUDA when asked); prints why not.
torch_works() {
  "$py" - "$1" <<'EOF' 2>&1
import sys
try:
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
except Exception as e:
    print(f"torch does not work: {type(e).__name__}: {e}")
    sys.exit(1)
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    print(f"torch {torch.__version__} works on the CPU, but CUDA is not available to it "
          f"(built for CUDA {torch.version.cuda}; is the NVIDIA driver new enough?)")
    sys.exit(2)
print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}) works"
      + (f" on {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else " on the CPU"))
EOF
}

# Requirement strings from the installed torch's metadata: "pure" (its Python-only
# dependencies) or "gaps" (the CUDA libraries a system toolkit usually lacks).
torch_requirements() {
  "$py" - "$1" <<'EOF'
import importlib.metadata, re, sys
kind = sys.argv[1]
gaps = re.compile(r"^nvidia-(nccl|cusparselt|nvshmem|cufile)(-cu\d+)?$", re.I)
for req in importlib.metadata.requires("torch") or []:
    if "extra ==" in req:
        continue  # optional extras (optree, opt-einsum, pyyaml)
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?(.*)$", req)
    name, extras, rest = m.group(1), m.group(2) or "", m.group(3)
    low = name.lower()
    cuda = low.startswith(("nvidia-", "cuda-", "triton"))
    if kind == "pure" and not cuda:
        print(req)
    elif kind == "gaps":
        if gaps.match(low):
            print(req)
        elif low == "cuda-toolkit" and "cufile" in extras:
            print(f"{name}[cufile]{rest}")  # the meta-package, with only cuFile
EOF
}

full_install() {
  say "torch: full install (pip install -r requirements-torch.txt, with its CUDA wheels, ~2.5 GB)"
  pip install -q -r "$here/requirements-torch.txt"
}

target=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  target=cuda
  [ "$install_mode" = auto ] && install_mode=full
fi

if [ "$install_mode" = full ]; then
  full_install
  if msg="$(torch_works "$target")"; then
    say "$msg"; say "ready: $venv ($(du -sh "$venv" | cut -f1))"; exit 0
  fi
  say "$msg"
  echo "setup_venv: torch could not be made to work here; torch_mlp.py will SKIP (exit 3)" >&2
  exit 3
fi

say "torch: stage 1: torch --no-deps + its pure-Python dependencies (no CUDA wheels)"
pip_lean install -q --no-deps -r "$here/requirements-torch.txt"
mapfile -t pure < <(torch_requirements pure)
pip_lean install -q "${pure[@]}"
if msg="$(torch_works cpu)"; then
  say "$msg"; say "ready (stage 1): $venv ($(du -sh "$venv" | cut -f1))"; exit 0
fi
say "stage 1: $msg"

mapfile -t gaps < <(torch_requirements gaps)
if [ "${#gaps[@]}" -gt 0 ]; then
  names=(); for g in "${gaps[@]}"; do names+=("${g%%;*}"); done
  say "torch: stage 2: + ${names[*]} (the rest from the system CUDA libraries)"
  pip_lean install -q "${gaps[@]}"
  if msg="$(torch_works cpu)"; then
    say "$msg"; say "ready (stage 2): $venv ($(du -sh "$venv" | cut -f1))"; exit 0
  fi
  say "stage 2: $msg"
fi

if [ "$install_mode" = auto ]; then
  say "torch: stage 3"
  full_install
  if msg="$(torch_works cpu)"; then
    say "$msg"; say "ready (stage 3): $venv ($(du -sh "$venv" | cut -f1))"; exit 0
  fi
  say "stage 3: $msg"
fi

echo "setup_venv: torch could not be made to work here; numpy is ready, torch_mlp.py will SKIP (exit 3)" >&2
exit 3
