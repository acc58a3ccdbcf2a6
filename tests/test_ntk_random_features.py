"""Tests of ntk_sketch.features.ntk_random_features: the exact leverage sampler, unbiasedness, error rates, the L = 1
spectral guarantee on real data, and input checks."""
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from ntk_sketch.metrics import lambda_for_statistical_dimension, relative_frobenius_error, spectral_epsilon
from ntk_sketch.kernels.ntk_exact import nngp_kernel, ntk_kernel
from ntk_sketch.features.ntk_random_features import NTKRandomFeatures, sample_leverage_relu_weights


# ------------------------------------------------------------------------------------------ sampler
@pytest.mark.parametrize("d", [3, 10, 64])
def test_leverage_sampler_moments_and_distribution(d):
    n = 200_000
    W, weights = sample_leverage_relu_weights(d, n, seed=d)
    sq = (W**2).sum(axis=0)
    np.testing.assert_allclose(weights, np.sqrt(d / sq))
    # |w|^2 ~ chi2(d + 2) => E[d / |w|^2] = d / d = 1 and Var = d / (d - 2) - 1 (d > 2).  A 6-sigma bound:
    # failure probability 2e-9 for this (fixed) seed.
    ratio = d / sq
    se = math.sqrt((d / (d - 2) - 1) / n)
    assert abs(ratio.mean() - 1.0) < 6 * se
    # Kolmogorov-Smirnov against chi2(d + 2): p < 1e-6 would reject; the test fails with probability 1e-6
    assert scipy.stats.kstest(sq, scipy.stats.chi2(d + 2).cdf).pvalue > 1e-6
    # and the directions are uniform: the mean direction is ~0 (each coordinate has variance 1/(d n))
    directions = W / np.sqrt(sq)
    assert np.abs(directions.mean(axis=1)).max() < 6 / math.sqrt(d * n)


def test_leverage_weighted_relu_features_match_gaussian_expectation():
    # E_q[(d/|w|^2) relu(w.x) relu(w.y)] = E_N[relu(w.x) relu(w.y)] = |x||y| k1(a) / 2
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal(4), rng.standard_normal(4)
    W, weights = sample_leverage_relu_weights(4, 1_000_000, seed=8)
    prod = 2 * weights**2 * np.maximum(x @ W, 0) * np.maximum(y @ W, 0)
    target = nngp_kernel(x[None], y[None], depth=1)[0, 0]
    assert abs(prod.mean() - target) < 6 * prod.std() / math.sqrt(prod.size)  # 6-sigma: 2e-9


