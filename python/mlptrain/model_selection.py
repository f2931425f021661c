"""Hyperparameter searches whose candidates and folds train together.

``FusedGridSearchCV`` and ``FusedRandomizedSearchCV`` are scikit-learn's ``GridSearchCV`` and
``RandomizedSearchCV`` over ``mlptrain.MLPClassifier`` (alone or as the last step of a
``Pipeline``). Before scikit-learn evaluates a set of candidates, every candidate is trained
on every split at once by ``mlptrain.fit_many``: the data set on the device once, each fold's
models on their own rows of it, one batch per group of candidates that share a network
shape, batch size and solver. scikit-learn's own search then runs as usual, and each ``fit``
it makes finds its model already trained (``mlptrain._prefit``); everything else (scoring,
``cv_results_``, ranks, ``refit``, ``error_score``) is scikit-learn's code, so the results are
those of ``GridSearchCV`` over the same estimator and splits: equal on the CPU, where each
model trained together is bit for bit the model trained alone.
"""
import copy
import inspect
import time
import warnings

import numpy as np
from joblib import parallel_config
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_array

from . import _prefit
from ._estimator import MLPClassifier
from ._fit_many import fit_many

_RUN_SEARCH_TAKES_CONTEXT = "callback_ctx" in inspect.signature(
    GridSearchCV._run_search).parameters


def _final_step(estimator):
    """The MLPClassifier a search trains and the steps before it (None without a pipeline);
    TypeError for anything else."""
    if isinstance(estimator, MLPClassifier):
        return estimator, None
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[-1][1], MLPClassifier):
        return estimator.steps[-1][1], estimator[:-1]
    raise TypeError(
        f"a fused search trains mlptrain.MLPClassifier, alone or as the last step of a "
        f"sklearn.pipeline.Pipeline; got {type(estimator).__name__}. Use scikit-learn's "
        "GridSearchCV or RandomizedSearchCV for other estimators")


