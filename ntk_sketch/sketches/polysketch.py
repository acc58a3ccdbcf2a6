"""PolySketch: sketches of x^(l) = x (x) ... (x) x for every degree l = 1..p in one pass (docs/math.md §4).

Construction (Ahle, Kapralov, Knudsen, Pagh, Velingker, Woodruff, Zandieh, SODA 2020, arXiv 1909.01410, Section 4;
used by Zandieh et al. 2021, Algorithm 1): a complete binary tree with ``q = 2^ceil(log2 p)`` leaves and
``T = log2 q`` levels of internal nodes.  Leaf j applies its own base sketch R^d -> R^m (OSNAP, input-sparsity
time, or SRHT) to its input; every internal node applies its own TensorSRHT R^m (x) R^m -> R^m
(:mod:`ntk_sketch.sketches.tensor_srht`) to the outputs of its two children.  All these random maps are independent.

Degree l < q: leaves 0..l-1 receive x and leaves l..q-1 receive e1 (the first standard basis vector of R^d), so
the root outputs ``Q^l x^(l) := Q(x^(l) (x) e1^(q-l))`` and ``E <Q^l x^(l), Q^l y^(l)> = <x, y>^l`` (every map
in the tree is unbiased, and they are independent); this is how any p >= 1 works, not only powers of two.

One pass for all degrees.  A node at level t covers 2^t consecutive leaves.  For degree l it is *all-x* (all its
leaves get x), *all-e1*, or *mixed*; at each level at most one node per degree is mixed.  All-x nodes are
the same for every degree that covers them and are computed once; all-e1 nodes are constants, precomputed when
the tables are drawn (we store directly the sampled Hadamard transform of every all-e1 right child, the only
way a constant enters a node that has x below it).  Per vector this costs p leaf sketches plus, per level t,
2 floor(p / 2^t) + 1 FWHTs for the all-x nodes and at most one FWHT per degree whose node is mixed: O(p log p)
transforms of length N = next_pow2(m), i.e. O(p s nnz(x) + p log(p) m log m) per vector (OSNAP leaves).

Output layout: ``transform(X)`` returns an array of shape (n, p, m) with ``out[:, l - 1, :] = Q^l x^(l)``.

Random tables
-------------
``draw_polysketch(d, m, degree, base='osnap', s=1, seed=None)`` returns :class:`PolySketchTables`.  The
Generator draws, in this order: the base sketches of leaves 0..p-1, the e1-images of leaves p..q-1, then the
TensorSRHTs of the internal nodes, numbered level by level from the leaves up and left to right (node j of level
t >= 1 has index ``q - q / 2^(t-1) + j``).

njit kernels (for other modules' njit loops)
--------------------------------------------
Buffers for one vector (``dtype`` = the output dtype): ``xa, xb`` (q, m); ``mix`` (p + 1, m); ``w1, w2``
(node_n_pad,); ``wleaf`` (leaf_n_pad,) (SRHT leaves only, else any length-1 array).  Contents are overwritten.

``_polysketch_leaves_osnap_dense(leaf_codes, leaf_mag, x, xa)`` /
``_polysketch_leaves_osnap_sparse(leaf_codes, leaf_mag, x_idx, x_val, xa)``
    ``xa[j] = S_j x`` for the p leaves that ever see x, in one pass over the non-zeros of x.  The p OSNAP
    tables are stacked column-wise into one compact table: ``leaf_codes[i, j s + k] = 2 r + b`` where r is the
    row of the k-th non-zero of column i of leaf j *in the flattened (q m) buffer* (i.e. offset by j m) and
    b = 1 for a negative sign; every entry has magnitude ``leaf_mag = 1/sqrt(s)``.  One int32 per (column,
    leaf) instead of an int64 and a float64 quarters the table (1 MB at d = 65,536, p = 4, s = 1), so that the
    random column accesses of sparse input miss the cache less (measured: 4x fewer ns per non-zero at 0.1%
    density).
``_polysketch_leaves_srht_dense(leaf_srht_signs, leaf_srht_rows, leaf_scale, x, xa, wleaf)`` /
``_polysketch_leaves_srht_sparse(leaf_srht_signs, leaf_srht_rows, leaf_scale, x_idx, x_val, xa, wleaf)``
``_polysketch_tree(p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
xa, xb, mix, w1, w2, out)``
    Given the leaf values in ``xa[:p]``, writes ``out[l - 1] = Q^l x^(l)`` for l = 1..p (``out`` (p, m)).
``_polysketch_dense_vec(tables..., x, out, xa, xb, mix, w1, w2, wleaf)``
    Leaves and tree for one dense vector; the tables arguments are, in order, ``base_is_srht, leaf_codes,
    leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale, p, n_levels, node_signs1, node_signs2, node_rows1,
    node_rows2, node_scale, const_right`` (:meth:`PolySketchTables.njit_args` returns exactly this tuple).
``_polysketch_sparse_vec(tables..., x_idx, x_val, out, xa, xb, mix, w1, w2, wleaf)``
    Same for one sparse vector (indices and values of one CSR row).
``_polysketch_dense_rows(tables..., leaf_n_pad, node_n_pad, X, out, r0, r1)`` / ``_polysketch_csr_rows(tables...,
leaf_n_pad, node_n_pad, indptr, X_indices, X_data, out, r0, r1)``
    Rows r0..r1-1 of a batch serially (buffers allocated once); ``out`` (n, p, m).  The ``_batch`` variants run
    blocks of rows in parallel; each row is computed by one thread in a fixed order, so results do not depend
    on the thread count.
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
from .countsketch import CountSketchTables, apply_countsketch, draw_countsketch
from .srht import _srht_dense, _srht_sparse, apply_srht, draw_srht, next_pow2
from .tensor_srht import _signed_fwht, _tensor_srht, _tensor_srht_combine, draw_tensor_srht

__all__ = ["PolySketchTables", "PolySketchFFTTables", "draw_polysketch", "apply_polysketch", "polynomial_features", "PolySketch"]

_BLOCK = 16


class PolySketchTables(NamedTuple):
    """All random tables of one PolySketch (module docstring).  Arrays are C-contiguous float64 / int64."""

    d: int
    m: int
    degree: int  # p
    n_leaves: int  # q = 2^ceil(log2 p)
    n_levels: int  # T = log2 q
    base: str  # 'osnap' or 'srht'
    leaf_codes: np.ndarray  # int32 (int64 if 2 p m >= 2^31) (d, p s): 2 (j m + row) + (sign < 0), see above
    leaf_mag: float  # 1/sqrt(s), the magnitude of every OSNAP entry
    leaf_srht_signs: np.ndarray  # float64 (p, d) (SRHT leaves; (p, 0) otherwise)
    leaf_srht_rows: np.ndarray  # int64 (p, m) (SRHT leaves; (p, 0) otherwise)
    leaf_scale: float  # SRHT leaf scale 1/sqrt(m)
    leaf_n_pad: int  # SRHT leaf padded length (1 for OSNAP)
    leaf_e1: np.ndarray  # float64 (q, m): base sketch of e1 at every leaf
    node_signs1: np.ndarray  # float64 (q - 1, m)
    node_signs2: np.ndarray  # float64 (q - 1, m)
    node_rows1: np.ndarray  # int64 (q - 1, m)
    node_rows2: np.ndarray  # int64 (q - 1, m)
    node_scale: float  # 1/sqrt(m)
    node_n_pad: int  # next_pow2(m)
    const_right: np.ndarray  # float64 (q - 1, m): (Hu D2 E_right)[rows2], E_right the all-e1 right child value

    def njit_args(self):
        """The tables as the positional tuple that :func:`_polysketch_dense_vec` takes before ``x``."""
        return (self.base == "srht", self.leaf_codes, self.leaf_mag, self.leaf_srht_signs,
                self.leaf_srht_rows, self.leaf_scale, self.degree, self.n_levels, self.node_signs1,
                self.node_signs2, self.node_rows1, self.node_rows2, self.node_scale, self.const_right)


def _node_index(q, t, j):
    return q - (q >> (t - 1)) + j


def _check_polysketch_args(d, m, degree, base, s):
    """Validated (d, m, degree, s) of a PolySketch draw (either kind of internal node)."""
    d = check_positive_int(d, "d")
    m = check_positive_int(m, "m")
    p = check_positive_int(degree, "degree")
    if base not in ("osnap", "srht"):
        raise ValueError(f"base must be 'osnap' or 'srht'; got {base!r}.")
    s = check_positive_int(s, "s")
    if base == "osnap" and s > m:
        raise ValueError(f"s (OSNAP non-zeros per column) must be <= m; got s={s}, m={m}.")
    return d, m, p, s


def draw_polysketch(d, m, degree, base="osnap", s=1, seed=None, node="tensor_srht"):
    """Draw every random table of a degree-``degree`` PolySketch R^d -> R^m and precompute its e1 constants.

    Parameters
    ----------
    d : int
        Input dimension.
    m : int
        Sketch dimension of every node.
    degree : int
        Highest degree p >= 1 (any integer; the tree is padded with e1 leaves).
    base : {'osnap', 'srht'}, default 'osnap'
        Leaf sketch.  'osnap' costs O(s nnz(x)) per leaf (input-sparsity time, use it for sparse input);
        'srht' costs O(N log N), N = next_pow2(max(d, m)), per leaf (dense input).
    s : int, default 1
        OSNAP non-zeros per column (ignored for 'srht').
    seed : None, int, SeedSequence or numpy.random.Generator
    node : {'tensor_srht', 'countsketch'}, default 'tensor_srht'
        Internal nodes: TensorSRHT (returns :class:`PolySketchTables`), or CountSketch products computed by FFT
        ("TensorSketch" nodes, docs/math.md §10; returns :class:`PolySketchFFTTables`, see
        :func:`_draw_polysketch_fft`), which have lower variance for vectors with a dominant coordinate.
    """
    if node == "countsketch":
        return _draw_polysketch_fft(d, m, degree, base, s, seed)
    if node != "tensor_srht":
        raise ValueError(f"node must be 'tensor_srht' or 'countsketch'; got {node!r}.")
    d, m, p, s = _check_polysketch_args(d, m, degree, base, s)
    rng = check_random_state(seed)
    q = next_pow2(p)
    T = q.bit_length() - 1
    leaf_e1 = np.zeros((q, m))
    e1 = np.zeros((1, d))
    e1[0, 0] = 1.0
    if base == "osnap":
        code_dtype = np.int32 if 2 * p * m < 2**31 else np.int64
        leaf_codes = np.empty((d, p * s), dtype=code_dtype)
        for j in range(p):
            t = draw_countsketch(d, m, s, rng)
            leaf_codes[:, j * s:(j + 1) * s] = 2 * (t.indices + j * m) + (t.signs < 0)
            np.add.at(leaf_e1[j], t.indices[0], t.signs[0])
        for j in range(p, q):  # only S_j e1 is ever needed: the first column of an OSNAP matrix
            t = draw_countsketch(1, m, s, rng)
            np.add.at(leaf_e1[j], t.indices[0], t.signs[0])
        leaf_srht_signs = np.zeros((p, 0))
        leaf_srht_rows = np.zeros((p, 0), dtype=np.int64)
        leaf_scale, leaf_n_pad = 1.0 / np.sqrt(m), 1
    else:
        leaf_codes = np.zeros((d, 0), dtype=np.int32)
        leaf_srht_signs = np.empty((p, d))
        leaf_srht_rows = np.empty((p, m), dtype=np.int64)
        leaf_n_pad = next_pow2(max(d, m))
        leaf_scale = 1.0 / np.sqrt(m)
        work = np.empty(leaf_n_pad)
        for j in range(q):
            t = draw_srht(d, m, rng)
            if j < p:
                leaf_srht_signs[j] = t.signs
                leaf_srht_rows[j] = t.rows
            _srht_dense(t.signs, t.rows, t.scale, e1[0], leaf_e1[j], work)
    n_int = q - 1
    N = next_pow2(m)
    node_signs1 = np.empty((n_int, m))
    node_signs2 = np.empty((n_int, m))
    node_rows1 = np.empty((n_int, m), dtype=np.int64)
    node_rows2 = np.empty((n_int, m), dtype=np.int64)
    for k in range(n_int):
        t = draw_tensor_srht(m, m, m, rng)
        assert t.n_pad1 == N and t.n_pad2 == N
        node_signs1[k], node_signs2[k], node_rows1[k], node_rows2[k] = t.signs1, t.signs2, t.rows1, t.rows2
    # Constants: value of every all-e1 node, level by level; store (Hu D2 E)[rows2] for every right child.
    const_right = np.zeros((n_int, m))
    scale = 1.0 / np.sqrt(m)
    w1, w2 = np.empty(N), np.empty(N)
    E = leaf_e1
    for t in range(1, T + 1):
        E_next = np.empty((q >> t, m))
        for j in range(q >> t):
            k = _node_index(q, t, j)
            _signed_fwht(node_signs2[k], E[2 * j + 1], w2)
            const_right[k] = w2[node_rows2[k]]
            _tensor_srht(node_signs1[k], node_signs2[k], node_rows1[k], node_rows2[k], scale, E[2 * j],
                         E[2 * j + 1], E_next[j], w1, w2)
        E = E_next
    return PolySketchTables(d, m, p, q, T, base, leaf_codes, 1.0 / np.sqrt(s), leaf_srht_signs, leaf_srht_rows,
                            leaf_scale, leaf_n_pad, leaf_e1, node_signs1, node_signs2, node_rows1, node_rows2,
                            scale, N, const_right)


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True, inline="always")
def _scatter_codes(codes, i, v, flat):
    for c in range(codes.shape[1]):
        code = codes[i, c]
        # v - 2 v b is exactly -v for b = 1 and v for b = 0: a branch-free sign
        flat[code >> 1] += v - 2.0 * v * (code & 1)


@numba.njit(cache=True)
def _polysketch_leaves_osnap_dense(leaf_codes, leaf_mag, x, xa):
    # xa is C-contiguous (q, m): the codes index its flat view.  Rows p..q-1 are zeroed too and never read.
    flat = xa.reshape(xa.shape[0] * xa.shape[1])
    flat[:] = 0.0
    for i in range(x.shape[0]):
        if x[i] != 0.0:
            _scatter_codes(leaf_codes, i, x[i] * leaf_mag, flat)


@numba.njit(cache=True)
def _polysketch_leaves_osnap_sparse(leaf_codes, leaf_mag, x_idx, x_val, xa):
    flat = xa.reshape(xa.shape[0] * xa.shape[1])
    flat[:] = 0.0
    for a in range(x_idx.shape[0]):
        _scatter_codes(leaf_codes, x_idx[a], x_val[a] * leaf_mag, flat)


@numba.njit(cache=True)
def _polysketch_leaves_srht_dense(leaf_srht_signs, leaf_srht_rows, leaf_scale, x, xa, wleaf):
    for j in range(leaf_srht_signs.shape[0]):
        _srht_dense(leaf_srht_signs[j], leaf_srht_rows[j], leaf_scale, x, xa[j], wleaf)


@numba.njit(cache=True)
def _polysketch_leaves_srht_sparse(leaf_srht_signs, leaf_srht_rows, leaf_scale, x_idx, x_val, xa, wleaf):
    for j in range(leaf_srht_signs.shape[0]):
        _srht_sparse(leaf_srht_signs[j], leaf_srht_rows[j], leaf_scale, x_idx, x_val, xa[j], wleaf)


@numba.njit(cache=True)
def _combine_const(rows1, scale, work1, const, out):
    for k in range(rows1.shape[0]):
        out[k] = scale * work1[rows1[k]] * const[k]


@numba.njit(cache=True)
def _polysketch_tree(p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                     xa, xb, mix, w1, w2, out):
    q = 1 << n_levels
    cur = xa  # all-x node values of the current level (first p >> t rows valid)
    nxt = xb
    for t in range(1, n_levels + 1):
        half = 1 << (t - 1)
        size = 1 << t
        off = q - (q >> (t - 1))
        for j in range(q >> t):
            lo = j * size
            if lo >= p:
                break  # this node and those to its right are all-e1 for every degree: constants
            k = off + j
            mid = lo + half  # the left child covers leaves [lo, mid), the right one [mid, lo + size)
            if mid <= p:
                # the left child is all-x for the degrees l >= mid: its transform is shared by all of them
                _signed_fwht(node_signs1[k], cur[2 * j], w1)
            if lo + size <= p:  # all-x node
                _signed_fwht(node_signs2[k], cur[2 * j + 1], w2)
                _tensor_srht_combine(node_rows1[k], node_rows2[k], node_scale, w1, w2, nxt[j])
            # mixed node for the degrees lo < l < lo + size (l <= p): at most one child is mixed, and it holds
            # mix[l] from the level below; the result overwrites mix[l] once both transforms are taken.
            for l in range(lo + 1, min(lo + size - 1, p) + 1):
                if l >= mid:
                    if l == mid:  # right child all-e1: constant
                        _combine_const(node_rows1[k], node_scale, w1, const_right[k], mix[l])
                    else:  # right child mixed
                        _signed_fwht(node_signs2[k], mix[l], w2)
                        _tensor_srht_combine(node_rows1[k], node_rows2[k], node_scale, w1, w2, mix[l])
                else:  # left child mixed, right child all-e1
                    _signed_fwht(node_signs1[k], mix[l], w2)
                    _combine_const(node_rows1[k], node_scale, w2, const_right[k], mix[l])
        tmp = cur
        cur = nxt
        nxt = tmp
    for l in range(1, p + 1):
        if l == q:
            out[l - 1] = cur[0]
        else:
            out[l - 1] = mix[l]


@numba.njit(cache=True)
def _polysketch_dense_vec(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale, p,
                          n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                          x, out, xa, xb, mix, w1, w2, wleaf):
    if base_is_srht:
        _polysketch_leaves_srht_dense(leaf_srht_signs, leaf_srht_rows, leaf_scale, x, xa, wleaf)
    else:
        _polysketch_leaves_osnap_dense(leaf_codes, leaf_mag, x, xa)
    if n_levels == 0:
        out[0] = xa[0]
    else:
        _polysketch_tree(p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                         xa, xb, mix, w1, w2, out)


@numba.njit(cache=True)
def _polysketch_sparse_vec(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale,
                           p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                           x_idx, x_val, out, xa, xb, mix, w1, w2, wleaf):
    if base_is_srht:
        _polysketch_leaves_srht_sparse(leaf_srht_signs, leaf_srht_rows, leaf_scale, x_idx, x_val, xa, wleaf)
    else:
        _polysketch_leaves_osnap_sparse(leaf_codes, leaf_mag, x_idx, x_val, xa)
    if n_levels == 0:
        out[0] = xa[0]
    else:
        _polysketch_tree(p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                         xa, xb, mix, w1, w2, out)


@numba.njit(cache=True)
def _polysketch_dense_rows(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale,
                           p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                           leaf_n_pad, node_n_pad, X, out, r0, r1):
    m = out.shape[2]
    q = 1 << n_levels
    xa = np.empty((q, m), dtype=out.dtype)
    xb = np.empty((q, m), dtype=out.dtype)
    mix = np.empty((p + 1, m), dtype=out.dtype)
    w1 = np.empty(node_n_pad, dtype=out.dtype)
    w2 = np.empty(node_n_pad, dtype=out.dtype)
    wleaf = np.empty(leaf_n_pad, dtype=out.dtype)
    for r in range(r0, r1):
        _polysketch_dense_vec(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale,
                              p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale,
                              const_right, X[r], out[r], xa, xb, mix, w1, w2, wleaf)


@numba.njit(cache=True)
def _polysketch_csr_rows(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale,
                         p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                         leaf_n_pad, node_n_pad, indptr, X_indices, X_data, out, r0, r1):
    m = out.shape[2]
    q = 1 << n_levels
    xa = np.empty((q, m), dtype=out.dtype)
    xb = np.empty((q, m), dtype=out.dtype)
    mix = np.empty((p + 1, m), dtype=out.dtype)
    w1 = np.empty(node_n_pad, dtype=out.dtype)
    w2 = np.empty(node_n_pad, dtype=out.dtype)
    wleaf = np.empty(leaf_n_pad, dtype=out.dtype)
    for r in range(r0, r1):
        a0 = indptr[r]
        a1 = indptr[r + 1]
        _polysketch_sparse_vec(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows,
                               leaf_scale, p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2,
                               node_scale, const_right, X_indices[a0:a1], X_data[a0:a1], out[r], xa, xb, mix,
                               w1, w2, wleaf)


@serialised
@numba.njit(cache=True, parallel=True)
def _polysketch_dense_batch(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale,
                            p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                            leaf_n_pad, node_n_pad, X, out):
    n = X.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _polysketch_dense_rows(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows,
                               leaf_scale, p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2,
                               node_scale, const_right, leaf_n_pad, node_n_pad, X, out, b * _BLOCK,
                               min(n, (b + 1) * _BLOCK))


@serialised
@numba.njit(cache=True, parallel=True)
def _polysketch_csr_batch(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows, leaf_scale,
                          p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2, node_scale, const_right,
                          leaf_n_pad, node_n_pad, indptr, X_indices, X_data, out):
    n = out.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _polysketch_csr_rows(base_is_srht, leaf_codes, leaf_mag, leaf_srht_signs, leaf_srht_rows,
                             leaf_scale, p, n_levels, node_signs1, node_signs2, node_rows1, node_rows2,
                             node_scale, const_right, leaf_n_pad, node_n_pad, indptr, X_indices, X_data, out,
                             b * _BLOCK, min(n, (b + 1) * _BLOCK))


# ------------------------------------------------------------------------------------------------ wrappers
def apply_polysketch(X, tables: PolySketchTables, *, name="X"):
    """Sketch every row of ``X`` at every degree: returns (n, p, m) with ``out[:, l-1] = Q^l x^(l)``.

    ``X`` is a dense (n, d) array or a scipy.sparse matrix (CSR after validation); float32 input gives float32
    output, anything else float64.  With OSNAP leaves, sparse input costs O(p s nnz) at the leaves.
    """
    X = check_matrix(X, name, dtype=None, accept_sparse=True, allow_empty_rows=True)
    check_n_features(X, tables.d, name, "draw_polysketch")
    # degree l is homogeneous of degree l: rows beyond ~2^+-256 are rescaled, each degree scaled back exactly
    e = row_scale_exponents(X)
    X = scale_rows(X, e)
    if isinstance(tables, PolySketchFFTTables):
        out = _apply_polysketch_fft(X, tables)
    else:
        out = _apply_polysketch_tree(X, tables)
    if np.any(e):
        for l in range(1, tables.degree + 1):
            out[:, l - 1] = unscale_rows(out[:, l - 1], e, name, degree=l)
    return out


def _apply_polysketch_tree(X, tables):
    """TensorSRHT-node PolySketch of validated rows (dense or CSR): (n, p, m) in X's dtype."""
    out = np.empty((X.shape[0], tables.degree, tables.m), dtype=X.dtype)
    args = tables.njit_args() + (tables.leaf_n_pad, tables.node_n_pad)
    n = X.shape[0]
    if sp.issparse(X):
        if n <= _BLOCK:  # one block: skip the parallel launch
            _polysketch_csr_rows(*args, X.indptr, X.indices, X.data, out, 0, n)
        else:
            _polysketch_csr_batch(*args, X.indptr, X.indices, X.data, out)
    elif n <= _BLOCK:
        _polysketch_dense_rows(*args, X, out, 0, n)
    else:
        _polysketch_dense_batch(*args, X, out)
    return out


