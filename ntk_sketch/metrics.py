"""How well a feature map approximates a kernel (docs/math.md §8).

- Spectral: ``eps_spec = max_i |lambda_i((K + lam I)^-1/2 (F F^T + lam I) (K + lam I)^-1/2) - 1|``, the smallest
  eps with ``(1 - eps)(K + lam I) <= F F^T + lam I <= (1 + eps)(K + lam I)`` (Zandieh et al. 2021, Theorem 2 and
  Theorem 4 state their guarantees in this form).
- Statistical dimension ``s_lam = tr(K (K + lam I)^-1)``, which drives the feature counts of those theorems.
- Entrywise: relative Frobenius error ``|F F^T - K|_F / |K|_F`` and quantiles of the entrywise error.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from ._validation import check_matrix, check_nonnegative_float

__all__ = [
    "spectral_epsilon",
    "statistical_dimension",
    "relative_frobenius_error",
    "entrywise_error_quantiles",
    "lambda_for_statistical_dimension",
]


def _check_gram(K, name="K"):
    K = check_matrix(K, name)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square kernel matrix; got shape {K.shape}.")
    return K


def _check_pair(F, K):
    K = _check_gram(K)
    F = check_matrix(F, "F")
    if F.shape[0] != K.shape[0]:
        raise ValueError(f"F has {F.shape[0]} rows but K is {K.shape[0]} x {K.shape[0]}; they must describe the same points.")
    return F, K


def _feature_gram_minus(F, K):
    """``(F F^T, F F^T - K)``, or a ValueError naming F when either overflows float64 (entries of F above ~1e154)."""
    with np.errstate(over="ignore", invalid="ignore"):
        G = F @ F.T
        D = G - K
    if not (np.all(np.isfinite(G)) and np.all(np.isfinite(D))):
        amax = float(np.abs(F).max(initial=0.0))
        raise ValueError(
            f"F F^T - K overflows float64 (largest |entry| of F is {amax:.3g}); rescale F by some c and K by c^2 "
            "(e.g. divide both by a power of two) so that the entries of F are below ~1e154."
        )
    return G, D


def _frobenius_norm(A):
    """``|A|_F`` without overflow or underflow of the squares (A finite): rescaled by its largest entry if needed."""
    r = np.linalg.norm(A)
    if np.isfinite(r) and (r > 0 or not np.any(A)):
        return r
    m = np.abs(A).max()
    return m * np.linalg.norm(A / m)


def spectral_epsilon(F, K, lam):
    """Spectral approximation error of ``F F^T`` for ``K`` at ridge ``lam`` (docs/math.md §8).

    Computed from the generalised symmetric eigenproblem ``(F F^T + lam I) v = mu (K + lam I) v``, whose
    eigenvalues are those of ``(K + lam I)^-1/2 (F F^T + lam I) (K + lam I)^-1/2``; returns ``max |mu - 1|``.

    Parameters
    ----------
    F : array_like of shape (n, D)
        Feature matrix (one row per point).
    K : array_like of shape (n, n)
        Exact kernel matrix (symmetric positive semi-definite).
    lam : float
        Ridge parameter > 0.
    """
    F, K = _check_pair(F, K)
    lam = check_nonnegative_float(lam, "lam", strictly_positive=True)
    n = K.shape[0]
    G, _ = _feature_gram_minus(F, K)
    with np.errstate(over="ignore"):
        A = G + lam * np.eye(n)
    if not np.all(np.isfinite(A)):
        raise ValueError("F F^T + lam I overflows float64; rescale F (entries below ~1e154) or lower lam.")
    B = 0.5 * (K + K.T) + lam * np.eye(n)
    with np.errstate(over="ignore", invalid="ignore"):
        mu = scipy.linalg.eigh(A, B, eigvals_only=True)
        eps = float(np.max(np.abs(mu - 1.0)))
    if not np.isfinite(eps):
        raise ValueError(f"the spectral error of F F^T for K overflows float64 ({eps}); rescale F by some c and K "
                         "and lam by c^2 so that the entries of F F^T and K are of moderate size.")
    return eps


def statistical_dimension(K, lam):
    """``s_lam = tr(K (K + lam I)^-1) = sum_i lambda_i / (lambda_i + lam)`` (docs/math.md §8)."""
    K = _check_gram(K)
    lam = check_nonnegative_float(lam, "lam", strictly_positive=True)
    ev = np.clip(np.linalg.eigvalsh(0.5 * (K + K.T)), 0.0, None)
    return float(np.sum(ev / (ev + lam)))


def lambda_for_statistical_dimension(K, target):
    """The ``lam`` at which ``s_lam(K)`` equals ``target`` (bisection in log lam; s_lam decreases in lam)."""
    K = _check_gram(K)
    target = check_nonnegative_float(target, "target", strictly_positive=True)
    ev = np.clip(np.linalg.eigvalsh(0.5 * (K + K.T)), 0.0, None)
    rank = int(np.count_nonzero(ev > ev.max() * len(ev) * np.finfo(float).eps))  # numpy.linalg.matrix_rank's cut
    if target >= rank:
        raise ValueError(f"target must be below the numerical rank of K ({rank}); got {target}.")
    lo, hi = np.log(ev.max()) - 60.0, np.log(ev.max()) + 60.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        s = np.sum(ev / (ev + np.exp(mid)))
        lo, hi = (mid, hi) if s > target else (lo, mid)
    return float(np.exp(0.5 * (lo + hi)))


def relative_frobenius_error(F, K):
    """``|F F^T - K|_F / |K|_F`` (docs/math.md §8)."""
    F, K = _check_pair(F, K)
    _, D = _feature_gram_minus(F, K)
    num, den = _frobenius_norm(D), _frobenius_norm(K)
    if den == 0:  # K = 0: the relative error is undefined (numpy's inf or nan, with its warning)
        return float(num / den)
    with np.errstate(over="ignore"):
        r = float(num / den)
    if np.isinf(r):
        raise ValueError(f"|F F^T - K|_F / |K|_F overflows float64 (|K|_F = {den:.3g}); rescale F by some c and K "
                         "by c^2 so that F F^T and K are of moderate size.")
    return r


def entrywise_error_quantiles(F, K, quantiles=(0.5, 0.9, 0.99, 1.0), relative_to_diagonal=True):
    """Quantiles over pairs i < j of the entrywise error ``|(F F^T)_ij - K_ij|``.

    With ``relative_to_diagonal`` the error is divided by ``sqrt(K_ii K_jj)`` (a scale-free error that stays
    meaningful where ``K_ij`` crosses zero, as the depth-1 NTK does).  Where that scale is 0 (a point with
    ``K_ii <= 0``, e.g. a zero row) the relative error is 0 if the entry is exact and ``inf`` otherwise, never a
    silent 0.
    """
    F, K = _check_pair(F, K)
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or np.any((q < 0) | (q > 1)):
        raise ValueError("quantiles must be a 1-d sequence of numbers in [0, 1].")
    iu = np.triu_indices(K.shape[0], k=1)
    _, D = _feature_gram_minus(F, K)
    err = np.abs(D)[iu]
    if relative_to_diagonal:
        d = np.sqrt(np.clip(np.diag(K), 0.0, None))
        scale = np.outer(d, d)[iu]
        # an error on a pair whose kernel scale is 0 is infinitely large relative to it
        err = np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), np.where(err > 0, np.inf, 0.0))
    if err.size == 0:
        raise ValueError(f"K is {K.shape[0]} x {K.shape[0]}: the error over pairs i < j needs at least 2 points.")
    if not np.isinf(err).any():
        return np.quantile(err, q)
    # numpy's linear interpolation gives NaN next to inf (inf - inf); interpolate by hand, inf where it touches inf
    s = np.sort(err)
    h = (s.size - 1) * q
    lo = np.floor(h).astype(np.int64)
    hi = np.ceil(h).astype(np.int64)
    with np.errstate(invalid="ignore"):
        res = s[lo] + (s[hi] - s[lo]) * (h - lo)
    res[np.isinf(s[hi])] = np.inf
    return res
