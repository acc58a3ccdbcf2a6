"""TensorSRHT and PolySketch: unbiasedness, second moment (JL moment) against its formula, subspace embedding.

Statements (Ahle et al. 2020, arXiv:1909.01410, the PolySketch construction and its JL-moment / subspace-embedding
theorems, used by Zandieh et al. 2021 Section 3 (Lemma numbers unverified); docs/math.md §4):
(1) E <S x, S y> = <x, y>^p for the degree-p sketches (TensorSRHT p = 2, PolySketch any p);
(2) second moment.  For TensorSRHT with m index pairs drawn without replacement from the N1 x N2 grid and unit x,
    Var |S(x (x) x)|^2 = (M - m)/(m (M - 1)) ((3 - 2|x|_4^4)^2 - 1), M = N1 N2 (our exact formula, from
    E (sum_j a_j s_j)^4 = 3 |a|^4 - 2 |a|_4^4); for the PolySketch tree the JL second moment composes over its
    independent nodes (each multiplies the squared norm by 1 + xi with E xi = 0, E xi^2 <= c):
    E (|Q^p x^(p)|^2 - 1)^2 <= prod_nodes (1 + c_v) - 1 with c = 8/m per TensorSRHT node (at most; 8 (M-m)/(m(M-1))
    exactly as above), 2 (N-m)/(m (N-1)) per SRHT leaf and 2/m per CountSketch leaf (our derivation of the t = 2
    case of the JL-moment composition lemma);
(3) subspace embedding: with m = O(p s_lam / eps^2) (up to log factors) the sketch of the degree-p polynomial kernel
    matrix G = (U U^T)^p satisfies (1 - eps)(G + lam I) <= F F^T + lam I <= (1 + eps)(G + lam I).

Measured on unit-normalised real image rows: (1) z-scores of the mean of R draws (must be within 6 sigma);
(2) the sample variance of the squared norm against the formula (TensorSRHT: ratio within 6 standard errors of 1)
and against the composed bound (PolySketch: must not exceed it by more than 6 standard errors), degrees 2..8;
(3) the spectral eps (``ntk_sketch.metrics.spectral_epsilon``) against m, the fitted exponent (stated -1/2) and
the constant C in m = C p s_lam / eps^2 at eps = 0.5 (a finding: the O(.) hides it).
"""
from __future__ import annotations

import math

import numpy as np

from ntk_sketch.metrics import lambda_for_statistical_dimension, spectral_epsilon, statistical_dimension
from ntk_sketch.sketches import PolySketch, TensorSRHT
from ntk_sketch.sketches.srht import next_pow2

from ._common import Result, data_sets, fmt, load_rows, loglog_fit, save_plot, verdict, write_table

NAME = "sketch_moments"
TITLE = "TensorSRHT / PolySketch: unbiasedness, JL second moment vs formula, subspace embedding vs m"
Z = 6.0


def tensor_srht_variance(x, m):
    """Exact Var |S(x (x) x)|^2 of a TensorSRHT with m pairs drawn without replacement (module docstring)."""
    d = x.size
    n1 = n2 = next_pow2(d)
    while n1 * n2 < m:
        n1 *= 2
    M = n1 * n2
    n2x, n4x = float(x @ x), float(np.sum(x ** 4))
    f = 3 * n2x ** 2 - 2 * n4x
    return (M - m) / (m * (M - 1)) * (f * f - n2x ** 4)


def polysketch_variance_bound(d, m, p, base):
    """The composed JL second-moment bound prod (1 + c_v) - 1 for a degree-p PolySketch (module docstring)."""
    q = next_pow2(p)
    N = next_pow2(m)
    M = N * N
    c_node = 8.0 * (M - m) / (m * (M - 1))
    if base == "srht":
        Nl = next_pow2(max(d, m))
        c_leaf = 2.0 * (Nl - m) / (m * (Nl - 1))
    else:
        c_leaf = 2.0 / m
    return (1 + c_node) ** (q - 1) * (1 + c_leaf) ** p - 1


def _var_and_se(v):
    """Sample variance of v and its standard error (from the fourth central moment)."""
    c = v - v.mean()
    var = float(np.mean(c ** 2)) * len(v) / (len(v) - 1)
    se = math.sqrt(max(float(np.mean(c ** 4)) - var ** 2, 0.0) / len(v))
    return var, se


