"""Fast Walsh-Hadamard transform and the subsampled randomized Hadamard transform (SRHT; docs/math.md §4).

The SRHT maps x in R^d to ``sqrt(N/m) P H E x``: ``E`` a diagonal of random signs, ``H`` the *orthonormal*
Walsh-Hadamard transform of length ``N`` applied to x zero-padded to length N, ``P`` a sampling of m of the N
coordinates without replacement.  Writing ``H = Hu / sqrt(N)`` with the unnormalised +-1 Sylvester matrix ``Hu``
(which is what the in-place butterfly computes), the map is ``(1/sqrt m) P Hu E x``; the kernels use that form.

Padding.  We take ``N = next_pow2(max(d, m))``, i.e. we also pad up to m when d < m, so that m <= N and the rows
can be sampled without replacement.  Then ``E[P^T P] = (m/N) I`` makes the map unbiased (``E <Sx, Sy> = <x, y>``),
and when m = N it is an exact isometry of R^d.  The cost is O(N log N) = O((d + m) log(d + m)) per vector.

Random tables
-------------
``draw_srht(d, m, seed)`` returns :class:`SRHTTables` with ``signs`` (d,) float64 +-1, ``rows`` (m,) int64
(distinct, sorted, in [0, N)), ``scale = 1/sqrt(m)`` and ``n_pad = N``.

njit kernels (for other modules' njit loops)
--------------------------------------------
``_fwht(a)``
    In-place unnormalised Walsh-Hadamard transform of ``a`` (length a power of two): ``a <- Hu a``.  No allocation;
    the butterflies of each stage run over contiguous strides so LLVM vectorises them.
``_srht_dense(signs, rows, scale, x, out, work)``
    ``out[:] = scale * (Hu E pad(x))[rows]`` for one dense vector x (d,); ``work`` is a scratch array of length N
    (its content is destroyed); ``out`` (m,).
``_srht_sparse(signs, rows, scale, x_idx, x_val, out, work)``
    Same for a sparse vector given by indices/values (one CSR row); O(nnz + N log N).
``_srht_from_work(rows, scale, out, work)``
    The last two steps (transform ``work`` in place, then sample): for callers that fill ``work`` themselves.
``_srht_dense_rows(signs, rows, scale, n_pad, X, out, r0, r1)`` / ``_srht_csr_rows(signs, rows, scale, n_pad,
indptr, X_indices, X_data, out, r0, r1)``
    Rows r0..r1-1 serially, one scratch buffer for all of them.
``_srht_dense_batch(signs, rows, scale, n_pad, X, out)`` / ``_srht_csr_batch(...)``
    All rows, blocks in parallel; each row is computed by one thread in a fixed order (thread-count independent
    results).
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse as sp

from .._base import BaseEstimator, TransformerMixin, check_is_fitted
from .._validation import (
    check_matrix,
    check_n_features,
    check_positive_int,
    check_random_state,
    reject_sparse,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
)

__all__ = ["SRHTTables", "draw_srht", "apply_srht", "SRHT", "fwht", "next_pow2"]

# Rows handled per prange task: scratch buffers are allocated once per block, not once per row.  Batches of at
# most one block run serially (the parallel launch costs more than a few rows of work).
_BLOCK = 32


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << (int(n) - 1).bit_length()


class SRHTTables(NamedTuple):
    """Random tables of one SRHT R^d -> R^m (see module docstring)."""

    signs: np.ndarray  # float64 (d,), +-1
    rows: np.ndarray  # int64 (m,), distinct, sorted, in [0, n_pad)
    scale: float  # 1/sqrt(m): orthonormal sqrt(N/m) times 1/sqrt(N) of the unnormalised transform
    n_pad: int  # N = next_pow2(max(d, m))


def draw_srht(d, m, seed=None) -> SRHTTables:
    """Draw the signs and sampled rows of an SRHT R^d -> R^m (module docstring for the conventions).

    Parameters
    ----------
    d, m : int
        Input and output dimensions.
    seed : None, int, SeedSequence or numpy.random.Generator
    """
    d = check_positive_int(d, "d")
    m = check_positive_int(m, "m")
    rng = check_random_state(seed)
    n_pad = next_pow2(max(d, m))
    signs = 2.0 * rng.integers(0, 2, size=d) - 1.0
    rows = np.sort(rng.choice(n_pad, size=m, replace=False)).astype(np.int64)
    return SRHTTables(signs, rows, 1.0 / np.sqrt(m), n_pad)


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True)
def _fwht(a):
    n = a.shape[0]
    # First two stages fused (radix 4): strides 1 and 2 are too short to vectorise on their own.
    h = 1
    if n >= 4:
        for i in range(0, n, 4):
            a0 = a[i]
            a1 = a[i + 1]
            a2 = a[i + 2]
            a3 = a[i + 3]
            s01 = a0 + a1
            d01 = a0 - a1
            s23 = a2 + a3
            d23 = a2 - a3
            a[i] = s01 + s23
            a[i + 1] = d01 + d23
            a[i + 2] = s01 - s23
            a[i + 3] = d01 - d23
        h = 4
    while h < n:
        # Two stages per pass where possible (radix 4 halves the passes over memory).  The butterflies are
        # written on separate views of the four quarter-blocks: LLVM then checks their overlap once and
        # vectorises the k loop (measured 2.2x faster than indexing a[j + h] directly at N = 4096).
        if 4 * h <= n:
            for i in range(0, n, 4 * h):
                b0 = a[i:i + h]
                b1 = a[i + h:i + 2 * h]
                b2 = a[i + 2 * h:i + 3 * h]
                b3 = a[i + 3 * h:i + 4 * h]
                for k in range(h):
                    a0 = b0[k]
                    a1 = b1[k]
                    a2 = b2[k]
                    a3 = b3[k]
                    s01 = a0 + a1
                    d01 = a0 - a1
                    s23 = a2 + a3
                    d23 = a2 - a3
                    b0[k] = s01 + s23
                    b1[k] = d01 + d23
                    b2[k] = s01 - s23
                    b3[k] = d01 - d23
            h *= 4
        else:
            for i in range(0, n, 2 * h):
                lo = a[i:i + h]
                hi = a[i + h:i + 2 * h]
                for k in range(h):
                    u = lo[k]
                    v = hi[k]
                    lo[k] = u + v
                    hi[k] = u - v
            h *= 2


@numba.njit(cache=True)
def _srht_from_work(rows, scale, out, work):
    _fwht(work)
    for k in range(rows.shape[0]):
        out[k] = scale * work[rows[k]]


@numba.njit(cache=True)
def _srht_dense(signs, rows, scale, x, out, work):
    d = x.shape[0]
    for i in range(d):
        work[i] = signs[i] * x[i]
    work[d:] = 0.0
    _srht_from_work(rows, scale, out, work)


@numba.njit(cache=True)
def _srht_sparse(signs, rows, scale, x_idx, x_val, out, work):
    work[:] = 0.0
    for a in range(x_idx.shape[0]):
        i = x_idx[a]
        work[i] = signs[i] * x_val[a]
    _srht_from_work(rows, scale, out, work)


@numba.njit(cache=True)
def _srht_dense_rows(signs, rows, scale, n_pad, X, out, r0, r1):
    work = np.empty(n_pad, dtype=out.dtype)
    for r in range(r0, r1):
        _srht_dense(signs, rows, scale, X[r], out[r], work)


@numba.njit(cache=True)
def _srht_csr_rows(signs, rows, scale, n_pad, indptr, X_indices, X_data, out, r0, r1):
    work = np.empty(n_pad, dtype=out.dtype)
    for r in range(r0, r1):
        _srht_sparse(signs, rows, scale, X_indices[indptr[r]:indptr[r + 1]], X_data[indptr[r]:indptr[r + 1]],
                     out[r], work)


@serialised
@numba.njit(cache=True, parallel=True)
def _srht_dense_batch(signs, rows, scale, n_pad, X, out):
    n = X.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _srht_dense_rows(signs, rows, scale, n_pad, X, out, b * _BLOCK, min(n, (b + 1) * _BLOCK))


@serialised
@numba.njit(cache=True, parallel=True)
def _srht_csr_batch(signs, rows, scale, n_pad, indptr, X_indices, X_data, out):
    n = out.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _srht_csr_rows(signs, rows, scale, n_pad, indptr, X_indices, X_data, out, b * _BLOCK,
                       min(n, (b + 1) * _BLOCK))


@serialised
@numba.njit(cache=True, parallel=True)
def _fwht_batch(A):
    for r in numba.prange(A.shape[0]):
        _fwht(A[r])


# ------------------------------------------------------------------------------------------------ wrappers
def fwht(A, *, normalize=False):
    """Walsh-Hadamard transform of the rows of ``A`` (last axis a power of two), returning a new array.

    Parameters
    ----------
    A : array_like, shape (n,) or (n, N)
    normalize : bool, default False
        False: the +-1 Sylvester matrix (``scipy.linalg.hadamard(N) @ a``); True: divided by sqrt(N)
        (orthonormal, an involution).
    """
    reject_sparse(A, "A")
    A = np.asarray(A)
    one = A.ndim == 1
    B = check_matrix(A.reshape(1, -1) if one else A, "A", dtype=None, allow_empty_rows=True)
    N = B.shape[1]
    if N & (N - 1):
        raise ValueError(f"A's last dimension must be a power of two; got {N}. Zero-pad it to {next_pow2(N)}.")
    e = row_scale_exponents(B)  # linear: rows beyond ~2^+-256 are rescaled and the output scaled back exactly
    B = scale_rows(B, e)
    B = B.copy() if B is A or np.shares_memory(B, A) else B
    _fwht_batch(B)
    if normalize:
        B *= 1.0 / np.sqrt(N)
    unscale_rows(B, e, "A")
    return B[0] if one else B


def apply_srht(X, tables: SRHTTables, *, name="X"):
    """Apply an SRHT to the rows of ``X`` (dense (n, d) or scipy.sparse) -> (n, m); float32 stays float32."""
    X = check_matrix(X, name, dtype=None, accept_sparse=True, allow_empty_rows=True)
    check_n_features(X, tables.signs.shape[0], name, "draw_srht")
    e = row_scale_exponents(X)  # linear map: rows beyond ~2^+-256 are rescaled and the output scaled back exactly
    X = scale_rows(X, e)
    out = np.empty((X.shape[0], tables.rows.shape[0]), dtype=X.dtype)
    t = tables
    n = X.shape[0]
    if sp.issparse(X):
        if n <= _BLOCK:  # one block: skip the parallel launch
            _srht_csr_rows(t.signs, t.rows, t.scale, t.n_pad, X.indptr, X.indices, X.data, out, 0, n)
        else:
            _srht_csr_batch(t.signs, t.rows, t.scale, t.n_pad, X.indptr, X.indices, X.data, out)
    elif n <= _BLOCK:
        _srht_dense_rows(t.signs, t.rows, t.scale, t.n_pad, X, out, 0, n)
    else:
        _srht_dense_batch(t.signs, t.rows, t.scale, t.n_pad, X, out)
    return unscale_rows(out, e, name)


class SRHT(TransformerMixin, BaseEstimator):
    """Subsampled randomized Hadamard transform R^d -> R^m (docs/math.md §4), ``E <Sx, Sy> = <x, y>``.

    The random signs and sampled rows are drawn once, in ``fit``; ``transform`` applies the same map to
    every batch: ``SRHT(d, m, seed=0).fit().transform(X)``.  With ``m = N`` (a power of two >= d) it is an exact
    isometry.

    Parameters
    ----------
    d, m : int
        Input and output dimensions.
    seed : None, int, SeedSequence or numpy.random.Generator

    Attributes
    ----------
    n_features_in_ : int
        ``d``.
    tables_ : SRHTTables
    """

    _accept_sparse = True
    _preserves_float32 = True

    def __init__(self, d, m, *, seed=None):
        self.d = d
        self.m = m
        self.seed = seed

    def fit(self, X=None, y=None):
        """Draw the random tables from ``seed``; returns ``self``.

        ``X`` is optional (the input dimension is the parameter ``d``); when given, only its number of columns is
        checked against ``d``.  ``y`` is ignored.
        """
        tables = draw_srht(self.d, self.m, self.seed)
        if X is not None:
            check_n_features(check_matrix(X, "X", dtype=None, accept_sparse=True), self.d, owner=self)
        self.tables_ = tables
        self.n_features_in_ = int(self.d)
        return self

    def transform(self, X):
        """Sketch the rows of ``X`` (dense (n, d) or scipy.sparse matrix) -> (n, m)."""
        check_is_fitted(self, "tables_")
        return apply_srht(X, self.tables_)

    __call__ = transform

    def to_dense(self):
        """The (m, d) matrix as a dense float64 array (for tests and small examples)."""
        check_is_fitted(self, "tables_")
        t = self.tables_
        H = fwht(np.eye(t.n_pad))  # symmetric, so rows of H are its columns
        return t.scale * H[t.rows][:, : t.signs.shape[0]] * t.signs[None, :]
