#!/usr/bin/env python3
"""MNIST in one run three ways: mlptrain.MLPClassifier, the mlptrain CLI, scikit-learn.

    python benchmarks/python_fit.py [--data FOLDER] [--device cpu|cuda] [--threads N]
                                    [--epochs 10] [--cli PATH] [--skip-sklearn] [--json OUT]

All three train the 784-128-64-10 ReLU network of examples/mnist.ipynb (plain SGD, lr 0.1,
batch 64, no L2 penalty, seed 42) on the 60,000 training images scaled to [0, 1] in float32,
on the same device and number of threads, and are scored on the 10,000 test images.

What it checks, and why these figures:
- "python / CLI": whole MLPClassifier.fit() (input validation, initialisation, copying the data
  to the device, shuffles and epochs) over the CLI's training passes (the sum of its per-epoch
  "epoch_time_s", which excludes loading the files and the per-epoch test evaluation). That
  charges the Python layer with all its overhead, so the target (<= 1.1) bounds it.
- "sklearn / mlptrain python": scikit-learn's fit() over mlptrain's whole fit() (target >= 4),
  twice: on float64 input (what X / 255.0 gives, and so what scikit-learn trains on unless told
  otherwise) and on float32 input (scikit-learn then computes in float32, as mlptrain does).
Every run starts cold (no warm-up epoch), as a user's first fit() does.
"""
import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
HIDDEN = (128, 64)
BATCH, LR, SEED = 64, 0.1, 42


def find_mnist():
    """$MLPTRAIN_MNIST, then the shared copy beside the repository, then data/mnist."""
    env = os.environ.get("MLPTRAIN_MNIST")
    candidates = [Path(env)] if env else [REPO.parent / "shared/data/mnist", REPO / "data/mnist"]
    for c in candidates:
        if all((c / n).exists() or (c / (n + ".gz")).exists() for n in MNIST_NAMES):
            return c
    return None


def mnist_or_exit(folder=None):
    """`folder`, else find_mnist()'s; exits with the ways to get MNIST when there is none."""
    folder = folder or find_mnist()
    if folder is None:
        sys.exit("error: no MNIST folder; pass --data, set MLPTRAIN_MNIST or run "
                 "scripts/get_mnist.sh")
    return folder


def default_cli(device):
    # The CPU preset builds into build-cpu/, the default (CUDA) preset into build/.
    order = ["build-cpu", "build"] if device == "cpu" else ["build", "build-cpu"]
    for d in order:
        if (REPO / d / "mlptrain").exists():
            return REPO / d / "mlptrain"
    return REPO / order[0] / "mlptrain"


def fit_mlptrain(args, X_train, y_train, X_test, y_test):
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    import mlptrain
    clf = mlptrain.MLPClassifier(
        hidden_layer_sizes=HIDDEN, solver="sgd", learning_rate_init=LR, momentum=0.0,
        alpha=0.0, batch_size=BATCH, max_iter=args.epochs, early_stopping=False,
        n_iter_no_change=args.epochs + 1,  # never stop before max_iter epochs
        random_state=SEED, device=args.device, threads=args.threads, verbose=True)
    # verbose=True prints each epoch's time, measured around the core's train_epoch call;
    # capture it rather than reach into the estimator's internals.
    log = io.StringIO()
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: intended
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
    epochs = [float(s) for s in re.findall(r"^epoch \d+: .*?, ([0-9.]+) s \(", log.getvalue(),
                                           re.M)]
    return {"system": "mlptrain.MLPClassifier", "device": clf.device_, "fit_s": fit_s,
            "epoch_times_s": epochs, "train_s": sum(epochs) if epochs else None,
            "epochs": clf.n_iter_, "test_accuracy": float(clf.score(X_test, y_test))}


