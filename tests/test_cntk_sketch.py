"""Tests for ntk_sketch.features.cntk_sketch (CNTKSketch; docs/math.md §3, §4, §7).

Statistical tests use fixed seeds (the random tables are drawn from them), so they are deterministic; the
failure probabilities in the comments are those of a fresh draw of seeds.
"""
import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntk_sketch.kernels.cntk_exact import cntk_kernel
import ntk_sketch.features.cntk_sketch as cntk_sketch_module
from ntk_sketch.features.cntk_sketch import CNTKSketch, default_patch_sketch
from ntk_sketch.kernels.polynomials import arccos_polynomials, polynomial_ntk_cosine_kernel
from naive import cntk_sketch_naive

# Coefficients used by most tests: one fitted pair on [0, 1] (all test images are non-negative) and one Taylor
# pair, passed explicitly so that the tests do not refit polynomials for every seed.
P0_FIT, P1_FIT = arccos_polynomials("fit", 3, (0.0, 1.0))
P0_TAY, P1_TAY = arccos_polynomials("taylor", 2)


def _images(n, h, w, c, seed, zero=()):
    X = np.random.default_rng(seed).random((n, h, w, c))
    for k in zero:
        X[k] = 0.0
    return X


def _poly(L, P0, P1):
    return ([P0] * L, [P1] * L)


def _gram_over_seeds(X, n_seeds, **kw):
    grams = []
    for s in range(n_seeds):
        F = CNTKSketch(seed=s, **kw).fit(X.shape[1:]).transform(X)
        grams.append(F @ F.T)
    return np.array(grams)


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


# ------------------------------------------------------------------------------------------------ naive reference
PATCHES = ("signed_sum", "countsketch", "srht")