# ------------------------------------------------------------------------------------------------ CountSketch nodes
class PolySketchFFTTables(NamedTuple):
    """Random tables of a PolySketch with CountSketch-product ("TensorSketch") internal nodes.

    Same tree, leaves and e1 padding as :class:`PolySketchTables`.  Internal node k combines its children
    ``y, z in R^m`` as ``irfft(rfft(D1 P1 y) * rfft(D2 P2 z))``: the circular convolution of the children after a
    random signed permutation of each, i.e. a CountSketch of ``y (x) z`` whose bucket is ``P1(i) + P2(j) mod m``
    and whose sign is ``D1_i D2_j``.  The signs alone make it unbiased: ``E <node(y, z), node(y', z')> = <y, y'>
    <z, z'>`` for every fixed y, z, y', z' (the cross terms i != i' have ``E[D1_i D1_i'] = 0``), and the tables of
    different nodes are independent, so ``E <Q^l x^(l), Q^l y^(l)> = <x, y>^l`` as for TensorSRHT nodes.  With
    CountSketch leaves (``base='osnap'``, s = 1) this is Pham and Pagh's TensorSketch, except that when d <= m the
    leaf hashes are drawn without replacement (distinct buckets: the leaves are isometries and add no collisions).
    Cost: O(m log m) per node by FFT, vectorised over rows with numpy.
    """

    d: int
    m: int
    degree: int
    n_leaves: int
    n_levels: int
    base: str
    leaves: tuple  # p CountSketchTables (base 'osnap') or SRHTTables (base 'srht')
    leaf_e1: np.ndarray  # float64 (q, m): base sketch of e1 at every leaf
    perms: np.ndarray  # int64 (q - 1, 2, m): permutation of the left / right child per node
    signs: np.ndarray  # float64 (q - 1, 2, m)


