"""Leverage distribution of the ReLU random features (the sampling behind the L = 1 spectral theorem).

Statement (Zandieh et al. 2021, Section 4, leverage-score sampling of the arc-cosine features used by the L = 1
spectral guarantee of NTK random features; theorem number unverified; docs/math.md §6): sampling the ReLU weights
from q(w) = |w|^2 N(w; 0, I_d) / d and weighting by sqrt(d)/|w| keeps the features unbiased; under q,
|w|^2 ~ chi-square(d + 2).  The ridge leverage function of the features phi_w(X) = sqrt(2) relu(X w) is
tau(w) = N(w) phi_w^T (K1 + lam I)^-1 phi_w with integral s_lam = tr(K1 (K1 + lam I)^-1).  The standard
matrix-Bernstein argument for leverage-score random features (Avron et al. 2017), in the form we read the paper to
use, needs m1 of order (sup_w tau(w)/q(w)) eps^-2 log(n/delta) features, so sup tau/q is the constant that replaces
s_lam (the ideal, reached only by exact leverage sampling).  Rigorous bound (our derivation):
tau(w)/q(w) = d g(w/|w|) with g(theta) = 2 relu(X theta)^T (K1 + lam I)^-1 relu(X theta) <= 2 |X|_2^2 / lam.

Measured on real data (K1 = the depth-1 NNGP kernel |x||y| k1(cos), lam set so that s_lam = 25):
(a) the law of |w|^2 under ``sample_leverage_relu_weights`` (Kolmogorov-Smirnov against chi2(d+2));
(b) the Monte-Carlo mean of tau/q under q against s_lam (a 6-sigma z-test: it must hold);
(c) the largest tau/q seen in M draws against s_lam (finding: the looseness of m1 ~ s_lam) and against the
rigorous bound (must hold); the same for plain Gaussian sampling (tau/N, unbounded because of the radius).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.stats

from ntk_sketch.features.ntk_random_features import sample_leverage_relu_weights
from ntk_sketch.kernels.ntk_exact import nngp_kernel
from ntk_sketch.metrics import lambda_for_statistical_dimension, statistical_dimension

from ._common import Result, data_sets, fmt, load_rows, save_plot, verdict, write_table

NAME = "leverage"
TITLE = "Leverage distribution of ReLU features: chi-square law, sup tau/q vs s_lam"
S_LAM = 25.0


def _ratios(X, L_chol, W):
    """g(w) * |w|^2 ... : returns 2 relu(X w)^T (K + lam I)^-1 relu(X w) for each column w of W."""
    R = np.maximum(X @ W, 0.0)
    Z = scipy.linalg.solve_triangular(L_chol, R, lower=True)
    return 2.0 * np.einsum("ij,ij->j", Z, Z)


def run(ctx):
    n = 500 if ctx.full else 250
    M = 100_000 if ctx.full else 20_000
    results, rows, plot_data = [], [], []
    for name in data_sets(ctx, ("digits", "fashion", "mnist5k")):
        X, data = load_rows(name, n, seed=ctx.seed)
        d = X.shape[1]
        K = nngp_kernel(X, depth=1)
        lam = lambda_for_statistical_dimension(K, S_LAM)
        s_lam = statistical_dimension(K, lam)
        Lc = np.linalg.cholesky(K + lam * np.eye(n))
        rng = np.random.default_rng(ctx.seed + 1)
        # (a) chi-square law, (b) tau/q under q = (d/|w|^2) 2 relu(Xw)^T (K+lam)^-1 relu(Xw) = d g(theta), and
        # (c) plain Gaussian sampling's tau/N = r^2 g(theta); in chunks of 10000 draws (bounded memory)
        sq, lev, gau = [], [], []
        for start in range(0, M, 10_000):
            k = min(10_000, M - start)
            W, _ = sample_leverage_relu_weights(d, k, seed=rng)
            sq_k = np.einsum("ij,ij->j", W, W)
            sq.append(sq_k)
            lev.append((d / sq_k) * _ratios(X, Lc, W))
            gau.append(_ratios(X, Lc, rng.standard_normal((d, k))))
        sq, lev, gau = np.concatenate(sq), np.concatenate(lev), np.concatenate(gau)
        ks_p = scipy.stats.kstest(sq, scipy.stats.chi2(d + 2).cdf).pvalue
        z = (lev.mean() - s_lam) / (lev.std(ddof=1) / math.sqrt(M))
        z_g = (gau.mean() - s_lam) / (gau.std(ddof=1) / math.sqrt(M))
        bound = 2.0 * d * np.linalg.norm(X, 2) ** 2 / lam
        rows.append([data, d, fmt(lam), fmt(s_lam), fmt(ks_p), fmt(lev.mean()), fmt(z), fmt(lev.max()),
                     fmt(lev.max() / s_lam), fmt(bound), fmt(gau.max()), fmt(gau.max() / lev.max())])
        plot_data.append((name, d, lev, gau, sq, s_lam))
        results += [
            Result(NAME, "leverage density q(w) ~ |w|^2 N(w): |w|^2 ~ chi2(d+2) (Sec. 4 sampler; docs/math.md §6)",
                   data, f"KS p-value {fmt(ks_p)} over {M} draws", f"p = {fmt(ks_p)} (reject below 1e-6)",
                   verdict(ks_p > 1e-6)),
            Result(NAME, "E_q[tau/q] = s_lam (leverage integrates to the statistical dimension)", data,
                   f"mean tau/q {fmt(lev.mean())} vs s_lam {fmt(s_lam)}; Gaussian {fmt(gau.mean())}",
                   f"z = {fmt(z)}, {fmt(z_g)} (|z| <= 6)", verdict(abs(z) <= 6 and abs(z_g) <= 6)),
            Result(NAME, "sup_w tau/q <= 2 d |X|_2^2 / lam (rigorous; our derivation)", data,
                   f"max over {M} draws {fmt(lev.max())}, bound {fmt(bound)}", f"{fmt(lev.max() / bound)} of bound",
                   verdict(lev.max() <= bound)),
            Result(NAME, "m1 ~ s_lam eps^-2 log: the constant sup tau/q vs the ideal s_lam", data,
                   f"sup tau/q {fmt(lev.max())} = {fmt(lev.max() / s_lam)} s_lam; Gaussian sup tau/N "
                   f"{fmt(gau.max())} ({fmt(gau.max() / lev.max())} x leverage)",
                   f"leverage sampling needs {fmt(lev.max() / s_lam)} x the ideal count; the rigorous bound is "
                   f"{fmt(bound / lev.max())} x loose", "finding"),
        ]
    write_table(ctx, NAME, ["data", "d", "lam", "s_lam", "KS p (chi2 d+2)", "mean tau/q", "z vs s_lam",
                            "max tau/q", "max / s_lam", "bound 2d|X|^2/lam", "Gaussian max tau/N",
                            "Gaussian / leverage"], rows,
                preamble=f"# {TITLE}\n\nK1 = depth-1 NNGP kernel, lam chosen so that s_lam = {S_LAM:g}; "
                         f"{M} draws of w per sampler.")

    def draw(fig):
        name, d, lev, gau, sq, s_lam = plot_data[0]
        ax1 = fig.add_subplot(121)
        ax1.hist(sq, bins=80, density=True, alpha=0.6, label="|w|^2 under q")
        t = np.linspace(sq.min(), sq.max(), 300)
        ax1.plot(t, scipy.stats.chi2(d + 2).pdf(t), "k-", lw=1, label=f"chi2({d + 2})")
        ax1.set_title(f"{name}: radius law", fontsize=9)
        ax1.legend(fontsize=7)
        ax2 = fig.add_subplot(122)
        bins = np.geomspace(max(min(lev.min(), gau.min()), 1e-3), max(lev.max(), gau.max()), 60)
        ax2.hist(lev, bins=bins, alpha=0.6, label="tau/q (leverage)")
        ax2.hist(gau, bins=bins, alpha=0.6, label="tau/N (Gaussian)")
        ax2.axvline(s_lam, color="k", lw=1, label="s_lam")
        ax2.set_xscale("log")
        ax2.set_title("ridge leverage / sampling density", fontsize=9)
        ax2.legend(fontsize=7)

    save_plot(ctx, NAME, draw)
    return results
