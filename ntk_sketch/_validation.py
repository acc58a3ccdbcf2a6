"""Input checks shared by every public wrapper.

Every public function of the library validates its arguments here before handing arrays to njit code, so that
bad input fails with a ``ValueError`` (or ``TypeError``) that names the argument and says how to fix it, instead
of a numba typing error or a silent NaN.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_matrix",
    "check_images",
    "check_positive_int",
    "check_nonnegative_float",
    "check_random_state",
    "check_n_features",
    "check_bool",
    "float_dtype",
]


def float_dtype(dtype) -> np.dtype:
    """Working dtype for an input dtype: float32 stays float32, everything else becomes float64."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def _check_numeric_dtype(dtype, name: str) -> None:
    kind = np.dtype(dtype).kind
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} has complex dtype {dtype}; pass real values "
                         f"(e.g. {name}.real).")
    if kind not in "biuf":
        raise ValueError(
            f"{name} has non-numeric dtype {dtype}; pass a float array, e.g. np.asarray({name}, dtype=float)."
        )


def check_matrix(X, name: str = "X", *, dtype=np.float64, accept_sparse: bool = False, allow_empty_rows=False):
    """Validate a 2-d data matrix and return it as a C-contiguous array (or canonical CSR matrix).

    Parameters
    ----------
    X : array_like or scipy.sparse matrix
        Rows are data points.
    name : str
        Argument name used in error messages.
    dtype : dtype or None
        Target floating dtype. ``None`` keeps float32 input as float32 and turns everything else into float64.
    accept_sparse : bool
        Whether a ``scipy.sparse`` matrix is accepted (it is converted to CSR with sorted, summed indices).
    allow_empty_rows : bool
        Whether a matrix with zero rows is accepted (it never is with zero columns).
    """
    if sp.issparse(X):
        if not accept_sparse:
            raise ValueError(f"{name} is a scipy.sparse matrix; this function needs a dense array: pass {name}.toarray().")
        _check_numeric_dtype(X.dtype, name)
        target = float_dtype(X.dtype) if dtype is None else np.dtype(dtype)
        X = sp.csr_matrix(X, dtype=target)
        X.sum_duplicates()
        X.sort_indices()
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-d (n_samples, n_features); got ndim={X.ndim}.")
        _check_shape_2d(X.shape, name, allow_empty_rows)
        if not np.all(np.isfinite(X.data)):
            raise ValueError(f"{name} contains NaN or inf; remove or impute those entries first.")
        return X
    if isinstance(X, np.ndarray):
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype.kind == "O":
        arr = _object_to_float(arr, name)
    _check_numeric_dtype(arr.dtype, name)
    if arr.ndim != 2:
        hint = (f" Reshape your data: {name}.reshape(1, -1) for a single row, {name}.reshape(-1, 1) for a single "
                "feature." if arr.ndim == 1 else "")
        raise ValueError(f"{name} must be 2-d (n_samples, n_features); got shape {arr.shape}.{hint}")
    _check_shape_2d(arr.shape, name, allow_empty_rows)
    target = float_dtype(arr.dtype) if dtype is None else np.dtype(dtype)
    arr = np.ascontiguousarray(arr, dtype=target)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; remove or impute those entries first.")
    return arr


def _object_to_float(arr, name):
    """An object array holding numbers (e.g. from a mixed-type table) as float64; anything else is a TypeError."""
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} has object dtype and could not be read as numbers ({exc}); pass a numeric array."
        ) from exc


def _check_shape_2d(shape, name, allow_empty_rows):
    if shape[1] == 0:
        raise ValueError(f"{name} has no columns: 0 feature(s) (shape={shape}) while a minimum of 1 is required; "
                         "every row needs at least one feature.")
    if shape[0] == 0 and not allow_empty_rows:
        raise ValueError(f"{name} is empty (shape {shape}); pass at least one row.")


def check_images(X, name: str = "X", *, dtype=np.float64):
    """Validate a batch of images shaped (n, H, W, C) and return a C-contiguous float array."""
    if sp.issparse(X):
        raise ValueError(f"{name} is sparse; images must be a dense array shaped (n, H, W, C).")
    arr = np.asarray(X)
    _check_numeric_dtype(arr.dtype, name)
    if arr.ndim != 4:
        hint = ""
        if arr.ndim == 3:
            hint = f" For single-channel images use {name}[..., None]; for one image use {name}[None]."
        raise ValueError(f"{name} must be 4-d (n_images, height, width, channels); got shape {arr.shape}.{hint}")
    if min(arr.shape) == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); every dimension must be at least 1.")
    target = float_dtype(arr.dtype) if dtype is None else np.dtype(dtype)
    arr = np.ascontiguousarray(arr, dtype=target)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; remove or impute those pixels first.")
    return arr


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising a ValueError unless it is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)


def check_nonnegative_float(value, name: str, *, strictly_positive: bool = False) -> float:
    """Return ``value`` as a float, raising a ValueError unless it is finite and >= 0 (> 0 if asked)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}.")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (strictly_positive and v == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value}.")
    return v


def check_random_state(seed) -> np.random.Generator:
    """Turn ``seed`` (None, int, SeedSequence or Generator) into a ``numpy.random.Generator``.

    A Generator is used as is (and advanced by whoever draws from it); anything else seeds a fresh PCG64.
    The legacy ``RandomState`` is rejected because it cannot be mixed with Generator streams reproducibly.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(seed, numbers.Integral) and seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed}.")
        return np.random.default_rng(seed)
    raise ValueError(
        f"seed must be None, a non-negative int, a numpy SeedSequence or a numpy.random.Generator; got {seed!r}."
    )


def check_n_features(X, expected: int, name: str = "X", fitted_on: str = "fit", owner=None) -> None:
    """Raise if ``X`` has a different number of columns from the one seen in ``fit``.

    ``owner`` (an estimator or a name) is named in the message, worded as scikit-learn words it.
    """
    if X.shape[1] != expected:
        who = "this object" if owner is None else (owner if isinstance(owner, str) else type(owner).__name__)
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {who} is expecting {expected} features as input (it was "
            f"fitted on {expected} in {fitted_on}()); pass rows with {expected} columns or refit."
        )


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a bool, raising a ValueError unless it is ``True`` or ``False`` (or a numpy bool).

    Strings such as 'no' or 'false', and numbers, are rejected: ``bool('no')`` is True.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False; got {value!r} of type {type(value).__name__}.")
