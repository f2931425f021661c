#!/usr/bin/env python3
"""Checks the plan of the GPU check (tests/gpu/run.sh) without a GPU.

    check_run_plan.py [RUN_SH]        (default: run.sh beside this file)

run.sh runs from one table of stages (`plan`: name, cap in seconds, always / default /
opt-in) and three numbers (default_budget_s, overhead_s, call_limit_s). Read from run.sh's
own text, they must describe one call of at most 540 s:

  * every stage that runs by default has a positive cap, and a function stage_NAME runs it;
  * the default stages' caps plus the overhead fit 540 s, and so does the default budget
    plus the overhead; the caps fit in the budget (no default stage is left out by the
    plan itself); torch.compile with only smi, libs, bench and compare fits a call too;
  * torch-compile is opt-in, and the PyTorch stages come after the CUDA backend's own;
  * the sanitizers reach the fused kernels, bf16 and a batched sweep;
  * the header lists each stage with the cap of the table, and the default budget.

Then it runs run.sh (each run bounded by `timeout 20`, never a GPU): `--plan` must print
the same table and pick the default stages (and torch-compile only when asked for); without
nvidia-smi on PATH, and with a stand-in nvidia-smi that lists no GPU, run.sh must exit
non-zero at once saying "no NVIDIA GPU" and write nothing; and past the GPU check, with
stand-ins for the bundle's binaries and compute-sanitizer, a run whose stages run out of
time exits 0 (not run is no failure) while a failing stage makes it exit 1, the summary
table being the last lines. Exit 1 lists every problem.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys
import tempfile

CALL_LIMIT_S = 540
KINDS = ("always", "default", "opt-in")
# The CUDA backend's own stages, which run before any PyTorch baseline.
OWN_STAGES = ("gpu-tests", "train", "bench", "sweep", "sanitize")
TIMEOUT = shutil.which("timeout")
BASH = shutil.which("bash") or "/bin/bash"

problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)


def read_plan(text: str):
    m = re.search(r"^plan=\$\(cat <<'PLAN'\n(.*?)^PLAN\n\)", text, re.S | re.M)
    if not m:
        problem("run.sh: no table `plan=$(cat <<'PLAN' ... PLAN)` found")
        return []
    rows = []
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[1].isdigit() or fields[2] not in KINDS:
            problem(f"run.sh plan: '{line}' is not 'stage cap always|default|opt-in'")
            continue
        rows.append((fields[0], int(fields[1]), fields[2]))
    return rows


def number(text: str, name: str) -> int:
    m = re.search(rf"^{name}=(\d+)\b", text, re.M)
    if not m:
        problem(f"run.sh: no line {name}=SECONDS")
        return 0
    return int(m.group(1))


def function_body(text: str, name: str) -> str:
    m = re.search(rf"^{re.escape(name)}\(\) \{{\n(.*?)^\}}", text, re.S | re.M)
    return m.group(1) if m else ""


def check_text(run_sh: pathlib.Path):
    text = run_sh.read_text()
    rows = read_plan(text)
    budget = number(text, "default_budget_s")
    overhead = number(text, "overhead_s")
    call = number(text, "call_limit_s")
    if not rows:
        return rows, budget
    names = [r[0] for r in rows]
    cap = {r[0]: r[1] for r in rows}
    kind = {r[0]: r[2] for r in rows}
    if len(set(names)) != len(names):
        problem(f"run.sh plan: a stage is listed twice: {names}")
    runs_by_default = [n for n in names if kind[n] in ("always", "default")]

    for n in names:
        if kind[n] != "opt-in" and cap[n] <= 0:
            problem(f"run.sh plan: default stage {n} has no cap (0 s)")
        if not function_body(text, "stage_" + n.replace("-", "_")):
            problem(f"run.sh: no function stage_{n.replace('-', '_')} for the stage {n}")

    total = sum(cap[n] for n in runs_by_default)
    print(f"check_run_plan: default stages {' '.join(runs_by_default)}")
    print(f"check_run_plan: caps {total} s + overhead {overhead} s = {total + overhead} s; "
          f"budget {budget} s; one call {CALL_LIMIT_S} s")
    if call != CALL_LIMIT_S:
        problem(f"run.sh: call_limit_s={call}, the plan is for one call of {CALL_LIMIT_S} s")
    if overhead < 20:
        problem(f"run.sh: overhead_s={overhead} leaves too little for the unpack and the summary")
    if total + overhead > CALL_LIMIT_S:
        problem(f"run.sh plan: the default stages' caps ({total} s) and the overhead "
                f"({overhead} s) make {total + overhead} s, over {CALL_LIMIT_S} s")
    if not 0 < budget <= CALL_LIMIT_S or budget + overhead > CALL_LIMIT_S:
        problem(f"run.sh: the default budget {budget} s and the overhead {overhead} s "
                f"do not fit {CALL_LIMIT_S} s")
    if total > budget:
        problem(f"run.sh plan: the default stages' caps ({total} s) exceed the default budget "
                f"({budget} s): the last would never run")

    if kind.get("torch-compile") != "opt-in":
        problem("run.sh plan: torch-compile must be a stage, and opt-in (not run by default)")
    else:
        alone = [n for n in names if kind[n] == "always"] + ["bench", "torch-compile", "compare"]
        alone_total = sum(cap.get(n, 0) for n in alone)
        if alone_total + overhead > CALL_LIMIT_S:
            problem(f"run.sh plan: torch-compile on its own ({' '.join(alone)}: {alone_total} s "
                    f"+ {overhead} s) does not fit one call of {CALL_LIMIT_S} s")
    missing = [n for n in OWN_STAGES if kind.get(n) != "default"]
    if missing:
        problem(f"run.sh plan: {' '.join(missing)} must be default stages")
    torch_stages = [n for n in names if n.startswith("torch")]
    last_own = max((names.index(n) for n in OWN_STAGES if n in names), default=-1)
    early = [n for n in torch_stages if names.index(n) < last_own]
    if early:
        problem(f"run.sh plan: the PyTorch stage(s) {' '.join(early)} run before the CUDA "
                f"backend's own stages ({' '.join(OWN_STAGES)})")

    sanitize = function_body(text, "stage_sanitize")
    for needle, what in (("--kernels fused", "the fused kernels"),
                         ("--precision bf16", "bf16"), ("sweep", "a batched sweep"),
                         ("racecheck", "racecheck"), ("synccheck", "synccheck")):
        if needle not in sanitize:
            problem(f"run.sh stage_sanitize: no run with {what} ('{needle}')")

    header = text.split("\nset -uo pipefail", 1)[0]
    for n in names:
        if not re.search(rf"^#\s+{re.escape(n)}\s+{cap[n]}\s", header, re.M):
            problem(f"run.sh header: no line '#   {n}  {cap[n]}  ...' (the plan's cap)")
    prose = " ".join(header.replace("#", " ").split())
    if f"caps add up to {total} s, and {overhead} s are left" not in prose:
        problem(f"run.sh header: does not say the default stages' caps add up to {total} s, "
                f"and {overhead} s are left")
    defaults = " ".join(n for n in names if kind[n] == "default")
    if f'MLPTRAIN_GPU_STAGES="{defaults}"' not in header:
        problem(f'run.sh header: does not give the default MLPTRAIN_GPU_STAGES="{defaults}"')
    if f"MLPTRAIN_GPU_BUDGET_S={budget}" not in header:
        problem(f"run.sh header: does not give the default budget MLPTRAIN_GPU_BUDGET_S={budget}")
    return rows, budget


def clean_env(path: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPTRAIN_") and k != "OUT"}
    env["PATH"] = path
    env.update(extra)
    return env


def path_without_nvidia_smi() -> str:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.access(os.path.join(d, "nvidia-smi"), os.X_OK)]
    return os.pathsep.join(dirs)


def run(args: list[str], env: dict, cwd: str, limit: int = 20):
    """run.sh under `timeout LIMIT` (and a Python timeout a little longer, should timeout be
    missing); returns (rc, stdout, stderr)."""
    command = ([TIMEOUT, str(limit)] if TIMEOUT else []) + [BASH] + args
    try:
        p = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                           timeout=limit + 10)
    except subprocess.TimeoutExpired:
        return 124, "", f"(killed after {limit + 10} s)"
    return p.returncode, p.stdout, p.stderr


def check_plan_output(run_sh: pathlib.Path, rows, budget: int, tmp: str) -> None:
    path = path_without_nvidia_smi()
    for extra, compile_expected in (({}, False), ({"MLPTRAIN_GPU_TORCH_COMPILE": "1"}, True)):
        rc, out, err = run([str(run_sh), "--plan"], clean_env(path, **extra), tmp)
        label = "run.sh --plan" + (" with MLPTRAIN_GPU_TORCH_COMPILE=1" if extra else "")
        if rc != 0:
            problem(f"{label}: exit {rc}: {err.strip()}")
            continue
        printed = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) == 4 and f[1].isdigit():
                printed[f[0]] = (int(f[1]), f[2], f[3])
        for name, cap, kind in rows:
            expected_run = "yes" if kind != "opt-in" or compile_expected else "no"
            if printed.get(name) != (cap, kind, expected_run):
                problem(f"{label}: stage {name}: printed {printed.get(name)}, the table says "
                        f"({cap}, '{kind}', '{expected_run}')")
        if f"budget: {budget} s" not in out:
            problem(f"{label}: does not print 'budget: {budget} s'")


def check_no_gpu(run_sh: pathlib.Path, tmp: str) -> None:
    stand_in = pathlib.Path(tmp, "no-gpu-bin")
    stand_in.mkdir()
    smi = stand_in / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    bare = path_without_nvidia_smi()
    for label, path in (("without nvidia-smi", bare),
                        ("with an nvidia-smi that lists no GPU", f"{stand_in}{os.pathsep}{bare}")):
        cwd = pathlib.Path(tmp, "cwd-" + label.split()[0])
        cwd.mkdir()
        out_dir = pathlib.Path(tmp, "out-" + label.split()[0])
        rc, out, err = run([str(run_sh)], clean_env(path, OUT=str(out_dir)), str(cwd))
        if rc == 0 or rc == 124:
            problem(f"run.sh {label}: exit {rc}, expected a non-zero exit at once")
        if "no NVIDIA GPU" not in out + err:
            problem(f"run.sh {label}: does not say 'no NVIDIA GPU': {(out + err).strip()[:300]}")
        if out_dir.exists() or any(cwd.iterdir()):
            problem(f"run.sh {label}: wrote files ({out_dir} or {cwd}/out)")
        print(f"check_run_plan: run.sh {label}: exit {rc}: {(out + err).strip()[:160]}")


STUB_BINARY = """#!/bin/bash
echo "$(basename "$0") $*"
[ -n "${STUB_FAIL:-}" ] && [ "$(basename "$0")" = "$STUB_FAIL" ] && exit 1
echo "epoch 10/10 loss 0.1 time 1.0s"
echo "final test_acc 98.0%"
"""
STUB_SANITIZER = """#!/bin/bash
tool=$2; shift 4
sleep "${STUB_SANITIZER_S:-0}"
"$@"; rc=$?
echo "========= ERROR SUMMARY: 0 errors ($tool)"
exit $rc
"""
STUB_SMI = """#!/bin/sh
case "$1" in -L) echo "GPU 0: stand-in (UUID: GPU-0)" ;;
  --query-gpu=*) echo "stand-in, 9.0, 0, 0 MiB" ;; *) echo "stand-in nvidia-smi" ;; esac
