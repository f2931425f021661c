"""Shared by the interop checks: the fixture's files (tests/interop/setup.sh) and the comparison
of another implementation's class probabilities with `mlptrain predict`'s."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import numpy as np  # noqa: E402

import mlptrain_io  # noqa: E402

# mlptrain predicts in double precision, the others in float32. Their logits then differ by a
# few float32 roundings of sums of ~800 products (~1e-6 relative), so class probabilities agree
# to well under 1e-4, and the predicted class can only differ where the two most probable
# classes are closer than that rounding: we allow a disagreement only where mlptrain's top two
# probabilities are within 1e-5 of each other, and at most 5 such in a test set.
PROBABILITY_TOLERANCE = 1e-4
TIE_GAP = 1e-5
MAX_TIES = 5


class Fixture:
    def __init__(self, workdir):
        self.dir = workdir
        self.model_path = os.path.join(workdir, "m.safetensors")
        self.model = mlptrain_io.load_model(self.model_path)
        with open(os.path.join(workdir, "images.txt")) as f:
            self.images_path = f.read().strip()
        with open(os.path.join(workdir, "labels.txt")) as f:
            self.labels = mlptrain_io.read_idx(f.read().strip())
        self.images = mlptrain_io.read_idx(self.images_path)
        with open(os.path.join(workdir, "predictions.json")) as f:
            self.predictions = json.load(f)
        with open(os.path.join(workdir, "eval.json")) as f:
            self.eval = json.load(f)

    def inputs(self):
        """The test images as the network takes them (float32 [n, n_inputs])."""
        scale, offset = self.model.input_scale()
        x = self.images.reshape(len(self.images), -1).astype(np.float32)
        return x * np.float32(scale) + np.float32(offset)

    def mlptrain_probabilities(self):
        """[n, n_classes] from predict --all --json --top-k n_classes."""
        n, n_classes = len(self.images), self.model.layer_sizes[-1]
        if len(self.predictions) != n:
            fail(f"mlptrain predict gave {len(self.predictions)} results for {n} images")
        probs = np.full((n, n_classes), np.nan)
        for i, entry in enumerate(self.predictions):
            if entry["index"] != i or entry["file"] != self.images_path:
                fail(f"result {i} is for {entry['file']} [{entry['index']}]")
            if len(entry["top"]) != n_classes:
                fail(f"result {i} lists {len(entry['top'])} classes, not {n_classes}")
            for t in entry["top"]:
                probs[i, t["class"]] = t["probability"]
        if np.isnan(probs).any():
            fail("mlptrain predict left classes out")
        return probs


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def compare(name, reference, fixture):
    """Checks `reference` ([n, n_classes] probabilities from `name`) against mlptrain predict
    on every test image; prints a summary, exits 1 on a mismatch."""
    ours = fixture.mlptrain_probabilities()
    if reference.shape != ours.shape:
        fail(f"{name} gave probabilities of shape {reference.shape}, mlptrain {ours.shape}")
    worst = float(np.abs(reference - ours).max())
    ours_pred = ours.argmax(axis=1)
    ref_pred = reference.argmax(axis=1)
    top2 = np.sort(ours, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    differ = np.flatnonzero(ours_pred != ref_pred)
    unexplained = [int(i) for i in differ if gap[i] >= TIE_GAP]
    n = len(ours)
    ref_accuracy = float((ref_pred == fixture.labels).mean())
    print(f"{name}: {n} test images; predicted classes differ on {len(differ)} "
          f"(near-ties: {len(differ) - len(unexplained)}); largest probability difference "
          f"{worst:.2e}; accuracy {100 * ref_accuracy:.2f}% (mlptrain eval: "
          f"{100 * fixture.eval['test_accuracy']:.2f}%)")
    if unexplained:
        i = unexplained[0]
        fail(f"{name} predicts class {ref_pred[i]} for image {i}, mlptrain {ours_pred[i]} "
             f"(probabilities {reference[i].round(6).tolist()} vs {ours[i].round(6).tolist()})")
    if len(differ) > MAX_TIES:
        fail(f"{len(differ)} near-tie disagreements, more than the {MAX_TIES} allowed")
    if worst > PROBABILITY_TOLERANCE:
        fail(f"probabilities differ by up to {worst:.2e} (tolerance {PROBABILITY_TOLERANCE})")
    # eval's accuracy comes from the training engine (float GEMMs), not from predict.
    if abs(ref_accuracy - fixture.eval["test_accuracy"]) * n > MAX_TIES + 0.5:
        fail(f"{name}'s accuracy {ref_accuracy} is not mlptrain eval's "
             f"{fixture.eval['test_accuracy']}")
    if ref_accuracy < 0.5:
        fail(f"accuracy {ref_accuracy}: the fixture's model did not learn; nothing was tested")
