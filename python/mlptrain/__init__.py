"""mlptrain: small fully connected classifiers trained fast on an NVIDIA GPU or the CPU.

``mlptrain.MLPClassifier`` is a drop-in for scikit-learn's ``MLPClassifier`` on the C++/CUDA
core of the ``mlptrain`` command line; ``fit_many`` trains many of them side by side (and
``mlptrain.model_selection`` fuses scikit-learn's searches that way); ``load_idx`` reads the
MNIST family's IDX files, ``load`` a model the command line (or ``MLPClassifier.save``) wrote,
and ``devices`` says which backends and GPUs are usable here and why not.
"""
from . import _core
from ._estimator import MLPClassifier
from ._fit_many import fit_many
from ._io import load, load_idx

__version__ = _core.__version__


def devices():
    """The backends of this build and whether each is usable here.

    A list of dicts with ``name`` ("cpu", "cuda:0", ...: the values ``device=`` takes),
    ``kind``, ``usable``, ``description`` and ``reason`` (why not usable: a CPU-only build, no
    driver, a driver older than the CUDA runtime, ...). The CPU is always listed; one CUDA
    entry per GPU, or one unusable entry saying why there is none.
    """
    return _core.devices()


__all__ = ["MLPClassifier", "devices", "fit_many", "load", "load_idx", "__version__"]
