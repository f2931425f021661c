"""Estimators trained ahead of the fits that ask for them.

A fused search (``mlptrain.model_selection``) trains every candidate on every split together
with ``fit_many``, then lets scikit-learn's own search run: its ``fit`` calls find their
result here instead of training again, so that the search's bookkeeping (``cv_results_``,
scoring, refit, errors) is scikit-learn's. An entry is found by the estimator's parameters and
a fingerprint of the data its ``fit`` receives, and serves one fit; a fit that finds nothing
trains as usual.
"""
import hashlib
import threading
from contextlib import contextmanager

import numpy as np

_lock = threading.Lock()
_entries = {}  # (params key, data fingerprint) -> fitted attributes
_n_open = 0  # searches running; entries go when the last one ends


def data_fingerprint(X, y):
    """Identifies a validated training set: its shape, every row's sum, a sample of its
    rows and its labels. Two cross-validation splits differ in all of these."""
    X = np.asarray(X)
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((X.shape, str(X.dtype))).encode())
    h.update(X.sum(axis=1, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(X[:: max(1, X.shape[0] // 64)]).tobytes())
    y = np.asarray(y)
    h.update(str(y.dtype).encode())
    h.update(repr(y.tolist()).encode() if y.dtype == object else np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _value_key(v):
    if isinstance(v, np.random.RandomState):
        state = v.get_state()
        return ("RandomState", state[1].tobytes(), state[2:])
    if isinstance(v, np.ndarray):
        return ("ndarray", str(v.dtype), v.shape, v.tobytes())
    return repr(v)


def params_key(est):
    return tuple(sorted((k, _value_key(v)) for k, v in est.get_params(deep=False).items()))


@contextmanager
def session():
    """Entries added while the block runs stay until the last open session ends."""
    global _n_open
    with _lock:
        _n_open += 1
    try:
        yield
    finally:
        with _lock:
            _n_open -= 1
            if _n_open == 0:
                _entries.clear()


def add(key, est, fingerprint):
    """Keeps a fitted estimator's attributes for a later fit, on the data of `fingerprint`, of
    an estimator whose params_key() was `key` before it fitted (a RandomState parameter moves
    on as it fits)."""
    state = {k: v for k, v in est.__dict__.items() if k not in est.get_params(deep=False)}
    with _lock:
        if _n_open:
            _entries[(key, fingerprint)] = state


def restore(est, X, y):
    """Gives `est` (about to fit X, y afresh) the attributes trained ahead for it, if any."""
    if not _entries:
        return False
    if est.warm_start and hasattr(est, "coefs_"):
        return False
    from ._estimator import _validate_data  # the conversion fit applies

    X, y = _validate_data(est, X, y, dtype=(np.float64, np.float32), reset=True)
    with _lock:  # each model trained ahead serves one fit: the entry goes with it
        state = _entries.pop((params_key(est), data_fingerprint(X, y)), None)
    if state is None:
        return False
    est.__dict__.update(state)
    return True
