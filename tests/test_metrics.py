"""Tests of ntk_sketch.metrics on cases with known answers."""
import numpy as np
import pytest

from ntk_sketch.metrics import (
    entrywise_error_quantiles,
    lambda_for_statistical_dimension,
    relative_frobenius_error,
    spectral_epsilon,
    statistical_dimension,
)


def _psd(n, rank, seed):
    B = np.random.default_rng(seed).standard_normal((n, rank))
    return B, B @ B.T


def test_exact_features_have_zero_error():
    B, K = _psd(20, 5, 0)
    assert spectral_epsilon(B, K, 1e-3) < 1e-9
    assert relative_frobenius_error(B, K) < 1e-14
    assert entrywise_error_quantiles(B, K).max() < 1e-12


def test_scaled_features_give_known_epsilon():
    # F F^T = (1 + t) K: the generalised eigenvalues are (lam_i (1 + t) + lam) / (lam_i + lam), so eps is
    # t * max lam_i / (max lam_i + lam), approached when lam is small against the spectrum
    B, K = _psd(15, 15, 1)
    t, lam = 0.3, 1e-3
    ev = np.linalg.eigvalsh(K)
    expected = t * ev.max() / (ev.max() + lam)
    assert spectral_epsilon(np.sqrt(1 + t) * B, K, lam) == pytest.approx(expected, rel=1e-8)
    assert relative_frobenius_error(np.sqrt(1 + t) * B, K) == pytest.approx(t, rel=1e-12)


def test_statistical_dimension_limits_and_inverse():
    _, K = _psd(30, 10, 2)
    # rank 10: s_lam -> 10 as lam -> 0.  The 20 numerically-zero eigenvalues are ~1e-13 in magnitude, so at
    # lam = 1e-8 they add at most 20 * 1e-13 / 1e-8 = 2e-4, and the 10 non-zero ones (>= 0.1 here) lose < 1e-6.
    assert statistical_dimension(K, 1e-8) == pytest.approx(10, abs=1e-3)
    assert statistical_dimension(K, 1e12) < 1e-8
    lam = lambda_for_statistical_dimension(K, 4.5)
    assert statistical_dimension(K, lam) == pytest.approx(4.5, rel=1e-9)
    with pytest.raises(ValueError, match="rank"):
        lambda_for_statistical_dimension(K, 10)


def test_bad_input():
    B, K = _psd(5, 2, 3)
    with pytest.raises(ValueError, match="square"):
        statistical_dimension(B, 1.0)
    with pytest.raises(ValueError, match="same points"):
        relative_frobenius_error(B[:3], K)
    with pytest.raises(ValueError, match="lam"):
        spectral_epsilon(B, K, 0.0)
    with pytest.raises(ValueError, match="quantiles"):
        entrywise_error_quantiles(B, K, quantiles=[1.5])


def test_entrywise_error_is_not_zero_where_the_diagonal_vanishes():
    # issue 15: a pair with a zero kernel diagonal reported 0 error whatever the features said
    K = np.diag([1.0, 0.0, 1.0])
    exact = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(entrywise_error_quantiles(exact, K), np.zeros(4))
    wrong = np.array([[1.0, 0.0], [0.0, 1e-3], [0.0, 1.0]])  # the zero point gets a non-zero feature
    q = entrywise_error_quantiles(wrong, K, quantiles=(0.0, 0.5, 1.0))
    assert q[0] == 0.0 and q[1] == 0.0 and q[2] == np.inf
    assert entrywise_error_quantiles(wrong, K, relative_to_diagonal=False)[-1] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="at least 2 points"):
        entrywise_error_quantiles(np.ones((1, 2)), np.ones((1, 1)))
