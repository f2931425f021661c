"""mlptrain.MLPClassifier: scikit-learn's MLPClassifier, trained by mlptrain's C++/CUDA core.

The epoch loop is scikit-learn's own (``MLPClassifier._fit_stochastic``): the same
initialisation and shuffles drawn from ``random_state``, the same learning-rate schedules,
tolerance tests, early stopping and attributes. Each epoch runs in the core (``_core.Trainer``:
the data set resident on the device, one recorded CUDA graph per epoch on a GPU). Where the
arithmetic differs from scikit-learn's, the difference is listed in ``MLPClassifier``'s
docstring.
"""
import json
import math
import numbers
import sys
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, shuffle as sk_shuffle
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted

from . import _core, _prefit

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


_ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
_SOLVERS = ("sgd", "adam", "adamw")
_MAX_CLASSES = 256  # labels are bytes in the core


def _forward(X, coefs, intercepts, activation):
    """Class probabilities, in float64 as the command line's ``predict`` computes them."""
    a = X
    n_layers = len(coefs)
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        z = a @ w.astype(np.float64) + b.astype(np.float64)
        if i + 1 < n_layers:
            if activation == "relu":
                np.maximum(z, 0.0, out=z)
            elif activation == "tanh":
                np.tanh(z, out=z)
            elif activation == "logistic":
                z = 1.0 / (1.0 + np.exp(-z))
        a = z
    a = a - a.max(axis=1, keepdims=True)
    np.exp(a, out=a)
    a /= a.sum(axis=1, keepdims=True)
    return a