def run(ctx):
    R = 2000 if ctx.full else 300
    m = 64
    results = []
    name = data_sets(ctx, ("fashion", "digits"))[0]
    X, data = load_rows(name, 3, seed=ctx.seed)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    d = U.shape[1]
    x = U[0]
    # ---------------------------------------------------------------- TensorSRHT, degree 2
    sq, ip = [], []
    for r in range(R):
        ts = TensorSRHT(d, d, m, seed=10_000 + r).fit()
        S = ts.transform(U, U)                    # rows: S(u_i (x) u_i)
        sq.append(S[0] @ S[0])
        ip.append(S @ S.T)
    sq, ip = np.array(sq), np.array(ip)
    G2 = (U @ U.T) ** 2
    se_ip = ip.std(axis=0, ddof=1) / math.sqrt(R)
    z_ts = float(np.max(np.abs((ip.mean(axis=0) - G2) / np.where(se_ip > 0, se_ip, 1.0))))
    var_ts, se_ts = _var_and_se(sq)
    f_ts = tensor_srht_variance(x, m)
    zvar_ts = (var_ts - f_ts) / se_ts
    results += [
        Result(NAME, "TensorSRHT unbiased: E<S(x(x)x), S(y(x)y)> = <x,y>^2 (docs/math.md §4)", data,
               f"max |z| over 3x3 pairs, {R} draws: {fmt(z_ts)}", f"{fmt(z_ts / Z)} of the 6-sigma limit",
               verdict(z_ts <= Z)),
        Result(NAME, "TensorSRHT second moment = (M-m)/(m(M-1)) ((3-2|x|_4^4)^2 - 1) (exact; our formula)", data,
               f"m={m}: measured {fmt(var_ts)} +- {fmt(se_ts)}, formula {fmt(f_ts)}",
               f"measured/formula {fmt(var_ts / f_ts)} (z = {fmt(zvar_ts)})", verdict(abs(zvar_ts) <= Z)),
    ]
    # ---------------------------------------------------------------- PolySketch, degrees 2..8
    rows = [["TensorSRHT", 2, fmt(z_ts), fmt(var_ts), fmt(se_ts), fmt(f_ts), fmt(var_ts / f_ts)]]
    worst_z, worst_over = 0.0, -np.inf
    deg_list = list(range(2, 9))
    var_meas, var_bound = {}, {}
    for base in ("srht", "osnap"):
        for p in deg_list:
            sq, ip = [], []
            for r in range(R):
                Z_all = PolySketch(d, m, p, base=base, seed=20_000 + 1000 * p + r).fit().transform(U)[:, p - 1, :]
                sq.append(Z_all[0] @ Z_all[0])
                ip.append(Z_all @ Z_all.T)
            sq, ip = np.array(sq), np.array(ip)
            Gp = (U @ U.T) ** p
            se_ip = ip.std(axis=0, ddof=1) / math.sqrt(R)
            z = float(np.max(np.abs((ip.mean(axis=0) - Gp) / se_ip)))
            var, se = _var_and_se(sq)
            bound = polysketch_variance_bound(d, m, p, base)
            worst_z = max(worst_z, z)
            worst_over = max(worst_over, (var - bound) / se)
            var_meas[(base, p)], var_bound[(base, p)] = var, bound
            rows.append([f"PolySketch ({base} leaves)", p, fmt(z), fmt(var), fmt(se), fmt(bound), fmt(var / bound)])
    ratios = [var_meas[k] / var_bound[k] for k in var_meas]
    results += [
        Result(NAME, "PolySketch unbiased: E<Q x^(p), Q y^(p)> = <x,y>^p, p = 2..8 (Ahle et al.; docs/math.md §4)",
               data, f"max |z| {fmt(worst_z)} ({R} draws per degree, srht and osnap leaves)",
               f"{fmt(worst_z / Z)} of the 6-sigma limit", verdict(worst_z <= Z)),
        Result(NAME, "PolySketch JL second moment <= prod(1+c_v) - 1 (~ (8(q-1)+2p)/m), p = 2..8 (our composition bound)",
               data, f"m={m}: measured/bound {fmt(min(ratios))}..{fmt(max(ratios))}",
               f"max excess {fmt(worst_over)} SE (<= 6)", verdict(worst_over <= Z)),
    ]
    # ---------------------------------------------------------------- subspace embedding vs m
    n_se = 200 if ctx.full else 80
    Xs, data_s = load_rows(name, n_se, seed=ctx.seed + 7)
    Us = Xs / np.linalg.norm(Xs, axis=1, keepdims=True)
    p_se, s_target = 3, 10.0
    Gp = (Us @ Us.T) ** p_se
    lam = lambda_for_statistical_dimension(Gp, s_target)
    s_lam = statistical_dimension(Gp, lam)
    ms = [64, 128, 256, 512, 1024, 2048] + ([4096] if ctx.full else [])
    n_seeds = 9 if ctx.full else 5
    eps = np.array([[spectral_epsilon(PolySketch(d, mm, p_se, base="srht", seed=30_000 + 97 * mm + s)
                                      .fit().transform(Us)[:, p_se - 1, :], Gp, lam) for s in range(n_seeds)] for mm in ms])
    med = np.median(eps, axis=1)
    rate, cst = loglog_fit(ms, med)
    m_half = (cst / 0.5) ** (1.0 / -rate)
    C_emb = m_half * 0.25 / (p_se * s_lam)
    rate_ok = rate <= -0.5 + 0.15   # one-sided: the theorem bounds eps by O(m^-1/2)
    se_rows = [[mm, fmt(np.median(e)), fmt(np.max(e))] for mm, e in zip(ms, eps)]
    results += [
        Result(NAME, "PolySketch subspace embedding: eps ~ m^-1/2 (m = O(p s_lam / eps^2)) (Ahle et al.)", data_s,
               f"p={p_se}, s_lam={fmt(s_lam)}: fitted median eps = {fmt(cst)} m^{fmt(rate)}",
               f"rate {fmt(rate)} vs -0.5 (fails if slower than -0.35)", verdict(rate_ok)),
        Result(NAME, "PolySketch subspace embedding constant C in m = C p s_lam / eps^2", data_s,
               f"m for median eps 0.5: {fmt(m_half)}", f"C = {fmt(C_emb)}", "finding"),
    ]
    pre = (f"# {TITLE}\n\nData: {data} (unit-normalised), sketch dimension m = {m}, {R} independent draws per row.\n"
           "Columns: max |z| of the mean inner product over the 3 x 3 pairs; sample variance of the squared norm of "
           "the first row and its standard error; the formula (TensorSRHT, exact) or the composed bound "
           "(PolySketch, upper bound); measured / formula-or-bound.")
    write_table(ctx, NAME, ["sketch", "degree p", "max |z| (unbiased)", "Var |Sx|^2", "SE", "formula / bound",
                            "measured / formula"], rows, preamble=pre)
    write_table(ctx, NAME + "_embedding", ["m", "median spectral eps", "max spectral eps"], se_rows,
                preamble=f"# PolySketch subspace embedding, degree {p_se}\n\nData: {data_s}, lam = {fmt(lam)} "
                         f"(s_lam = {fmt(s_lam)}), {n_seeds} seeds per m. Fit: eps = {fmt(cst)} m^{fmt(rate)}; "
                         f"C in m = C p s_lam / eps^2 at eps = 0.5: {fmt(C_emb)}.")

    def draw(fig):
        ax1 = fig.add_subplot(121)
        for base, mk in (("srht", "o"), ("osnap", "s")):
            ax1.semilogy(deg_list, [var_meas[(base, p)] for p in deg_list], mk, label=f"measured ({base})")
            ax1.semilogy(deg_list, [var_bound[(base, p)] for p in deg_list], "-", label=f"bound ({base})")
        ax1.set_xlabel("degree p")
        ax1.set_ylabel("Var |Q x^(p)|^2")
        ax1.set_title(f"JL second moment, m={m}", fontsize=9)
        ax1.legend(fontsize=6)
        ax2 = fig.add_subplot(122)
        ax2.loglog(ms, med, "o", label="median eps")
        ax2.loglog(ms, cst * np.asarray(ms, float) ** rate, "-", label=f"{cst:.2g} m^{rate:.2f}")
        ax2.set_xlabel("sketch dimension m")
        ax2.set_ylabel("spectral eps")
        ax2.set_title(f"subspace embedding, p={p_se}", fontsize=9)
        ax2.legend(fontsize=7)

    save_plot(ctx, NAME, draw)
    return results
