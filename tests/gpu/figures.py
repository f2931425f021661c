#!/usr/bin/env python3
"""One-line figures for tests/gpu/run.sh's summary table, from the JSON its stages write.

    figures.py gtest FILE        tests, failures and skips of a --gtest_output=json file
    figures.py bench FILE        per batch: median epoch time and graph nodes per step
    figures.py torch FILE        median epoch time of one baseline run
    figures.py sweep FILE        mlptrain-bench --models: per model count, epoch time,
                                 model-samples/s and the ratio to one model alone; or one
                                 torch_vmap.py record
    figures.py kernels FILE      cases, errors, and a few per-launch times

Standard library only. Prints "?" and exits 0 when the file is missing or malformed, so the
table always gets a line.
"""

from __future__ import annotations

import json
import sys


def gtest(j) -> str:
    cases = [t for s in j.get("testsuites", []) for t in s.get("testsuite", [])]
    skipped = sum(1 for t in cases if t.get("result") == "SKIPPED")
    failed = sum(1 for t in cases if t.get("failures"))
    return f"{len(cases)} tests: {len(cases) - failed - skipped} passed, {failed} failed, {skipped} skipped"


def bench(j) -> str:
    parts = []
    for r in j:
        nodes = r.get("graph_nodes", -1)
        node_text = f", {r['graph_nodes_per_step']:.1f} nodes/step" if nodes is not None and nodes >= 0 else ""
        parts.append(f"b{r['batch_size']} {r['median_epoch_s']:.4f}s{node_text}")
    return "; ".join(parts)


def torch(j) -> str:
    return f"{j['median_epoch_s']:.4f}s"


def sweep(j) -> str:
    if isinstance(j, dict):  # torch_vmap.py: one record
        return (f"{j['models']} models {j['median_epoch_s']:.4f}s, "
                f"{j['model_samples_per_s']:.0f} model-samples/s")
    parts = []
    for r in j:
        ratio = r.get("epoch_ratio_to_one_model", -1)
        ratio_text = f", {ratio:.2f}x one model" if ratio is not None and ratio >= 0 else ""
        parts.append(f"{r.get('models', 1)} models {r['median_epoch_s']:.4f}s "
                     f"{r.get('model_samples_per_s', r['samples_per_s']):.0f} model-samples/s"
                     f"{ratio_text}")
    return "; ".join(parts)


def kernels(j) -> str:
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    marks = {}
    errors = 0
    for b in j.get("benchmarks", []):
        if b.get("error_occurred"):
            errors += 1
            continue
        name = b["name"]
        for key in ("gemm_fwd/l0/b64/", "softmax_xent/b64/", "sgd_update/b64/", "gemm_fwd/l0/b1024/"):
            if name.startswith(key):
                marks[key.rstrip("/")] = b["real_time"] * scale.get(b.get("time_unit", "ns"), 1e-3)
    times = ", ".join(f"{k} {v:.2f} us" for k, v in marks.items())
    return f"{len(j.get('benchmarks', []))} cases, {errors} errors; per launch: {times}"


def main() -> int:
    kinds = {"gtest": gtest, "bench": bench, "torch": torch, "sweep": sweep, "kernels": kernels}
    if len(sys.argv) != 3 or sys.argv[1] not in kinds:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(sys.argv[2]) as f:
            print(kinds[sys.argv[1]](json.load(f)))
    except Exception as e:  # noqa: BLE001 - a figure is never worth failing the run
        print(f"? ({type(e).__name__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
