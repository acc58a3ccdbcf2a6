"""Tests of ntk_sketch.kernels.cntk_exact: the exact CNTK-GAP kernel (docs/math.md §3).

Order: closed forms on small exact cases, then the fast kernel against the slow loop implementation
``tests/naive.py::cntk_naive`` for every combination of filter size, depth, padding and fixed-layer flags,
the polynomial path, then hypothesis properties, then input validation.

Tolerances: the fast kernel and the reference evaluate the same formulas in a different summation order, so
they agree to a few hundred ulps of the largest entry (observed <= 3e-13 relative); 1e-10 relative to the largest
|entry| (the issue's acceptance bound) leaves a wide margin.  Near r = +-1 the arc-cosine k0 amplifies rounding
(k0(1 - d) ~ 1 - sqrt(2 d)/pi); both implementations round correlations within 2^-46 of +-1 to +-1, which is
what makes the diagonal (an image with itself) agree at the same bound.
"""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from naive import cntk_matrix_naive, cntk_normalisers_naive, k0_naive, k1_naive, polynomial_naive
from ntk_sketch.kernels.arccos import taylor_coefficients_k0, taylor_coefficients_k1, taylor_truncation_error
from ntk_sketch.kernels.cntk_exact import cntk_grid_sizes, cntk_kernel, cntk_normalisers

RTOL = 1e-10


def _rel_err(A, B):
    return np.abs(A - B).max() / np.abs(B).max()


def _fc_variant(a, depth, fix_first, fix_last):
    """docs/math.md §2's scalar recursion K_L(a) with the CNTK flags: T_0 = 0 if fix_first, last + s_L dropped.

    For constant images x = v, y = w ('valid' padding) every pixel pair has correlation a = <v,w>/(|v||w|) and
    the CNTK-GAP recursion collapses to |v||w| times this (S_h = q^2 |v||w| s_h, N_h = q^2 |v|^2 at every h).
    """
    s = a
    t = 0.0 if fix_first else a
    for h in range(1, depth + 1):
        kd, s_new = k0_naive(s), k1_naive(s)
        if h < depth:
            t = t * kd + s_new
        else:
            t = t * kd + (0.0 if fix_last else s_new)
        s = s_new
    return t


FLAGS = [(True, True), (False, False), (True, False), (False, True)]


# --------------------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("fix_first,fix_last", FLAGS)
@pytest.mark.parametrize("q,depth", [(1, 1), (2, 2), (3, 2), (2, 3)])
def test_constant_images_reduce_to_fc_recursion(q, depth, fix_first, fix_last):
    if fix_first and fix_last and depth == 1:
        return
    rng = np.random.default_rng(0)
    v, w = rng.standard_normal(3), rng.standard_normal(3)
    side = depth * (q - 1) + 3
    X = np.broadcast_to(v, (1, side, side + 1, 3))
    Y = np.broadcast_to(w, (1, side, side + 1, 3))
    a = v @ w / (np.linalg.norm(v) * np.linalg.norm(w))
    expected = np.linalg.norm(v) * np.linalg.norm(w) * _fc_variant(a, depth, fix_first, fix_last)
    K = cntk_kernel(X, Y, depth=depth, filter_size=q, fix_first=fix_first, fix_last=fix_last)
    assert abs(K[0, 0] - expected) <= 1e-12 * abs(expected)


