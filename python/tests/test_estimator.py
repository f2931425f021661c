"""mlptrain.MLPClassifier against scikit-learn's MLPClassifier, and what a user relies on:
attributes, errors, scikit-learn's tools, pickling, files, verbose output and Ctrl-C."""
import _thread
import json
import pickle
import subprocess
import threading
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlptrain
from mlptrain import MLPClassifier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _both(params, X, y):
    """The same configuration fitted by scikit-learn and by mlptrain, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkMLPClassifier(**params).fit(X, y)
        ours = MLPClassifier(device="cpu", **params).fit(X, y)
    return sk, ours


def test_version_and_devices():
    assert mlptrain.__version__ == "0.1.0"
    devices = mlptrain.devices()
    assert devices[0]["name"] == "cpu" and devices[0]["usable"]
    assert "GEMMs" in devices[0]["description"]
    for d in devices[1:]:
        assert d["kind"] == "cuda"
        assert d["usable"] or d["reason"]  # an unusable GPU says why


# The same initial weights (Glorot-uniform from random_state, drawn in scikit-learn's order)
# and the same shuffles: the loss curves agree to float32 rounding, for every activation and
# solver whose arithmetic is scikit-learn's.
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("solver,extra", [
    ("sgd", {"momentum": 0.0, "learning_rate_init": 0.1}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": False, "learning_rate_init": 0.02}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": True, "learning_rate_init": 0.02}),
    ("adam", {"learning_rate_init": 0.003}),
])
def test_loss_curve_matches_scikit_learn(digits, activation, solver, extra):
    X, y = digits
    params = dict(hidden_layer_sizes=(32, 16), activation=activation, solver=solver,
                  alpha=1e-3, batch_size=50, max_iter=8, random_state=3, **extra)
    sk, ours = _both(params, X, y)
    assert ours.n_iter_ == sk.n_iter_ == 8
    assert ours.t_ == sk.t_
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-3)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in sk.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in sk.intercepts_]
    assert abs(ours.score(X, y) - sk.score(X, y)) <= 0.01


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_learning_rate_schedules_match_scikit_learn(digits, schedule):
    X, y = digits
    params = dict(hidden_layer_sizes=(24,), solver="sgd", momentum=0.0,
                  learning_rate=schedule, learning_rate_init=0.5, power_t=0.25,
                  batch_size=100, max_iter=30, tol=0.05, n_iter_no_change=2, random_state=1)
    sk, ours = _both(params, X, y)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=2e-3)
    if schedule == "adaptive":
        assert ours._lr == pytest.approx(sk._optimizer.learning_rate)


def test_tol_stops_as_scikit_learn_does(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), solver="sgd", momentum=0.0,
                  learning_rate_init=0.2, tol=0.02, n_iter_no_change=3, max_iter=200,
                  random_state=0)
    sk, ours = _both(params, X, y)
    assert ours.n_iter_ == sk.n_iter_ < 200
    assert ours.best_loss_ == pytest.approx(sk.best_loss_, rel=1e-3)


def test_early_stopping_matches_scikit_learn(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(20,), solver="sgd", momentum=0.0,
                  learning_rate_init=0.1, early_stopping=True, validation_fraction=0.2,
                  n_iter_no_change=3, max_iter=60, random_state=4)
    sk, ours = _both(params, X, y)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, atol=0.01)
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.best_loss_ is None
    # scikit-learn keeps the weights of the best validation score; so does this one.
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=0.05)


def test_attributes_and_label_types():
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), device="cpu", max_iter=40, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= {"cat", "dog", "emu"}
    assert clf.n_features_in_ == 6
    assert [c.shape for c in clf.coefs_] == [(6, 7), (7, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert clf.n_iter_ == len(clf.loss_curve_) == 40 and clf.t_ == 40 * 120
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    # Two classes: a softmax over two outputs (documented difference from scikit-learn).
    binary = MLPClassifier(hidden_layer_sizes=(4,), device="cpu", max_iter=5).fit(X, y == 1)
    assert binary.predict_proba(X).shape == (120, 2) and binary.n_outputs_ == 2
    assert binary.predict(X).dtype == bool


def test_feature_names_in(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X[:200], columns=[f"p{i}" for i in range(64)])
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, device="cpu").fit(frame, y[:200])
    assert list(clf.feature_names_in_) == list(frame.columns)


def test_partial_fit(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), device="cpu", random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:100], y[:100])
    clf.partial_fit(X[:100], y[:100], classes=np.arange(10))
    assert clf.n_iter_ == 1
    clf.partial_fit(X[100:300], y[100:300])
    # n_iter_ counts the epochs of the last call, as scikit-learn's; t_ and loss_curve_ go on.
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 2 and clf.t_ == 300
    step, buffers = clf._optimizer_state
    assert step == 1 + 1  # one step per call (batch 200): Adam's moments carry over
    n_params = sum(c.size + b.size for c, b in zip(clf.coefs_, clf.intercepts_))
    assert [b.shape for b in buffers] == [(n_params,), (n_params,)]
    sk = SkMLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    sk.partial_fit(X[:100], y[:100], classes=np.arange(10))
    sk.partial_fit(X[100:300], y[100:300])
    np.testing.assert_allclose(clf.loss_curve_, sk.loss_curve_, rtol=2e-3)
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:10, :5], y[:10])
    first = MLPClassifier(hidden_layer_sizes=(4,), device="cpu")
    with pytest.raises(ValueError, match="classes not in"):
        first.partial_fit(X[:50], np.where(y[:50] > 1, 2, y[:50]), classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:10], np.full(10, -1))


def test_partial_fit_refuses_early_stopping(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, device="cpu")
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        clf.partial_fit(X, y, classes=np.arange(10))


def test_warm_start_continues(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, warm_start=True, device="cpu",
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        first = [c.copy() for c in clf.coefs_]
        clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 6
    assert not np.array_equal(first[0], clf.coefs_[0])
    assert clf.loss_curve_[-1] < clf.loss_curve_[2]
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X[y < 5], y[y < 5])


def test_same_result_on_any_thread_count_and_refit(digits):
    X, y = digits
    fits = []
    for threads in (1, 2, 2):
        clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=4, threads=threads,
                            device="cpu", random_state=7)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(clf.fit(X, y).coefs_)
    for other in fits[1:]:
        for a, b in zip(fits[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad,error,match", [
    ({"solver": "lbfgs"}, ValueError, "lbfgs"),
    ({"activation": "softplus"}, ValueError, "activation"),
    ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes"),
    ({"augment_shift": 1}, ValueError, "image_shape"),
    ({"image_shape": (3, 3)}, ValueError, "image_shape"),
    ({"device": "tpu"}, ValueError, "--device"),
    ({"weight_decay": 0.1}, ValueError, "weight_decay"),
])
def test_bad_parameters_raise(digits, bad, error, match):
    X, y = digits
    with pytest.raises(error, match=match):
        MLPClassifier(max_iter=1, **{"device": "cpu", **bad}).fit(X[:50], y[:50])


def test_bad_data_raises_scikit_learns_errors(digits):
    X, y = digits
    clf = MLPClassifier(device="cpu", max_iter=2, hidden_layer_sizes=(4,))
    Xn = X[:50].copy()
    Xn[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, y[:50])
    Xi = X[:50].copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clf.fit(Xi, y[:50])
    with pytest.raises(ValueError, match="2D array"):
        clf.fit(X[0], y[:1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X[:50], np.zeros(50))
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X[:50], np.linspace(0, 1, 50))
    with pytest.raises(ValueError, match="at most 256 classes"):
        clf.fit(np.random.RandomState(0).rand(300, 3), np.arange(300))
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="X has 5 features, but MLPClassifier is expecting 64"):
        clf.predict(X[:, :5])


def test_cuda_without_a_gpu_says_why(digits):
    if any(d["usable"] for d in mlptrain.devices() if d["kind"] == "cuda"):
        pytest.skip("a GPU is usable here")
    X, y = digits
    with pytest.raises(RuntimeError, match="CUDA|GPU|driver|cuda"):
        MLPClassifier(device="cuda", max_iter=1).fit(X[:50], y[:50])


def test_scikit_learn_tools(digits):
    X, y = digits
    X, y = X[:600], y[:600]
    base = MLPClassifier(hidden_layer_sizes=(16,), max_iter=15, learning_rate_init=0.01,
                         device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(), clone(base)).fit(X, y)
        assert pipe.score(X, y) > 0.8
        scores = cross_val_score(base, X, y, cv=3)
        assert scores.shape == (3,) and scores.min() > 0.7
        search = GridSearchCV(base, {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]},
                              cv=2).fit(X, y)
    assert set(search.best_params_) == {"alpha", "learning_rate_init"}
    assert search.best_estimator_.n_features_in_ == 64
    cloned = clone(base)
    assert cloned.get_params() == base.get_params() and not hasattr(cloned, "coefs_")


def test_pickle_and_joblib_round_trip(digits, tmp_path):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    expected = clf.predict_proba(X)
    # A model fitted on a GPU holds no device state: its pickle predicts anywhere.
    clf.set_params(device="cuda:0")
    for loaded in (pickle.loads(pickle.dumps(clf)),
                   joblib.load(joblib.dump(clf, tmp_path / "m.joblib")[0])):
        np.testing.assert_array_equal(loaded.predict_proba(X), expected)
        assert loaded.get_params() == clf.get_params()
        assert not any(type(v).__module__.startswith("mlptrain._core")
                       for v in vars(loaded).values())


def test_verbose_prints_scikit_learns_lines_and_ours(digits, capsys):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, verbose=True, device="cpu").fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out
    assert "epoch 1: train loss" in out and "samples/s" in out


def test_images_with_shifts_and_schedules(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), solver="adamw", learning_rate_init=0.01,
                        lr_schedule="onecycle", image_shape=(8, 8), augment_shift=1,
                        max_iter=6, batch_size=64, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.score(X, y) > 0.8
    assert clf.image_shape_ == (8, 8)


def test_ctrl_c_stops_within_a_step_and_keeps_the_last_whole_epoch():
    rng = np.random.RandomState(0)
    X = rng.rand(30000, 64).astype(np.float32)
    y = (X[:, :8].sum(axis=1) > 4).astype(int) + (X[:, 8] > 0.5)
    params = dict(hidden_layer_sizes=(256, 256), solver="sgd", learning_rate_init=0.01,
                  batch_size=32, tol=0.0, n_iter_no_change=10**6, device="cpu",
                  random_state=0)
    # How long one epoch takes here: the interrupt lands in the middle of the second.
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**{**params, "max_iter": 1}).fit(X, y)
    epoch = time.perf_counter() - start
    clf = MLPClassifier(**{**params, "max_iter": 10000})
    delay = 1.5 * epoch
    timer = threading.Timer(delay, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    late = time.perf_counter() - start - delay
    timer.cancel()
    # Within a step (about 1/1000 of an epoch here), with room for a loaded machine; an epoch
    # boundary would come about half an epoch after the interrupt.
    assert late < 0.25 * epoch, f"the fit went on {late:.3f} s after Ctrl-C (epoch {epoch:.3f} s)"
    assert clf.n_iter_ == len(clf.loss_curve_) >= 1
    assert clf._optimizer_state is None
    # What it holds is exactly what n_iter_ whole epochs give.
    again = MLPClassifier(**{**params, "max_iter": clf.n_iter_})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again.fit(X, y)
    for a, b in zip(clf.coefs_, again.coefs_):
        np.testing.assert_array_equal(a, b)
    assert clf.loss_curve_ == again.loss_curve_


def test_save_and_load_round_trip(digits, tmp_path):
    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    clf = MLPClassifier(hidden_layer_sizes=(12,), activation="tanh", max_iter=5, device="cpu",
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, labels)
    clf.save(tmp_path / "m.safetensors")
    loaded = mlptrain.load(tmp_path / "m.safetensors")
    assert loaded.activation == "tanh" and list(loaded.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-12)
    with pytest.raises(ValueError, match="nope.safetensors"):
        mlptrain.load(tmp_path / "nope.safetensors")


def _write_idx_images(path, images):
    n, rows, cols = images.shape
    header = (0x803).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (n, rows, cols))
    path.write_bytes(header + images.astype(np.uint8).tobytes())


def test_load_idx_files_and_folders(mnist_dir, tmp_path):
    data = mlptrain.load_idx(mnist_dir)
    assert data.X_train.shape == (60000, 28, 28) and data.X_train.dtype == np.uint8
    assert data.y_train.shape == (60000,) and data.X_test.shape == (10000, 28, 28)
    assert set(np.unique(data.y_test)) == set(range(10))
    flat = mlptrain.load_idx(mnist_dir, flatten=True)
    assert flat.X_test.shape == (10000, 784)
    images = next(mnist_dir.glob("t10k-images*"))
    np.testing.assert_array_equal(mlptrain.load_idx(images), data.X_test)
    labels = next(mnist_dir.glob("t10k-labels*"))
    np.testing.assert_array_equal(mlptrain.load_idx(labels), data.y_test)
    raw = tmp_path / "small-idx3-ubyte"
    _write_idx_images(raw, data.X_test[:5])
    np.testing.assert_array_equal(mlptrain.load_idx(raw), data.X_test[:5])
    truncated = tmp_path / "cut-idx3-ubyte"
    truncated.write_bytes(raw.read_bytes()[:-3])
    with pytest.raises(ValueError, match="cut-idx3-ubyte"):
        mlptrain.load_idx(truncated)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x00\x08\x09" + bytes(12))
    with pytest.raises(ValueError, match="junk.*magic"):
        mlptrain.load_idx(junk)
    with pytest.raises(FileNotFoundError):
        mlptrain.load_idx(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no IDX data set"):
        mlptrain.load_idx(tmp_path)


def test_cli_model_predicts_what_mlptrain_predict_says(mnist_dir, cli, tmp_path):
    model = tmp_path / "cli.safetensors"
    subprocess.run([cli, "train", "--data", str(mnist_dir), "--device", "cpu",
                    "--train-samples", "5000", "--epochs", "1", "--save-model", str(model)],
                   check=True, capture_output=True)
    images = next(mnist_dir.glob("t10k-images*"))
    out = subprocess.run([cli, "predict", "--model", str(model), "--idx", str(images), "--all",
                          "--json", "--top-k", "10"], check=True, capture_output=True,
                         text=True).stdout
    cli_top = [entry["top"] for entry in json.loads(out)]
    assert len(cli_top) == 10000
    est = mlptrain.load(model)
    X = mlptrain.load_idx(images, flatten=True)
    assert est.input_scale_ == pytest.approx(1 / 255)
    np.testing.assert_array_equal(est.predict(X), [t[0]["class"] for t in cli_top])
    proba = est.predict_proba(X)
    for i in range(0, 10000, 997):
        for entry in cli_top[i]:
            assert proba[i, entry["class"]] == pytest.approx(entry["probability"], abs=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_saved_model_is_read_by_the_cli(mnist_dir, cli, tmp_path, activation):
    data = mlptrain.load_idx(mnist_dir, flatten=True)
    X = (data.X_train[:3000] / 255.0).astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation=activation, solver="sgd",
                        learning_rate_init=0.1,
                        momentum=0.0, batch_size=64, max_iter=3, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, data.y_train[:3000])
    path = tmp_path / "py.safetensors"
    clf.save(path, input_scale="1/255")
    out = subprocess.run([cli, "eval", "--data", str(mnist_dir), "--device", "cpu", "--model",
                          str(path), "--json"], check=True, capture_output=True, text=True).stdout
    accuracy = json.loads(out)["test_accuracy"]
    expected = clf.score(data.X_test / 255.0, data.y_test)
    assert accuracy == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_onnx_export_follows_the_activation(digits, tmp_path, activation):
    ort = pytest.importorskip("onnxruntime")
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    from export_onnx import build_onnx
    from mlptrain_io import load_model
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(12, 7), activation=activation, max_iter=5,
                        device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    clf.save(tmp_path / "m.safetensors")
    onnx_model = build_onnx(load_model(str(tmp_path / "m.safetensors")))
    session = ort.InferenceSession(onnx_model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    proba = session.run(["probabilities"], {"input": X.astype(np.float32)})[0]
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)


def test_loaded_model_trains_on_and_stops_on_tol(digits, tmp_path):
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), solver="sgd", momentum=0.0, learning_rate_init=0.2,
                  tol=0.02, n_iter_no_change=3, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**{**params, "max_iter": 3}).fit(X, y).save(tmp_path / "m.safetensors")
    loaded = mlptrain.load(tmp_path / "m.safetensors")
    assert loaded.input_scale_ == 1.0
    loaded.set_params(warm_start=True, max_iter=200, **{k: v for k, v in params.items()
                                                        if k != "hidden_layer_sizes"})
    loaded.fit(X, y)
    assert loaded.n_iter_ < 200
