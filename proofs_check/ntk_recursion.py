"""The fully connected ReLU NTK recursion equals its dot-product form; K_L(1) = L + 1; K_L at -1 and 0.

Statement (Zandieh et al. 2021, Section 2, the NTK recursion of Jacot et al. / Arora et al. as the paper writes it,
Eq. (2)-(3) there (equation numbers unverified); docs/math.md §2): with S_0 = T_0 = <y, z> and, per layer,
S_h = sqrt(S_{h-1}(y,y) S_{h-1}(z,z)) k1(r), Sdot_h = k0(r), T_h = T_{h-1} Sdot_h + S_h, the NTK is T_L(y, z) and
equals |y||z| K_L(<y,z>/(|y||z|)) with the scalar recursion K_h = K_{h-1} k0(s_{h-1}) + k1(s_{h-1}).
Consequences checked exactly: K_L(1) = L + 1, K_L(-1) and K_L(0) equal the closed-form values of the recursion.

Measured: (a) the library's ``ntk_kernel`` (numba, Gram form) against an independent pure-Python transcription of
the per-pair recursion on real image rows; (b) ``ntk_cosine_kernel`` at a = 1, -1, 0 against the same recursion
in plain ``math`` arithmetic.  Tolerance: 1e-12 relative (both are O(L) floating-point operations).
"""
from __future__ import annotations

import math

import numpy as np

from ntk_sketch.kernels.ntk_exact import ntk_cosine_kernel, ntk_kernel

from ._common import Result, fmt, load_rows, save_plot, verdict, write_table

NAME = "ntk_recursion"
TITLE = "NTK recursion = dot-product form; K_L(1) = L+1; K_L(-1), K_L(0)"
TOL = 1e-12


def _k0(a):
    return 1.0 - math.acos(max(-1.0, min(1.0, a))) / math.pi


def _k1(a):
    a = max(-1.0, min(1.0, a))
    return (math.sqrt(max(0.0, 1.0 - a * a)) + a * (math.pi - math.acos(a))) / math.pi


def reference_pair(y, z, depth):
    """docs/math.md §2 transcribed literally, one pair, plain Python floats."""
    syy, szz, syz = float(y @ y), float(z @ z), float(y @ z)
    t = syz
    for _ in range(depth):
        nrm = math.sqrt(syy * szz)
        r = syz / nrm if nrm > 0 else 0.0
        s_new = nrm * _k1(r)
        t = t * _k0(r) + s_new
        syz = s_new            # S_h(y,y) = S_{h-1}(y,y) k1(1) = S_{h-1}(y,y): the diagonals stay |y|^2, |z|^2
    return t


def reference_cosine(a, depth):
    s, k = a, a
    for _ in range(depth):
        k, s = k * _k0(s) + _k1(s), _k1(s)
    return k


def run(ctx):
    n = 60 if ctx.full else 25
    X, data = load_rows("fashion", n, seed=ctx.seed)
    depths = range(1, 9 if ctx.full else 6)
    rows, worst_gram, worst_pts = [], 0.0, 0.0
    for L in depths:
        K = ntk_kernel(X, depth=L)
        # off-diagonal pairs by the per-pair recursion; the diagonal by its exact value (L + 1)|x|^2 (an arccos of
        # a rounded cosine 1 - 1e-16 would be off by 1e-8 there: the library snaps such cosines to 1, math.acos not)
        iu = np.triu_indices(n, k=1)
        ref = np.array([reference_pair(X[i], X[j], L) for i, j in zip(*iu)])
        diag_ref = (L + 1) * np.einsum("ij,ij->i", X, X)
        err_gram = float(max(np.max(np.abs(K[iu] - ref)), np.max(np.abs(np.diag(K) - diag_ref))) / np.abs(K).max())
        norms = np.linalg.norm(X, axis=1)
        cos = np.clip((X @ X.T) / np.outer(norms, norms), -1, 1)
        np.fill_diagonal(cos, 1.0)  # a point's cosine with itself is 1 (the rounded ratio is 1 - 1e-16)
        err_dot = float(np.max(np.abs(K - np.outer(norms, norms) * ntk_cosine_kernel(cos, L)) / np.abs(K).max()))
        vals = ntk_cosine_kernel(np.array([1.0, -1.0, 0.0]), L)
        refs = [L + 1.0, reference_cosine(-1.0, L), reference_cosine(0.0, L)]
        err_pts = float(np.max(np.abs(vals - refs) / np.maximum(np.abs(refs), 1e-300)))
        worst_gram = max(worst_gram, err_gram, err_dot)
        worst_pts = max(worst_pts, err_pts)
        rows.append([L, fmt(err_gram), fmt(err_dot), fmt(vals[0], 12), fmt(refs[1], 9), fmt(vals[1], 9),
                     fmt(refs[2], 9), fmt(vals[2], 9), fmt(err_pts)])
    write_table(ctx, NAME, ["L", "recursion vs ntk_kernel (rel)", "dot-product form (rel)", "K_L(1)",
                            "K_L(-1) ref", "K_L(-1)", "K_L(0) ref", "K_L(0)", "max rel err at 1,-1,0"], rows,
                preamble=f"# {TITLE}\n\nData: {data}. Tolerance {TOL:g} relative.")

    def draw(fig):
        ax = fig.add_subplot(111)
        a = np.linspace(-1, 1, 401)
        for L in depths:
            ax.plot(a, ntk_cosine_kernel(a, L), label=f"L={L}")
            ax.plot([1, -1, 0], [L + 1, reference_cosine(-1.0, L), reference_cosine(0.0, L)], "k.", ms=5)
        ax.set_xlabel("cosine a")
        ax.set_ylabel("K_L(a)")
        ax.set_title("NTK dot-product form; dots: closed-form values at 1, -1, 0")
        ax.legend(fontsize=7)

    save_plot(ctx, NAME, draw)
    return [
        Result(NAME, "NTK recursion T_L(y,z) = |y||z| K_L(cos) (Sec. 2 recursion; docs/math.md §2)", data,
               f"max rel diff {fmt(worst_gram)} over L={depths[0]}..{depths[-1]}", f"{fmt(worst_gram / TOL)} x tol",
               verdict(worst_gram <= TOL)),
        Result(NAME, "K_L(1) = L+1; K_L(-1), K_L(0) closed forms (docs/math.md §2)", "scalar recursion",
               f"max rel err {fmt(worst_pts)}", f"{fmt(worst_pts / TOL)} x tol", verdict(worst_pts <= TOL)),
    ]
