"""Slow, obviously correct reference implementations that the fast njit kernels are tested against.

Plain Python / numpy loops that follow the spec's formulas line by line (``../shared/spec/math.md``); no
cleverness, no speed.  Sections are per module.
"""
import math

import numpy as np


# --------------------------------------------------------------------------------------------------- arccos
def k0_naive(a):
    a = min(max(float(a), -1.0), 1.0)
    return 1.0 - math.acos(a) / math.pi


def k1_naive(a):
    a = min(max(float(a), -1.0), 1.0)
    return (math.sqrt(1.0 - a * a) + a * (math.pi - math.acos(a))) / math.pi


# ------------------------------------------------------------------------------------------------ ntk_exact
def fc_ntk_naive(x, y, depth, nngp=False):
    """Spec section 2 verbatim, for one pair of vectors, carrying S(y,y), S(z,z) and S(y,z) per layer."""
    syy, szz, syz = float(x @ x), float(y @ y), float(x @ y)
    t = syz
    for _ in range(depth):
        if syy == 0.0 or szz == 0.0:
            return 0.0
        nrm = math.sqrt(syy * szz)
        r = syz / nrm
        s_new = nrm * k1_naive(r)
        t = t * k0_naive(r) + s_new
        syz = s_new
        syy, szz = syy * k1_naive(1.0), szz * k1_naive(1.0)
    return syz if nngp else t


def fc_ntk_matrix_naive(X1, X2, depth, nngp=False):
    return np.array([[fc_ntk_naive(x, y, depth, nngp) for y in X2] for x in X1])
