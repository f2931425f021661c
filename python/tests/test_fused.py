"""mlptrain.fit_many and the fused searches: each model trained together is the model its own
fit gives, bit for bit on the CPU; the searches' cv_results_ are scikit-learn's; the Optuna
example runs."""
import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold,
                                     cross_val_score)
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlptrain import MLPClassifier, _core, fit_many
from mlptrain import _fit_many as fit_many_module
from mlptrain.model_selection import FusedGridSearchCV, FusedRandomizedSearchCV

ROOT = Path(__file__).resolve().parents[2]

FITTED = ("coefs_", "intercepts_", "loss_curve_", "n_iter_", "t_", "loss_", "best_loss_",
          "validation_scores_", "best_validation_score_", "classes_", "n_features_in_")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def small(**params):
    base = dict(hidden_layer_sizes=(24, 12), solver="sgd", max_iter=6, random_state=0,
                device="cpu", learning_rate_init=0.1)
    base.update(params)
    return MLPClassifier(**base)


def assert_same_fit(a, b, where=""):
    for name in FITTED:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, list) and va and isinstance(va[0], np.ndarray):
            assert all(np.array_equal(x, z) for x, z in zip(va, vb)), f"{where}: {name}"
        elif isinstance(va, np.ndarray):
            assert np.array_equal(va, vb), f"{where}: {name}"
        else:
            assert va == vb or (va != va and vb != vb), f"{where}: {name} {va} != {vb}"


def test_fit_many_is_each_fit_on_its_fold(digits):
    X, y = digits
    folds = [train for train, _ in KFold(5, shuffle=True, random_state=0).split(X)]
    # Fold sizes 1437 and 1438: the last steps of the batch have different sample counts.
    assert len({len(f) for f in folds}) == 2
    estimators = [
        small(learning_rate_init=0.1, momentum=0.9, random_state=1),
        small(learning_rate_init=0.05, momentum=0.0, random_state=2, batch_size=100),
        small(learning_rate_init=0.2, momentum=0.5, random_state=3, early_stopping=True,
              n_iter_no_change=1, tol=0.2),  # stops early, the others train on
        small(learning_rate_init=0.1, momentum=0.9, learning_rate="invscaling", alpha=1e-3,
              random_state=4),
        small(learning_rate_init=0.1, solver="adam", random_state=5),  # a batch of its own
        small(learning_rate_init=0.01, solver="adamw", weight_decay=0.1, random_state=6,
              image_shape=(8, 8), augment_shift=1),
        small(learning_rate_init=0.1, activation="tanh", n_iter_no_change=1, tol=0.5,
              random_state=7),  # stops on tol
        small(learning_rate_init=0.1, batch_size=100, random_state=8),
    ]
    subsets = [folds[i % 5] for i in range(len(estimators))]
    alone = [clone(e).fit(X[s], y[s]) for e, s in zip(estimators, subsets)]
    assert fit_many(estimators, X, y, subsets=subsets) == estimators
    for i, (a, b) in enumerate(zip(estimators, alone)):
        assert_same_fit(a, b, f"estimator {i}")
        assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert estimators[2].n_iter_ < 6 and estimators[6].n_iter_ < 6
    assert estimators[0].n_iter_ == 6


def test_fit_many_without_subsets_and_with_masks(digits):
    X, y = digits
    a = [small(random_state=i, momentum=0.9 * (i % 2)) for i in range(3)]
    alone = [clone(e).fit(X, y) for e in a]
    fit_many(a, X, y)
    for e, b in zip(a, alone):
        assert_same_fit(e, b)
    mask = np.arange(len(y)) % 3 != 0
    m = fit_many([small()], X, y, subsets=[mask])[0]
    assert_same_fit(m, small().fit(X[mask], y[mask]))


def test_fit_many_on_epoch_stops_a_model(digits):
    X, y = digits
    seen = []

    def on_epoch(i, est):
        seen.append((i, est.n_iter_, len(est.loss_curve_)))
        return i == 1 and est.n_iter_ == 2

    ests = fit_many([small(random_state=0), small(random_state=1)], X, y, on_epoch=on_epoch)
    assert ests[0].n_iter_ == 6 and ests[1].n_iter_ == 2
    assert all(n == curve for _, n, curve in seen)
    assert [n for i, n, _ in seen if i == 0] == [1, 2, 3, 4, 5, 6]  # the last epoch included
    assert [n for i, n, _ in seen if i == 1] == [1, 2]
    assert_same_fit(ests[1], small(random_state=1, max_iter=2).fit(X, y))
    assert ests[1]._optimizer_state is not None  # a later partial_fit carries on


