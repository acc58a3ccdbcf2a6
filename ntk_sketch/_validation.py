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
    "reject_sparse",
    "row_scale_exponents",
    "scale_rows",
    "unscale_rows",
    "unscale_kernel",
    "warn_if_channels_first",
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
            reject_sparse(X, name)
        _check_numeric_dtype(X.dtype, name)
        target = float_dtype(X.dtype) if dtype is None else np.dtype(dtype)
        X = _canonical_csr(X, target)
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
    arr = _writeable_contiguous(arr, target)
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


def _writeable_contiguous(arr, target):
    """C-contiguous, writeable, native-byte-order array of dtype ``target``: ``arr`` itself when it already is one.

    A read-only input (a memory map opened 'r', a broadcast view, ``arr.flags.writeable = False``) is copied: the
    library never writes to its input, but numba compiles a separate specialisation for read-only arrays, and a
    copy keeps every call on the same few compiled signatures.
    """
    out = np.ascontiguousarray(arr, dtype=target)
    if not out.flags.writeable:
        out = out.copy()
    return out


def _canonical_csr(X, target):
    """A CSR matrix of dtype ``target`` with sorted, summed indices, never the caller's object modified.

    ``scipy.sparse.csr_matrix(X)`` shares its arrays with ``X`` when no conversion is needed, and
    ``sum_duplicates`` / ``sort_indices`` work in place; so a matrix that is not in canonical form is copied first
    (a caller's CSR matrix with unsorted or duplicate indices stays as it was), and so is one whose arrays are
    read-only.
    """
    C = sp.csr_matrix(X, dtype=target)
    read_only = not (C.data.flags.writeable and C.indices.flags.writeable and C.indptr.flags.writeable)
    canonical = C.has_canonical_format
    if read_only or not canonical:
        C = C.copy()
    if not canonical:
        C.sum_duplicates()  # sorts the indices as well
        C.sort_indices()
    return C


def reject_sparse(X, name):
    """Raise the standard message for a scipy.sparse matrix given to a function that needs a dense array."""
    if sp.issparse(X):
        raise ValueError(f"{name} is a scipy.sparse matrix ({X.format}, shape {X.shape}); this function needs a "
                         f"dense array: pass {name}.toarray().")


def _check_shape_2d(shape, name, allow_empty_rows):
    if shape[1] == 0:
        raise ValueError(f"{name} has no columns: 0 feature(s) (shape={shape}) while a minimum of 1 is required; "
                         "every row needs at least one feature.")
    if shape[0] == 0 and not allow_empty_rows:
        raise ValueError(f"{name} is empty (shape {shape}); pass at least one row.")


def check_images(X, name: str = "X", *, dtype=np.float64, allow_empty=False):
    """Validate a batch of images shaped (n, H, W, C) and return a C-contiguous, writeable float array.

    ``allow_empty``: accept n = 0 (never an empty H, W or C).
    """
    if sp.issparse(X):
        raise ValueError(f"{name} is a scipy.sparse matrix; images must be a dense array shaped (n, H, W, C).")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype.kind == "O":  # as in check_matrix: an object array holding numbers is read as float64
        arr = _object_to_float(arr, name)
    _check_numeric_dtype(arr.dtype, name)
    if arr.ndim != 4:
        hint = ""
        if arr.ndim == 3:
            hint = f" For single-channel images use {name}[..., None]; for one image use {name}[None]."
        raise ValueError(f"{name} must be 4-d (n_images, height, width, channels); got shape {arr.shape}.{hint}")
    if min(arr.shape[1:]) == 0 or (arr.shape[0] == 0 and not allow_empty):
        raise ValueError(f"{name} is empty (shape {arr.shape}); every dimension must be at least 1.")
    target = float_dtype(arr.dtype) if dtype is None else np.dtype(dtype)
    arr = _writeable_contiguous(arr, target)
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


