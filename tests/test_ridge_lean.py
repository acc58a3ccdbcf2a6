"""Tests of ntk_sketch.learn.ridge_lean: the triangle kernels and the blocked Cholesky factorisation against numpy /
scipy, and fit_stream_lean against fit_stream (the same split, grid, selection and solution)."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, strategies as st

from ntk_sketch import fit_stream_lean
from ntk_sketch.learn import ridge_lean
from ntk_sketch.learn.ridge import RidgeClassifier, RidgeRegressor


@pytest.fixture
def small_block(monkeypatch):
    """Blocks of 7 columns, so D = 30 features run every blocked path (diagonal, panel, trailing, ragged end)."""
    monkeypatch.setattr(ridge_lean, "BLOCK", 7)


def _spd(seed, n):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n + 5, n))
    return M.T @ M + 0.1 * np.eye(n)


def _stream(F, y, chunk=37):
    return lambda: iter([(F[i:i + chunk], y[i:i + chunk]) for i in range(0, F.shape[0], chunk)])


def _classification_data(seed, n=400, d=30, C=4):
    rng = np.random.default_rng(seed)
    centres = 0.7 * rng.standard_normal((C, d))
    labels = rng.integers(0, C, n)
    return rng.standard_normal((n, d)) + centres[labels], labels


def _regression_data(seed, n=400, d=30, k=None):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    w = rng.standard_normal((d,) if k is None else (d, k))
    return F, F @ w + 2.0 * rng.standard_normal((n,) if k is None else (n, k)) + 1.5


# ------------------------------------------------------------------------------------------- the kernels
def test_triangle_kernels_against_numpy():
    rng = np.random.default_rng(0)
    n = 131   # not a multiple of the 64-wide tiles
    A0 = rng.standard_normal((n, n))
    diag = rng.standard_normal(n)
    u = rng.standard_normal(n)
    low, up = np.tril(A0, -1), np.triu(A0, 1)

    A = A0.copy()
    ridge_lean._mirror_lower_to_upper(A, diag)
    np.testing.assert_array_equal(A, low + low.T + np.diag(diag))

    A = A0.copy()
    ridge_lean._add_lower_to_upper(A)
    np.testing.assert_array_equal(A, np.tril(A0) + up + low.T)

    A = A0.copy()
    ridge_lean._zero_upper(A)
    np.testing.assert_array_equal(A, low)

    A = A0.copy()
    ridge_lean._add_rank1_upper(A, -2.5, u)
    np.testing.assert_allclose(A, A0 + np.triu(-2.5 * np.outer(u, u)), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(np.tril(A, -1), low)

    A = A0.copy()
    ridge_lean._add_rank1_lower(A, 1.5, u)
    np.testing.assert_allclose(A, A0 + np.tril(1.5 * np.outer(u, u)), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(np.triu(A, 1), up)


@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize("block", [4, 7, 64])
def test_add_gram_triangle_fills_one_triangle_only(upper, block):
    rng = np.random.default_rng(1)
    F = rng.standard_normal((23, 30)).astype(np.float32)
    A0 = rng.standard_normal((30, 30))
    A = A0.copy()
    ridge_lean._add_gram_triangle(A, F, upper=upper, block=block)
    G = F.astype(np.float64).T @ F.astype(np.float64)
    tri, other = (np.triu, lambda M: np.tril(M, -1)) if upper else (np.tril, lambda M: np.triu(M, 1))
    np.testing.assert_allclose(tri(A), tri(A0 + G), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(other(A), other(A0))


@pytest.mark.parametrize("n, block", [(30, 7), (30, 30), (28, 7), (1, 4), (65, 16)])
def test_blocked_cholesky_is_scipys_and_leaves_the_lower_triangle(n, block):
    S = _spd(n, n)
    rng = np.random.default_rng(2)
    junk = np.tril(rng.standard_normal((n, n)), -1)     # stands for the kept training matrix
    A = np.triu(S) + junk
    ridge_lean._cholesky_upper_inplace(A, block=block)
    np.testing.assert_allclose(np.triu(A), scipy.linalg.cholesky(S, lower=False), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(np.tril(A, -1), junk)
    B = rng.standard_normal((n, 3))
    np.testing.assert_allclose(ridge_lean._solve_upper(A, B), np.linalg.solve(S, B), rtol=1e-8, atol=1e-10)


def test_blocked_cholesky_raises_on_an_indefinite_matrix():
    S = _spd(3, 20)
    S[15, 15] = -1.0
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        ridge_lean._cholesky_upper_inplace(np.triu(S), block=7)


# ------------------------------------------------------------------------------ the same fit as fit_stream
def _assert_same_fit(lean, ref):
    assert lean.best_lambda_ == pytest.approx(ref.best_lambda_, rel=1e-12)
    np.testing.assert_allclose(lean.lambdas_, ref.lambdas_, rtol=1e-12)
    np.testing.assert_allclose(lean.validation_scores_, ref.validation_scores_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lean.validation_squared_errors_, ref.validation_squared_errors_, rtol=1e-9)
    assert lean.selection_ == ref.selection_
    assert (lean.n_train_, lean.n_validation_, lean.n_features_in_) == (ref.n_train_, ref.n_validation_,
                                                                          ref.n_features_in_)
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(lean.coef_, ref.coef_, rtol=0, atol=1e-9 * scale)
    b_scale = max(1.0, np.abs(ref.intercept_).max())
    np.testing.assert_allclose(lean.intercept_, ref.intercept_, rtol=0, atol=1e-9 * b_scale)
    assert np.shape(lean.coef_) == np.shape(ref.coef_) and np.shape(lean.intercept_) == np.shape(ref.intercept_)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("selection", ["auto", "squared_error"])
def test_classifier_matches_fit_stream(small_block, fit_intercept, selection):
    F, y = _classification_data(4)
    stream = _stream(F.astype(np.float32), y)
    ref = RidgeClassifier(fit_intercept=fit_intercept, seed=5, selection=selection).fit_stream(stream)
    lean = fit_stream_lean(RidgeClassifier(fit_intercept=fit_intercept, seed=5, selection=selection), stream)
    _assert_same_fit(lean, ref)
    np.testing.assert_array_equal(lean.classes_, ref.classes_)
    np.testing.assert_array_equal(lean.predict(F), ref.predict(F))


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("k", [None, 3])
def test_regressor_matches_fit_stream(small_block, fit_intercept, k):
    F, y = _regression_data(6, k=k)
    stream = _stream(F, y)
    ref = RidgeRegressor(fit_intercept=fit_intercept, seed=7).fit_stream(stream)
    lean = fit_stream_lean(RidgeRegressor(fit_intercept=fit_intercept, seed=7), stream)
    _assert_same_fit(lean, ref)
    assert lean.selection_ == "r2"
    np.testing.assert_allclose(lean.predict(F), ref.predict(F), rtol=1e-9, atol=1e-9)


def test_single_lambda_uses_every_row_like_fit_stream(small_block):
    F, y = _regression_data(8)
    stream = _stream(F, y)
    ref = RidgeRegressor(2.5, seed=1).fit_stream(stream)
    lean = fit_stream_lean(RidgeRegressor(2.5, seed=1), stream)
    assert lean.validation_scores_ is None and lean.n_train_ == F.shape[0] == ref.n_train_
    np.testing.assert_allclose(lean.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
    assert lean.intercept_ == pytest.approx(ref.intercept_, rel=1e-10)


@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 20), n=st.integers(40, 160),
       chunk=st.integers(1, 60), fit_intercept=st.booleans())
def test_property_same_fit_as_fit_stream(seed, d, n, chunk, fit_intercept):
    # any shape, chunking and seed: the lean fit is fit_stream's (the block is 7 columns, as in the fixture,
    # set here because hypothesis reruns the body without function-scoped fixtures)
    old = ridge_lean.BLOCK
    ridge_lean.BLOCK = 7
    try:
        F, y = _classification_data(seed, n=n, d=d, C=3)
        stream = _stream(F, y, chunk)
        ref = RidgeClassifier(fit_intercept=fit_intercept, seed=seed).fit_stream(stream)
        lean = fit_stream_lean(RidgeClassifier(fit_intercept=fit_intercept, seed=seed), stream)
    finally:
        ridge_lean.BLOCK = old
    _assert_same_fit(lean, ref)


def test_coarse_to_fine_finds_the_peak_of_a_single_peaked_score(small_block):
    F, y = _regression_data(9, n=600)
    stream = _stream(F, y)
    full = fit_stream_lean(RidgeRegressor(seed=2), stream)
    s = full.validation_scores_
    peak = int(np.argmax(s))
    # the premise: R^2 rises to one peak and falls after it along this grid
    assert np.all(np.diff(s[:peak + 1]) > 0) and np.all(np.diff(s[peak:]) < 0)
    fast = fit_stream_lean(RidgeRegressor(seed=2), stream, lambda_search="coarse_to_fine")
    assert fast.best_lambda_ == full.best_lambda_
    n_grid = len(full.lambdas_)
    first_stage = len(range(0, n_grid, 3)) + ((n_grid - 1) % 3 != 0)   # every third lam and the last
    assert len(fast.lambdas_) <= first_stage + 2 < n_grid             # then the two neighbours of the best
    np.testing.assert_allclose(fast.coef_, full.coef_, rtol=1e-12, atol=0)
    # every score it reports is the full grid's at that lam
    idx = np.searchsorted(full.lambdas_, fast.lambdas_)
    np.testing.assert_allclose(fast.validation_scores_, s[idx], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- bad input
def test_errors_name_the_argument():
    F, y = _classification_data(10, n=60, d=5)
    stream = _stream(F, y)
    with pytest.raises(TypeError, match="chunks must be a zero-argument callable"):
        fit_stream_lean(RidgeClassifier(), stream())
    with pytest.raises(TypeError, match="estimator must be a RidgeClassifier or RidgeRegressor"):
        fit_stream_lean(object(), stream)
    with pytest.raises(ValueError, match="lambda_search must be one of"):
        fit_stream_lean(RidgeClassifier(), stream, lambda_search="golden")
    with pytest.raises(ValueError, match="selection must be"):
        fit_stream_lean(RidgeClassifier(selection="loss"), stream)
    with pytest.raises(ValueError, match="no data"):
        fit_stream_lean(RidgeClassifier(), lambda: iter([]))
    with pytest.raises(ValueError, match="pair"):
        fit_stream_lean(RidgeClassifier(), lambda: iter([F]))
    bad = F.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_stream_lean(RidgeClassifier(), _stream(bad, y))
    with pytest.raises(ValueError, match="features but earlier chunks had"):
        fit_stream_lean(RidgeClassifier(), lambda: iter([(F[:30], y[:30]), (F[30:, :4], y[30:])]))
    with pytest.raises(ValueError, match="single class"):
        fit_stream_lean(RidgeClassifier(), _stream(F, np.zeros(60, dtype=int)))


def test_a_stream_that_changes_between_passes_is_rejected():
    F, y = _classification_data(11, n=120, d=5)
    passes = []

    def shifting():
        passes.append(1)
        chunk = 30 if len(passes) == 1 else 40
        return iter([(F[i:i + chunk], y[i:i + chunk]) for i in range(0, F.shape[0], chunk)])

    with pytest.raises(ValueError, match="later pass of the stream differs"):
        fit_stream_lean(RidgeClassifier(), shifting)


def test_a_failed_factorisation_names_lam_and_the_fix():
    S = _spd(13, 20)
    S[15, 15] = -1.0   # what rounding leaves of a singular F^T F + lam I when lam is below its rounding level
    with pytest.raises(ValueError, match=r"could not be factorised.*lam = 1e-300.*pass larger lambdas"):
        ridge_lean._factor_and_solve(np.triu(S), np.ones((20, 1)), 1e-300, 42.0)
