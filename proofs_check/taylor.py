"""Taylor coefficients of k0 and k1, and the truncation error against the degree.

Statement (Zandieh et al. 2021, Appendix C, Lemma 3 "Polynomial approximations to k0 and k1"; docs/math.md §1):
the degree-p Taylor truncations P0_p, P1_p of the arc-cosine functions k0(a) = 1 - arccos(a)/pi and
k1(a) = (sqrt(1-a^2) + a(pi - arccos a))/pi have non-negative coefficients and sup-norm errors on [-1, 1] of order
p^(-1/2) (k0) and p^(-3/2) (k1).  Constants: the tail sums behave like C0 p^(-1/2), C1 p^(-3/2) with
C0 = sqrt(2)/pi^(3/2) = 0.2540 and C1 = 2 sqrt(2)/(6 pi^(3/2)) = 0.0847 (our derivation from the central-binomial
asymptotics b_i ~ 1/(2 sqrt(pi) i^(3/2)); the paper states the orders).

Measured: (a) ``taylor_coefficients_k0/k1`` against the coefficients recomputed in exact rational arithmetic
(fractions, b_i = C(2i, i)/(4^i (2i+1))); (b) on a 20001-point grid of [-1, 1], |k - P_p| <= the tail sum
(rigorous: all tail coefficients are >= 0, so the sup is attained at a = 1); (c) the tail sums for p up to
8191, a least-squares log-log fit of the rate and constant over the upper half of the p grid.  No data set: these
are statements about functions on [-1, 1].
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ntk_sketch.kernels.arccos import (
    arccos_kernel_0,
    arccos_kernel_1,
    evaluate_polynomial,
    taylor_coefficients_k0,
    taylor_coefficients_k1,
    taylor_truncation_error,
)

from ._common import Result, fmt, loglog_fit, save_plot, verdict, write_table

NAME = "taylor"
TITLE = "Taylor coefficients of k0/k1; truncation error ~ p^-1/2, p^-3/2"
C0 = math.sqrt(2.0) / math.pi ** 1.5
C1 = 2.0 * math.sqrt(2.0) / (6.0 * math.pi ** 1.5)


def exact_coefficients(kind, degree):
    """Coefficients as Fractions (times 1/pi where the series has it): returns floats of the exact values."""
    b = [Fraction(math.comb(2 * i, i), 4 ** i * (2 * i + 1)) for i in range(degree + 1)]
    c = [0.0] * (degree + 1)
    if kind == "k0":
        c[0] = 0.5
        for i in range(degree + 1):
            if 2 * i + 1 <= degree:
                c[2 * i + 1] = float(b[i]) / math.pi
    else:
        c[0] = 1.0 / math.pi
        if degree >= 1:
            c[1] = 0.5
        for i in range(degree + 1):
            if 2 * i + 2 <= degree:
                c[2 * i + 2] = float(b[i] / (2 * i + 2)) / math.pi
    return np.array(c)


def run(ctx):
    # (a) coefficients
    deg_c = 60
    coef_err = max(np.max(np.abs(taylor_coefficients_k0(deg_c) - exact_coefficients("k0", deg_c))),
                   np.max(np.abs(taylor_coefficients_k1(deg_c) - exact_coefficients("k1", deg_c))))
    nonneg = bool(np.all(taylor_coefficients_k0(deg_c) >= 0) and np.all(taylor_coefficients_k1(deg_c) >= 0))
    # (b) the tail sum bounds the error everywhere on [-1, 1]
    a = np.linspace(-1, 1, 20001)
    k0, k1 = arccos_kernel_0(a), arccos_kernel_1(a)
    worst_ratio = 0.0
    for p in (1, 2, 3, 4, 6, 8, 12, 16, 32, 64):
        for kind, kv, cf in (("k0", k0, taylor_coefficients_k0), ("k1", k1, taylor_coefficients_k1)):
            err = np.max(np.abs(kv - evaluate_polynomial(cf(p), a)))
            worst_ratio = max(worst_ratio, err / (taylor_truncation_error(kind, p) + 1e-15))
    # (c) rates
    top = 8191 if ctx.full else 2047
    p0 = np.unique(np.round(np.geomspace(3, top, 30) / 2) * 2 + 1).astype(int)      # odd: k0's last term present
    p1 = np.unique(np.round(np.geomspace(2, top - 1, 30) / 2) * 2).astype(int)      # even: k1's last term present
    e0 = np.array([taylor_truncation_error("k0", int(p)) for p in p0])
    e1 = np.array([taylor_truncation_error("k1", int(p)) for p in p1])
    h0, h1 = len(p0) // 2, len(p1) // 2
    r0, c0 = loglog_fit(p0[h0:], e0[h0:])
    r1, c1 = loglog_fit(p1[h1:], e1[h1:])
    rows = []
    for p in (2, 4, 8, 16, 64, 256, 1024):
        rows.append([p, fmt(taylor_truncation_error("k0", p + (p % 2 == 0))), fmt(C0 * p ** -0.5),
                     fmt(taylor_truncation_error("k1", p)), fmt(C1 * p ** -1.5)])
    need0 = math.ceil((C0 / 0.01) ** 2)
    need1 = math.ceil((C1 / 0.01) ** (2 / 3))
    pre = (f"# {TITLE}\n\nCoefficients vs exact rationals (degree {deg_c}): max abs diff {fmt(coef_err)}; all "
           f"non-negative: {nonneg}.\nmax over p of sup|k - P_p| / tail sum: {fmt(worst_ratio)} (must be <= 1).\n"
           f"Fitted over p in [{p0[h0]}, {p0[-1]}]: k0 error = {fmt(c0)} p^{fmt(r0, 4)} (stated p^-0.5, derived "
           f"constant {fmt(C0, 4)}); k1 error = {fmt(c1)} p^{fmt(r1, 4)} (stated p^-1.5, derived {fmt(C1, 4)}).\n"
           f"Degree needed for sup error 0.01: k0 about {need0}, k1 about {need1}.\n\n"
           "Tail sums (k0 at the next odd degree) against the asymptotic forms:")
    write_table(ctx, NAME, ["p", "k0 error", "C0 p^-1/2", "k1 error", "C1 p^-3/2"], rows, preamble=pre)

    def draw(fig):
        ax = fig.add_subplot(111)
        ax.loglog(p0, e0, "o", ms=3, label="k0 tail sum")
        ax.loglog(p0, C0 * p0 ** -0.5, "-", lw=1, label=f"{C0:.3f} p^-1/2")
        ax.loglog(p1, e1, "s", ms=3, label="k1 tail sum")
        ax.loglog(p1, C1 * p1 ** -1.5, "-", lw=1, label=f"{C1:.4f} p^-3/2")
        ax.set_xlabel("Taylor degree p")
        ax.set_ylabel("sup error on [-1, 1]")
        ax.set_title("Taylor truncation error of k0, k1")
        ax.legend(fontsize=8)

    save_plot(ctx, NAME, draw)
    rate_ok = abs(r0 + 0.5) < 0.02 and abs(r1 + 1.5) < 0.02
    return [
        Result(NAME, "Taylor coefficients of k0, k1 (arcsin series, all >= 0) (docs/math.md §1)", "exact rationals",
               f"max abs diff {fmt(coef_err)}, non-negative {nonneg}", f"{fmt(coef_err / 1e-15)} x 1e-15",
               verdict(coef_err < 1e-15 and nonneg)),
        Result(NAME, "sup_[-1,1] |k - P_p| = tail sum (non-negative tail) (Lemma 3 proof)", "grid of 20001 cosines",
               f"max sup-error / tail = {fmt(worst_ratio)}", f"{fmt(worst_ratio)} (<= 1)",
               verdict(worst_ratio <= 1.0 + 1e-9)),
        Result(NAME, "truncation error rates p^-1/2 (k0), p^-3/2 (k1) (App. C, Lemma 3)", f"p up to {top}",
               f"fitted k0 {fmt(c0)} p^{fmt(r0, 4)}, k1 {fmt(c1)} p^{fmt(r1, 4)}",
               f"rates off by {fmt(abs(r0 + 0.5))}, {fmt(abs(r1 + 1.5))} (tol 0.02)", verdict(rate_ok)),
        Result(NAME, f"constants of the rates: C0 = {C0:.4f}, C1 = {C1:.4f} (our derivation; paper: orders only)",
               f"p up to {top}", f"fitted C0 {fmt(c0)}, C1 {fmt(c1)}",
               f"fitted/derived {fmt(c0 / C0)}, {fmt(c1 / C1)}; p for error 0.01: {need0} (k0), {need1} (k1)",
               "finding"),
    ]