# ------------------------------------------------------------------------------------------ unbiasedness
@pytest.mark.parametrize("sampling", ["leverage", "gaussian"])
def test_unbiased_for_the_two_layer_ntk(sampling):
    """At L = 1 every component is unbiased, so the mean of F F^T over seeds converges to the exact NTK."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 6))
    X[1] = -X[0] + 0.1 * rng.standard_normal(6)
    n_seeds = 300
    samples = np.array([
        (lambda F: F @ F.T)(NTKRandomFeatures(1, 64, sampling=sampling, seed=s).fit_transform(X))
        for s in range(n_seeds)
    ])
    mean, se = samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(n_seeds)
    z = (mean - ntk_kernel(X, depth=1)) / se
    # 300 independent draws: z is close to standard normal; P(max_15 |z| > 6) < 15 * 2e-9
    assert np.abs(z[np.triu_indices(5)]).max() < 6, z


@pytest.mark.slow
def test_error_falls_like_inverse_square_root_of_m():
    rng = np.random.default_rng(3)
    X = np.abs(rng.standard_normal((150, 20)))
    K = ntk_kernel(X, depth=2)
    ms = [256, 1024, 4096]
    med = [np.median([relative_frobenius_error(NTKRandomFeatures(2, m, seed=s).fit_transform(X), K)
                      for s in range(7)]) for m in ms]
    slope = np.polyfit(np.log(ms), np.log(med), 1)[0]
    # theory: standard deviation ~ m^-1/2, plus an O(1/m) bias at L = 2; medians of 7 seeds keep the fitted slope
    # within a few hundredths of -0.5 (observed -0.5 +- 0.05 over many seed sets); [-0.75, -0.35] is far outside
    # that spread
    assert -0.75 < slope < -0.35, (slope, med)


# ------------------------------------------------------------------------------------------ spectral guarantee
def _digits_300():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits().data[:300] / 16.0


def test_spectral_guarantee_two_layer_on_digits():
    """Theorem 4 (L = 1): with enough features, (1 - eps)(K + lam I) <= F F^T + lam I <= (1 + eps)(K + lam I)."""
    X = _digits_300()
    K = ntk_kernel(X, depth=1)
    lam = lambda_for_statistical_dimension(K, 25.0)  # s_lam = 25
    m = 80 * 25  # 80 s_lam features
    eps = np.array([spectral_epsilon(NTKRandomFeatures(1, m, seed=s).fit_transform(X), K, lam) for s in range(20)])
    # Observed eps over 20 seeds (default split m1 = 500, ms = 1500, m0 = 500): mean 0.25, max 0.31; a seed fails
    # with probability p well below 1%, and
    # P(Binomial(20, 0.01) >= 2) = 0.017, so "at least 19 of 20" is a statement the theory backs with margin.
    assert np.sum(eps > 0.5) <= 1, eps


def test_leverage_sampling_beats_gaussian_on_relu_features():
    """Leverage sampling removes the radial variance of w: the second moment of a feature product is (d + 2)/d
    times larger for Gaussian w than for leverage-weighted w.  The gain is therefore large in low dimension and
    vanishes as d grows: on the 64-pixel digits we measured no difference (paired t = -0.4 at m = 400, s_lam = 25),
    on the same digits projected on their top 4 principal components a clear one (mean eps 0.59 -> 0.44).
    We test the regime the theory says matters, with common random directions (the same g for both samplers) so
    that the paired difference isolates the sampling of |w|."""
    X0 = _digits_300()
    Vt = np.linalg.svd(X0 - X0.mean(axis=0), full_matrices=False)[2]
    X = X0 @ Vt[:4].T  # real data, 4 dimensions
    d = X.shape[1]
    K = nngp_kernel(X, depth=1)
    lam = lambda_for_statistical_dimension(K, 25.0)
    m = 400
    diffs = []
    for s in range(20):
        rng = np.random.default_rng(s)
        G = rng.standard_normal((d, m))
        radius = np.sqrt(rng.chisquare(d + 2, size=m))
        F_gauss = np.sqrt(2.0 / m) * np.maximum(X @ G, 0.0)
        W_lev = G * (radius / np.linalg.norm(G, axis=0))
        F_lev = np.sqrt(2.0 / m) * np.maximum(X @ W_lev, 0.0) * (np.sqrt(d) / radius)
        diffs.append(spectral_epsilon(F_gauss, K, lam) - spectral_epsilon(F_lev, K, lam))
    diffs = np.array(diffs)
    # a one-sided paired t-test at the 1e-3 level (t_19 > 3.58): it fails only if the gain is not there
    t = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(len(diffs)))
    assert t > 3.58, (diffs.mean(), t)


# ------------------------------------------------------------------------------------------ shapes, dtypes, errors
@given(st.integers(1, 3), st.integers(2, 200), st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]))
def test_shapes_dtypes_determinism(depth, m, seed, dtype):
    X = np.random.default_rng(seed).standard_normal((7, 5)).astype(dtype)
    rf = NTKRandomFeatures(depth, m, seed=seed).fit(X)
    F = rf.transform(X)
    assert F.shape == (7, m) and F.dtype == dtype
    np.testing.assert_array_equal(F, NTKRandomFeatures(depth, m, seed=seed).fit(X).transform(X))
    # chunking does not change the result
    rf2 = NTKRandomFeatures(depth, m, seed=seed, chunk_size=3).fit(X)
    np.testing.assert_allclose(rf2.transform(X), F, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_sparse_input_equals_dense_and_zero_rows():
    import scipy.sparse as sp

    X = np.random.default_rng(0).standard_normal((6, 8))
    X[2] = 0.0
    rf = NTKRandomFeatures(2, 128, seed=1).fit(X)
    F = rf.transform(X)
    np.testing.assert_allclose(rf.transform(sp.csr_matrix(X)), F, rtol=1e-12, atol=1e-12)
    assert np.all(F[2] == 0.0)


def test_bad_input():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="not fitted"):
        NTKRandomFeatures().transform(X)
    rf = NTKRandomFeatures(1, 16, seed=0).fit(X)
    with pytest.raises(ValueError, match="3"):
        rf.transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        rf.transform(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="n_components"):
        NTKRandomFeatures(1, 0).fit(X)
    with pytest.raises(ValueError, match="depth"):
        NTKRandomFeatures(0, 16).fit(X)
    with pytest.raises(ValueError, match="sampling"):
        NTKRandomFeatures(1, 16, sampling="gibbs").fit(X)
    with pytest.raises(ValueError, match="dim"):
        sample_leverage_relu_weights(0, 5)


# ------------------------------------------------------------------------------------------ issue 15
def test_non_canonical_csr_is_not_rewritten_and_read_only_input_works():
    import scipy.sparse as sp

    from _inputs import assert_csr_unchanged, assert_scales_exactly, non_canonical_csr, read_only, snapshot_csr

    X, dense = non_canonical_csr(seed=2)
    snap = snapshot_csr(X)
    rf = NTKRandomFeatures(depth=2, n_components=64, seed=0).fit(X)
    F = rf.transform(X)
    assert_csr_unchanged(X, snap)
    np.testing.assert_allclose(F, rf.transform(dense), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(rf.transform(read_only(X)), F)
    np.testing.assert_array_equal(rf.transform(read_only(dense)), rf.transform(dense))
    assert rf.transform(sp.csr_matrix((0, dense.shape[1]))).shape == (0, 64)
    # F(2^k x) = 2^k F(x) bit for bit, including beyond the range where X W would overflow
    Y = np.sign(dense[:6]) * (0.25 + np.abs(dense[:6]))
    assert_scales_exactly(rf.transform, Y, 1, (-1000, -300, 0, 300, 1000))


def test_float32_arithmetic_on_float64_input_beyond_the_float32_range():
    # dtype='float32' with float64 rows of size 2^100: rescaled before the cast, so no inf / NaN inside
    X = np.random.default_rng(1).standard_normal((4, 5))
    rf = NTKRandomFeatures(depth=2, n_components=16, dtype="float32", seed=0).fit(X)
    got = rf.transform(np.ldexp(X, 100))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.ldexp(rf.transform(X), 100))
    with pytest.raises(ValueError, match="exceeds the float32 range"):
        rf.transform(np.ldexp(X, 200))


# ------------------------------------------------------------------------------------------ orthogonal, centred
@pytest.mark.parametrize("orthogonal,centered,shared,linear", [
    (True, True, True, 0.5), (False, True, True, 0.5), (True, False, True, 0.5), (True, True, False, 0.5),
    (True, True, True, 0.0), (False, False, False, 0.0)])
def test_orthogonal_and_centred_features_are_unbiased_at_depth_one(orthogonal, centered, shared, linear):
    """At L = 1 every construction is unbiased for the exact NTK (the linear term's rows of the TensorSRHT's own
    transform included: m = 40 on d = 6 pads that transform to 16 for k = 15 rows); 400 seeds give z-scores
    ~ N(0, 1) per entry; P(max of 15 |z| > 6) < 3e-8."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5, 6))
    X[1] = X[0] + 0.3 * rng.standard_normal(6)
    K = ntk_kernel(X, depth=1)
    S = np.array([(lambda F: F @ F.T)(NTKRandomFeatures(1, 40, orthogonal=orthogonal, centered=centered,
                                                         shared_directions=shared, linear_fraction=linear,
                                                         seed=s).fit_transform(X)) for s in range(400)])
    iu = np.triu_indices(5)
    z = (S.mean(axis=0) - K)[iu] / (S.std(axis=0, ddof=1)[iu] / np.sqrt(400))
    assert np.abs(z).max() < 6, z


