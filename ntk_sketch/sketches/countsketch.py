"""CountSketch and OSNAP: sparse sign sketches applied in input-sparsity time (docs/math.md §4).

An OSNAP matrix ``S`` of shape (m, d) with ``s`` non-zeros per column hashes every input coordinate ``i`` to ``s``
distinct rows ``h(i, 0..s-1)`` with independent random signs ``sigma(i, k)``, each entry ``sigma / sqrt(s)``;
``s = 1`` is CountSketch (Charikar, Chen, Farach-Colton 2002).  We use the *block* construction of Kane & Nelson
(2014): the m rows are cut into ``s`` contiguous blocks of (almost) equal size and ``h(i, k)`` is uniform in block
``k``, so the ``s`` rows of a column are distinct by construction.  For every pair of coordinates the hashes and
signs are independent, hence ``E[S^T S] = I`` and ``E <S x, S y> = <x, y>`` (the sign of coordinate i cancels
against the sign of any other coordinate j != i, and the s entries of one column land in distinct rows).

Applying ``S`` to ``x`` touches each non-zero of ``x`` ``s`` times: O(s nnz(x)), which is what makes PolySketch
input-sparsity time when the leaves see a ``scipy.sparse`` CSR matrix (Ahle et al. 2020, Section 1.2).

Random tables
-------------
``draw_countsketch(d, m, s, seed)`` returns :class:`CountSketchTables` with

* ``indices`` : int64 array (d, s), ``indices[i, k]`` = row of the k-th non-zero of column i;
* ``signs``   : float64 array (d, s), ``+-1/sqrt(s)`` (the OSNAP scaling is folded in).

njit kernels (for other modules' njit loops)
--------------------------------------------
``_countsketch_dense(indices, signs, x, out)``
    ``out[:] = S @ x`` for one dense vector ``x`` (d,); ``out`` (m,) is overwritten.
``_countsketch_sparse(indices, signs, x_idx, x_val, out)``
    Same for one sparse vector given by its column indices ``x_idx`` (int32/int64) and values ``x_val``
    (e.g. one CSR row ``X.indices[a:b], X.data[a:b]``); cost O(s nnz).
``_countsketch1_add_block(index, signs, start, x, out)``
    CountSketch (s = 1) given by the columns ``index = indices[:, 0]``, ``signs = signs[:, 0]`` as 1-d arrays:
    ``out += S[:, start:start + len(x)] @ x``, the contribution of one block x of a longer vector.  A sketch of a
    concatenation ``(x_0, x_1, ...)`` is the sum of its blocks' contributions, so callers (CNTKSketch's patch
    concatenations) sketch it without forming it.  (1-d tables: measured about 20% faster than indexing (d, 1) ones.)
``_countsketch_dense_rows(indices, signs, X, out, r0, r1)`` / ``_countsketch_csr_rows(indices, signs, indptr,
X_indices, X_data, out, r0, r1)``
    Rows r0..r1-1 of a batch, serially; ``out`` (n, m).
``_countsketch_dense_batch(indices, signs, X, out)`` / ``_countsketch_csr_batch(indices, signs, indptr,
X_indices, X_data, out)``
    All rows, blocks of rows in parallel (``prange``); ``out`` (n, m) is overwritten.  Each row is computed by
    one thread in a fixed order, so the result does not depend on the thread count.

The kernels accept any ``out`` length ``M >= max(indices) + 1``; PolySketch exploits this by stacking the
tables of its p independent leaves into one (d, p s) table whose indices point into a flattened (p, m) buffer.
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
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
)

__all__ = ["CountSketchTables", "draw_countsketch", "apply_countsketch", "CountSketch"]

# Rows per prange task.  Batches of at most one block run serially: for a few rows the parallel launch costs
# more than the work (and on a loaded machine, much more).
_BLOCK = 32


class CountSketchTables(NamedTuple):
    """Random tables of one OSNAP / CountSketch matrix of shape (m, d) (see module docstring)."""

    indices: np.ndarray  # int64 (d, s)
    signs: np.ndarray  # float64 (d, s), +-1/sqrt(s)
    m: int


def draw_countsketch(d, m, s=1, seed=None) -> CountSketchTables:
    """Draw the hash indices and signs of an (m, d) OSNAP matrix with ``s`` non-zeros per column.

    Parameters
    ----------
    d : int
        Input dimension.
    m : int
        Sketch dimension.
    s : int, default 1
        Non-zeros per column (``1 <= s <= m``); ``s = 1`` is CountSketch.
    seed : None, int, SeedSequence or numpy.random.Generator
        Source of randomness (see ``_validation.check_random_state``).

    Returns
    -------
    CountSketchTables
    """
    d = check_positive_int(d, "d")
    m = check_positive_int(m, "m")
    s = check_positive_int(s, "s")
    if s > m:
        raise ValueError(f"s (non-zeros per column) must be <= m; got s={s}, m={m}. Use a smaller s.")
    rng = check_random_state(seed)
    # Block construction: block k holds rows [lo_k, hi_k); the s rows of a column are then distinct.
    bounds = (np.arange(s + 1) * m) // s
    lo = bounds[:-1]
    width = np.diff(bounds)
    u = rng.random((d, s))
    indices = lo[None, :] + np.minimum((u * width[None, :]).astype(np.int64), width[None, :] - 1)
    signs = (2.0 * rng.integers(0, 2, size=(d, s)) - 1.0) / np.sqrt(s)
    return CountSketchTables(np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(signs), m)


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True)
def _countsketch_dense(indices, signs, x, out):
    out[:] = 0.0
    d, s = indices.shape
    for i in range(d):
        v = x[i]
        if v != 0.0:
            for k in range(s):
                out[indices[i, k]] += signs[i, k] * v


@numba.njit(cache=True, inline="always")
def _countsketch1_add_block(index, signs, start, x, out):
    for i in range(x.shape[0]):
        out[index[start + i]] += signs[start + i] * x[i]


@numba.njit(cache=True)
def _countsketch_sparse(indices, signs, x_idx, x_val, out):
    out[:] = 0.0
    s = indices.shape[1]
    for a in range(x_idx.shape[0]):
        i = x_idx[a]
        v = x_val[a]
        for k in range(s):
            out[indices[i, k]] += signs[i, k] * v


@numba.njit(cache=True)
def _countsketch_dense_rows(indices, signs, X, out, r0, r1):
    for r in range(r0, r1):
        _countsketch_dense(indices, signs, X[r], out[r])


@numba.njit(cache=True)
def _countsketch_csr_rows(indices, signs, indptr, X_indices, X_data, out, r0, r1):
    for r in range(r0, r1):
        a = indptr[r]
        b = indptr[r + 1]
        _countsketch_sparse(indices, signs, X_indices[a:b], X_data[a:b], out[r])


@serialised
@numba.njit(cache=True, parallel=True)
def _countsketch_dense_batch(indices, signs, X, out):
    n = X.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _countsketch_dense_rows(indices, signs, X, out, b * _BLOCK, min(n, (b + 1) * _BLOCK))


@serialised
@numba.njit(cache=True, parallel=True)
def _countsketch_csr_batch(indices, signs, indptr, X_indices, X_data, out):
    n = out.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _countsketch_csr_rows(indices, signs, indptr, X_indices, X_data, out, b * _BLOCK, min(n, (b + 1) * _BLOCK))


def apply_countsketch(X, tables: CountSketchTables, *, name="X"):
    """Apply an OSNAP matrix to the rows of ``X`` (dense (n, d) or scipy.sparse), returning (n, m).

    float32 input gives float32 output; everything else float64.  Sparse input costs O(s nnz(X)).
    """
    X = check_matrix(X, name, dtype=None, accept_sparse=True, allow_empty_rows=True)
    check_n_features(X, tables.indices.shape[0], name, "draw_countsketch")
    e = row_scale_exponents(X)  # linear map: rows beyond ~2^+-256 are rescaled and the output scaled back exactly
    X = scale_rows(X, e)
    out = np.empty((X.shape[0], tables.m), dtype=X.dtype)
    n = X.shape[0]
    if sp.issparse(X):
        if n <= _BLOCK:  # one block: skip the parallel launch (it dominates for a handful of rows)
            _countsketch_csr_rows(tables.indices, tables.signs, X.indptr, X.indices, X.data, out, 0, n)
        else:
            _countsketch_csr_batch(tables.indices, tables.signs, X.indptr, X.indices, X.data, out)
    elif n <= _BLOCK:
        _countsketch_dense_rows(tables.indices, tables.signs, X, out, 0, n)
    else:
        _countsketch_dense_batch(tables.indices, tables.signs, X, out)
    return unscale_rows(out, e, name)


class CountSketch(TransformerMixin, BaseEstimator):
    """OSNAP / CountSketch map R^d -> R^m with ``s`` non-zeros per column (docs/math.md §4).

    The random tables are drawn once, in ``fit``, from ``seed``; ``transform`` then applies the same matrix to
    every batch: ``CountSketch(d, m, seed=0).fit().transform(X)``.  ``E <S x, S y> = <x, y>`` exactly.

    Parameters
    ----------
    d : int
        Input dimension.
    m : int
        Sketch dimension.
    s : int, default 1
        Non-zeros per column (1 = CountSketch).
    seed : None, int, SeedSequence or numpy.random.Generator

    Attributes
    ----------
    n_features_in_ : int
        ``d``.
    tables_ : CountSketchTables
        ``indices`` (d, s) int64 and ``signs`` (d, s) float64, for the njit kernels of this module.
    """

    _accept_sparse = True
    _preserves_float32 = True

    def __init__(self, d, m, *, s=1, seed=None):
        self.d = d
        self.m = m
        self.s = s
        self.seed = seed

    def fit(self, X=None, y=None):
        """Draw the random tables from ``seed``; returns ``self``.

        ``X`` is optional (the input dimension is the parameter ``d``); when given, only its number of columns is
        checked against ``d``.  ``y`` is ignored.
        """
        tables = draw_countsketch(self.d, self.m, self.s, self.seed)
        if X is not None:
            check_n_features(check_matrix(X, "X", dtype=None, accept_sparse=True), self.d, owner=self)
        self.tables_ = tables
        self.n_features_in_ = int(self.d)
        return self

    def transform(self, X):
        """Sketch the rows of ``X`` (dense (n, d) array or scipy.sparse matrix) -> (n, m)."""
        check_is_fitted(self, "tables_")
        return apply_countsketch(X, self.tables_)

    __call__ = transform

    def to_dense(self):
        """The (m, d) matrix S as a dense float64 array (for tests and small examples)."""
        check_is_fitted(self, "tables_")
        S = np.zeros((self.tables_.m, self.tables_.indices.shape[0]))
        for k in range(self.tables_.indices.shape[1]):
            S[self.tables_.indices[:, k], np.arange(S.shape[1])] += self.tables_.signs[:, k]
        return S
