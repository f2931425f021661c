"""mlptrain.fit_many: many MLPClassifiers trained side by side in the core's batched engine.

Estimators that agree on what a batch shares train as one batch: one GEMM per layer and one
launch per operation for all of them, over one copy of the data set on the device, each model
on its own rows of it (a cross-validation fold). The epoch loop is each estimator's own
(``_Run``): the result is what its ``fit`` gives.
"""
import numbers

import numpy as np
from sklearn.utils import check_random_state

from . import _core
from ._estimator import MLPClassifier, _train_runs, _validate_data


def _most_state(settings):
    """The optimizer settings of a batch's model that keeps the most buffers (SGD with
    momentum over SGD without): the batch gives every model that much room."""
    for s in settings:
        if s.get("momentum", 0.0):
            return s
    return settings[0]


def _batch_key(run, hidden, image_shape):
    """What the models of a batch share. The class set is last (the batch's label codes)."""
    est = run.est
    return (tuple(hidden), est.activation, est.solver, run.batch_size, est.device,
            est.precision, est.kernels, int(est.threads), tuple(image_shape),
            int(est.augment_shift) > 0, tuple(est.classes_.tolist()))


def _nesterov_of(run):
    """Nesterov's rule for an SGD model with momentum; None where the flag does nothing (no
    momentum, or Adam), so that the model joins either kind of batch."""
    s = run.est._optimizer_settings()
    return s.get("nesterov", False) if s.get("momentum") else None


def _batches(prepared):
    """The batches: runs with one key, split where models with momentum differ in Nesterov's
    rule (a model without momentum joins the first)."""
    by_key = {}
    for member in prepared:
        run, hidden, image_shape = member
        by_key.setdefault(_batch_key(run, hidden, image_shape), []).append(member)
    for key, members in by_key.items():
        parts = {}
        for member in members:
            parts.setdefault(_nesterov_of(member[0]), []).append(member)
        free = parts.pop(None, [])
        if not parts:
            yield key, free
            continue
        for i, (_, part) in enumerate(parts.items()):
            yield key, (free if i == 0 else []) + part


def _split_to_fit(n_models, per_model, fixed, available, where, key):
    """How many models of a batch train together: all where they fit in `available`, else
    batches as large as fit; none fitting is an error, raised before anything is allocated."""
    if available <= 0 or fixed + n_models * per_model <= available:
        return n_models
    fit = (available - fixed) // per_model if available > fixed else 0
    if fit < 1:
        hidden, activation, solver = key[0], key[1], key[2]
        size = _core.format_bytes
        raise MemoryError(
            f"fit_many: one model {list(hidden)} ({activation}, {solver}) needs "
            f"{size(per_model)}, and its batch {size(fixed)} (the data set's copy and per-step "
            f"tables), more than the {size(available)} of {where} available")
    return int(fit)


