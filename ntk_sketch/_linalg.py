"""The two dense linear-algebra steps of the ridge learners, done in blocks that the bundled OpenBLAS survives.

OpenBLAS 0.3.30 / 0.3.31, the builds that the numpy and scipy wheels ship, die with a segmentation fault in their
threaded symmetric rank-k update (``dsyrk``) on some x86 cores once the output is about 16,000 wide: on the
2-core Sapphire Rapids machines of our benchmarks, with the SkylakeX kernels OpenBLAS picks there and 2 threads,
numpy's ``A.T @ A`` (which numpy hands to ``dsyrk``) crashes for A of shape (1024, 16000) or (256, 20000) and
completes for (2048, 12288) or (4096, 10000); ``scipy.linalg.solve(G, B, assume_a='pos')`` crashes at
G of 16384 x 16384 (its Cholesky factorisation updates the trailing matrix with the same routine) and completes at
12288.  A ridge fit with D = 16384 features meets both.  With one thread, or with ``OPENBLAS_CORETYPE=Haswell``,
the same calls complete; neither can be set from inside a library once numpy is imported.

So the ridge code never hands OpenBLAS a symmetric update wider than ``BLOCK`` (4096) columns:

* ``gram(F)`` forms ``F^T F`` from column blocks: ``dsyrk`` on the diagonal blocks (at most ``BLOCK`` wide) and
  general products (``dgemm``, which has no such failure at these sizes) off the diagonal, mirrored; rows are
  converted to float64 ``row_block`` at a time, so a float32 F is never copied whole.
* ``solve_spd(A, B)`` solves ``A X = B`` for a symmetric positive definite A by a right-looking blocked Cholesky
  factorisation: each diagonal block is factorised by LAPACK (at most ``BLOCK`` wide), the panel below it by a
  triangular solve, and the trailing matrix is updated by a general product against a copy (a transposed view of
  the same buffer would be sent to ``dsyrk`` again).

Below ``BLOCK`` both are the plain library calls.  The blocked forms cost at most 2x the flops of the plain ones
in the updates (the general products fill both triangles), which is small next to the eigendecomposition that the
lam selection runs on the same matrix.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["BLOCK", "gram", "solve_spd"]

BLOCK = 4096


def gram(F, out=None, block=BLOCK, row_block=BLOCK):
    """``F^T F`` in float64, added into ``out`` when given (which is returned), in blocks (module docstring).

    Parameters
    ----------
    F : ndarray (n, D)
        Any real dtype; rows are converted to float64 ``row_block`` at a time.
    out : ndarray (D, D) float64 or None
        Accumulator; a new zero matrix when None.
    block, row_block : int
        Widest symmetric update handed to BLAS, and rows converted at a time.
    """
    F = np.asarray(F)
    n, d = F.shape
    if out is None:
        out = np.zeros((d, d))
    for r0 in range(0, n, row_block):
        Fr = np.asarray(F[r0:r0 + row_block], dtype=np.float64)
        if d <= block:
            out += Fr.T @ Fr
            continue
        for i0 in range(0, d, block):
            i1 = min(i0 + block, d)
            Fi = Fr[:, i0:i1]
            out[i0:i1, i0:i1] += Fi.T @ Fi
            if i1 < d:
                C = Fi.T @ Fr[:, i1:]
                out[i0:i1, i1:] += C
                out[i1:, i0:i1] += C.T
    return out


def solve_spd(A, B, block=BLOCK):
    """``X`` with ``A X = B`` for symmetric positive definite ``A`` (float64), by a blocked Cholesky factorisation.

    Raises ``numpy.linalg.LinAlgError`` when A is not numerically positive definite, as
    ``scipy.linalg.solve(A, B, assume_a='pos')`` does (which is what it calls when A is at most ``block`` wide).
    A is not modified.
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    if n <= block:
        return scipy.linalg.solve(A, B, assume_a="pos")
    L = np.array(A, order="C")          # its lower triangle becomes the factor, block column by block column
    for k0 in range(0, n, block):
        k1 = min(k0 + block, n)
        L11 = scipy.linalg.cholesky(L[k0:k1, k0:k1], lower=True)
        L[k0:k1, k0:k1] = L11
        if k1 < n:
            # L21 = A21 L11^{-T}: a triangular solve with the panel's rows as right-hand sides
            L21 = scipy.linalg.solve_triangular(L11, L[k1:, k0:k1].T, lower=True).T
            L[k1:, k0:k1] = L21
            L[k1:, k1:] -= L21 @ np.array(L21.T, order="C")
    # the triangular solves read the lower triangle only; the upper one still holds A's entries
    Y = scipy.linalg.solve_triangular(L, B, lower=True)
    return scipy.linalg.solve_triangular(L, Y, lower=True, trans="T")
