"""Arc-cosine kernels of ReLU networks and their Taylor expansions.

With the factor 2 of the NTK convention (Zandieh et al. 2021, eq. (3); docs/math.md §1), for ``a`` in [-1, 1]

    k0(a) = 1 - arccos(a) / pi                                (the step / derivative kernel)
    k1(a) = (sqrt(1 - a^2) + a (pi - arccos a)) / pi          (the ReLU kernel)

so that ``2 E[1{w.x>0} 1{w.y>0}] = k0(cos t)`` and ``2 E[relu(w.x) relu(w.y)] = |x||y| k1(cos t)`` for
``w ~ N(0, I)``.  Both have Taylor series with non-negative coefficients (docs/math.md §1):

    k0(a) = 1/2 + (1/pi) sum_i b_i a^(2i+1)
    k1(a) = 1/pi + a/2 + (1/pi) sum_i b_i a^(2i+2) / (2i+2),      b_i = C(2i, i) / (4^i (2i+1)),

which is what makes them sketchable by PolySketch (paper Section 4).

The njit scalar kernels ``_acos``, ``_k0`` and ``_k1`` are what the exact kernels and the sketches call in their
inner loops.  ``_acos`` is branch-free (selects, a polynomial and one square root), so LLVM vectorises loops that
call it; numba's ``np.arccos`` calls libm once per element and does not vectorise without Intel's SVML.
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "arccos_kernel_0",
    "arccos_kernel_1",
    "arcsin_series_coefficients",
    "taylor_coefficients_k0",
    "taylor_coefficients_k1",
    "taylor_truncation_error",
    "evaluate_polynomial",
]

# asin(s) = s + s z R(z), z = s^2 in [0, 1/4], with R a degree-12 polynomial in t = 8 z - 1.  Chebyshev
# interpolant computed in 60-digit arithmetic by tools/gen_asin_coefficients.py; max relative error of asin on
# [0, 1/2] in double-precision Horner evaluation: 2.2e-16 (one ulp).
_ASIN_R_COEF = (
    0.17680460199399817,
    0.010972967607792717,
    0.0009145648551062974,
    8.778021135690382e-05,
    9.151973253971571e-06,
    1.0074723393087217e-06,
    1.1524657505552576e-07,
    1.3565388807043798e-08,
    1.6323700667365027e-09,
    1.9969161472911964e-10,
    2.4806772305055157e-11,
    3.2927945698477726e-12,
    4.184818152486924e-13,
)
(_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7, _R8, _R9, _R10, _R11, _R12) = _ASIN_R_COEF
_PI = math.pi
_HALF_PI = 0.5 * math.pi
_INV_PI = 1.0 / math.pi


@numba.njit(cache=True, inline="always")
def _asin_small(s, z):
    """asin(s) for s in [0, 1/2], given z = s*s (Horner in t = 8z - 1)."""
    t = 8.0 * z - 1.0
    r = _R12
    r = r * t + _R11
    r = r * t + _R10
    r = r * t + _R9
    r = r * t + _R8
    r = r * t + _R7
    r = r * t + _R6
    r = r * t + _R5
    r = r * t + _R4
    r = r * t + _R3
    r = r * t + _R2
    r = r * t + _R1
    r = r * t + _R0
    return s + s * z * r


@numba.njit(cache=True, inline="always")
def _acos(a):
    """arccos(a) for a in [-1, 1] (clipped), accurate to about one ulp, with no data-dependent branches.

    |a| <= 1/2:  acos(|a|) = pi/2 - asin(|a|);   |a| > 1/2:  acos(|a|) = 2 asin(sqrt((1 - |a|) / 2));
    acos(-x) = pi - acos(x).
    """
    a = min(max(a, -1.0), 1.0)
    x = abs(a)
    big = x > 0.5
    z = (1.0 - x) * 0.5 if big else x * x
    s = math.sqrt(z) if big else x
    r = _asin_small(s, z)
    acos_abs = 2.0 * r if big else _HALF_PI - r
    return acos_abs if a >= 0.0 else _PI - acos_abs


@numba.njit(cache=True, inline="always")
def _k0(a):
    """k0(a) = 1 - arccos(a)/pi (a clipped to [-1, 1])."""
    return 1.0 - _acos(a) * _INV_PI


@numba.njit(cache=True, inline="always")
def _k1(a):
    """k1(a) = (sqrt(1 - a^2) + a (pi - arccos a)) / pi (a clipped to [-1, 1])."""
    a = min(max(a, -1.0), 1.0)
    # (1 - a)(1 + a) instead of 1 - a^2: exact factors near |a| = 1, where the square root is most sensitive.
    return (math.sqrt((1.0 - a) * (1.0 + a)) + a * (_PI - _acos(a))) * _INV_PI


@numba.njit(cache=True, inline="always")
def _k0_k1(a):
    """(k0(a), k1(a)) sharing one arccos."""
    a = min(max(a, -1.0), 1.0)
    theta = _acos(a)
    return 1.0 - theta * _INV_PI, (math.sqrt((1.0 - a) * (1.0 + a)) + a * (_PI - theta)) * _INV_PI


# Cosines computed from data (an inner product over a product of norms) carry the rounding of the BLAS kernel
# that produced them, and that kernel depends on the CPU (OpenBLAS dispatches Haswell, Zen, SkylakeX, ... code
# with different summation orders).  k0 and k1 are square-root functions of the cosine at +-1
# (k0(1 - d) ~ 1 - sqrt(2 d) / pi), so one ulp there moves a kernel value by ~1e-8 relative and the last digits
# would depend on the machine.  Every exact kernel therefore clips a computed cosine to [-1, 1] and rounds it
# to +-1 when it lies within COSINE_SNAP of +-1.  2^-46 (~1.4e-14, 64 ulps) is far above the rounding of a dot
# product of unit vectors of moderate length and far below any angle that real data resolves
# (1 - cos t = 1.4e-14 means t ~ 1.7e-7 rad).  Cosines passed in directly by a user are not snapped.
COSINE_SNAP = 2.0 ** -46


@numba.njit(cache=True, inline="always")
def _snap_cosine(a):
    """Clip a computed cosine to [-1, 1] and round it to +-1 within COSINE_SNAP (branch-free selects)."""
    a = min(max(a, -1.0), 1.0)
    a = 1.0 if a > 1.0 - COSINE_SNAP else a
    return -1.0 if a < -1.0 + COSINE_SNAP else a


@numba.njit(cache=True)
def _k0_array(a, out):
    for i in range(a.size):
        out[i] = _k0(a[i])


@numba.njit(cache=True)
def _k1_array(a, out):
    for i in range(a.size):
        out[i] = _k1(a[i])


def _check_cosines(a, name="a"):
    from .._validation import _object_to_float, reject_sparse

    reject_sparse(a, name)
    arr = np.asarray(a)
    if arr.dtype.kind == "O":  # an object array holding numbers is read as float64, as in check_matrix
        arr = _object_to_float(arr, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}.")
    arr = np.array(arr, dtype=np.float64, order="C")  # a copy; keeps 0-d shapes (ascontiguousarray would not)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; cosines must be finite numbers in [-1, 1].")
    # Allow a few ulps of rounding outside [-1, 1] (cosines computed as ratios); reject genuine mistakes.
    if arr.size and (arr.max() > 1.0 + 1e-12 or arr.min() < -1.0 - 1e-12):
        raise ValueError(
            f"{name} must lie in [-1, 1] (cosines of angles); got values in [{arr.min()}, {arr.max()}]. "
            "Normalise the inner products by the norms first."
        )
    return arr


def arccos_kernel_0(a):
    """Arc-cosine kernel of order 0 with the NTK factor 2: ``k0(a) = 1 - arccos(a) / pi``.

    docs/math.md §1; Zandieh et al. (2021), eq. (3) (``kappa_0``).  This is the dual of the ReLU derivative:
    ``2 E_w[1{w.x > 0} 1{w.y > 0}] = k0(<x, y> / (|x||y|))`` for ``w ~ N(0, I)``.

    Parameters
    ----------
    a : array_like
        Cosines in [-1, 1]; values within 1e-12 outside are clipped (rounding of normalised inner products).

    Returns
    -------
    numpy.ndarray
        float64 array of the same shape as ``a``, values in [0, 1].
    """
    arr = _check_cosines(a)
    out = np.empty_like(arr)
    _k0_array(arr.reshape(-1), out.reshape(-1))
    return out


def arccos_kernel_1(a):
    """Arc-cosine kernel of order 1 with the NTK factor 2: ``k1(a) = (sqrt(1-a^2) + a (pi - arccos a)) / pi``.

    docs/math.md §1; Zandieh et al. (2021), eq. (3) (``kappa_1``).  This is the dual of the ReLU:
    ``2 E_w[relu(w.x) relu(w.y)] = |x||y| k1(<x, y> / (|x||y|))``.  ``d/da k1 = k0``.

    Parameters
    ----------
    a : array_like
        Cosines in [-1, 1]; values within 1e-12 outside are clipped.

    Returns
    -------
    numpy.ndarray
        float64 array of the same shape as ``a``, values in [0, 1].
    """
    arr = _check_cosines(a)
    out = np.empty_like(arr)
    _k1_array(arr.reshape(-1), out.reshape(-1))
    return out


def arcsin_series_coefficients(n_terms: int) -> np.ndarray:
    """``b_i = C(2i, i) / (4^i (2i + 1))`` for i = 0..n_terms-1, so that ``arcsin t = sum_i b_i t^(2i+1)``.

    Computed by the ratio recurrence ``C(2i,i)/4^i = prod_{j<=i} (2j - 1) / (2j)`` (no overflowing binomials).
    """
    from .._validation import check_positive_int

    n = check_positive_int(n_terms, "n_terms", minimum=0)
    central = np.ones(n)
    if n > 1:
        j = np.arange(1, n, dtype=np.float64)
        central[1:] = np.cumprod((2.0 * j - 1.0) / (2.0 * j))
    return central / (2.0 * np.arange(n) + 1.0)


def taylor_coefficients_k0(degree: int) -> np.ndarray:
    """Coefficients ``c_0..c_degree`` of the degree-``degree`` Taylor truncation of k0 (docs/math.md §1).

    ``c_0 = 1/2``, ``c_{2i+1} = b_i / pi``, even coefficients above 0 vanish.  All are non-negative.
    """
    from .._validation import check_positive_int

    p = check_positive_int(degree, "degree", minimum=0)
    c = np.zeros(p + 1)
    c[0] = 0.5
    n_odd = (p + 1) // 2  # odd powers 1, 3, ..., <= p
    if n_odd:
        c[1::2] = arcsin_series_coefficients(n_odd) / math.pi
    return c


def taylor_coefficients_k1(degree: int) -> np.ndarray:
    """Coefficients ``c_0..c_degree`` of the degree-``degree`` Taylor truncation of k1 (docs/math.md §1).

    ``c_0 = 1/pi``, ``c_1 = 1/2``, ``c_{2i+2} = b_i / (pi (2i + 2))``, odd coefficients above 1 vanish.
    """
    from .._validation import check_positive_int

    p = check_positive_int(degree, "degree", minimum=0)
    c = np.zeros(p + 1)
    c[0] = 1.0 / math.pi
    if p >= 1:
        c[1] = 0.5
    n_even = p // 2  # powers 2, 4, ..., <= p
    if n_even:
        i = np.arange(n_even)
        c[2::2] = arcsin_series_coefficients(n_even) / (math.pi * (2.0 * i + 2.0))
    return c


def taylor_truncation_error(kernel: str, degree: int) -> float:
    """Sup-norm error on [-1, 1] of the degree-``degree`` Taylor truncation of k0 or k1.

    Every tail coefficient is non-negative, so ``|k(a) - P_p(a)| <= sum_{l > p} c_l |a|^l <= sum_{l > p} c_l``
    with equality at a = 1; the sup is exactly the tail sum ``k(1) - P_p(1) = 1 - sum_{l <= p} c_l``.  It is
    computed with exact-rounding summation (``math.fsum``), so it is accurate to about 1e-16 absolute.
    Asymptotically it behaves like 0.254 p^(-1/2) for k0 and 0.085 p^(-3/2) for k1.

    Parameters
    ----------
    kernel : {'k0', 'k1'}
    degree : int
        Truncation degree p >= 0.
    """
    if kernel == "k0":
        c = taylor_coefficients_k0(degree)
    elif kernel == "k1":
        c = taylor_coefficients_k1(degree)
    else:
        raise ValueError(f"kernel must be 'k0' or 'k1'; got {kernel!r}.")
    return max(math.fsum([1.0] + [-float(v) for v in c]), 0.0)


def evaluate_polynomial(coefficients, a):
    """Evaluate ``sum_l coefficients[l] a^l`` (Horner) on an array of cosines."""
    c = np.asarray(coefficients, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError("coefficients must be a non-empty 1-d array (c_0, c_1, ...).")
    a = np.asarray(a, dtype=np.float64)
    out = np.full_like(a, c[-1])
    for v in c[-2::-1]:
        out = out * a + v
    return out