@pytest.mark.parametrize("fix_first,fix_last", FLAGS)
def test_diagonal_formula_constant_image(fix_first, fix_last):
    """x constant = v: every correlation is 1, and CNTK(x, x) = (L - 1 + [not fix_first] + [not fix_last]) |v|^2,
    the CNTK analogue of the FC diagonal NTK(x, x) = (L + 1)|x|^2 (docs/math.md §2)."""
    v = np.array([0.3, -1.2])
    for depth in (2, 3):
        X = np.broadcast_to(v, (2, 7, 6, 2)) * np.array([1.0, 2.5])[:, None, None, None]
        K = cntk_kernel(X, depth=depth, filter_size=2, fix_first=fix_first, fix_last=fix_last)
        factor = depth - 1 + (not fix_first) + (not fix_last)
        expected = factor * (v @ v) * np.outer([1.0, 2.5], [1.0, 2.5])
        np.testing.assert_allclose(K, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_filter_one_is_mean_of_pixelwise_fc_kernel(padding):
    """q = 1: no patch mixing, so CNTK-GAP = mean over pixel pairs (p, p') of the FC recursion of x_p, y_p'."""
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((2, 3, 4, 2)), rng.standard_normal((1, 3, 4, 2))
    for fix_first, fix_last in [(False, False), (True, False), (False, True)]:
        K = cntk_kernel(X, Y, depth=2, filter_size=1, padding=padding, fix_first=fix_first, fix_last=fix_last)
        for a in range(2):
            px, py = X[a].reshape(-1, 2), Y[0].reshape(-1, 2)
            vals = [np.linalg.norm(u) * np.linalg.norm(z)
                    * _fc_variant(u @ z / (np.linalg.norm(u) * np.linalg.norm(z)), 2, fix_first, fix_last)
                    for u in px for z in py]
            assert abs(K[a, 0] - np.mean(vals)) <= 1e-12 * np.abs(vals).max()


def test_grid_sizes():
    assert cntk_grid_sizes(28, 28, 3, 4, "valid") == [(28, 28), (25, 25), (22, 22), (19, 19)]
    assert cntk_grid_sizes(28, 20, 2, 3, "same") == [(28, 20)] * 3
    assert cntk_grid_sizes(28, 20, 2, 4, "same") == [(28, 20)] * 3


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_depth_one_same_is_valid_on_explicitly_padded_images(q):
    """One 'same' layer is one 'valid' layer on the image zero-padded by (q-1)//2 before and q//2 after (the
    'SAME' alignment of TensorFlow / JAX, asymmetric for even q): the same S_0, N_0 and output grid, so the
    same kernel.  Independent of tests/naive.py's offsets; a mirrored alignment for even q fails it."""
    rng = np.random.default_rng(20 + q)
    X, Y = rng.standard_normal((3, 4, 6, 2)), rng.standard_normal((2, 4, 6, 2))
    pad = ((0, 0), ((q - 1) // 2, q // 2), ((q - 1) // 2, q // 2), (0, 0))
    Xp, Yp = np.pad(X, pad), np.pad(Y, pad)
    for ff, fl in [(False, False), (True, False), (False, True)]:
        kw = dict(depth=1, filter_size=q, fix_first=ff, fix_last=fl)
        K = cntk_kernel(X, Y, padding="same", **kw)
        Kp = cntk_kernel(Xp, Yp, padding="valid", **kw)
        assert _rel_err(K, Kp) <= RTOL
    N = cntk_normalisers(X, depth=1, filter_size=q, padding="same")[0]
    np.testing.assert_allclose(N, cntk_normalisers(Xp, depth=1, filter_size=q, padding="valid")[0], rtol=1e-14)
    if q % 2 == 0:  # the mirrored (q//2 before, (q-1)//2 after) alignment gives a different kernel
        mirrored = ((0, 0), (q // 2, (q - 1) // 2), (q // 2, (q - 1) // 2), (0, 0))
        Km = cntk_kernel(np.pad(X, mirrored), np.pad(Y, mirrored), depth=1, filter_size=q, padding="valid",
                         fix_first=False)
        assert _rel_err(cntk_kernel(X, Y, depth=1, filter_size=q, padding="same", fix_first=False), Km) > 1e-3


# ----------------------------------------------------------------------------------------- against naive
CASES = [(q, depth, padding, ff, fl)
         for padding, qs in (("valid", (1, 2, 3)), ("same", (1, 3)))
         for q in qs for depth in (1, 2, 3) for ff, fl in FLAGS
         if not (ff and fl and depth == 1)]


# even q with 'same' (asymmetric padding: one zero more after than before): non-square images, 1 and 3 channels
EVEN_SAME_CASES = [(q, depth, ff, fl, 1 + 2 * ((depth + ff + fl) % 2))
                   for q in (2, 4) for depth in (1, 2, 3) for ff, fl in FLAGS if not (ff and fl and depth == 1)]


@pytest.mark.parametrize("q,depth,fix_first,fix_last,channels", EVEN_SAME_CASES)
def test_even_filter_same_padding_against_naive(q, depth, fix_first, fix_last, channels):
    rng = np.random.default_rng(1000 + 100 * q + 10 * depth + fix_first + 2 * fix_last)
    shape = (4, 5) if q == 2 else (5, 4)
    X = rng.standard_normal((3, *shape, channels))
    Y = rng.standard_normal((2, *shape, channels))
    kw = dict(depth=depth, filter_size=q, padding="same", fix_first=fix_first, fix_last=fix_last)
    args = (depth, q, "same", fix_first, fix_last)
    assert _rel_err(cntk_kernel(X, Y, **kw), cntk_matrix_naive(X, Y, *args)) <= RTOL
    assert _rel_err(cntk_kernel(X, **kw), cntk_matrix_naive(X, X, *args)) <= RTOL


@pytest.mark.parametrize("q,depth,padding,fix_first,fix_last", CASES)
def test_against_naive(q, depth, padding, fix_first, fix_last):
    rng = np.random.default_rng(100 * q + 10 * depth + fix_first + 2 * fix_last)
    side = depth * (q - 1) + 2 if padding == "valid" else 4
    X = rng.standard_normal((3, side, side + 1, 2))
    Y = rng.standard_normal((2, side, side + 1, 2))
    kw = dict(depth=depth, filter_size=q, padding=padding, fix_first=fix_first, fix_last=fix_last)
    args = (depth, q, padding, fix_first, fix_last)
    # three images per call: with two threads at least one chunk evaluates two pairs in the same workspaces
    assert _rel_err(cntk_kernel(X, Y, **kw), cntk_matrix_naive(X, Y, *args)) <= RTOL
    assert _rel_err(cntk_kernel(X, **kw), cntk_matrix_naive(X, X, *args)) <= RTOL  # includes the diagonal


@pytest.mark.parametrize("q,padding", [(1, "valid"), (2, "valid"), (3, "valid"), (3, "same"), (5, "same"),
                                       (2, "same"), (4, "same")])
def test_normalisers_against_naive(q, padding):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((2, 8, 7, 2)).astype(np.float32)
    depth = 2 if q < 5 else 3
    N = cntk_normalisers(X, depth=depth, filter_size=q, padding=padding)
    grids = cntk_grid_sizes(8, 7, depth, q, padding)[1:]
    for a in range(2):
        for h, ref in enumerate(cntk_normalisers_naive(X[a].astype(np.float64), depth, q, padding)):
            assert N[h].shape == (2, *grids[h]) and N[h].dtype == np.float64
            np.testing.assert_allclose(N[h][a], ref, rtol=1e-14, atol=0)


def test_zero_patches_and_zero_images():
    """Zero patches give zero contributions, never NaN; an all-zero image has a zero kernel row."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 7, 7, 1))
    X[0, :4] = 0.0  # zero top half: many zero patches
    X[1, 1:6, 1:6] = 0.0  # zero interior
    X[2] = 0.0
    for padding in ("valid", "same"):
        kw = dict(depth=3, filter_size=3, padding=padding, fix_first=False, fix_last=False)
        K = cntk_kernel(X, **kw)
        assert np.all(np.isfinite(K))
        assert np.all(K[2] == 0.0) and np.all(K[:, 2] == 0.0)
        Kn = cntk_matrix_naive(X, X, 3, 3, padding, False, False)
        assert np.abs(K - Kn).max() <= RTOL * np.abs(Kn).max()


def test_float32_input():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 5, 5, 1)).astype(np.float32)
    K32 = cntk_kernel(X, depth=2, filter_size=3)
    K64 = cntk_kernel(X.astype(np.float64), depth=2, filter_size=3)
    assert K32.dtype == np.float64
    np.testing.assert_array_equal(K32, K64)


def test_result_does_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5, 6, 6, 1))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        K1 = cntk_kernel(X, depth=2, filter_size=3, padding="same")
        numba.set_num_threads(before)
        K2 = cntk_kernel(X, depth=2, filter_size=3, padding="same")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(K1, K2)


# ------------------------------------------------------------------------------------------ polynomial path
@pytest.mark.parametrize("padding,q,depth", [("valid", 2, 3), ("same", 3, 2), ("valid", 3, 2), ("same", 2, 2),
                                             ("same", 4, 2)])
def test_polynomials_against_naive(padding, q, depth):
    rng = np.random.default_rng(6)
    side = depth * (q - 1) + 2 if padding == "valid" else 4
    X = rng.standard_normal((3, side, side, 2))
    c0, c1 = taylor_coefficients_k0(5), taylor_coefficients_k1(6)
    for ff, fl in [(True, True), (False, False)]:
        K = cntk_kernel(X, depth=depth, filter_size=q, padding=padding, fix_first=ff, fix_last=fl,
                        k0_coefficients=c0, k1_coefficients=c1)
        Kn = cntk_matrix_naive(X, X, depth, q, padding, ff, fl, k0=polynomial_naive(c0), k1=polynomial_naive(c1))
        assert _rel_err(K, Kn) <= RTOL
    # one side polynomial, the other exact
    K = cntk_kernel(X, depth=depth, filter_size=q, padding=padding, k1_coefficients=c1)
    Kn = cntk_matrix_naive(X, X, depth, q, padding, True, True, k1=polynomial_naive(c1))
    assert _rel_err(K, Kn) <= RTOL


def test_taylor_truncations_converge_to_the_exact_kernel():
    """Long Taylor truncations of k0 and k1 approach the exact kernel, at the rate of k0's truncation error.

    With non-negative coefficients the degree-p truncations are within e0 = taylor_truncation_error('k0', p)
    and e1 of k0, k1 on [-1, 1] (docs/math.md §1).  To first order each of the L layers moves Gdot_h by at most
    e0 and G_h by at most e1 (relative to sqrt(N N')), and the P recursion adds at most L + 1 such terms, each
    bounded by the largest diagonal entry (= max |K| for a PSD kernel): error <= L (L + 1) (e0 + e1) max |K|.
    This is a first-order (heuristic) bound, not a theorem (k0 is not Lipschitz at +-1); the observed errors
    are about 0.65 e0, and they halve when p quadruples, like e0 ~ 0.254 p^(-1/2).
    """
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 5, 5, 1))
    exact = cntk_kernel(X, depth=2, filter_size=2, fix_first=False)
    errs = []
    for p in (8, 32, 128, 512):
        Kp = cntk_kernel(X, depth=2, filter_size=2, fix_first=False,
                         k0_coefficients=taylor_coefficients_k0(p), k1_coefficients=taylor_coefficients_k1(p))
        errs.append(_rel_err(Kp, exact))
        bound = 3 * 2 * (taylor_truncation_error("k0", p) + taylor_truncation_error("k1", p))
        assert errs[-1] <= bound
    assert all(b < a for a, b in zip(errs, errs[1:]))


# ---------------------------------------------------------------------------------------------- hypothesis
@st.composite
def image_problems(draw):
    q = draw(st.sampled_from([1, 2, 3]))
    padding = draw(st.sampled_from(["valid", "same"]))
    depth = draw(st.integers(1, 3))
    ff, fl = draw(st.sampled_from(FLAGS))
    if ff and fl and depth == 1:
        ff = False
    field = depth * (q - 1) + 1 if padding == "valid" else 1
    h = draw(st.integers(field, field + 2))
    w = draw(st.integers(field, field + 2))
    c = draw(st.integers(1, 2))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, h, w, c)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()):
        X[rng.random(X.shape[:3]) < 0.4] = 0.0  # zero pixels, hence zero patches
    return X, dict(depth=depth, filter_size=q, padding=padding, fix_first=ff, fix_last=fl)


@given(image_problems())
def test_gram_symmetric_and_psd(problem):
    X, kw = problem
    K = cntk_kernel(X, **kw)
    assert np.all(np.isfinite(K))
    np.testing.assert_array_equal(K, K.T)
    trace = max(np.trace(K), 0.0)
    assert np.linalg.eigvalsh(K).min() >= -1e-10 * trace


@given(image_problems())
def test_cross_kernel_is_transposed_and_matches_gram(problem):
    X, kw = problem
    split = max(1, X.shape[0] // 2)
    A, B = X[:split], X[split:] if X.shape[0] > 1 else X
    KAB = cntk_kernel(A, B, **kw)
    KBA = cntk_kernel(B, A, **kw)
    scale = max(np.abs(KAB).max(), 1e-300)
    assert np.abs(KAB - KBA.T).max() <= 1e-12 * scale
    G = cntk_kernel(X, **kw)
    np.testing.assert_allclose(cntk_kernel(X, X, **kw), G, rtol=0, atol=1e-12 * max(np.abs(G).max(), 1e-300))


@given(image_problems(), st.floats(0.01, 100.0))
def test_positive_homogeneity(problem, c):
    """Every layer is positively homogeneous of degree 1 in each image: K(c x, y) = c K(x, y) for c > 0."""
    X, kw = problem
    K = cntk_kernel(X, X[:1], **kw)
    Kc = cntk_kernel(c * X, X[:1], **kw)
    assert np.abs(Kc - c * K).max() <= 1e-12 * c * max(np.abs(K).max(), 1e-300)


@given(st.integers(0, 2**32 - 1), st.sampled_from([(2, 2), (3, 2), (2, 3)]), st.sampled_from(FLAGS))
def test_diagonal_equals_constant_image_formula(seed, q_depth, flags):
    """An image with itself: constant images give (L - 1 + [not fix_first] + [not fix_last]) |v|^2."""
    q, depth = q_depth
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(2) * rng.choice([1e-3, 1.0, 1e3])
    side = depth * (q - 1) + 1 + int(rng.integers(0, 3))
    X = np.broadcast_to(v, (1, side, side, 2))
    K = cntk_kernel(X, depth=depth, filter_size=q, fix_first=flags[0], fix_last=flags[1])
    expected = (depth - 1 + (not flags[0]) + (not flags[1])) * (v @ v)
    assert abs(K[0, 0] - expected) <= 1e-12 * expected


# ---------------------------------------------------------------------------------------------- validation
GOOD = np.ones((2, 5, 5, 1))


@pytest.mark.parametrize("X,kw,match", [
    (np.full((1, 5, 5, 1), np.nan), {}, "X1 contains NaN or inf"),
    (np.full((1, 5, 5, 1), np.inf), {}, "X1 contains NaN or inf"),
    (np.ones((5, 5, 1)), {}, "4-d"),
    (np.ones((1, 5, 0, 1)), {}, "empty"),
    (np.array([[[["a"]]]]), {}, "non-numeric"),
    (GOOD, dict(depth=0), "depth must be an integer >= 1"),
    (GOOD, dict(depth=2.0), "depth must be an integer"),
    (GOOD, dict(filter_size=0), "filter_size must be an integer >= 1"),
    (GOOD, dict(padding="full"), "padding must be 'valid' or 'same'"),
    (GOOD, dict(depth=3, filter_size=3), "smaller than the receptive field"),
    (GOOD, dict(depth=1, fix_first=True, fix_last=True), "identically zero"),
    (GOOD, dict(fix_first=1), "fix_first must be True or False"),
    (GOOD, dict(k0_coefficients=[]), "k0_coefficients must be a non-empty 1-d array"),
    (GOOD, dict(k1_coefficients=[[1.0]]), "k1_coefficients must be a non-empty 1-d array"),
    (GOOD, dict(k1_coefficients=[np.nan]), "k1_coefficients contains NaN"),
    (GOOD, dict(k0_coefficients=["x"]), "k0_coefficients must be a numeric"),
])
def test_bad_input(X, kw, match):
    kw = {"depth": 2, "filter_size": 3, **kw}
    with pytest.raises(ValueError, match=match):
        cntk_kernel(X, **kw)


def test_bad_second_argument():
    with pytest.raises(ValueError, match="same image shape"):
        cntk_kernel(GOOD, np.ones((1, 5, 5, 2)), depth=2, filter_size=3)
    with pytest.raises(ValueError, match="same image shape"):
        cntk_kernel(GOOD, np.ones((1, 6, 5, 1)), depth=2, filter_size=3)
    with pytest.raises(ValueError, match="X2 contains NaN or inf"):
        cntk_kernel(GOOD, np.full((1, 5, 5, 1), np.nan), depth=2, filter_size=3)
    with pytest.raises(ValueError, match="X2 must be 4-d"):
        cntk_kernel(GOOD, np.ones((5, 5, 1)), depth=2, filter_size=3)


@pytest.mark.slow
def test_against_naive_larger_images():
    """Bigger grids (more interior and border pixels) for the two benchmark configurations, scaled down."""
    rng = np.random.default_rng(8)
    X = np.abs(rng.standard_normal((3, 9, 9, 1)))
    for q, padding in ((3, "same"), (2, "valid")):
        K = cntk_kernel(X, depth=3, filter_size=q, padding=padding)
        Kn = cntk_matrix_naive(X, X, 3, q, padding, True, True)
        assert _rel_err(K, Kn) <= RTOL


# ------------------------------------------------------------------------------------------ issue 15: range, shapes
def _images(n, seed, shape=(5, 5, 2)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + shape)
    return np.sign(x) * (0.25 + np.abs(x))


def test_exactly_homogeneous_over_the_whole_float_range():
    # issue 15: the normalisers |patch|^2 overflowed silently above ~1e154; images are now rescaled by powers of
    # two, so CNTK(2^k X, Y) = 2^k CNTK(X, Y) bit for bit and N_h(2^k x) = 4^k N_h(x)
    from _inputs import assert_scales_exactly

    X, Y = _images(3, 0), _images(2, 1)
    assert_scales_exactly(lambda A: cntk_kernel(A, depth=2, padding="same"), X, 2, (-1000, -600, -300, 0, 300, 500))
    assert_scales_exactly(lambda A: cntk_kernel(A, Y, depth=2), X, 1, (-1000, -600, 0, 600, 1000))
    assert_scales_exactly(lambda A: np.stack(cntk_normalisers(A, depth=2, padding="same")), X, 2, (-1000, -300, 0, 300, 500))
    np.testing.assert_allclose(cntk_kernel(1e-200 * X, Y, depth=2), 1e-200 * cntk_kernel(X, Y, depth=2), rtol=1e-13)
    with pytest.raises(ValueError, match="exceeds the float64 range.*X1"):
        cntk_kernel(1e200 * X, depth=2)


def test_zero_images_give_an_empty_kernel():
    assert cntk_kernel(np.ones((0, 5, 5, 1)), depth=2).shape == (0, 0)
    assert cntk_kernel(np.ones((0, 5, 5, 1)), np.ones((3, 5, 5, 1)), depth=2).shape == (0, 3)
    assert [a.shape for a in cntk_normalisers(np.ones((0, 5, 5, 1)), depth=2)] == [(0, 3, 3), (0, 1, 1)]
    with pytest.raises(ValueError, match="empty"):
        cntk_kernel(np.ones((2, 5, 0, 1)), depth=2)


def test_channels_first_images_get_a_hint_with_same_padding():
    import warnings

    X = _images(2, 2, shape=(3, 8, 8))  # (n, C, H, W) as a PyTorch user would pass it
    with pytest.warns(UserWarning, match=r"transpose\(0, 2, 3, 1\)"):
        cntk_kernel(X, depth=2, padding="same")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cntk_kernel(X.transpose(0, 2, 3, 1), depth=2, padding="same")  # channels last: no warning


def test_sparse_images_are_named():
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="X1 is a scipy.sparse matrix"):
        cntk_kernel(sp.csr_matrix(np.ones((2, 4))), depth=2)
