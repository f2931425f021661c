"""Shared fixtures: where the MNIST files and the command-line binary are."""
import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _has_mnist(folder):
    return folder.is_dir() and any(folder.glob("t10k-images*idx3-ubyte*"))


@pytest.fixture(scope="session")
def mnist_dir():
    """Genuine MNIST: $MLPTRAIN_MNIST, ../shared/data/mnist, then data/mnist."""
    candidates = [os.environ.get("MLPTRAIN_MNIST"), ROOT.parent / "shared" / "data" / "mnist",
                  ROOT / "data" / "mnist"]
    for c in candidates:
        if c and _has_mnist(pathlib.Path(c)):
            return pathlib.Path(c)
    reason = ("no MNIST files in $MLPTRAIN_MNIST, ../shared/data/mnist or data/mnist "
              "(scripts/get_mnist.sh fetches them)")
    if os.environ.get("MLPTRAIN_REQUIRE_MNIST") == "1":  # tests/python.sh fetched them
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cli():
    """The mlptrain command line: $MLPTRAIN_CLI, else build/ or build-cpu/ of this checkout."""
    for c in [os.environ.get("MLPTRAIN_CLI"), ROOT / "build" / "mlptrain",
              ROOT / "build-cpu" / "mlptrain", shutil.which("mlptrain")]:
        if c and os.access(c, os.X_OK):
            return str(c)
    pytest.skip("no mlptrain binary: set MLPTRAIN_CLI or build the CLI (cmake --preset cpu)")
