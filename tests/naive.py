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
