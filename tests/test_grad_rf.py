"""Tests of ntk_sketch.features.grad_rf: gradients against finite differences of a slow forward pass, the rate at
which the gradient inner products converge to the exact NTK / CNTK, the width choice, and the estimator contract."""
import numpy as np
import pytest

from ntk_sketch import CNNGradRF, GradRF, cntk_kernel, ntk_kernel
from ntk_sketch.features.grad_rf import _nearest_width, cnn_grad_rf_dimension, grad_rf_dimension


# ------------------------------------------------------------------------------- slow obvious forward passes
def fc_forward(x, weights, v):
    """f(x) of docs/math.md §11, written out plainly."""
    w = v.size
    a = x
    for h, W in enumerate(weights):
        g = W @ a if h == 0 else np.sqrt(2.0 / w) * (W @ a)
        a = np.maximum(g, 0.0)
    return np.sqrt(2.0 / w) * v @ a


def cnn_forward(x, filters, v, q, padding):
    """f(x) of the convolutional network of docs/math.md §11, with explicit loops over pixels and offsets."""
    w = v.size
    a = x
    for h, F in enumerate(filters):
        if padding == "same":  # (q-1)//2 zeros before, q//2 after (one more after for even q)
            pb, pa = (q - 1) // 2, q // 2
            a = np.pad(a, ((pb, pa), (pb, pa), (0, 0)))
        Ho, Wo = a.shape[0] - q + 1, a.shape[1] - q + 1
        g = np.zeros((Ho, Wo, w))
        for i in range(Ho):
            for j in range(Wo):
                for u in range(q):
                    for t in range(q):
                        g[i, j] += a[i + u, j + t] @ F[u, t]
        if h > 0:
            g *= np.sqrt(2.0) / (q * np.sqrt(w))
        a = np.maximum(g, 0.0)
    return np.sqrt(2.0) / (q * np.sqrt(w)) * v @ a.reshape(-1, w).mean(axis=0)


def central_differences(f, params, eps=1e-6):
    """d f / d p for every entry of every array in ``params`` (modified in place and restored)."""
    out = []
    for P in params:
        flat = P.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + eps
            up = f()
            flat[k] = old - eps
            down = f()
            flat[k] = old
            out.append((up - down) / (2 * eps))
    return np.array(out)