def run_cli(args, folder):
    if not Path(args.cli).exists():
        sys.exit(f"error: no mlptrain binary at {args.cli} (build it: cmake --preset cpu && "
                 "cmake --build --preset cpu, or pass --cli PATH)")
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.jsonl"
        cmd = [str(args.cli), "train", "--data", str(folder), "--device", args.device,
               "--epochs", str(args.epochs), "--batch-size", str(BATCH), "--lr", str(LR),
               "--seed", str(SEED), "--threads", str(args.threads), "--metrics", str(metrics)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    device = re.search(r"^device: (.*)$", done.stdout, re.M)
    epochs = [r["epoch_time_s"] for r in records]  # the training pass only, per epoch
    return {"system": "mlptrain CLI", "device": device.group(1) if device else args.device,
            "train_s": sum(epochs), "epoch_times_s": epochs, "epochs": len(records),
            "test_accuracy": records[-1]["test_accuracy"], "command": " ".join(cmd)}


def fit_sklearn(args, X_train, y_train, X_test, y_test):
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits
    clf = MLPClassifier(
        hidden_layer_sizes=HIDDEN, solver="sgd", learning_rate_init=LR, momentum=0.0,
        nesterovs_momentum=False, alpha=0.0, batch_size=BATCH, max_iter=args.epochs,
        n_iter_no_change=args.epochs + 1, tol=0.0, random_state=SEED)
    # The BLAS (and any OpenMP pool) gets the same number of threads as mlptrain.
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: intended
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        accuracy = float(clf.score(X_test, y_test))
    return {"system": f"sklearn MLPClassifier ({X_train.dtype} X)",
            "device": f"cpu ({args.threads} threads)",
            "train_s": fit_s, "fit_s": fit_s, "epochs": clf.n_iter_, "test_accuracy": accuracy}


def environment(device_used):
    import mlptrain
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        # Read-only check for uncommitted changes: the numbers may not be HEAD's.
        if subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--"], cwd=REPO).returncode:
            commit += " (with uncommitted changes)"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    wanted = "cuda:0" if device_used == "cuda" else device_used
    described = [d["description"] for d in mlptrain.devices() if d["name"] == wanted]
    return {"cpu": cpu, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "commit": commit, "device_description": described[0] if described else wanted}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="MNIST IDX folder (default: $MLPTRAIN_MNIST, "
                        "../shared/data/mnist beside the repository, then data/mnist)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU threads for all three (default: the CPUs usable here)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cli", type=Path, help="mlptrain binary (default: build-cpu/mlptrain "
                        "for cpu, build/mlptrain for cuda)")
    parser.add_argument("--skip-sklearn", action="store_true", help="skip scikit-learn (slow)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.cli = args.cli or default_cli(args.device)
    folder = mnist_or_exit(args.data)

    import mlptrain
    data = mlptrain.load_idx(folder, flatten=True)
    X_train = data.X_train.astype(np.float32) / 255
    X_test = data.X_test.astype(np.float32) / 255
    y_train, y_test = data.y_train, data.y_test

    # One after the other, never concurrently: each gets the CPUs to itself.
    load_before = os.getloadavg()[0]
    cli = run_cli(args, folder)
    py = fit_mlptrain(args, X_train, y_train, X_test, y_test)
    rows = [cli, dict(py, system="mlptrain.MLPClassifier (whole fit)", train_s=py["fit_s"])]
    if py["train_s"] is not None:
        rows.append(dict(py, system="mlptrain.MLPClassifier (epochs only)"))
    sks = []
    if not args.skip_sklearn:
        for dtype in (np.float64, np.float32):
            sks.append(fit_sklearn(args, X_train.astype(dtype), y_train, X_test.astype(dtype),
                                   y_test))
            rows.append(sks[-1])

    print("| system | device | train time (s) | time per epoch (s) | test accuracy "
          "| ratio vs mlptrain CLI |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['system']} | {r['device']} | {r['train_s']:.3f} | "
              f"{r['train_s'] / max(r['epochs'], 1):.3f} | {r['test_accuracy']:.4f} | "
              f"{r['train_s'] / cli['train_s']:.2f} |")
    print()
    ratio_py = py["fit_s"] / cli["train_s"]
    print(f"python / CLI training time: {ratio_py:.3f} (target <= 1.1; whole "
          f"MLPClassifier.fit() over the CLI's summed per-epoch training passes)")
    if py["train_s"] is not None:
        print(f"  (epochs only: {py['train_s'] / cli['train_s']:.3f}; per-epoch s: python "
              f"{', '.join(f'{t:.3f}' for t in py['epoch_times_s'])}; CLI "
              f"{', '.join(f'{t:.3f}' for t in cli['epoch_times_s'])})")
    ratio_sk = {sk["system"]: sk["fit_s"] / py["fit_s"] for sk in sks}
    for name, ratio in ratio_sk.items():
        print(f"{name} / mlptrain python: {ratio:.2f} (target >= 4; both whole fit())")
    env = environment(args.device)
    print(f"CPU: {env['cpu']} ({args.threads} threads used; load average before the run "
          f"{load_before:.2f}: other work on these CPUs slows every system)")
    print(f"date: {env['date']}")
    print(f"commit: {env['commit']}")
    print(f"device: {py['device']}: {env['device_description']}")

    if args.json:
        args.json.write_text(json.dumps({
            "results": [cli, py] + sks, "python_over_cli": ratio_py,
            "sklearn_over_python": ratio_sk, "threads": args.threads, "epochs": args.epochs,
            "load_average_before": load_before,
            "data": str(folder), **env}, indent=2) + "\n")


if __name__ == "__main__":
    main()
