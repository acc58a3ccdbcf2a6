"""Tests of ntk_sketch.kernels.ntk_exact: reference values, the naive recursion, kernel properties, and the empirical NTK
of a wide finite ReLU network."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ntk_sketch.kernels.ntk_exact import nngp_cosine_kernel, nngp_kernel, ntk_cosine_kernel, ntk_kernel

from naive import fc_ntk_matrix_naive


# ------------------------------------------------------------------------------------------ exact values
@pytest.mark.parametrize(
    "depth, expected",
    [(1, (0.0, 1 / math.pi, 2.0)), (2, (0.318310, 0.685709, 3.0)), (3, (0.685709, 1.060388, 4.0))],
)
def test_reference_values(depth, expected):
    # docs/math.md §2: K_L at a = (-1, 0, 1), published to 6 decimals
    np.testing.assert_allclose(ntk_cosine_kernel([-1.0, 0.0, 1.0], depth), expected, rtol=0, atol=5e-7)


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 10])
def test_value_at_one_is_depth_plus_one(depth):
    assert ntk_cosine_kernel(1.0, depth) == depth + 1
    assert nngp_cosine_kernel(1.0, depth) == 1.0


def test_two_layer_closed_form():
    # L = 1: NTK = <y,z> k0(a) + |y||z| k1(a), i.e. K_1(a) = a k0(a) + k1(a)
    a = np.linspace(-1, 1, 101)
    theta = np.arccos(a)
    k0 = 1 - theta / np.pi
    k1 = (np.sin(theta) + a * (np.pi - theta)) / np.pi
    np.testing.assert_allclose(ntk_cosine_kernel(a, 1), a * k0 + k1, rtol=0, atol=1e-15)


def test_depth_one_dips_below_zero():
    # docs/math.md §2: K_1 dips to about -0.137 near a = -0.79, so relative error bounds cannot hold there
    a = np.linspace(-1, 1, 200001)
    k = ntk_cosine_kernel(a, 1)
    assert k.min() == pytest.approx(-0.137, abs=5e-4)
    assert a[k.argmin()] == pytest.approx(-0.79, abs=0.01)


# ------------------------------------------------------------------------------------------ against naive
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_matches_naive_recursion(depth):
    rng = np.random.default_rng(depth)
    X1 = rng.standard_normal((7, 5))
    X2 = rng.standard_normal((4, 5)) * 3.0
    X1[2] = 0.0  # a zero row
    X2[1] = -2.5 * X1[0]  # an antiparallel pair (a = -1)
    for fn, nngp in ((ntk_kernel, False), (nngp_kernel, True)):
        np.testing.assert_allclose(fn(X1, X2, depth=depth), fc_ntk_matrix_naive(X1, X2, depth, nngp), rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(fn(X1, depth=depth), fc_ntk_matrix_naive(X1, X1, depth, nngp), rtol=1e-12,
                                   atol=1e-12)


def test_gram_equals_cross_and_is_exactly_symmetric():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((33, 6))  # odd row count exercises the unpaired middle row
    K = ntk_kernel(X, depth=3)
    assert np.array_equal(K, K.T)
    # off the diagonal the two paths differ only by BLAS summation order; on the diagonal the cross path's cosine can
    # round to 1 - 1 ulp, where K_L has a square-root singularity (~1e-8 relative), so compare the diagonal exactly
    # against |x|^2 (L + 1) instead.
    off = ~np.eye(33, dtype=bool)
    np.testing.assert_allclose(K[off], ntk_kernel(X, X, depth=3)[off], rtol=1e-10)
    np.testing.assert_allclose(np.diag(K), 4.0 * np.einsum("ij,ij->i", X, X), rtol=1e-14)


def test_zero_rows_give_zero_not_nan():
    X = np.zeros((3, 4))
    X[1, 2] = 1.0
    for K in (ntk_kernel(X, depth=2), ntk_kernel(X, X[:2], depth=2), nngp_kernel(X, depth=1)):
        assert np.isfinite(K).all()
    K = ntk_kernel(X, depth=2)
    assert K[0].tolist() == [0.0, 0.0, 0.0] and K[1, 1] == 3.0


def test_float32_accepted_and_computed_in_float64():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 3))
    K32 = ntk_kernel(X.astype(np.float32), depth=2)
    assert K32.dtype == np.float64
    np.testing.assert_allclose(K32, ntk_kernel(X.astype(np.float32).astype(np.float64), depth=2), rtol=1e-12)


# ------------------------------------------------------------------------------------------ properties
finite = st.floats(-10, 10, allow_nan=False, width=64)


@st.composite
def data_matrix(draw, max_rows=12, max_cols=6):
    n = draw(st.integers(1, max_rows))
    d = draw(st.integers(1, max_cols))
    return draw(arrays(np.float64, (n, d), elements=finite))


def _snap_perturbation(cosine_fn, depth):
    """Largest change of the scalar kernel when a computed cosine within COSINE_SNAP of +-1 is rounded to +-1."""
    from ntk_sketch.kernels.arccos import COSINE_SNAP

    a = np.array([1.0, 1.0 - COSINE_SNAP, -1.0, -1.0 + COSINE_SNAP])
    k = cosine_fn(a, depth)  # cosines given directly are not snapped
    return max(abs(k[0] - k[1]), abs(k[2] - k[3]))


@given(data_matrix(), st.integers(1, 4))
def test_symmetric_and_positive_semidefinite(X, depth):
    # The exact kernel rounds computed cosines within COSINE_SNAP (2^-46) of +-1 to +-1 (BLAS-independent digits),
    # so the matrix is the Gram matrix of the points up to a perturbation E with |E_ij| <= s |x_i||x_j|, where s is
    # the kernel's change over that window (a square-root singularity: s ~ sqrt(2^-45) / pi ~ 5e-8).  Weyl's
    # inequality then bounds the smallest eigenvalue below by -|E|_2 >= -|E|_F >= -s |X|_F^2; on top of that
    # 1e-10 trace(K) of ordinary rounding.  Near-parallel rows just inside the window (hypothesis finds them) do
    # reach ~1e-8 |X|_F^2.
    for fn, cosine_fn in ((ntk_kernel, ntk_cosine_kernel), (nngp_kernel, nngp_cosine_kernel)):
        K = fn(X, depth=depth)
        assert np.array_equal(K, K.T)
        eig = np.linalg.eigvalsh(K)
        snap = _snap_perturbation(cosine_fn, depth) * np.sum(X * X)
        assert eig.min() >= -(snap + 1e-10 * max(np.trace(K), 1e-300))


@given(data_matrix(), st.floats(0.01, 100), st.integers(1, 3))
def test_positive_homogeneity(X, c, depth):
    # NTK(c x, y) = c NTK(x, y) for c > 0 (the angle is unchanged, the norm scales).  Rounding moves a cosine by
    # ~1 ulp; near a = +-1, K_L has a square-root singularity, so that moves K by up to ~sqrt(ulp) |x||y| (1.5e-8):
    # the tolerance is 1e-6 |x||y|, i.e. conditioning of the kernel, not slack for the code.
    Y = X[::-1] + 0.5
    scale = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1))
    diff = ntk_kernel(c * X, Y, depth=depth) - c * ntk_kernel(X, Y, depth=depth)
    assert (np.abs(diff) <= 1e-6 * c * scale + 1e-300).all()


@given(data_matrix(max_cols=5), st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_rotation_invariance(X, seed, depth):
    d = X.shape[1]
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    K, KQ = ntk_kernel(X, depth=depth), ntk_kernel(X @ Q.T, depth=depth)
    # off-diagonal cosines near +-1 are ill-conditioned (square-root singularity of arccos at 1): the error of
    # K from a relative rounding e of the cosine is ~ sqrt(2 e) |x||y|, so allow sqrt(eps)-level absolute error
    scale = np.sqrt(np.outer(np.diag(K), np.diag(K))) + 1e-300
    assert (np.abs(K - KQ) <= 1e-6 * scale + 1e-12).all()


# ------------------------------------------------------------------------------------------ empirical NTK
def empirical_ntk(X, depth, width, rng):
    """NTK of one random finite network Dense(W_std=sqrt(d)), Relu, [Dense(sqrt 2), Relu] x (L-1), Dense(sqrt 2)
    in NTK parameterisation, from hand-written parameter gradients: sum over parameters of grad f(x) . grad f(y)."""
    n, d = X.shape
    c = math.sqrt(2.0 / width)
    Ws = [rng.standard_normal((width, d))] + [rng.standard_normal((width, width)) for _ in range(depth - 1)]
    v = rng.standard_normal(width)
    pre, post = [], [X]  # post[l] is the input to layer l (post[0] = x, pre-scaled by sqrt(d)/sqrt(d) = 1)
    h = X @ Ws[0].T
    pre.append(h)
    for W in Ws[1:]:
        post.append(c * np.maximum(pre[-1], 0.0))
        pre.append(post[-1] @ W.T)
    # gradient wrt the output layer's weights, and backpropagated gradients wrt each pre-activation
    last = c * np.maximum(pre[-1], 0.0)
    K = last @ last.T
    g = c * v[None, :] * (pre[-1] > 0)
    for layer in range(depth - 1, -1, -1):
        # d f / d W_layer = g (outer) post[layer]; the inner product of two outer products factorises
        K += (g @ g.T) * (post[layer] @ post[layer].T)
        if layer > 0:
            g = (g @ Ws[layer]) * c * (pre[layer - 1] > 0)
    return K


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_matches_empirical_ntk_of_wide_network(depth):
    rng = np.random.default_rng(2024 + depth)
    X = rng.standard_normal((6, 4))
    X[1] = X[0] + 0.1 * rng.standard_normal(4)  # a nearby pair
    width, n_nets = 4096, 12
    samples = np.array([empirical_ntk(X, depth, width, rng) for _ in range(n_nets)])
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(n_nets)
    exact = ntk_kernel(X, depth=depth)
    iu = np.triu_indices(6)
    t = (mean - exact)[iu] / se[iu]
    # Each t is Student-t with 11 dof (plus an O(1/width) finite-width bias, ~1e-3 relative, far below se).
    # P(|t_11| > 8) ~ 6e-6 per entry, 21 entries: failure probability ~1e-4 for these fixed seeds, which are
    # checked once; it does not flake because the seeds are fixed.
    assert np.abs(t).max() < 8.0, t
    # and the test has power: the standard error is a few percent of the kernel at most
    assert (se[iu] < 0.03 * np.abs(exact[iu]) + 0.03 * np.abs(exact).max()).all()


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_messages():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        ntk_kernel(np.array([[1.0, np.nan]]), depth=1)
    with pytest.raises(ValueError, match="NaN or inf"):
        ntk_kernel(X, np.array([[np.inf, 1.0]]), depth=1)
    with pytest.raises(ValueError, match="2-d"):
        ntk_kernel(np.ones(3), depth=1)
    with pytest.raises(ValueError, match="same number of columns"):
        ntk_kernel(X, np.ones((2, 3)), depth=1)
    assert ntk_kernel(np.ones((0, 2)), depth=1).shape == (0, 0)  # issue 15: 0 rows give an empty result
    with pytest.raises(ValueError, match="no columns"):
        ntk_kernel(np.ones((2, 0)), depth=1)
    with pytest.raises(ValueError, match="non-numeric"):
        ntk_kernel(np.array([["a", "b"]]), depth=1)
    with pytest.raises(ValueError, match="depth"):
        ntk_kernel(X, depth=0)
    with pytest.raises(ValueError, match="depth"):
        nngp_kernel(X, depth=1.5)
    with pytest.raises(ValueError, match="dense"):
        import scipy.sparse as sp

        ntk_kernel(sp.csr_matrix(X), depth=1)


# ------------------------------------------------------------------------------------------ issue 15: range
def _rows(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return np.sign(x) * (0.25 + np.abs(x))  # entries >= 1/4 in size: 2^-1000 times them is still normal


@pytest.mark.parametrize("kernel", [ntk_kernel, nngp_kernel])
def test_exactly_homogeneous_over_the_whole_float_range(kernel):
    # issue 15: |x|^2 overflowed above ~1e154 (NaN / inf) and underflowed below ~1e-154; rows are now rescaled
    # by powers of two, so K(2^k X, Y) = 2^k K(X, Y) and K(2^k X) = 4^k K(X) bit for bit
    from _inputs import assert_scales_exactly

    X, Y = _rows(7, 5, 0), _rows(4, 5, 1)
    assert_scales_exactly(lambda A: kernel(A, depth=3), X, degree=2, exponents=(-1000, -600, -300, 0, 300, 500))
    assert_scales_exactly(lambda A: kernel(A, Y, depth=2), X, degree=1, exponents=(-1000, -600, 0, 600, 1000))
    assert_scales_exactly(lambda B: kernel(X, B, depth=2), Y, degree=1, exponents=(-1000, -600, 0, 600, 1000))
    # decimal scales at the ends of the range: equal to the scaled kernel up to the rounding of s X
    K = kernel(X, depth=2)
    for s in (1e-150, 1e150):
        np.testing.assert_allclose(kernel(s * X, depth=2), K * s * s, rtol=1e-13)
    tiny = kernel(1e-200 * X, Y, depth=2)  # values ~1e-200: far inside the range, so never flushed to 0
    np.testing.assert_allclose(tiny, 1e-200 * kernel(X, Y, depth=2), rtol=1e-13)


def test_output_overflow_raises_naming_the_argument():
    X = _rows(3, 4, 2)
    with pytest.raises(ValueError, match="exceeds the float64 range.*X1"):
        ntk_kernel(1e200 * X, depth=2)
    with pytest.raises(ValueError, match="X1 or X2"):
        ntk_kernel(1e200 * X, 1e200 * X, depth=2)
    assert np.all(np.isfinite(ntk_kernel(1e200 * X, 1e-200 * X, depth=2)))  # the product is in range


def test_zero_rows_give_empty_results_and_sparse_input_is_named():
    import scipy.sparse as sp

    assert ntk_kernel(np.ones((0, 3)), depth=2).shape == (0, 0)
    assert nngp_kernel(np.ones((0, 3)), np.ones((4, 3)), depth=1).shape == (0, 4)
    assert ntk_kernel(np.ones((2, 3)), np.ones((0, 3)), depth=1).shape == (2, 0)
    with pytest.raises(ValueError, match=r"X2 is a scipy.sparse matrix .*X2.toarray\(\)"):
        ntk_kernel(np.ones((2, 3)), sp.csr_matrix(np.ones((2, 3))), depth=1)
    with pytest.raises(ValueError, match=r"a is a scipy.sparse matrix"):
        ntk_cosine_kernel(sp.csr_matrix(np.eye(2)), 2)


def test_read_only_input_works_and_is_not_touched():
    from _inputs import read_only

    X = _rows(5, 3, 3)
    R = read_only(X)
    np.testing.assert_array_equal(ntk_kernel(R, depth=2), ntk_kernel(X, depth=2))
    np.testing.assert_array_equal(R, X)