def _draw_polysketch_fft(d, m, degree, base, s, seed):
    """Tables of a PolySketch with CountSketch-product nodes.  The Generator draws, in this order: the base
    sketches of leaves 0..p-1, those of leaves p..q-1 (only their image of e1 is kept), then per internal node
    (numbered as in :func:`draw_polysketch`) the permutation and signs of its left child, then of its right."""
    d, m, p, s = _check_polysketch_args(d, m, degree, base, s)
    rng = check_random_state(seed)
    q = next_pow2(p)
    T = q.bit_length() - 1
    e1 = np.zeros((1, d))
    e1[0, 0] = 1.0
    leaves, leaf_e1 = [], np.zeros((q, m))
    for j in range(q):
        if base == "osnap" and s == 1 and d <= m:
            # CountSketch whose buckets are distinct (an injective hash): an isometry, so no collisions at the
            # leaves; still unbiased at every node (the signs alone make the nodes unbiased)
            t = CountSketchTables(rng.choice(m, size=d, replace=False).astype(np.int64).reshape(d, 1),
                                  (2.0 * rng.integers(0, 2, size=(d, 1)) - 1.0), m)
        elif base == "osnap":
            t = draw_countsketch(d, m, s, rng)
        else:
            t = draw_srht(d, m, rng)
        leaf_e1[j] = _apply_leaf(e1, t, base)[0]
        if j < p:
            leaves.append(t)
    perms = np.empty((q - 1, 2, m), dtype=np.int64)
    signs = np.empty((q - 1, 2, m))
    for k in range(q - 1):
        for c in range(2):
            perms[k, c] = rng.permutation(m)
            signs[k, c] = 2.0 * rng.integers(0, 2, size=m) - 1.0
    return PolySketchFFTTables(d, m, p, q, T, base, tuple(leaves), leaf_e1, perms, signs)


