"""Reading mlptrain's files from Python: model checkpoints (safetensors) and IDX image files.

Used by tools/export_onnx.py and the interop tests; needs numpy and safetensors
(tools/setup_venv.sh installs both).
"""

import gzip
import json
import re
import struct
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


class ModelError(Exception):
    """A checkpoint that is not a valid mlptrain model; the message names the file."""


@dataclass
class Model:
    path: str
    weights: list  # float32 arrays [n_out, n_in], as torch.nn.Linear stores them
    biases: list  # float32 arrays [n_out]
    metadata: dict = field(default_factory=dict)

    @property
    def layer_sizes(self):
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def input_scale(self):
        """(scale, offset): the network's input is pixel * scale + offset (pixels 0..255)."""
        return (_number(self.metadata.get("input_scale", "1/255"), "input_scale", self.path),
                _number(self.metadata.get("input_offset", "0"), "input_offset", self.path))

    def image_shape(self):
        """(rows, cols) of the pictures the model takes: metadata, else the square root."""
        n = self.layer_sizes[0]
        if "image_rows" in self.metadata and "image_cols" in self.metadata:
            return int(self.metadata["image_rows"]), int(self.metadata["image_cols"])
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ModelError(f"{self.path}: {n} inputs is not a square image and the metadata "
                             "has no image_rows/image_cols")
        return side, side


def _number(text, key, path):
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ModelError(f"{path}: metadata {key} {text!r} is not a number or a/b") from None


def load_model(path):
    """Loads a checkpoint written by `mlptrain train --save-model` (or any safetensors file with
    the tensors of torch.nn.Sequential(Linear, ReLU, ..., Linear): "0.weight", "0.bias",
    "2.weight", ...)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(path, framework="np") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(path)
    except Exception as e:  # safetensors raises several types for bad files
        raise ModelError(f"{path}: cannot read as safetensors: {e}") from None

    layers = sorted({int(m.group(1)) for name in tensors
                     if (m := re.fullmatch(r"(\d+)\.(weight|bias)", name))})
    expected = {f"{i}.{kind}" for i in layers for kind in ("weight", "bias")}
    if not layers or set(tensors) != expected or layers != list(range(0, 2 * len(layers), 2)):
        raise ModelError(f"{path}: tensors {sorted(tensors)} are not those of "
                         "nn.Sequential(Linear, ReLU, ..., Linear)")
    weights, biases = [], []
    for i in layers:
        w, b = tensors[f"{i}.weight"], tensors[f"{i}.bias"]
        if w.dtype != np.float32 or b.dtype != np.float32 or w.ndim != 2 or b.shape != w.shape[:1]:
            raise ModelError(f"{path}: layer {i}: weight {w.dtype}{list(w.shape)} and bias "
                             f"{b.dtype}{list(b.shape)} are not float32 [out, in] and [out]")
        if weights and w.shape[1] != weights[-1].shape[0]:
            raise ModelError(f"{path}: layer {i} takes {w.shape[1]} inputs but the layer before "
                             f"gives {weights[-1].shape[0]}")
        weights.append(w)
        biases.append(b)
    model = Model(path, weights, biases, metadata)
    if "layer_sizes" in metadata:
        declared = [int(v) for v in metadata["layer_sizes"].split(",")]
        if declared != model.layer_sizes:
            raise ModelError(f"{path}: metadata layer_sizes {declared} do not match the tensors "
                             f"{model.layer_sizes}")
    return model


def forward_numpy(model, x):
    """Logits for a float32 batch x [n, n_inputs] (already scaled), in float32."""
    hidden = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
              "logistic": lambda z: 1 / (1 + np.exp(-z)), "identity": lambda z: z}
    name = model.metadata.get("activation", "relu")
    if name not in hidden:
        raise ModelError(f"{model.path}: unknown activation '{name}'")
    a = np.asarray(x, dtype=np.float32)
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        a = a @ w.T + b
        if i + 1 < len(model.weights):
            a = hidden[name](a)
    return a


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def read_idx(path):
    """An IDX file (raw or gzip, detected by content) as a uint8 array: images [n, rows, cols],
    labels [n]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, but {body.size} values follow")
    return body.reshape(dims)


def read_json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
