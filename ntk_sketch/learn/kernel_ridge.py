"""Exact kernel ridge regression and classification: ``KernelRidgeRegressor``, ``KernelRidgeClassifier``.

The reference the feature maps are measured against (docs/math.md §8): the objective of ``ridge.py`` solved in
the kernel's feature space, ``alpha = (K_c + lam I)^{-1} (Y - mean Y)`` with ``K_c`` the doubly centred Gram when
an intercept is fitted, and ``lam`` chosen by the same seeded validation split, penalty scaling and default grid
(``trace(K_c) * default_relative_lambdas()``) as the feature ridge.  The whole grid comes from one symmetric
eigendecomposition of the training part's centred Gram.  So a feature map with ``F F^T = K`` gives the same
``lam`` and the same predictions as ``RidgeRegressor`` / ``RidgeClassifier`` on its features; the feature ridge's
dual solver (``solver='dual'``) is this computation with the linear kernel ``F F^T``.

O(n^2) memory and O(n^3) time: for n up to a few thousand.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .._base import BaseEstimator, ClassifierMixin, RegressorMixin, check_is_fitted
from .._linalg import solve_spd
from .._validation import check_bool, check_matrix, check_n_features, check_random_state
from ._checks import (
    _best_index,
    _binary_decision,
    _check_fraction,
    _check_labels,
    _check_lambdas,
    _check_regression_targets,
    _r2_pooled,
    _r2_score,
    _rmse,
    _rounding_error,
    default_relative_lambdas,
)

__all__ = ["KernelRidgeRegressor", "KernelRidgeClassifier"]


def _centre_gram(K, fit_intercept):
    """Doubly centred Gram (centring in feature space) and the statistics needed to centre cross-kernels."""
    if not fit_intercept:
        return K, (None, None)
    col_mean = K.mean(axis=0)
    tot_mean = float(col_mean.mean())
    Kc = K - col_mean[None, :] - col_mean[:, None] + tot_mean
    return 0.5 * (Kc + Kc.T), (col_mean, tot_mean)


def _centre_cross(Kx, col_mean, tot_mean, fit_intercept):
    """Centre K(X, X_train) consistently with ``_centre_gram`` of K(X_train, X_train)."""
    if not fit_intercept:
        return Kx
    return Kx - col_mean[None, :] - Kx.mean(axis=1)[:, None] + tot_mean


def _dual_ridge(K, Y, labels, classes, lambdas, validation_fraction, seed, fit_intercept, criterion):
    """The kernel ridge fit of ``_dual_ridge_unchecked``, with a clear ValueError naming X when the Gram matrix of
    X is too large (or the lambdas too small) for float64: a factorisation that fails, or a non-finite solution.
    """
    if not np.all(np.isfinite(K)):
        raise ValueError("the Gram matrix of X has non-finite entries (overflow); rescale X.")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = _dual_ridge_unchecked(K, Y, labels, classes, lambdas, validation_fraction, seed, fit_intercept,
                                        criterion)
    except np.linalg.LinAlgError as exc:
        big = float(np.abs(K).max(initial=0.0))
        raise ValueError(
            f"the Gram matrix of X (largest |entry| {big:.3g}) plus lam I could not be factorised in float64 "
            f"({exc}): the lambdas are below the rounding level of the kernel of X; rescale X, or pass larger "
            "lambdas (lambdas=None scales the grid to trace(K))."
        ) from exc
    if not (np.all(np.isfinite(out["alpha"])) and np.all(np.isfinite(out["mu_y"]))):
        raise ValueError("the kernel ridge solution for X overflows float64; rescale X (or the targets y).")
    return out


def _dual_ridge_unchecked(K, Y, labels, classes, lambdas, validation_fraction, seed, fit_intercept, criterion):
    """Kernel ridge with the module's lambda selection, in the dual: ``alpha = (K_c + lam I)^{-1} (Y - mean Y)``.

    One eigendecomposition of the training part's (centred) K for the whole grid, the penalty ``lam n_part / n``
    on the part, the same seeded Bernoulli split and default grid as the primal (feature) solver.  ``criterion``
    is 'r2', 'accuracy' or 'squared_error'.  Returns a dict of the fitted quantities.
    """
    n = K.shape[0]
    K = 0.5 * (K + K.T)
    lambdas_abs, fixed = _check_lambdas(lambdas)
    Kc_full, centre = _centre_gram(K, fit_intercept)
    trace = float(np.trace(Kc_full))
    grid = lambdas_abs if lambdas_abs is not None else (trace if trace > 0 else 1.0) * default_relative_lambdas()
    out = {"lambdas_": grid, "centre": centre, "validation_scores_": None, "validation_squared_errors_": None}
    if fixed:
        out.update(best_lambda_=float(grid[0]), n_train_=n, n_validation_=0)
    else:
        fraction = _check_fraction(validation_fraction)
        val = check_random_state(seed).random(n) < fraction   # the same draw as the primal solver's
        tr = ~val
        n_tr, n_val = int(tr.sum()), int(val.sum())
        if n_tr == 0 or n_val == 0:
            raise ValueError(
                f"the validation split of n_samples={n} rows left {n_tr} training and {n_val} validation rows; use "
                "more data or another validation_fraction, or pass a single lambda."
            )
        Ktt_c, (col_mean, tot_mean) = _centre_gram(K[np.ix_(tr, tr)], fit_intercept)
        Kvt_c = _centre_cross(K[np.ix_(val, tr)], col_mean, tot_mean, fit_intercept)
        Yt, Yv = Y[tr], Y[val]
        mu_t = Yt.mean(axis=0) if fit_intercept else np.zeros(Y.shape[1])
        s, U = scipy.linalg.eigh(Ktt_c)
        s = np.maximum(s, 0.0)
        Qy = U.T @ (Yt - mu_t)
        KU = Kvt_c @ U
        scores = np.empty(grid.size)
        sse = np.empty(grid.size)
        for i, lam in enumerate(grid * (n_tr / n)):
            pred = KU @ (Qy / (s + lam)[:, None]) + mu_t
            sse[i] = np.sum((pred - Yv) ** 2)
            if criterion == "accuracy":
                scores[i] = np.mean(classes[np.argmax(pred, axis=1)] == labels[val])
            elif criterion == "squared_error":
                scores[i] = -sse[i] / n_val
            else:
                scores[i] = _r2_pooled(sse[i], np.sum(Yv**2, axis=0), Yv.sum(axis=0), n_val)
        rounding = _rounding_error(np.trace(Ktt_c), grid * (n_tr / n))
        best = _best_index(scores if criterion == "accuracy" else None, sse, grid, rounding)
        out.update(best_lambda_=float(grid[best]), n_train_=n_tr, n_validation_=n_val,
                   validation_scores_=scores, validation_squared_errors_=sse / n_val)
    mu_y = Y.mean(axis=0) if fit_intercept else np.zeros(Y.shape[1])
    out["alpha"] = solve_spd(Kc_full + out["best_lambda_"] * np.eye(n), Y - mu_y)
    out["mu_y"] = mu_y
    return out


def _check_kernel_rows(X, name):
    """Rows for a user kernel: any array shape (n, ...), dense; sparse input is rejected (the kernels are dense)."""
    if sp.issparse(X):
        raise ValueError(f"{name} is a scipy.sparse matrix; sparse input is not supported by the kernel ridge: "
                         f"pass {name}.toarray().")
    arr = np.asarray(X)
    if arr.dtype.kind == "O":
        try:
            arr = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} has object dtype and could not be read as numbers ({exc}).") from exc
    return arr


class _KernelRidge(BaseEstimator):
    _classification = False

    def _is_precomputed(self):
        return isinstance(self.kernel, str) and self.kernel == "precomputed"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self._is_precomputed()
        return tags

    def __init__(self, kernel, lambdas=None, *, validation_fraction=0.2, fit_intercept=True, seed=0):
        self.kernel = kernel
        self.lambdas = lambdas
        self.validation_fraction = validation_fraction
        self.fit_intercept = fit_intercept
        self.seed = seed

    def _gram(self, A, B, name):
        K = np.asarray(self.kernel(A, B), dtype=np.float64)
        if K.shape != (A.shape[0], B.shape[0]):
            raise ValueError(f"kernel returned shape {K.shape} for {name}; expected {(A.shape[0], B.shape[0])}.")
        if not np.all(np.isfinite(K)):
            raise ValueError(f"kernel returned NaN or inf values for {name}.")
        return K

    def _targets(self, y, n):
        if self._classification:
            labels = _check_labels(y, n)
            classes = np.unique(labels)
            if classes.size < 2:
                raise ValueError(
                    f"the training labels contain a single class ({classes.tolist()}); a classifier needs at least 2 "
                    "classes, got 1 class."
                )
            self.classes_ = classes
            C = classes.size
            Y = (labels[:, None] == classes[None, :]).astype(np.float64) - 1.0 / C
            self._was_1d = False
            return Y, labels
        Y, was_1d = _check_regression_targets(y, n)
        self._was_1d = was_1d
        return Y, None

    def fit(self, X, y):
        """Fit on training inputs ``X`` (or the (n, n) training Gram matrix if ``kernel='precomputed'``)."""
        check_bool(self.fit_intercept, "fit_intercept")
        if self._is_precomputed():
            K = check_matrix(X, "X (precomputed Gram matrix)")
            if K.shape[0] != K.shape[1]:
                raise ValueError(f"with kernel='precomputed', X must be the square (n, n) training Gram; got {K.shape}.")
            self._X = None
        else:
            if not callable(self.kernel):
                raise ValueError("kernel must be a callable kernel(X1, X2) -> (n1, n2) array or 'precomputed'.")
            Xa = _check_kernel_rows(X, "X")
            if Xa.ndim < 2 or Xa.shape[0] == 0:
                raise ValueError(f"X must be an array of rows (n, ...) with n >= 1; got shape {Xa.shape}.")
            if Xa.dtype.kind in "biuf" and not np.all(np.isfinite(Xa)):
                raise ValueError("X contains NaN or inf; remove or impute those entries first.")
            self._X = Xa
            K = self._gram(Xa, Xa, "the training Gram matrix")
        # columns of X (for images or other n-d rows, the values per row); the Gram's n for 'precomputed'
        n_features = K.shape[0] if self._X is None else int(np.prod(self._X.shape[1:]))
        n = K.shape[0]
        Y, labels = self._targets(y, n)
        res = _dual_ridge(K, Y, labels, self.classes_ if self._classification else None, self.lambdas,
                          self.validation_fraction, self.seed, self.fit_intercept,
                          "accuracy" if self._classification else "r2")
        for name in ("lambdas_", "best_lambda_", "validation_scores_", "validation_squared_errors_", "n_train_",
                     "n_validation_"):
            setattr(self, name, res[name])
        self.dual_coef_ = res["alpha"]
        self._mu_y = res["mu_y"]
        self._centre = res["centre"]
        self._n_fit = n
        self.n_features_in_ = n_features
        return self

    def _decision(self, X):
        check_is_fitted(self, "dual_coef_")
        if self._is_precomputed():
            Kx = check_matrix(X, "X (precomputed test-by-train kernel)")
            if Kx.shape[1] != self._n_fit:
                raise ValueError(
                    f"with kernel='precomputed', predict needs K(X_test, X_train) of shape (n_test, {self._n_fit}); "
                    f"got {Kx.shape}."
                )
        else:
            Xa = _check_kernel_rows(X, "X")
            if Xa.ndim == self._X.ndim - 1:
                raise ValueError(f"X has the shape {Xa.shape} of a single row; Reshape your data: X[None] (for 2-d "
                                 "rows X.reshape(1, -1)) gives a batch of one row.")
            if Xa.ndim == 2 and self._X.ndim == 2:
                check_n_features(Xa, self._X.shape[1], "X", owner=self)
            if Xa.shape[1:] != self._X.shape[1:]:
                raise ValueError(f"X rows have shape {Xa.shape[1:]} but training rows had {self._X.shape[1:]}.")
            Kx = self._gram(Xa, self._X, "K(X, X_train)")
        col_mean, tot_mean = self._centre
        with np.errstate(over="ignore", invalid="ignore"):
            out = _centre_cross(Kx, col_mean, tot_mean, self.fit_intercept) @ self.dual_coef_ + self._mu_y
        if not np.all(np.isfinite(out)):
            raise ValueError("the predictions for X overflow float64: K(X, X_train) is too large for the fitted "
                             "coefficients; rescale X as the training rows were.")
        return out


class KernelRidgeRegressor(RegressorMixin, _KernelRidge):
    """Exact kernel ridge regression, ``alpha = (K + lam I)^{-1} (Y - mean Y)``, with the feature ridge's ``lam``
    selection (module docstring; one eigendecomposition of the training part's K for the whole grid).

    For n up to a few thousand (O(n^2) memory, O(n^3) time).

    Parameters
    ----------
    kernel : callable or 'precomputed'
        ``kernel(X1, X2) -> (n1, n2)``, e.g. ``functools.partial(ntk_kernel, depth=2)``; with 'precomputed',
        ``fit`` takes the (n, n) training Gram and ``predict`` the (n_test, n) test-by-train kernel.
    lambdas, validation_fraction, fit_intercept, seed :
        As in ``RidgeRegressor``; the split draws the same mask as the feature ridge with the same seed, and the
        intercept is the feature-space one (doubly centred Gram), so a feature map with ``F F^T = K`` gives the
        same ``lam`` and the same predictions.

    Attributes
    ----------
    dual_coef_ : (n, k) the coefficients ``alpha``.
    best_lambda_, lambdas_, validation_scores_, validation_squared_errors_, n_train_, n_validation_ :
        As in ``RidgeRegressor``.
    n_features_in_ : columns of the training X (values per row for n-d rows; n for 'precomputed').
    """

    _classification = False
    _multi_output = True

    def predict(self, X):
        out = self._decision(X)
        return out[:, 0] if self._was_1d else out

    def score(self, X, y):
        """R^2 = 1 - SSE/SST pooled over the outputs."""
        return _r2_score(self._decision(X), y)

    def rmse(self, X, y):
        """Root mean squared error (over rows and outputs)."""
        return _rmse(self._decision(X), y)


class KernelRidgeClassifier(ClassifierMixin, _KernelRidge):
    """Exact kernel ridge classifier: targets one-hot minus 1/C, argmax prediction, ``lam`` chosen by validation
    accuracy (ties broken by squared error, docs/math.md §8).  ``fit_intercept`` defaults to False as in
    ``RidgeClassifier``."""

    _classification = True

    def __init__(self, kernel, lambdas=None, *, validation_fraction=0.2, fit_intercept=False, seed=0):
        super().__init__(kernel, lambdas, validation_fraction=validation_fraction, fit_intercept=fit_intercept,
                         seed=seed)

    def decision_function(self, X):
        """Scores of the classes, (n, C); for two classes shape (n,), positive for ``classes_[1]`` (as in
        ``RidgeClassifier.decision_function``)."""
        return _binary_decision(self._decision(X))

    def predict(self, X):
        out = self._decision(X)   # first: raises NotFittedError before fit
        return self.classes_[np.argmax(out, axis=1)]

    def score(self, X, y):
        pred = self.predict(X)
        truth = _check_labels(y, pred.shape[0])
        return float(np.mean(pred == truth))