def fit_many(estimators, X, y, *, subsets=None, on_epoch=None, memory_limit=None):
    """Fit unfitted ``mlptrain.MLPClassifier`` estimators together, estimator i on
    ``X[subsets[i]], y[subsets[i]]`` (all of X, y without ``subsets``).

    Estimator i ends as ``estimators[i].fit(X[subsets[i]], y[subsets[i]])`` would leave it:
    bit for bit on the CPU, to float rounding on a GPU; its random_state draws its
    initialisation, shuffles and validation split, and early stopping, ``tol`` and
    ``n_iter_no_change`` act on each estimator alone (one that stops sits out the rest of its
    batch's epochs, as one that diverges does). Estimators that draw from one random source
    (``random_state=None``, NumPy's global generator, or one ``RandomState`` object shared)
    interleave their draws epoch by epoch, so they are then not the fits one after another.

    Estimators that agree on the network (``hidden_layer_sizes``, ``activation``, the
    classes of their samples), the solver (and, among those with momentum, Nesterov's rule or
    not), the
    batch size, ``device``, ``precision``, ``kernels``, ``threads``, ``image_shape`` and
    whether they shift images train as one batch; other settings (learning rates, momentum,
    betas, alpha, weight decay, schedules, epochs, random_state, early stopping) may differ
    within a batch. Batches run one after another.

    Parameters
    ----------
    estimators : list of MLPClassifier
        Fitted afresh (an estimator with ``warm_start=True`` must not be fitted yet).
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    subsets : list of index arrays (or boolean masks), optional
        The rows each estimator trains on; each is held on the device once for all.
    on_epoch : callable, optional
        ``on_epoch(i, estimator)`` after each whole epoch of estimator i (its last included),
        its attributes (``loss_curve_``, ``validation_scores_``, ``n_iter_``, ``coefs_``) up to
        date; returning True stops that estimator there (pruning, e.g. Optuna's).
    memory_limit : int, optional
        Bytes a batch may take; default: the GPU's memory, or the host memory available. A
        batch that does not fit is split into batches that do (the models are independent);
        one model that does not fit raises MemoryError before anything is allocated. The
        estimate is the command line's ``sweep`` estimate.

    Returns
    -------
    list of the estimators, fitted.
    """
    estimators = list(estimators)
    if not estimators:
        raise ValueError("fit_many needs at least one estimator")
    for i, est in enumerate(estimators):
        if not isinstance(est, MLPClassifier):
            raise TypeError(f"fit_many fits mlptrain.MLPClassifier estimators; estimator {i} is "
                            f"{type(est).__name__}")
    if len({id(est) for est in estimators}) != len(estimators):
        raise ValueError("fit_many: the same estimator object appears twice; clone it")
    first = estimators[0]
    X, y = _validate_data(first, X, y, dtype=(np.float64, np.float32), reset=True)
    n_samples, n_features = X.shape
    if subsets is not None:
        subsets = list(subsets)
        if len(subsets) != len(estimators):
            raise ValueError(f"fit_many: {len(subsets)} subsets for {len(estimators)} "
                             "estimators")
        subsets = [_rows(s, n_samples, i) for i, s in enumerate(subsets)]
    if memory_limit is not None and (not isinstance(memory_limit, numbers.Integral)
                                     or memory_limit <= 0):
        raise ValueError(f"memory_limit must be a positive number of bytes, got "
                         f"{memory_limit!r}")

    # Each estimator as its fit begins: parameters checked, classes, initial weights, then
    # its validation split and batch size, in fit's order of random draws.
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    codes_of = {}  # classes -> every sample's class index among them
    prepared = []
    for i, est in enumerate(estimators):
        est._validate_params()
        hidden = est._check_solver()
        if est.warm_start and hasattr(est, "coefs_"):
            raise ValueError(f"fit_many fits estimators afresh; estimator {i} has "
                             "warm_start=True and is fitted")
        est._optimizer_settings()  # refuses settings the solver does not take
        rows = None if subsets is None else subsets[i]
        if est is not first:
            est.n_features_in_ = first.n_features_in_
            if hasattr(first, "feature_names_in_"):
                est.feature_names_in_ = first.feature_names_in_
            elif hasattr(est, "feature_names_in_"):
                del est.feature_names_in_
        est._fit_targets(y if rows is None else y[rows], incremental=False)
        est._random_state = check_random_state(est.random_state)
        image_shape = est._image_shape(n_features)
        est._initialize(n_features, hidden, image_shape)
        classes = tuple(est.classes_.tolist())
        if classes not in codes_of:
            # Samples of other classes are never in this estimator's rows; any index will do.
            codes = np.searchsorted(est.classes_, y)
            codes_of[classes] = np.minimum(codes, len(est.classes_) - 1).astype(np.uint8)
        run = est._start_run(0, X32, codes_of[classes], rows, incremental=False)
        run.index = i
        prepared.append((run, hidden, image_shape))

    callback = None
    if on_epoch is not None:
        callback = lambda run: bool(on_epoch(run.index, run.est))  # noqa: E731
    # Every batch's size is settled (or refused) before the first one is built.
    plan = []
    for key, members in list(_batches(prepared)):
        runs = [m[0] for m in members]
        hidden, image_shape = members[0][1], members[0][2]
        lead = runs[0].est
        settings = [run.est._optimizer_settings() for run in runs]
        memory = _core.batch_memory(hidden, n_features, len(lead.classes_), _most_state(settings),
                                    runs[0].batch_size, lead.kernels, lead.precision, n_samples,
                                    len(runs), lead.device)
        available = memory_limit if memory_limit is not None else memory["available"]
        size = _split_to_fit(len(runs), memory["per_model"], memory["fixed"], available,
                             memory["where"] if memory_limit is None else "the memory_limit",
                             key)
        plan.append((runs, size, codes_of[key[-1]], hidden, image_shape))
    for runs, size, codes, hidden, image_shape in plan:
        for start in range(0, len(runs), size):
            _train_batch(runs[start:start + size], X32, codes, hidden, image_shape, callback)
    return estimators


def _rows(subset, n_samples, i):
    rows = np.asarray(subset)
    if rows.dtype == bool:
        if rows.shape != (n_samples,):
            raise ValueError(f"fit_many: subset {i} is a mask of {rows.shape} for "
                             f"{n_samples} samples")
        rows = np.flatnonzero(rows)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"fit_many: subset {i} must be a 1-d array of row indices or a mask")
    if rows.size == 0:
        raise ValueError(f"fit_many: subset {i} is empty")
    if rows.min() < 0 or rows.max() >= n_samples:
        raise ValueError(f"fit_many: subset {i} names rows outside 0..{n_samples - 1}")
    return rows.astype(np.int64)


def _train_batch(runs, X32, codes, hidden, image_shape, callback):
    lead = runs[0].est
    for k, run in enumerate(runs):
        run.k = k
    trainer = _core.Trainer(
        X32, codes, image_shape[0], image_shape[1], hidden, len(lead.classes_), lead.activation,
        [run.est._optimizer_settings() for run in runs], runs[0].batch_size, lead.device,
        lead.kernels, lead.precision, int(lead.threads))
    try:
        for run in runs:
            run.est.device_ = trainer.device_name
            trainer.set_params(run.k, run.est._flat_params())
        _train_runs(trainer, runs, callback)
    finally:
        del trainer