def test_relu_mean_matches_monte_carlo():
    from ntk_sketch.features.ntk_random_features import _relu_mean, sample_leverage_relu_weights

    u = np.zeros(7)
    u[0] = 1.0
    W, w = sample_leverage_relu_weights(7, 200000, seed=0)
    f = w * np.maximum(u @ W, 0.0)
    # standard error of the mean of 2e5 features of variance < 7 is < 0.006; 6 s.e. bound
    assert abs(f.mean() - _relu_mean(7, "leverage")) < 0.035
    assert _relu_mean(10**6, "leverage") == pytest.approx(1 / np.sqrt(2 * np.pi), rel=1e-5)


def _standardised_fashion_rows(n):
    """The first n bundled Fashion-MNIST training rows, every column standardised with the subset's statistics."""
    from ntk_sketch.datasets import load_bundled_fashion_mnist

    Xtr, _ = load_bundled_fashion_mnist("train", flatten=True)
    sd = Xtr.std(axis=0)
    sd[sd == 0] = 1.0
    return ((Xtr - Xtr.mean(axis=0)) / sd)[:n]


def test_centred_features_lower_the_error_on_standardised_rows():
    """Bundled Fashion-MNIST, columns standardised, L = 2, m = 1024: measured 0.23 (plain) against 0.14 (defaults)
    on the full protocol.  Each seed pair is one comparison; the defaults must win in at least 4 of 5 (with a
    per-seed win probability >= 0.95 this fails with probability < 0.03; measured: every seed wins by > 30%)."""
    X = _standardised_fashion_rows(200)
    K = ntk_kernel(X, depth=2)
    wins = 0
    for s in range(5):
        new = relative_frobenius_error(NTKRandomFeatures(2, 1024, seed=s).fit_transform(X), K)
        old = relative_frobenius_error(
            NTKRandomFeatures(2, 1024, orthogonal=False, centered=False, seed=s).fit_transform(X), K)
        wins += new < 0.85 * old
    assert wins >= 4


