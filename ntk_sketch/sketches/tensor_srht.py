"""TensorSRHT: a degree-2 sketch of x (x) y computed without forming the tensor product (docs/math.md §4).

For x in R^d1, y in R^d2 (zero-padded to powers of two N1, N2) and m sampled index pairs (i_k, j_k):

    S(x (x) y)_k = (1/sqrt m) (Hu D1 x)_{i_k} (Hu D2 y)_{j_k}                       (unnormalised +-1 Hu)
                 = (sqrt(N1 N2) / sqrt m) (H D1 x)_{i_k} (H D2 y)_{j_k}          (orthonormal H = Hu / sqrt N)

which is the SRHT of x (x) y with the Kronecker structure ``H_N1 (x) H_N2 = (H_N1 x) (x) (H_N2 y)`` and random
signs ``D1 (x) D2`` (Ahle et al. 2020, Section 4; docs/math.md §4 writes the first form, with Hu).  **Convention:
the kernels use the unnormalised transform and ``scale = 1/sqrt(m)``.**

Unbiasedness: for every pair (i, j) and every sign draw, ``sum_{i,j} (Hu D1 x)_i (Hu D1 x')_i (Hu D2 y)_j
(Hu D2 y')_j = N1 N2 <x, x'> <y, y'>`` (``Hu^T Hu = N I``), so a uniformly sampled pair gives
``E <S(x (x) y), S(x' (x) y')> = <x, x'> <y, y'>`` exactly.  The pairs are sampled without replacement from the
N1 x N2 grid; if m > N1 N2 we pad N1 further (zero rows change nothing) so that this is always possible.
The variance is at most ``9 |x|^2 |x'|^2 |y|^2 |y'|^2 / m`` (fourth moment of Rademacher sums is at most 3 times
the squared second moment, for each of the two factors).

Random tables
-------------
``draw_tensor_srht(d1, d2, m, seed)`` returns :class:`TensorSRHTTables`: ``signs1`` (d1,), ``signs2`` (d2,)
float64 +-1, ``rows1``, ``rows2`` (m,) int64, ``scale = 1/sqrt(m)``, ``n_pad1``, ``n_pad2``.

njit kernels (for other modules' njit loops)
--------------------------------------------
``_tensor_srht(signs1, signs2, rows1, rows2, scale, x, y, out, work1, work2)``
    One pair of vectors: ``out`` (m,) is overwritten with S(x (x) y); ``work1`` (n_pad1,), ``work2`` (n_pad2,)
    are scratch.  O(N1 log N1 + N2 log N2 + m).
``_tensor_srht_combine(rows1, rows2, scale, work1, work2, out)``
    Only the final step ``out[k] = scale work1[rows1[k]] work2[rows2[k]]``, for callers that hold the two
    transforms already (PolySketch reuses transforms shared between degrees).
``_signed_fwht(signs, x, work)``
    ``work <- Hu D pad(x)``: the per-factor transform.
``_tensor_srht_rows(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, X, Y, out, r0, r1)``
    Rows r0..r1-1 serially.
``_tensor_srht_batch(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, X, Y, out)``
    All rows, blocks in parallel; thread-count independent.
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from .._base import BaseEstimator, check_is_fitted
from .._validation import (
    check_matrix,
    check_n_features,
    check_positive_int,
    check_random_state,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
)
from .srht import _fwht, next_pow2

__all__ = ["TensorSRHTTables", "draw_tensor_srht", "tensor_srht", "TensorSRHT"]

_BLOCK = 32


class TensorSRHTTables(NamedTuple):
    """Random tables of one TensorSRHT R^d1 (x) R^d2 -> R^m (module docstring)."""

    signs1: np.ndarray  # float64 (d1,), +-1
    signs2: np.ndarray  # float64 (d2,), +-1
    rows1: np.ndarray  # int64 (m,), in [0, n_pad1)
    rows2: np.ndarray  # int64 (m,), in [0, n_pad2)
    scale: float  # 1/sqrt(m) (with the unnormalised Hadamard transform)
    n_pad1: int
    n_pad2: int


def draw_tensor_srht(d1, d2, m, seed=None) -> TensorSRHTTables:
    """Draw the signs and the m sampled index pairs of a TensorSRHT of R^d1 (x) R^d2 into R^m.

    Parameters
    ----------
    d1, d2 : int
        Lengths of the two factors (they may differ).
    m : int
        Sketch dimension.
    seed : None, int, SeedSequence or numpy.random.Generator
    """
    d1 = check_positive_int(d1, "d1")
    d2 = check_positive_int(d2, "d2")
    m = check_positive_int(m, "m")
    rng = check_random_state(seed)
    n1 = next_pow2(d1)
    n2 = next_pow2(d2)
    while n1 * n2 < m:  # more pairs wanted than the grid has: pad further (zero coordinates are harmless)
        n1 *= 2
    signs1 = 2.0 * rng.integers(0, 2, size=d1) - 1.0
    signs2 = 2.0 * rng.integers(0, 2, size=d2) - 1.0
    # The order of the m output coordinates is immaterial (any fixed order gives the same distribution); sorting
    # the pairs makes the gather from the first transform monotone, which measured ~20% faster at m = 4096.
    flat = np.sort(rng.choice(n1 * n2, size=m, replace=False)).astype(np.int64)
    return TensorSRHTTables(signs1, signs2, flat // n2, flat % n2, 1.0 / np.sqrt(m), n1, n2)


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True)
def _signed_fwht(signs, x, work):
    d = x.shape[0]
    for i in range(d):
        work[i] = signs[i] * x[i]
    work[d:] = 0.0
    _fwht(work)


@numba.njit(cache=True)
def _tensor_srht_combine(rows1, rows2, scale, work1, work2, out):
    for k in range(rows1.shape[0]):
        out[k] = scale * work1[rows1[k]] * work2[rows2[k]]


@numba.njit(cache=True)
def _tensor_srht(signs1, signs2, rows1, rows2, scale, x, y, out, work1, work2):
    _signed_fwht(signs1, x, work1)
    _signed_fwht(signs2, y, work2)
    _tensor_srht_combine(rows1, rows2, scale, work1, work2, out)


@numba.njit(cache=True)
def _tensor_srht_rows(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, X, Y, out, r0, r1):
    work1 = np.empty(n_pad1, dtype=out.dtype)
    work2 = np.empty(n_pad2, dtype=out.dtype)
    for r in range(r0, r1):
        _tensor_srht(signs1, signs2, rows1, rows2, scale, X[r], Y[r], out[r], work1, work2)


@serialised
@numba.njit(cache=True, parallel=True)
def _tensor_srht_batch(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, X, Y, out):
    n = X.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _tensor_srht_rows(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, X, Y, out, b * _BLOCK,
                          min(n, (b + 1) * _BLOCK))


# ------------------------------------------------------------------------------------------------ wrappers
def tensor_srht(X, Y, tables: TensorSRHTTables):
    """Row-wise TensorSRHT: ``out[r] = S(X[r] (x) Y[r])``, shape (n, m).

    Parameters
    ----------
    X : array_like, shape (n, d1)
    Y : array_like, shape (n, d2)
    tables : TensorSRHTTables
        From :func:`draw_tensor_srht`.

    Returns
    -------
    ndarray, shape (n, m); float32 if both inputs are float32, else float64.
    """
    X = check_matrix(X, "X", dtype=None, allow_empty_rows=True)
    Y = check_matrix(Y, "Y", dtype=None, allow_empty_rows=True)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must have the same number of rows; got {X.shape[0]} and {Y.shape[0]}.")
    check_n_features(X, tables.signs1.shape[0], "X", "draw_tensor_srht")
    check_n_features(Y, tables.signs2.shape[0], "Y", "draw_tensor_srht")
    dtype = np.result_type(X.dtype, Y.dtype)
    X = X.astype(dtype, copy=False)
    Y = Y.astype(dtype, copy=False)
    # bilinear: rows beyond ~2^+-256 are rescaled and the output scaled back exactly by 2^(ex + ey)
    ex = row_scale_exponents(X)
    ey = row_scale_exponents(Y)
    X = scale_rows(X, ex)
    Y = scale_rows(Y, ey)
    out = np.empty((X.shape[0], tables.rows1.shape[0]), dtype=dtype)
    t = tables
    args = (t.signs1, t.signs2, t.rows1, t.rows2, t.scale, t.n_pad1, t.n_pad2, X, Y, out)
    if X.shape[0] <= _BLOCK:  # one block: skip the parallel launch
        _tensor_srht_rows(*args, 0, X.shape[0])
    else:
        _tensor_srht_batch(*args)
    return unscale_rows(out, ex + ey, "X and Y")


class TensorSRHT(BaseEstimator):
    """TensorSRHT R^d1 (x) R^d2 -> R^m (docs/math.md §4): ``E <S(x(x)y), S(x'(x)y')> = <x,x'><y,y'>``.

    Parameters
    ----------
    d1, d2 : int
        Lengths of the two factors.
    m : int
        Sketch dimension.
    seed : None, int, SeedSequence or numpy.random.Generator

    The tables are drawn in ``fit`` from ``seed``: ``TensorSRHT(d1, d2, m, seed=0).fit().transform(X, Y)``.

    Attributes
    ----------
    n_features_in_ : int
        ``d1 * d2``, the dimension of the tensor products ``x (x) y`` the map sketches.
    tables_ : TensorSRHTTables
    """

    def __init__(self, d1, d2, m, *, seed=None):
        self.d1 = d1
        self.d2 = d2
        self.m = m
        self.seed = seed

    def fit(self, X=None, Y=None):
        """Draw the random tables from ``seed``; returns ``self``.

        ``X`` and ``Y`` are optional (the factor lengths are the parameters ``d1``, ``d2``); when given, only their
        numbers of columns are checked.
        """
        tables = draw_tensor_srht(self.d1, self.d2, self.m, self.seed)
        for A, d, name in ((X, self.d1, "X"), (Y, self.d2, "Y")):
            if A is not None:
                check_n_features(check_matrix(A, name, dtype=None), d, name, owner=self)
        self.tables_ = tables
        self.n_features_in_ = int(self.d1) * int(self.d2)
        return self

    def transform(self, X, Y):
        """Sketch ``X[r] (x) Y[r]`` for every row r -> (n, m)."""
        check_is_fitted(self, "tables_")
        return tensor_srht(X, Y, self.tables_)

    __call__ = transform
