"""Feature ridge with ``lam`` chosen on a validation split, holding ONE D x D matrix in memory.

``fit_stream_lean(estimator, chunks)`` fits a ``RidgeClassifier`` or ``RidgeRegressor`` to a stream of feature
chunks with the same split, grid, selection rule and final solve as ``estimator.fit_stream(chunks)``
(``ridge.py``'s module docstring, eq. (1)), up to float rounding, for feature dimensions D at which two or three
D x D float64 matrices do not fit in memory (D = 32768: 8.6 GB each).

Memory
------
``fit_stream`` keeps the training part's and the validation part's ``F^T F`` and then eigendecomposes the first
(eigenvectors and workspace: two more D x D matrices).  Here one D x D float64 array ``A`` does all of it:

* its strict lower triangle holds the training part's (centred) ``F^T F`` from the first pass to the end, and its
  diagonal is kept in a vector;
* its upper triangle (diagonal included) is the work space: for each ``lam`` of the grid it is refilled from the
  lower triangle, ``lam * n_part / n`` is put on the diagonal, and it is factorised in place (``U^T U``, a blocked
  Cholesky factorisation that never writes below the diagonal), giving that ``lam``'s model by two triangular
  solves;
* after the selection the upper triangle accumulates the validation rows' ``F^T F``, the lower one is added to it,
  and the system of all rows (1) is factorised there.

Besides ``A``: the grid's models (D x k per ``lam``), vectors of length D and one chunk of rows.  Every product is
formed in blocks of at most ``_linalg.BLOCK`` columns (``_linalg.py`` explains the OpenBLAS failures this avoids).

Time and passes
---------------
One Cholesky factorisation (D^3 / 3 flops) per ``lam`` evaluated, instead of one eigendecomposition for the whole
grid.  ``lambda_search='coarse_to_fine'`` evaluates every third point of the grid and then the neighbours of the
best point until both of its neighbours are evaluated (usually 11 or 12 of the 25 default points): the same choice
as the full grid when the validation score has a single peak along the grid.  The stream is read three times or
more (``chunks`` is a callable that returns it afresh): the accumulation, one scoring pass over the validation rows
per stage of the search, and the validation rows' ``F^T F``; feature chunks read from disk make the passes cheap.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from numba import njit
from scipy.linalg import lapack

from .._linalg import BLOCK
from .._validation import check_bool, check_random_state
from ._checks import (
    _best_index,
    _check_fraction,
    _check_labels,
    _check_lambdas,
    _check_regression_targets,
    _check_rows,
    _r2_pooled,
    _rounding_error,
    default_relative_lambdas,
)
from .ridge import _FeatureRidge, _require_finite
from .ridge_moments import RidgeMoments

__all__ = ["fit_stream_lean"]

LAMBDA_SEARCHES = ("grid", "coarse_to_fine")


class _Sums(RidgeMoments):
    """``RidgeMoments`` without ``F^T F`` (which lives in ``A``): row count, column sums and target moments."""

    _keep_gram = False


# ------------------------------------------------------------------------------------------ triangle kernels
@njit(cache=True)
def _add_lower_to_upper(A):
    """``A[i, j] += A[j, i]`` for ``i < j``."""
    n = A.shape[0]
    b = 64
    for i0 in range(0, n, b):
        for j0 in range(i0, n, b):
            for i in range(i0, min(i0 + b, n)):
                for j in range(max(j0, i + 1), min(j0 + b, n)):
                    A[i, j] += A[j, i]


@njit(cache=True)
def _zero_upper(A):
    """``A[i, j] = 0`` for ``i <= j``."""
    n = A.shape[0]
    for i in range(n):
        for j in range(i, n):
            A[i, j] = 0.0


@njit(cache=True)
def _add_rank1_upper(A, c, u):
    """``A[i, j] += c u[i] u[j]`` for ``i <= j``."""
    n = A.shape[0]
    for i in range(n):
        cu = c * u[i]
        for j in range(i, n):
            A[i, j] += cu * u[j]


@njit(cache=True)
def _add_rank1_lower(A, c, u):
    """``A[i, j] += c u[i] u[j]`` for ``i >= j``."""
    n = A.shape[0]
    for i in range(n):
        cu = c * u[i]
        for j in range(i + 1):
            A[i, j] += cu * u[j]


def _mirror_lower_to_upper(A, diag):
    """``A[i, j] = A[j, i]`` for ``i < j`` and ``A[i, i] = diag[i]``: the upper triangle refilled from the lower."""
    _zero_upper(A)
    _add_lower_to_upper(A)
    A[np.diag_indices(A.shape[0])] = diag


# -------------------------------------------------------------------------------------------- blocked algebra
def _add_gram_triangle(A, F, upper, block=None):
    """Add ``F^T F`` (float64) to the upper or lower triangle of ``A``, diagonal included; the other triangle's
    strict part is not touched.  Rows are converted ``block`` at a time, products are at most ``block`` wide."""
    block = BLOCK if block is None else block   # read at call time: tests shrink it to reach the blocked paths
    d = A.shape[0]
    for r0 in range(0, F.shape[0], block):
        Fr = np.asarray(F[r0:r0 + block], dtype=np.float64)
        for i0 in range(0, d, block):
            i1 = min(i0 + block, d)
            Fi = Fr[:, i0:i1]
            P = Fi.T @ Fi
            A[i0:i1, i0:i1] += np.triu(P) if upper else np.tril(P)
            if i1 < d:
                if upper:
                    A[i0:i1, i1:] += Fi.T @ Fr[:, i1:]
                else:
                    A[i1:, i0:i1] += Fr[:, i1:].T @ Fi


def _cholesky_upper_inplace(A, block=None):
    """Factorise the symmetric matrix held in the upper triangle of ``A`` (diagonal included) as ``U^T U``, writing
    ``U`` over it; the strict lower triangle is never written.  Right-looking blocked algorithm: LAPACK on each
    diagonal block, a triangular solve for the panel to its right, and the trailing upper triangle updated by
    general products.  Raises ``numpy.linalg.LinAlgError`` when the matrix is not numerically positive definite."""
    block = BLOCK if block is None else block
    n = A.shape[0]
    for k0 in range(0, n, block):
        k1 = min(k0 + block, n)
        # clean=0: the strict lower part of the returned block is the input's, so writing it back changes nothing
        U11, info = lapack.dpotrf(A[k0:k1, k0:k1], lower=0, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"the leading minor of order {k0 + info} is not positive definite")
        A[k0:k1, k0:k1] = U11
        if k1 == n:
            break
        U12 = scipy.linalg.solve_triangular(U11, A[k0:k1, k1:], trans="T", lower=False, check_finite=False)
        A[k0:k1, k1:] = U12
        for i0 in range(k1, n, block):
            i1 = min(i0 + block, n)
            Ui = U12[:, i0 - k1:i1 - k1]
            A[i0:i1, i0:i1] -= np.triu(Ui.T @ Ui)
            if i1 < n:
                A[i0:i1, i1:] -= Ui.T @ U12[:, i1 - k1:]


def _solve_upper(A, B):
    """``X`` with ``U^T U X = B``, ``U`` the upper triangle of ``A`` (LAPACK reads nothing below the diagonal)."""
    Y = scipy.linalg.solve_triangular(A, B, trans="T", lower=False, check_finite=False)
    return scipy.linalg.solve_triangular(A, Y, lower=False, check_finite=False)


def _factor_and_solve(A, B, lam, G_abs_max):
    try:
        _cholesky_upper_inplace(A)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            f"X^T X + lam I could not be factorised in float64 ({exc}): lam = {lam:.3g} is below the rounding level "
            f"of X^T X (largest |entry| {G_abs_max:.3g}); rescale X, or pass larger lambdas (lambdas=None scales "
            "the grid to trace(X^T X))."
        ) from exc
    return _solve_upper(A, B)


# ------------------------------------------------------------------------------------------------- the fit
def _pairs(stream, what="the stream"):
    for item in stream:
        try:
            Fc, yc = item
        except (TypeError, ValueError) as exc:
            raise ValueError(f"each element of {what} must be a pair (F_chunk, y_chunk).") from exc
        yield Fc, yc


def _validation_chunks(chunks, masks, n_features):
    """The validation rows of a fresh pass over the stream, as float64, by the masks of the first pass."""
    n_chunks = 0
    for idx, (Fc, yc) in enumerate(_pairs(chunks())):
        Fc = _check_rows(Fc, "F_chunk", allow_empty_rows=True)
        if idx >= len(masks) or masks[idx].size != Fc.shape[0] or Fc.shape[1] != n_features:
            raise ValueError("a later pass of the stream differs from the first; chunks() must return the same "
                             "chunks, in the same order, every time.")
        n_chunks += 1
        mask = masks[idx]
        if mask.any():
            yield np.asarray(Fc[mask], dtype=np.float64), np.asarray(yc)[mask]
    if n_chunks != len(masks):
        raise ValueError("a later pass of the stream differs from the first; chunks() must return the same chunks, "
                         "in the same order, every time.")


def _search_order(n_points, lambda_search):
    """Indices of the first stage of the search."""
    if lambda_search == "grid":
        return list(range(n_points))
    first = list(range(0, n_points, 3))
    if first[-1] != n_points - 1:
        first.append(n_points - 1)
    return first


def fit_stream_lean(estimator, chunks, *, lambda_search="grid"):
    """Fit ``estimator`` (a ``RidgeClassifier`` or ``RidgeRegressor``) to a feature stream with one D x D matrix.

    The model of ``estimator.fit_stream(chunks)`` (``ridge.py``, eq. (1); the same seeded validation split, lam
    grid, selection rule and fitted attributes) in about half its memory (module docstring); for D at which
    ``fit_stream`` does not fit.

    Parameters
    ----------
    estimator : RidgeClassifier or RidgeRegressor
        Configured as for ``fit`` (``lambdas``, ``validation_fraction``, ``fit_intercept``, ``seed``,
        ``selection``); fitted in place and returned.
    chunks : callable
        A zero-argument callable returning a fresh iterable of ``(F_chunk, y_chunk)`` pairs, the same chunks in
        the same order every time (e.g. ``feature_chunks``, or row blocks read from a file): it is read at least
        three times.
    lambda_search : {'grid', 'coarse_to_fine'}
        'grid': every lam of the grid (one Cholesky factorisation each).  'coarse_to_fine': every third point and
        then the neighbours of the best point until both of its neighbours are evaluated; ``lambdas_`` then
        lists the lams evaluated.

    Returns
    -------
    estimator
    """
    if not isinstance(estimator, _FeatureRidge):
        raise TypeError(f"estimator must be a RidgeClassifier or RidgeRegressor; got {type(estimator).__name__}.")
    if not callable(chunks):
        raise TypeError("chunks must be a zero-argument callable returning a fresh iterable of (F_chunk, y_chunk) "
                        f"pairs (the stream is read several times); got {type(chunks).__name__}.")
    if lambda_search not in LAMBDA_SEARCHES:
        raise ValueError(f"lambda_search must be one of {LAMBDA_SEARCHES}; got {lambda_search!r}.")
    classification = estimator._classification
    fit_intercept = check_bool(estimator.fit_intercept, "fit_intercept")
    lambdas_abs, fixed = _check_lambdas(estimator.lambdas)
    fraction = None if fixed else _check_fraction(estimator.validation_fraction)
    selection = getattr(estimator, "selection", None)
    if classification and selection not in ("auto", "accuracy", "squared_error"):
        raise ValueError(f"selection must be 'auto', 'accuracy' or 'squared_error'; got {selection!r}.")
    rng = check_random_state(estimator.seed)

    # ---- pass 1: the training rows' F^T F into the lower triangle of A; sums and target moments of both parts
    tr, va = _Sums(classification), _Sums(classification)
    A = None
    diag_v = None
    masks = []
    for Fc, yc in _pairs(chunks()):
        F = _check_rows(Fc, "F_chunk", allow_empty_rows=True)
        # a regressor's targets are checked by RidgeMoments.add, which keeps 1-d targets 1-d
        y = _check_labels(yc, F.shape[0]) if classification else np.asarray(yc)
        if A is None:
            d = F.shape[1]
            A = np.zeros((d, d))
            diag_v = np.zeros(d)
        elif F.shape[1] != A.shape[0]:
            raise ValueError(f"F_chunk has {F.shape[1]} features but earlier chunks had {A.shape[0]}; they must "
                             "match.")
        # the split of fit_stream: one Bernoulli draw per row, in stream order
        val = np.zeros(F.shape[0], dtype=bool) if fixed else rng.random(F.shape[0]) < fraction
        masks.append(val)
        tr.add(F[~val], y[~val])
        va.add(F[val], y[val])
        _add_gram_triangle(A, F[~val], upper=False)
        Fv = np.asarray(F[val], dtype=np.float64)
        diag_v += np.einsum("ij,ij->j", Fv, Fv)
    if A is None or tr.n_rows + va.n_rows == 0:
        raise ValueError("no data: the stream holds no rows.")
    d = A.shape[0]
    n_t, n_v = tr.n_rows, va.n_rows
    n = n_t + n_v
    if not fixed and (n_t == 0 or n_v == 0):
        raise ValueError(
            f"the validation split of n_samples={n} rows left {n_t} training and {n_v} validation rows; use more "
            "data or a validation_fraction further from 0 and 1, or pass a single lambda to skip the selection."
        )

    # ---- targets and centring
    if classification:
        classes = np.union1d(tr.classes(), va.classes()) if va.n_rows else tr.classes()
        if classes.size < 2:
            raise ValueError(f"the training labels contain a single class ({classes.tolist()}); a classifier needs "
                             "at least 2 classes, got 1 class.")
        estimator.classes_ = classes
        k = classes.size
    else:
        classes = None
        k = tr.cross.shape[1] if tr.cross is not None else va.cross.shape[1]
        estimator._stream_1d = bool(tr.targets_1d if tr.cross is not None else va.targets_1d)
        estimator._stream_k = k
    B_t, sum_yt, _ = tr.targets(classes, k)
    B_v, sum_yv, sq_yv = va.targets(classes, k) if n_v else (np.zeros((d, k)), np.zeros(k), np.zeros(k))
    diag_t = A.diagonal().copy()
    # Cauchy-Schwarz: |(F^T F)_ij| <= sqrt(d_i d_j), so finite diagonals mean a finite matrix
    _require_finite(diag_t, diag_v, B_t, B_v)
    col_t = tr.col_sum if n_t else np.zeros(d)
    col_v = va.col_sum if n_v else np.zeros(d)
    mu = (col_t + col_v) / n if fit_intercept else np.zeros(d)
    mu_y = (sum_yt + sum_yv) / n if fit_intercept else np.zeros(k)
    trace = float(diag_t.sum() + diag_v.sum() - n * (mu @ mu))
    if lambdas_abs is None:
        lambdas = (trace if trace > 0 else 1.0) * default_relative_lambdas()
    else:
        lambdas = lambdas_abs
    G_abs_max = float(diag_t.max(initial=0.0) + diag_v.max(initial=0.0))   # bounds every |entry| (Cauchy-Schwarz)

    estimator.n_features_in_ = d
    estimator.n_train_ = n_t
    estimator.n_validation_ = n_v
    if fixed:
        estimator.lambdas_ = lambdas
        estimator.best_lambda_ = float(lambdas[0])
        estimator.validation_scores_ = None
        estimator.selection_ = None
    else:
        _select(estimator, A, diag_t, B_t, sum_yt, col_t, n_t, n, lambdas, lambda_search, chunks, masks,
                classes, k, sq_yv, sum_yv, n_v, fit_intercept, selection, G_abs_max)
    # ---- the system of all rows in the upper triangle: G_v (no rows when lam is fixed) + G_t, centred by the mean
    # of all rows, + lam I
    _zero_upper(A)
    if not fixed:
        for Fv, _ in _validation_chunks(chunks, masks, d):
            _add_gram_triangle(A, Fv, upper=True)
    _add_lower_to_upper(A)
    A[np.diag_indices(d)] += diag_t
    if fit_intercept:
        _add_rank1_upper(A, -float(n), mu)
    A[np.diag_indices(d)] += estimator.best_lambda_
    B = B_t + B_v - n * np.outer(mu, mu_y)
    W = _factor_and_solve(A, B, estimator.best_lambda_, G_abs_max)
    b = mu_y - mu @ W
    _require_finite(W, b, what="the ridge solution for X")
    estimator._set_weights(W, b)
    estimator._started = False
    return estimator


def _select(est, A, diag_t, B_t, sum_yt, col_t, n_t, n, lambdas, lambda_search, chunks, masks, classes, k, sq_yv,
            sum_yv, n_v, fit_intercept, selection, G_abs_max):
    """Choose ``lam`` (fitted attributes as ``fit_stream``'s); the lower triangle of A is left as it was."""
    if fit_intercept:
        mu_t = col_t / n_t
        mu_yt = sum_yt / n_t
        _add_rank1_lower(A, -float(n_t), mu_t)   # centred by the training part's mean, as fit_stream does
        diag_tc = A.diagonal().copy()
        B_tc = B_t - n_t * np.outer(mu_t, mu_yt)
    else:
        mu_t, mu_yt, diag_tc, B_tc = np.zeros(A.shape[0]), np.zeros(k), diag_t, B_t
    lam_part = lambdas * (n_t / n)
    rounding = _rounding_error(diag_tc.sum(), lam_part)
    use_acc = classification = classes is not None
    if classification and selection == "squared_error":
        use_acc = False
    scores = np.full(lambdas.size, np.nan)
    sse = np.full(lambdas.size, np.nan)
    todo = _search_order(lambdas.size, lambda_search)
    while todo:
        models = []
        for i in todo:
            _mirror_lower_to_upper(A, diag_tc + lam_part[i])
            W = _factor_and_solve(A, B_tc, float(lam_part[i]), G_abs_max)
            models.append((W, mu_yt - mu_t @ W))
        s_i, e_i = _score_validation(models, chunks, masks, A.shape[0], classes, k)
        for j, i in enumerate(todo):
            sse[i] = e_i[j]
            if use_acc:
                scores[i] = s_i[j] / n_v
            elif classification:
                scores[i] = -e_i[j] / n_v
            else:
                scores[i] = _r2_pooled(e_i[j], sq_yv, sum_yv, n_v)
        done = np.flatnonzero(~np.isnan(sse))
        best = int(done[_best_index(scores[done] if use_acc else None, sse[done], lambdas[done], rounding[done])])
        todo = [i for i in (best - 1, best + 1) if 0 <= i < lambdas.size and np.isnan(sse[i])]
    if fit_intercept:
        _add_rank1_lower(A, float(n_t), mu_t)    # back to the raw training F^T F
    done = np.flatnonzero(~np.isnan(sse))
    est.lambdas_ = lambdas[done]
    est.validation_scores_ = scores[done]
    est.validation_squared_errors_ = sse[done] / n_v
    est.best_lambda_ = float(lambdas[best])
    est.selection_ = ("accuracy" if use_acc else "squared_error") if classification else "r2"


def _score_validation(models, chunks, masks, d, classes, k):
    """(correct counts, sums of squared errors) of each model ``(W, b)`` on the validation rows (one pass)."""
    W = np.concatenate([m[0] for m in models], axis=1)
    b = np.concatenate([m[1] for m in models])
    correct = np.zeros(len(models))
    sse = np.zeros(len(models))
    for Fv, yv in _validation_chunks(chunks, masks, d):
        out = Fv @ W + b
        if classes is not None:
            truth = _check_labels(yv, Fv.shape[0])
            Y = (truth[:, None] == classes[None, :]) - 1.0 / classes.size
        else:
            Y = _check_regression_targets(yv, Fv.shape[0])[0]
        for j in range(len(models)):
            o = out[:, j * k:(j + 1) * k]
            if classes is not None:
                correct[j] += np.count_nonzero(classes[np.argmax(o, axis=1)] == truth)
            sse[j] += np.sum((o - Y) ** 2)
    return correct, sse
