#!/usr/bin/env python3
"""Plot training curves from mlptrain metrics files, and a confusion matrix from mlptrain eval.

    .venv-tools/bin/python tools/plot_metrics.py run1.jsonl [run2.jsonl ...] -o curves.png
    .venv-tools/bin/python tools/plot_metrics.py --confusion eval.json --confusion-output cm.png

A metrics file is what `mlptrain train --metrics FILE` writes: one JSON object per epoch (epoch,
lr, loss, train_accuracy, test_loss, test_accuracy, ...). The curves show loss and accuracy, train
solid and test dashed, one colour per file; a learning-rate panel is added when the rate changes
during a run, and a gradient-norm panel when the files record grad_norm. The metrics hold the
rate of each epoch's first and last step (lr, lr_last), not the schedule, so the panel draws epoch
E from its first step at E - 1 to its last at E: exact for constant, step and cosine schedules
(constant within an epoch), and for one-cycle exact at both ends of every epoch, straight in
between. The confusion matrix
comes from `mlptrain eval --json` (rows: true class, columns: predicted), coloured by the share
of each true class and labelled with the counts.
"""

import argparse
import json
import os
import sys

FASHION_MNIST = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "ankle boot"]


def fail(message):
    print(f"plot_metrics: error: {message}", file=sys.stderr)
    sys.exit(1)


def read_metrics(path):
    records = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    fail(f"{path}:{number}: not JSON ({e.msg})")
                if isinstance(record, dict) and "epoch" in record:
                    records.append(record)
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    if not records:
        fail(f"{path}: no epoch records (is it a file written by mlptrain train --metrics?)")
    for key in ("loss", "test_loss", "train_accuracy", "test_accuracy"):
        if not all(key in r for r in records):
            fail(f"{path}: some epoch records have no '{key}'")
    return records


def lr_points(records):
    """(x, lr) of the learning-rate panel. Epoch E spans [E - 1, E] on the x axis: its first
    step's rate at E - 1, its last step's (lr_last) at E, so a one-cycle run of two epochs gives
    four points and a per-epoch schedule a step line. Records without lr_last (older files) give
    one point at E."""
    xs, ys = [], []
    for r in records:
        if "lr" not in r:
            continue
        if "lr_last" in r:
            xs += [r["epoch"] - 1, r["epoch"]]
            ys += [r["lr"], r["lr_last"]]
        else:
            xs.append(r["epoch"])
            ys.append(r["lr"])
    return xs, ys


def run_label(path, paths):
    stem = os.path.splitext(os.path.basename(path))[0]
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return path if stems.count(stem) > 1 else stem


def plot_curves(paths, output, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(run_label(p, paths), read_metrics(p)) for p in paths]
    show_lr = any(len({r.get(k) for r in recs for k in ("lr", "lr_last") if k in r}) > 1
                  for _, recs in runs)
    show_grad = any("grad_norm" in r for _, recs in runs for r in recs)
    n_panels = 2 + show_lr + show_grad
    fig, axes = plt.subplots(1, n_panels, figsize=(4.6 * n_panels, 3.6), squeeze=False)
    axes = axes[0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, recs) in enumerate(runs):
        colour = colours[k % len(colours)]
        epochs = [r["epoch"] for r in recs]
        axes[0].plot(epochs, [r["loss"] for r in recs], "-o", ms=3, color=colour,
                     label=f"{label} train")
        axes[0].plot(epochs, [r["test_loss"] for r in recs], "--s", ms=3, color=colour,
                     label=f"{label} test")
        axes[1].plot(epochs, [100 * r["train_accuracy"] for r in recs], "-o", ms=3,
                     color=colour, label=f"{label} train")
        axes[1].plot(epochs, [100 * r["test_accuracy"] for r in recs], "--s", ms=3,
                     color=colour, label=f"{label} test")
        panel = 2
        if show_lr:
            xs, ys = lr_points(recs)
            axes[panel].plot(xs, ys, "-o", ms=2, color=colour, label=label)
            panel += 1
        if show_grad:
            axes[panel].plot(epochs, [r.get("grad_norm") for r in recs], "-o", ms=3,
                             color=colour, label=label)
    axes[0].set_title("loss (cross-entropy)")
    axes[1].set_title("accuracy (%)")
    panel = 2
    if show_lr:
        axes[panel].set_title("learning rate (first and last step of each epoch)")
        panel += 1
    if show_grad:
        axes[panel].set_title("gradient norm")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        # Epochs are whole numbers; let matplotlib thin the ticks for long runs.
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def plot_confusion(path, output, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    try:
        with open(path) as f:
            report = json.load(f)
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON ({e.msg}); write it with mlptrain eval --json")
    if not isinstance(report, dict) or "confusion_matrix" not in report:
        fail(f"{path}: no confusion_matrix (write it with mlptrain eval --json)")
    counts = np.array(report["confusion_matrix"], dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        fail(f"{path}: confusion_matrix is not a square matrix")
    n = counts.shape[0]
    names = (FASHION_MNIST if report.get("dataset") == "fashion-mnist" and n == 10
             else [str(c) for c in range(n)])
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

    size = max(4.0, 0.55 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    accuracy = report.get("test_accuracy")
    heading = title or (f"{report.get('dataset', '')} test set" +
                        (f": {100 * accuracy:.2f}% correct" if accuracy is not None else ""))
    ax.set_title(heading.strip())
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Curves: loss and accuracy per epoch, train solid and test dashed.")
    parser.add_argument("metrics", nargs="*", help="metrics files (JSON lines)")
    parser.add_argument("-o", "--output", help="PNG for the curves (needed with metrics files)")
    parser.add_argument("--confusion", metavar="EVAL_JSON",
                        help="output of mlptrain eval --json, to draw as a heat map")
    parser.add_argument("--confusion-output", metavar="PNG",
                        help="PNG for the confusion matrix (default: confusion.png beside -o, "
                             "or in the current folder)")
    parser.add_argument("--title", help="title over the curves or the matrix")
    args = parser.parse_args(argv)
    if not args.metrics and not args.confusion:
        parser.error("give metrics files, --confusion EVAL_JSON, or both")
    if args.metrics and not args.output:
        parser.error("-o/--output is required with metrics files")

    if args.metrics:
        plot_curves(args.metrics, args.output, args.title)
        print(f"wrote {args.output}")
    if args.confusion:
        out = args.confusion_output or os.path.join(
            os.path.dirname(args.output) if args.output else "", "confusion.png")
        plot_confusion(args.confusion, out, args.title)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
