"""Tests of ntk_sketch.kernels.polynomials: non-negativity, exactness at 1, accuracy figures quoted in docstrings."""
import numpy as np
import pytest

from ntk_sketch.kernels.arccos import arccos_kernel_0, arccos_kernel_1, taylor_truncation_error
from ntk_sketch.kernels.ntk_exact import ntk_cosine_kernel
from ntk_sketch.kernels.polynomials import (
    arccos_polynomials,
    fit_nonnegative_polynomial,
    ntk_polynomial,
    polynomial_max_error,
    polynomial_ntk_cosine_kernel,
)


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("interval", [(-1.0, 1.0), (0.0, 1.0)])
def test_fit_is_nonnegative_exact_at_one_and_beats_taylor(degree, interval):
    P0, P1 = arccos_polynomials("fit", degree, interval)
    T0, T1 = arccos_polynomials("taylor", degree)
    for P, T, fn in ((P0, T0, arccos_kernel_0), (P1, T1, arccos_kernel_1)):
        assert (P >= 0).all() and P.shape == (degree + 1,)
        assert abs(P.sum() - 1.0) < 1e-14
        # least squares need not beat Taylor in sup norm, but must in mean square on the fitting interval
        a = np.cos(np.linspace(0, np.arccos(interval[0]), 4000))
        rms = lambda c: np.sqrt(np.mean((np.polynomial.polynomial.polyval(a, c) - fn(a)) ** 2))
        assert rms(P) <= rms(T) + 1e-15


def test_taylor_max_error_is_the_tail_sum():
    for p in (2, 5):
        T0, T1 = arccos_polynomials("taylor", p)
        assert polynomial_max_error(T0, arccos_kernel_0) == pytest.approx(taylor_truncation_error("k0", p), rel=1e-9)
        assert polynomial_max_error(T1, arccos_kernel_1) == pytest.approx(taylor_truncation_error("k1", p), rel=1e-9)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_ntk_polynomial_exact_at_one(depth):
    for method in ("fit", "taylor"):
        c = ntk_polynomial(depth, 6, method)
        assert (c >= 0).all()
    assert ntk_polynomial(depth, 6, "fit").sum() == pytest.approx(depth + 1, abs=1e-13)


def test_composed_taylor_converges_to_ntk():
    # the composed-and-truncated Taylor series of K_2 converges (slowly, through the k0 singularity) to K_2
    a = np.linspace(-1, 1, 201)
    errs = [np.abs(np.polynomial.polynomial.polyval(a, ntk_polynomial(2, p, "taylor")) - ntk_cosine_kernel(a, 2)).max()
            for p in (4, 16, 64)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.25 * errs[0]


def test_polynomial_recursion_with_long_taylor_approaches_ntk():
    a = np.linspace(-1, 1, 101)
    P0, P1 = arccos_polynomials("taylor", 400)
    approx = polynomial_ntk_cosine_kernel(a, [P0] * 3, [P1] * 3)
    # error per k0 evaluation <= taylor_truncation_error('k0', 400) ~ 0.0127; three layers of K_L <= 4 compound it
    assert np.abs(approx - ntk_cosine_kernel(a, 3)).max() < 3 * 4 * taylor_truncation_error("k0", 400)
    exact_poly = polynomial_ntk_cosine_kernel(a, [[0.5, 0.5]], [[0.0, 1.0]])  # P0 = (1+a)/2, P1 = a
    np.testing.assert_allclose(exact_poly, a * (1 + a) / 2 + a)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        arccos_polynomials("chebyshev", 3)
    with pytest.raises(ValueError, match="interval"):
        fit_nonnegative_polynomial(arccos_kernel_0, 3, (0.0, 0.5))
    with pytest.raises(ValueError, match="degree"):
        ntk_polynomial(2, 0)


@pytest.mark.parametrize("interval, degree, e0, e1, eK", [
    ((-1.0, 1.0), 2, 0.1135, 0.0063, 0.3049), ((-1.0, 1.0), 4, 0.0507, 0.0013, 0.1413),
    ((-1.0, 1.0), 8, 0.0338, 0.0004, 0.0947), ((0.0, 1.0), 2, 0.0565, 0.0047, 0.2038),
    ((0.0, 1.0), 4, 0.0428, 0.0010, 0.1295), ((0.0, 1.0), 8, 0.0309, 0.0003, 0.0889),
])
def test_fit_errors_are_the_ones_the_docstring_states(interval, degree, e0, e1, eK):
    P0, P1 = arccos_polynomials("fit", degree, interval)
    K2 = ntk_polynomial(2, degree, "fit", interval)
    # the docstring rounds to 4 decimals
    assert polynomial_max_error(P0, arccos_kernel_0, interval) == pytest.approx(e0, abs=6e-5)
    assert polynomial_max_error(P1, arccos_kernel_1, interval) == pytest.approx(e1, abs=6e-5)
    assert polynomial_max_error(K2, lambda a: ntk_cosine_kernel(a, 2), interval) == pytest.approx(eK, abs=6e-5)


def test_weighted_fit_recovers_a_nonnegative_polynomial_and_keeps_the_value_at_one():
    from ntk_sketch.kernels.polynomials import fit_weighted_nonnegative_polynomial

    a = np.linspace(-1, 1, 301)
    true = np.array([0.5, 0.0, 1.0, 0.25])
    c = fit_weighted_nonnegative_polynomial(a, np.polynomial.polynomial.polyval(a, true), np.ones_like(a), 3,
                                            true.sum())
    np.testing.assert_allclose(c, true, atol=1e-6)
    c = fit_weighted_nonnegative_polynomial(a, np.cos(3 * a), 1 + a ** 2, 4, 2.0)
    assert np.all(c >= 0) and c.sum() == pytest.approx(2.0, abs=1e-12)


def test_data_fit_is_more_accurate_where_the_weight_is():
    from ntk_sketch.kernels.ntk_exact import ntk_cosine_kernel
    from ntk_sketch.kernels.polynomials import ntk_polynomial, ntk_polynomial_for_cosines

    a = np.random.default_rng(0).normal(0.0, 0.2, 5000).clip(-1, 1)
    w = np.ones_like(a)
    c_data = ntk_polynomial_for_cosines(2, 4, a, w)
    c_int = ntk_polynomial(2, 4, "fit", (-1.0, 1.0))
    err = lambda c: np.sqrt(np.mean((np.polynomial.polynomial.polyval(a, c) - ntk_cosine_kernel(a, 2)) ** 2))
    assert err(c_data) < 0.5 * err(c_int)
    assert np.all(c_data >= 0) and c_data.sum() == pytest.approx(3.0, abs=1e-12)