class _Run:
    """One estimator's epochs as model k of a trainer: scikit-learn's ``_fit_stochastic`` loop
    taken apart at the epoch, so that a trainer runs one estimator (``fit``) or many side by
    side (``fit_many``) through the same code. ``rows`` are the positions of its training
    samples in the trainer's data set (None: all of them)."""

    def __init__(self, est, k, rows, n_samples, batch_size, incremental, keep_optimizer, X_val,
                 y_val):
        self.est, self.k, self.rows = est, k, rows
        self.n_samples, self.batch_size = n_samples, batch_size
        self.n_steps = -(-n_samples // batch_size)
        self.incremental, self.keep_optimizer = incremental, keep_optimizer
        self.X_val, self.y_val = X_val, y_val
        self.sample_idx = np.arange(n_samples, dtype=np.int32)
        self.diverged = False
        est.n_iter_ = 0  # per call, as scikit-learn counts it; t_ and loss_curve_ go on

    def plan(self):
        """The next epoch's (k, order, rates, shifts), drawn from random_state in
        scikit-learn's order."""
        est = self.est
        if est.shuffle:
            self.sample_idx = sk_shuffle(self.sample_idx, random_state=est._random_state)
        shifts = None
        shift = int(est.augment_shift)
        if shift:
            shifts = est._random_state.randint(-shift, shift + 1, 2 * self.n_samples,
                                               dtype=np.int8)
        rates = est._epoch_rates(est.n_iter_, self.n_steps)
        order = self.sample_idx if self.rows is None else self.rows[self.sample_idx]
        return (self.k, np.ascontiguousarray(order, dtype=np.int32), rates, shifts)

    def end_epoch(self, trainer, result, seconds):
        """The estimator after an epoch; True when its training is over."""
        est = self.est
        self.diverged = result["first_bad_step"] >= 0
        if self.diverged:
            warnings.warn(
                f"mlptrain: the loss or gradient became non-finite at step "
                f"{result['first_bad_step']} of epoch {est.n_iter_ + 1}; training "
                "stopped at the last finite step (lower learning_rate_init?)",
                ConvergenceWarning)
            est._set_flat_params(trainer.params(self.k))
            if not est.loss_curve_:
                est.loss_ = float("nan")
            return True
        est._end_epoch(trainer.params(self.k), result, self.n_samples, self.n_steps, seconds)
        est._update_no_improvement_count(est.early_stopping, self.X_val, self.y_val)
        est._iteration_ends()
        if est._no_improvement_count > est.n_iter_no_change:
            if est.early_stopping:
                msg = ("Validation score did not improve more than tol=%f for %d "
                       "consecutive epochs." % (est.tol, est.n_iter_no_change))
            else:
                msg = ("Training loss did not improve more than tol=%f for %d "
                       "consecutive epochs." % (est.tol, est.n_iter_no_change))
            if est._trigger_stopping(msg):
                return True
            est._no_improvement_count = 0
        if self.incremental:
            return True
        if est.n_iter_ == est.max_iter:
            warnings.warn(
                "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                "optimization hasn't converged yet." % est.max_iter, ConvergenceWarning)
            return True
        return False

    def close(self, trainer):
        """The optimizer state kept for a later partial_fit or warm start, and early
        stopping's best weights."""
        est = self.est
        step, buffers = trainer.optimizer_state(self.k)
        est._optimizer_state = (int(step), [np.asarray(b) for b in buffers])
        if est.early_stopping and est._best_coefs is not None:
            est.coefs_ = est._best_coefs
            est.intercepts_ = est._best_intercepts


def _train_runs(trainer, runs, on_epoch=None):
    """Epochs of every run in `trainer` together until each is over. ``on_epoch(run)``,
    called after each of a run's whole epochs (its last included), stops that run by returning
    True."""
    active = list(runs)
    try:
        while active:
            plans = [run.plan() for run in active]
            start = time.perf_counter()
            results = trainer.train_epoch(plans)
            seconds = time.perf_counter() - start
            for run in list(active):
                over = run.end_epoch(trainer, results[run.k], seconds)
                if on_epoch is not None and not run.diverged and on_epoch(run):
                    over = True
                if over:
                    run.close(trainer)
                    active.remove(run)
    except KeyboardInterrupt:
        # The attributes are those of the last whole epoch (each epoch sets them all at
        # once, in _end_epoch); the trainer's optimizer state may be mid-epoch: dropped.
        for run in active:
            run.est._optimizer_state = None
        raise


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained on an NVIDIA GPU or the CPU by mlptrain.

    The parameters, defaults and fitted attributes are scikit-learn's
    ``sklearn.neural_network.MLPClassifier``'s (see its documentation), with these additions:

    solver : {"adam", "sgd", "adamw"}
        ``"adamw"`` is Adam with decoupled weight decay (``weight_decay``). ``"lbfgs"`` is not
        supported (mlptrain trains by minibatches) and raises ``ValueError``.
    device : str, default="auto"
        ``"auto"`` (GPU 0 when one is usable, else the CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``; ``mlptrain.devices()`` lists what is usable here.
    precision : {"fp32", "tf32", "bf16"}, default="fp32"
        GEMM precision on a GPU (tf32 and bf16: CUDA only).
    kernels : {"generic", "fused"}, default="generic"
        The core's kernel path; ``"fused"`` (cuBLASLt epilogues) runs ReLU networks only.
    threads : int, default=0
        CPU threads (0: one per CPU the process may use). No result depends on it.
    weight_decay : float or None, default=None
        ``solver="adamw"``'s decoupled weight decay (None: PyTorch's 0.01); ``alpha`` applies
        to every solver as scikit-learn's L2 penalty.
    lr_schedule : {None, "step", "cosine", "onecycle"}, default=None
        One of the command line's schedules over ``max_iter`` epochs, replacing
        ``learning_rate`` (``onecycle``: ``learning_rate_init`` is the peak).
    warmup_pct, gamma, step_size :
        The schedules' settings (``--warmup-pct``, ``--gamma``, ``--step-size``).
    image_shape : (rows, cols) or None, default=None
        The shape of image-shaped features (e.g. ``(28, 28)`` for MNIST), needed by
        ``augment_shift``.
    augment_shift : int, default=0
        Random shifts of each training image by up to this many pixels per axis, drawn from
        ``random_state`` every epoch (pixels shifted in are 0).

    Differences from scikit-learn, all tested or documented here:

    - Training runs in float32 (scikit-learn: the input's dtype); ``predict_proba`` in float64.
    - ``fit`` and ``partial_fit`` take no ``sample_weight`` (the core's loss weighs every sample
      alike), and X must be dense (scikit-learn also takes CSR/CSC matrices).
    - Two classes use a softmax over two outputs, as more classes do: ``n_outputs_`` is 2,
      ``out_activation_`` is ``"softmax"`` and ``coefs_[-1]`` has two columns (scikit-learn:
      one logistic output). Multilabel targets are not supported.
    - ``momentum`` follows PyTorch's rule (v = m v + g; w -= lr v), equal to scikit-learn's
      (v = m v - lr g; w += v) while the learning rate is constant and scaled differently
      right after ``invscaling`` or ``adaptive`` changes it.
    - ``loss_`` adds the L2 penalty with the weights at the end of the epoch (scikit-learn:
      those of each batch); its data term is the exact log-softmax (scikit-learn clips
      probabilities at float eps).
    - A non-finite loss or gradient stops training at the last finite step with a
      ``ConvergenceWarning`` (scikit-learn keeps going with NaN weights).
    - Ctrl-C stops a fit within one step (CPU) or one epoch (GPU), raises
      ``KeyboardInterrupt`` (scikit-learn warns and returns) and leaves the estimator as it was
      after the last whole epoch (its optimizer state is then dropped: a later
      ``partial_fit`` starts it afresh).
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions(set(_SOLVERS) | {"lbfgs"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str],
        "precision": [StrOptions({"fp32", "tf32", "bf16"})],
        "kernels": [StrOptions({"generic", "fused"})],
        "threads": [Interval(numbers.Integral, 0, None, closed="left")],
        "weight_decay": [None, Interval(numbers.Real, 0, None, closed="left")],
        "lr_schedule": [None, StrOptions({"step", "cosine", "onecycle"})],
        "warmup_pct": [Interval(numbers.Real, 0, 1, closed="neither")],
        "gamma": [Interval(numbers.Real, 0, None, closed="neither")],
        "step_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "image_shape": [None, tuple, list],
        "augment_shift": [Interval(numbers.Integral, 0, 127, closed="both")],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        device="auto",
        precision="fp32",
        kernels="generic",
        threads=0,
        weight_decay=None,
        lr_schedule=None,
        warmup_pct=0.3,
        gamma=0.1,
        step_size=1,
        image_shape=None,
        augment_shift=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.precision = precision
        self.kernels = kernels
        self.threads = threads
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.warmup_pct = warmup_pct
        self.gamma = gamma
        self.step_size = step_size
        self.image_shape = image_shape
        self.augment_shift = augment_shift

    # ----------------------------------------------------------------------------- fitting

    def fit(self, X, y):
        """Fit the model to data matrix X and targets y (as scikit-learn's ``fit``)."""
        self._validate_params()
        self._check_solver()
        if _prefit.restore(self, X, y):  # trained already, beside others, by a fused search
            return self
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over X, y (as scikit-learn's ``partial_fit``; ``classes`` on the first
        call)."""
        self._validate_params()
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_call = not hasattr(self, "classes_")
        if first_call:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = self._checked_classes(np.unique(classes))
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={list(classes)!r}` is not the same as on the last call "
                             f"to partial_fit, was: {list(self.classes_)!r}")
        return self._fit(X, y, incremental=True)

    @staticmethod
    def _checked_classes(labels):
        if len(labels) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes; the data "
                             f"has {len(labels)} class")
        if len(labels) > _MAX_CLASSES:
            raise ValueError(f"MLPClassifier of mlptrain takes at most {_MAX_CLASSES} classes; "
                             f"the data has {len(labels)}")
        return labels

    def _check_solver(self):
        if self.solver == "lbfgs":
            raise ValueError(
                "solver='lbfgs' is not supported by mlptrain, which trains by minibatches; use "
                "'adam' (the default), 'sgd' or 'adamw', or "
                "sklearn.neural_network.MLPClassifier for L-BFGS")
        hidden = self._hidden_sizes()
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {list(hidden)}.")
        if self.augment_shift and self.image_shape is None:
            raise ValueError("augment_shift needs image_shape=(rows, cols)")
        return hidden

    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        if not hasattr(h, "__iter__"):
            h = [h]
        return [int(v) for v in h]

    def _first_pass(self, incremental):
        return not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

    def _fit(self, X, y, incremental):
        hidden = self._check_solver()
        first_pass = self._first_pass(incremental)
        X, y = _validate_data(self, X, y, dtype=(np.float64, np.float32), reset=first_pass)
        y_codes = self._fit_targets(y, incremental)
        self._random_state = check_random_state(self.random_state)
        image_shape = self._image_shape(X.shape[1])
        if first_pass:
            self._initialize(X.shape[1], hidden, image_shape)
        X = self._scaled(X).astype(np.float32, copy=False)
        run = self._start_run(0, X, y_codes, None, incremental)
        if run.rows is not None:  # early stopping: the trainer holds the training part alone
            X, y_codes, run.rows = X[run.rows], y_codes[run.rows], None
        trainer = _core.Trainer(
            np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(y_codes),
            image_shape[0], image_shape[1], hidden, len(self.classes_), self.activation,
            [self._optimizer_settings()], run.batch_size, self.device, self.kernels,
            self.precision, int(self.threads))
        self.device_ = trainer.device_name
        trainer.set_params(0, self._flat_params())
        if run.keep_optimizer:
            step, buffers = self._optimizer_state
            trainer.set_optimizer_state(0, step, buffers)
        try:
            _train_runs(trainer, [run])
        finally:
            del trainer  # its device memory goes now, not with an exception's traceback
        return self

    def _fit_targets(self, y, incremental):
        """scikit-learn's _validate_input for y: classes from y on a fresh fit; the same set
        for a warm start; a subset of classes_ (partial_fit's classes) for a later
        partial_fit. Returns each sample's class index."""
        check_classification_targets(y)
        target = type_of_target(y)
        if target not in ("binary", "multiclass"):
            raise ValueError(f"MLPClassifier of mlptrain takes one label per sample; got a "
                             f"{target} target")
        classes = np.unique(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self.classes_ = self._checked_classes(classes)
        elif self.warm_start:
            if set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes as "
                                 f"in the previous call to fit. Previously got {self.classes_}, "
                                 f"`y` has {classes}")
        elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {classes}.")
        return np.searchsorted(self.classes_, y).astype(np.uint8)

    def _image_shape(self, n_features):
        if self.image_shape is None:
            return (1, n_features)
        image_shape = tuple(int(v) for v in self.image_shape)
        if len(image_shape) != 2 or image_shape[0] * image_shape[1] != n_features:
            raise ValueError(f"image_shape {self.image_shape!r} does not hold the "
                             f"{n_features} features of X")
        return image_shape

    def _start_run(self, k, X, y_codes, rows, incremental):
        """The epochs of this estimator as model k of a trainer over X (float32, scaled), on
        the samples `rows` of X (None: all of them), whose class indices are y_codes[rows]:
        scikit-learn's split of a validation set for early stopping, the batch size, and the
        learning rate where a run starts afresh."""
        n_samples = X.shape[0] if rows is None else len(rows)
        X_val = y_val = None
        if self.early_stopping:
            positions = np.arange(n_samples)
            codes = y_codes if rows is None else y_codes[rows]
            stratify = codes if len(self.classes_) == 2 else None
            # The split of positions is scikit-learn's split of the rows themselves: it depends
            # on the sample count, random_state and stratify alone.
            train, val = train_test_split(positions, random_state=self._random_state,
                                          test_size=self.validation_fraction, stratify=stratify)
            if len(val) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            val_rows = val if rows is None else rows[val]
            X_val, y_val = X[val_rows], y_codes[val_rows]
            rows = train if rows is None else rows[train]
            n_samples = len(rows)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        keep_optimizer = incremental and getattr(self, "_optimizer_state", None) is not None
        if not keep_optimizer:
            self._lr = float(self.learning_rate_init)
            self._optimizer_state = None
        return _Run(self, k, None if rows is None else np.asarray(rows, dtype=np.int32),
                    n_samples, batch_size, incremental, keep_optimizer, X_val, y_val)

    def _optimizer_settings(self):
        s = {"kind": self.solver, "l2_penalty": float(self.alpha)}
        if self.solver == "sgd":
            s["momentum"] = float(self.momentum)
            s["nesterov"] = bool(self.nesterovs_momentum and self.momentum > 0)
        else:
            s.update(beta1=float(self.beta_1), beta2=float(self.beta_2), eps=float(self.epsilon),
                     eps_before_bias_correction=True)
            if self.solver == "adamw":
                s["weight_decay"] = 0.01 if self.weight_decay is None else float(self.weight_decay)
        if self.solver != "adamw" and self.weight_decay:
            raise ValueError("weight_decay applies to solver='adamw' (use alpha, the L2 "
                             "penalty, with 'sgd' and 'adam')")
        return s

    def _initialize(self, n_features, hidden, image_shape):
        """scikit-learn's ``_initialize``: Glorot-uniform weights and biases from
        random_state, layer by layer, and the attributes of a fresh fit."""
        n_classes = len(self.classes_)
        layer_units = [n_features] + list(hidden) + [n_classes]
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_classes
        self.n_layers_ = len(layer_units)
        self.out_activation_ = "softmax"
        self.input_scale_ = 1.0
        self.image_shape_ = image_shape if self.image_shape is not None else None
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(
                self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
            self.intercepts_.append(
                self._random_state.uniform(-bound, bound, fan_out).astype(np.float32))
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._optimizer_state = None
        self._best_coefs = self._best_intercepts = None
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _flat_params(self):
        parts = []
        for w, b in zip(self.coefs_, self.intercepts_):
            parts.append(np.ascontiguousarray(w.T, dtype=np.float32).ravel())
            parts.append(np.asarray(b, dtype=np.float32))
        return np.ascontiguousarray(np.concatenate(parts))

    def _set_flat_params(self, flat):
        self.coefs_, self.intercepts_ = self._unflatten(flat)

    def _unflatten(self, flat):
        """coefs_ and intercepts_ (scikit-learn's shapes) from the core's flat layout."""
        offset = 0
        coefs, intercepts = [], []
        for w in self.coefs_:
            n_in, n_out = w.shape
            coefs.append(np.ascontiguousarray(flat[offset:offset + n_in * n_out]
                                              .reshape(n_out, n_in).T))
            offset += n_in * n_out
            intercepts.append(flat[offset:offset + n_out].copy())
            offset += n_out
        return coefs, intercepts

    def _epoch_rates(self, epoch, n_steps):
        if self.lr_schedule is not None:
            return _core.schedule_rates(self.lr_schedule, float(self.learning_rate_init), epoch,
                                        n_steps, int(self.max_iter), float(self.warmup_pct),
                                        float(self.gamma), int(self.step_size))
        return np.full(n_steps, self._lr)

    def _end_epoch(self, flat_params, result, n_samples, n_steps, seconds):
        """The attributes of a finished epoch, computed first and then set together, so that
        an interrupt leaves either all of them or none."""
        coefs, intercepts = self._unflatten(flat_params)
        penalty = 0.0
        if self.alpha:
            squares = sum(float(np.dot(w.ravel(), w.ravel())) for w in coefs)
            penalty = 0.5 * self.alpha * squares * n_steps / n_samples
        loss = float(result["loss"]) + penalty
        curve = self.loss_curve_ + [loss]
        # One statement: no signal handler runs between its stores.
        (self.coefs_, self.intercepts_, self.n_iter_, self.t_, self.loss_,
         self.loss_curve_) = (coefs, intercepts, self.n_iter_ + 1, self.t_ + n_samples, loss,
                              curve)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            print(f"epoch {self.n_iter_}: train loss {result['loss']:.4f}, train acc "
                  f"{100 * result['accuracy']:.2f}%, {seconds:.3f} s "
                  f"({n_samples / max(seconds, 1e-12):,.0f} samples/s) on {self.device_}")
            sys.stdout.flush()

    def _update_no_improvement_count(self, early_stopping, X_val, y_val):
        if early_stopping:
            score = float(np.mean(self._predict_codes(X_val, scaled=True) == y_val))
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            if self.best_loss_ is None:  # initialised for early stopping, now partial_fit
                self.best_loss_ = np.inf
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _iteration_ends(self):
        """scikit-learn's SGDOptimizer.iteration_ends: invscaling after every epoch."""
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t

    def _trigger_stopping(self, msg):
        """scikit-learn's trigger_stopping: adaptive SGD divides the rate by 5 instead of
        stopping, until it is 1e-6."""
        if self.solver != "sgd" or self.learning_rate != "adaptive" or self.lr_schedule:
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._lr /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._lr)
        return False

    # ---------------------------------------------------------------------------- predicting

    def _scaled(self, X):
        scale = getattr(self, "input_scale_", 1.0)
        return X if scale == 1.0 else X * scale

    def _check_X(self, X):
        check_is_fitted(self)
        return _validate_data(self, X, dtype=(np.float64, np.float32), reset=False)

    def _proba(self, X, scaled=False):
        X = np.asarray(X, dtype=np.float64)
        if not scaled:
            X = self._scaled(X)
        return _forward(X, self.coefs_, self.intercepts_, self.activation)

    def _predict_codes(self, X, scaled=False):
        return np.argmax(self._proba(X, scaled), axis=1)

    def predict_proba(self, X):
        """Probability of each class (columns in the order of ``classes_``)."""
        return self._proba(self._check_X(X))

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def predict(self, X):
        """The most probable class of each sample."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------------------------- files

    def save(self, path, input_scale=None):
        """Write the command line's safetensors model file (``mlptrain eval`` and
        ``mlptrain predict`` read it), atomically.

        ``input_scale`` is what the command line multiplies pixels by to get this model's
        input: the default is what ``predict`` applies (1 for a model fitted in Python on
        features as given); pass ``"1/255"`` for a model fitted on pixels / 255, which
        ``mlptrain eval`` requires.
        """
        check_is_fitted(self)
        from ._io import _save
        _save(self, path, input_scale)

    @classmethod
    def _from_model_file(cls, sizes, params, metadata, path):
        activation = metadata.get("activation", "relu")
        est = cls(hidden_layer_sizes=tuple(sizes[1:-1]), activation=activation)
        est.n_features_in_ = sizes[0]
        n_classes = sizes[-1]
        classes = metadata.get("classes")
        est.classes_ = (np.asarray(json.loads(classes)) if classes
                        else np.arange(n_classes, dtype=np.int64))
        if len(est.classes_) != n_classes:
            raise ValueError(f"{path}: metadata classes lists {len(est.classes_)} classes for "
                             f"{n_classes} outputs")
        est.coefs_ = [np.zeros((a, b), np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
        est.intercepts_ = [np.zeros(b, np.float32) for b in sizes[1:]]
        est._set_flat_params(np.asarray(params, dtype=np.float32))
        est.n_layers_ = len(sizes)
        est.n_outputs_ = n_classes
        est.out_activation_ = "softmax"
        scale = metadata.get("input_scale", "1/255")
        if "/" in scale:
            num, den = scale.split("/", 1)
            est.input_scale_ = float(num) / float(den)
        else:
            est.input_scale_ = float(scale)
        rows, cols = metadata.get("image_rows"), metadata.get("image_cols")
        est.image_shape_ = (int(rows), int(cols)) if rows and cols else None
        epochs = metadata.get("epoch") or metadata.get("epochs")
        est.n_iter_ = int(epochs) if epochs and epochs.isdigit() else 0
        est.t_ = 0
        est.loss_curve_ = []
        est.loss_ = math.nan
        est.best_loss_ = np.inf  # a further fit stops on tol as a fresh one does
        est._no_improvement_count = 0
        est._best_coefs = est._best_intercepts = None
        est.validation_scores_ = None
        est.best_validation_score_ = None
        est._optimizer_state = None
        return est

    # -------------------------------------------------------------------------------- tags

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multilabel": False}