# ------------------------------------------------------------------------------------------------ scale invariance
# Every kernel and feature map of the library is positively homogeneous in each input row: NTK(s x, t y) =
# s t NTK(x, y) and F(s x) = s F(x) for s, t > 0 (degree l for the degree-l PolySketch output).  Squared norms and
# inner products overflow for entries above ~1e154 and underflow below ~1e-154 although the result itself is in
# range, so the entry points divide a row whose largest entry lies outside [2^-_SAFE_EXP, 2^_SAFE_EXP) by a
# power of two that brings that entry into [1/2, 1), and multiply the output back (np.ldexp: exact).  Rows within
# the window are used as they are.  Floating-point arithmetic commutes exactly with scaling by a power of two as
# long as nothing overflows or becomes subnormal, so K(2^k X) = 4^k K(X) holds bit for bit whichever side of the
# window the rows fall on.  2^256 leaves room for sums of 2^500 squared entries; 2^-256 keeps squares normal.
_SAFE_EXP = np.finfo(np.float64).maxexp // 4  # 256


def _row_abs_max(X):
    if sp.issparse(X):
        n = X.shape[0]
        out = np.zeros(n)
        if X.nnz:
            counts = np.diff(X.indptr)
            nz = counts > 0
            starts = X.indptr[:-1][nz]
            out[nz] = np.maximum.reduceat(np.abs(X.data), starts)
        return out
    if X.shape[0] == 0 or X.size == 0:
        return np.zeros(X.shape[0])
    flat = X.reshape(X.shape[0], -1)
    return np.maximum(flat.max(axis=1), -flat.min(axis=1)).astype(np.float64)


def row_scale_exponents(X, working_dtype=None):
    """Per-row exponents ``e`` (int64) such that ``X_i 2^-e_i`` is safe to square and sum (0 for rows already safe).

    ``X`` is a validated dense array of any ndim >= 2 (rows along axis 0, e.g. images) or a CSR matrix.  A row
    whose largest absolute entry ``a = f 2^e`` (``f`` in [1/2, 1)) has ``e`` outside (-_SAFE_EXP, _SAFE_EXP] gets
    exponent ``e`` (so the rescaled row's largest entry lies in [1/2, 1)); zero rows and rows inside get 0.
    ``working_dtype``: the dtype the rows will be computed in, if not X's own (float32 has a narrower window).
    """
    amax = _row_abs_max(X)
    _, e = np.frexp(amax)
    e = e.astype(np.int64)
    # float32 arithmetic (the feature maps keep float32 input in float32) gets the window 2^+-32
    working = np.dtype(X.dtype if working_dtype is None else working_dtype)
    safe = _SAFE_EXP if working != np.float32 else np.finfo(np.float32).maxexp // 4
    unsafe = (amax > 0) & ((e > safe) | (e <= -safe))
    return np.where(unsafe, e, 0)


def scale_rows(X, e):
    """``X_i 2^-e_i`` for every row (exact); returns ``X`` itself when every ``e_i`` is 0, else a new array/matrix."""
    rows = np.flatnonzero(e)
    if rows.size == 0:
        return X
    if sp.issparse(X):
        X = X.copy()
        X.data = np.ldexp(X.data, -np.repeat(e, np.diff(X.indptr))).astype(X.dtype, copy=False)
        return X
    X = X.copy()
    shape = (-1,) + (1,) * (X.ndim - 1)
    X[rows] = np.ldexp(X[rows], -e[rows].reshape(shape)).astype(X.dtype, copy=False)
    return X


def _overflow_error(name, degree, dtype, kernel=False):
    power = "" if degree == 1 else f"^{degree}"
    law = (f"K(c x, c y) = c{power} K(x, y)" if kernel else f"F(c x) = c{power} F(x)")
    return ValueError(
        f"the result exceeds the {np.dtype(dtype).name} range because the rows of {name} are too large; the map is homogeneous "
        f"({law}), so divide {name} by a constant c and multiply the result by c{power}."
    )


