"""IDX files and model files: the readers and writer the command line uses, from NumPy."""
import collections
import gzip
import json
import os

import numpy as np

from . import _core

IdxDataset = collections.namedtuple("IdxDataset", ["X_train", "y_train", "X_test", "y_test"])

_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_DEFAULT_LIMIT_BYTES = 4 << 30


def _magic(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                head = f.read(4)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: broken gzip stream ({e})") from None
    if len(head) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    return int.from_bytes(head, "big")


def load_idx(path, *, flatten=False, max_bytes=_DEFAULT_LIMIT_BYTES):
    """Read IDX data (raw or gzip) with the command line's checks.

    ``path`` is an images file (returns uint8 ``(n, rows, cols)``), a labels file (uint8
    ``(n,)``), or a folder holding the four files of the MNIST family
    (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``): then an
    ``IdxDataset(X_train, y_train, X_test, y_test)`` whose image and label counts and image sizes
    have been checked against each other. ``flatten=True`` gives images as ``(n, rows * cols)``.
    A file above ``max_bytes`` (decoded) is refused before it is read. A defect raises
    ``ValueError`` naming the file; a missing file ``FileNotFoundError``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if not _core.has_dataset_files(path):
            raise FileNotFoundError(
                f"{path}: no IDX data set here (need train-images-idx3-ubyte, "
                "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                "each raw or .gz)")
        X_train, y_train, X_test, y_test = _core.load_idx_folder(path, int(max_bytes))
        if flatten:
            X_train = X_train.reshape(len(X_train), -1)
            X_test = X_test.reshape(len(X_test), -1)
        return IdxDataset(X_train, y_train, X_test, y_test)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    magic = _magic(path)
    if magic == _IMAGES_MAGIC:
        images = _core.load_idx_images(path, int(max_bytes))
        return images.reshape(len(images), -1) if flatten else images
    if magic == _LABELS_MAGIC:
        return _core.load_idx_labels(path, int(max_bytes))
    raise ValueError(f"{path}: not an IDX images (0x00000803) or labels (0x00000801) file "
                     f"(magic 0x{magic:08x})")


def _save(est, path, input_scale):
    sizes = [est.n_features_in_] + [c.shape[1] for c in est.coefs_]
    params = np.concatenate(
        [np.concatenate([np.ascontiguousarray(c.T, dtype=np.float32).ravel(),
                         np.asarray(b, dtype=np.float32)])
         for c, b in zip(est.coefs_, est.intercepts_)])
    scale = est.input_scale_ if input_scale is None else input_scale
    metadata = {
        "format": "mlptrain",
        "activation": est.activation,
        "input_scale": scale if isinstance(scale, str) else repr(float(scale)),
        "input_offset": "0",
        "n_classes": str(len(est.classes_)),
        "classes": json.dumps([c.item() if hasattr(c, "item") else c for c in est.classes_]),
        "source": "mlptrain.MLPClassifier",
    }
    shape = getattr(est, "image_shape_", None)
    if shape is not None:
        metadata["image_rows"], metadata["image_cols"] = str(shape[0]), str(shape[1])
    _core.save_model(os.fspath(path), sizes, np.ascontiguousarray(params), metadata)


def load(path):
    """A fitted ``MLPClassifier`` from a model file the command line or ``save`` wrote.

    Its ``predict`` takes what the model was trained on: for a command-line model, pixels on
    the IDX files' 0..255 scale (the file's ``input_scale``, 1/255, is applied), so
    ``load(m).predict(load_idx(images, flatten=True))`` is what ``mlptrain predict`` says.
    """
    from ._estimator import MLPClassifier
    sizes, params, metadata = _core.load_model(os.fspath(path))
    return MLPClassifier._from_model_file(list(sizes), params, dict(metadata), os.fspath(path))