@pytest.mark.parametrize("density", [0.005, 0.2])
def test_sparse_rows_give_the_dense_features(density):
    """Below 3% density the first layer multiplies the CSR rows (njit kernel, O(nnz m)), above it the densified
    block: either way the features of the dense rows (to rounding: the sums run in another order)."""
    import scipy.sparse as sp

    from ntk_sketch.features.ntk_random_features import _use_sparse_products

    X = sp.random(40, 3000, density=density, random_state=0, format="csr")
    assert _use_sparse_products(X) == (density < 0.03)
    rf = NTKRandomFeatures(2, 256, seed=0, chunk_size=16).fit(X)
    np.testing.assert_allclose(rf.transform(X), rf.transform(X.toarray()), rtol=1e-10, atol=1e-12)


@given(n=st.integers(0, 6), d=st.integers(1, 30), k=st.integers(1, 9), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**16), f32=st.booleans())
def test_csr_kernel_equals_the_sparse_product(n, d, k, density, seed, f32):
    import scipy.sparse as sp

    from ntk_sketch.features.ntk_random_features import _csr_times_dense

    dtype = np.float32 if f32 else np.float64
    A = sp.random(n, d, density=density, random_state=seed, format="csr", dtype=dtype)
    W = np.random.default_rng(seed).standard_normal((d, k)).astype(dtype)
    out = np.full((n, k), np.nan, dtype=dtype)
    _csr_times_dense(A.indptr, A.indices, A.data, W, out)
    np.testing.assert_allclose(out, A.toarray() @ W, rtol=1e-5 if f32 else 1e-12, atol=1e-5 if f32 else 1e-12)


# ------------------------------------------------------------------------------------------ vs the transcription
@pytest.mark.parametrize("kw", [
    dict(depth=1, n_components=40),
    dict(depth=2, n_components=130, hidden_components=70),
    dict(depth=3, n_components=64, linear_fraction=0.2, shared_directions=False),
    dict(depth=2, n_components=50, centered=False),
    dict(depth=2, n_components=50, linear_fraction=0.0, orthogonal=False, sampling="gaussian"),
    dict(depth=2, n_components=90, n_step_features=120, relu_fraction=0.4),
], ids=str)
def test_transform_matches_the_naive_transcription(kw):
    """Every construction's fused kernels against tests/naive.py's layer-by-layer transcription (dense rows of
    d = 5 and 20: the first pads the linear term's transform beyond the input)."""
    from naive import ntk_random_features_naive

    for d in (5, 20):
        X = np.random.default_rng(d).standard_normal((7, d))
        rf = NTKRandomFeatures(seed=3, **kw).fit(X)
        expected = np.array([ntk_random_features_naive(rf, x) for x in X])
        np.testing.assert_allclose(rf.transform(X), expected, rtol=1e-10, atol=1e-12)


def test_defaults_beat_the_previous_defaults_on_standardised_rows():
    """Issue-level guard that the defaults are the more accurate choice: bundled Fashion-MNIST, columns
    standardised, L = 2, m = 1024, 10 seeds each.  Measured: median error 0.107 (defaults) against 0.130 (previous
    defaults: relu_fraction 0.35, m0 = 2 m1, no linear term, separate directions, hidden width m), ratio 0.82; the
    seed spread puts each median's standard deviation near 3% of it, so the asserted ratio 0.95 is more than three
    standard deviations from the measured one."""
    X = _standardised_fashion_rows(200)
    K = ntk_kernel(X, depth=2)
    m = 1024
    new = [relative_frobenius_error(NTKRandomFeatures(2, m, seed=s).fit_transform(X), K) for s in range(10)]
    old = [relative_frobenius_error(NTKRandomFeatures(
        2, m, relu_fraction=0.35, n_step_features=2 * round(0.35 * m), linear_fraction=0.0, shared_directions=False,
        hidden_components=m, seed=s).fit_transform(X), K) for s in range(10)]
    assert np.median(new) < 0.95 * np.median(old), (np.median(new), np.median(old))


def test_thread_count_does_not_change_results():
    """Dense and CSR rows (the njit CSR kernel), 70 rows: more than two 32-row blocks of the fused kernels."""
    import numba
    import scipy.sparse as sp

    X = sp.random(70, 400, density=0.02, random_state=1, format="csr")
    rf = NTKRandomFeatures(2, 300, seed=2).fit(X)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        F1, G1 = rf.transform(X), rf.transform(X.toarray())
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        F2, G2 = rf.transform(X), rf.transform(X.toarray())
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(F1, F2)
    np.testing.assert_array_equal(G1, G2)
