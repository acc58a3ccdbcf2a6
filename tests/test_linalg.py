"""Tests of ntk_sketch._linalg: the blocked F^T F and the blocked Cholesky solve equal the plain calls.

Small block sizes make the blocked paths run on small matrices; the slow test runs them at D = 16384, the size
where the plain OpenBLAS calls crash on the benchmark machines (module docstring of _linalg).
"""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, strategies as st

from ntk_sketch import RidgeClassifier, RidgeMoments
from ntk_sketch._linalg import BLOCK, gram, solve_spd


def _spd(rng, n, cond_shift=1e-1):
    A = rng.standard_normal((n, n + 3))
    return A @ A.T + cond_shift * np.eye(n)


def test_gram_small_exact_case():
    F = np.arange(12, dtype=np.float64).reshape(4, 3)
    expected = F.T @ F
    for block, row_block in ((1, 1), (2, 3), (3, 4), (5, 10)):
        np.testing.assert_array_equal(gram(F, block=block, row_block=row_block), expected)  # integers: exact


@given(n=st.integers(0, 23), d=st.integers(1, 17), block=st.integers(1, 8), row_block=st.integers(1, 9),
       f32=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_gram_matches_the_plain_product_in_any_blocking(n, d, block, row_block, f32, seed):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d)).astype(np.float32 if f32 else np.float64)
    F64 = F.astype(np.float64)
    G = gram(F, block=block, row_block=row_block)
    assert G.dtype == np.float64 and G.shape == (d, d)
    # float64 sums of n products of float64 numbers (the float32 ones widened exactly): the blocking only
    # reorders additions, each entry off by at most ~n ulps of sum |F_ik F_jk|
    scale = np.abs(F64).T @ np.abs(F64)
    assert np.all(np.abs(G - F64.T @ F64) <= 4 * (n + 1) * np.finfo(np.float64).eps * scale)
    np.testing.assert_array_equal(G, G.T)


def test_gram_accumulates_into_out():
    rng = np.random.default_rng(1)
    F1, F2 = rng.standard_normal((7, 9)), rng.standard_normal((5, 9))
    out = gram(F1, block=4, row_block=3)
    res = gram(F2, out=out, block=4, row_block=3)
    assert res is out
    F = np.vstack([F1, F2])
    np.testing.assert_allclose(out, F.T @ F, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("n, block", [(1, 1), (7, 2), (12, 4), (13, 4), (30, 7), (30, 30)])
def test_solve_spd_matches_scipy(n, block):
    rng = np.random.default_rng(n + 100 * block)
    A = _spd(rng, n)
    B = rng.standard_normal((n, 3))
    A_before = A.copy()
    X = solve_spd(A, B, block=block)
    np.testing.assert_array_equal(A, A_before)      # the input is not overwritten
    ref = scipy.linalg.solve(A, B, assume_a="pos")
    # both are backward stable Cholesky solves: they agree to cond(A) times the rounding unit
    cond = np.linalg.cond(A)
    assert np.max(np.abs(X - ref)) <= 1e3 * cond * np.finfo(np.float64).eps * np.max(np.abs(ref))
    np.testing.assert_allclose(A @ X, B, rtol=0, atol=1e3 * cond * np.finfo(np.float64).eps * np.abs(B).max())


def test_solve_spd_vector_right_hand_side():
    rng = np.random.default_rng(3)
    A, b = _spd(rng, 11), rng.standard_normal(11)
    x = solve_spd(A, b, block=3)
    assert x.shape == (11,)
    np.testing.assert_allclose(A @ x, b, atol=1e-9)


@pytest.mark.parametrize("where", [0, 5, 10])
def test_solve_spd_rejects_indefinite_matrices_in_any_block(where):
    # positive definite except one negative eigen-direction concentrated on coordinate `where`
    rng = np.random.default_rng(4)
    A = _spd(rng, 12)
    A[where, where] = -1.0
    with pytest.raises(np.linalg.LinAlgError):
        solve_spd(A, np.ones(12), block=4)
    with pytest.raises(np.linalg.LinAlgError):
        scipy.linalg.solve(A, np.ones(12), assume_a="pos")


def test_moments_of_more_rows_than_a_row_block_equal_the_plain_sums():
    rng = np.random.default_rng(5)
    F = rng.standard_normal((BLOCK + 37, 6)).astype(np.float32)
    y = rng.integers(0, 3, F.shape[0])
    m = RidgeMoments(classification=True).add(F, y)
    F64 = F.astype(np.float64)
    np.testing.assert_allclose(m.gram, F64.T @ F64, rtol=1e-12)
    np.testing.assert_allclose(m.col_sum, F64.sum(0), rtol=1e-12)
    assert m.n_rows == F.shape[0] and sum(m.class_counts.values()) == F.shape[0]
    np.testing.assert_allclose(m.class_sums[1], F64[y == 1].sum(0), rtol=1e-12)


@pytest.mark.slow
def test_ridge_fit_at_16384_features_completes():
    """The width at which the plain dsyrk / dpotrf of the bundled OpenBLAS crash (with 2 threads, SkylakeX
    kernels); here every step runs, and the solution solves its normal equations."""
    rng = np.random.default_rng(6)
    D = 16384
    F = rng.standard_normal((1024, D)).astype(np.float32)
    G = gram(F) + 1.0 * np.eye(D)
    B = rng.standard_normal((D, 3))
    X = solve_spd(G, B)
    assert np.max(np.abs(G @ X - B)) <= 1e-8 * np.max(np.abs(B))
    # and a whole classifier fit through the moments (one fixed lam: the eigendecomposition of the lam grid
    # would cost minutes at this width)
    y = rng.integers(0, 3, F.shape[0])
    clf = RidgeClassifier(lambdas=1.0, solver="primal").fit(F, y)
    assert clf.coef_.shape == (D, 3) and np.all(np.isfinite(clf.coef_))
