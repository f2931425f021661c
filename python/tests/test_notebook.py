"""examples/mnist.ipynb: committed without outputs, and runs top to bottom.

Executing it trains MNIST for MLPTRAIN_NOTEBOOK_EPOCHS epochs (default 10, the notebook's own
default; its last cell asserts the test accuracy), so it needs the MNIST IDX files: in
$MLPTRAIN_MNIST, ../shared/data/mnist (relative to the repository root) or data/mnist.
"""
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "examples" / "mnist.ipynb"
MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _has_mnist(folder):
    return all((folder / n).exists() or (folder / (n + ".gz")).exists() for n in MNIST_NAMES)


def _mnist_folder():
    """The folder the notebook will find (it looks in the same places, relative to examples/)."""
    if os.environ.get("MLPTRAIN_MNIST"):
        candidates = [Path(os.environ["MLPTRAIN_MNIST"])]
    else:
        candidates = [REPO.parent / "shared" / "data" / "mnist", REPO / "data" / "mnist"]
    return next((c for c in candidates if _has_mnist(c)), None)


def test_notebook_is_stripped():
    # Outputs in the committed file would be stale, bulky diffs; the notebook is run by the test.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"code cell {i} has outputs; strip them before committing"
        assert cell.execution_count is None, f"code cell {i} has an execution_count"


def test_python3_kernel_is_this_interpreter():
    # The kernel must import the mlptrain installed here, not another environment's.
    from jupyter_client.manager import KernelManager
    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert os.path.realpath(cmd[0]) == os.path.realpath(sys.executable), cmd


def test_notebook_runs(monkeypatch):
    folder = _mnist_folder()
    if folder is None:
        reason = "no MNIST IDX files (set MLPTRAIN_MNIST or run scripts/get_mnist.sh)"
        if os.environ.get("MLPTRAIN_REQUIRE_MNIST") == "1":  # tests/python.sh fetched them
            pytest.fail(reason)
        pytest.skip(reason)
    # The kernel inherits this environment. MLPTRAIN_MNIST is left as it is, so that without
    # it the notebook's own lookup (relative to examples/, the kernel's cwd) is what runs.
    monkeypatch.setenv("MLPTRAIN_NOTEBOOK_EPOCHS", os.environ.get("MLPTRAIN_NOTEBOOK_EPOCHS", "10"))
    # Let ipykernel choose its inline backend (headless; figures become outputs), whatever
    # backend the caller's environment names.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)
    assert "test accuracy:" in text and "ok:" in text, text[-2000:]
