"""Interop: the checkpoint loads with the `safetensors` package into PyTorch's
nn.Sequential(Linear, ReLU, ..., Linear) with load_state_dict(strict=True) (or, where torch is
not installed, into NumPy arrays), and the forward pass there classifies the whole test set as
`mlptrain predict` does.

    tests/interop/run_python.sh tests/interop/check_safetensors.py WORKDIR
"""

import sys

import numpy as np

from interop_common import Fixture, compare, fail
from mlptrain_io import forward_numpy, softmax


def torch_probabilities(fixture):
    import torch
    from safetensors.torch import load_file

    sizes = fixture.model.layer_sizes
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    net.load_state_dict(load_file(fixture.model_path), strict=True)
    with torch.no_grad():
        logits = net(torch.from_numpy(fixture.inputs())).double()
    return torch.softmax(logits, dim=1).numpy()


def main():
    fixture = Fixture(sys.argv[1])
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    if have_torch:
        compare("torch", torch_probabilities(fixture), fixture)
    else:
        print("torch is not installed here (PyPI's wheel brings ~2.5 GB of CUDA libraries); "
              "using NumPy, as the project allows where torch is not installed")
    logits = forward_numpy(fixture.model, fixture.inputs())
    if logits.dtype != np.float32:
        fail(f"NumPy forward pass ran in {logits.dtype}, not float32")
    compare("numpy", softmax(logits.astype(np.float64)), fixture)
    print("PASS")


if __name__ == "__main__":
    main()