def _apply_leaf(X, t, base):
    return apply_countsketch(X, t) if base == "osnap" else apply_srht(X, t)


def _apply_polysketch_fft(X, tables):
    n, m, p, q = X.shape[0], tables.m, tables.degree, tables.n_leaves
    dtype = X.dtype if X.dtype == np.float32 else np.float64
    leaf_x = [_apply_leaf(X, t, tables.base).astype(np.float64, copy=False) for t in tables.leaves]
    memo = {}

    def value(t, j, nx):
        # node j of level t (leaves [j 2^t, (j+1) 2^t)) whose first nx leaves receive x and the others e1
        size = 1 << t
        if t == 0:
            return leaf_x[j] if nx == 1 else np.broadcast_to(tables.leaf_e1[j], (n, m))
        key = (t, j, nx)
        if key not in memo:
            half = size >> 1
            k = _node_index(q, t, j)
            left = value(t - 1, 2 * j, min(nx, half))
            right = value(t - 1, 2 * j + 1, max(nx - half, 0))
            a = left[:, tables.perms[k, 0]] * tables.signs[k, 0]
            b = right[:, tables.perms[k, 1]] * tables.signs[k, 1]
            memo[key] = np.fft.irfft(np.fft.rfft(a, axis=1) * np.fft.rfft(b, axis=1), n=m, axis=1)
        return memo[key]

    out = np.empty((n, p, m), dtype=dtype)
    for l in range(1, p + 1):
        out[:, l - 1] = value(tables.n_levels, 0, l)
    return out


