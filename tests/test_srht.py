"""Tests of ntk_sketch.sketches.srht: the FWHT against scipy.linalg.hadamard, the SRHT's exact facts, statistics, properties."""
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hypothesis import given, strategies as st

from ntk_sketch.sketches.srht import SRHT, _fwht, _srht_dense, _srht_sparse, apply_srht, draw_srht, fwht, next_pow2

from _sketch_stats import Z_MAX, loglog_slope, z_score
from naive import srht_naive


@pytest.mark.parametrize("N", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048])
def test_fwht_equals_hadamard_matrix(N):
    # every stage combination (radix-4 head, radix-4 body, a final radix-2 stage) for odd and even log2 N
    A = np.random.default_rng(N).standard_normal((3, N))
    H = scipy.linalg.hadamard(N)
    assert np.allclose(fwht(A), A @ H.T, atol=1e-9 * N)
    assert np.allclose(fwht(A, normalize=True), A @ H.T / np.sqrt(N), atol=1e-9 * N)
    a = A[0].copy()
    _fwht(a)  # in place, single vector
    assert np.allclose(a, H @ A[0], atol=1e-9 * N)


def test_fwht_float32_and_involution():
    a = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    b = fwht(a)
    assert b.dtype == np.float32
    assert np.allclose(fwht(b) / 256, a, atol=1e-5)
    with pytest.raises(ValueError, match="power of two"):
        fwht(np.ones(12))


def test_next_pow2():
    assert [next_pow2(n) for n in [1, 2, 3, 4, 5, 1000, 1024, 1025]] == [1, 2, 4, 4, 8, 1024, 1024, 2048]


def test_tables():
    t = draw_srht(100, 50, seed=0)
    assert t.n_pad == 128 and t.signs.shape == (100,) and t.rows.shape == (50,)
    assert len(np.unique(t.rows)) == 50 and t.rows.min() >= 0 and t.rows.max() < 128
    assert set(np.unique(t.signs)) <= {-1.0, 1.0} and np.isclose(t.scale, 1 / np.sqrt(50))
    assert draw_srht(10, 300, seed=0).n_pad == 512  # padded up to m as well


@pytest.mark.parametrize("d,m", [(16, 16), (13, 16), (5, 64), (64, 64)])
def test_isometry_when_m_is_padded_length(d, m):
    # m = N: P is a permutation, so x -> (1/sqrt N) Hu E pad(x) is orthonormal: an isometry of R^d
    S = SRHT(d, m, seed=1).fit().to_dense()
    assert np.allclose(S.T @ S, np.eye(d), atol=1e-12)
    X = np.random.default_rng(2).standard_normal((6, d))
    Z = SRHT(d, m, seed=1).fit().transform(X)
    assert np.allclose(np.linalg.norm(Z, axis=1), np.linalg.norm(X, axis=1))
    assert np.allclose(Z @ Z.T, X @ X.T)


def test_matches_naive_dense_and_sparse():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 37))
    X[X < 0.5] = 0.0
    t = draw_srht(37, 20, seed=4)
    ref = np.stack([srht_naive(t.signs, t.rows, t.scale, t.n_pad, x) for x in X])
    assert np.allclose(apply_srht(X, t), ref, atol=1e-12)
    assert np.allclose(apply_srht(sp.csr_matrix(X), t), ref, atol=1e-12)
    # single-vector kernels, with dirty buffers (they must overwrite them)
    work = np.full(t.n_pad, 7.0)
    out = np.full(20, 7.0)
    _srht_dense(t.signs, t.rows, t.scale, X[1], out, work)
    assert np.allclose(out, ref[1])
    nz = np.flatnonzero(X[2])
    work[:] = 3.0
    _srht_sparse(t.signs, t.rows, t.scale, nz, X[2, nz], out, work)
    assert np.allclose(out, ref[2])


def test_batch_larger_than_block_and_thread_independent():
    # more rows than one prange block (32) and a row count not a multiple of it
    X = np.random.default_rng(5).standard_normal((77, 30))
    t = draw_srht(30, 16, seed=6)
    full = apply_srht(X, t)
    parts = np.vstack([apply_srht(X[i:i + 1], t) for i in range(77)])
    assert np.array_equal(full, parts)


def test_same_seed_same_output_and_dtypes():
    X = np.random.default_rng(0).standard_normal((4, 25))
    a = SRHT(25, 9, seed=11).fit()(X)
    assert np.array_equal(a, SRHT(25, 9, seed=11).fit()(X))
    assert not np.array_equal(a, SRHT(25, 9, seed=12).fit()(X))
    assert SRHT(25, 9, seed=11).fit()(X.astype(np.float32)).dtype == np.float32
    assert np.allclose(SRHT(25, 9, seed=11).fit()(X.astype(np.float32)), a, atol=1e-5)


def test_errors():
    s = SRHT(5, 3, seed=0).fit()
    with pytest.raises(ValueError, match="features"):
        s(np.ones((2, 4)))
    with pytest.raises(ValueError, match="inf"):
        s(np.full((1, 5), np.inf))
    with pytest.raises(ValueError, match="m"):
        SRHT(5, 0).fit()


