"""Tests of ntk_sketch.learn.nystrom: exact Nystrom identities, all landmarks = exact kernel ridge, leverage scores."""
import functools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from naive import nystrom_gram_naive, ridge_leverage_scores_naive
from ntk_sketch.kernels.ntk_exact import ntk_kernel
from ntk_sketch.learn.nystrom import NystromFeatures, approximate_ridge_leverage_scores
from ntk_sketch.learn import KernelRidgeClassifier, KernelRidgeRegressor, RidgeClassifier, RidgeRegressor


def rbf(A, B, gamma=0.5):
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T
    return np.exp(-gamma * np.maximum(sq, 0))


def ntk2(A, B):
    # Always the cross-kernel code path (X2 given), the one NystromFeatures uses, so that K(Z, Z) is bit-identical.
    return ntk_kernel(A, B, depth=2)


@pytest.mark.parametrize("landmarks", ["uniform", "rls"])
def test_features_give_the_nystrom_approximation(landmarks):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((70, 4)), rng.standard_normal((9, 4))
    nf = NystromFeatures(25, kernel=rbf, landmarks=landmarks, seed=3).fit(X)
    Z = X[nf.landmark_indices_]
    assert np.unique(nf.landmark_indices_).size == 25
    expected = nystrom_gram_naive(rbf(Y, Z), rbf(Z, Z), rbf(Z, X))
    np.testing.assert_allclose(nf.transform(Y) @ nf.transform(X).T, expected, atol=1e-8)
    # Nystrom interpolates the kernel at the landmarks: phi(Z) phi(Z)^T = K(Z, Z) when K(Z, Z) has full rank.
    Fz = nf.transform(Z)
    assert nf.rank_ == 25
    np.testing.assert_allclose(Fz @ Fz.T, rbf(Z, Z), atol=1e-9)


def test_all_points_as_landmarks_reproduce_the_kernel():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 5))
    nf = NystromFeatures(1000, kernel=ntk2, seed=0).fit(X)      # capped at n = 60
    assert nf.n_components_ == 60 and sorted(nf.landmark_indices_) == list(range(60))
    F = nf.transform(X)
    K = ntk2(X, X)
    # cond(K) is ~1e3 here, so F F^T = K K^+ K = K to ~cond * eps relative.
    np.testing.assert_allclose(F @ F.T, K, rtol=0, atol=1e-10 * np.abs(K).max())


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_all_landmarks_ridge_equals_exact_kernel_ridge_ntk(fit_intercept):
    rng = np.random.default_rng(2)
    X, Xt = rng.standard_normal((90, 6)), rng.standard_normal((30, 6))
    labels = rng.integers(0, 3, 90)
    nf = NystromFeatures(90, depth=2, seed=0).fit(X)            # default kernel: the exact NTK of depth 2
    a = RidgeClassifier(seed=4, fit_intercept=fit_intercept).fit(nf.transform(X), labels)
    b = KernelRidgeClassifier(ntk2, seed=4, fit_intercept=fit_intercept).fit(X, labels)
    assert a.best_lambda_ == pytest.approx(b.best_lambda_, rel=1e-9)
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
    np.testing.assert_allclose(a.decision_function(nf.transform(Xt)), b.decision_function(Xt), atol=1e-8)


def test_all_landmarks_regression_equals_exact_kernel_ridge_rbf():
    rng = np.random.default_rng(3)
    X, Xt = rng.standard_normal((80, 2)), rng.standard_normal((20, 2))
    y = np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(80)
    nf = NystromFeatures(80, kernel=rbf, eig_cutoff=0.0, seed=1).fit(X)
    a = RidgeRegressor(seed=0).fit(nf.transform(X), y)
    b = KernelRidgeRegressor(rbf, seed=0).fit(X, y)
    assert a.best_lambda_ == pytest.approx(b.best_lambda_, rel=1e-9)
    np.testing.assert_allclose(a.predict(nf.transform(Xt)), b.predict(Xt), atol=1e-6)


def test_default_kernel_diagonal_is_the_ntk_diagonal():
    X = np.random.default_rng(4).standard_normal((30, 7))
    nf = NystromFeatures(10, depth=3, landmarks="rls", seed=0).fit(X)
    np.testing.assert_allclose(nf.rls_lambda_ * 10, np.trace(ntk_kernel(X, depth=3)), rtol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(1e-3, 1e2))
def test_leverage_scores_with_full_sample_are_exact(seed, lam):
    X = np.random.default_rng(seed).standard_normal((25, 3))
    tau = approximate_ridge_leverage_scores(X, rbf, lam, 25, seed=seed)
    np.testing.assert_allclose(tau, ridge_leverage_scores_naive(rbf(X, X), lam), atol=1e-9)