def test_fit_many_splits_a_batch_that_does_not_fit_in_memory(digits, monkeypatch):
    X, y = digits
    settings = small()._optimizer_settings()
    memory = _core.batch_memory([24, 12], 64, 10, settings, 200, "generic", "fp32", len(y), 3,
                                "cpu")
    assert memory["per_model"] > 0 and memory["fixed"] > len(y) * 64 * 4
    batches = []
    real = fit_many_module._train_batch
    monkeypatch.setattr(fit_many_module, "_train_batch",
                        lambda runs, *a: batches.append(len(runs)) or real(runs, *a))
    ests = [small(random_state=i) for i in range(5)]
    alone = [clone(e).fit(X, y) for e in ests]
    fit_many(ests, X, y, memory_limit=memory["fixed"] + 2 * memory["per_model"])
    assert batches == [2, 2, 1]
    for e, b in zip(ests, alone):
        assert_same_fit(e, b)
    with pytest.raises(MemoryError, match=r"needs .* more than the .* of the memory_limit"):
        fit_many([small()], X, y, memory_limit=memory["fixed"])
    # Refused before any batch trains: the small batch that would fit first is not built.
    batches.clear()
    with pytest.raises(MemoryError):
        fit_many([small(hidden_layer_sizes=(4,)), small(hidden_layer_sizes=(400, 400))], X, y,
                 memory_limit=memory["fixed"] + memory["per_model"])
    assert batches == []


def test_fit_many_batches_what_can_train_together(digits, monkeypatch):
    X, y = digits
    batches = []
    real = fit_many_module._train_batch
    monkeypatch.setattr(fit_many_module, "_train_batch",
                        lambda runs, *a: batches.append(len(runs)) or real(runs, *a))
    ests = [small(momentum=0.0, nesterovs_momentum=False), small(momentum=0.9),
            small(momentum=0.0), small(momentum=0.5, nesterovs_momentum=False),
            small(hidden_layer_sizes=(16,)), small(solver="adam")]
    alone = [clone(e).fit(X, y) for e in ests]
    fit_many(ests, X, y)
    # Models without momentum join the Nesterov batch; plain momentum, another layer size and
    # another solver make batches of their own.
    assert sorted(batches) == [1, 1, 1, 3]
    for e, b in zip(ests, alone):
        assert_same_fit(e, b)