# ------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_fc_features_are_the_parameter_gradient(depth):
    rng = np.random.default_rng(depth)
    X = rng.standard_normal((3, 4))
    fm = GradRF(depth, width=5, seed=depth).fit(X)
    F = fm.transform(X)
    for r in range(X.shape[0]):
        num = central_differences(lambda: fc_forward(X[r], fm.weights_, fm.readout_), fm.weights_ + [fm.readout_])
        # f is piecewise multilinear in the weights: away from a ReLU kink (the random draw puts none within eps)
        # a central difference is exact up to rounding, ~1e-16 / 1e-6 = 1e-10
        np.testing.assert_allclose(F[r], num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("padding, q, fix_first, fix_last", [("valid", 3, False, False), ("same", 3, False, False),
                                                            ("valid", 3, True, False), ("valid", 3, False, True),
                                                            ("same", 2, False, False), ("same", 4, False, True)])
def test_cnn_features_are_the_parameter_gradient(padding, q, fix_first, fix_last):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 5, 6, 2))
    fm = CNNGradRF(2, width=3, filter_size=q, padding=padding, fix_first=fix_first, fix_last=fix_last,
                   seed=4).fit(X)
    F = fm.transform(X)
    params = ([] if fix_first else [fm.filters_[0]]) + fm.filters_[1:] + ([] if fix_last else [fm.readout_])
    for r in range(X.shape[0]):
        num = central_differences(lambda: cnn_forward(X[r], fm.filters_, fm.readout_, q, padding), params)
        np.testing.assert_allclose(F[r], num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("q", [2, 3, 4])
def test_cnn_one_same_layer_is_a_valid_layer_on_padded_images(q):
    """Depth 1: the 'same' network on x is the 'valid' network on x zero-padded by (q-1)//2 before and q//2
    after, with the same filters (their shapes do not depend on the image size), so the gradients agree; this
    is the alignment of cntk_kernel's 'same' (tests/test_cntk_exact.py checks the same identity)."""
    X = np.random.default_rng(5).standard_normal((3, 4, 5, 2))
    pad = ((0, 0), ((q - 1) // 2, q // 2), ((q - 1) // 2, q // 2), (0, 0))
    same = CNNGradRF(1, width=6, filter_size=q, padding="same", seed=7).fit(X)
    valid = CNNGradRF(1, width=6, filter_size=q, padding="valid", seed=7).fit(np.pad(X, pad))
    np.testing.assert_array_equal(same.filters_[0], valid.filters_[0])
    np.testing.assert_allclose(same.transform(X), valid.transform(np.pad(X, pad)), rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------------------- convergence rate
def _mean_relative_errors(make, X, K, widths, n_seeds):
    errs = []
    for w in widths:
        e = []
        for s in range(n_seeds):
            F = make(w, 1000 * w + s).fit_transform(X)
            e.append(np.linalg.norm(F @ F.T - K) / np.linalg.norm(K))
        errs.append(np.mean(e))
    return np.array(errs)


def test_fc_inner_products_converge_to_the_ntk_at_rate_one_over_sqrt_width():
    """Fluctuations of a finite-width NTK are O(w^-1/2) (docs/math.md §11): the log-log slope of the mean relative
    Frobenius error against the width is -1/2.  Over 20 independent repeats of this design (6 rows, d = 5, L = 2,
    widths 32..512, 8 seeds each) the fitted slope had mean -0.498 and standard deviation 0.055; the tolerance
    0.25 is 4.5 standard deviations (failure probability ~1e-5 for a correct map).  A map converging to another
    kernel would plateau (slope -> 0)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 5))
    K = ntk_kernel(X, depth=2)
    widths = np.array([32, 64, 128, 256, 512])
    errs = _mean_relative_errors(lambda w, s: GradRF(2, width=w, seed=s), X, K, widths, 8)
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert abs(slope + 0.5) < 0.25, (slope, errs)
    assert errs[-1] < 0.15, errs


def test_cnn_inner_products_converge_to_the_cntk_at_rate_one_over_sqrt_width():
    """Same for CNNGradRF against cntk_kernel(fix_first=False, fix_last=False): 4 images 6 x 6 x 2, L = 2, q = 3,
    widths 8..128, 16 seeds.  With 8 seeds the slope's standard deviation over 20 repeats was 0.10 (mean -0.514),
    so with 16 it is about 0.072 and the tolerance 0.3 is ~4 standard deviations (failure probability ~1e-4)."""
    rng = np.random.default_rng(1)
    X = rng.random((4, 6, 6, 2))
    K = cntk_kernel(X, depth=2, filter_size=3, fix_first=False, fix_last=False)
    widths = np.array([8, 16, 32, 64, 128])
    errs = _mean_relative_errors(lambda w, s: CNNGradRF(2, width=w, seed=s), X, K, widths, 16)
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert abs(slope + 0.5) < 0.3, (slope, errs)
    assert errs[-1] < 0.25, errs


@pytest.mark.parametrize("fix_first, fix_last", [(True, False), (False, True), (True, True)])
def test_cnn_fixed_layers_match_the_kernel_with_the_same_flags(fix_first, fix_last):
    # at width 256 the relative error to the matching kernel is ~0.15 (measured), while the kernels with other
    # flags differ from it by far more than that; the right kernel must be the nearest one
    rng = np.random.default_rng(2)
    X = rng.random((4, 6, 6, 1))
    F = CNNGradRF(2, width=256, fix_first=fix_first, fix_last=fix_last, seed=0).fit_transform(X)
    G = F @ F.T
    errs = {}
    for ff in (False, True):
        for fl in (False, True):
            K = cntk_kernel(X, depth=2, filter_size=3, fix_first=ff, fix_last=fl)
            errs[(ff, fl)] = np.linalg.norm(G - K) / np.linalg.norm(K)
    assert min(errs, key=errs.get) == (fix_first, fix_last), errs
    assert errs[(fix_first, fix_last)] < 0.3, errs


# ------------------------------------------------------------------------------- width choice
@pytest.mark.parametrize("m, d, L", [(8192, 784, 2), (100, 3, 1), (1, 10, 2), (5000, 20, 3), (12345, 1, 2)])
def test_width_gives_the_nearest_dimension(m, d, L):
    w = _nearest_width(lambda v: grad_rf_dimension(v, d, L), m)
    dims = [grad_rf_dimension(v, d, L) for v in range(1, w + 3)]
    best = min(range(len(dims)), key=lambda i: (abs(dims[i] - m), i)) + 1
    assert w == best
    fm = GradRF(L, m, seed=0).fit(np.ones((1, d)))
    assert fm.width_ == w and fm.n_features_out_ == grad_rf_dimension(w, d, L)
    assert fm.transform(np.ones((2, d))).shape == (2, fm.n_features_out_)


def test_cnn_width_and_dimension():
    fm = CNNGradRF(3, 4096, seed=0).fit((28, 28, 1))
    assert fm.n_features_out_ == cnn_grad_rf_dimension(fm.width_, 1, 3, 3)
    others = [cnn_grad_rf_dimension(fm.width_ + k, 1, 3, 3) for k in (-1, 1)]
    assert all(abs(o - 4096) >= abs(fm.n_features_out_ - 4096) for o in others)
    assert fm.grid_sizes_ == [(28, 28), (26, 26), (24, 24), (22, 22)]
    assert CNNGradRF(1, 50, fix_first=True, seed=0).fit((5, 5, 1)).width_ == 50  # only the readout is left


# ------------------------------------------------------------------------------- estimator contract
def test_determinism_dtypes_and_sparse_input():
    import scipy.sparse as sp
    rng = np.random.default_rng(5)
    X = rng.standard_normal((7, 6))
    a = GradRF(2, 300, seed=11).fit_transform(X)
    b = GradRF(2, 300, seed=11).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, GradRF(2, 300, seed=12).fit_transform(X))
    f32 = GradRF(2, 300, seed=11).fit(X).transform(X.astype(np.float32))
    assert f32.dtype == np.float32 and a.dtype == np.float64
    np.testing.assert_allclose(f32, a, rtol=1e-4, atol=1e-5)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
    np.testing.assert_allclose(GradRF(2, 300, seed=1).fit(Xs).transform(Xs),
                               GradRF(2, 300, seed=1).fit(Xs.toarray()).transform(Xs.toarray()))
    # chunking changes only how BLAS blocks the products (rounding level)
    np.testing.assert_allclose(GradRF(2, 300, chunk_size=2, seed=11).fit_transform(X), a, rtol=1e-12, atol=1e-14)

    Xi = rng.random((5, 8, 8, 1))
    c = CNNGradRF(2, 500, seed=3).fit_transform(Xi)
    # the batch size changes only how BLAS blocks the products (rounding level)
    np.testing.assert_allclose(c, CNNGradRF(2, 500, chunk_size=2, seed=3).fit_transform(Xi), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(c, CNNGradRF(2, 500, seed=3).fit_transform(Xi))
    c32 = CNNGradRF(2, 500, seed=3).fit(Xi).transform(Xi.astype(np.float32))
    assert c32.dtype == np.float32 and c.dtype == np.float64
    np.testing.assert_allclose(c32, c, rtol=1e-3, atol=1e-5)
    assert np.all(np.isfinite(c))


def test_zero_rows_give_zero_features():
    F = GradRF(2, 200, seed=0).fit_transform(np.zeros((2, 4)))
    assert np.all(F == 0)
    assert np.all(CNNGradRF(2, 200, seed=0).fit_transform(np.zeros((1, 6, 6, 1))) == 0)


def test_input_errors():
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="not fitted"):
        GradRF().transform(X)
    with pytest.raises(ValueError, match="depth"):
        GradRF(0).fit(X)
    with pytest.raises(ValueError, match="width"):
        GradRF(width=0).fit(X)
    with pytest.raises(ValueError, match="dtype"):
        GradRF(dtype="int8").fit(X)
    with pytest.raises(ValueError, match="features"):
        GradRF(1, 50).fit(X).transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="not fitted"):
        CNNGradRF().transform(np.ones((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="no parameter"):
        CNNGradRF(1, fix_first=True, fix_last=True).fit((5, 5, 1))
    with pytest.raises(ValueError, match="receptive field"):
        CNNGradRF(3, filter_size=3).fit((6, 6, 1))
    # even filters with 'same' are accepted (test_cnn_features_are_the_parameter_gradient checks their gradients)
    assert CNNGradRF(2, 100, filter_size=2, padding="same").fit((6, 6, 1)).grid_sizes_ == [(6, 6)] * 3
    with pytest.raises(ValueError, match="shape"):
        CNNGradRF(2, 100).fit((8, 8, 1)).transform(np.ones((1, 7, 8, 1)))
