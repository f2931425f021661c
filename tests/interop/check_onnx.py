"""Interop: tools/export_onnx.py turns the checkpoint into an ONNX model that onnx's checker
accepts (Gemm with transB=1, Relu, Softmax; symbolic batch), and onnxruntime classifies the whole
test set with it as `mlptrain predict` does, in any batch size. A checkpoint that is not an
mlptrain model is refused with a message naming it.

    tests/interop/run_python.sh tests/interop/check_onnx.py WORKDIR
"""

import os
import subprocess
import sys

import numpy as np

from interop_common import ROOT, Fixture, compare, fail

EXPORT = os.path.join(ROOT, "tools", "export_onnx.py")


def export(src, dst):
    return subprocess.run([sys.executable, EXPORT, src, "-o", dst], capture_output=True,
                          text=True)


def check_graph(path, sizes):
    import onnx

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    n_layers = len(sizes) - 1
    expected = ["Gemm", "Relu"] * (n_layers - 1) + ["Gemm", "Softmax"]
    if ops != expected:
        fail(f"{path}: operators {ops}, expected {expected}")
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm" and attrs.get("transB") != 1:
            fail(f"{path}: {node.name} has transB={attrs.get('transB')}, not 1")
        if node.op_type == "Softmax" and attrs.get("axis") != 1:
            fail(f"{path}: Softmax over axis {attrs.get('axis')}, not 1")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims[0].dim_param or dims[1].dim_value != sizes[0]:
        fail(f"{path}: input shape {dims} is not [batch, {sizes[0]}] with a symbolic batch")
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("layer_sizes") != ",".join(map(str, sizes)):
        fail(f"{path}: metadata layer_sizes {props.get('layer_sizes')}")
    print(f"{path}: onnx.checker OK; {' '.join(ops)}; input {dims[0].dim_param} x {sizes[0]}; "
          f"opset {model.opset_import[0].version}")


def main():
    fixture = Fixture(sys.argv[1])
    onnx_path = os.path.join(fixture.dir, "m.onnx")
    r = export(fixture.model_path, onnx_path)
    if r.returncode != 0:
        fail(f"export_onnx.py failed ({r.returncode}): {r.stderr}")
    check_graph(onnx_path, fixture.model.layer_sizes)

    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = fixture.inputs()
    logits, probs = session.run(["logits", "probabilities"], {"input": x})
    if probs.dtype != np.float32 or probs.shape != (len(x), fixture.model.layer_sizes[-1]):
        fail(f"onnxruntime gave {probs.dtype} {probs.shape}")
    # The graph's own Softmax, in float32: its rounding (~1e-7) is far inside the tolerance.
    compare("onnxruntime", probs.astype(np.float64), fixture)
    # The same rows in other batch sizes: the batch dimension really is free.
    for batch in (1, 7):
        part = session.run(["probabilities"], {"input": x[:batch]})[0]
        if not np.allclose(part, probs[:batch], rtol=0, atol=1e-6):
            fail(f"batch of {batch} gives other probabilities than the full batch")

    # A file that is not an mlptrain model is refused, naming it.
    from safetensors.numpy import save_file

    bad = os.path.join(fixture.dir, "not_a_model.safetensors")
    save_file({"encoder.weight": np.zeros((2, 3), np.float32)}, bad)
    r = export(bad, os.path.join(fixture.dir, "bad.onnx"))
    if r.returncode != 1 or bad not in r.stderr or os.path.exists(
            os.path.join(fixture.dir, "bad.onnx")):
        fail(f"export of {bad}: exit {r.returncode}, stderr {r.stderr!r}")
    print("PASS")


if __name__ == "__main__":
    main()