def _check_coefficients(coef, degree):
    try:
        c = np.asarray(coef, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"coefficients must be numbers c_0..c_p; got {coef!r}.") from None
    if c.ndim != 1 or c.shape[0] != degree + 1:
        raise ValueError(f"coefficients must be a 1-d array of length degree + 1 = {degree + 1} (c_0..c_p); "
                         f"got shape {c.shape}.")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("coefficients must be finite and non-negative (a polynomial kernel sum_l c_l <x,y>^l "
                         "needs c_l >= 0 to have a real feature map).")
    return c


def polynomial_features(X, coefficients, tables: PolySketchTables, *, name="X"):
    """Feature map of the polynomial kernel ``sum_l c_l <x, y>^l`` (docs/math.md §4).

    Returns ``[sqrt(c_0), sqrt(c_1) Q^1 x, ..., sqrt(c_p) Q^p x^(p)]`` of shape (n, 1 + p m), so that
    ``E <f(x), f(y)> = sum_l c_l <x, y>^l``.  The constant coordinate is always present (zero if c_0 = 0) so
    that the layout does not depend on the coefficients.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (n, d)
    coefficients : array_like, shape (p + 1,)
        Non-negative c_0..c_p.
    tables : PolySketchTables
    """
    c = _check_coefficients(coefficients, tables.degree)
    return weighted_concat(apply_polysketch(X, tables, name=name), c)


