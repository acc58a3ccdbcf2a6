"""Nystrom features for the NTK (or any kernel): the data-dependent baseline of the paper's comparisons.

With landmarks ``Z`` (m rows of the training data), the Nystrom feature map is

    phi(x) = K(x, Z) K(Z, Z)^{+1/2}                       (m features)

where ``K(Z, Z)^{+1/2}`` is the pseudo-inverse square root: eigenvalues below ``eig_cutoff * max eigenvalue`` are
dropped (they would amplify rounding errors), so ``phi(X) phi(X)^T = K(X, Z) K(Z, Z)^+ K(Z, X)``, the Nystrom
approximation of ``K(X, X)`` (Williams & Seeger 2001).  With every training point a landmark it equals ``K``
exactly (up to the cut-off), so ridge regression on these features reproduces exact kernel ridge regression.

Landmarks
---------
'uniform'
    m training rows drawn uniformly without replacement.
'rls'
    m rows drawn without replacement with probability proportional to approximate lam-ridge leverage scores
    ``tau_i = (K (K + lam I)^{-1})_ii``, estimated as in Musco & Musco, *Recursive Sampling for the Nystrom
    Method*, NeurIPS 2017 (their estimator, eq. (4)/Alg. 2, with one level of recursion; cf. Alaoui & Mahoney,
    *Fast Randomized Kernel Ridge Regression with Statistical Guarantees*, NeurIPS 2015): draw a uniform
    subsample ``S`` of ``s = min(n, ceil(rls_oversample * m))`` rows, each kept with probability ``p = s / n``;
    then, for every row,

        tau_i ~= (1/lam) (k(x_i, x_i) - K(x_i, S) (K(S, S) + p lam I)^{-1} K(S, x_i))

    which is the weighted-sampling Nystrom estimate of ``(1/lam)(K - K S (S^T K S + lam I)^{-1} S^T K)_ii``
    with weights ``1/sqrt(p)``.  The default ``lam = trace(K) / m`` makes the statistical dimension
    ``sum_i tau_i <= trace(K) / lam = m``, i.e. ``m`` landmarks suffice for it.  Cost: ``n s`` kernel
    evaluations and an ``s x s`` Cholesky factorisation.  The Nystrom map itself is unchanged by sampling
    weights (they cancel in ``K(x, Z) K(Z, Z)^+ K(Z, y)``), so none are applied.

The default kernel is the exact fully connected NTK of depth ``depth`` (``ntk_kernel``, docs/math.md §2), whose
diagonal is ``(depth + 1) |x|^2``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.linalg

from .._base import BaseEstimator, TransformerMixin, check_is_fitted
from .._validation import (
    check_matrix,
    check_n_features,
    check_nonnegative_float,
    check_positive_int,
    check_random_state,
    reject_sparse,
)

__all__ = ["NystromFeatures", "approximate_ridge_leverage_scores"]


def _default_kernel(depth):
    from ..kernels.ntk_exact import ntk_kernel

    return functools.partial(ntk_kernel, depth=depth)


def _check_rows_any(X, name, two_d, allow_empty=False):
    """Rows of any shape for a user kernel (e.g. images for the CNTK); 2-d float matrix for the default NTK."""
    if two_d:
        return check_matrix(X, name, allow_empty_rows=allow_empty)
    reject_sparse(X, name)
    arr = np.asarray(X)
    if arr.ndim < 2 or (arr.shape[0] == 0 and not allow_empty):
        raise ValueError(f"{name} must be an array of rows (n, ...) with n >= 1; got shape {arr.shape}.")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} has non-numeric dtype {arr.dtype}; pass a float array.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; remove or impute those entries first.")
    return arr


def _kernel_block(kernel, A, B, what):
    K = np.asarray(kernel(A, B), dtype=np.float64)
    if K.shape != (A.shape[0], B.shape[0]):
        raise ValueError(f"kernel returned shape {K.shape} for {what}; expected {(A.shape[0], B.shape[0])}.")
    if not np.all(np.isfinite(K)):
        raise ValueError(f"kernel returned NaN or inf for {what}.")
    return K


def _kernel_diagonal(kernel, kernel_diag, X):
    if kernel_diag is not None:
        d = np.asarray(kernel_diag(X), dtype=np.float64).ravel()
        if d.shape != (X.shape[0],):
            raise ValueError(f"kernel_diag returned shape {d.shape}; expected ({X.shape[0]},).")
        return d
    # Generic kernel: k(x_i, x_i) one row at a time (n small calls; pass kernel_diag to avoid them).
    return np.array([_kernel_block(kernel, X[i:i + 1], X[i:i + 1], "the diagonal")[0, 0] for i in range(X.shape[0])])


def approximate_ridge_leverage_scores(X, kernel, lam, sample_size, *, seed=0, kernel_diag=None, chunk_size=2048):
    """Approximate ``lam``-ridge leverage scores of all rows of ``X`` from a uniform subsample (module docstring).

    Parameters
    ----------
    X : array of rows (n, ...)
    kernel : callable ``kernel(X1, X2) -> (n1, n2)``
    lam : float > 0
        Ridge parameter of the leverage scores, on the scale of ``K`` (n x n).
    sample_size : int
        Size ``s`` of the uniform subsample (``s = n`` gives the exact scores).
    seed : None, int or Generator
    kernel_diag : callable or None
        ``kernel_diag(X) -> (n,)`` diagonal of the kernel; computed row by row if None.
    chunk_size : int
        Rows per kernel block (bounds memory to ``chunk_size * sample_size``).

    Returns
    -------
    tau : (n,) float64, each in [0, 1]
    """
    lam = check_nonnegative_float(lam, "lam", strictly_positive=True)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    n = X.shape[0]
    s = min(check_positive_int(sample_size, "sample_size"), n)
    rng = check_random_state(seed)
    S = np.sort(rng.choice(n, size=s, replace=False))
    p = s / n
    Xs = X[S]
    Kss = _kernel_block(kernel, Xs, Xs, "K(S, S)")
    Kss = 0.5 * (Kss + Kss.T)
    chol = scipy.linalg.cho_factor(Kss + p * lam * np.eye(s), lower=True)
    diag = _kernel_diagonal(kernel, kernel_diag, X)
    tau = np.empty(n)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        Ksx = _kernel_block(kernel, Xs, X[start:stop], "K(S, X)")
        # k_iS (K_SS + p lam I)^{-1} k_Si, one column at a time, through the Cholesky factor.
        quad = np.einsum("ij,ij->j", Ksx, scipy.linalg.cho_solve(chol, Ksx))
        tau[start:stop] = (diag[start:stop] - quad) / lam
    return np.clip(tau, 0.0, 1.0)


class NystromFeatures(TransformerMixin, BaseEstimator):
    """Nystrom feature map ``phi(x) = K(x, Z) K(Z, Z)^{+1/2}`` with uniform or ridge-leverage landmarks.

    Parameters
    ----------
    n_components : int
        Number of landmarks m (= feature dimension).  Capped at the number of training rows.
    kernel : callable or None
        ``kernel(X1, X2) -> (n1, n2)``; None means the exact FC NTK of depth ``depth`` (``ntk_kernel``).
    depth : int
        Depth of the default NTK kernel (ignored when ``kernel`` is given).
    landmarks : {'uniform', 'rls'}
        Landmark sampling (module docstring).
    rls_lambda : float or None
        Ridge parameter of the leverage scores; None means ``trace(K) / n_components``.
    rls_oversample : float >= 1
        Uniform subsample size ``ceil(rls_oversample * n_components)`` used to estimate the scores.
    eig_cutoff : float
        Relative eigenvalue cut-off of the pseudo-inverse square root of ``K(Z, Z)``, in [0, 1).
    kernel_diag : callable or None
        ``kernel_diag(X) -> (n,)`` for 'rls' with a custom kernel (else computed row by row); for the default NTK
        it is ``(depth + 1) |x|^2``.
    chunk_size : int
        Rows per kernel block in ``transform`` (bounds memory to ``chunk_size * m``).
    seed : None, int or Generator

    Attributes
    ----------
    landmark_indices_ : (m,) int, rows of the training data used as landmarks
    landmarks_ : (m, ...) the landmark rows
    components_ : (m, m) the pseudo-inverse square root ``K(Z, Z)^{+1/2}``
    rank_ : number of eigenvalues of ``K(Z, Z)`` kept
    n_components_ : m
    leverage_scores_ : (n,) the approximate ridge leverage scores ('rls' only)
    rls_lambda_ : the ridge parameter they were computed at ('rls' only)
    """

    def __init__(self, n_components=256, *, kernel=None, depth=1, landmarks="uniform", rls_lambda=None,
                 rls_oversample=2.0, eig_cutoff=1e-10, kernel_diag=None, chunk_size=2048, seed=0):
        self.n_components = n_components
        self.kernel = kernel
        self.depth = depth
        self.landmarks = landmarks
        self.rls_lambda = rls_lambda
        self.rls_oversample = rls_oversample
        self.eig_cutoff = eig_cutoff
        self.kernel_diag = kernel_diag
        self.chunk_size = chunk_size
        self.seed = seed

    def _resolve_kernel(self):
        if self.kernel is None:
            depth = check_positive_int(self.depth, "depth")
            d = depth + 1

            def diag(X):
                return d * np.einsum("ij,ij->i", X, X)

            return _default_kernel(depth), diag, True
        if not callable(self.kernel):
            raise ValueError("kernel must be None (the NTK) or a callable kernel(X1, X2) -> (n1, n2) array.")
        return self.kernel, self.kernel_diag, False

    def fit(self, X, y=None):
        """Choose the landmarks among the rows of ``X`` and compute ``K(Z, Z)^{+1/2}``."""
        m = check_positive_int(self.n_components, "n_components")
        chunk = check_positive_int(self.chunk_size, "chunk_size")
        cutoff = check_nonnegative_float(self.eig_cutoff, "eig_cutoff")
        if cutoff >= 1.0:
            raise ValueError(
                f"eig_cutoff is relative to the largest eigenvalue of K(Z, Z) and must be < 1 (e.g. 1e-10); got "
                f"{self.eig_cutoff}, which would keep no eigenvalue and give all-zero features."
            )
        if self.landmarks not in ("uniform", "rls"):
            raise ValueError(f"landmarks must be 'uniform' or 'rls'; got {self.landmarks!r}.")
        kernel, kernel_diag, two_d = self._resolve_kernel()
        X = _check_rows_any(X, "X", two_d)
        n = X.shape[0]
        m = min(m, n)
        rng = check_random_state(self.seed)
        if self.landmarks == "uniform":
            idx = rng.choice(n, size=m, replace=False)
        else:
            over = check_nonnegative_float(self.rls_oversample, "rls_oversample")
            if over < 1.0:
                raise ValueError(f"rls_oversample must be >= 1; got {self.rls_oversample}.")
            diag = _kernel_diagonal(kernel, kernel_diag, X)    # once, reused by the leverage estimate

            def known_diag(rows):
                return diag

            if self.rls_lambda is None:
                lam = float(np.sum(diag)) / m
                if lam <= 0:
                    raise ValueError("the kernel diagonal sums to 0 (all-zero data?); pass rls_lambda explicitly.")
            else:
                lam = check_nonnegative_float(self.rls_lambda, "rls_lambda", strictly_positive=True)
            s = min(n, int(math.ceil(over * m)))
            tau = approximate_ridge_leverage_scores(X, kernel, lam, s, seed=rng, kernel_diag=known_diag,
                                                    chunk_size=chunk)
            self.leverage_scores_ = tau
            self.rls_lambda_ = lam
            # A small floor keeps every row drawable, so m distinct rows always exist.
            prob = np.maximum(tau, 1e-12 * max(float(tau.max()), 1e-300))
            idx = rng.choice(n, size=m, replace=False, p=prob / prob.sum())
        self.landmark_indices_ = np.asarray(idx, dtype=np.int64)
        self.landmarks_ = X[self.landmark_indices_]
        Kmm = _kernel_block(kernel, self.landmarks_, self.landmarks_, "K(Z, Z)")
        Kmm = 0.5 * (Kmm + Kmm.T)
        s_eig, U = scipy.linalg.eigh(Kmm)
        top = float(s_eig[-1]) if s_eig.size else 0.0
        if top <= 0:
            raise ValueError("K(Z, Z) has no positive eigenvalue (all-zero landmarks?); Nystrom features are undefined.")
        keep = s_eig > cutoff * top
        Uk = U[:, keep]
        self.components_ = (Uk / np.sqrt(s_eig[keep])) @ Uk.T
        self.rank_ = int(keep.sum())
        self.n_components_ = m
        self._kernel = kernel
        self._two_d = two_d
        self.n_features_in_ = int(np.prod(X.shape[1:]))   # columns of X; values per row for n-d rows
        return self

    def transform(self, X):
        """Features ``K(X, Z) K(Z, Z)^{+1/2}``, shape (n, m), float64, computed ``chunk_size`` rows at a time."""
        check_is_fitted(self, "components_")
        X = _check_rows_any(X, "X", self._two_d, allow_empty=True)
        if X.ndim == 2 and self.landmarks_.ndim == 2:
            check_n_features(X, self.landmarks_.shape[1], "X", owner=self)
        if X.shape[1:] != self.landmarks_.shape[1:]:
            raise ValueError(f"X rows have shape {X.shape[1:]} but the fitted rows had {self.landmarks_.shape[1:]}.")
        out = np.empty((X.shape[0], self.n_components_))
        b = self.chunk_size
        for start in range(0, X.shape[0], b):
            Kxz = _kernel_block(self._kernel, X[start:start + b], self.landmarks_, "K(X, Z)")
            out[start:start + b] = Kxz @ self.components_
        return out

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
