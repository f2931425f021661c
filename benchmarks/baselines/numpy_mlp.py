#!/usr/bin/env python3
"""The notebook's NumPy MLP, made correct and vectorised: the baseline every other number is
read against.

It is the code of ../shared/seed/notebook.txt (same function names, same "features x samples"
matrices, same training loop), with its bugs fixed:
  - He init is He-*normal* (np.random.randn * sqrt(2/fan_in)), not np.random.rand (uniform);
  - forward_pass is called as forward_pass(X, parameters);
  - test predictions are compared with test labels (not with training labels);
  - one-hot matrices are np.zeros((classes, m)) (the notebook's np.zeros(classes, m) fails);
  - the loss is a stable log-softmax cross-entropy instead of log(A3 + 1e-8);
  - the epoch loss is the mean over all samples (the last partial batch counts by its size);
and generalised to any hidden sizes (--hidden).

Precision: by default it computes in float64, as the notebook does (`X / 255.0` and
np.random.rand give float64 arrays), and keeps the notebook's data path: the whole training set
converted to floats once, and a shuffled copy of it made every epoch. `--dtype float32` is the
tuned variant (float32 throughout, pixels kept as bytes and scaled per batch); it reports as
system "numpy-f32" so a comparison shows both.

    python3 numpy_mlp.py --data /usr/share/datasets/fashion-mnist --epochs 3 --json out.json
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.apply_thread_env()  # before numpy is imported: OpenBLAS reads the variables at load

import time  # noqa: E402
from typing import Dict, List, Tuple  # noqa: E402

try:
    import numpy as np  # noqa: E402
except ImportError as e:
    print(f"SKIP numpy cpu: numpy cannot be imported ({e}); "
          f"set up with benchmarks/baselines/setup_venv.sh numpy", flush=True)
    sys.exit(common.EXIT_SKIP)

DTYPE = np.float64  # set from --dtype in main()


def initialize_parameters(layer_sizes: List[int]) -> Dict[str, np.ndarray]:
    """He-normal weights (std = sqrt(2 / fan_in)), zero biases; W<l> has shape (out, in)."""
    parameters = {}
    for l in range(1, len(layer_sizes)):
        fan_in, fan_out = layer_sizes[l - 1], layer_sizes[l]
        parameters[f"W{l}"] = (np.random.randn(fan_out, fan_in) * np.sqrt(2 / fan_in)).astype(DTYPE)
        parameters[f"b{l}"] = np.zeros((fan_out, 1), dtype=DTYPE)
    return parameters


# define the activation functions (ReLu + Softmax)
def relu(Z: np.ndarray) -> np.ndarray:
    return np.maximum(Z, 0)


def log_softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - np.max(Z, axis=0, keepdims=True)  # prevent overflow
    return Z - np.log(np.sum(np.exp(Z), axis=0, keepdims=True))


def softmax(Z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(Z))


def forward_pass(X: np.ndarray, parameters: Dict[str, np.ndarray]) -> Tuple[np.ndarray, Tuple]:
    """X: (features, m). Returns the log-probabilities (classes, m) and the cache for backprop."""
    L = len(parameters) // 2
    A = X
    Zs, As = [], [X]
    for l in range(1, L):
        Z = parameters[f"W{l}"] @ A + parameters[f"b{l}"]
        A = relu(Z)
        Zs.append(Z)
        As.append(A)
    Z_L = parameters[f"W{L}"] @ A + parameters[f"b{L}"]
    log_A = log_softmax(Z_L)
    cache = (Zs, As, log_A)
    return log_A, cache


def compute_loss(log_A: np.ndarray, Y: np.ndarray) -> float:
    """Cross-entropy, mean over the batch. log_A: log-probabilities (classes, m); Y: one-hot."""
    m = Y.shape[1]
    return float(-np.sum(Y * log_A) / m)


def one_hot_encode(y: np.ndarray, num_classes: int = 10) -> np.ndarray:
    one_hot = np.zeros((num_classes, y.size), dtype=DTYPE)
    one_hot[y, np.arange(y.size)] = 1
    return one_hot


def backward_pass(X: np.ndarray, Y: np.ndarray, cache: Tuple,
                  parameters: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Backprop through the network using cached forward values."""
    Zs, As, log_A = cache
    L = len(parameters) // 2
    m = X.shape[1]
    grads = {}

    # Output layer gradient (Softmax + CrossEntropy simplifies)
    dZ = np.exp(log_A) - Y  # (classes, m)
    for l in range(L, 0, -1):
        A_prev = As[l - 1]
        grads[f"dW{l}"] = (dZ @ A_prev.T) * (1 / m)
        grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) * (1 / m)
        if l > 1:
            dA = parameters[f"W{l}"].T @ dZ
            dZ = dA * (Zs[l - 2] > 0)  # ReLU backward
    return grads


