"""Tests of ntk_sketch.sketches.tensor_srht: exact facts, the normalisation (unbiasedness), concentration, properties."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, strategies as st

from ntk_sketch.sketches.tensor_srht import TensorSRHT, _tensor_srht, draw_tensor_srht, tensor_srht

from _sketch_stats import Z_MAX, loglog_slope, z_score
from naive import tensor_srht_naive


def _matrix(t):
    """The (m, d1 d2) matrix of the sketch acting on kron(x, y)."""
    d1, d2 = len(t.signs1), len(t.signs2)
    H1 = scipy.linalg.hadamard(t.n_pad1)[:, :d1] * t.signs1
    H2 = scipy.linalg.hadamard(t.n_pad2)[:, :d2] * t.signs2
    return t.scale * np.stack([np.kron(H1[i], H2[j]) for i, j in zip(t.rows1, t.rows2)])


def test_tables():
    t = draw_tensor_srht(20, 7, 30, seed=0)
    assert (t.n_pad1, t.n_pad2) == (32, 8) and np.isclose(t.scale, 1 / np.sqrt(30))
    flat = t.rows1 * t.n_pad2 + t.rows2
    assert len(np.unique(flat)) == 30  # pairs without replacement
    assert t.rows1.max() < 32 and t.rows2.max() < 8
    # more pairs than the grid: N1 is padded further
    t = draw_tensor_srht(2, 2, 10, seed=0)
    assert t.n_pad1 * t.n_pad2 >= 10 and len(np.unique(t.rows1 * t.n_pad2 + t.rows2)) == 10


@pytest.mark.parametrize("d1,d2,m", [(5, 3, 4), (16, 16, 10), (1, 9, 7), (20, 7, 30)])
def test_matches_kron_matrix_and_naive(d1, d2, m):
    rng = np.random.default_rng(d1 * 100 + d2)
    X = rng.standard_normal((4, d1))
    Y = rng.standard_normal((4, d2))
    t = draw_tensor_srht(d1, d2, m, seed=1)
    out = tensor_srht(X, Y, t)
    M = _matrix(t)
    assert np.allclose(out, np.stack([M @ np.kron(x, y) for x, y in zip(X, Y)]), atol=1e-12)
    ref = np.stack([tensor_srht_naive(t.signs1, t.signs2, t.rows1, t.rows2, t.scale, t.n_pad1, t.n_pad2, x, y)
                    for x, y in zip(X, Y)])
    assert np.allclose(out, ref, atol=1e-12)
    w1, w2, o = np.full(t.n_pad1, 5.0), np.full(t.n_pad2, 5.0), np.full(m, 5.0)
    _tensor_srht(t.signs1, t.signs2, t.rows1, t.rows2, t.scale, X[0], Y[0], o, w1, w2)
    assert np.allclose(o, ref[0])


def test_all_pairs_is_exact():
    # m = N1 N2: every pair sampled once, and sum_ij (Hu a)_i (Hu a')_i (Hu b)_j (Hu b')_j = N1 N2 <a,a'><b,b'>,
    # so the inner products are reproduced exactly (this pins the 1/sqrt(m) constant with the +-1 transform)
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((5, 6)), rng.standard_normal((5, 3))
    Z = TensorSRHT(6, 3, 32, seed=4).fit()(X, Y)
    assert np.allclose(Z @ Z.T, (X @ X.T) * (Y @ Y.T))


def test_same_seed_dtypes_errors():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 9)), rng.standard_normal((40, 5))
    a = TensorSRHT(9, 5, 12, seed=3).fit()(X, Y)
    assert np.array_equal(a, TensorSRHT(9, 5, 12, seed=3).fit()(X, Y))
    assert np.array_equal(a, TensorSRHT(9, 5, 12, seed=np.random.default_rng(3)).fit()(X, Y))
    assert not np.array_equal(a, TensorSRHT(9, 5, 12, seed=4).fit()(X, Y))
    b = TensorSRHT(9, 5, 12, seed=3).fit()(X.astype(np.float32), Y.astype(np.float32))
    assert b.dtype == np.float32 and np.allclose(a, b, atol=1e-4)
    assert TensorSRHT(9, 5, 12, seed=3).fit()(X.astype(np.float32), Y).dtype == np.float64
    ts = TensorSRHT(9, 5, 12, seed=0).fit()
    with pytest.raises(ValueError, match="same number of rows"):
        ts(X, Y[:3])
    with pytest.raises(ValueError, match="features"):
        ts(Y, Y)
    with pytest.raises(ValueError, match="NaN"):
        ts(np.full((1, 9), np.nan), Y[:1])


# ---------------------------------------------------------------------------------------------- statistics
def _inner_products(x, y, x2, y2, m, seeds):
    out = []
    for sd in seeds:
        t = draw_tensor_srht(len(x), len(y), m, sd)
        Z = tensor_srht(np.stack([x, x2]), np.stack([y, y2]), t)
        out.append(Z[0] @ Z[1])
    return np.array(out)


def test_unbiased_different_lengths():
    # E <S(x(x)y), S(x'(x)y')> = <x,x'><y,y'> with d1 != d2: R = 3000 seeds, 6-SE band (failure prob. 2e-9).
    # A wrong constant (e.g. N/sqrt(m) with the +-1 transform, or 1/sqrt(m) with the orthonormal one) is off by
    # a factor N1 N2 = 256 and fails by hundreds of standard errors.
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal(20), rng.standard_normal(7)
    x2, y2 = x + 0.5 * rng.standard_normal(20), y + 0.5 * rng.standard_normal(7)
    ips = _inner_products(x, y, x2, y2, 8, range(3000))
    target = (x @ x2) * (y @ y2)
    assert abs(z_score(ips, target)) <= Z_MAX
    # variance bound of the module docstring: Var <= 9 |x|^2|x'|^2|y|^2|y'|^2 / m.  The sample variance of 3000
    # draws exceeds 1.5x the true one with negligible probability (its relative SE here is < 0.1).
    bound = 9 * (x @ x) * (x2 @ x2) * (y @ y) * (y2 @ y2) / 8
    assert ips.var(ddof=1) <= 1.5 * bound


def _concentration(ms, R):
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal(64), rng.standard_normal(64)
    x2, y2 = x + rng.standard_normal(64), y + rng.standard_normal(64)
    nrm = np.linalg.norm(x) * np.linalg.norm(x2) * np.linalg.norm(y) * np.linalg.norm(y2)
    target = (x @ x2) * (y @ y2)
    errs = [(_inner_products(x, y, x2, y2, m, range(1000 * i, 1000 * i + R)) - target) / nrm
            for i, m in enumerate(ms)]
    slope, se = loglog_slope(ms, [e ** 2 for e in errs])
    # Var = E_D[sigma_D^2] (N1N2 - m) / (m (N1N2 - 1)) exactly (the mean over all pairs is exact for every sign
    # draw); with N1N2 = 4096 and m <= 256 the finite-population factor bends the slope by < 0.02 (steeper).
    assert -0.5 - 0.02 - Z_MAX * se <= slope <= -0.5 + Z_MAX * se, (slope, se)
    assert se < 0.06
    # 95% quantile: Var <= 9 / m (normalised), Chebyshev at level 0.01 and the binomial count of exceedances
    # (<= 1.4e-9 for R >= 400) as in test_countsketch: q95 <= sqrt(900 / m) = 30 / sqrt(m).
    for m, e in zip(ms, errs):
        assert np.quantile(np.abs(e), 0.95) <= np.sqrt(9 / 0.01 / m)


def test_concentration_modest():
    _concentration([16, 32, 64, 128, 256], 400)


@pytest.mark.slow
def test_concentration_large():
    _concentration([16, 32, 64, 128, 256], 4000)


# ---------------------------------------------------------------------------------------------- hypothesis
@given(
    n=st.integers(1, 4),
    d1=st.integers(1, 20),
    d2=st.integers(1, 20),
    m=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_property_shapes_bilinearity(n, d1, d2, m, seed, dtype):
    rng = np.random.default_rng(seed)
    X, X2 = rng.standard_normal((2, n, d1))
    Y, Y2 = rng.standard_normal((2, n, d2))
    a, b = rng.standard_normal(2)
    ts = TensorSRHT(d1, d2, m, seed=seed).fit()
    out = ts(X.astype(dtype), Y.astype(dtype))
    assert out.shape == (n, m) and out.dtype == dtype
    tol = 1e-10 * (1 + abs(a) + abs(b))
    assert np.allclose(ts(a * X + b * X2, Y), a * ts(X, Y) + b * ts(X2, Y), atol=tol)
    assert np.allclose(ts(X, a * Y + b * Y2), a * ts(X, Y) + b * ts(X, Y2), atol=tol)


# ------------------------------------------------------------------------------------------ issue 15
def test_extreme_scales_are_exact_and_empty_batches_work():
    from _inputs import assert_scales_exactly

    rng = np.random.default_rng(0)
    X = np.sign(rng.standard_normal((5, 6))) * (0.25 + rng.random((5, 6)))
    Y = np.sign(rng.standard_normal((5, 3))) * (0.25 + rng.random((5, 3)))
    t = draw_tensor_srht(6, 3, 8, seed=0)
    assert_scales_exactly(lambda A: tensor_srht(A, Y, t), X, 1, (-1000, -300, 0, 300, 1000))
    assert_scales_exactly(lambda B: tensor_srht(X, B, t), Y, 1, (-1000, -300, 0, 300, 1000))
    assert tensor_srht(np.ones((0, 6)), np.ones((0, 3)), t).shape == (0, 8)