# ---------------------------------------------------------------------------------------------- statistics
def _inner_products(x, y, m, seeds):
    X = np.stack([x, y])
    out = []
    for sd in seeds:
        Z = apply_srht(X, draw_srht(len(x), m, sd))
        out.append(Z[0] @ Z[1])
    return np.array(out)


def test_unbiased():
    # R = 2000 seeds, 6-SE band: failure probability 2e-9 (normal tail).  d = 40 pads to N = 64 > m = 8.
    rng = np.random.default_rng(7)
    x = rng.standard_normal(40)
    y = x + 0.7 * rng.standard_normal(40)
    ips = _inner_products(x, y, 8, range(2000))
    assert abs(z_score(ips, x @ y)) <= Z_MAX


def _concentration(ms, R):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(1000)
    y = rng.standard_normal(1000) + 0.5 * x
    nrm = np.linalg.norm(x) * np.linalg.norm(y)
    errs = [(_inner_products(x, y, m, range(1000 * i, 1000 * i + R)) - x @ y) / nrm for i, m in enumerate(ms)]
    slope, se = loglog_slope(ms, [e ** 2 for e in errs])
    # Sampling m of N rows without replacement: the variance is (c/m) (1 - (m-1)/(N-1)) exactly, so with
    # N = 1024 and m <= 128 the finite-population factor bends the slope by at most 0.06 (steeper): the band
    # is 6 SE (2e-9) plus that one-sided allowance.
    assert -0.5 - 0.06 - Z_MAX * se <= slope <= -0.5 + Z_MAX * se, (slope, se)
    assert se < 0.06
    # 95% quantile.  E_D[(Hu E x)_i^2 (Hu E y)_i^2] <= 3 |x|^2 |y|^2 (fourth moment of Rademacher sums), so
    # Var <= 3 / m (normalised); Chebyshev at level 0.01 and the binomial count (<= 1.4e-9 for R >= 400) as in
    # test_countsketch: q95 <= sqrt(300 / m) = 17.3 / sqrt(m).
    for m, e in zip(ms, errs):
        assert np.quantile(np.abs(e), 0.95) <= np.sqrt(3 / 0.01 / m)


def test_concentration_modest():
    _concentration([8, 16, 32, 64, 128], 400)


@pytest.mark.slow
def test_concentration_large():
    _concentration([8, 16, 32, 64, 128], 3000)


# ---------------------------------------------------------------------------------------------- hypothesis
@given(
    n=st.integers(1, 4),
    d=st.integers(1, 40),
    m=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    density=st.floats(0.0, 1.0),
)
def test_property_shapes_linearity_sparse(n, d, m, seed, dtype, density):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[rng.random((n, d)) > density] = 0.0
    Y = rng.standard_normal((n, d))
    a, b = rng.standard_normal(2)
    s = SRHT(d, m, seed=seed).fit()
    out = s(X.astype(dtype))
    assert out.shape == (n, m) and out.dtype == dtype
    assert np.allclose(s(a * X + b * Y), a * s(X) + b * s(Y), atol=1e-10 * (1 + abs(a) + abs(b)))
    assert np.allclose(s(sp.csr_matrix(X)), s(X), atol=1e-12)
    # never expands norms by more than sqrt(N/m) (P samples rows of an orthonormal map, scaled by sqrt(N/m))
    N = next_pow2(max(d, m))
    assert np.all(np.linalg.norm(s(X), axis=1) <= np.sqrt(N / m) * np.linalg.norm(X, axis=1) * (1 + 1e-12) + 1e-12)


# ------------------------------------------------------------------------------------------ issue 15
def test_non_canonical_csr_read_only_extreme_and_empty_input():
    from _inputs import assert_csr_unchanged, assert_scales_exactly, non_canonical_csr, read_only, snapshot_csr

    X, dense = non_canonical_csr(seed=4)
    snap = snapshot_csr(X)
    t = draw_srht(12, 8, seed=0)
    out = apply_srht(X, t)
    assert_csr_unchanged(X, snap)
    np.testing.assert_allclose(out, apply_srht(dense, t), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(apply_srht(read_only(X), t), out)
    Y = np.sign(dense) * (0.25 + np.abs(dense))
    assert_scales_exactly(lambda A: apply_srht(A, t), Y, 1, (-1000, -300, 0, 300, 1000))
    assert_scales_exactly(lambda A: fwht(A[:, :8]), Y, 1, (-1000, -300, 0, 300, 1000))
    assert apply_srht(np.ones((0, 12)), t).shape == (0, 8)
    assert fwht(np.ones((0, 8))).shape == (0, 8)


def test_fwht_names_sparse_input():
    # issue 15: np.asarray of a sparse matrix is a 0-d object array: the message spoke of dtype object
    with pytest.raises(ValueError, match=r"A is a scipy.sparse matrix .*A.toarray\(\)"):
        fwht(sp.csr_matrix(np.eye(4)))
    A = np.arange(8.0).reshape(1, 8)
    A.flags.writeable = False
    np.testing.assert_array_equal(fwht(A), fwht(np.arange(8.0).reshape(1, 8)))
