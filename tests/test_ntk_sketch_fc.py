"""Tests of ntk_sketch.features.ntk_sketch_fc (NTKSketch): unbiasedness for the polynomial kernels it targets, error rates,
accuracy against the exact NTK on real rows, shapes/dtypes/sparsity, and input checks."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from ntk_sketch.metrics import relative_frobenius_error
from ntk_sketch.kernels.ntk_exact import ntk_kernel
from ntk_sketch.features.ntk_sketch_fc import NTKSketch
from ntk_sketch.kernels.polynomials import polynomial_ntk_cosine_kernel


def _points(seed=0, n=5, d=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[1] = X[0] + 0.3 * rng.standard_normal(d)
    return X


def _cosines_and_norms(X):
    nrm = np.linalg.norm(X, axis=1)
    return np.clip(X @ X.T / np.outer(nrm, nrm), -1, 1), np.outer(nrm, nrm)


def _mean_and_se(make_features, n_seeds):
    samples = np.array([(lambda F: F @ F.T)(make_features(s)) for s in range(n_seeds)])
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(n_seeds)


@pytest.mark.parametrize("depth", [1, 3])
def test_single_variant_is_unbiased_for_its_polynomial(depth):
    X = _points(depth)
    sk = NTKSketch(depth, 97, degree=3, polynomial="taylor", variant="single", seed=0).fit(X)
    c = sk.coefficients_["K"]
    A, scale = _cosines_and_norms(X)
    target = scale * np.polynomial.polynomial.polyval(A, c)
    mean, se = _mean_and_se(
        lambda s: NTKSketch(depth, 97, degree=3, polynomial="taylor", variant="single", seed=s).fit_transform(X), 300)
    z = (mean - target)[np.triu_indices(5)] / se[np.triu_indices(5)]
    # 300 independent seeds: z ~ N(0, 1) per entry; P(max of 15 |z| > 6) < 3e-8
    assert np.abs(z).max() < 6, z


def test_layered_variant_is_unbiased_at_depth_one():
    X = np.abs(_points(3))  # non-negative input: first-layer polynomials fitted on [0, 1]
    make = lambda s: NTKSketch(1, 64, degree=3, polynomial="fit", variant="layered", sketch_dim=32,
                               seed=s).fit_transform(X)
    sk = NTKSketch(1, 64, degree=3, polynomial="fit", variant="layered", seed=0).fit(X)
    A, scale = _cosines_and_norms(X)
    target = scale * polynomial_ntk_cosine_kernel(A, sk.coefficients_["P0"], sk.coefficients_["P1"])
    mean, se = _mean_and_se(make, 300)
    z = (mean - target)[np.triu_indices(5)] / se[np.triu_indices(5)]
    assert np.abs(z).max() < 6, z  # as above: P(false failure) < 3e-8


def _fashion_rows(n):
    from ntk_sketch.datasets import load_bundled_fashion_mnist

    X, _ = load_bundled_fashion_mnist("train", flatten=True)
    return X[:n]


def test_accuracy_against_exact_ntk_on_real_rows():
    """Fashion-MNIST rows, L = 2, m = 4096, the single variant at degree 4: median relative Frobenius error over
    3 seeds below 0.06.  Measured: polynomial floor 0.027 (fit on [0, 1]) and sketch error 0.03-0.045 at this m;
    0.06 is the floor plus three times the observed spread of the sketch error."""
    X = _fashion_rows(300)
    K = ntk_kernel(X, depth=2)
    errs = [relative_frobenius_error(NTKSketch(2, 4096, degree=4, variant="single", seed=s).fit_transform(X), K)
            for s in range(3)]
    assert np.median(errs) < 0.06, errs


@pytest.mark.slow
def test_error_falls_like_inverse_square_root_until_the_floor():
    X = _fashion_rows(300)
    sk0 = NTKSketch(2, 1024, degree=2, polynomial="taylor", variant="single", seed=0).fit(X)
    A, scale = _cosines_and_norms(X)
    target = scale * np.polynomial.polynomial.polyval(A, sk0.coefficients_["K"])  # the kernel it is unbiased for
    # m >= 2048: the degree-1 term is exact (d = 784 < m / 2), so all the variance is the degree-2 block's, whose
    # width is the sketch dimension we regress on
    ms = [2048, 4096, 8192, 16384]
    sketches = [[NTKSketch(2, m, degree=2, polynomial="taylor", variant="single", seed=s).fit(X) for s in range(5)]
                for m in ms]
    widths = [sks[0].sketch_width_ for sks in sketches]
    med = [np.median([np.linalg.norm((lambda F: F @ F.T)(sk.transform(X)) - target) / np.linalg.norm(target)
                      for sk in sks]) for sks in sketches]
    slope = np.polyfit(np.log(widths), np.log(med), 1)[0]
    # unbiased sketch: error ~ width^-1/2; medians of 5 seeds keep the fitted slope within ~0.1 of it
    assert -0.7 < slope < -0.35, (slope, med)
    # against the exact NTK the error stops at the polynomial floor
    K = ntk_kernel(X, depth=2)
    floor = np.linalg.norm(target - K) / np.linalg.norm(K)
    big = NTKSketch(2, 65536, degree=2, polynomial="taylor", variant="single", seed=0).fit_transform(X)
    assert relative_frobenius_error(big, K) == pytest.approx(floor, abs=0.3 * floor)


# ------------------------------------------------------------------------------------------ shapes, dtypes, errors
@given(st.integers(1, 3), st.integers(16, 300), st.integers(1, 5), st.sampled_from(["layered", "single", "compressed"]),
       st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]))
def test_shapes_dtypes_determinism(depth, m, degree, variant, seed, dtype):
    X = np.random.default_rng(seed).standard_normal((6, 5)).astype(dtype)
    sk = NTKSketch(depth, m, degree=degree, variant=variant, seed=seed).fit(X)
    F = sk.transform(X)
    assert F.shape == (6, sk.n_features_out_) and sk.n_features_out_ <= m and F.dtype == dtype
    assert np.isfinite(F).all()
    np.testing.assert_array_equal(F, NTKSketch(depth, m, degree=degree, variant=variant, seed=seed).fit(X).transform(X))
    sk3 = NTKSketch(depth, m, degree=degree, variant=variant, seed=seed, chunk_size=4).fit(X)
    np.testing.assert_allclose(sk3.transform(X), F, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


@pytest.mark.parametrize("variant", ["layered", "single", "compressed"])
def test_sparse_equals_dense_with_the_same_leaves_and_zero_rows(variant):
    X = np.abs(np.random.default_rng(0).standard_normal((7, 40)))
    X[X < 1.0] = 0.0
    X[3] = 0.0
    dense = NTKSketch(2, 256, degree=3, variant=variant, base="osnap", seed=1).fit(X)
    sparse = NTKSketch(2, 256, degree=3, variant=variant, base="osnap", seed=1).fit(sp.csr_matrix(X))
    F = dense.transform(X)
    np.testing.assert_allclose(sparse.transform(sp.csr_matrix(X)), F, rtol=1e-10, atol=1e-12)
    assert np.all(F[3] == 0.0)


def test_bad_input():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="not fitted"):
        NTKSketch().transform(X)
    sk = NTKSketch(1, 32, seed=0).fit(X)
    with pytest.raises(ValueError, match="3"):
        sk.transform(np.ones((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        sk.transform(np.array([[np.inf, 0.0, 1.0]]))
    for kwargs, match in [({"n_components": 0}, "n_components"), ({"depth": 0}, "depth"),
                          ({"degree": 0}, "degree"), ({"polynomial": "chebyshev"}, "polynomial"),
                          ({"variant": "deep"}, "variant"), ({"base": "fft"}, "base"),
                          ({"compression": "gauss"}, "compression")]:
        with pytest.raises(ValueError, match=match):
            NTKSketch(**kwargs).fit(X)


# ------------------------------------------------------------------------------------------ issue 15
@pytest.mark.parametrize("variant", ["layered", "single"])
def test_features_exactly_homogeneous_over_the_whole_float_range(variant):
    # issue 15: |x|^2 overflowed above ~1e154 and rows scaled by 1e-200 came out as exact zeros
    from _inputs import assert_scales_exactly

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 5))
    X = np.sign(X) * (0.25 + np.abs(X))
    sk = NTKSketch(depth=2, n_components=64, variant=variant, seed=0).fit(X)
    assert_scales_exactly(sk.transform, X, 1, (-1000, -664, -300, 0, 300, 600, 1000))
    np.testing.assert_allclose(sk.transform(1e-200 * X), 1e-200 * sk.transform(X), rtol=1e-12)
    assert np.all(np.abs(sk.transform(1e-200 * X)).max(axis=1) > 0)
    assert sk.transform(np.ones((0, 5))).shape == (0, sk.n_features_out_)


def test_non_canonical_csr_is_not_rewritten_and_read_only_input_works():
    # issue 15: transform summed duplicates / sorted indices in the caller's own CSR arrays
    from _inputs import assert_csr_unchanged, non_canonical_csr, read_only, snapshot_csr

    X, dense = non_canonical_csr(seed=1)
    snap = snapshot_csr(X)
    sk = NTKSketch(depth=2, n_components=64, seed=0).fit(X)
    assert_csr_unchanged(X, snap)
    F = sk.transform(X)
    assert_csr_unchanged(X, snap)
    assert not X.has_canonical_format
    np.testing.assert_allclose(F, sk.transform(sp.csr_matrix(dense)), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(sk.transform(read_only(X)), F)
    np.testing.assert_array_equal(sk.transform(read_only(dense)), sk.transform(dense))


# ------------------------------------------------------------------------------------------ variant 'compressed'
def _assert_unbiased_for_its_polynomial(make, X, Xin):
    """Mean of F F^T over 300 seeds against the polynomial kernel of ``make(0)``'s coefficients: z ~ N(0, 1) per
    entry, P(max of 15 |z| > 6) < 3e-8."""
    c = make(0).coefficients_["K"]
    A, scale = _cosines_and_norms(X)
    target = scale * np.polynomial.polynomial.polyval(A, c)
    mean, se = _mean_and_se(lambda s: make(s).transform(Xin), 300)
    z = (mean - target)[np.triu_indices(5)] / se[np.triu_indices(5)]
    assert np.abs(z).max() < 6, z


@pytest.mark.parametrize("compression", ["srht", "countsketch"])
@pytest.mark.parametrize("depth,sparse", [(1, False), (2, False), (2, True)])
def test_compressed_variant_is_unbiased_for_its_polynomial(compression, depth, sparse):
    """Every map is unbiased given the previous ones, so the mean of F F^T is the polynomial kernel exactly.
    300 seeds: z ~ N(0, 1) per entry; P(max of 15 |z| > 6) < 3e-8."""
    X = _points(depth)
    Xin = sp.csr_matrix(X) if sparse else X
    make = lambda s: NTKSketch(depth, 97, degree=3, polynomial="taylor", compression=compression, seed=s).fit(Xin)
    _assert_unbiased_for_its_polynomial(make, X, Xin)


@pytest.mark.parametrize("variant,depth,sparse", [("compressed", 2, False), ("compressed", 1, True),
                                                  ("single", 2, False)])
def test_countsketch_nodes_are_unbiased_for_the_polynomial(variant, depth, sparse):
    """node='countsketch' (TensorSketch nodes, OSNAP leaves): the same expectation as TensorSRHT nodes.
    300 seeds: z ~ N(0, 1) per entry; P(max of 15 |z| > 6) < 3e-8."""
    X = _points(depth)
    Xin = sp.csr_matrix(X) if sparse else X
    make = lambda s: NTKSketch(depth, 97, degree=3, polynomial="taylor", variant=variant, node="countsketch",
                               seed=s).fit(Xin)
    sk = make(0)
    assert sk.power_trees_ is None and sk.poly_tables_ is not None and sk.base_ == "osnap"
    _assert_unbiased_for_its_polynomial(make, X, Xin)


def test_layered_variant_with_countsketch_nodes_is_unbiased_at_depth_one():
    X = np.abs(_points(3))
    make = lambda s: NTKSketch(1, 64, degree=3, polynomial="fit", variant="layered", sketch_dim=32,
                               node="countsketch", seed=s).fit_transform(X)
    sk = NTKSketch(1, 64, degree=3, polynomial="fit", variant="layered", seed=0).fit(X)
    A, scale = _cosines_and_norms(X)
    target = scale * polynomial_ntk_cosine_kernel(A, sk.coefficients_["P0"], sk.coefficients_["P1"])
    mean, se = _mean_and_se(make, 300)
    z = (mean - target)[np.triu_indices(5)] / se[np.triu_indices(5)]
    assert np.abs(z).max() < 6, z  # P(false failure) < 3e-8


def test_shared_power_trees_are_unbiased_for_every_degree():
    """_draw_power_trees shares each degree's left subtree with the lower degrees; every degree must stay unbiased
    for <u, v>^l (the right subtree is fresh, so the node's children are independent).  400 seeds per degree:
    z ~ N(0, 1) per entry; P(max over 6 degrees x 15 entries of |z| > 6) < 2e-7."""
    from ntk_sketch.features.ntk_sketch_fc import _apply_power_trees, _draw_power_trees

    X = _points(4)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    degrees = [2, 3, 4, 5, 6, 7]
    trees0 = _draw_power_trees(6, 16, degrees, np.random.default_rng(0))
    assert len(trees0[0]) == 1 + 1 + 2 + 2 + 3 + 3  # one node per degree plus its fresh right subtree
    samples = np.array([[Z @ Z.T for Z in _apply_power_trees(U, _draw_power_trees(6, 16, degrees,
                                                                                    np.random.default_rng(s)))]
                        for s in range(400)])
    mean, se = samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(400)
    iu = np.triu_indices(5)
    for i, l in enumerate(degrees):
        z = (mean[i] - (U @ U.T) ** l)[iu] / se[i][iu]
        assert np.abs(z).max() < 6, (l, z)


def test_compressed_variant_without_compression_when_the_degrees_fit():
    """sketch_dim 40 for one sketched degree in m = 97: the sketch is widened to the 90 free columns and nothing is
    compressed; still unbiased for the polynomial (300 seeds, P(max of 15 |z| > 6) < 3e-8)."""
    X = _points(2)
    make = lambda s: NTKSketch(2, 97, degree=2, polynomial="taylor", sketch_dim=40, seed=s).fit(X)
    sk = make(0)
    assert sk.exact_linear_ and list(sk.sketched_degrees_) == [2]
    assert sk.compression_ == "none" and sk.sketch_width_ == 90 and sk.n_features_out_ == 97
    _assert_unbiased_for_its_polynomial(make, X, X)


def _standardised_rows(n):
    from ntk_sketch.datasets import load_bundled_fashion_mnist

    Xtr, _ = load_bundled_fashion_mnist("train", flatten=True)
    sd = Xtr.std(axis=0)
    sd[sd == 0] = 1.0
    return ((Xtr - Xtr.mean(axis=0)) / sd)[:n]


def test_default_is_at_least_as_accurate_as_the_other_variants_on_standardised_rows():
    """The defaults (compressed, data-fitted polynomial) against 'single' and 'layered' on 200 standardised rows,
    L = 2, m = 1024, one comparison per seed.  Measured on the full protocol: 0.086 against 0.21 and 0.22.  The
    default must be at least 25% more accurate in at least 4 of 5 seeds each (with a per-seed win probability
    >= 0.95 a false failure has probability < 0.03 per comparison; measured: every seed wins by > 2x)."""
    X = _standardised_rows(200)
    K = ntk_kernel(X, depth=2)
    wins = {"single": 0, "layered": 0}
    for s in range(5):
        e = relative_frobenius_error(NTKSketch(2, 1024, seed=s).fit_transform(X), K)
        for v in wins:
            other = relative_frobenius_error(NTKSketch(2, 1024, variant=v, polynomial="fit", seed=s).fit_transform(X), K)
            wins[v] += e < 0.75 * other
    assert min(wins.values()) >= 4, wins


@pytest.mark.slow
def test_compressed_error_falls_like_inverse_square_root():
    X = _standardised_rows(300)
    make = lambda m, s: NTKSketch(2, m, sketch_dim=m, compression="srht", seed=s).fit(X)
    c = make(1024, 0).coefficients_["K"]
    A, scale = _cosines_and_norms(X)
    target = scale * np.polynomial.polynomial.polyval(A, c)
    ms = [1024, 2048, 4096]
    med = [np.median([np.linalg.norm((lambda F: F @ F.T)(make(m, s).transform(X)) - target) / np.linalg.norm(target)
                      for s in range(5)]) for m in ms]
    slope = np.polyfit(np.log(ms), np.log(med), 1)[0]
    assert -0.75 < slope < -0.35, (slope, med)  # unbiased: ~ m^-1/2 (the exact-linear switch makes it steeper)


def test_data_polynomial_is_closer_to_the_ntk_than_the_interval_fit():
    """Deterministic: the polynomial kernel itself (no sketch) on standardised rows; measured 0.013 vs 0.041."""
    X = _standardised_rows(300)
    K = ntk_kernel(X, depth=2)
    A, scale = _cosines_and_norms(X)
    errs = {}
    for poly in ("data", "fit"):
        c = NTKSketch(2, 1024, polynomial=poly, seed=0).fit(X).coefficients_["K"]
        errs[poly] = np.linalg.norm(scale * np.polynomial.polynomial.polyval(A, c) - K) / np.linalg.norm(K)
    assert errs["data"] < 0.6 * errs["fit"], errs


def test_layered_variant_refuses_deep_nets_with_a_clear_message():
    X = _points(0)
    with pytest.raises(ValueError, match="variant='compressed'"):
        NTKSketch(40, 64, variant="layered").fit(X)
