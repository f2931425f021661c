#!/usr/bin/env python3
"""Export an mlptrain checkpoint (safetensors) to ONNX.

    .venv-tools/bin/python tools/export_onnx.py model.safetensors -o model.onnx

The graph is Gemm (transB=1: the weights stay in their [out, in] layout) + the model's activation
per hidden layer (metadata "activation": Relu, Tanh, Sigmoid for logistic, none for identity),
a last Gemm giving "logits", and Softmax(axis=1) giving "probabilities". The input "input" is
float32 [batch, n_inputs] with a symbolic batch dimension, holding what the network itself takes:
pixel * input_scale + input_offset (pixel / 255 for mlptrain's models). Those two values, the
image shape and the checkpoint's other metadata are copied into the ONNX model's metadata_props.
The model is checked with onnx.checker before it is written.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlptrain_io import ModelError, load_model  # noqa: E402

OPSET = 17
# The hidden layers' activation (a model file's "activation", relu when absent) as an ONNX op.
ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid", "identity": None}
# ONNX IR version 8 goes with opset 17; newer onnx packages write a newer IR by default, which
# older runtimes refuse.
IR_VERSION = 8


def build_onnx(model):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in = model.layer_sizes[0]
    n_classes = model.layer_sizes[-1]
    activation = model.metadata.get("activation", "relu")
    if activation not in ONNX_ACTIVATIONS:
        raise ModelError(f"activation '{activation}' has no ONNX export "
                         f"(known: {', '.join(ONNX_ACTIVATIONS)})")
    op = ONNX_ACTIVATIONS[activation]
    nodes, initializers = [], []
    current = "input"
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        index = 2 * i  # nn.Sequential's numbering, as in the checkpoint
        initializers += [numpy_helper.from_array(w, f"{index}.weight"),
                         numpy_helper.from_array(b, f"{index}.bias")]
        last = i + 1 == len(model.weights)
        out = "logits" if last else f"gemm_{index}"
        nodes.append(helper.make_node("Gemm", [current, f"{index}.weight", f"{index}.bias"], [out],
                                      name=f"linear_{index}", transB=1))
        current = out
        if not last and op:
            name = f"{activation}_{index + 1}"
            nodes.append(helper.make_node(op, [out], [name], name=name))
            current = name
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax",
                                  axis=1))
    graph = helper.make_graph(
        nodes, "mlptrain",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_in])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes]),
                 helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                               ["batch", n_classes])],
        initializer=initializers)
    onnx_model = helper.make_model(graph, producer_name="mlptrain export_onnx.py",
                                   opset_imports=[helper.make_opsetid("", OPSET)])
    onnx_model.ir_version = IR_VERSION
    scale, offset = model.input_scale()
    rows, cols = model.image_shape() if _has_image_shape(model) else (0, 0)
    props = dict(model.metadata)
    props.update({"input_scale": str(scale), "input_offset": str(offset),
                  "layer_sizes": ",".join(str(v) for v in model.layer_sizes)})
    if rows:
        props.update({"image_rows": str(rows), "image_cols": str(cols)})
    helper.set_model_props(onnx_model, props)
    onnx_model.doc_string = (f"Fully connected {activation} classifier exported from an mlptrain "
                             "checkpoint; input = pixel * input_scale + input_offset")
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _has_image_shape(model):
    try:
        model.image_shape()
        return True
    except ModelError:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint written by mlptrain train --save-model")
    parser.add_argument("-o", "--output", required=True, help="ONNX file to write")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model)
    except ModelError as e:
        print(f"export_onnx: error: {e}", file=sys.stderr)
        return 1
    onnx_model = build_onnx(model)
    # Write next to the target and rename, so a failed export never leaves half a file.
    tmp = f"{args.output}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(onnx_model.SerializeToString())
        os.replace(tmp, args.output)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        print(f"export_onnx: error: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 1
    sizes = "-".join(str(v) for v in model.layer_sizes)
    print(f"wrote {args.output} ({sizes}, opset {OPSET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
