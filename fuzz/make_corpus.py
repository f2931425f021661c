#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus: small valid IDX files (raw, gzip, multi-member gzip)
and safetensors models in the layout the trainer writes. Generated rather than committed, so the
repository holds no binary blobs; standard library only, deterministic (gzip mtime 0).

Usage: make_corpus.py OUT_DIR   (creates OUT_DIR/seeds/<target>/ and OUT_DIR/corpus/<target>/)
"""
import gzip
import json
import struct
import sys
from pathlib import Path


def idx_images(n, rows, cols):
    header = struct.pack(">IIII", 0x00000803, n, rows, cols)
    return header + bytes((i * 7 + r * 3 + c) & 0xFF
                          for i in range(n) for r in range(rows) for c in range(cols))


def idx_labels(labels):
    return struct.pack(">II", 0x00000801, len(labels)) + bytes(labels)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def safetensors(sizes, metadata=None):
    """A model as encode_model writes it: weights [out, in] then bias [out] per layer."""
    meta = dict(metadata or {})
    meta["layer_sizes"] = ",".join(str(s) for s in sizes)
    header = {"__metadata__": meta}
    data = b""
    for layer, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        for name, shape in ((f"{2 * layer}.weight", [n_out, n_in]),
                            (f"{2 * layer}.bias", [n_out])):
            count = shape[0] * (shape[1] if len(shape) > 1 else 1)
            values = [((i * 37) % 17 - 8) / 8.0 for i in range(count)]
            begin = len(data)
            data += struct.pack(f"<{count}f", *values)
            header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [begin, len(data)]}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    images = idx_images(3, 28, 28)
    labels = idx_labels([0, 1, 2, 9, 5])
    seeds = {
        "fuzz_idx": {
            "images-2x4x4": idx_images(2, 4, 4),
            "images-3x28x28": images,
            "images-1x1x1": idx_images(1, 1, 1),
            "labels-5": labels,
            "labels-1": idx_labels([7]),
            "images-2x4x4.gz": gz(idx_images(2, 4, 4)),
            "images-3x28x28.gz": gz(images),
            "labels-5.gz": gz(labels),
            # Two gzip members, split inside the header, as some tools write long files.
            "images-multi-member.gz": gz(images[:10]) + gz(images[10:]),
        },
        "fuzz_safetensors": {
            "model-4-3-2.safetensors": safetensors([4, 3, 2], {"seed": "42"}),
            "model-2-2.safetensors": safetensors([2, 2]),
            "model-5-4-3-2.safetensors": safetensors([5, 4, 3, 2], {"epoch": "3", "lr": "0.1"}),
        },
    }
    for target, files in seeds.items():
        seed_dir = out / "seeds" / target
        seed_dir.mkdir(parents=True, exist_ok=True)
        (out / "corpus" / target).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (seed_dir / name).write_bytes(data)
    print(f"seed corpus written to {out / 'seeds'}")


if __name__ == "__main__":
    main()
