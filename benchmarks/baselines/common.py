"""Shared parts of the Python baselines: IDX loading, arguments, timing summary, JSON.

numpy is imported lazily (inside functions) so that `apply_thread_env()` can set the
BLAS/OpenMP thread variables before numpy or torch is first imported.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import statistics
import struct
import zlib
import sys

# Exit code a baseline uses when it cannot run in the requested mode (no torch, no CUDA,
# compile failure); distinct from 1 (error) and 2 (bad arguments, argparse's code).
EXIT_SKIP = 3

TRAIN_IMAGES = ("train-images-idx3-ubyte", "train-images.idx3-ubyte")
TRAIN_LABELS = ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte")
TEST_IMAGES = ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte")
TEST_LABELS = ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class DataError(Exception):
    """A data file is missing or malformed; the message names the file."""


def apply_thread_env(argv: list[str] | None = None) -> int | None:
    """Look for --threads N in argv and export it to the BLAS/OpenMP thread variables.

    Must run before numpy (or torch) is imported: OpenBLAS reads them at load time.
    Returns N, or None when the flag is absent or not a positive integer (argparse
    reports the bad value later).
    """
    argv = sys.argv[1:] if argv is None else argv
    value = None
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith("--threads="):
            value = a.split("=", 1)[1]
    try:
        n = int(value) if value is not None else None
    except ValueError:
        return None
    if n is None or n < 1:
        return None
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    return n


# ----------------------------------------------------------------------------- IDX files

def find_idx(data_dir: str, names: tuple[str, ...]) -> str:
    """Path of the first of NAMES (raw or .gz) that exists in DATA_DIR."""
    tried = []
    for name in names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(data_dir, candidate)
            tried.append(candidate)
            if os.path.isfile(path):
                return path
    raise DataError(f"{data_dir}: none of {', '.join(tried)} found")


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":  # gzip magic, whatever the file is called
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        what = "gzip stream" if head == b"\x1f\x8b" else "file"
        raise DataError(f"{path}: cannot read {what}: {e}") from e


def read_idx(path: str, expect_ndim: int):
    """Parse an IDX file of unsigned bytes (type 0x08) into a numpy uint8 array."""
    import numpy as np

    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataError(f"{path}: bad IDX magic 0x{data[:4].hex()} (first two bytes must be 0)")
    if dtype != 0x08:
        raise DataError(f"{path}: IDX element type 0x{dtype:02x} is not unsigned byte (0x08)")
    if ndim != expect_ndim:
        raise DataError(f"{path}: IDX file has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    count = math.prod(dims)
    payload = len(data) - header
    if payload < count:
        raise DataError(f"{path}: truncated: dimensions {dims} need {count} bytes, file has {payload}")
    if payload > count:
        raise DataError(f"{path}: oversized: dimensions {dims} need {count} bytes, file has {payload}")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(dims)


def load_dataset(data_dir: str):
    """Load the four standard files from DATA_DIR.

    Returns (X_train, y_train, X_test, y_test, n_classes): images as uint8 arrays of shape
    (samples, features) (each image flattened), labels as uint8 arrays of shape (samples,).
    """
    import numpy as np

    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: not a folder")
    out = []
    for img_names, lbl_names in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        img_path = find_idx(data_dir, img_names)
        lbl_path = find_idx(data_dir, lbl_names)
        images = read_idx(img_path, 3)
        labels = read_idx(lbl_path, 1)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{img_path}: {images.shape[0]} images but {lbl_path} has "
                            f"{labels.shape[0]} labels")
        if images.shape[0] == 0:
            raise DataError(f"{img_path}: no images")
        out += [images.reshape(images.shape[0], -1), labels]
    X_train, y_train, X_test, y_test = out
    if X_train.shape[1] != X_test.shape[1]:
        raise DataError(f"{data_dir}: train images have {X_train.shape[1]} pixels, "
                        f"test images {X_test.shape[1]}")
    # As mlptrain: the output width comes from the training labels; a larger test label is a
    # data error (it would index past the logits), not something to clamp.
    n_classes = int(y_train.max()) + 1
    if n_classes < 2:
        raise DataError(f"{find_idx(data_dir, TRAIN_LABELS)}: labels hold fewer than two classes")
    bad = np.flatnonzero(y_test >= n_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{find_idx(data_dir, TEST_LABELS)}: label out of range: item {i} has label "
                        f"{int(y_test[i])}, but the training labels give {n_classes} classes "
                        f"(0..{n_classes - 1})")
    # Own, writable copies (np.frombuffer views of bytes are read-only; torch warns on them).
    return (np.array(X_train), np.array(y_train), np.array(X_test), np.array(y_test), n_classes)


# ----------------------------------------------------------------------------- arguments

def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden wants comma-separated sizes, got {text!r}")
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden wants positive sizes, got {text!r}")
    return sizes


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return v
    return parse


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def make_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] "
                        "(the train-images.idx3-ubyte spelling too)")
    p.add_argument("--epochs", type=_positive(int), default=3, help="epochs to train (default 3)")
    p.add_argument("--warmup", type=_non_negative_int, default=None,
                   help="first epochs left out of the median (default 1, or 0 with --epochs 1)")
    p.add_argument("--batch-size", type=_positive(int), default=64, help="minibatch size (default 64)")
    p.add_argument("--lr", type=_positive(float), default=0.1, help="SGD learning rate (default 0.1)")
    p.add_argument("--hidden", type=_hidden, default=[128, 64],
                   help="hidden layer sizes, comma-separated (default 128,64)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--threads", type=_positive(int), default=None,
                   help="CPU threads for BLAS / OpenMP / torch (default: library default)")
    p.add_argument("--json", metavar="PATH", default=None, help="write the result as JSON here")
    return p


def check_args(parser: argparse.ArgumentParser, args) -> None:
    if args.warmup is None:
        args.warmup = min(1, args.epochs - 1)
    if args.warmup >= args.epochs:
        parser.error(f"--warmup {args.warmup} leaves no epoch to time out of --epochs {args.epochs}")


# ----------------------------------------------------------------------------- reporting

def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def epoch_line(epoch: int, epochs: int, loss: float, train_acc: float, test_acc: float,
               seconds: float, n_train: int) -> str:
    return (f"epoch {epoch}/{epochs} loss {loss:.4f} train_acc {100 * train_acc:.2f}% "
            f"test_acc {100 * test_acc:.2f}% time {seconds:.3f}s samples/s {n_train / seconds:.0f}")


def versions() -> dict:
    """python / numpy / torch versions; null for a library this process has not imported."""
    v = {"python": platform.python_version(), "numpy": None, "torch": None}
    if "numpy" in sys.modules:
        v["numpy"] = sys.modules["numpy"].__version__
    if "torch" in sys.modules:
        v["torch"] = sys.modules["torch"].__version__
    return v


def result(system: str, device: str, device_name: str, batch_size: int, warmup: int,
           epoch_times: list[float], n_train: int, test_accuracy: float,
           final_loss: float) -> dict:
    """The JSON record, in the schema shared with mlptrain's own bench tool."""
    timed = epoch_times[warmup:]
    median = statistics.median(timed)
    steps = math.ceil(n_train / batch_size)
    return {
        "system": system,
        "device": device,
        "device_name": device_name,
        "batch_size": batch_size,
        "epochs": len(epoch_times),
        "warmup": warmup,
        "epoch_times_s": [float(t) for t in epoch_times],
        "median_epoch_s": float(median),
        "samples_per_s": float(n_train / median),
        "step_us": float(median / steps * 1e6),
        "test_accuracy": float(test_accuracy),
        "final_loss": float(final_loss),
        "versions": versions(),
    }


def summary_line(r: dict) -> str:
    return (f"{r['system']} {r['device']} ({r['device_name']}): median epoch {r['median_epoch_s']:.3f}s "
            f"over {r['epochs'] - r['warmup']} epoch(s), {r['samples_per_s']:.0f} samples/s, "
            f"{r['step_us']:.1f} us/step, test_acc {100 * r['test_accuracy']:.2f}%")


def write_json(path: str | None, record: dict) -> None:
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)  # never leave a half-written file behind