def test_fit_many_refuses_what_it_cannot_fit(digits):
    X, y = digits
    with pytest.raises(TypeError, match="estimator 1 is LogisticRegression"):
        fit_many([small(), LogisticRegression()], X, y)
    e = small()
    with pytest.raises(ValueError, match="appears twice"):
        fit_many([e, e], X, y)
    with pytest.raises(ValueError, match="2 subsets for 1"):
        fit_many([small()], X, y, subsets=[[0, 1], [2]])
    with pytest.raises(ValueError, match="outside"):
        fit_many([small()], X, y, subsets=[[0, len(y)]])
    with pytest.raises(ValueError, match="empty"):
        fit_many([small()], X, y, subsets=[np.array([], dtype=int)])
    with pytest.raises(ValueError, match="lbfgs"):
        fit_many([small(), small(solver="lbfgs")], X, y)
    fitted = small(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        fit_many([fitted], X, y)


def assert_same_results(fused, sk):
    assert fused.cv_results_.keys() == sk.cv_results_.keys()
    for key, value in sk.cv_results_.items():
        if key.endswith("_time"):
            continue
        ours = fused.cv_results_[key]
        if isinstance(value, np.ma.MaskedArray):
            assert np.array_equal(ours.mask, value.mask), key
            assert list(ours.data) == list(value.data), key
        elif isinstance(value, np.ndarray):
            assert np.array_equal(ours, value), key
        else:
            assert ours == value, key
    assert fused.n_splits_ == sk.n_splits_


def trained_ahead(monkeypatch):
    """Counts the fits that trained a model themselves (not found trained ahead)."""
    calls = []
    real = MLPClassifier._fit
    monkeypatch.setattr(MLPClassifier, "_fit", lambda self, *a, **k: calls.append(1) or
                        real(self, *a, **k))
    return calls


@pytest.mark.parametrize("cv", [KFold(3, shuffle=True, random_state=0), StratifiedKFold(4)],
                         ids=["KFold", "StratifiedKFold"])
def test_fused_grid_search_equals_grid_search(digits, cv, monkeypatch):
    X, y = digits
    grid = {"learning_rate_init": [0.02, 0.2], "momentum": [0.0, 0.9],
            "batch_size": [64, 200]}  # two batches: one per batch size
    sk = GridSearchCV(small(), grid, cv=cv).fit(X, y)
    calls = trained_ahead(monkeypatch)
    fused = FusedGridSearchCV(small(), grid, cv=cv).fit(X, y)
    assert len(calls) == 1  # the refit; every candidate on every fold was trained ahead
    assert_same_results(fused, sk)
    assert fused.best_params_ == sk.best_params_ and fused.best_score_ == sk.best_score_
    assert np.array_equal(fused.predict_proba(X), sk.predict_proba(X))
    assert fused.score(X, y) == sk.score(X, y)
    assert fused.fused_fit_time_ > 0


def test_fused_search_with_a_scorer_and_no_refit(digits, monkeypatch):
    X, y = digits
    grid = {"learning_rate_init": [0.05, 0.2], "alpha": [1e-4, 1e-2]}
    kw = dict(cv=StratifiedKFold(3), scoring=["f1_macro", "neg_log_loss"], refit=False,
              return_train_score=True)
    sk = GridSearchCV(small(), grid, **kw).fit(X, y)
    calls = trained_ahead(monkeypatch)
    fused = FusedGridSearchCV(small(), grid, **kw).fit(X, y)
    assert calls == []
    assert_same_results(fused, sk)
    assert not hasattr(fused, "best_estimator_")
    one = dict(kw, scoring="balanced_accuracy", refit=True)
    assert_same_results(FusedGridSearchCV(small(), grid, **one).fit(X, y),
                        GridSearchCV(small(), grid, **one).fit(X, y))


def test_fused_randomized_search_equals_randomized_search(digits, monkeypatch):
    X, y = digits
    dist = {"learning_rate_init": loguniform(1e-3, 0.3), "momentum": [0.0, 0.5, 0.9]}
    kw = dict(n_iter=5, cv=3, random_state=0)
    sk = RandomizedSearchCV(small(), dist, **kw).fit(X, y)
    calls = trained_ahead(monkeypatch)
    fused = FusedRandomizedSearchCV(small(), dist, **kw).fit(X, y)
    assert len(calls) == 1
    assert_same_results(fused, sk)
    assert fused.best_params_ == sk.best_params_


def test_fused_search_with_a_random_state_splitter_and_array_parameters(digits, monkeypatch):
    X, y = digits
    # A splitter that draws from a RandomState object splits as it would without fusion.
    def cv():
        return KFold(3, shuffle=True, random_state=np.random.RandomState(3))

    grid = {"hidden_layer_sizes": [np.array([24, 12]), np.array([16])]}
    sk = GridSearchCV(small(), grid, cv=cv()).fit(X, y)
    calls = trained_ahead(monkeypatch)
    fused = FusedGridSearchCV(small(), grid, cv=cv()).fit(X, y)
    assert len(calls) == 1
    assert_same_results(fused, sk)


def test_fused_search_over_a_pipeline(digits, monkeypatch):
    X, y = digits
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", small())])
    grid = {"scale__with_mean": [True, False], "mlp__learning_rate_init": [0.01, 0.1]}
    sk = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    calls = trained_ahead(monkeypatch)
    fused = FusedGridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert len(calls) == 1
    assert_same_results(fused, sk)
    # Earlier steps that change the feature count: a batch per width.
    pca = Pipeline([("pca", PCA(random_state=0)), ("mlp", small())])
    widths = {"pca__n_components": [10, 20], "mlp__momentum": [0.0, 0.9]}
    sk = GridSearchCV(pca, widths, cv=3).fit(X, y)
    calls.clear()
    assert_same_results(FusedGridSearchCV(pca, widths, cv=3).fit(X, y), sk)
    assert len(calls) == 1
    # A search is itself an estimator: in cross-validation, a pipeline, pickled.
    inner = {"momentum": [0.0, 0.9]}
    scores = cross_val_score(FusedGridSearchCV(small(), inner, cv=2), X, y, cv=2)
    assert np.array_equal(scores, cross_val_score(GridSearchCV(small(), inner, cv=2), X, y, cv=2))
    again = pickle.loads(pickle.dumps(fused))
    assert np.array_equal(again.predict(X), fused.predict(X))


def test_fused_search_leaves_failing_candidates_to_error_score(digits):
    X, y = digits
    grid = {"solver": ["sgd", "lbfgs"]}
    with pytest.warns(FitFailedWarning, match="fits failed"):
        fused = FusedGridSearchCV(small(), grid, cv=2, error_score=np.nan).fit(X, y)
    assert np.isnan(fused.cv_results_["mean_test_score"][1])
    assert fused.best_params_ == {"solver": "sgd"}
    with pytest.raises(ValueError, match="lbfgs"):
        FusedGridSearchCV(small(), grid, cv=2, error_score="raise").fit(X, y)


def test_fused_search_refuses_other_estimators(digits):
    X, y = digits
    with pytest.raises(TypeError, match="GridSearchCV or RandomizedSearchCV for other"):
        FusedGridSearchCV(LogisticRegression(), {"C": [1.0]}).fit(X, y)


def test_optuna_example_runs_in_batches(digits):
    pytest.importorskip("optuna", reason="optuna does not install here (pip install optuna)")
    import optuna
    spec = importlib.util.spec_from_file_location(
        "optuna_batches", ROOT / "docs" / "examples" / "optuna_batches.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    X, y = digits
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study, epochs_run = example.run_study(X[:1400], y[:1400], X[1400:], y[1400:], rounds=2,
                                          batch=4, epochs=5, device="cpu", pruner=pruner)
    states = [t.state for t in study.trials]
    assert len(states) == 8
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               for s in states)
    for t in study.trials:
        # Every epoch was reported; a pruned model stopped where it was pruned.
        assert sorted(t.intermediate_values) == list(range(1, epochs_run[t.number] + 1))
        if t.state == optuna.trial.TrialState.PRUNED:
            assert epochs_run[t.number] <= 5
        else:
            assert epochs_run[t.number] == 5
    assert study.best_value > 0.8