class _FusedSearchMixin:
    """The fused training in front of a scikit-learn search class."""

    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters (scikit-learn's ``fit``; the models of each
        set of candidates trained together first). Adds ``fused_fit_time_``: the seconds of
        the fused training, of which ``cv_results_["mean_fit_time"]`` gives each candidate
        an equal share per split."""
        _final_step(self.estimator)
        self._fused_data = (X, y, params)
        self._fit_shares = []
        self.fused_fit_time_ = 0.0
        # Threads, not processes: scikit-learn's fits must see the models trained here.
        with _prefit.session(), parallel_config(backend="threading"):
            try:
                super().fit(X, y, **params)
            finally:
                shares = np.asarray(self._fit_shares, dtype=np.float64)
                del self._fused_data, self._fit_shares
        if len(shares) == len(self.cv_results_["mean_fit_time"]):
            self.cv_results_["mean_fit_time"] = self.cv_results_["mean_fit_time"] + shares
        return self

    def _run_search(self, evaluate_candidates, callback_ctx=None):
        def fused(candidate_params, cv=None, more_results=None, **kwargs):
            candidate_params = list(candidate_params)
            self._train_ahead(candidate_params, cv)
            return evaluate_candidates(candidate_params, cv=cv, more_results=more_results,
                                       **kwargs)

        if _RUN_SEARCH_TAKES_CONTEXT:
            return super()._run_search(fused, callback_ctx=callback_ctx)
        return super()._run_search(fused)

    def _train_ahead(self, candidate_params, cv):
        """Trains every candidate on every split with fit_many and leaves the models where
        scikit-learn's fits find them. Candidates that cannot be trained so (parameters
        that fail, another final estimator) are left to scikit-learn's fit, which trains or
        reports them as GridSearchCV does."""
        X, y, params = self._fused_data
        if cv is None:
            cv = getattr(self, "_checked_cv_orig", None)
        if cv is None:
            cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        split_params = {"groups": params["groups"]} if params.get("groups") is not None else {}
        # A copy: a splitter holding a RandomState object must split for scikit-learn's
        # evaluation as it would have without this call.
        splits = list(copy.deepcopy(cv).split(X, y, **split_params))
        # (split, the steps before the model) -> (stack, rows fit_many trains on, fingerprint).
        # Stack None is X itself; a pipeline's transformed training sets are stacked by width.
        blocks = {}
        stacks = {}  # width -> [data, labels, rows so far]
        jobs = []  # (candidate, model, its params key, its data's fingerprint, stack, rows)
        for c, candidate in enumerate(candidate_params):
            for s, (train, _) in enumerate(splits):
                est = clone(self.estimator).set_params(**clone(candidate, safe=False))
                try:
                    model, before = _final_step(est)
                    model._validate_params()
                    model._check_solver()
                    model._optimizer_settings()
                except Exception:  # scikit-learn's fit raises it, under its error_score
                    continue
                block = (s, None if before is None else repr(before.get_params(deep=True)))
                if block not in blocks:
                    blocks[block] = self._block(X, y, train, before, stacks)
                if blocks[block] is None:
                    continue
                stack, rows, fingerprint = blocks[block]
                jobs.append((c, model, _prefit.params_key(model), fingerprint, stack, rows))
        shares = np.zeros(len(candidate_params))
        for stack in {j[4] for j in jobs}:
            mine = [j for j in jobs if j[4] == stack]
            if stack is None:
                X_all, y_all = X, y
            else:
                data, labels, _ = stacks[stack]
                X_all = np.concatenate([np.asarray(d, dtype=np.float32) for d in data])
                y_all = np.concatenate(labels)
            start = time.perf_counter()
            try:
                fit_many([j[1] for j in mine], X_all, y_all, subsets=[j[5] for j in mine])
            except Exception as e:  # scikit-learn's fits train (or fail) one by one
                warnings.warn(f"{type(self).__name__}: training {len(mine)} models together "
                              f"failed ({type(e).__name__}: {e}); scikit-learn's fits train "
                              "them one by one", UserWarning)
                mine = []
            seconds = time.perf_counter() - start
            self.fused_fit_time_ += seconds
            for c, model, key, fingerprint, _, _ in mine:
                _prefit.add(key, model, fingerprint)
                shares[c] += seconds / len(mine) / len(splits)
        self._fit_shares.extend(shares.tolist())

    @staticmethod
    def _block(X, y, train, before, stacks):
        """A split's training set as its model's fit will see it (after a pipeline's earlier
        steps): (stack, rows, fingerprint), or None where the earlier steps fail."""
        X_train = _safe_indexing(X, train)
        y_train = _safe_indexing(y, train)
        try:
            if before is not None:
                X_train = before.fit_transform(X_train, y_train)
            X_train = check_array(X_train, dtype=(np.float64, np.float32))
        except Exception:  # scikit-learn's fit meets it again, under its error_score
            return None
        y_train = np.asarray(y_train)
        fingerprint = _prefit.data_fingerprint(X_train, y_train)
        if before is None:
            # The model trains on its rows of X itself, held once for all splits.
            return None, np.asarray(train), fingerprint
        data, labels, n_rows = stacks.setdefault(X_train.shape[1], [[], [], 0])
        data.append(X_train)
        labels.append(y_train)
        stacks[X_train.shape[1]][2] = n_rows + len(y_train)
        return X_train.shape[1], np.arange(n_rows, n_rows + len(y_train)), fingerprint


class FusedGridSearchCV(_FusedSearchMixin, GridSearchCV):
    """scikit-learn's ``GridSearchCV`` over ``mlptrain.MLPClassifier`` (or a ``Pipeline``
    ending in one), every candidate and every split trained together.

    The parameters and attributes are ``GridSearchCV``'s. ``cv_results_`` equals what
    ``GridSearchCV`` gives for the same estimator and splits (on the CPU exactly; on a GPU to
    float rounding), but for the times: ``mean_fit_time`` adds each model's share of the
    fused training (``fused_fit_time_``). ``n_jobs`` runs scikit-learn's scoring in threads.
    A splitter that shuffles without a fixed random_state splits differently on each call:
    its models are then trained again, one by one, by scikit-learn's fits (correct, not
    faster).
    """


class FusedRandomizedSearchCV(_FusedSearchMixin, RandomizedSearchCV):
    """scikit-learn's ``RandomizedSearchCV`` over ``mlptrain.MLPClassifier`` (or a
    ``Pipeline`` ending in one), every sampled candidate and every split trained together;
    see ``FusedGridSearchCV``."""


__all__ = ["FusedGridSearchCV", "FusedRandomizedSearchCV"]
