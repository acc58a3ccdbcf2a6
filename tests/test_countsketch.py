"""Tests of ntk_sketch.sketches.countsketch: exact facts, then statistics, then hypothesis properties."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, strategies as st

from ntk_sketch.sketches.countsketch import (
    CountSketch,
    _countsketch_dense,
    _countsketch_sparse,
    apply_countsketch,
    draw_countsketch,
)

from _sketch_stats import Z_MAX, loglog_slope, z_score
from naive import countsketch_matrix_naive


def test_tables_shape_and_block_structure():
    t = draw_countsketch(50, 10, s=3, seed=0)
    assert t.indices.shape == (50, 3) and t.signs.shape == (50, 3) and t.m == 10
    # block k of the rows is [floor(k m / s), floor((k + 1) m / s)): the s rows of a column are distinct
    bounds = (np.arange(4) * 10) // 3
    for k in range(3):
        assert np.all((t.indices[:, k] >= bounds[k]) & (t.indices[:, k] < bounds[k + 1]))
    assert np.allclose(np.abs(t.signs), 1 / np.sqrt(3))


def test_matches_naive_matrix_dense_and_sparse():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 40))
    X[X < 0.3] = 0.0
    cs = CountSketch(40, 12, s=2, seed=3).fit()
    S = countsketch_matrix_naive(cs.tables_.indices, cs.tables_.signs, 12)
    assert np.allclose(cs.transform(X), X @ S.T, atol=1e-12)
    assert np.allclose(cs.transform(sp.csr_matrix(X)), X @ S.T, atol=1e-12)
    # every column of an OSNAP matrix has unit norm exactly
    assert np.allclose(np.linalg.norm(S, axis=0), 1.0)


def test_single_vector_kernels():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(30)
    t = draw_countsketch(30, 8, 1, seed=4)
    out = np.full(8, 99.0)  # must be overwritten, not accumulated into
    _countsketch_dense(t.indices, t.signs, x, out)
    assert np.allclose(out, countsketch_matrix_naive(t.indices, t.signs, 8) @ x)
    idx = np.array([3, 7, 29], dtype=np.int32)
    out2 = np.full(8, -5.0)
    _countsketch_sparse(t.indices, t.signs, idx, x[idx], out2)
    z = np.zeros(30)
    z[idx] = x[idx]
    assert np.allclose(out2, countsketch_matrix_naive(t.indices, t.signs, 8) @ z)


def test_same_seed_same_output_and_generator_accepted():
    X = np.random.default_rng(0).standard_normal((4, 25))
    a = CountSketch(25, 9, seed=11).fit().transform(X)
    b = CountSketch(25, 9, seed=11).fit().transform(X)
    c = CountSketch(25, 9, seed=np.random.default_rng(11)).fit().transform(X)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(a, CountSketch(25, 9, seed=12).fit().transform(X))


def test_float32_kept_and_float64_default():
    X = np.random.default_rng(0).standard_normal((3, 20))
    cs = CountSketch(20, 8, seed=0).fit()
    assert cs(X.astype(np.float32)).dtype == np.float32
    assert cs(X.astype(np.int64)).dtype == np.float64
    assert cs(sp.csr_matrix(X.astype(np.float32))).dtype == np.float32
    assert np.allclose(cs(X.astype(np.float32)), cs(X), atol=1e-5)


def test_errors():
    cs = CountSketch(5, 3, seed=0).fit()
    with pytest.raises(ValueError, match="features"):
        cs.transform(np.ones((2, 6)))
    with pytest.raises(ValueError, match="NaN"):
        cs.transform(np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="2-d"):
        cs.transform(np.ones(5))
    with pytest.raises(ValueError, match="s"):
        draw_countsketch(5, 3, s=4)
    with pytest.raises(ValueError, match="m"):
        draw_countsketch(5, 0)
    with pytest.raises(ValueError, match="seed"):
        draw_countsketch(5, 3, seed=-1)


# ---------------------------------------------------------------------------------------------- statistics
def _inner_products(x, y, m, s, seeds):
    X = np.stack([x, y])
    out = []
    for sd in seeds:
        Z = apply_countsketch(X, draw_countsketch(len(x), m, s, sd))
        out.append(Z[0] @ Z[1])
    return np.array(out)


@pytest.mark.parametrize("s", [1, 3])
def test_unbiased(s):
    # Mean over R = 2000 independent seeds against <x, y>: |z| <= 6, failure probability 2e-9 (normal tail; the
    # estimator has finite variance <= 2 |x|^2 |y|^2 / m, so the CLT applies at this R).
    rng = np.random.default_rng(5)
    x = rng.standard_normal(40)
    y = x + 0.7 * rng.standard_normal(40)
    ips = _inner_products(x, y, 8, s, range(2000))
    assert abs(z_score(ips, x @ y)) <= Z_MAX
    # the exact variance of CountSketch (s = 1): (|x|^2|y|^2 + <x,y>^2 - 2 sum x_i^2 y_i^2) / m.  The sample
    # variance of 2000 draws has relative standard error about sqrt((kurtosis - 1) / 2000) < 0.1 here; we only
    # check it is within a factor 1.5 (a 5-sigma band), which catches a wrong 1/sqrt(s) scaling (factor s).
    if s == 1:
        v = (x @ x * (y @ y) + (x @ y) ** 2 - 2 * np.sum(x ** 2 * y ** 2)) / 8
        assert 1 / 1.5 < ips.var(ddof=1) / v < 1.5


def _distortions(m, seeds, s=1):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(300)
    y = rng.standard_normal(300) + 0.5 * x
    return (_inner_products(x, y, m, s, seeds) - x @ y) / (np.linalg.norm(x) * np.linalg.norm(y))


def _concentration(ms, R, s):
    errs = [_distortions(m, range(1000 * i, 1000 * i + R), s) for i, m in enumerate(ms)]
    slope, se = loglog_slope(ms, [e ** 2 for e in errs])
    # The variance of OSNAP is exactly proportional to 1/m (for s = 1; for block OSNAP up to the O(1/m) block
    # rounding), so the true slope of log RMS distortion is -1/2: a 6-SE band fails with probability ~2e-9.
    assert abs(slope + 0.5) <= Z_MAX * se, (slope, se)
    assert se < 0.06  # the band itself must be narrow enough to mean something
    # 95% quantile: Var <= 2 / m (normalised), so by Chebyshev P(|err| > sqrt(2 / (0.01 m))) <= 0.01, and the
    # number of the R draws beyond that level is Binomial(R, <= 0.01): more than 5% of them has probability
    # binom.sf(0.05 R, R, 0.01) <= 1.4e-9 for R >= 400.  Stated multiple: q95 <= 14.2 / sqrt(m).
    for m, e in zip(ms, errs):
        assert np.quantile(np.abs(e), 0.95) <= np.sqrt(2 / 0.01) / np.sqrt(m)


def test_concentration_modest():
    _concentration([16, 32, 64, 128, 256], 400, 1)


@pytest.mark.slow
@pytest.mark.parametrize("s", [1, 2, 4])
def test_concentration_large(s):
    _concentration([16, 32, 64, 128, 256, 512, 1024], 3000, s)


# ---------------------------------------------------------------------------------------------- hypothesis
@given(
    n=st.integers(1, 5),
    d=st.integers(1, 30),
    m=st.integers(1, 20),
    s=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    density=st.floats(0.0, 1.0),
)
def test_property_shapes_linearity_sparse(n, d, m, s, seed, dtype, density):
    s = min(s, m)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[rng.random((n, d)) > density] = 0.0
    Y = rng.standard_normal((n, d))
    a, b = rng.standard_normal(2)
    cs = CountSketch(d, m, s=s, seed=seed).fit()
    out = cs(X.astype(dtype))
    assert out.shape == (n, m) and out.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert np.allclose(cs(a * X + b * Y), a * cs(X) + b * cs(Y), atol=tol * (1 + abs(a) + abs(b)) * 10)
    assert np.allclose(cs(sp.csr_matrix(X)), cs(X), atol=1e-12)


# ------------------------------------------------------------------------------------------ issue 15
def test_non_canonical_csr_read_only_extreme_and_empty_input():
    from _inputs import assert_csr_unchanged, assert_scales_exactly, non_canonical_csr, read_only, snapshot_csr

    X, dense = non_canonical_csr(seed=3)
    snap = snapshot_csr(X)
    t = draw_countsketch(12, 8, s=2, seed=0)
    out = apply_countsketch(X, t)
    assert_csr_unchanged(X, snap)  # issue 15: the caller's CSR arrays were summed and sorted in place
    np.testing.assert_allclose(out, apply_countsketch(dense, t), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(apply_countsketch(read_only(X), t), out)
    np.testing.assert_array_equal(apply_countsketch(read_only(dense), t), apply_countsketch(dense, t))
    Y = np.sign(dense) * (0.25 + np.abs(dense))
    assert_scales_exactly(lambda A: apply_countsketch(A, t), Y, 1, (-1000, -300, 0, 300, 1000))
    assert_scales_exactly(lambda A: apply_countsketch(sp.csr_matrix(A), t), Y, 1, (-1000, 0, 1000))
    assert apply_countsketch(np.ones((0, 12)), t).shape == (0, 8)
    with pytest.raises(ValueError, match="exceeds the float64 range.*X"):
        apply_countsketch(np.full((1, 12), 1.7e308), t)  # colliding coordinates: the output itself overflows