def _naive_cases():
    """Every padding, depth 1..3 and fix_first / fix_last combination (L = 1 with both fixed is rejected); the
    patch sketch, renormalisation and degree (1, 2, 3) rotate across the cases so that each value meets both
    paddings and several depths (patch sketch and degree meet in all 9 pairs).  'valid' at depth 3 needs q = 2
    on 6 x 6 images."""
    cases = []
    for padding in ("valid", "same"):
        for L in (1, 2, 3):
            for ff in (True, False):
                for fl in (True, False):
                    if L == 1 and ff and fl:
                        continue
                    k = len(cases)
                    q = 2 if (padding == "valid" and L == 3) else 3
                    cases.append((padding, L, q, ff, fl, PATCHES[(k + k // 3) % 3], (k // 2) % 2 == 0,
                                  1 + k % 3))
    # even filters with 'same' (asymmetric padding, one zero more after than before): q = 2 and 4 at each depth
    for L in (1, 2, 3):
        for q, (ff, fl) in ((2, (False, L == 2)), (4, (L != 1, False))):
            k = len(cases)
            cases.append(("same", L, q, ff, fl, PATCHES[(k + k // 3) % 3], (k // 2) % 2 == 0, 1 + k % 3))
    return cases


@pytest.mark.parametrize("padding,L,q,ff,fl,patch_sketch,renorm,degree", _naive_cases())
def test_matches_naive_reference(padding, L, q, ff, fl, patch_sketch, renorm, degree):
    """The fast transform equals tests/naive.py's stage-by-stage reference for the same tables.

    Tolerance: both apply the same tables in the same operations and differ only in summation order (Hadamard
    matrix products against the FWHT, numpy norms and sums against sequential loops).  Every step is an
    orthogonal transform, a product, or a rescaling by a norm that is either exactly 0 (skipped by both) or far
    from 0, so the differences stay within a few hundred ulps of the largest feature (observed ~5e-16
    relative); 1e-10 of max |F| leaves a wide margin and still catches any wrong index, sign or scale."""
    X = _images(3, 6, 6, 2, 11)
    X[1, :3] = 0.0  # zero patches next to non-zero ones
    X[2] = 0.0  # an all-zero image: zero features
    sk = CNTKSketch(depth=L, n_components=8, filter_size=q, padding=padding, degree=degree, pixel_dim=4,
                    fix_first=ff, fix_last=fl, patch_sketch=patch_sketch, renormalize=renorm, seed=L + 10 * q).fit(X)
    F = sk.transform(X)
    R = np.array([cntk_sketch_naive(x, sk._tables, q, padding, ff, fl, renorm) for x in X])
    scale = np.abs(F).max()
    assert scale > 0.1 and np.all(F[2] == 0.0)
    np.testing.assert_allclose(F, R, rtol=1e-10, atol=1e-10 * scale)
    # the reference reads the tables: another draw's tables give different features
    other = CNTKSketch(depth=L, n_components=8, filter_size=q, padding=padding, degree=degree, pixel_dim=4,
                       fix_first=ff, fix_last=fl, patch_sketch=patch_sketch, renormalize=renorm,
                       seed=L + 10 * q + 1).fit(X)
    assert np.abs(cntk_sketch_naive(X[0], other._tables, q, padding, ff, fl, renorm) - F[0]).max() > 1e-3 * scale


# ------------------------------------------------------------------------------------------------ expectation
@pytest.mark.parametrize("padding,ff,fl,poly", [
    ("valid", False, True, "fit"),
    ("valid", True, False, "fit"),
    ("same", False, False, "taylor"),
    ("valid", False, False, "taylor"),
])
def test_unbiased_depth_one(padding, ff, fl, poly):
    """L = 1, renormalize=False: the polynomial inputs (exact patch cosines) are exact, so every random map acts
    on fixed vectors and the features are unbiased for the CNTK with the polynomials (module docstring)."""
    P0, P1 = (P0_FIT, P1_FIT) if poly == "fit" else (P0_TAY, P1_TAY)
    X = _images(5, 6, 5, 2, 1)
    n_seeds = 80
    grams = _gram_over_seeds(X, n_seeds, depth=1, n_components=256, filter_size=3, padding=padding,
                             degree=len(P0) - 1, polynomial=_poly(1, P0, P1), pixel_dim=64, fix_first=ff,
                             fix_last=fl, renormalize=False)
    K = cntk_kernel(X, depth=1, filter_size=3, padding=padding, fix_first=ff, fix_last=fl,
                    k0_coefficients=P0, k1_coefficients=P1)
    mean = grams.mean(0)
    se = grams.std(0, ddof=1) / np.sqrt(n_seeds)
    # 15 distinct entries, each |t| <= 5.5 with 79 degrees of freedom: failure probability < 15 * 1e-6.
    assert np.all(np.abs(mean - K) <= 5.5 * se + 1e-12 * np.abs(K))
    # and the test has power: a bias of 15% of any entry would be detected
    assert np.all(5.5 * se < 0.15 * K)


def test_deeper_layers_nearly_unbiased():
    """L = 3, renormalize=False: polynomials of degree >= 2 of unbiased estimates are biased by O(variance) (module docstring), so
    the mean over seeds is not exactly the polynomial CNTK; but its error must be much smaller than a single
    draw's.  For an unbiased sketch the ratio would be ~ 1/sqrt(40) = 0.16; we require < 0.4."""
    X = _images(5, 8, 8, 1, 2)
    L = 3
    grams = _gram_over_seeds(X, 40, depth=L, n_components=128, filter_size=2, degree=3,
                             polynomial=_poly(L, P0_FIT, P1_FIT), pixel_dim=64, renormalize=False)
    K = cntk_kernel(X, depth=L, filter_size=2, k0_coefficients=P0_FIT, k1_coefficients=P1_FIT)
    single = np.median([_rel(g, K) for g in grams])
    assert _rel(grams.mean(0), K) < 0.4 * single


def test_error_falls_with_dimension_to_the_polynomial_floor():
    X = _images(6, 8, 8, 1, 3)
    L = 2
    K = cntk_kernel(X, depth=L, filter_size=3)
    Kp = cntk_kernel(X, depth=L, filter_size=3, k0_coefficients=P0_FIT, k1_coefficients=P1_FIT)
    floor = _rel(Kp, K)
    errs = []
    for m, d in ((16, 8), (256, 64), (4096, 1024)):
        grams = _gram_over_seeds(X, 7, depth=L, n_components=m, filter_size=3, degree=3,
                                 polynomial=_poly(L, P0_FIT, P1_FIT), pixel_dim=d)
        errs.append(np.median([_rel(g, K) for g in grams]))
    assert errs[0] > errs[1] > errs[2]
    # the sketch error at the largest size (measured ~0.01) is small compared with the errors at the smaller sizes,
    # so the total error approaches the polynomial floor
    assert abs(errs[2] - floor) < 0.25 * (errs[0] - floor)


@pytest.mark.parametrize("renormalize", [True, False])
def test_pooling_in_pixel_blocks_equals_one_block(monkeypatch, renormalize):
    """The last layer's sum over pixels is formed in blocks of pixels (_pool_final); blocks of 8 pixels (7 x 7
    images: six full blocks and one of a single pixel, with zero pixels among them) give the single-block result up
    to the order of the additions."""
    X = _images(3, 7, 7, 2, 11)
    X[1, 1:6, 1:6] = 0.0   # the centre pixel of the last grid sees only zeros there: its features vanish
    kw = dict(depth=2, n_components=64, filter_size=3, padding="same", degree=3, pixel_dim=16,
              renormalize=renormalize, seed=3)
    sk = CNTKSketch(**kw).fit(X.shape[1:])
    assert sk._workspace[7] == 49
    F = sk.transform(X)
    monkeypatch.setattr(cntk_sketch_module, "_POOL_BLOCK_BYTES", 8 * 8 * sk._tables.final_tensor.n_pad2)
    sk = CNTKSketch(**kw).fit(X.shape[1:])
    assert sk._workspace[7] == 8
    np.testing.assert_allclose(sk.transform(X), F, rtol=1e-12, atol=1e-13 * np.abs(F).max())


# ------------------------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("depth,ff,fl", [(1, False, False), (1, True, False), (2, True, True)])
def test_filter_one_is_pooled_fc_sketch(depth, ff, fl):
    """q = 1: no patch mixing, so the features of an image are the average over its pixels of the features of
    the 1 x 1 images made of its pixels (the same random tables: they do not depend on H, W)."""
    X = _images(3, 4, 5, 3, 4)
    kw = dict(depth=depth, n_components=96, filter_size=1, degree=3, polynomial=_poly(depth, P0_FIT, P1_FIT),
              pixel_dim=32, fix_first=ff, fix_last=fl, seed=7)
    F = CNTKSketch(**kw).fit(X.shape[1:]).transform(X)
    F1 = CNTKSketch(**kw).fit((1, 1, 3)).transform(X.reshape(-1, 1, 1, 3)).reshape(3, 20, -1).mean(1)
    np.testing.assert_allclose(F, F1, rtol=1e-12, atol=1e-13)


def test_filter_one_depth_one_expectation_is_pooled_fc_ntk():
    """q = 1, L = 1, both layers trained: CNTK(x, y) = mean_{p, p'} |x_p| |y_p'| K_1(cos(x_p, y_p')), the
    two-layer FC NTK of docs/math.md §2 averaged over pixel pairs; with the polynomials, K_1 becomes
    a P0(a) + P1(a).  The sketch is unbiased for it (L = 1)."""
    X = _images(4, 3, 3, 2, 5)
    V = X.reshape(4, 9, 2)
    nrm = np.linalg.norm(V, axis=2)
    cos = np.einsum("apc,bqc->abpq", V, V) / np.einsum("ap,bq->abpq", nrm, nrm)
    closed = (np.einsum("ap,bq->abpq", nrm, nrm)
              * polynomial_ntk_cosine_kernel(cos, [P0_FIT], [P1_FIT])).mean(axis=(2, 3))
    np.testing.assert_allclose(
        cntk_kernel(X, depth=1, filter_size=1, fix_first=False, fix_last=False, k0_coefficients=P0_FIT,
                    k1_coefficients=P1_FIT), closed, rtol=1e-10)
    n_seeds = 80
    grams = _gram_over_seeds(X, n_seeds, depth=1, n_components=64, filter_size=1, degree=3,
                             polynomial=_poly(1, P0_FIT, P1_FIT), pixel_dim=16, fix_first=False, fix_last=False,
                             renormalize=False)
    se = grams.std(0, ddof=1) / np.sqrt(n_seeds)
    # 10 distinct entries, |t| <= 5.5 with 79 degrees of freedom: failure probability < 1e-4
    assert np.all(np.abs(grams.mean(0) - closed) <= 5.5 * se)


# ------------------------------------------------------------------------------------------------ basic behaviour
def test_shapes_dtypes_zero_images_and_determinism():
    X = _images(5, 7, 7, 2, 6, zero=(1,))
    sk = CNTKSketch(depth=2, n_components=100, filter_size=3, degree=2, pixel_dim=24, seed=3).fit(X)
    F = sk.transform(X)
    assert F.shape == (5, 100) and F.dtype == np.float64 and np.all(np.isfinite(F))
    assert np.all(F[1] == 0.0)
    np.testing.assert_array_equal(F, CNTKSketch(depth=2, n_components=100, filter_size=3, degree=2,
                                                pixel_dim=24, seed=3).fit(X).transform(X))
    assert not np.allclose(F, CNTKSketch(depth=2, n_components=100, filter_size=3, degree=2, pixel_dim=24,
                                         seed=4).fit(X).transform(X))
    F32 = sk.transform(X.astype(np.float32))
    assert F32.dtype == np.float64
    np.testing.assert_allclose(F32, sk.transform(X.astype(np.float32).astype(np.float64)), rtol=0, atol=0)
    # batches and single images give the same rows
    np.testing.assert_array_equal(sk.transform(X, chunk_size=2), F)
    np.testing.assert_array_equal(sk.transform(X[3:4]), F[3:4])


def test_zero_patches_give_no_nan():
    X = np.zeros((2, 9, 9, 1))
    X[0, 0, 0, 0] = 1.0  # a single bright pixel: most patches are zero
    X[1, 4:6, 4:6, 0] = 2.0
    for ff, fl in ((True, True), (False, False)):
        F = CNTKSketch(depth=2, n_components=64, filter_size=3, padding="same", degree=2, pixel_dim=16,
                       fix_first=ff, fix_last=fl, seed=0).fit(X).transform(X)
        assert np.all(np.isfinite(F)) and np.any(F != 0.0)


def test_thread_count_does_not_change_results():
    X = _images(7, 6, 6, 1, 8)
    sk = CNTKSketch(depth=2, n_components=50, filter_size=2, degree=2, pixel_dim=16, seed=1).fit(X)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        F1 = sk.transform(X)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        F2 = sk.transform(X)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(F1, F2)


@pytest.mark.parametrize("patch_sketch", PATCHES)
def test_patch_sketch_choices_agree_in_expectation(patch_sketch):
    X = _images(4, 6, 6, 1, 9)
    L = 2
    K = cntk_kernel(X, depth=L, filter_size=3, k0_coefficients=P0_FIT, k1_coefficients=P1_FIT)
    grams = _gram_over_seeds(X, 20, depth=L, n_components=512, filter_size=3, degree=3,
                             polynomial=_poly(L, P0_FIT, P1_FIT), pixel_dim=128, patch_sketch=patch_sketch)
    # relative error of each draw ~ 1/sqrt(128) per pixel layer; observed median ~0.03: 0.15 is a 5x margin
    assert np.median([_rel(g, K) for g in grams]) < 0.15


def test_signed_sum_shifts_spread_the_exact_constants():
    """'signed_sum' sums the q^2 neighbours' CountSketched vectors after random signs and distinct cyclic shifts.
    The shifts are what makes it accurate: every g~ carries the q^2 exact constants of the layer below, a few
    large coordinates that the per-pixel CountSketch sends to the same positions for every pixel, and without
    shifts their products with the fixed sign vectors do not average out.  Measured on these images (L = 2,
    'same', pixel_dim 256, m = 8192, 12 seeds): median relative error 0.031 with the shifts, 0.044 for the
    CountSketch of the concatenation, 0.164 with the shifts set to 0 (the variant this test must reject).  The
    bound 0.08 sits between them; a median above it needs 6 of the 12 draws above it (none of the 12 is: the
    largest is 0.075; were the chance per draw as high as 5%, 6 of 12 would have probability about 1e-5).  The
    seeds are fixed, so the result changes only with rounding (BLAS kernels), not from run to run."""
    X = _images(8, 9, 9, 1, 5)
    L = 2
    P0, P1 = [0.2, 0.5, 0.3], [0.1, 0.6, 0.3]
    K = cntk_kernel(X, depth=L, filter_size=3, padding="same", k0_coefficients=np.array([P0] * L),
                    k1_coefficients=np.array([P1] * L))
    for patch_sketch in ("signed_sum", "countsketch"):
        grams = _gram_over_seeds(X, 12, depth=L, n_components=8192, filter_size=3, padding="same", degree=2,
                                 polynomial=_poly(L, P0, P1), pixel_dim=256, patch_sketch=patch_sketch)
        assert np.median([_rel(g, K) for g in grams]) < 0.08, patch_sketch


def test_auto_patch_sketch_is_signed_sum_up_to_pixel_dim_512():
    """patch_sketch='auto' (the default) draws the same tables, hence the same features, as the compression it
    names: 'signed_sum' for pixel_dim <= 512, 'countsketch' above (default_patch_sketch)."""
    X = _images(3, 6, 6, 1, 4)
    for d, expected in ((16, "signed_sum"), (512, "signed_sum"), (513, "countsketch")):
        assert default_patch_sketch(d) == expected
    for d, expected in ((16, "signed_sum"), (520, "countsketch")):
        kw = dict(depth=2, n_components=64, degree=2, pixel_dim=d, seed=3)
        auto = CNTKSketch(**kw).fit(X)
        assert auto.patch_sketch == "auto" and auto.patch_sketch_ == expected
        named = CNTKSketch(patch_sketch=expected, **kw).fit(X)
        other = CNTKSketch(patch_sketch="srht", **kw).fit(X)
        assert named.patch_sketch_ == expected
        np.testing.assert_array_equal(auto.transform(X), named.transform(X))
        assert not np.array_equal(auto.transform(X), other.transform(X))
    # the default n_components = 4096 has pixel_dim 512: the signed sum
    assert CNTKSketch(depth=2, degree=2, seed=0).fit(X).patch_sketch_ == "signed_sum"


@given(seed=st.integers(0, 2 ** 31 - 1), c=st.floats(0.01, 100.0), q=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), ff=st.booleans())
def test_positive_homogeneity(seed, c, q, padding, ff):
    """Every step is positively 1-homogeneous in the image (u is scale free, g and P scale with |x|), like the
    CNTK itself: features(c x) = c features(x) for c > 0, up to rounding."""
    X = _images(2, 5, 6, 2, seed % 1000)
    sk = CNTKSketch(depth=2, n_components=40, filter_size=q, padding=padding, degree=2, pixel_dim=16,
                    fix_first=ff, seed=seed).fit(X)
    F = sk.transform(X)
    np.testing.assert_allclose(sk.transform(c * X), c * F, rtol=1e-9, atol=1e-12 * c * np.abs(F).max())


# ------------------------------------------------------------------------------------------------ validation
def test_errors():
    X = _images(2, 6, 6, 1, 0)
    with pytest.raises(ValueError, match="not fitted"):
        CNTKSketch(depth=2).transform(X)
    sk = CNTKSketch(depth=2, n_components=16, pixel_dim=8, degree=2, seed=0).fit(X)
    with pytest.raises(ValueError, match="4-d"):
        sk.transform(X[0])
    with pytest.raises(ValueError, match="fitted on"):
        sk.transform(_images(2, 7, 6, 1, 0))
    with pytest.raises(ValueError, match="NaN"):
        sk.transform(np.where(X > 0.5, np.nan, X))
    with pytest.raises(ValueError, match="receptive field"):
        CNTKSketch(depth=3, filter_size=3).fit((4, 9, 1))
    with pytest.raises(ValueError, match="receptive field"):
        CNTKSketch(depth=3, filter_size=3).fit(_images(1, 9, 4, 1, 0))
    with pytest.raises(ValueError, match="no trainable layer"):
        CNTKSketch(depth=1).fit(X)
    # even filters with 'same' are accepted (matched against the naive reference in test_matches_naive_reference)
    assert CNTKSketch(depth=2, n_components=16, filter_size=2, padding="same", pixel_dim=8, degree=2,
                      seed=0).fit(X).transform(X).shape == (2, 16)
    with pytest.raises(ValueError, match="padding"):
        CNTKSketch(depth=2, padding="full").fit(X)
    with pytest.raises(ValueError, match="patch_sketch"):
        CNTKSketch(depth=2, patch_sketch="gauss").fit(X)
    with pytest.raises(ValueError, match="polynomial"):
        CNTKSketch(depth=2, polynomial="chebyshev").fit(X)
    with pytest.raises(ValueError, match="non-negative"):
        CNTKSketch(depth=2, degree=1, polynomial=([[0.5, -1.0]] * 2, [[0.5, 0.5]] * 2)).fit(X)
    for name in ("depth", "n_components", "filter_size", "degree", "pixel_dim"):
        with pytest.raises(ValueError, match=name):
            CNTKSketch(**{"depth": 2, name: 0}).fit(X)
    with pytest.raises(ValueError, match="fix_first"):
        CNTKSketch(depth=2, fix_first="yes").fit(X)
    with pytest.raises(ValueError, match="renormalize"):
        CNTKSketch(depth=2, renormalize=1).fit(X)
    with pytest.raises(ValueError, match="fit_lower"):
        CNTKSketch(depth=2, fit_lower=1.0).fit(X)


def test_polynomial_intervals():
    """'fit' uses [0, 1] for every layer on non-negative images, [-1, 1] for the first layer otherwise, and
    (fit_lower, 1) everywhere when given; the value at 1 stays exact."""
    X = _images(2, 6, 6, 1, 0)
    sk = CNTKSketch(depth=2, degree=3, n_components=8, pixel_dim=8, polynomial="fit").fit(X)
    np.testing.assert_allclose(sk.poly_k0_[0], arccos_polynomials("fit", 3, (0.0, 1.0))[0])
    sk = CNTKSketch(depth=2, degree=3, n_components=8, pixel_dim=8, polynomial="fit").fit(X - 0.5)
    np.testing.assert_allclose(sk.poly_k0_[0], arccos_polynomials("fit", 3, (-1.0, 1.0))[0])
    np.testing.assert_allclose(sk.poly_k0_[1], arccos_polynomials("fit", 3, (0.0, 1.0))[0])
    sk = CNTKSketch(depth=2, degree=3, n_components=8, pixel_dim=8, fit_lower=0.5).fit(X)
    for c0, c1 in zip(sk.poly_k0_, sk.poly_k1_):
        np.testing.assert_allclose(c0, arccos_polynomials("fit", 3, (0.5, 1.0))[0])
        assert abs(c0.sum() - 1.0) < 1e-9 and abs(c1.sum() - 1.0) < 1e-9


# ------------------------------------------------------------------------------------------ issue 15
def test_features_exactly_homogeneous_and_empty_batches():
    # issue 15: the exact normalisers overflowed silently above ~1e154; now F(2^k x) = 2^k F(x) bit for bit
    from _inputs import assert_scales_exactly

    rng = np.random.default_rng(0)
    X = rng.random((3, 6, 6, 1)) + 0.25
    cs = CNTKSketch(depth=2, n_components=32, pixel_dim=8, seed=0).fit(X)
    assert_scales_exactly(cs.transform, X, 1, (-1000, -600, -300, 0, 300, 600, 1000))
    np.testing.assert_allclose(cs.transform(1e-200 * X), 1e-200 * cs.transform(X), rtol=1e-12)
    assert cs.transform(np.ones((0, 6, 6, 1))).shape == (0, 32)


def test_channels_first_hint_at_fit():
    with pytest.warns(UserWarning, match="channel axis"):
        CNTKSketch(depth=2, n_components=16, pixel_dim=8, padding="same", seed=0).fit(np.ones((2, 3, 8, 8)))
