"""tools/plot_metrics.py draws the fixture's real metrics file with a made-up second run whose
learning rate changes and which records grad_norm as four panels of curves, a plain run as two,
and eval --json as a confusion matrix; all are real PNG pictures of sensible size. Bad input
exits 1 naming the file. The learning-rate panel draws each epoch's first and last step (lr,
lr_last) of a one-cycle run, not one point per epoch.

    tests/interop/run_python.sh tests/interop/check_plot_metrics.py WORKDIR
"""

import json
import os
import subprocess
import sys

from interop_common import ROOT, fail

PLOT = os.path.join(ROOT, "tools", "plot_metrics.py")


def plot(*args):
    return subprocess.run([sys.executable, PLOT, *args], capture_output=True, text=True)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        fail(f"{path} is not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def main():
    work = sys.argv[1]
    real = os.path.join(work, "m.jsonl")
    other = os.path.join(work, "schedule.jsonl")
    plain = os.path.join(work, "plain.jsonl")
    with open(other, "w") as f, open(plain, "w") as g:
        for e in range(1, 6):
            record = {"epoch": e, "lr": 0.1 / e, "loss": 1.0 / e, "train_accuracy": 0.5 + e / 20,
                      "test_loss": 1.1 / e, "test_accuracy": 0.5 + e / 25, "grad_norm": 2.0 / e}
            f.write(json.dumps(record) + "\n")
            del record["grad_norm"]
            record["lr"] = 0.1
            g.write(json.dumps(record) + "\n")

    curves = os.path.join(work, "curves.png")
    r = plot(plain, "-o", curves)
    if r.returncode != 0:
        fail(f"plot_metrics.py {plain}: {r.stderr}")
    w2, h2 = png_size(curves)
    four = os.path.join(work, "curves4.png")
    r = plot(real, other, "-o", four, "--title", "two runs")
    if r.returncode != 0:
        fail(f"plot_metrics.py with two runs: {r.stderr}")
    w4, h4 = png_size(four)
    # Two panels (loss, accuracy), then four (+ learning rate, gradient norm), side by side.
    if not (w2 > h2 and w4 > 1.7 * w2 and h4 == h2):
        fail(f"curves are {w2}x{h2} and {w4}x{h4}: expected 2 and 4 panels in one row")

    confusion = os.path.join(work, "confusion.png")
    r = plot("--confusion", os.path.join(work, "eval.json"), "--confusion-output", confusion)
    if r.returncode != 0:
        fail(f"plot_metrics.py --confusion: {r.stderr}")
    w, h = png_size(confusion)
    if w < 300 or h < 300:
        fail(f"confusion matrix is only {w}x{h}")

    # The pictures are drawn, not blank: plenty of distinct colours.
    import matplotlib.image
    for path in (curves, four, confusion):
        pixels = matplotlib.image.imread(path)
        n_colours = len({tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::7]})
        if n_colours < 20:
            fail(f"{path} has only {n_colours} colours; nothing was drawn")

    empty = os.path.join(work, "empty.jsonl")
    open(empty, "w").close()
    for args, expect in (([empty, "-o", curves], empty),
                         ([os.path.join(work, "missing.jsonl"), "-o", curves], "missing.jsonl"),
                         (["--confusion", real], real)):
        r = plot(*args)
        if r.returncode != 1 or expect not in r.stderr:
            fail(f"plot_metrics.py {args}: exit {r.returncode}, stderr {r.stderr!r}")
    if plot(real).returncode != 2:  # no -o: a usage error
        fail("plot_metrics.py without -o did not exit 2")
    # One-cycle over two epochs: the rate rises within epoch 1 and falls within epoch 2, and the
    # panel must show all four recorded rates at the epochs' ends.
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import plot_metrics
    onecycle = [{"epoch": 1, "lr": 0.00012, "lr_last": 0.0029, "loss": 1, "test_loss": 1,
                 "train_accuracy": 0.5, "test_accuracy": 0.5},
                {"epoch": 2, "lr": 0.0029, "lr_last": 1.2e-8, "loss": 1, "test_loss": 1,
                 "train_accuracy": 0.5, "test_accuracy": 0.5}]
    xs, ys = plot_metrics.lr_points(onecycle)
    if xs != [0, 1, 1, 2] or ys != [0.00012, 0.0029, 0.0029, 1.2e-8]:
        fail(f"one-cycle learning-rate points {list(zip(xs, ys))}")
    cycle = os.path.join(work, "onecycle.jsonl")
    with open(cycle, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in onecycle)
    cycle_png = os.path.join(work, "onecycle.png")
    r = plot(cycle, "-o", cycle_png)
    if r.returncode != 0:
        fail(f"plot_metrics.py {cycle}: {r.stderr}")
    w3, h3 = png_size(cycle_png)
    # Three panels: the rate changes only within epochs' ends here, and that must count.
    if not (1.3 * w2 < w3 < 1.7 * w2 and h3 == h2):
        fail(f"one-cycle curves are {w3}x{h3}: expected 3 panels")
    # The fixture's real file records lr_last as well.
    with open(real) as f:
        if not all("lr_last" in json.loads(line) for line in f if line.strip()):
            fail(f"{real} has epochs without lr_last")

    print(f"curves {w2}x{h2} and {w4}x{h4}, confusion matrix {w}x{h}: PASS")


if __name__ == "__main__":
    main()
