"""Generate the polynomial used by ``ntk_sketch.kernels.arccos._acos`` (run once; output pasted into arccos.py).

asin(s) = s + s z R(z) with z = s^2.  For s in [0, 1/2] we need R on z in [0, 1/4].  We interpolate R at
Chebyshev points of that interval in 60-digit arithmetic (mpmath), then express the interpolant as a polynomial in
t = 8 z - 1 in [-1, 1] (well conditioned: the coefficients decay like 14^-k because the nearest singularity of R
is at z = 1, i.e. t = 7).  Usage: ``python tools/gen_asin_coefficients.py [degree]``.
"""
import sys

import mpmath as mp
import numpy as np

mp.mp.dps = 60
deg = int(sys.argv[1]) if len(sys.argv) > 1 else 15


def R(z):
    if z == 0:
        return mp.mpf(1) / 6
    s = mp.sqrt(z)
    return (mp.asin(s) - s) / (s * z)


n = deg + 1
nodes = [mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n) for k in range(n)]  # in t
vals = [R((t + 1) / 8) for t in nodes]
# Chebyshev coefficients in high precision
cheb = []
for j in range(n):
    c = mp.fsum(vals[k] * mp.cos(j * mp.pi * (k + mp.mpf(1) / 2) / n) for k in range(n)) * 2 / n
    cheb.append(c)
cheb[0] /= 2
# convert Chebyshev series to monomials in t, in high precision
T_prev, T_cur = [mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]
mono = [mp.mpf(0)] * n
for j in range(n):
    Tj = T_prev if j == 0 else T_cur if j == 1 else None
    if j >= 2:
        T_next = [mp.mpf(0)] * (j + 1)
        for i, c in enumerate(T_cur):
            T_next[i + 1] += 2 * c
        for i, c in enumerate(T_prev):
            T_next[i] -= c
        T_prev, T_cur = T_cur, T_next
        Tj = T_cur
    for i, c in enumerate(Tj):
        mono[i] += cheb[j] * c
coef = [float(c) for c in mono]
# check in double precision Horner against mpmath asin
worst = 0.0
for s in np.linspace(0, 0.5, 20001):
    z = s * s
    t = 8 * z - 1
    r = 0.0
    for c in reversed(coef):
        r = r * t + c
    approx = s + s * z * r
    err = abs(approx - float(mp.asin(s))) / max(float(mp.asin(s)), 1e-300)
    worst = max(worst, err)
print("max relative error of asin on [0, 1/2]:", worst)
print("ASIN_R_COEF = (")
for c in coef:
    print(f"    {c!r},")
print(")")
