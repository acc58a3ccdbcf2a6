"""Exact convolutional NTK with global average pooling (CNTK-GAP) of a deep ReLU network.

docs/math.md §3; Arora, Du, Hu, Li, Salakhutdinov, Wang, *On Exact Computation of an Infinitely Wide Neural Net*,
NeurIPS 2019 (the "fixed first and last layer" CNTK-GAP that Zandieh et al. 2021, Section 5, use as the exact
baseline of CNTKSketch).  For images ``x, y`` of shape (H, W, C), filter ``q x q``, ``L`` convolutional ReLU
layers, stride 1:

    G0[p, p'] = <x_p, y_p'>,        S0[p, p'] = sum_u G0[p+u, p'+u],      N0[p] = S0[p, p](x, x)
    for h = 1..L:
        r = S_{h-1}[p, p'] / sqrt(N_{h-1}[p](x) N_{h-1}[p'](y))
        G_h = sqrt(N N') k1(r),     Gdot_h = k0(r)
        S_h[p, p'] = (1/q^2) sum_u G_h[p+u, p'+u],      N_h[p] = (1/q^2) sum_u N_{h-1}[p+u]
    P_0 = 0 (fix_first) or S0;      P_h = (1/q^2) sum_u (P_{h-1} Gdot_h + G_h)[p+u, p'+u],  h < L
    CNTK(x, y) = (1/q^2) mean_{p, p'} (P_{L-1} Gdot_L [+ G_L unless fix_last])

How it is computed (cost O(L q P^2) per pair of images, P pixels; memory O(P^2) per thread, never n1 n2 P^2):

* The four pixel indices are stored as ``[i, i', j, j']`` (rows of x and y first), so a patch sum, a joint shift
  of both pixels by the same offset ``u = (a, b)``, is separable: a column pass ``sum_b`` inside each block
  ``(i, i')``, which is a flat shift by ``b (stride + 1)`` (q long vectorised loops), done as the block is
  produced, then a row pass ``sum_a`` that adds whole blocks along a block diagonal ``i' - i``.  That is
  ``2q`` additions per entry instead of ``q^2``.  Each layer sweeps the block diagonals, keeping the last q
  column-passed blocks in a small ring buffer, and writes S_h and P_h over S_{h-1} and P_{h-1} in place.
* Block layout: 'same' stores rows with c = (q-1)//2 zero columns before and q-1-c after (c + 1 for even q,
  the asymmetric 'SAME' alignment; see cntk_geometry.patch_offset), and the G block sits inside zero margins,
  so zero padding needs no bounds checks; padding columns have zero normalisers, which makes G and
  the masked Gdot (Gdot is taken as 0 where a patch is zero; P is 0 there anyway) exactly 0 there.  'valid'
  blocks are compact with the row stride of their own grid; the flat column pass leaves finite garbage in
  the columns beyond the next grid's width, which the row pass drops while compacting.
* The grids, patch offsets, fixed-layer rules and the normalisers ``N_h`` (which depend on one image only) come
  from :mod:`ntk_sketch.kernels.cntk_geometry`, shared with CNTKSketch: ``N_h`` is computed once per image by
  the same two passes as here (so it follows the summation order of the diagonal ``S_h[p, p](x, x)`` of the
  cross recursion), and the pair loop reads ``sqrt(N)`` and ``1/sqrt(N)`` (0 for a zero patch, so zero patches
  contribute 0, never NaN).
* The arc-cosine functions come from :mod:`ntk_sketch.kernels.arccos` (branch-free, vectorised by LLVM).
* Numerics at ``r = +-1``: k0 is not Lipschitz there (``k0(1 - d) ~ 1 - sqrt(2 d) / pi``), so a correlation
  that is 1 mathematically but comes out a few ulps below 1 would move k0 by ~1e-8.  The correlation is
  therefore clipped to [-1, 1] and rounded to +-1 when it is within ``arccos.COSINE_SNAP = 2^-46`` (~1.4e-14, far above the
  rounding error of the recursion and far below any genuine angle) of +-1.  This makes the recursion of an
  image with itself reproduce ``N_h`` on the pixel diagonal, as docs/math.md §3 requires; the slow reference
  ``tests/naive.py`` does the same.
* Pairs are independent and each is computed by one thread in a fixed order, so the result does not depend on
  the number of threads.  ``X2=None`` computes one triangle of the Gram matrix and mirrors it.

For later sketches the recursion also accepts polynomials ``sum_l c_l r^l`` in place of k0 and/or k1
(``k0_coefficients`` / ``k1_coefficients``); the normalisers ``N_h`` stay the exact ones (they depend on the
image only, and :func:`ntk_sketch.kernels.cntk_geometry.cntk_normalisers` returns them).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._validation import (
    check_images,
    check_positive_int,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_kernel,
    unscale_rows,
    warn_if_channels_first,
)
from .arccos import _k0, _k0_k1, _k1
from .arccos import _snap_cosine as _snap
from .cntk_geometry import (_image_normalisers, check_architecture, check_fixed_layers, cntk_grid_sizes,
                            cntk_normalisers, grid_geometry)

__all__ = ["cntk_kernel", "cntk_normalisers", "cntk_grid_sizes"]  # the last two: from cntk_geometry

@numba.njit(cache=True, inline="always")
def _horner(c, a):
    s = c[c.size - 1]
    for k in range(c.size - 2, -1, -1):
        s = s * a + c[k]
    return s


@numba.njit(cache=True)
def _row_stride(dims, q):
    """Row stride ws of the pair layout: W0 + q - 1 for 'same' (c = (q-1)//2 zero columns before the W0 pixel
    columns, q - 1 - c after), W0 for 'valid' (compact).  'same' is recognised by a grid that keeps its width;
    with q = 1 the two layouts coincide."""
    w0 = dims[0, 1]
    return w0 + q - 1 if dims[1, 1] == w0 else w0


@numba.njit(cache=True)
def _column_pass(g, ws, out, o, rows_out, q):
    """Column pass of one block: out[o + k] = sum_{b<q} g[k + b*(ws+1)], k < rows_out*ws.

    Blocks have row stride ``ws``; shifting both column indices j, j' by the same b is a flat shift by
    b*(ws+1), so this is q long vectorised loops.  For 'valid', ``g`` is the block itself; for 'same', it is
    the block placed after c zero rows and c zero entries (c = (q-1)//2), with c zero columns before and
    q - 1 - c after every row (ws = W0 + q - 1) and q - 1 - c zero rows after it, so that the zero padding needs
    no bounds checks.  Output
    columns that are not pixels of the next layer come out as finite garbage that _emit drops ('valid') or
    the next layer masks with zero normalisers ('same' padding columns).
    """
    n = rows_out * ws
    # Local views (not index arithmetic on the whole arrays) let LLVM prove the loops alias-free and vectorise.
    dst = out[o:o + n]
    src = g[:n]
    for k in range(n):
        dst[k] = src[k]
    for b in range(1, q):
        sh = b * (ws + 1)
        src = g[sh:sh + n]
        for k in range(n):
            dst[k] += src[k]


@numba.njit(cache=True)
def _emit(ring, out, o_start, o, i_lo, i_hi, q, off, nb, rows, in_stride, out_stride, scale, tmp):
    """Output block = scale * sum_a ring block of diagonal position o + a (a = off..off+q-1), first ``rows`` rows.

    ``ring`` holds the column-passed blocks of the last q positions along the current block diagonal, slot
    (position mod q), with row stride ``in_stride``; the output block at ``out[o_start:]`` gets row stride
    ``out_stride`` (<= in_stride: 'valid' layers compact their rows as they shrink, through the scratch block
    ``tmp`` so that the sum itself stays flat).  Positions outside [i_lo, i_hi) are zero padding.  Order: a
    ascending, then the scale (as in cntk_geometry._patch_sum).
    """
    flat = in_stride == out_stride
    length = rows * in_stride
    acc = out[o_start:o_start + length] if flat else tmp[:length]
    first = True
    for aa in range(q):
        pos = o + aa + off
        if pos < i_lo or pos >= i_hi:
            continue
        base = (pos % q) * nb
        src = ring[base:base + length]
        if first:
            for k in range(length):
                acc[k] = src[k]
        else:
            for k in range(length):
                acc[k] += src[k]
        first = False
    if first:
        for k in range(length):
            acc[k] = 0.0
    if flat:
        if scale != 1.0:
            for k in range(length):
                acc[k] *= scale
    else:
        for j in range(rows):
            src = acc[j * in_stride:j * in_stride + out_stride]
            drow = out[o_start + j * out_stride:o_start + (j + 1) * out_stride]
            if scale != 1.0:
                for k in range(out_stride):
                    drow[k] = src[k] * scale
            else:
                for k in range(out_stride):
                    drow[k] = src[k]


@serialised
@numba.njit(cache=True, parallel=True)
def _all_normalisers(X, dims, q, off, n_layers):
    """sqrt(N_h) and 1/sqrt(N_h) (0 where N = 0) of every image in the pair layout, h = 0..L-1.

    N_h comes from :func:`ntk_sketch.kernels.cntk_geometry._image_normalisers` (the summation order of the
    cross recursion on its pixel diagonal); pixel (i, j) of grid h + 1 is stored at i*ws + coff + j (the row
    stride and column offset of the pair layout, see _cntk_pair); entries that are not pixels stay 0.
    """
    n, h0, w0, _ = X.shape
    coff = -off
    ws = _row_stride(dims, q)
    sqrt_n = np.zeros((n, n_layers, h0 * ws))
    rsqrt_n = np.zeros((n, n_layers, h0 * ws))
    for a in prange(n):
        norms = np.zeros((n_layers, h0 * w0))
        _image_normalisers(X[a], dims, q, off, norms, np.empty(h0 * w0), np.empty(h0 * w0))
        for h in range(n_layers):
            ho, wo = dims[h + 1, 0], dims[h + 1, 1]
            for i in range(ho):
                for j in range(wo):
                    v = norms[h, i * wo + j]
                    sqrt_n[a, h, i * ws + coff + j] = np.sqrt(v)
                    rsqrt_n[a, h, i * ws + coff + j] = 1.0 / np.sqrt(v) if v > 0.0 else 0.0
    return sqrt_n, rsqrt_n


@numba.njit(cache=True)
def _block_exact(s, pm, g, m, xr, xs, yr, ys, p_zero):
    """One block (fixed rows i, i') of layer h, as flat arrays: G = sqrt(N N') k1(r), M = P Gdot + G.

    ``xr``/``xs`` hold 1/sqrt(N)/sqrt(N) of x's pixel (i, j) repeated along j', ``yr``/``ys`` those of y's
    pixel (i', j') tiled along j, so that this is one long branch-free loop that LLVM vectorises.  Gdot is
    taken as 0 where a patch is zero (N = 0): P vanishes there anyway, and it zeroes the padding columns.
    """
    if p_zero:  # P_0 = 0 (fixed first layer): M = G
        for k in range(s.size):
            a = _snap(s[k] * (xr[k] * yr[k]))
            gv = _k1(a) * (xs[k] * ys[k])
            g[k] = gv
            m[k] = gv
    else:
        for k in range(s.size):
            a = _snap(s[k] * (xr[k] * yr[k]))
            kd, k1 = _k0_k1(a)
            nn = xs[k] * ys[k]
            gv = k1 * nn
            g[k] = gv
            m[k] = (pm[k] * kd if nn > 0.0 else 0.0) + gv


@numba.njit(cache=True)
def _block_poly(s, pm, g, m, xr, xs, yr, ys, p_zero, c0, c1, use0, use1):
    """As _block_exact with polynomials in place of k0 (use0) and/or k1 (use1)."""
    for k in range(s.size):
        a = _snap(s[k] * (xr[k] * yr[k]))
        kd = _horner(c0, a) if use0 else _k0(a)
        k1 = _horner(c1, a) if use1 else _k1(a)
        nn = xs[k] * ys[k]
        gv = k1 * nn
        g[k] = gv
        m[k] = gv if (p_zero or nn == 0.0) else pm[k] * kd + gv


@numba.njit(cache=True)
def _block_final_exact(s, pm, m, xr, xs, yr, ys, p_zero, add_g):
    """Last layer: m = P_{L-1} Gdot_L (+ G_L) on one block (summed by the caller); 0 where N N' = 0."""
    if add_g:
        if p_zero:
            for k in range(s.size):
                a = _snap(s[k] * (xr[k] * yr[k]))
                m[k] = _k1(a) * (xs[k] * ys[k])
        else:
            for k in range(s.size):
                a = _snap(s[k] * (xr[k] * yr[k]))
                kd, k1 = _k0_k1(a)
                nn = xs[k] * ys[k]
                m[k] = (pm[k] * kd if nn > 0.0 else 0.0) + k1 * nn
    else:
        for k in range(s.size):
            a = _snap(s[k] * (xr[k] * yr[k]))
            m[k] = pm[k] * _k0(a) if xs[k] * ys[k] > 0.0 else 0.0


@numba.njit(cache=True)
def _block_final_poly(s, pm, m, xr, xs, yr, ys, p_zero, add_g, c0, c1, use0, use1):
    for k in range(s.size):
        a = _snap(s[k] * (xr[k] * yr[k]))
        nn = xs[k] * ys[k]
        v = 0.0
        if not p_zero and nn > 0.0:
            v = pm[k] * (_horner(c0, a) if use0 else _k0(a))
        if add_g:
            v += (_horner(c1, a) if use1 else _k1(a)) * nn
        m[k] = v


@numba.njit(cache=True)
def _sum_fixed(v, n):
    """Sum of v[:n] with eight interleaved partial sums (vectorisable, and always the same order)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n8 = n - n % 8
    for k in range(0, n8, 8):
        s0 += v[k]
        s1 += v[k + 1]
        s2 += v[k + 2]
        s3 += v[k + 3]
        s4 += v[k + 4]
        s5 += v[k + 5]
        s6 += v[k + 6]
        s7 += v[k + 7]
    for k in range(n8, n):
        s0 += v[k]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@numba.njit(cache=True)
def _expand_normalisers(sqx, rsx, sqy, rsy, hh, wh, st, ws, coff, xs, xr, ys, yr):
    """Per-row copies of one layer's normalisers for the flat block loops (see _block_exact).

    Blocks of this layer have ``wh`` rows of stride ``st``.  Row i of x: entry j*st + jj holds x's pixel
    (i, j) value where jj - coff is a pixel column (< wh), 0 elsewhere; row i' of y: entry j*st + jj holds y's
    value at (i', jj - coff) (0 off the grid).  The normalisers themselves are stored with stride ``ws``.  The
    zeros make G, and through the mask on Gdot also M, exactly 0 on padding columns.
    """
    bl = wh * st
    for i in range(hh):
        sqy_row = sqy[i * ws:i * ws + st]
        rsy_row = rsy[i * ws:i * ws + st]
        for j in range(wh):
            o = i * bl + j * st
            vs = sqx[i * ws + coff + j]
            vr = rsx[i * ws + coff + j]
            xs_row = xs[o:o + st]
            xr_row = xr[o:o + st]
            ys_row = ys[o:o + st]
            yr_row = yr[o:o + st]
            for jj in range(st):
                inside = jj >= coff and jj < coff + wh
                xs_row[jj] = vs if inside else 0.0
                xr_row[jj] = vr if inside else 0.0
                ys_row[jj] = sqy_row[jj]
                yr_row[jj] = rsy_row[jj]


@numba.njit(cache=True)
def _cntk_pair(xt, yt, sqx, rsx, sqy, rsy, dims, q, off, inv_q2, fix_first, fix_last,
               c0, c1, use0, use1, s, pm, r1, r2, g, m, xs, xr, ys, yr, xe, ye, tmp):
    """CNTK-GAP of one pair of images (docs/math.md §3), with caller-provided workspaces.

    ``xt``, ``yt``: the images channel-major (C, H0, W0).  Every 4-d array (S_h, P_h; the ring buffers r1, r2
    of column-passed blocks) is laid out as blocks (i, i') at (i*H0 + i')*W0*ws, entry (j, j') of a block at
    j*st + coff + j': for 'same', row stride st = ws = W0 + q - 1 and column offset coff = c (c = (q-1)//2
    zero columns before the pixels and q - 1 - c after, masked by zero normalisers); for 'valid', ws = W0,
    coff = 0 and st = the width of the layer's grid (compact blocks; the ring keeps the stride of the layer it
    came from).  So every inner loop is long, flat and branch-free.  ``g``, ``m``: one block of G_h and of
    P_{h-1} Gdot_h + G_h, placed at ``goff`` inside zero margins ('same'); ``xs``, ``xr``, ``ys``, ``yr``:
    the current layer's expanded normalisers; ``xe``, ``ye``: the same expansion of the pixels.
    """
    poly = use0 or use1
    coff = -off
    n_layers = sqx.shape[0]
    nc, h0, w0 = xt.shape
    ws = _row_stride(dims, q)
    nb = w0 * ws
    goff = coff * ws + coff  # = -off (ws + 1): undoes the flat shift of the first patch offset (off, off)
    h1, w1 = dims[1, 0], dims[1, 1]
    # The patch sum's row pass adds column-passed blocks (i+a, i'+a): along each block diagonal d = i' - i.
    # So every layer sweeps the diagonals, keeps the last q column-passed blocks in the small ring buffers
    # r1, r2, and writes output block (o, o+d) as soon as its last source is done.  Output (o, o+d) only
    # needs S_{h-1}, P_{h-1} at positions <= o + q - 1 + off, all read already, so S_h and P_h overwrite
    # S_{h-1} and P_{h-1} in place and no n-independent P^2 temporary is needed beyond s and pm.
    a_max = q - 1 + off  # last source offset
    same = ws > w0 or q == 1  # 'same' layout (q = 1: both layouts coincide)
    st1 = ws if same else w1  # row stride of the blocks of S_0 ('valid' blocks are compacted as they shrink)
    # ---- input layer: G0 block by block (no 1/q^2 on this layer), as flat products of x's pixel (i, j)
    # repeated along a block row (xe) and y's row i' tiled down the block (ye, zero on padding columns).
    for ch in range(nc):
        for i in range(h0):
            for j in range(w0):
                xv = xt[ch, i, j]
                xrow = xe[ch, i, j * ws:(j + 1) * ws]
                yrow = ye[ch, i, j * ws:(j + 1) * ws]
                ysrc = yt[ch, i]
                for jj in range(ws):
                    xrow[jj] = xv
                    jp = jj - coff
                    yrow[jj] = ysrc[jp] if jp >= 0 and jp < w0 else 0.0
    for d in range(-(h0 - 1), h0):
        i_lo, i_hi = max(0, -d), min(h0, h0 - d)
        o_lo, o_hi = max(0, -d), min(h1, h1 - d)
        if o_hi <= o_lo:
            continue
        for i in range(i_lo, i_hi):
            ip = i + d
            gb = g[goff:goff + nb]
            xb = xe[0, i]
            yb = ye[0, ip]
            for k in range(nb):
                gb[k] = xb[k] * yb[k]
            for ch in range(1, nc):
                xb = xe[ch, i]
                yb = ye[ch, ip]
                for k in range(nb):
                    gb[k] += xb[k] * yb[k]
            _column_pass(g, ws, r1, (i % q) * nb, w1, q)
            o = i - a_max
            if o >= o_lo and o < o_hi:
                _emit(r1, s, (o * h0 + o + d) * nb, o, i_lo, i_hi, q, off, nb, w1, ws, st1, 1.0, tmp)
        for o in range(max(o_lo, i_hi - a_max), o_hi):
            _emit(r1, s, (o * h0 + o + d) * nb, o, i_lo, i_hi, q, off, nb, w1, ws, st1, 1.0, tmp)
    p_zero = fix_first
    if not fix_first:
        for i in range(h1):
            for ip in range(h1):
                o = (i * h0 + ip) * nb
                pm[o:o + w1 * st1] = s[o:o + w1 * st1]
    # ---- layers h = 1..L: expanded normalisers N_{h-1}; hidden layers h < L: S_h and P_h by patch sums.
    for h in range(1, n_layers + 1):
        hh, wh = dims[h, 0], dims[h, 1]
        st = ws if same else wh  # row stride of this layer's blocks
        ln = wh * st
        _expand_normalisers(sqx[h - 1], rsx[h - 1], sqy[h - 1], rsy[h - 1], hh, wh, st, ws, coff, xs, xr, ys, yr)
        if h == n_layers:
            break
        hn, wn = dims[h + 1, 0], dims[h + 1, 1]
        stn = ws if same else wn
        gb = g[goff:goff + ln]
        mb = m[goff:goff + ln]
        for d in range(-(hh - 1), hh):
            i_lo, i_hi = max(0, -d), min(hh, hh - d)
            o_lo, o_hi = max(0, -d), min(hn, hn - d)
            if o_hi <= o_lo:
                continue  # ('valid') no output block on this diagonal needs it
            for i in range(i_lo, i_hi):
                ip = i + d
                o = (i * h0 + ip) * nb
                if poly:
                    _block_poly(s[o:o + ln], pm[o:o + ln], gb, mb, xr[i * ln:(i + 1) * ln],
                                xs[i * ln:(i + 1) * ln], yr[ip * ln:(ip + 1) * ln], ys[ip * ln:(ip + 1) * ln],
                                p_zero, c0[h - 1], c1[h - 1], use0, use1)
                else:
                    _block_exact(s[o:o + ln], pm[o:o + ln], gb, mb, xr[i * ln:(i + 1) * ln],
                                 xs[i * ln:(i + 1) * ln], yr[ip * ln:(ip + 1) * ln], ys[ip * ln:(ip + 1) * ln],
                                 p_zero)
                _column_pass(g, st, r1, (i % q) * nb, wn, q)
                _column_pass(m, st, r2, (i % q) * nb, wn, q)
                oo = i - a_max
                if oo >= o_lo and oo < o_hi:
                    ob = (oo * h0 + oo + d) * nb
                    _emit(r1, s, ob, oo, i_lo, i_hi, q, off, nb, wn, st, stn, inv_q2, tmp)
                    _emit(r2, pm, ob, oo, i_lo, i_hi, q, off, nb, wn, st, stn, inv_q2, tmp)
            for oo in range(max(o_lo, i_hi - a_max), o_hi):
                ob = (oo * h0 + oo + d) * nb
                _emit(r1, s, ob, oo, i_lo, i_hi, q, off, nb, wn, st, stn, inv_q2, tmp)
                _emit(r2, pm, ob, oo, i_lo, i_hi, q, off, nb, wn, st, stn, inv_q2, tmp)
        p_zero = False
    # ---- last layer: GAP of P_{L-1} Gdot_L (+ G_L).
    hl, wl = dims[n_layers, 0], dims[n_layers, 1]
    ln = wl * (ws if same else wl)
    total = 0.0
    add_g = not fix_last
    mb = m[goff:goff + ln]  # inside the margins, which must stay zero for the next pair
    for i in range(hl):
        for ip in range(hl):
            o = (i * h0 + ip) * nb
            if poly:
                _block_final_poly(s[o:o + ln], pm[o:o + ln], mb, xr[i * ln:(i + 1) * ln],
                                  xs[i * ln:(i + 1) * ln], yr[ip * ln:(ip + 1) * ln], ys[ip * ln:(ip + 1) * ln],
                                  p_zero, add_g, c0[n_layers - 1], c1[n_layers - 1], use0, use1)
            else:
                _block_final_exact(s[o:o + ln], pm[o:o + ln], mb, xr[i * ln:(i + 1) * ln],
                                   xs[i * ln:(i + 1) * ln], yr[ip * ln:(ip + 1) * ln], ys[ip * ln:(ip + 1) * ln],
                                   p_zero, add_g)
            total += _sum_fixed(mb, ln)
    n_grid = hl * wl
    return total * inv_q2 / (float(n_grid) * float(n_grid))


@serialised
@numba.njit(cache=True, parallel=True)
def _cntk_pairs(X1t, X2t, sq1, rs1, sq2, rs2, symmetric, dims, q, off, inv_q2, fix_first, fix_last,
                c0, c1, use0, use1, n_chunks, K):
    """Fill K[a, b] = CNTK(X1[a], X2[b]) in parallel over chunks of pairs.

    The pairs are numbered row by row, k -> (a, b): all of them, or for ``symmetric`` (X2 is X1) only the upper
    triangle b >= a, whose values are mirrored.  No list of pairs is materialised.  Images come channel-major
    (n, C, H, W).  Each chunk allocates its O(P^2) workspaces once (zeroed: the margins of ``g``/``m`` must stay
    0, and the garbage the column pass reads must be finite from the start); a pair's value does not depend
    on the chunking.
    """
    n1, n2 = K.shape
    n_pairs = n1 * (n1 + 1) // 2 if symmetric else n1 * n2
    h0, w0 = dims[0, 0], dims[0, 1]
    ws = _row_stride(dims, q)
    size = h0 * h0 * w0 * ws
    # block + zero margins ('same': c rows before, q - 1 - c after, W0 + q - 1 = ws rows in all) + slack read by
    # the last shifts ('valid': ws = W0 rows)
    size_g = ws * ws + q + 2
    for c in prange(n_chunks):
        start = (c * n_pairs) // n_chunks
        stop = ((c + 1) * n_pairs) // n_chunks
        s = np.zeros(size)
        pm = np.zeros(size)
        r1 = np.zeros(q * w0 * ws)  # ring buffers of q column-passed blocks
        r2 = np.zeros(q * w0 * ws)
        g = np.zeros(size_g)
        m = np.zeros(size_g)
        xs = np.zeros(h0 * w0 * ws)
        xr = np.zeros(h0 * w0 * ws)
        ys = np.zeros(h0 * w0 * ws)
        yr = np.zeros(h0 * w0 * ws)
        xe = np.zeros((X1t.shape[1], h0, w0 * ws))
        ye = np.zeros((X1t.shape[1], h0, w0 * ws))
        tmp = np.zeros(w0 * ws)  # scratch block for compacting 'valid' rows
        # the pair numbered `start`
        if symmetric:
            a = 0
            rest = start
            while rest >= n1 - a:
                rest -= n1 - a
                a += 1
            b = a + rest
        else:
            a = start // n2
            b = start % n2
        for _ in range(start, stop):
            v = _cntk_pair(X1t[a], X2t[b], sq1[a], rs1[a], sq2[b], rs2[b], dims, q, off, inv_q2,
                           fix_first, fix_last, c0, c1, use0, use1, s, pm, r1, r2, g, m, xs, xr, ys, yr, xe, ye, tmp)
            K[a, b] = v
            if symmetric:
                K[b, a] = v
            b += 1
            if b == n2:
                a += 1
                b = a if symmetric else 0


# ------------------------------------------------------------------------------------------------ Python API
def _check_coefficients(c, name, depth):
    """Coefficients as a (depth, p + 1) float64 array, one row per layer (a 1-d array is used by every layer)."""
    if c is None:
        return np.zeros((depth, 1)), False
    try:
        arr = np.asarray(c)
    except ValueError:  # ragged per-layer lists
        arr = np.asarray([0], dtype=object)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array of polynomial coefficients c_0, c_1, ... (1-d, or one "
                         f"row per layer of equal length: zero-pad lower degrees); got dtype {arr.dtype}.")
    if arr.ndim == 1 and arr.size > 0:
        arr = np.broadcast_to(arr, (depth, arr.size))
    if arr.ndim != 2 or arr.shape[0] != depth or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array (c_0, ..., c_p), used by every layer, or a "
                         f"(depth, p + 1) = ({depth}, p + 1) array with one row per layer; got shape {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass finite polynomial coefficients.")
    return arr, True


def cntk_kernel(X1, X2=None, *, depth, filter_size=3, padding="valid", fix_first=True, fix_last=True,
                k0_coefficients=None, k1_coefficients=None):
    """Exact CNTK-GAP kernel matrix of a deep convolutional ReLU network (docs/math.md §3).

    Parameters
    ----------
    X1 : array_like, shape (n1, H, W, C)
        Images (height, width, channels last).  float32 is accepted; the computation is in float64.
    X2 : array_like, shape (n2, H, W, C), optional
        Second set of images with the same H, W, C.  ``None`` computes the symmetric Gram matrix of ``X1``
        (one triangle, mirrored).
    depth : int
        Number L >= 1 of convolutional ReLU layers.
    filter_size : int
        Side q >= 1 of the square filters.
    padding : {'valid', 'same'}
        'valid' (the paper's choice, default): no padding, each layer shrinks each side by q - 1, so the
        images must be at least ``depth (q - 1) + 1`` pixels on each side.  'same': zero padding of
        (q - 1)//2 before and q//2 after (symmetric for odd q; for even q the asymmetric 'SAME' alignment of
        TensorFlow / JAX and neural-tangents), the grid keeps its size and the 1/q^2 stays at the border.
    fix_first, fix_last : bool
        Whether the first / last layer is fixed (not trained): ``P_0 = 0`` instead of ``S_0``, and the final
        average is over ``P_{L-1} Gdot_L`` instead of ``P_{L-1} Gdot_L + G_L``.  Both True (default) is the
        CNTK-GAP of Arora et al. (2019) used in Zandieh et al. (2021); both True with ``depth=1`` leaves no
        trainable layer (the kernel is identically zero) and is rejected.
    k0_coefficients, k1_coefficients : array_like, optional
        Polynomial coefficients ``c_0..c_p`` (``sum_l c_l r^l``) used in place of k0 / k1 in the recursion
        (e.g. :func:`ntk_sketch.kernels.arccos.taylor_coefficients_k0`): a 1-d array used by every layer, or a
        (depth, p + 1) array whose row h - 1 is layer h's polynomial (CNTKSketch's per-layer ``poly_k0_`` /
        ``poly_k1_``); ``None`` uses the exact arc-cosine function.
        The normalisers ``N_h`` stay exact; correlations are clipped to [-1, 1].

    Returns
    -------
    numpy.ndarray, shape (n1, n2)
        float64 kernel matrix.

    Notes
    -----
    With both flags False this is the NTK of neural-tangents' ``Conv(W_std=q sqrt(C)), [Relu,
    Conv(W_std=sqrt(2))] x (L-1), Relu, GlobalAvgPool, Dense(W_std=sqrt(2)/q)`` (no bias, 'ntk'
    parameterisation, padding as here); ``padding='same'``, ``q=3`` with both True is the CNTK-GAP of Arora et
    al. (2019) with their depth L + 1 (docs/math.md §3).  Cost O(L q P^2) per pair for P pixels, O(P^2) memory
    per thread.  For constant images (``padding='valid'``) the kernel reduces to the fully connected NTK
    recursion of the pixel vectors (docs/math.md §2), which the tests use as a closed form.
    """
    depth, q = check_architecture(depth, filter_size, padding)
    fix_first, fix_last = check_fixed_layers(depth, fix_first, fix_last)
    c0, use0 = _check_coefficients(k0_coefficients, "k0_coefficients", depth)
    c1, use1 = _check_coefficients(k1_coefficients, "k1_coefficients", depth)

    X1 = check_images(X1, "X1", dtype=np.float64, allow_empty=True)
    warn_if_channels_first(X1.shape, "X1", padding)
    symmetric = X2 is None
    if symmetric:
        X2 = X1
    else:
        X2 = check_images(X2, "X2", dtype=np.float64, allow_empty=True)
        if X2.shape[1:] != X1.shape[1:]:
            raise ValueError(f"X1 and X2 must have the same image shape (H, W, C); got {X1.shape[1:]} and "
                             f"{X2.shape[1:]}. Resize or pad the images to a common shape.")
    n1, n2 = X1.shape[0], X2.shape[0]
    dims, off = grid_geometry(X1.shape[1], X1.shape[2], depth, q, padding)
    inv_q2 = 1.0 / float(q * q)
    if n1 == 0 or n2 == 0:
        return np.empty((n1, n2))
    # The kernel is homogeneous of degree 1 in each image: images with entries beyond ~2^+-256 are rescaled by
    # powers of two and the kernel scaled back exactly (_validation.row_scale_exponents).
    e1 = row_scale_exponents(X1)
    X1 = scale_rows(X1, e1)
    e2 = e1 if symmetric else row_scale_exponents(X2)
    X2 = X1 if symmetric else scale_rows(X2, e2)

    sq1, rs1 = _all_normalisers(X1, dims, q, off, depth)
    if symmetric:
        sq2, rs2 = sq1, rs1
        n_pairs = n1 * (n1 + 1) // 2
    else:
        sq2, rs2 = _all_normalisers(X2, dims, q, off, depth)
        n_pairs = n1 * n2
    n_chunks = max(1, min(n_pairs, numba.get_num_threads()))
    X1t = np.ascontiguousarray(X1.transpose(0, 3, 1, 2))
    X2t = X1t if symmetric else np.ascontiguousarray(X2.transpose(0, 3, 1, 2))
    K = np.empty((n1, n2))
    _cntk_pairs(X1t, X2t, sq1, rs1, sq2, rs2, symmetric, dims, q, off, inv_q2, fix_first, fix_last,
                c0, c1, use0, use1, n_chunks, K)
    return unscale_kernel(K, e1, e2, "X1" if symmetric else "X1 or X2")