def update_parameters(parameters: Dict[str, np.ndarray], grads: Dict[str, np.ndarray],
                      learning_rate: float = 0.1) -> Dict[str, np.ndarray]:
    for key in parameters:
        parameters[key] -= learning_rate * grads["d" + key]
    return parameters


def main() -> int:
    global DTYPE
    parser = common.make_parser("NumPy baseline: the notebook's MLP, made correct (CPU).")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="float64: the notebook's precision and data path (default); "
                             "float32: the tuned variant, reported as numpy-f32")
    args = parser.parse_args()
    DTYPE = np.float64 if args.dtype == "float64" else np.float32
    notebook = args.dtype == "float64"
    common.check_args(parser, args)

    try:
        X_train, y_train, X_test, y_test, classes = common.load_dataset(args.data)
    except common.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    # Flatten: each column is one image ("features x samples"), as in the notebook. The notebook
    # scales the whole set to float64 once; the float32 variant keeps the pixels as bytes (like
    # mlptrain's resident data set) and scales each batch.
    X_train_flat = X_train.T.astype(DTYPE) / DTYPE(255) if notebook else X_train.T  # (784, 60000)
    X_test_flat = X_test.T.astype(DTYPE) / DTYPE(255)  # (784, 10000)
    m = X_train_flat.shape[1]  # total training samples
    layer_sizes = [X_train_flat.shape[0], *args.hidden, classes]
    epochs, batch_size, learning_rate = args.epochs, args.batch_size, args.lr

    print(f"numpy {np.__version__}: {'-'.join(map(str, layer_sizes))} MLP, {m} train / "
          f"{X_test_flat.shape[1]} test samples, batch {batch_size}, lr {learning_rate}, "
          f"seed {args.seed}, threads {args.threads or 'default'}")

    np.random.seed(args.seed)
    parameters = initialize_parameters(layer_sizes)

    epoch_times = []
    for epoch in range(epochs):
        # Shuffle the data at the start of each epoch
        indices = np.random.permutation(m)
        start = time.perf_counter()
        X_shuffled = X_train_flat[:, indices]
        y_shuffled = y_train[indices]

        total_loss = 0.0
        correct = 0

        for i in range(0, m, batch_size):
            # Get mini-batch (the last one may be smaller; every mean below uses its size)
            X_batch = X_shuffled[:, i:i + batch_size]
            if not notebook:
                X_batch = X_batch.astype(DTYPE) / DTYPE(255)
            y_batch = y_shuffled[i:i + batch_size]
            Y_batch = one_hot_encode(y_batch, classes)

            # Forward pass
            log_A, cache = forward_pass(X_batch, parameters)

            # Compute loss (summed over samples, divided by m at the end of the epoch)
            loss = compute_loss(log_A, Y_batch)
            total_loss += loss * y_batch.size

            # Accuracy (before the update, like the notebook)
            predictions = np.argmax(log_A, axis=0)
            correct += int(np.sum(predictions == y_batch))

            # Backward pass
            grads = backward_pass(X_batch, Y_batch, cache, parameters)

            # Update weights
            parameters = update_parameters(parameters, grads, learning_rate)

        seconds = time.perf_counter() - start
        epoch_times.append(seconds)

        # Epoch summary, with the test set evaluated against the test labels
        epoch_loss = total_loss / m
        epoch_accuracy = correct / m
        log_A_test, _ = forward_pass(X_test_flat, parameters)
        test_accuracy = float(np.mean(np.argmax(log_A_test, axis=0) == y_test))
        print(common.epoch_line(epoch + 1, epochs, epoch_loss, epoch_accuracy, test_accuracy,
                                seconds, m), flush=True)
        if not np.isfinite(epoch_loss):
            print(f"error: loss became {epoch_loss} in epoch {epoch + 1} (try a smaller --lr)",
                  file=sys.stderr)
            return 1

    threads = args.threads or os.cpu_count()
    record = common.result("numpy" if notebook else "numpy-f32", "cpu", f"{common.cpu_name()} ({threads} threads)", batch_size,
                           args.warmup, epoch_times, m, test_accuracy, epoch_loss)
    print(common.summary_line(record))
    common.write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
