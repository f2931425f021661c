#!/usr/bin/env python3
"""PyTorch baseline for a sweep: N copies of mlptrain's default MLP trained at once with
torch.func, the way PyTorch users batch many small models by hand.

The N models' parameters are stacked (torch.func.stack_module_state); one step computes every
model's loss gradient with vmap(grad(functional_call)) over the stacked parameters and each
model's own batch (every model has its own epoch order, drawn from its own generator), then
one plain SGD update of the stacked tensors. The data set lives on the device as uint8
tensors, as in torch_mlp.py. Modes:

  eager  the vmapped step, one Python call per op;
  graph  the whole vmapped step (gather, forward, loss, backward, update) captured once as a
         CUDA graph over static index buffers and replayed every step (CUDA only).

Throughput is reported as model-samples/s: N x training samples per second of epoch time.
The JSON record has the schema of common.result plus "models" and "model_samples_per_s".

Exit codes: 0 ran, 1 error, 2 bad arguments, 3 this mode cannot run here (one line
"SKIP torch-vmap <mode> <device>: <reason>").

    python3 torch_vmap.py --data ../shared/data/mnist --models 32 --mode graph --device cuda
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.apply_thread_env()  # before numpy/torch are imported

import torch_mlp  # noqa: E402  (the same model as the one-model baseline)

import time  # noqa: E402

MODES = ("eager", "graph")


def skip(mode: str, device: str, reason: str) -> None:
    reason = " ".join(str(reason).split())[:300]
    print(f"SKIP torch-vmap {mode} {device}: {reason}", flush=True)
    sys.exit(common.EXIT_SKIP)


def main() -> int:
    parser = common.make_parser("PyTorch baseline: N MLPs trained at once with torch.func.vmap.")
    parser.add_argument("--models", type=int, default=32, help="models trained at once (default 32)")
    parser.add_argument("--mode", choices=MODES, default="eager",
                        help="eager (default) or graph (CUDA graph of the whole step; cuda only)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="cpu or cuda (default: cuda when available, else cpu)")
    args = parser.parse_args()
    common.check_args(parser, args)
    if args.models < 1:
        parser.error(f"--models {args.models}: needs at least one model")
    mode, n_models = args.mode, args.models

    hint = "set up with benchmarks/baselines/setup_venv.sh torch"
    fallback_device = args.device or "cuda"
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
        from torch.func import functional_call, grad_and_value, stack_module_state, vmap
    except Exception as e:
        skip(mode, fallback_device, f"torch.func cannot be imported ({type(e).__name__}: {e}); {hint}")

    device = args.device or ("cuda" if mode == "graph" or torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        skip(mode, device, f"CUDA is not available to torch {torch.__version__}")
    if mode == "graph" and device != "cuda":
        skip(mode, device, "CUDA graphs need --device cuda")

    try:
        X_train, y_train, X_test, y_test, classes = common.load_dataset(args.data)
    except common.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(device)
    cuda = device == "cuda"
    n_train, n_features = X_train.shape
    layer_sizes = [n_features, *args.hidden, classes]
    bs = args.batch_size

    def build(seed: int):
        torch.manual_seed(seed)
        return torch_mlp.build_model(torch, layer_sizes).to(dev)  # He-normal, zero biases

    models = [build(args.seed + k) for k in range(n_models)]
    params, buffers = stack_module_state(models)
    params = {name: p.detach().clone() for name, p in params.items()}
    base = build(args.seed).to("meta")  # the functional template: shapes only

    X = torch.from_numpy(X_train).to(dev)
    Y = torch.from_numpy(y_train.astype(np.int64)).to(dev)
    X_t = torch.from_numpy(X_test).to(dev)
    Y_t = torch.from_numpy(y_test.astype(np.int64)).to(dev)
    gens = []
    for k in range(n_models):
        g = torch.Generator(device=dev)
        g.manual_seed(args.seed + k)
        gens.append(g)

    def loss_one(p, b, idx):
        xb = X.index_select(0, idx).to(torch.float32) / 255
        yb = Y.index_select(0, idx)
        logits = functional_call(base, (p, b), (xb,))
        return F.cross_entropy(logits, yb), logits

    grad_fn = vmap(grad_and_value(loss_one, has_aux=True), in_dims=(0, 0, 0))
    loss_sum = torch.zeros(n_models, dtype=torch.float64, device=dev)
    correct_sum = torch.zeros(n_models, dtype=torch.int64, device=dev)
    lr = args.lr

    def train_step(idx):  # idx: [n_models, batch]
        grads, (loss, logits) = grad_fn(params, buffers, idx)
        with torch.no_grad():
            for name in params:
                params[name].sub_(grads[name], alpha=lr)  # plain SGD, every model at once
            yb = Y[idx]
            loss_sum.add_(loss.detach().double() * idx.shape[1])
            correct_sum.add_((logits.argmax(dim=2) == yb).sum(dim=1))

    sizes = [bs] * (n_train // bs) + ([n_train % bs] if n_train % bs else [])
    graphs = {}
    setup_s = 0.0
    if mode == "graph":
        # Warm-up steps do real updates: the parameters are restored after the capture.
        t0 = time.perf_counter()
        saved = {name: p.clone() for name, p in params.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        for size in sorted(set(sizes), reverse=True):
            static_idx = torch.zeros((n_models, size), dtype=torch.int64, device=dev)
            with torch.cuda.stream(side):
                for _ in range(3):
                    train_step(static_idx)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                train_step(static_idx)
            graphs[size] = (graph, static_idx)
        torch.cuda.synchronize()
        with torch.no_grad():
            for name in params:
                params[name].copy_(saved[name])
        setup_s = time.perf_counter() - t0

    dev_name = (torch.cuda.get_device_name(dev) if cuda
                else f"{common.cpu_name()} ({torch.get_num_threads()} threads)")
    print(f"torch {torch.__version__} vmap {mode} on {device} ({dev_name}): {n_models} x "
          f"{'-'.join(map(str, layer_sizes))} MLP, {n_train} train samples, batch {bs}, "
          f"lr {lr}, seeds {args.seed}..{args.seed + n_models - 1}"
          + (f"; graphs captured in {setup_s:.2f}s" if mode == "graph" else ""), flush=True)

    def evaluate():
        with torch.no_grad():
            logits = vmap(lambda p, b: functional_call(base, (p, b), (X_t.to(torch.float32) / 255,)))(
                params, buffers)
            return ((logits.argmax(dim=2) == Y_t).sum(dim=1).double() / X_t.shape[0]).cpu()

    epoch_times = []
    for epoch in range(args.epochs):
        perm = torch.stack([torch.randperm(n_train, device=dev, generator=g) for g in gens])
        loss_sum.zero_()
        correct_sum.zero_()
        if cuda:
            torch.cuda.synchronize()
            start_ev = torch.cuda.Event(enable_timing=True)
            end_ev = torch.cuda.Event(enable_timing=True)
            start_ev.record()
        else:
            start = time.perf_counter()
        for i in range(0, n_train, bs):
            idx = perm[:, i:i + bs]
            if mode == "graph":
                graph, static_idx = graphs[idx.shape[1]]
                static_idx.copy_(idx)
                graph.replay()
            else:
                train_step(idx)
        if cuda:
            end_ev.record()
            end_ev.synchronize()
            seconds = start_ev.elapsed_time(end_ev) / 1000.0
        else:
            seconds = time.perf_counter() - start
        epoch_times.append(seconds)
        losses = (loss_sum / n_train).cpu()
        test_acc = evaluate()
        epoch_loss = float(losses.mean())
        print(f"epoch {epoch + 1}/{args.epochs} mean loss {epoch_loss:.4f} test_acc mean "
              f"{100 * float(test_acc.mean()):.2f}% best {100 * float(test_acc.max()):.2f}% "
              f"time {seconds:.3f}s model-samples/s {n_models * n_train / seconds:.0f}",
              flush=True)
        if not np.isfinite(epoch_loss):
            print(f"error: loss became {epoch_loss} in epoch {epoch + 1}", file=sys.stderr)
            return 1

    record = common.result(f"torch-vmap-{mode}", device, dev_name, bs, args.warmup, epoch_times,
                           n_train, float(test_acc.mean()), epoch_loss)
    record["models"] = n_models
    record["model_samples_per_s"] = n_models * record["samples_per_s"]
    print(common.summary_line(record) + f", {n_models} models: "
          f"{record['model_samples_per_s']:.0f} model-samples/s")
    common.write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
