#!/usr/bin/env python3
"""PyTorch baseline: the same MLP and training run as mlptrain's default, in three modes.

  eager    nn.Sequential(Linear, ReLU, ..., Linear) trained step by step (one Python call
           per op, as most PyTorch code is written);
  compile  the same, with the step's forward + loss (and so its backward) and the optimizer
           step compiled by torch.compile (inductor: C++/OpenMP on CPU, Triton on CUDA);
  graph    the whole training step (gather, forward, loss, backward, SGD update, loss and
           accuracy accumulation) captured once as a CUDA graph over static input buffers
           and replayed every step (CUDA only).

The data set lives on the device as uint8 tensors; each step gathers its batch there through
the epoch permutation. Nothing synchronises with the host inside an epoch: loss and accuracy
are accumulated in device tensors and read once per epoch.

Exit codes: 0 ran, 1 error, 2 bad arguments, 3 this mode cannot run here (one line
"SKIP torch <mode> <device>: <reason>").

    python3 torch_mlp.py --data /usr/share/datasets/fashion-mnist --mode eager --device cpu
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.apply_thread_env()  # before numpy/torch are imported

import time  # noqa: E402

MODES = ("eager", "compile", "graph")


def skip(mode: str, device: str, reason: str) -> None:
    reason = " ".join(str(reason).split())  # one line
    if len(reason) > 300:
        reason = reason[:297] + "..."
    print(f"SKIP torch {mode} {device}: {reason}", flush=True)
    sys.exit(common.EXIT_SKIP)


def is_compiler_error(e: BaseException) -> bool:
    """An error raised by torch.compile's own machinery (dynamo / inductor / a C++ compiler)."""
    for cls in type(e).__mro__:
        if cls.__module__.startswith(("torch._dynamo", "torch._inductor")):
            return True
    return False