def test_leverage_scores_generic_diagonal_matches_given_one():
    X = np.random.default_rng(5).standard_normal((40, 3))
    a = approximate_ridge_leverage_scores(X, rbf, 0.7, 12, seed=1)
    b = approximate_ridge_leverage_scores(X, rbf, 0.7, 12, seed=1, kernel_diag=lambda Z: np.ones(len(Z)))
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.all((0 <= a) & (a <= 1))


def test_rls_landmarks_find_the_isolated_points():
    # 190 points in a tight cluster and 10 isolated points (RBF, gamma = 2: cross-kernel ~0). lam = trace/m = 20
    # gives isolated points the leverage 1/(1 + 20) ~ 0.048 and cluster points ~ (190/210)/190 ~ 0.0048.
    # Uniform landmarks pick an isolated point with probability 10/200 each: over 20 seeds x 10 landmarks the
    # count is a sum of 20 hypergeometrics with mean 10 and sd ~3; leverage sampling (about 1/3 of the mass on
    # the isolated points) gives a mean of ~60 and sd ~6.  The threshold 30 is > 6 sd from both: each side fails
    # with probability < 1e-8 (Chernoff bounds for these sums of bounded independent counts).
    rng = np.random.default_rng(6)
    X = np.vstack([0.01 * rng.standard_normal((190, 2)), np.array([[5.0 * i, 40.0] for i in range(10)])])
    kern = functools.partial(rbf, gamma=2.0)
    counts = {}
    for mode in ("uniform", "rls"):
        counts[mode] = sum(
            int((NystromFeatures(10, kernel=kern, landmarks=mode, seed=s).fit(X).landmark_indices_ >= 190).sum())
            for s in range(20)
        )
    assert counts["uniform"] < 30 < counts["rls"], counts


def test_transform_batches_and_dtypes():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 4))
    a = NystromFeatures(12, kernel=rbf, seed=2, chunk_size=7).fit(X)
    b = NystromFeatures(12, kernel=rbf, seed=2).fit(X)
    np.testing.assert_array_equal(a.landmark_indices_, b.landmark_indices_)
    np.testing.assert_allclose(a.transform(X), b.transform(X), rtol=1e-13, atol=1e-14)
    assert a.transform(X.astype(np.float32)).dtype == np.float64


def test_errors():
    X = np.random.default_rng(8).standard_normal((20, 3))
    with pytest.raises(ValueError, match="not fitted"):
        NystromFeatures(5).transform(X)
    with pytest.raises(ValueError, match="landmarks"):
        NystromFeatures(5, landmarks="kmeans").fit(X)
    with pytest.raises(ValueError, match="n_components"):
        NystromFeatures(0).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        NystromFeatures(5).fit(np.where(X > 1.5, np.nan, X))
    nf = NystromFeatures(5).fit(X)
    with pytest.raises(ValueError, match="X has 2 features, but NystromFeatures is expecting 3"):
        nf.transform(X[:, :2])
    with pytest.raises(ValueError, match="positive eigenvalue"):
        NystromFeatures(5).fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="eig_cutoff"):   # a relative cut-off >= 1 keeps nothing: all-zero features
        NystromFeatures(5, eig_cutoff=2.0).fit(X)


@pytest.mark.slow
def test_all_landmarks_equal_exact_ntk_ridge_on_bundled_fashion_mnist():
    from ntk_sketch.datasets import load_bundled_fashion_mnist

    X, y = load_bundled_fashion_mnist("train", flatten=True)
    Xt, yt = load_bundled_fashion_mnist("test", flatten=True)
    X, y = X[:800], y[:800]
    nf = NystromFeatures(800, depth=2, seed=0).fit(X)
    a = RidgeClassifier(seed=0).fit(nf.transform(X), y)
    b = KernelRidgeClassifier(ntk2, seed=0).fit(X, y)
    assert a.best_lambda_ == pytest.approx(b.best_lambda_, rel=1e-9)
    np.testing.assert_array_equal(a.predict(nf.transform(Xt)), b.predict(Xt))
    # 10 balanced classes: chance is 0.1; any working kernel classifier is far above it
    assert b.score(Xt, yt) > 0.5


def test_eig_cutoff_of_one_or_more_is_rejected_and_empty_transform():
    # issue 15: eig_cutoff=2.0 dropped every eigenvalue and returned all-zero features without a word
    X = np.random.default_rng(0).standard_normal((10, 3))
    for bad in (1.0, 2.0):
        with pytest.raises(ValueError, match=r"eig_cutoff .*must be < 1"):
            NystromFeatures(4, eig_cutoff=bad).fit(X)
    ny = NystromFeatures(4, eig_cutoff=0.5, seed=0).fit(X)
    assert ny.rank_ >= 1 and np.abs(ny.transform(X)).max() > 0
    assert ny.transform(np.ones((0, 3))).shape == (0, 4)
