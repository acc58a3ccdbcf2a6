"""CNTKSketch: features of the CNTK-GAP computed pixel by pixel, linear in the number of pixels.

docs/math.md §3, §4, §7; Zandieh et al. (2021), Section 5 and Algorithm 3.  The exact CNTK-GAP recursion
(:mod:`ntk_sketch.kernels.cntk_exact`) is carried out with one short feature vector per pixel and layer whose inner
products estimate the layer quantities, with polynomials ``P0 ~ k0`` and ``P1 ~ k1`` (non-negative
coefficients, :func:`ntk_sketch.kernels.polynomials.arccos_polynomials`) in place of the arc-cosine functions.

Per image, with the exact normalisers ``N_h`` (they depend on the image only, so they are computed exactly, by
the same patch sums as the exact kernel):

* layer 0, pixel p of grid 1: ``phi0_p = concat_{u in patch} x_{p+u}``, so ``<phi0_p(x), phi0_p'(y)> = S0[p, p']``
  exactly and ``|phi0_p|^2 = N0[p]``;
* layer h = 1..L, pixel p of grid h, ``f_p`` the S_{h-1} feature: unit-normalise ``u = f_p / |f_p|`` and sketch
  its powers ``Z_1 = u``, ``Z_l = T_l(Z_{l-1}, u)`` (one TensorSRHT per degree, docs/math.md §4), so that
  ``E <Z_l, Z'_l> = <u, u'>^l``; then

      g_p    = sqrt(N_{h-1}[p]) [sqrt(c1_0), sqrt(c1_1) Z_1, ..., sqrt(c1_p) Z_p]    ~ G_h = sqrt(N N') P1(r)
      gdot_p =                  [sqrt(c0_0), sqrt(c0_1) Z_1, ..., sqrt(c0_p) Z_p]    ~ Gdot_h = P0(r);

* hidden layers h < L, pixel p of grid h+1:

      f_p  = [C_h((1/q) concat_u g~_{p+u}), (1/q) (g_{p+u}[0])_u]           ~ S_h  (patch sum)
      pp_p = [C'_h((1/q) concat_u T_h(pp_{p+u}, gdot_{p+u})), f_p]     ~ P_h = patch sum of P_{h-1} Gdot_h + S_h

  with ``C_h``, ``C'_h`` CountSketches (``patch_sketch='countsketch'``, the default) or SRHTs ('srht') of the
  q^2-fold concatenation, ``g~`` = g without its constant coordinate ``g[0] = sqrt(c1_0 N)``, which is carried
  exactly (q^2 numbers; sketched, that coordinate, shared by every pixel and image, gives errors shared by all
  of them), and ``T_h`` a TensorSRHT; ``pp = 0`` on grid 1 with ``fix_first`` (P_0 = 0), else ``pp = phi0``
  (P_0 = S_0).  Writing P_h = patch sum of (P_{h-1} Gdot_h) + S_h lets the P features reuse the S features
  instead of sketching g a second time;
* global average pooling: ``(1/(q |grid_L|)) sum_p T_L(pp_p, gdot_p)`` (+ ``(+) g_p`` unless ``fix_last``; the
  concatenation is then compressed to ``n_components`` by one SRHT per image).

Every random map is unbiased and independent of its inputs, so for L = 1 (where the polynomial inputs are exact)
the features are unbiased for the CNTK with the polynomials; deeper, a polynomial of degree >= 2 of an unbiased
estimate is biased by O(variance), which vanishes as the per-pixel dimension grows.  Sharing one sign vector and
one transform of ``u`` between the degrees keeps each ``Z_l`` unbiased: ``(1/N) <Hu D u, Hu D u'> = <u, u'>``
for every sign draw ``D``.  Zero patches (N = 0) give zero features, never NaN.

Renormalisation (``renormalize=True``, the default): neighbouring pixels and similar images have nearly
parallel features, so a sketch's error on their norms is shared by all of them and does not average out over
pixels or images.  Every sketched vector whose exact norm is known is therefore rescaled to it: ``|Z_l| = 1``,
``|T(a (x) b)| = |a| |b|``, and the two halves of ``pp`` to the exact diagonals ``S_h[p, p](x, x) = N_h[p] P1(1)``
and ``P_h[p, p](x, x) - S_h[p, p](x, x)`` (computed per image, like ``N_h``, by the recursion at r = 1).  On
Fashion-MNIST (L = 3, q = 3, m = 4096) this cut the median relative error from 0.09 to about 0.04; it costs an
O(1/d) bias and exact unbiasedness at L = 1 (``renormalize=False`` restores it; the tests check both).

Cost per image: O(L P (q^2 d + d log d)) for P pixels and per-pixel dimension d, plus O(P m) for the final
TensorSRHT (m = n_components): linear in the number of pixels.  Memory per worker: O(P d + m), independent of the
number of images; ``transform`` streams over images in parallel (one image per thread at a time, fixed
arithmetic order per image, so the result does not depend on the thread count).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._validation import (
    check_images,
    check_positive_int,
    check_random_state,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
    warn_if_channels_first,
)
from ..kernels.cntk_exact import cntk_grid_sizes
from ..sketches.countsketch import draw_countsketch
from ..kernels.polynomials import arccos_polynomials
from ..sketches.srht import _fwht, draw_srht, next_pow2
from ..sketches.tensor_srht import _signed_fwht, draw_tensor_srht

__all__ = ["CNTKSketch"]


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True)
def _normalisers(x, dims, q, off, n_layers, sqn, buf):
    """sqrt(N_{h-1}) on grid h for h = 1..L (row h-1 of ``sqn``, pixel (i, j) at i * W_h + j).

    N_0[p] = sum_{u in patch} |x_{p+u}|^2 on grid 1; N_h = (1/q^2) patch sum of N_{h-1} (docs/math.md §3); zero
    padding for 'same' (off = -(q-1)/2), 'valid' patches start at the pixel (off = 0).
    """
    h0, w0, c = x.shape
    for i in range(h0):
        for j in range(w0):
            s = 0.0
            for k in range(c):
                s += x[i, j, k] * x[i, j, k]
            buf[0, i * w0 + j] = s
    inv_q2 = 1.0 / (q * q)
    src = 0
    for h in range(n_layers):
        hi, wi = dims[h, 0], dims[h, 1]
        ho, wo = dims[h + 1, 0], dims[h + 1, 1]
        dst = 1 - src
        for i in range(ho):
            for j in range(wo):
                s = 0.0
                for a in range(q):
                    ii = i + a + off
                    if ii < 0 or ii >= hi:
                        continue
                    for b in range(q):
                        jj = j + b + off
                        if jj < 0 or jj >= wi:
                            continue
                        s += buf[src, ii * wi + jj]
                if h > 0:
                    s *= inv_q2
                buf[dst, i * wo + j] = s
                sqn[h, i * wo + j] = np.sqrt(s)
        src = dst


@numba.njit(cache=True)
def _tensor_into(signs1, signs2, rows1, rows2, scale, n1, n2, a, b, w1, w2, out, accumulate):
    """out (+)= TensorSRHT(a (x) b) (tensor_srht module conventions), with scratch w1, w2 of length >= n1, n2."""
    wa = w1[:n1]
    wb = w2[:n2]
    _signed_fwht(signs1, a, wa)
    _signed_fwht(signs2, b, wb)
    if accumulate:
        for k in range(rows1.shape[0]):
            out[k] += scale * wa[rows1[k]] * wb[rows2[k]]
    else:
        for k in range(rows1.shape[0]):
            out[k] = scale * wa[rows1[k]] * wb[rows2[k]]


@numba.njit(cache=True)
def _sq(v):
    s = 0.0
    for k in range(v.shape[0]):
        s += v[k] * v[k]
    return s


@numba.njit(cache=True)
def _rescale(v, target):
    """Scale v to norm ``target`` (left as is when it is 0: nothing to rescale)."""
    s = _sq(v)
    if s > 0.0:
        c = target / np.sqrt(s)
        for k in range(v.shape[0]):
            v[k] *= c


@numba.njit(cache=True)
def _compress_patch(use_srht, idx, sgn, srows, sscale, npad, src, hs, ws, i, j, q, off, dim, inv_q, out, work,
                    n_out, exact_first):
    """out[:n_out] = C((1/q) concat_{(a,b) in patch} src[pixel (i+a+off, j+b+off)][:dim]), zero outside the grid.

    C is a CountSketch (``idx``, ``sgn`` of length q^2 dim) or an SRHT (``sgn`` its signs, ``srows``, ``sscale``,
    padded length ``npad``, scratch ``work``).  With ``exact_first`` the first coordinate of every source (the
    constant coordinate of g, the same for every pixel and image up to sqrt(N)) is not sketched but copied, as
    out[n_out + t] = src[..][0] / q for patch offset t: sketching such shared heavy coordinates gives errors that
    every pixel and image share, which do not average out.
    """
    k0 = 1 if exact_first else 0
    if use_srht:
        wk = work[:npad]
        wk[:] = 0.0
        t = 0
        for a in range(q):
            ii = i + a + off
            for b in range(q):
                jj = j + b + off
                if 0 <= ii < hs and 0 <= jj < ws:
                    v = src[ii * ws + jj]
                    base = t * dim
                    for k in range(k0, dim):
                        wk[base + k] = sgn[base + k] * v[k]
                    if exact_first:
                        out[n_out + t] = v[0] * inv_q
                elif exact_first:
                    out[n_out + t] = 0.0
                t += 1
        _fwht(wk)
        s = sscale * inv_q
        for k in range(n_out):
            out[k] = s * wk[srows[k]]
    else:
        out[:n_out] = 0.0
        t = 0
        for a in range(q):
            ii = i + a + off
            for b in range(q):
                jj = j + b + off
                if 0 <= ii < hs and 0 <= jj < ws:
                    v = src[ii * ws + jj]
                    base = t * dim
                    for k in range(k0, dim):
                        out[idx[base + k]] += sgn[base + k] * v[k]
                    if exact_first:
                        out[n_out + t] = v[0] * inv_q
                elif exact_first:
                    out[n_out + t] = 0.0
                t += 1
        for k in range(n_out):
            out[k] *= inv_q


@numba.njit(cache=True)
def _image_sketch(x, dims, q, off, n_layers, degree, fix_first, fix_last, use_srht, renorm,
                  sqc0, sqc1, d_in, d_g, d_pp, d_t, m_poly, m_s, m_pp,
                  u_signs, u_npad, z_signs, z_rows1, z_rows2, z_npad,
                  t_signs1, t_signs2, t_rows1, t_rows2, t_npad1, t_npad2,
                  s_idx, s_sgn, s_rows, s_npad, p_idx, p_sgn, p_rows, p_npad, c_scale_s, c_scale_p,
                  f_signs1, f_signs2, f_rows1, f_rows2, f_npad1, f_npad2, has_final_t,
                  o_signs, o_rows, o_npad, compress_out,
                  sqn, nbuf, F, PP, G, MM, ub, gd, Z, w1, w2, w3, acc, tmp, out):
    """Features of one image (module docstring), into ``out`` (m,).  All other trailing arrays are scratch.

    Per-layer tables are stacked along a first axis of length L (hidden-layer ones: L - 1) and used up to the
    layer's own lengths (``d_in[h]``, ``d_g[h]``, ...).  Pixel p = (i, j) of grid h is row i * W_h + j of F, PP
    (S_{h-1} and P_{h-1} features on grid h), G and MM (g and [T_h(pp, gdot) (+) g] on grid h).
    """
    h0, w0, nc = x.shape
    _normalisers(x, dims, q, off, n_layers, sqn, nbuf)
    # ---- layer 0: phi0 = concat of the patch pixels (exact S0 features), on grid 1
    h1, w1g = dims[1, 0], dims[1, 1]
    dphi = q * q * nc
    for i in range(h1):
        for j in range(w1g):
            f = F[i * w1g + j]
            t = 0
            for a in range(q):
                ii = i + a + off
                for b in range(q):
                    jj = j + b + off
                    inside = 0 <= ii < h0 and 0 <= jj < w0
                    for k in range(nc):
                        f[t * nc + k] = x[ii, jj, k] if inside else 0.0
                    t += 1
            if not fix_first:
                PP[i * w1g + j, :dphi] = f[:dphi]
            # exact P_0[p, p](x, x) (0 or N_0), for the renormalisation of the P features
            nbuf[0, i * w1g + j] = 0.0 if fix_first else sqn[0, i * w1g + j] ** 2
    acc[:] = 0.0
    poly_scale = 1.0 / np.sqrt(m_poly)
    t_scale = 1.0 / np.sqrt(t_rows1.shape[1]) if t_rows1.shape[1] > 0 else 0.0
    f_scale = 1.0 / np.sqrt(f_rows1.shape[0]) if f_rows1.shape[0] > 0 else 0.0
    for h in range(n_layers):  # layer h + 1 of docs/math.md §3, on grid h + 1
        hh, wh = dims[h + 1, 0], dims[h + 1, 1]
        din = d_in[h]
        dg = d_g[h]
        dpp = d_pp[h]
        dt = d_t[h]
        last = h == n_layers - 1
        un = u_npad[h]
        for i in range(hh):
            for j in range(wh):
                pix = i * wh + j
                sn = sqn[h, pix]
                g = G[pix]
                f = F[pix]
                nrm2 = 0.0
                for k in range(din):
                    nrm2 += f[k] * f[k]
                if sn == 0.0 or nrm2 == 0.0:
                    # zero patch: G, Gdot and P vanish there (docs/math.md §3), so every feature is 0
                    g[:dg] = 0.0
                    if not last:
                        MM[pix, :dt] = 0.0
                    continue
                inv = 1.0 / np.sqrt(nrm2)
                for k in range(din):
                    ub[k] = f[k] * inv
                # powers of u: Z_1 = u, Z_l = T_l(Z_{l-1}, u) sharing the transform of u (module docstring)
                wu = w3[:un]
                if degree >= 2:
                    _signed_fwht(u_signs[h, :din], ub[:din], wu)
                for l in range(2, degree + 1):
                    dprev = din if l == 2 else m_poly
                    prev = ub[:din] if l == 2 else Z[l - 3]
                    zn = z_npad[h, l - 2]
                    wz = w1[:zn]
                    _signed_fwht(z_signs[h, l - 2, :dprev], prev, wz)
                    zr1 = z_rows1[h, l - 2]
                    zr2 = z_rows2[h, l - 2]
                    zl = Z[l - 2]
                    zz = 0.0
                    for k in range(m_poly):
                        v = poly_scale * wz[zr1[k]] * wu[zr2[k]]
                        zl[k] = v
                        zz += v * v
                    if renorm and zz > 0.0:  # |u^(l)| = 1 exactly
                        zz = 1.0 / np.sqrt(zz)
                        for k in range(m_poly):
                            zl[k] *= zz
                # g = sqrt(N) [sqrt(c1_l) Z_l], gdot = [sqrt(c0_l) Z_l]
                g[0] = sn * sqc1[h, 0]
                gd[0] = sqc0[h, 0]
                a1 = sn * sqc1[h, 1]
                a0 = sqc0[h, 1]
                for k in range(din):
                    g[1 + k] = a1 * ub[k]
                    gd[1 + k] = a0 * ub[k]
                for l in range(2, degree + 1):
                    o = 1 + din + (l - 2) * m_poly
                    a1 = sn * sqc1[h, l]
                    a0 = sqc0[h, l]
                    zl = Z[l - 2]
                    for k in range(m_poly):
                        g[o + k] = a1 * zl[k]
                        gd[o + k] = a0 * zl[k]
                if not last:
                    mm = MM[pix]
                    if dt > 0:
                        _tensor_into(t_signs1[h, :dpp], t_signs2[h, :dg], t_rows1[h], t_rows2[h], t_scale,
                                     t_npad1[h], t_npad2[h], PP[pix, :dpp], gd[:dg], w1, w2, mm[:dt], False)
                        if renorm:  # |a (x) b| = |a| |b| exactly
                            _rescale(mm[:dt], np.sqrt(_sq(PP[pix, :dpp]) * _sq(gd[:dg])))
                else:
                    o = 0
                    if has_final_t:
                        o = f_rows1.shape[0]
                        tv = tmp[:o]
                        _tensor_into(f_signs1, f_signs2, f_rows1, f_rows2, f_scale, f_npad1, f_npad2,
                                     PP[pix, :dpp], gd[:dg], w1, w2, tv, False)
                        if renorm:
                            _rescale(tv, np.sqrt(_sq(PP[pix, :dpp]) * _sq(gd[:dg])))
                        for k in range(o):
                            acc[k] += tv[k]
                    if not fix_last:
                        for k in range(dg):
                            acc[o + k] += g[k]
        if last:
            break
        # ---- patch sums: S_{h+1} and P_{h+1} features on grid h + 2 (docs/math.md §3)
        hn, wn = dims[h + 2, 0], dims[h + 2, 1]
        inv_q = 1.0 / q
        dpn = d_pp[h + 1]
        # exact diagonal P_{h+1}[p, p](x, x) = (1/q^2) sum_u (P_h[p+u, p+u] P0(1) + N_h[p+u] P1(1))
        p0_one = 0.0
        p1_one = 0.0
        for k in range(degree + 1):
            p0_one += sqc0[h, k] ** 2
            p1_one += sqc1[h, k] ** 2
        cur = h % 2
        for i in range(hn):
            for j in range(wn):
                pix = i * wn + j
                fn = F[pix, :m_s + q * q]
                _compress_patch(use_srht, s_idx[h], s_sgn[h], s_rows[h], c_scale_s, s_npad[h], G, hh, wh, i, j,
                                q, off, dg, inv_q, fn, w1, m_s, True)
                # P_{h+1} = patch sum of P_h Gdot + S_{h+1}: features [C'(concat T parts), f] (docs/math.md §3)
                ppn = PP[pix, :dpn]
                if dt > 0:
                    _compress_patch(use_srht, p_idx[h], p_sgn[h], p_rows[h], c_scale_p, p_npad[h], MM, hh, wh, i,
                                    j, q, off, dt, inv_q, ppn[:m_pp], w1, m_pp, False)
                    ppn[m_pp:] = fn
                else:
                    ppn[:] = fn
                pdv = 0.0
                for a in range(q):
                    ii = i + a + off
                    for b in range(q):
                        jj = j + b + off
                        if 0 <= ii < hh and 0 <= jj < wh:
                            sp = ii * wh + jj
                            pdv += nbuf[cur, sp] * p0_one + sqn[h, sp] ** 2 * p1_one
                pdv *= inv_q * inv_q
                nbuf[1 - cur, pix] = pdv
                if renorm:
                    # the two halves separately: |f|^2 = S_{h+1}[p, p] = N_{h+1}[p] P1(1), the rest P - S
                    sdiag = sqn[h + 1, pix] ** 2 * p1_one
                    if dt > 0:
                        _rescale(ppn[:m_pp], np.sqrt(max(pdv - sdiag, 0.0)))
                        _rescale(ppn[m_pp:], np.sqrt(sdiag))
                    else:
                        _rescale(ppn, np.sqrt(pdv))
    # ---- global average pooling (and the final compression when g is appended)
    hl, wl = dims[n_layers, 0], dims[n_layers, 1]
    gap = 1.0 / (q * float(hl * wl))
    if compress_out:
        wk = w1[:o_npad]
        wk[:] = 0.0
        dacc = acc.shape[0]
        for k in range(dacc):
            wk[k] = o_signs[k] * acc[k] * gap
        _fwht(wk)
        s = 1.0 / np.sqrt(out.shape[0])
        for k in range(out.shape[0]):
            out[k] = s * wk[o_rows[k]]
    else:
        for k in range(out.shape[0]):
            out[k] = acc[k] * gap


@serialised
@numba.njit(cache=True, parallel=True)
def _sketch_images(X, n_chunks, dims, q, off, n_layers, degree, fix_first, fix_last, use_srht, renorm,
                   sqc0, sqc1, d_in, d_g, d_pp, d_t, m_poly, m_s, m_pp,
                   u_signs, u_npad, z_signs, z_rows1, z_rows2, z_npad,
                   t_signs1, t_signs2, t_rows1, t_rows2, t_npad1, t_npad2,
                   s_idx, s_sgn, s_rows, s_npad, p_idx, p_sgn, p_rows, p_npad, c_scale_s, c_scale_p,
                   f_signs1, f_signs2, f_rows1, f_rows2, f_npad1, f_npad2, has_final_t,
                   o_signs, o_rows, o_npad, compress_out,
                   dF, dP, dG, dMM, n_work, d_acc, out):
    """out[a] = features of X[a], in parallel over chunks of images, one O(P d) workspace per chunk."""
    n, h0, w0, _ = X.shape
    npix = h0 * w0
    for c in prange(n_chunks):
        start = (c * n) // n_chunks
        stop = ((c + 1) * n) // n_chunks
        sqn = np.zeros((n_layers, npix))
        nbuf = np.zeros((2, npix))
        F = np.zeros((npix, dF))
        PP = np.zeros((npix, dP))
        G = np.zeros((npix, dG))
        MM = np.zeros((npix, dMM))
        ub = np.zeros(dF)
        gd = np.zeros(dG)
        Z = np.zeros((max(degree - 1, 1), m_poly))
        w1 = np.zeros(n_work)
        w2 = np.zeros(n_work)
        w3 = np.zeros(n_work)
        acc = np.zeros(d_acc)
        tmp = np.zeros(d_acc)
        for a in range(start, stop):
            _image_sketch(X[a], dims, q, off, n_layers, degree, fix_first, fix_last, use_srht, renorm,
                          sqc0, sqc1, d_in, d_g, d_pp, d_t, m_poly, m_s, m_pp,
                          u_signs, u_npad, z_signs, z_rows1, z_rows2, z_npad,
                          t_signs1, t_signs2, t_rows1, t_rows2, t_npad1, t_npad2,
                          s_idx, s_sgn, s_rows, s_npad, p_idx, p_sgn, p_rows, p_npad, c_scale_s, c_scale_p,
                          f_signs1, f_signs2, f_rows1, f_rows2, f_npad1, f_npad2, has_final_t,
                          o_signs, o_rows, o_npad, compress_out,
                          sqn, nbuf, F, PP, G, MM, ub, gd, Z, w1, w2, w3, acc, tmp, out[a])


# ------------------------------------------------------------------------------------------------ Python API
def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def _pad_stack(arrays, width, dtype):
    out = np.zeros((len(arrays), max(width, 1)), dtype=dtype)
    for k, a in enumerate(arrays):
        out[k, :len(a)] = a
    return out


class CNTKSketch:
    """Sketched features of the CNTK-GAP (docs/math.md §3, §4, §7; Zandieh et al. 2021, Algorithm 3).

    ``<transform(x), transform(y)>`` approximates ``cntk_kernel(x, y, depth=..., filter_size=..., padding=...,
    fix_first=..., fix_last=...)`` with the polynomials ``P0 ~ k0``, ``P1 ~ k1`` in place of the arc-cosine
    functions (the construction is in the module docstring).  Cost per image is linear in the number of pixels.

    Parameters
    ----------
    depth : int
        Number L >= 1 of convolutional ReLU layers (as in :func:`ntk_sketch.kernels.cntk_exact.cntk_kernel`).
    n_components : int, default 4096
        Output dimension m.
    filter_size : int, default 3
        Side q of the square filters.
    padding : {'valid', 'same'}
        As in the exact kernel ('same' needs an odd filter_size).
    degree : int, default 5
        Degree p >= 1 of the polynomials.  Their error is the floor of the sketch's: on Fashion-MNIST (L = 3,
        200 test images) the polynomial CNTK is off the exact one by 0.052 (q = 3) / 0.055 (q = 4) at degree 3
        and 0.037 (q = 3) at degree 5.  Degree 3 with pixel_dim=128 is about 1.7x faster (median error 0.034 at
        q = 3 but 0.06-0.07 at q = 4).
    polynomial : {'fit', 'taylor'} or (P0_list, P1_list)
        'fit': least-squares non-negative fits exact at 1 (layer 1 on [0, 1] for non-negative images, else on
        [-1, 1]; deeper layers on [0, 1], where their cosines, values of k1, lie); 'taylor': truncated series;
        or two lists of L coefficient arrays (length degree + 1, non-negative), one per layer.
    fit_lower : float or None
        For 'fit' only: fit every layer on (fit_lower, 1) instead of the intervals above.  When the data's
        cosines are concentrated near 1 (natural images: Fashion-MNIST's lie mostly above 0.5) a narrower
        interval lowers the polynomial error where it matters (Fashion-MNIST, L = 3, q = 4, degree 3: the
        relative error of the polynomial CNTK falls from 0.052 with (0, 1) to 0.030 with (0.7, 1)); cosines below
        fit_lower are extrapolated (coefficients stay non-negative, the value at 1 stays exact).
    pixel_dim : int, default 256
        Per-pixel sketch dimension d: of every power Z_l (l >= 2), of the sketched part of the S features and
        of the P features' first half, and of the hidden layers' TensorSRHTs.  Cost and memory per pixel grow
        like q^2 d.  The errors of these per-pixel sketches are largely shared by neighbouring pixels, so they do
        not average out over the grid: they, not n_components, limit the accuracy once m >= 1024.
    renormalize : bool, default True
        Rescale every per-pixel sketch to the norm it must have exactly (|Z_l| = 1 since |u| = 1,
        |T(a (x) b)| = |a| |b|, and the P features to the exact diagonal P_h[p, p](x, x), computed per image
        like N_h).  Neighbouring pixels and similar images have nearly parallel features, so the sketches' norm
        errors are shared by all of them and do not average out over pixels; renormalising removes them
        (measured: median error 0.09 -> 0.04 at m = 4096) at the price of an O(1/d) bias.  False gives the
        plain sketch (unbiased for L = 1).
    patch_sketch : {'countsketch', 'srht'}, default 'countsketch'
        Compression of the q^2-fold patch concatenation: CountSketch (O(q^2 d) per pixel) or SRHT
        (O(q^2 d log(q^2 d))).
    fix_first, fix_last : bool, default True
        As in the exact kernel; both True with depth=1 (an identically zero kernel) is rejected.
    nonnegative : bool or None
        Whether the images have non-negative pixels (then the first layer's cosines lie in [0, 1] and 'fit'
        fits that interval).  None: detected in ``fit`` when it is given images, else False.
    seed : None, int, SeedSequence or numpy.random.Generator

    Attributes
    ----------
    image_shape_ : tuple (H, W, C)
    grid_sizes_ : list of (H_h, W_h), h = 0..L
    poly_k0_, poly_k1_ : list of L coefficient arrays
    n_features_out_ : int
    """

    def __init__(self, depth=3, n_components=4096, *, filter_size=3, padding="valid", degree=5, polynomial="fit",
                 fit_lower=None, pixel_dim=256, patch_sketch="countsketch", renormalize=True, fix_first=True,
                 fix_last=True, nonnegative=None, seed=None):
        self.depth = depth
        self.n_components = n_components
        self.filter_size = filter_size
        self.padding = padding
        self.degree = degree
        self.polynomial = polynomial
        self.fit_lower = fit_lower
        self.pixel_dim = pixel_dim
        self.patch_sketch = patch_sketch
        self.renormalize = renormalize
        self.fix_first = fix_first
        self.fix_last = fix_last
        self.nonnegative = nonnegative
        self.seed = seed

    # -------------------------------------------------------------------------------------------- parameters
    def _check_params(self):
        L = check_positive_int(self.depth, "depth")
        m = check_positive_int(self.n_components, "n_components")
        q = check_positive_int(self.filter_size, "filter_size")
        p = check_positive_int(self.degree, "degree")
        d = check_positive_int(self.pixel_dim, "pixel_dim")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'; got {self.padding!r}.")
        if self.padding == "same" and q % 2 == 0:
            raise ValueError(f"padding='same' needs an odd filter_size; got filter_size={q}. Use an odd "
                             "filter_size or padding='valid'.")
        if self.patch_sketch not in ("countsketch", "srht"):
            raise ValueError(f"patch_sketch must be 'countsketch' or 'srht'; got {self.patch_sketch!r}.")
        _check_bool(self.renormalize, "renormalize")
        ff = _check_bool(self.fix_first, "fix_first")
        fl = _check_bool(self.fix_last, "fix_last")
        if ff and fl and L == 1:
            raise ValueError("fix_first=True and fix_last=True with depth=1 leave no trainable layer: the kernel is "
                             "identically zero. Use depth >= 2 or set fix_first=False or fix_last=False.")
        if self.nonnegative is not None:
            _check_bool(self.nonnegative, "nonnegative")
        return L, m, q, p, d, ff, fl

    def _polynomials(self, L, p, nonnegative):
        poly = self.polynomial
        if isinstance(poly, str):
            if poly not in ("fit", "taylor"):
                raise ValueError(f"polynomial must be 'fit', 'taylor' or a pair (P0_list, P1_list); got {poly!r}.")
            lower = None
            if self.fit_lower is not None:
                lower = float(self.fit_lower)
                if not -1.0 <= lower < 1.0:
                    raise ValueError(f"fit_lower must be in [-1, 1); got {self.fit_lower!r}.")
            P0, P1 = [], []
            for h in range(L):
                interval = (0.0, 1.0) if (h > 0 or nonnegative) else (-1.0, 1.0)
                if lower is not None:
                    interval = (lower, 1.0)
                c0, c1 = arccos_polynomials(poly, p, interval)
                P0.append(np.asarray(c0, dtype=np.float64))
                P1.append(np.asarray(c1, dtype=np.float64))
            return P0, P1
        try:
            P0, P1 = poly
        except (TypeError, ValueError):
            raise ValueError("polynomial must be 'fit', 'taylor' or a pair (P0_list, P1_list) of per-layer "
                             "coefficient lists.") from None
        out = []
        for name, lst in (("P0", P0), ("P1", P1)):
            if len(lst) != L:
                raise ValueError(f"polynomial {name}_list must hold depth={L} coefficient arrays; got {len(lst)}.")
            arrs = []
            for c in lst:
                c = np.asarray(c, dtype=np.float64)
                if c.shape != (p + 1,) or not np.all(np.isfinite(c)) or np.any(c < 0):
                    raise ValueError(f"each {name} coefficient array must be finite, non-negative, of length "
                                     f"degree + 1 = {p + 1}; got {c}.")
                arrs.append(c)
            out.append(arrs)
        return out[0], out[1]

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Draw the random tables for images of one shape.

        Parameters
        ----------
        X : tuple (H, W, C) or array_like (n, H, W, C)
            The image shape, or images (only their shape and, if ``nonnegative`` is None, the sign of their
            pixels are used).
        y : ignored

        Returns
        -------
        self
        """
        L, m, q, p, d, ff, fl = self._check_params()
        nonneg = self.nonnegative
        if isinstance(X, tuple) and len(X) == 3 and all(isinstance(v, (int, np.integer)) for v in X):
            shape = tuple(int(v) for v in X)
            if min(shape) < 1:
                raise ValueError(f"image shape (H, W, C) must be positive; got {shape}.")
        else:
            Xc = check_images(X, "X", dtype=None)
            warn_if_channels_first(Xc.shape, "X", self.padding)
            shape = Xc.shape[1:]
            if nonneg is None:
                nonneg = bool(np.all(Xc >= 0))
        nonneg = bool(nonneg) if nonneg is not None else False
        H, W, C = shape
        if self.padding == "valid":
            field = L * (q - 1) + 1
            if H < field or W < field:
                raise ValueError(f"images of {H} x {W} pixels are smaller than the receptive field {field} x {field} "
                                 f"of depth={L} 'valid' layers with filter_size={q}; use smaller depth or "
                                 "filter_size, larger images, or padding='same'.")
        P0, P1 = self._polynomials(L, p, nonneg)
        rng = check_random_state(self.seed)
        srht = self.patch_sketch == "srht"

        dphi = q * q * C
        d_in = np.array([dphi] + [d + q * q] * (L - 1), dtype=np.int64)  # S features: [sketch, q^2 exact constants]
        d_g = 1 + d_in + (p - 1) * d
        d_t = np.array([0 if (h == 0 and ff) else d for h in range(L)], dtype=np.int64)  # hidden TensorSRHTs
        d_t[L - 1] = 0
        # P features on grid h + 1: [compressed T parts (if any), S features]; on grid 1: 0 or phi0
        d_pp = np.array([0 if ff else dphi] + [d_t[h] + d + q * q for h in range(L - 1)], dtype=np.int64)
        # powers of u: per layer, one sign vector for u and per degree l >= 2 a TensorSRHT (Z_{l-1}, u) -> d
        u_signs, u_npad, z_signs, z_rows1, z_rows2, z_npad = [], [], [], [], [], []
        for h in range(L):
            us = None
            zs, zr1, zr2, zn = [], [], [], []
            for l in range(2, p + 1):
                dprev = int(d_in[h]) if l == 2 else d
                t = draw_tensor_srht(dprev, int(d_in[h]), d, rng)
                if us is None:
                    us = t.signs2
                zs.append(t.signs1)
                zr1.append(t.rows1)
                zr2.append(t.rows2)
                zn.append(t.n_pad1)
            u_signs.append(us if us is not None else np.ones(1))
            u_npad.append(next_pow2(int(d_in[h])))
            z_signs.append(_pad_stack(zs, int(max(d_in.max(), d)), np.float64) if zs else np.zeros((1, 1)))
            z_rows1.append(_pad_stack(zr1, d, np.int64) if zr1 else np.zeros((1, d), np.int64))
            z_rows2.append(_pad_stack(zr2, d, np.int64) if zr2 else np.zeros((1, d), np.int64))
            z_npad.append(zn if zn else [1])
        z_signs = np.ascontiguousarray(np.stack(z_signs))
        z_rows1 = np.ascontiguousarray(np.stack(z_rows1))
        z_rows2 = np.ascontiguousarray(np.stack(z_rows2))
        z_npad = np.array(z_npad, dtype=np.int64)
        u_signs = _pad_stack(u_signs, int(d_in.max()), np.float64)
        u_npad = np.array(u_npad, dtype=np.int64)
        # hidden layers: TensorSRHT (pp, gdot) -> d, and the two patch compressions
        n_hidden = max(L - 1, 1)
        t_s1, t_s2, t_r1, t_r2, t_n1, t_n2 = [], [], [], [], [], []
        s_idx, s_sgn, s_rows, s_npad, p_idx, p_sgn, p_rows, p_npad = [], [], [], [], [], [], [], []
        for h in range(L - 1):
            if d_t[h] > 0:
                t = draw_tensor_srht(int(d_pp[h]), int(d_g[h]), d, rng)
                t_s1.append(t.signs1), t_s2.append(t.signs2), t_r1.append(t.rows1), t_r2.append(t.rows2)
                t_n1.append(t.n_pad1), t_n2.append(t.n_pad2)
            else:
                t_s1.append(np.zeros(1)), t_s2.append(np.zeros(1))
                t_r1.append(np.zeros(d, np.int64)), t_r2.append(np.zeros(d, np.int64))
                t_n1.append(1), t_n2.append(1)
            for dim, idx_l, sgn_l, rows_l, npad_l in ((int(d_g[h]), s_idx, s_sgn, s_rows, s_npad),
                                                      (int(d_t[h]), p_idx, p_sgn, p_rows, p_npad)):
                if dim == 0:
                    idx_l.append(np.zeros(1, np.int64))
                    sgn_l.append(np.zeros(1))
                    rows_l.append(np.zeros(d, np.int64))
                    npad_l.append(1)
                elif srht:
                    t = draw_srht(q * q * dim, d, rng)
                    idx_l.append(np.zeros(1, np.int64))
                    sgn_l.append(t.signs)
                    rows_l.append(t.rows)
                    npad_l.append(t.n_pad)
                else:
                    t = draw_countsketch(q * q * dim, d, 1, rng)
                    idx_l.append(t.indices[:, 0])
                    sgn_l.append(t.signs[:, 0])
                    rows_l.append(np.zeros(d, np.int64))
                    npad_l.append(1)
        if L == 1:  # keep the stacked arrays non-empty
            for lst, v in ((t_s1, np.zeros(1)), (t_s2, np.zeros(1)), (t_r1, np.zeros(d, np.int64)),
                           (t_r2, np.zeros(d, np.int64)), (t_n1, 1), (t_n2, 1), (s_idx, np.zeros(1, np.int64)),
                           (s_sgn, np.zeros(1)), (s_rows, np.zeros(d, np.int64)), (s_npad, 1),
                           (p_idx, np.zeros(1, np.int64)), (p_sgn, np.zeros(1)), (p_rows, np.zeros(d, np.int64)),
                           (p_npad, 1)):
                lst.append(v)

        def stack(lst, dtype):
            return _pad_stack(lst, max(len(a) for a in lst), dtype)

        # final layer: TensorSRHT (pp_{L-1}, gdot_L) -> m unless P_{L-1} = 0; g appended unless fix_last
        has_final_t = d_pp[L - 1] > 0
        if has_final_t:
            ft = draw_tensor_srht(int(d_pp[L - 1]), int(d_g[L - 1]), m, rng)
            f_args = (ft.signs1, ft.signs2, ft.rows1, ft.rows2, ft.n_pad1, ft.n_pad2)
        else:
            f_args = (np.zeros(1), np.zeros(1), np.zeros(0, np.int64), np.zeros(0, np.int64), 1, 1)
        d_acc = (m if has_final_t else 0) + (0 if fl else int(d_g[L - 1]))
        compress_out = d_acc != m or not has_final_t
        if compress_out:
            ot = draw_srht(d_acc, m, rng)
            o_args = (ot.signs, ot.rows, ot.n_pad)
        else:
            o_args = (np.zeros(1), np.zeros(m, np.int64), 1)

        all_npads = [int(v) for v in u_npad] + [int(v) for v in z_npad.ravel()] + t_n1 + t_n2 + s_npad + p_npad
        all_npads += [f_args[4], f_args[5], o_args[2]]
        self._tables = dict(
            d_in=d_in, d_g=d_g, d_pp=d_pp, d_t=d_t,
            sqc0=np.sqrt(np.stack(P0)), sqc1=np.sqrt(np.stack(P1)),
            u_signs=u_signs, u_npad=u_npad, z_signs=z_signs, z_rows1=z_rows1, z_rows2=z_rows2, z_npad=z_npad,
            t_signs1=stack(t_s1, np.float64), t_signs2=stack(t_s2, np.float64),
            t_rows1=stack(t_r1, np.int64), t_rows2=stack(t_r2, np.int64),
            t_npad1=np.array(t_n1, np.int64), t_npad2=np.array(t_n2, np.int64),
            s_idx=stack(s_idx, np.int64), s_sgn=stack(s_sgn, np.float64), s_rows=stack(s_rows, np.int64),
            s_npad=np.array(s_npad, np.int64), p_idx=stack(p_idx, np.int64), p_sgn=stack(p_sgn, np.float64),
            p_rows=stack(p_rows, np.int64), p_npad=np.array(p_npad, np.int64),
            f_args=f_args, has_final_t=bool(has_final_t), o_args=o_args, compress_out=bool(compress_out),
            dF=int(d_in.max()), dP=max(int(d_pp.max()), d, 1), dG=int(d_g.max()),
            dMM=max(int(d_t.max()), 1), n_work=max(all_npads), d_acc=max(d_acc, 1),
        )
        self.image_shape_ = (H, W, C)
        self.grid_sizes_ = cntk_grid_sizes(H, W, L, q, self.padding)
        self.poly_k0_, self.poly_k1_ = P0, P1
        self.nonnegative_ = nonneg
        self.n_features_out_ = m
        self._config = (L, m, q, p, d, ff, fl, srht)
        return self

    # -------------------------------------------------------------------------------------------- transform
    def transform(self, X, *, batch_size=256):
        """Features of the images ``X`` (n, H, W, C) -> (n, n_components) float64.

        Images are converted to float64 and sketched ``batch_size`` at a time, in parallel over images; memory
        beyond the output is O(batch_size P + threads P pixel_dim), independent of n.
        """
        if not hasattr(self, "_tables"):
            raise ValueError("this CNTKSketch is not fitted yet; call fit(image_shape or images) first.")
        batch_size = check_positive_int(batch_size, "batch_size")
        arr = X if isinstance(X, np.ndarray) else check_images(X, "X", allow_empty=True)
        if arr.ndim != 4 or min(arr.shape[1:]) == 0:
            check_images(arr, "X")  # raises the standard message
        if arr.shape[1:] != self.image_shape_:
            raise ValueError(f"X has images of shape {arr.shape[1:]} but this CNTKSketch was fitted on "
                             f"{self.image_shape_}; resize the images or refit.")
        L, m, q, p, d, ff, fl, srht = self._config
        n = arr.shape[0]
        out = np.empty((n, m))
        T = self._tables
        dims = np.array(self.grid_sizes_, dtype=np.int64)
        off = -((q - 1) // 2) if self.padding == "same" else 0
        for b0 in range(0, n, batch_size):
            Xb = check_images(arr[b0:b0 + batch_size], "X", dtype=np.float64)
            e = row_scale_exponents(Xb)  # F(c x) = c F(x): extreme images rescaled by 2^-e, scaled back exactly
            Xb = scale_rows(Xb, e)
            nb = Xb.shape[0]
            n_chunks = max(1, min(nb, numba.get_num_threads()))
            _sketch_images(Xb, n_chunks, dims, q, off, L, p, ff, fl, srht, self.renormalize,
                           T["sqc0"], T["sqc1"], T["d_in"], T["d_g"], T["d_pp"], T["d_t"], d, d, d,
                           T["u_signs"], T["u_npad"], T["z_signs"], T["z_rows1"], T["z_rows2"], T["z_npad"],
                           T["t_signs1"], T["t_signs2"], T["t_rows1"], T["t_rows2"], T["t_npad1"], T["t_npad2"],
                           T["s_idx"], T["s_sgn"], T["s_rows"], T["s_npad"], T["p_idx"], T["p_sgn"], T["p_rows"],
                           T["p_npad"], 1.0 / np.sqrt(d), 1.0 / np.sqrt(d),
                           *T["f_args"], T["has_final_t"], *T["o_args"], T["compress_out"],
                           T["dF"], T["dP"], T["dG"], T["dMM"], T["n_work"], T["d_acc"], out[b0:b0 + nb])
            unscale_rows(out[b0:b0 + nb], e, "X")
        return out

    def fit_transform(self, X, y=None):
        """``fit(X)`` then ``transform(X)`` (X must be images here)."""
        return self.fit(X).transform(X)