"""


def check_stand_in_run(run_sh: pathlib.Path, tmp: str) -> None:
    """run.sh past the GPU check with stand-ins: the results, the exit status, the table."""
    bundle = pathlib.Path(tmp, "bundle")
    fake = pathlib.Path(tmp, "stand-in-bin")
    for d in (bundle / "bin", bundle / "lib", bundle / "data" / "mnist", fake):
        d.mkdir(parents=True)
    shutil.copy(run_sh, bundle / "run.sh")
    figures = run_sh.parent / "figures.py"
    if figures.exists():
        shutil.copy(figures, bundle / "figures.py")
    (bundle / "manifest.txt").write_text("commit: stand-in\n")
    files = {bundle / "bin" / b: STUB_BINARY
             for b in ("mlptrain", "mlptrain_gpu_tests", "mlptrain-bench",
                       "mlptrain-bench-kernels")}
    files.update({fake / "compute-sanitizer": STUB_SANITIZER, fake / "nvidia-smi": STUB_SMI})
    for f, body in files.items():
        f.write_text(body)
        f.chmod(0o755)
    path = f"{fake}{os.pathsep}{path_without_nvidia_smi()}"
    cases = (
        # The sanitizers' stage has 8 s: two runs of 2 s, then too little for a third.
        ("stages out of time", 0, {"STUB_SANITIZER_S": "2", "MLPTRAIN_GPU_CAPS": "sanitize=8",
                                   "MLPTRAIN_GPU_STAGES": "gpu-tests train sanitize"}),
        ("a failing GPU suite", 1, {"STUB_FAIL": "mlptrain_gpu_tests",
                                    "MLPTRAIN_GPU_STAGES": "gpu-tests train"}),
    )
    for label, expected_rc, extra in cases:
        out_dir = pathlib.Path(tmp, "out-" + label.split()[0])
        rc, out, err = run([str(bundle / "run.sh")], clean_env(path, OUT=str(out_dir), **extra),
                           tmp, limit=60)
        lines = out.rstrip("\n").splitlines()
        print(f"check_run_plan: run.sh with stand-ins, {label}: exit {rc}")
        if rc != expected_rc:
            problem(f"run.sh with stand-ins, {label}: exit {rc}, expected {expected_rc}\n"
                    + "\n".join(lines[-25:]) + err[-500:])
            continue
        # The table is the last lines: its header, then one line per run.
        try:
            start = max(i for i, l in enumerate(lines) if re.match(r"^stage\s+result\s+secs", l))
        except ValueError:
            problem(f"run.sh with stand-ins, {label}: no summary table")
            continue
        table = {}
        for line in lines[start + 1:]:
            m = re.match(r"^(\S+)\s+(pass|FAIL|timeout|cut|not run|skip)\s", line)
            if not m:
                problem(f"run.sh with stand-ins, {label}: '{line}' is not a table line")
                continue
            table[m.group(1)] = m.group(2)
        if expected_rc == 0:
            if table.get("sanitize/memcheck-generic") != "pass" or \
               list(table.values()).count("not run") < 1 or "FAIL" in table.values():
                problem(f"run.sh with stand-ins, {label}: unexpected table:\n"
                        + "\n".join(lines[start:]))
        elif table.get("gpu-tests") != "FAIL" or table.get("train") != "pass":
            problem(f"run.sh with stand-ins, {label}: unexpected table:\n"
                    + "\n".join(lines[start:]))
        written = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
        if written != ["logs.tar.gz", "results.json", "run.log", "summary.txt"]:
            problem(f"run.sh with stand-ins, {label}: wrote {written}")


def main() -> int:
    run_sh = pathlib.Path(sys.argv[1] if len(sys.argv) > 1
                          else pathlib.Path(__file__).with_name("run.sh")).resolve()
    if not run_sh.is_file():
        print(f"check_run_plan: no {run_sh}")
        return 1
    p = subprocess.run([BASH, "-n", str(run_sh)], capture_output=True, text=True)
    if p.returncode != 0:
        problem(f"bash -n run.sh: {p.stderr.strip()}")
    rows, budget = check_text(run_sh)
    with tempfile.TemporaryDirectory(prefix="check-run-plan.") as tmp:
        if rows:
            check_plan_output(run_sh, rows, budget, tmp)
        check_no_gpu(run_sh, tmp)
        check_stand_in_run(run_sh, tmp)
    for p in problems:
        print(p)
    print(f"check_run_plan: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
