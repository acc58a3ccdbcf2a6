"""Tests of ntk_sketch.learn.kernel_ridge: exact solves against scipy, the linear kernel equals the feature ridge."""
import numpy as np
import pytest
import scipy.linalg

from ntk_sketch.learn.kernel_ridge import KernelRidgeClassifier, KernelRidgeRegressor
from ntk_sketch.learn.ridge import RidgeClassifier, RidgeRegressor
from naive import ridge_rounding_rtol


def _regression_data(seed, n=120, d=8, k=None, noise=0.3, shift=2.0):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    w = rng.standard_normal((d,) if k is None else (d, k))
    y = F @ w + noise * rng.standard_normal((n,) + w.shape[1:]) + shift
    return F, y


def _classification_data(seed, n=150, d=6, C=3):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    centres = 2.0 * rng.standard_normal((C, d))
    labels = rng.integers(0, C, n)
    return F + centres[labels], labels


def _linear_kernel(A, B):
    return A @ B.T


def _rbf(A, B, gamma=0.3):
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T
    return np.exp(-gamma * np.maximum(sq, 0))


# ------------------------------------------------------------------------------------------- kernel ridge
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_kernel_ridge_with_linear_kernel_equals_feature_ridge(fit_intercept):
    F, y = _regression_data(14, n=80, d=6)
    a = RidgeRegressor(seed=3, fit_intercept=fit_intercept).fit(F, y)
    b = KernelRidgeRegressor(_linear_kernel, seed=3, fit_intercept=fit_intercept).fit(F, y)
    np.testing.assert_allclose(b.lambdas_, a.lambdas_, rtol=1e-10)
    # the linear kernel's Gram has rank 6 of 80: towards the grid's small end the two solvers agree to their
    # rounding (tests/naive.py), elsewhere to 1e-7; R^2 = 1 - sse / sst moves by the sse's change over sst
    rt = np.maximum(1e-7, ridge_rounding_rtol(a.lambdas_, np.sum(F**2), a.n_train_, a.n_validation_))
    sse_a, sse_b = a.validation_squared_errors_, b.validation_squared_errors_
    assert np.all(np.abs(sse_b - sse_a) <= rt * sse_a + 1e-12)
    assert np.all(np.abs(b.validation_scores_ - a.validation_scores_) <= rt * np.abs(1 - a.validation_scores_) + 1e-9)
    assert a.best_lambda_ == pytest.approx(b.best_lambda_, rel=1e-12)
    Ftest = np.random.default_rng(0).standard_normal((30, 6))
    np.testing.assert_allclose(b.predict(Ftest), a.predict(Ftest), rtol=1e-7, atol=1e-7)


def test_kernel_ridge_fixed_lambda_matches_scipy_and_precomputed():
    rng = np.random.default_rng(15)
    X, Xt = rng.standard_normal((60, 3)), rng.standard_normal((10, 3))
    y = np.sin(X[:, 0]) + X[:, 1]
    lam = 0.1
    K = _rbf(X, X)
    alpha = scipy.linalg.solve(K + lam * np.eye(60), y)
    m = KernelRidgeRegressor(_rbf, lam, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(m.predict(Xt), _rbf(Xt, X) @ alpha, rtol=1e-10, atol=1e-12)
    p = KernelRidgeRegressor("precomputed", lam, fit_intercept=False).fit(K, y)
    np.testing.assert_allclose(p.predict(_rbf(Xt, X)), m.predict(Xt), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="precomputed"):
        p.predict(_rbf(Xt, X[:5]))


def test_kernel_ridge_classifier():
    F, labels = _classification_data(16, n=150)
    m = KernelRidgeClassifier(_rbf, seed=0).fit(F, labels)
    assert m.score(F, labels) > 0.9   # well-separated Gaussian blobs; deterministic data
    lin = KernelRidgeClassifier(_linear_kernel, seed=8).fit(F, labels)
    feat = RidgeClassifier(seed=8).fit(F, labels)
    assert lin.best_lambda_ == pytest.approx(feat.best_lambda_, rel=1e-12)
    np.testing.assert_allclose(lin.validation_scores_, feat.validation_scores_)


def test_clear_errors():
    F, y = _regression_data(17, n=40)
    with pytest.raises(ValueError, match="single class"):
        KernelRidgeClassifier(_linear_kernel).fit(F, np.ones(40, int))
    with pytest.raises(ValueError, match="kernel returned"):
        KernelRidgeRegressor(lambda a, b: a @ b.T[:, :2]).fit(F, y)
    with pytest.raises(ValueError, match="sparse input is not supported"):
        import scipy.sparse as sp

        KernelRidgeRegressor(_linear_kernel).fit(sp.csr_matrix(F), y)
    m = KernelRidgeRegressor(_linear_kernel).fit(F, y)
    with pytest.raises(ValueError, match="Reshape your data"):
        m.predict(F[0])
    with pytest.raises(ValueError, match="X has 3 features, but KernelRidgeRegressor is expecting 8"):
        m.predict(F[:, :3])
    assert m.n_features_in_ == 8
    p = KernelRidgeRegressor("precomputed").fit(F @ F.T, y)
    assert p.n_features_in_ == 40
    with pytest.raises(ValueError, match="precomputed"):
        p.predict(F @ F[:5].T)
