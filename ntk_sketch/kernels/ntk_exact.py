"""Exact NTK and NNGP kernels of fully connected ReLU networks (docs/math.md §2).

Depth ``L`` counts hidden ReLU layers (L = 1 is a two-layer network), no biases.  Zandieh et al. (2021),
eqs. (4)-(5) (after Jacot et al. 2018 and Arora et al. 2019):

    S_0(y, z) = <y, z>,  T_0 = S_0
    S_h = sqrt(S_{h-1}(y,y) S_{h-1}(z,z)) k1(r_h),   Sdot_h = k0(r_h),   r_h = S_{h-1}(y,z) / sqrt(...)
    T_h = T_{h-1} Sdot_h + S_h,                      NTK(y, z) = T_L(y, z),   NNGP(y, z) = S_L(y, z).

Because ``k1(1) = 1`` every ``S_h(x, x) = |x|^2``, so the kernel is ``|y||z| K_L(a)`` with ``a`` the cosine of the
angle between ``y`` and ``z`` and the scalar recursion

    K_0(a) = s_0 = a,   s_h = k1(s_{h-1}),   K_h = K_{h-1} k0(s_{h-1}) + s_h.

Reference values: ``K_L(1) = L + 1``; ``K_1(-1, 0, 1) = (0, 1/pi, 2)``.

Relation to neural-tangents (``stax``, parameterization ``'ntk'``, no bias): the network
``Dense(W_std=sqrt(d)), Relu, [Dense(W_std=sqrt(2)), Relu] x (L-1), Dense(W_std=sqrt(2))`` has exactly this NTK;
the usual all-``sqrt(2)`` network has ``(2/d)`` times it.

Implementation: one BLAS product for the inner products, then a fused elementwise recursion in numba, written
with the entry index innermost so that LLVM vectorises it (``arccos._k0_k1`` is branch-free).  Gram matrices fill
the lower triangle only and mirror it; rows are paired (i, n-1-i) so both threads get equal work.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._linalg import gram
from .._validation import (
    check_matrix,
    check_positive_int,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_kernel,
)
from .arccos import _check_cosines, _k0_k1, _snap_cosine

__all__ = ["ntk_kernel", "nngp_kernel", "ntk_cosine_kernel", "nngp_cosine_kernel"]


@numba.njit(cache=True, inline="always")
def _recursion_row(a, k_out, s_buf, depth, want_ntk):
    """In place over a row of cosines ``a`` (length n): k_out <- K_L(a) (NTK) or s_L(a) (NNGP).

    The entry loop is innermost so it vectorises; ``s_buf`` is scratch of the same length.
    """
    n = a.shape[0]
    for j in range(n):
        x = min(max(a[j], -1.0), 1.0)
        s_buf[j] = x
        k_out[j] = x
    for _ in range(depth):
        for j in range(n):
            k0, k1 = _k0_k1(s_buf[j])
            s_buf[j] = k1
            k_out[j] = k_out[j] * k0 + k1
    if not want_ntk:
        for j in range(n):
            k_out[j] = s_buf[j]


@serialised
@numba.njit(cache=True, parallel=True)
def _kernel_from_inner_products(G, norm1, norm2, depth, want_ntk):
    """Overwrite G[i, j] = <x_i, y_j> with |x_i||y_j| K_L(cos angle)."""
    n1, n2 = G.shape
    for i in prange(n1):
        a = np.empty(n2)
        s = np.empty(n2)
        k = np.empty(n2)
        for j in range(n2):
            # one division by |x||y|: fewer roundings than multiplying by two inverse norms, which matters at
            # a = +-1 where K_L has a square-root singularity
            nn = norm1[i] * norm2[j]
            a[j] = _snap_cosine(G[i, j] / nn) if nn > 0.0 else 0.0
        _recursion_row(a, k, s, depth, want_ntk)
        for j in range(n2):
            G[i, j] = k[j] * norm1[i] * norm2[j]


@numba.njit(cache=True, inline="always")
def _gram_row(G, norm, i, depth, want_ntk, a, s, k):
    """Lower-triangle part (j <= i) of row i of a Gram matrix; the diagonal cosine is set to exactly 1."""
    m = i + 1
    for j in range(m):
        nn = norm[i] * norm[j]
        a[j] = _snap_cosine(G[i, j] / nn) if nn > 0.0 else 0.0
    if norm[i] > 0.0:
        a[i] = 1.0  # K_L(1) = L + 1 exactly; avoids the square-root sensitivity of arccos at 1 to a rounded cosine
    _recursion_row(a[:m], k[:m], s[:m], depth, want_ntk)
    for j in range(m):
        G[i, j] = k[j] * norm[i] * norm[j]


@serialised
@numba.njit(cache=True, parallel=True)
def _gram_from_inner_products(G, sq, depth, want_ntk):
    """Gram version: lower triangle computed (rows paired (r, n-1-r) to balance threads), then mirrored."""
    n = G.shape[0]
    norm = np.sqrt(sq)
    half = (n + 1) // 2
    for r in prange(half):
        a = np.empty(n)
        s = np.empty(n)
        k = np.empty(n)
        _gram_row(G, norm, r, depth, want_ntk, a, s, k)
        if n - 1 - r != r:
            _gram_row(G, norm, n - 1 - r, depth, want_ntk, a, s, k)
    # mirror in 64 x 64 tiles so that the column-strided writes stay in cache
    nb = (n + 63) // 64
    for bi in prange(nb):
        for bj in range(bi + 1):
            for i in range(bi * 64, min(n, bi * 64 + 64)):
                for j in range(bj * 64, min(i, bj * 64 + 64)):
                    G[j, i] = G[i, j]


@numba.njit(cache=True)
def _cosine_kernel_flat(a, out, depth, want_ntk):
    s = np.empty(a.size)
    _recursion_row(a, out, s, depth, want_ntk)


def _fc_kernel(X1, X2, depth, want_ntk):
    depth = check_positive_int(depth, "depth")
    X1 = check_matrix(X1, "X1", allow_empty_rows=True)
    # Rows with entries beyond ~2^+-256 are rescaled by powers of two and the kernel scaled back exactly
    # (_validation.row_scale_exponents): the kernel is homogeneous, so only the output's own range limits it.
    e1 = row_scale_exponents(X1)
    X1 = scale_rows(X1, e1)
    if X2 is None:
        # X1 X1^T as one symmetric rank-k update up to 4096 rows, in blocks beyond (the bundled OpenBLAS's update
        # crashes at ~16000 rows: ntk_sketch/_linalg.py); exactly symmetric either way
        G = np.ascontiguousarray(gram(X1.T, row_block=max(1, X1.shape[1])))
        # Squared norms from the diagonal of the same product, so the diagonal cosines are exactly 1.
        sq = np.diag(G).copy()
        if G.size:
            _gram_from_inner_products(G, sq, depth, want_ntk)
        return unscale_kernel(G, e1, e1, "X1")
    X2 = check_matrix(X2, "X2", allow_empty_rows=True)
    if X2.shape[1] != X1.shape[1]:
        raise ValueError(
            f"X1 has {X1.shape[1]} features but X2 has {X2.shape[1]}; both must have the same number of columns."
        )
    e2 = row_scale_exponents(X2)
    X2 = scale_rows(X2, e2)
    norm1 = np.sqrt(np.einsum("ij,ij->i", X1, X1))
    norm2 = np.sqrt(np.einsum("ij,ij->i", X2, X2))  # a = <x,y> / (|x| |y|)
    G = np.ascontiguousarray(X1 @ X2.T)
    if G.size:
        _kernel_from_inner_products(G, norm1, norm2, depth, want_ntk)
    return unscale_kernel(G, e1, e2, "X1 or X2")


def ntk_kernel(X1, X2=None, *, depth):
    """Exact NTK of a depth-``depth`` fully connected ReLU network (docs/math.md §2; Zandieh et al. 2021, eq. (5)).

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
        Rows are inputs; float32 is accepted, the computation is float64.
    X2 : array_like of shape (n2, d), optional
        Second set of rows.  If omitted the symmetric Gram matrix of ``X1`` is returned (one triangle is computed
        and mirrored, so it is exactly symmetric).
    depth : int
        Number of hidden ReLU layers L >= 1.

    Returns
    -------
    numpy.ndarray of shape (n1, n2), float64
        ``NTK(x, y) = |x||y| K_L(<x, y> / (|x||y|))``; entries involving a zero row are 0.  An ``X1`` or
        ``X2`` with no rows gives an empty (n1, n2) array.

    Raises
    ------
    ValueError
        If a kernel value exceeds the float64 range (rows with norms near 1e154 and above).  Any smaller scale
        works: rows with very large or very small entries are rescaled internally by powers of two and the
        kernel scaled back exactly, so ``ntk_kernel(2**k X) == 4**k ntk_kernel(X)`` bit for bit.

    Notes
    -----
    Cosines of equal rows are exactly 1 in the Gram case.  Near ``a = +-1`` the kernel is a square-root function
    of ``a`` (through ``arccos``), so a one-ulp rounding of ``<x, y>`` would move an entry by ~1e-8 relative;
    computed cosines within ``arccos.COSINE_SNAP = 2^-46`` of +-1 are therefore rounded to +-1, which makes
    parallel and antiparallel rows give the same digits whichever BLAS kernel computed ``<x, y>``.  For nearly
    parallel but distinct rows outside that window the ~1e-8 sensitivity is the conditioning of the kernel.
    """
    return _fc_kernel(X1, X2, depth, True)


def nngp_kernel(X1, X2=None, *, depth):
    """Exact NNGP kernel ``S_L`` of a depth-``depth`` fully connected ReLU network (docs/math.md §2).

    Same conventions as :func:`ntk_kernel`: ``NNGP(x, y) = |x||y| s_L(cos angle)`` with ``s_h = k1(s_{h-1})``.
    """
    return _fc_kernel(X1, X2, depth, False)


def ntk_cosine_kernel(a, depth):
    """The scalar function ``K_L(a)`` with ``NTK(y, z) = |y||z| K_L(<y,z>/(|y||z|))`` (docs/math.md §2).

    Parameters
    ----------
    a : array_like
        Cosines in [-1, 1].
    depth : int
        L >= 1.
    """
    depth = check_positive_int(depth, "depth")
    arr = _check_cosines(a)
    out = np.empty(arr.size)
    _cosine_kernel_flat(arr.reshape(-1), out, depth, True)
    return out.reshape(arr.shape)


def nngp_cosine_kernel(a, depth):
    """The scalar function ``s_L(a)`` (``s_0 = a``, ``s_h = k1(s_{h-1})``) of the NNGP kernel (docs/math.md §2)."""
    depth = check_positive_int(depth, "depth")
    arr = _check_cosines(a)
    out = np.empty(arr.size)
    _cosine_kernel_flat(arr.reshape(-1), out, depth, False)
    return out.reshape(arr.shape)
