"""scikit-learn's own estimator checks over mlptrain.MLPClassifier."""
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

import mlptrain

# Checks that cannot pass, each with the reason; none so far. (A check listed here still runs
# and is reported as an expected failure.)
EXPECTED_FAILED_CHECKS = {}


def _estimators():
    return [mlptrain.MLPClassifier(device="cpu", random_state=0)]


try:
    _decorator = parametrize_with_checks(
        _estimators(), expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
except TypeError:  # scikit-learn < 1.6 has no expected_failed_checks
    _decorator = parametrize_with_checks(_estimators())


@_decorator
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
