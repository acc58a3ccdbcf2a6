"""Per-layer polynomials for the CNTK-GAP fitted to the composed kernel on sample images (docs/math.md §7).

CNTKSketch replaces ``k0`` and ``k1`` in every layer of the CNTK-GAP recursion (docs/math.md §3) by polynomials
with non-negative coefficients.  Fitted on a fixed interval (:func:`ntk_sketch.kernels.polynomials.arccos_polynomials`)
their error is spread over cosines the data never produce, and at the default degree the recursion with those
polynomials was 0.034 (relative Frobenius) from the exact CNTK on Fashion-MNIST (L = 3, q = 4): more than the
sketch's own error at m = 4096, so extra columns bought nothing.  Zandieh et al. (2021, Section 5 and their
released code) fit each layer's polynomials on the interval that layer's inputs occupy; this module goes one step
further and fits them to the errors that reach the kernel, on the cosines each layer actually sees.

:func:`cntk_data_polynomials` runs the recursion twice on every pair of a small sample of images (each image
with itself included): exactly, and with the polynomials fitted so far in place of ``k0``, ``k1``.  Layer by
layer, h = 1..L, it then solves a least-squares problem with coefficients ``>= 0`` and values exact at ``r = 1``
(``P0(1) = k0(1) = 1``, ``P1(1) = k1(1) = 1``, so that an image's pixel diagonals stay exact):

* hidden layer h < L, over all pixel pairs (p, p') of all image pairs, for ``(P0_h, P1_h)`` jointly::

      sqrt(N N') P1_h(r~)                    -  G_h                         (the S features' input)
      P~_{h-1} P0_h(r~) + sqrt(N N') P1_h(r~) -  (P_{h-1} Gdot_h + G_h)       (the P features' input)

  where ``r~``, ``P~`` come from the polynomial recursion and ``G_h``, ``Gdot_h``, ``P_{h-1}`` from the exact
  one: so a layer also corrects what the layers below it got wrong;
* last layer L, over image pairs: the polynomial CNTK ``(1/q^2) mean_{p, p'} (P~_{L-1} P0_L(r~) [+ sqrt(N N')
  P1_L(r~)])`` against the exact CNTK value, i.e. the very error the sketch is judged by (docs/math.md §8);
  with ``fix_last`` (``P1_L`` unused by the kernel) ``P1_L`` is fitted as a hidden layer's.

Each problem is linear in the coefficients, so only the normal equations (a few (p + 1)-square matrices) are
accumulated over the pairs; the recursion itself is the plain O(q^2 P^2) one on full (H, W, H, W) arrays (numpy,
about 0.1 s per pair at 28 x 28), which is why it runs on a few images only.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize

from .._validation import check_images, check_positive_int, check_random_state
from .arccos import COSINE_SNAP, arccos_kernel_0, arccos_kernel_1
from .cntk_geometry import check_architecture, check_fixed_layers, cntk_normalisers, grid_geometry
from .polynomials import fit_nonnegative_polynomial

__all__ = ["cntk_data_polynomials", "cntk_layer_recursion"]


def _patch_sum(G, q, off, out_shape, scale):
    """``scale * sum_{a, b < q} G[i+a+off, j+b+off, i'+a+off, j'+b+off]`` (zero outside), G of shape (h, w, h, w)."""
    h, w = G.shape[0], G.shape[1]
    ho, wo = out_shape
    before = -off
    after_h = max(0, ho - 1 + q - 1 + off - (h - 1))
    after_w = max(0, wo - 1 + q - 1 + off - (w - 1))
    if before or after_h or after_w:
        G = np.pad(G, [(before, after_h), (before, after_w), (before, after_h), (before, after_w)])
    # separable: the joint shift by (a, b) is a shift by b of axes 1, 3, then by a of axes 0, 2 (2q additions)
    cols = np.zeros((G.shape[0], wo, G.shape[2], wo))
    for b in range(q):
        cols += G[:, b:b + wo, :, b:b + wo]
    out = np.zeros((ho, wo, ho, wo))
    for a in range(q):
        out += cols[a:a + ho, :, a:a + ho, :]
    out *= scale
    return out


def _correlation(S, sq):
    """``r = S / sqrt(N N')`` clipped to [-1, 1] and snapped to +-1 within COSINE_SNAP (as the exact kernel)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(sq > 0.0, S / np.where(sq > 0.0, sq, 1.0), 0.0)
    np.clip(r, -1.0, 1.0, out=r)
    r[r > 1.0 - COSINE_SNAP] = 1.0
    r[r < -1.0 + COSINE_SNAP] = -1.0
    return r


def cntk_layer_recursion(x, y, Nx, Ny, *, depth, filter_size, padding, fix_first, fix_last, k0=None, k1=None,
                         visit=None, stop=None):
    """CNTK-GAP of one pair of images by the plain recursion on full 4-d arrays (docs/math.md §3).

    Parameters
    ----------
    x, y : numpy.ndarray, shape (H, W, C)
        Two images (float64).
    Nx, Ny : list of numpy.ndarray
        Their normalisers ``N_0 .. N_{L-1}`` (:func:`ntk_sketch.kernels.cntk_geometry.cntk_normalisers`, one image).
    depth, filter_size, padding, fix_first, fix_last
        As in :func:`ntk_sketch.kernels.cntk_exact.cntk_kernel` (validated by the caller).
    k0, k1 : sequence of callables, optional
        Per-layer functions of the correlation used in place of ``k0`` / ``k1`` (entry h - 1 for layer h);
        None: the arc-cosine functions.
    visit : callable, optional
        ``visit(h, r, sq, P)`` is called at every layer h = 1..L with the correlations ``r``, ``sqrt(N N')`` and
        ``P_{h-1}`` (None for a fixed first layer at h = 1), all of shape (H_{h-1}, W_{h-1}, H_{h-1}, W_{h-1}).
    stop : int, optional
        Return None right after visiting layer ``stop`` (< depth) instead of finishing the recursion.

    Returns
    -------
    float or None
        The kernel value, equal to ``cntk_kernel`` on the pair up to rounding (None if stopped early).
    """
    q = filter_size
    dims, off = grid_geometry(x.shape[0], x.shape[1], depth, q, padding)
    inv_q2 = 1.0 / (q * q)
    G0 = np.einsum("ijc,klc->ijkl", x, y)
    S = _patch_sum(G0, q, off, tuple(dims[1]), 1.0)
    P = None if fix_first else S.copy()
    for h in range(1, depth + 1):
        sq = np.sqrt(np.multiply.outer(Nx[h - 1], Ny[h - 1]))
        r = _correlation(S, sq)
        if visit is not None:
            visit(h, r, sq, P)
        if stop is not None and h >= stop and h < depth:
            return None
        f0 = arccos_kernel_0 if k0 is None else k0[h - 1]
        f1 = arccos_kernel_1 if k1 is None else k1[h - 1]
        G = sq * f1(r)
        if P is None:
            M = G
        else:
            M = np.where(sq > 0.0, P * f0(r), 0.0) + G
        if h < depth:
            S = _patch_sum(G, q, off, tuple(dims[h + 1]), inv_q2)
            P = _patch_sum(M, q, off, tuple(dims[h + 1]), inv_q2)
        else:
            last = M - G if fix_last else M
            return inv_q2 * float(last.sum()) / float(dims[depth, 0] * dims[depth, 1]) ** 2


class _NormalEquations:
    """Running ``A^T A`` and ``A^T b`` of a least-squares problem whose rows arrive in blocks."""

    def __init__(self, n):
        self.gram = np.zeros((n, n))
        self.rhs = np.zeros(n)

    def add(self, A, b):
        self.gram += A.T @ A
        self.rhs += A.T @ b


def _solve_nonnegative(eq, groups, values_at_one):
    """``min |A c - b|^2`` over ``c >= 0`` with ``sum(c[group]) = value`` per group, from the normal equations.

    The quadratic ``c^T G c - 2 c^T r`` equals ``|R c - t|^2 + const`` with ``G = R^T R`` (eigen-square-root,
    directions with negligible curvature dropped), which scipy's NNLS solves; each equality is a heavily weighted
    row, then made exact on the group's largest coefficient (a tiny move, so c stays >= 0).
    """
    G, rhs = eq.gram, eq.rhs
    scale = max(float(np.max(np.abs(np.diag(G)))), np.finfo(float).tiny)
    e, V = np.linalg.eigh(G / scale)
    keep = e > 1e-13 * max(float(e.max()), 1e-300)
    R = np.sqrt(e[keep])[:, None] * V[:, keep].T
    t = (V[:, keep].T @ (rhs / scale)) / np.sqrt(e[keep])
    big = 1e4 * (1.0 + float(np.abs(R).max()))
    rows = [R]
    targets = [t]
    for group, value in zip(groups, values_at_one):
        row = np.zeros((1, G.shape[0]))
        row[0, group] = big
        rows.append(row)
        targets.append([big * value])
    c, _ = scipy.optimize.nnls(np.vstack(rows), np.concatenate(targets), maxiter=200 * G.shape[0])
    for group, value in zip(groups, values_at_one):
        sub = c[group]
        sub[np.argmax(sub)] += value - sub.sum()
        c[group] = sub
    return np.clip(c, 0.0, None)


# Hidden-layer rows are weighted by (1 - r + _EPS)^(-_GAMMA / 2): an error of S_h near r = 1 is amplified by the
# next layer's k0, whose slope 1 / (pi sqrt(1 - r^2)) is unbounded there.  Measured on Fashion-MNIST (L = 3,
# q = 4, degree 3, 6 sample images, 50 test images; a development measurement: edit _GAMMA and read the
# "polynomial floor" line of `python benchmarks/bench_cntk_sketch.py --filter-size 4 --degree 3 --m 64 --seeds 1
# --skip-speed` to redo it on 200 images): relative error of the polynomial CNTK 0.028 unweighted, 0.026 with
# _GAMMA = 1, 0.021 with 2 (eps 1e-3 or 1e-2 alike), 0.021 with 3.
_GAMMA = 2.0
_EPS = 1e-2


def _powers(r, p):
    """Columns ``r^0 .. r^p`` of the flattened r (float64, (r.size, p + 1))."""
    return np.vander(r.ravel(), p + 1, increasing=True)


def cntk_data_polynomials(X, *, depth, degree, filter_size=3, padding="valid", fix_first=True, fix_last=True,
                          n_images=6, seed=None):
    """Per-layer polynomials ``(P0_h, P1_h)``, h = 1..L, fitted to the CNTK-GAP on sample images (module docstring).

    Parameters
    ----------
    X : array_like, shape (n, H, W, C)
        Images, as for :func:`ntk_sketch.kernels.cntk_exact.cntk_kernel`; ``n_images`` of them are used.
    depth, filter_size, padding, fix_first, fix_last
        The architecture, as for the exact kernel.
    degree : int
        Degree p >= 1 of every polynomial.
    n_images : int
        Sample size s: the fit uses the s (s + 1) / 2 pairs (each image with itself included).  The cost is
        about 0.2 s (q = 4 'valid') to 0.45 s (q = 3) of one core per pair at 28 x 28, L = 3 (both recursions,
        all layers): 4.4 s for the default 6 images at q = 4, degree 5 (the fit time the benchmark prints).
    seed : None, int, SeedSequence or numpy.random.Generator
        Chooses the sample when X has more than ``n_images`` images.

    Returns
    -------
    (list of numpy.ndarray, list of numpy.ndarray)
        ``P0`` and ``P1``: L coefficient arrays each (length p + 1, non-negative, each summing to 1).
    """
    depth, q = check_architecture(depth, filter_size, padding)
    fix_first, fix_last = check_fixed_layers(depth, fix_first, fix_last)
    p = check_positive_int(degree, "degree")
    s = check_positive_int(n_images, "n_images")
    X = check_images(X, "X", dtype=np.float64)
    if X.shape[0] > s:
        X = X[np.sort(check_random_state(seed).choice(X.shape[0], s, replace=False))]
    # the fit is scale-free (every quantity below is homogeneous in each image): unit images keep it in range
    norms = np.sqrt(np.einsum("nijc,nijc->n", X, X))
    X = X[norms > 0] / norms[norms > 0, None, None, None]
    if X.shape[0] == 0:
        raise ValueError("X holds only zero images: the polynomials cannot be fitted to them; pass images with "
                         "non-zero pixels or use polynomial='fit'.")
    N = cntk_normalisers(X, depth=depth, filter_size=q, padding=padding)
    dims, _ = grid_geometry(X.shape[1], X.shape[2], depth, q, padding)
    gap_scale = 1.0 / (q * q * float(dims[depth, 0] * dims[depth, 1]) ** 2)  # (1/q^2) mean over grid_L pairs
    pairs = [(i, j) for i in range(X.shape[0]) for j in range(i, X.shape[0])]
    arch = dict(depth=depth, filter_size=q, padding=padding, fix_first=fix_first, fix_last=fix_last)
    P0 = [None] * depth
    P1 = [None] * depth
    both = [list(range(p + 1)), list(range(p + 1, 2 * p + 2))]
    poly = lambda c: (lambda r: np.polynomial.polynomial.polyval(r, c))  # noqa: E731
    for layer in range(1, depth + 1):
        eq = _NormalEquations(2 * p + 2)
        eq_k1 = _NormalEquations(p + 1)  # fix_last: P1_L alone, per pixel pair
        for i, j in pairs:
            Nx = [n[i] for n in N]
            Ny = [n[j] for n in N]
            exact = {}

            def keep_exact(h, r, sq, P):
                if h == layer:
                    exact["G"] = sq * arccos_kernel_1(r)
                    exact["PG"] = 0.0 if P is None else np.where(sq > 0.0, P * arccos_kernel_0(r), 0.0)

            approx = {}

            def keep_approx(h, r, sq, P):
                if h == layer:
                    approx["V"] = _powers(r, p)
                    approx["sq"] = sq.ravel()
                    approx["P"] = None if P is None else np.where(sq > 0.0, P, 0.0).ravel()

            def keep_both(h, r, sq, P):
                keep_exact(h, r, sq, P)
                keep_approx(h, r, sq, P)

            # below layer 1 nothing is approximated yet: one recursion serves as both
            k_exact = cntk_layer_recursion(X[i], X[j], Nx, Ny, visit=keep_both if layer == 1 else keep_exact,
                                           stop=layer, **arch)
            if layer > 1:
                # layers below `layer` use their fitted polynomials; `layer` and above are not reached by the fit
                k0s = [poly(c) for c in P0[:layer - 1]] + [arccos_kernel_0] * (depth - layer + 1)
                k1s = [poly(c) for c in P1[:layer - 1]] + [arccos_kernel_1] * (depth - layer + 1)
                cntk_layer_recursion(X[i], X[j], Nx, Ny, k0=k0s, k1=k1s, visit=keep_approx, stop=layer, **arch)
            V, sq, Pa = approx["V"], approx["sq"], approx["P"]
            g_exact = exact["G"].ravel()
            if layer < depth:
                # rows [0, sq V] -> G and [P V, sq V] -> P Gdot + G, weighted: their normal equations by blocks
                wt = (1.0 - V[:, 1] + _EPS) ** (-0.5 * _GAMMA)
                aV = (wt * sq)[:, None] * V
                tg = wt * g_exact
                tp = wt * (exact["PG"] + exact["G"]).ravel()
                eq.gram[p + 1:, p + 1:] += 2.0 * (aV.T @ aV)
                eq.rhs[p + 1:] += aV.T @ (tg + tp)
                if Pa is not None:
                    bV = (wt * Pa)[:, None] * V
                    cross = bV.T @ aV
                    eq.gram[:p + 1, :p + 1] += bV.T @ bV
                    eq.gram[:p + 1, p + 1:] += cross
                    eq.gram[p + 1:, :p + 1] += cross.T
                    eq.rhs[:p + 1] += bV.T @ tp
            else:
                Vg = sq[:, None] * V
                vp = np.zeros(p + 1) if Pa is None else Pa @ V
                row = np.concatenate([vp, np.zeros(p + 1) if fix_last else Vg.sum(axis=0)])
                eq.add(row[None, :] * gap_scale, np.array([k_exact]))
                if fix_last:
                    eq_k1.add(Vg, g_exact)
        if layer < depth or not fix_last:
            c = _solve_nonnegative(eq, both, (1.0, 1.0))
            P0[layer - 1], P1[layer - 1] = c[:p + 1], c[p + 1:]
            if layer == 1 and fix_first:  # P_0 = 0: P0_1 is never used; keep the plain fit there
                P0[0] = fit_nonnegative_polynomial(arccos_kernel_0, p, (-1.0, 1.0))
        else:
            c0 = _solve_nonnegative(_sub(eq, both[0]), [list(range(p + 1))], (1.0,))
            c1 = _solve_nonnegative(eq_k1, [list(range(p + 1))], (1.0,))
            P0[layer - 1], P1[layer - 1] = c0, c1
    return P0, P1


def _sub(eq, idx):
    """The normal equations restricted to the unknowns ``idx`` (the others fixed at 0)."""
    out = _NormalEquations(len(idx))
    out.gram = eq.gram[np.ix_(idx, idx)].copy()
    out.rhs = eq.rhs[idx].copy()
    return out
