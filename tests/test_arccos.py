"""Tests of ntk_sketch.kernels.arccos: exact values, identities, Taylor coefficients and their truncation error."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import comb

from ntk_sketch.kernels import arccos as ac
from ntk_sketch.kernels.arccos import (
    arccos_kernel_0,
    arccos_kernel_1,
    arcsin_series_coefficients,
    evaluate_polynomial,
    taylor_coefficients_k0,
    taylor_coefficients_k1,
    taylor_truncation_error,
)

from naive import k0_naive, k1_naive


def test_exact_values():
    # docs/math.md §1: k0(1) = k1(1) = 1, k0(-1) = k1(-1) = 0, k0(0) = 1/2, k1(0) = 1/pi
    np.testing.assert_array_equal(arccos_kernel_0([1.0, -1.0]), [1.0, 0.0])
    np.testing.assert_array_equal(arccos_kernel_1([1.0, -1.0]), [1.0, 0.0])
    assert arccos_kernel_0(0.0) == 0.5
    assert abs(arccos_kernel_1(0.0) - 1 / math.pi) < 1e-17


def test_fast_acos_matches_libm_to_an_ulp_or_two():
    a = np.concatenate([np.linspace(-1, 1, 400001), 1 - np.logspace(-16, -1, 1000), -1 + np.logspace(-16, -1, 1000)])
    fast = math.pi * (1.0 - arccos_kernel_0(a))
    # 1 - acos/pi and back costs up to ~2 ulps of pi; libm acos is itself ~1 ulp.
    np.testing.assert_allclose(fast, np.arccos(a), rtol=0, atol=4 * np.spacing(np.pi))


def test_against_naive_scalar_formulas():
    a = np.linspace(-1, 1, 2001)
    np.testing.assert_allclose(arccos_kernel_0(a), [k0_naive(v) for v in a], rtol=0, atol=1e-15)
    np.testing.assert_allclose(arccos_kernel_1(a), [k1_naive(v) for v in a], rtol=0, atol=1e-15)


def test_derivative_of_k1_is_k0():
    a = np.linspace(-0.999, 0.999, 999)
    h = 1e-6
    deriv = (arccos_kernel_1(a + h) - arccos_kernel_1(a - h)) / (2 * h)
    # central difference: truncation error h^2 |k1'''| / 6 stays below 1e-9 on this range; rounding ~1e-10
    np.testing.assert_allclose(deriv, arccos_kernel_0(a), rtol=0, atol=1e-8)


def test_monte_carlo_meaning():
    """2 E[1{w.x>0}1{w.y>0}] = k0(cos t) and 2 E[relu(w.x)relu(w.y)] = |x||y| k1(cos t)."""
    rng = np.random.default_rng(12345)
    x, y = np.array([1.0, 0.5, -0.3]), np.array([0.2, -1.0, 0.7])
    W = rng.standard_normal((2_000_000, 3))
    u, v = W @ x, W @ y
    step = 2.0 * ((u > 0) & (v > 0))
    relu = 2.0 * np.maximum(u, 0) * np.maximum(v, 0)
    a = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
    # 6 standard errors: a two-sided normal tail of 2e-9 per assertion (the seed is fixed, so this is one draw)
    assert abs(step.mean() - arccos_kernel_0(a)) < 6 * step.std() / math.sqrt(step.size)
    target = np.linalg.norm(x) * np.linalg.norm(y) * arccos_kernel_1(a)
    assert abs(relu.mean() - target) < 6 * relu.std() / math.sqrt(relu.size)


def test_arcsin_coefficients_closed_form():
    i = np.arange(30)
    closed = comb(2 * i, i, exact=False) / (4.0**i * (2 * i + 1))
    np.testing.assert_allclose(arcsin_series_coefficients(30), closed, rtol=1e-14)
    t = np.linspace(-0.5, 0.5, 11)
    series = sum(b * t ** (2 * k + 1) for k, b in enumerate(arcsin_series_coefficients(60)))
    np.testing.assert_allclose(series, np.arcsin(t), rtol=0, atol=1e-16 + 1e-15)


def test_taylor_coefficients_layout():
    c0 = taylor_coefficients_k0(7)
    c1 = taylor_coefficients_k1(8)
    b = arcsin_series_coefficients(4)
    np.testing.assert_allclose(c0, [0.5, b[0] / math.pi, 0, b[1] / math.pi, 0, b[2] / math.pi, 0, b[3] / math.pi])
    expected1 = [1 / math.pi, 0.5, b[0] / (2 * math.pi), 0, b[1] / (4 * math.pi), 0, b[2] / (6 * math.pi), 0,
                 b[3] / (8 * math.pi)]
    np.testing.assert_allclose(c1, expected1)
    assert (c0 >= 0).all() and (c1 >= 0).all()
    assert taylor_coefficients_k0(0).tolist() == [0.5]


@pytest.mark.parametrize("degree", [1, 2, 3, 8, 31, 200])
def test_taylor_series_converges_to_kernels(degree):
    a = np.linspace(-1, 1, 4001)
    err0 = np.abs(evaluate_polynomial(taylor_coefficients_k0(degree), a) - arccos_kernel_0(a)).max()
    err1 = np.abs(evaluate_polynomial(taylor_coefficients_k1(degree), a) - arccos_kernel_1(a)).max()
    # the sup of the truncation error is attained at a = +-1 and equals the tail sum
    assert err0 == pytest.approx(taylor_truncation_error("k0", degree), rel=1e-9, abs=1e-15)
    assert err1 == pytest.approx(taylor_truncation_error("k1", degree), rel=1e-9, abs=1e-15)


def test_truncation_error_rates():
    # docs/math.md §1: ~0.254 p^-1/2 for k0 and ~0.085 p^-3/2 for k1 (asymptotically; within 1% at p = 1000)
    p = 1000
    assert taylor_truncation_error("k0", p) * math.sqrt(p) == pytest.approx(0.254, rel=0.01)
    assert taylor_truncation_error("k1", p) * p**1.5 == pytest.approx(0.085, rel=0.01)
    # k0 has no even terms above degree 0, so its error only drops at odd degrees
    assert taylor_truncation_error("k0", 2) == taylor_truncation_error("k0", 1)
    errs = [taylor_truncation_error("k0", p) for p in (1, 3, 7, 15)]
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:]))


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=50))
def test_range_and_monotonicity(values):
    a = np.sort(np.array(values))
    k0, k1 = arccos_kernel_0(a), arccos_kernel_1(a)
    assert ((0 <= k0) & (k0 <= 1)).all() and ((0 <= k1) & (k1 <= 1)).all()
    assert (np.diff(k0) >= -1e-15).all() and (np.diff(k1) >= -1e-15).all()


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        arccos_kernel_0([0.1, np.nan])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        arccos_kernel_1([1.5])
    with pytest.raises(ValueError, match="numeric"):
        arccos_kernel_1(["a"])
    with pytest.raises(ValueError, match="degree"):
        taylor_coefficients_k0(-1)
    with pytest.raises(ValueError, match="kernel"):
        taylor_truncation_error("k2", 3)
    # a few ulps outside [-1, 1] are clipped, not rejected
    assert arccos_kernel_0([1 + 1e-15])[0] == 1.0


def test_shapes_preserved():
    a = np.zeros((3, 4))
    assert arccos_kernel_0(a).shape == (3, 4)
    assert arccos_kernel_1(np.float32(0.3)).shape == ()
    assert ac.arccos_kernel_1(np.array([0.2], dtype=np.float32)).dtype == np.float64