def weighted_concat(Z, coefficients):
    """``[sqrt(c_0), sqrt(c_1) Z_1, ..., sqrt(c_p) Z_p]`` of shape (n, 1 + p m) for sketches Z of shape (n, p, m).

    The layout of :func:`polynomial_features`, for callers that apply several polynomials to one sketch (NTKSketch
    builds its k0 and k1 features from the same Z).
    """
    n, p, m = Z.shape
    F = np.empty((n, 1 + p * m), dtype=Z.dtype)
    F[:, 0] = np.sqrt(coefficients[0])
    F[:, 1:] = (Z * np.sqrt(np.asarray(coefficients[1:]))[None, :, None]).reshape(n, p * m)
    return F


class PolySketch(TransformerMixin, BaseEstimator):
    """PolySketch of every degree 1..p (docs/math.md §4; Ahle et al. 2020), tables drawn once from ``seed``.

    ``PolySketch(d, m, p, seed=0).fit().transform(X)``: the tables are drawn in ``fit``.

    Parameters
    ----------
    d : int
        Input dimension.
    m : int
        Sketch dimension.
    degree : int
        Highest degree p >= 1 (any integer).
    base : {'osnap', 'srht'}, default 'osnap'
        Leaf sketch: 'osnap' is input-sparsity time (use it for sparse input); 'srht' for dense input.
    s : int, default 1
        OSNAP non-zeros per column.
    seed : None, int, SeedSequence or numpy.random.Generator
    node : {'tensor_srht', 'countsketch'}, default 'tensor_srht'
        Internal nodes (see :func:`draw_polysketch`): CountSketch products ("TensorSketch", by FFT) have lower
        variance for vectors with a dominant coordinate, e.g. ``[sqrt(g) x, sqrt(c)]`` for the inhomogeneous
        kernel ``(g <x, y> + c)^p``, or rows with a large mean.

    Attributes
    ----------
    n_features_in_ : int
        ``d``.
    tables_ : PolySketchTables
    """

    _accept_sparse = True
    _preserves_float32 = True

    def __init__(self, d, m, degree, *, base="osnap", s=1, seed=None, node="tensor_srht"):
        self.d = d
        self.m = m
        self.degree = degree
        self.base = base
        self.s = s
        self.seed = seed
        self.node = node

    def fit(self, X=None, y=None):
        """Draw the random tables from ``seed``; returns ``self``.

        ``X`` is optional (the input dimension is the parameter ``d``); when given, only its number of columns is
        checked against ``d``.  ``y`` is ignored.
        """
        tables = draw_polysketch(self.d, self.m, self.degree, self.base, self.s, self.seed, self.node)
        if X is not None:
            check_n_features(check_matrix(X, "X", dtype=None, accept_sparse=True), self.d, owner=self)
        self.tables_ = tables
        self.n_features_in_ = int(self.d)
        return self

    def transform(self, X):
        """(n, p, m) array with ``[:, l - 1] = Q^l x^(l)`` (``E <Q^l x^(l), Q^l y^(l)> = <x, y>^l``)."""
        check_is_fitted(self, "tables_")
        return apply_polysketch(X, self.tables_)

    __call__ = transform

    def polynomial_features(self, X, coefficients):
        """(n, 1 + p m) features of ``sum_l c_l <x, y>^l``; see :func:`polynomial_features`."""
        check_is_fitted(self, "tables_")
        return polynomial_features(X, coefficients, self.tables_)
