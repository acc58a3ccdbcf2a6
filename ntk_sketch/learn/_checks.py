"""Checks and scores shared by the learners: the feature ridge (``ridge.py``), the kernel ridge
(``kernel_ridge.py``), the streaming moments (``ridge_moments.py``) and the MLP (``mlp.py``).

The default lambda grid, the checks of lambdas, split fraction, regression targets and class labels, and the
validation scores.  The objective and the selection rule are described in ``ridge.py``'s module docstring.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from .._base import DataConversionWarning, _sklearn_twin
from .._validation import check_matrix


def default_relative_lambdas():
    """The default grid of ``lam / trace(F^T F)``: 34 values, 3 per decade, from 1e-11 to 1.

    The lower end is set by the largest problems measured: on the full Fashion-MNIST (60,000 rows, D = 16384 and
    32768) the validation accuracy peaked at about 5e-10, well below 1e-8, the previous lower end (+1.1 points of
    test accuracy from the extension at D = 16384): the relative lam that validation picks falls as n grows, since
    ``trace(F^T F)`` grows like n while the lam a fit needs does not.  At 1e-11 the system ``F^T F + lam I`` has
    condition number at most about 1e11, within float64 Cholesky's reach; validation errors that small lams leave
    unresolved are settled by ``_best_index``.
    """
    return np.logspace(-11.0, 0.0, 34)


# ----------------------------------------------------------------------------------------------- input checks
def _check_lambdas(lambdas):
    """Return (array of absolute lambdas or None, whether a single fixed value was given)."""
    if lambdas is None:
        return None, False
    if isinstance(lambdas, numbers.Real) and not isinstance(lambdas, (bool, np.bool_)):
        arr = np.array([float(lambdas)])
        fixed = True
    else:
        try:
            arr = np.asarray(lambdas, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"lambdas must be None, a positive number or a 1-d array of them; got {lambdas!r}.") from exc
        fixed = arr.size == 1
    if arr.size == 0:
        raise ValueError("lambdas is empty; pass None for the default grid or at least one positive value.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"lambdas must all be finite and > 0; got {arr}.")
    return arr, fixed


def _check_fraction(validation_fraction):
    if isinstance(validation_fraction, (bool, np.bool_)) or not isinstance(validation_fraction, numbers.Real):
        raise ValueError(f"validation_fraction must be a number in (0, 1); got {validation_fraction!r}.")
    v = float(validation_fraction)
    if not (0.0 < v < 1.0):
        raise ValueError(f"validation_fraction must be in (0, 1) (e.g. 0.2); got {validation_fraction}.")
    return v


def _check_regression_targets(y, n_rows, name="y"):
    """Float64 2-d targets (n, k); returns (Y, was_1d)."""
    if y is None:
        raise ValueError(f"this regressor requires {name} to be passed, but the target {name} is None.")
    arr = np.asarray(y)
    if arr.dtype.kind == "O":   # e.g. a pandas column with a nullable dtype
        if any(_is_missing(v) for v in arr.ravel().tolist()):
            raise ValueError(f"{name} has missing targets (None, NaN or NA); drop or impute those rows first.")
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be numeric for regression; its values could not be read as numbers."
            ) from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric for regression; got dtype {arr.dtype}.")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-d (n,) or 2-d (n, n_outputs); got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the features have {n_rows}; they must match.")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf targets; drop or impute those rows first.")
    was_1d = arr.ndim == 1
    return (arr[:, None] if was_1d else arr), was_1d


def _is_missing(v):
    if v is None:
        return True
    try:
        return bool(v != v)          # NaN (float or numpy)
    except TypeError:                # pandas.NA: its comparisons are NA, whose truth value is undefined
        return True


def _labels_from_objects(arr, name):
    """An object array of labels (pandas string / categorical columns arrive like this) as a typed array."""
    values = arr.tolist()
    if any(_is_missing(v) for v in values):
        raise ValueError(f"{name} has missing labels (None, NaN or NA); drop those rows or give them a class first.")
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=str)
    if all(isinstance(v, (numbers.Integral, np.bool_)) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
        return np.array(values, dtype=np.float64)
    kinds = sorted({type(v).__name__ for v in values})
    raise ValueError(f"{name} mixes label types ({', '.join(kinds)}); pass labels of one type, e.g. all strings.")


def _check_labels(y, n_rows, name="y"):
    """Class labels as a 1-d array: integers, bools, strings, or floats with integer values.

    Accepted as well: a column vector (n, 1), flattened with a ``DataConversionWarning``, and object arrays (pandas
    string or categorical columns) whose labels are all strings or all numbers.  Rejected with a ValueError:
    missing labels, mixed types, complex numbers, and non-integer floats -- a continuous target, which would
    otherwise become one class per distinct value.
    """
    if y is None:
        raise ValueError(f"this classifier requires {name} to be passed, but the target {name} is None.")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(
            f"A column-vector {name} was passed when a 1d array was expected; it is flattened (use {name}.ravel()).",
            _sklearn_twin(DataConversionWarning, "DataConversionWarning"),
            stacklevel=3,
        )
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class labels; got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the features have {n_rows} rows; they must match.")
    if arr.dtype.kind == "O":
        arr = _labels_from_objects(arr, name)
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} has complex dtype; class labels must be integers or strings.")
    if arr.dtype.kind not in "biufUS":
        raise ValueError(f"{name} has dtype {arr.dtype}; class labels must be integers, bools or strings.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf labels; drop those rows first.")
        frac = arr != np.round(arr)
        if np.any(frac):
            example = arr[np.argmax(frac)]
            raise ValueError(
                f"Unknown label type: continuous. {name} holds non-integer values (e.g. {example!r}), but a classifier "
                "needs class labels; for a real-valued target use a regressor (RidgeRegressor, "
                "KernelRidgeRegressor, MLPRegressor), or bin the values into classes first."
            )
    return arr


def _check_rows(F, name, allow_empty_rows=False):
    # Features keep float32 if given (accumulation is float64 anyway); everything else becomes float64.
    return check_matrix(F, name, dtype=None, allow_empty_rows=allow_empty_rows)


# --------------------------------------------------------------------------------------- selection helpers
# A validation squared error computed at penalty lam' carries a relative rounding error of about eps times the
# condition number of the training part's ridge system, at most 1 + trace / lam' (eigh and Cholesky are backward
# stable).  The factor covers their constants: on a rank-6 linear-kernel Gram at lam' = 1e-11 trace the dual and
# primal solves differed by 20 eps (1 + trace / lam').
_ROUNDING_FACTOR = 100.0


def _rounding_error(trace_part, lambdas_part):
    """Relative rounding error of the validation squared error at each penalty ``lambdas_part`` (upper bound)."""
    condition = 1.0 + max(float(trace_part), 0.0) / np.asarray(lambdas_part)
    return _ROUNDING_FACTOR * np.finfo(np.float64).eps * condition


def _best_index(scores, sq_errors, lambdas, rounding):
    """Index of the best lambda of a grid.

    ``scores`` are validation accuracies, compared exactly, or None when the selection is by squared error alone
    (R^2 and minus the mean squared error are decreasing functions of it).  Among the best-scoring points, each
    squared error is known to within its rounding error (``rounding``, relative, per point: ``_rounding_error``);
    the points whose interval reaches below every other point's interval could be the lowest, and of these the
    largest lambda wins.  Away from ties this is the point of lowest squared error.  On a plateau of the validation
    error towards small lambda, where the ridge system is ill-conditioned and mathematically equal solvers (primal
    / dual, features / kernel, eigendecomposition / Cholesky) differ in the last digits they resolve, it settles
    the choice the same way for all of them: at the well-resolved end, whose intervals are narrow.
    """
    cand = np.arange(len(sq_errors)) if scores is None else np.flatnonzero(scores == np.max(scores))
    err, tol = sq_errors[cand], rounding[cand]
    tied = cand[err * (1.0 - tol) <= np.min(err * (1.0 + tol))]
    return int(tied[np.argmax(lambdas[tied])])


def _r2_pooled(sse, y_sq_sum, y_sum, n):
    """1 - SSE/SST pooled over outputs, from moments: SST = sum_j (sum y_j^2 - (sum y_j)^2 / n)."""
    sst = float(np.sum(y_sq_sum) - np.sum(y_sum**2) / n) if n > 0 else 0.0
    if sst <= 0.0:
        # Constant validation targets: fall back to the negative mean squared error (same ranking as SSE).
        return -sse / max(n, 1)
    return 1.0 - sse / sst



def _r2_score(pred, y):
    """R^2 = 1 - SSE/SST pooled over the outputs (regression ``score`` of the feature and kernel ridges)."""
    Y, _ = _check_regression_targets(y, pred.shape[0])
    sse = float(np.sum((pred - Y) ** 2))
    sst = float(np.sum((Y - Y.mean(axis=0)) ** 2))
    return 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else -np.inf)


def _rmse(pred, y):
    Y, _ = _check_regression_targets(y, pred.shape[0])
    return float(np.sqrt(np.mean((pred - Y) ** 2)))


def _binary_decision(out):
    """Classifier scores in scikit-learn's shape: for two classes ``out[:, 1] - out[:, 0]``, shape (n,), positive
    for the second class (a tie, 0, goes to the first, as the argmax of ``out`` does); otherwise ``out``."""
    return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out
