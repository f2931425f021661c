#!/usr/bin/env python3
"""A grid search on MNIST three ways: FusedGridSearchCV, GridSearchCV(n_jobs=1) and
GridSearchCV(n_jobs=2), all over mlptrain.MLPClassifier, in one run.

    python benchmarks/fused_search.py [--data FOLDER] [--device cpu|cuda] [--epochs 3]
                                      [--folds 5] [--repeats 2] [--skip-jobs2] [--json OUT]

The grid: 4 learning rates x 2 momenta (8 candidates) of the default MNIST model (784-128-64-10
ReLU, SGD, batch 64, no L2 penalty, random_state 42), each for --epochs epochs on every fold
of StratifiedKFold(--folds) over the 60,000 training images (scaled to [0, 1], float32):
40 models by default. refit=False: the search alone is timed, --repeats rounds of the three
searches in turn, the fastest of each compared. GridSearchCV's fits use
threads = CPUs / n_jobs each; the fused search uses every CPU for its one batch. All three must
rank the candidates alike (on the CPU their cv_results_ are equal but for the times); the
target is a fused search in at most 0.5x the time of GridSearchCV(n_jobs=1) on the CPU, and on
a GPU at most 3x the time of one fold of one candidate (the run times that model alone too).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_fit import environment, mnist_or_exit  # noqa: E402

GRID = {"learning_rate_init": [0.02, 0.05, 0.1, 0.2], "momentum": [0.0, 0.9]}


def base_estimator(args, threads):
    from mlptrain import MLPClassifier
    return MLPClassifier(hidden_layer_sizes=(128, 64), solver="sgd", batch_size=64, alpha=0.0,
                         max_iter=args.epochs, nesterovs_momentum=False, random_state=42,
                         device=args.device, threads=threads, tol=0.0)


def run_search(name, search_class, args, X, y, n_jobs, threads):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    search = search_class(base_estimator(args, threads), GRID, cv=StratifiedKFold(args.folds),
                          refit=False, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        search.fit(X, y)
        seconds = time.perf_counter() - start
    r = search.cv_results_
    print(f"{name}: {seconds:.2f} s", flush=True)
    return {"system": name, "seconds": seconds, "n_jobs": n_jobs, "threads": threads,
            "rank": r["rank_test_score"].tolist(), "mean_test_score": r["mean_test_score"].tolist(),
            "params": [dict(p) for p in r["params"]],
            "fused_fit_time_s": getattr(search, "fused_fit_time_", None)}


def one_model(args, X, y, threads):
    """One candidate on one fold, alone: what a GPU's fused search is held against."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    train, _ = next(StratifiedKFold(args.folds).split(X, y))
    est = base_estimator(args, threads).set_params(learning_rate_init=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X[train], y[train])
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="MNIST IDX folder (default: $MLPTRAIN_MNIST, "
                        "../shared/data/mnist beside the repository, then data/mnist)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-jobs2", action="store_true", help="skip GridSearchCV(n_jobs=2)")
    parser.add_argument("--skip-sklearn", action="store_true",
                        help="skip both GridSearchCV runs (a GPU's check: fused and one model)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of all the searches; the fastest of each counts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    folder = mnist_or_exit(args.data)

    import mlptrain
    from sklearn.model_selection import GridSearchCV

    from mlptrain.model_selection import FusedGridSearchCV
    data = mlptrain.load_idx(folder, flatten=True)
    X = data.X_train.astype(np.float32) / 255
    y = data.y_train
    cpus = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]
    n_models = len(GRID["learning_rate_init"]) * len(GRID["momentum"]) * args.folds
    print(f"{n_models} models: {args.folds} folds x 8 candidates, {args.epochs} epochs each, "
          f"on {args.device}", flush=True)

    # The searches in turn, --repeats rounds: a VM's speed drifts over minutes, and each
    # search's fastest round is the one compared.
    searches = [("FusedGridSearchCV", FusedGridSearchCV, None, 0)]
    if not args.skip_sklearn:
        for n_jobs in (1,) if args.skip_jobs2 else (1, 2):
            searches.append((f"GridSearchCV(n_jobs={n_jobs})", GridSearchCV, n_jobs,
                             max(1, cpus // n_jobs)))
    rows = [None] * len(searches)
    for _ in range(args.repeats):
        for i, (name, cls, n_jobs, threads) in enumerate(searches):
            row = run_search(name, cls, args, X, y, n_jobs, threads)
            if rows[i] is not None:
                row["all_seconds"] = rows[i]["all_seconds"] + [row["seconds"]]
                if rows[i]["seconds"] < row["seconds"]:
                    row = dict(rows[i], all_seconds=row["all_seconds"])
            else:
                row["all_seconds"] = [row["seconds"]]
            rows[i] = row
    alone = min(one_model(args, X, y, 0) for _ in range(args.repeats))

    print()
    print("| search | time (s), fastest | every round (s) | ratio vs GridSearchCV(n_jobs=1) "
          "| best candidate | best mean accuracy |")
    print("|---|---:|---|---:|---|---:|")
    ref = rows[1]["seconds"] if len(rows) > 1 else None
    for r in rows:
        best = int(np.argmin(r["rank"]))
        ratio = f"{r['seconds'] / ref:.2f}" if ref else "-"
        every = ", ".join(f"{t:.2f}" for t in r["all_seconds"])
        print(f"| {r['system']} | {r['seconds']:.2f} | {every} | {ratio} | {r['params'][best]} | "
              f"{r['mean_test_score'][best]:.4f} |")
    print()
    same_rank = all(r["rank"] == rows[0]["rank"] for r in rows)
    same_scores = all(r["mean_test_score"] == rows[0]["mean_test_score"] for r in rows)
    print(f"same ranking in every search: {same_rank}; same mean_test_score: {same_scores}")
    print(f"fused training within the fused search: {rows[0]['fused_fit_time_s']:.2f} s")
    print(f"one candidate on one fold alone: {alone:.2f} s; fused search / that: "
          f"{rows[0]['seconds'] / alone:.2f} (GPU target <= 3)")
    if ref:
        print(f"fused / GridSearchCV(n_jobs=1): {rows[0]['seconds'] / ref:.3f} "
              "(CPU target <= 0.5)")
    env = environment(args.device)
    print(f"CPU: {env['cpu']} ({cpus} CPUs; load average before the run {load_before:.2f})")
    print(f"date: {env['date']}")
    print(f"commit: {env['commit']}")
    print(f"device: {env['device_description']}")
    if args.json:
        args.json.write_text(json.dumps({
            "results": rows, "one_model_s": alone, "same_rank": same_rank,
            "same_mean_test_score": same_scores, "epochs": args.epochs, "folds": args.folds,
            "load_average_before": load_before, "data": str(folder), **env}, indent=2) + "\n")
    if not same_rank:
        sys.exit("error: the searches ranked the candidates differently")


if __name__ == "__main__":
    main()