def build_model(torch, layer_sizes):
    nn = torch.nn
    layers = []
    for l in range(1, len(layer_sizes)):
        linear = nn.Linear(layer_sizes[l - 1], layer_sizes[l])
        nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")  # He-normal
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if l < len(layer_sizes) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def main() -> int:
    parser = common.make_parser("PyTorch baseline: the same MLP in eager, torch.compile or "
                                "CUDA-graph mode.")
    parser.add_argument("--mode", choices=MODES, default="eager",
                        help="eager (default), compile (torch.compile) or graph (CUDA graph "
                             "of the whole step; cuda only)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="cpu or cuda (default: cuda when available, else cpu)")
    args = parser.parse_args()
    common.check_args(parser, args)
    mode = args.mode

    hint = "set up with benchmarks/baselines/setup_venv.sh torch"
    try:
        import numpy as np
    except Exception as e:
        skip(mode, args.device or ("cuda" if mode == "graph" else "cpu"), f"numpy cannot be imported ({type(e).__name__}: {e}); {hint}")
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # ImportError, or OSError from a missing CUDA library
        skip(mode, args.device or ("cuda" if mode == "graph" else "cpu"), f"torch cannot be imported ({type(e).__name__}: {e}); {hint}")

    # Default: cuda when available; graph mode is CUDA-only, so it defaults to cuda regardless.
    device = args.device or ("cuda" if mode == "graph" or torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        skip(mode, device, f"CUDA is not available to torch {torch.__version__} "
             f"(built for CUDA {torch.version.cuda or 'none'}; no GPU or driver visible)")
    if mode == "graph" and device != "cuda":
        skip(mode, device, "CUDA graphs need --device cuda")

    try:
        X_train, y_train, X_test, y_test, classes = common.load_dataset(args.data)
    except common.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(device)
    cuda = device == "cuda"

    n_train, n_features = X_train.shape
    layer_sizes = [n_features, *args.hidden, classes]
    bs = args.batch_size

    # Parameters are drawn on the host from the seed, so CPU and CUDA runs start alike.
    model = build_model(torch, layer_sizes).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)  # plain SGD: no momentum, no decay

    # The data set, resident on the device as bytes (labels widened to int64 for the loss).
    X = torch.from_numpy(X_train).to(dev)
    Y = torch.from_numpy(y_train.astype(np.int64)).to(dev)
    X_t = torch.from_numpy(X_test).to(dev)
    Y_t = torch.from_numpy(y_test.astype(np.int64)).to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)

    # Per-epoch sums, kept on the device: no host sync inside an epoch.
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct_sum = torch.zeros((), dtype=torch.int64, device=dev)

    def forward_loss(idx):
        xb = X.index_select(0, idx).to(torch.float32) / 255
        yb = Y.index_select(0, idx)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)  # log-softmax based: stable; mean over the batch
        correct = (logits.argmax(dim=1) == yb).sum()
        return loss, correct

    def optimizer_step():
        opt.step()

    if mode == "compile":
        # dynamic=False: the last, partial batch gets its own static compile instead of turning
        # the batch dimension dynamic for every later step.
        forward_loss = torch.compile(forward_loss, dynamic=False)
        optimizer_step = torch.compile(optimizer_step, dynamic=False)

    def train_step(idx):
        loss, correct = forward_loss(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        optimizer_step()
        loss_sum.add_(loss.detach() * idx.numel())  # accumulated before the update's effect
        correct_sum.add_(correct)

    sizes = [bs] * (n_train // bs) + ([n_train % bs] if n_train % bs else [])
    graphs = {}
    setup_s = 0.0
    if mode == "graph":
        # Capture one graph per batch size (full, and the last partial batch) over static index
        # buffers. The warm-up steps that capture needs do real updates, so the parameters are
        # saved before and restored after: training starts from the same initial weights.
        t0 = time.perf_counter()
        saved = [p.detach().clone() for p in model.parameters()]
        first = torch.randperm(n_train, device=dev, generator=torch.Generator(device=dev))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        for size in sorted(set(sizes), reverse=True):
            static_idx = first[:size].clone()
            with torch.cuda.stream(side):
                for _ in range(3):
                    train_step(static_idx)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                train_step(static_idx)
            graphs[size] = (graph, static_idx)
        torch.cuda.synchronize()
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)
        setup_s = time.perf_counter() - t0

    dev_name = (torch.cuda.get_device_name(dev) if cuda
                else f"{common.cpu_name()} ({torch.get_num_threads()} threads)")
    print(f"torch {torch.__version__} {mode} on {device} ({dev_name}): "
          f"{'-'.join(map(str, layer_sizes))} MLP, {n_train} train / {X_test.shape[0]} test "
          f"samples, batch {bs}, lr {args.lr}, seed {args.seed}"
          + (f"; graphs captured in {setup_s:.2f}s" if mode == "graph" else "")
          + ("; epoch 1 includes compilation" if mode == "compile" else ""), flush=True)

    def evaluate() -> float:
        with torch.no_grad():
            logits = model(X_t.to(torch.float32) / 255)
            return float((logits.argmax(dim=1) == Y_t).sum().item()) / X_t.shape[0]

    def sync():
        if cuda:
            torch.cuda.synchronize()

    epoch_times = []
    sync()
    try:
        for epoch in range(args.epochs):
            perm = torch.randperm(n_train, device=dev, generator=gen)
            loss_sum.zero_()
            correct_sum.zero_()
            if cuda:
                start_ev = torch.cuda.Event(enable_timing=True)
                end_ev = torch.cuda.Event(enable_timing=True)
                start_ev.record()
            else:
                start = time.perf_counter()

            if mode == "graph":
                for i in range(0, n_train, bs):
                    graph, static_idx = graphs[min(bs, n_train - i)]
                    static_idx.copy_(perm[i:i + bs])
                    graph.replay()
            else:
                for i in range(0, n_train, bs):
                    train_step(perm[i:i + bs])

            if cuda:
                end_ev.record()
                end_ev.synchronize()
                seconds = start_ev.elapsed_time(end_ev) / 1000.0
            else:
                seconds = time.perf_counter() - start
            epoch_times.append(seconds)

            epoch_loss = loss_sum.item() / n_train
            train_acc = correct_sum.item() / n_train
            test_acc = evaluate()
            print(common.epoch_line(epoch + 1, args.epochs, epoch_loss, train_acc, test_acc,
                                    seconds, n_train), flush=True)
            if not np.isfinite(epoch_loss):
                print(f"error: loss became {epoch_loss} in epoch {epoch + 1} "
                      f"(try a smaller --lr)", file=sys.stderr)
                return 1
    except Exception as e:
        if mode == "compile" and is_compiler_error(e):
            skip(mode, device, f"torch.compile failed ({type(e).__name__}: "
                 f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})")
        raise

    record = common.result(f"torch-{mode}", device, dev_name, bs, args.warmup, epoch_times,
                           n_train, test_acc, epoch_loss)
    print(common.summary_line(record))
    common.write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