def unscale_rows(out, e, name, degree=1):
    """In place: ``out_i *= 2^(degree e_i)`` (exact), for a map homogeneous of ``degree`` in each row of ``name``.

    Raises a ValueError naming ``name`` when a result overflows float64 (results that underflow become subnormal
    or 0, as any float computation's would).  ``out`` has rows along axis 0 and any number of further axes.
    """
    rows = np.flatnonzero(e)
    if rows.size == 0:
        return out
    shape = (-1,) + (1,) * (out.ndim - 1)
    with np.errstate(over="ignore"):
        vals = np.ldexp(out[rows], (degree * e[rows]).reshape(shape))
    if not np.all(np.isfinite(vals)):
        raise _overflow_error(name, degree, out.dtype)
    out[rows] = vals
    return out


def unscale_kernel(K, e1, e2, name="X1"):
    """In place: ``K_ij *= 2^(e1_i + e2_j)`` (exact) for a kernel homogeneous of degree 1 in each argument.

    Only rows and columns with a non-zero exponent are touched (no cost in the usual case); a value that
    overflows raises a ValueError naming ``name``.
    """
    r1 = np.flatnonzero(e1)
    c2 = np.flatnonzero(e2)
    if r1.size == 0 and c2.size == 0:
        return K
    with np.errstate(over="ignore"):
        if r1.size:  # rows with a scaled x: one ldexp with the combined exponent (one rounding at most)
            K[r1] = np.ldexp(K[r1], e1[r1, None] + e2[None, :])
        if c2.size:
            keep = np.ones(K.shape[0], dtype=bool)
            keep[r1] = False
            rows = np.flatnonzero(keep)
            K[np.ix_(rows, c2)] = np.ldexp(K[np.ix_(rows, c2)], e2[None, c2])
    if not np.all(np.isfinite(K)):
        raise _overflow_error(name, 2, K.dtype, kernel=True)
    return K


def warn_if_channels_first(shape, name, padding):
    """Warn when images given as (n, H, W, C) look like channels-first (n, C, H, W) with padding='same'.

    With 'valid' padding such a batch usually fails the receptive-field check; with 'same' it would silently be
    read as images of 1 or 3 pixel rows with many channels.  The test: H in {1, 3} while W and C both exceed 4.
    """
    import warnings

    if padding == "same" and len(shape) == 4 and shape[1] in (1, 3) and shape[2] > 4 and shape[3] > 4:
        warnings.warn(
            f"{name} has shape {tuple(shape)}, read as (n, H, W, C) = {shape[1]} x {shape[2]} pixel images with "
            f"{shape[3]} channels; if the channel axis comes first (n, C, H, W), pass {name}.transpose(0, 2, 3, 1).",
            UserWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------------ parallel regions
# numba's 'workqueue' threading layer (the one ntk_sketch/__init__.py selects when TBB is not installed) aborts
# the process when two threads launch parallel regions at the same time, and numba releases the GIL inside a
# parallel region, so concurrent Python threads calling the library would do exactly that.  Every parallel=True
# njit function is therefore wrapped by ``serialised``: its calls take one process-wide lock.  A parallel region
# already uses every numba thread, so running them one at a time costs no throughput.  The lock is replaced in a
# forked child, where a lock held by another thread of the parent at the fork would otherwise never be released.
import functools as _functools
import os as _os
import threading as _threading

_parallel_lock = _threading.RLock()


def _new_parallel_lock():
    global _parallel_lock
    _parallel_lock = _threading.RLock()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_new_parallel_lock)


def serialised(dispatcher):
    """Decorator for a ``parallel=True`` njit function: calls from concurrent threads run one at a time.

    The wrapper is a plain Python function (call it from Python only, as the library does); the numba
    dispatcher stays reachable as ``.dispatcher`` (e.g. for ``.signatures`` or ``.py_func``).
    """

    @_functools.wraps(dispatcher.py_func)
    def call(*args):
        with _parallel_lock:
            return dispatcher(*args)

    call.dispatcher = dispatcher
    call.py_func = dispatcher.py_func
    return call
