"""Exact convolutional NTK with global average pooling (CNTK-GAP) of a deep ReLU network.

Spec section 3; Arora, Du, Hu, Li, Salakhutdinov, Wang, *On Exact Computation of an Infinitely Wide Neural Net*,
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

How it is computed (cost O(L q P^2) per pair of images, P pixels; memory O(P^2) per worker, never n1 n2 P^2):

* The four pixel indices are stored as ``[i, i', j, j']`` (rows of x and y first), so a patch sum, a joint shift
  of both pixels by the same offset ``u = (a, b)``, is separable: a column pass ``sum_b`` inside each contiguous
  ``W x W`` block ``(i, i')``, done while the block is produced, then a row pass ``sum_a`` that adds whole
  contiguous blocks.  That is ``2q`` additions per entry instead of ``q^2``.
* The normalisers ``N_h`` depend on one image only: they are computed once per image, by the same two passes
  (so they follow the same summation order as the diagonal ``S_h[p, p](x, x)`` of the cross recursion), and the
  pair loop reads ``sqrt(N)`` and ``1/sqrt(N)`` (0 for a zero patch, so zero patches contribute 0, never NaN).
* The arc-cosine functions come from :mod:`ntk_sketch.arccos` (branch-free, vectorised by LLVM).
* Numerics at ``r = +-1``: k0 is not Lipschitz there (``k0(1 - d) ~ 1 - sqrt(2 d) / pi``), so a correlation
  that is 1 mathematically but comes out a few ulps below 1 would move k0 by ~1e-8.  The correlation is
  therefore clipped to [-1, 1] and rounded to +-1 when it is within ``2^-46`` (~1.4e-14, far above the
  rounding error of the recursion and far below any genuine angle) of +-1.  This makes the recursion of an
  image with itself reproduce ``N_h`` on the pixel diagonal, as the spec requires; the slow reference
  ``tests/naive.py`` does the same.
* Pairs are independent and each is computed by one thread in a fixed order, so the result does not depend on
  the number of threads.  ``X2=None`` computes one triangle of the Gram matrix and mirrors it.

For later sketches the recursion also accepts polynomials ``sum_l c_l r^l`` in place of k0 and/or k1
(``k0_coefficients`` / ``k1_coefficients``); the normalisers ``N_h`` stay the exact ones (they depend on the
image only).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._validation import check_images, check_positive_int
from .arccos import _k0, _k0_k1, _k1

__all__ = ["cntk_kernel", "cntk_grid_sizes"]

# Correlations within this distance of +-1 are rounded to +-1 (see the module docstring).
_SNAP = 2.0 ** -46


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True, inline="always")
def _snap(a):
    """Clip a correlation to [-1, 1] and round it to +-1 within _SNAP (branch-free selects)."""
    a = min(max(a, -1.0), 1.0)
    a = 1.0 if a > 1.0 - _SNAP else a
    return -1.0 if a < -1.0 + _SNAP else a


@numba.njit(cache=True, inline="always")
def _horner(c, a):
    s = c[c.size - 1]
    for k in range(c.size - 2, -1, -1):
        s = s * a + c[k]
    return s


@numba.njit(cache=True)
def _column_pass(blk, w_in, out, out_start, w_out, q, off):
    """out[out_start + j*w_out + j'] = sum_b blk[(j+b)*w_in + (j'+b)] over offsets b = off..off+q-1.

    Terms with j+b or j'+b outside [0, w_in) are zero (zero padding for 'same'; never happens for 'valid').
    """
    for j in range(w_out):
        o = out_start + j * w_out
        for jp in range(w_out):
            out[o + jp] = 0.0
        for bb in range(q):
            b = bb + off
            jj = j + b
            if jj < 0 or jj >= w_in:
                continue
            lo = max(0, -b)
            hi = min(w_out, w_in - b)
            src = jj * w_in + b
            for jp in range(lo, hi):
                out[o + jp] += blk[src + jp]


@numba.njit(cache=True)
def _row_pass(t, h_in, out, h_out, block, q, off, scale):
    """out[(i*h_out + i')*block : +block] = scale * sum_a t[((i+a)*h_in + (i'+a))*block : +block].

    ``t`` holds h_in x h_in blocks of ``block`` contiguous entries (the column-passed layer), ``out`` receives
    h_out x h_out blocks.  Out-of-image rows count as zero ('same' padding).
    """
    for i in range(h_out):
        for ip in range(h_out):
            o = (i * h_out + ip) * block
            for k in range(block):
                out[o + k] = 0.0
            for aa in range(q):
                a = aa + off
                ii = i + a
                iip = ip + a
                if ii < 0 or ii >= h_in or iip < 0 or iip >= h_in:
                    continue
                src = (ii * h_in + iip) * block
                for k in range(block):
                    out[o + k] += t[src + k]
            if scale != 1.0:
                for k in range(block):
                    out[o + k] *= scale


@numba.njit(cache=True)
def _image_normalisers(x, dims, q, off, inv_q2, sqrt_n, rsqrt_n, col, cur, nxt):
    """N_h of one image for h = 0..L-1 (on grid h+1), stored as sqrt(N) and 1/sqrt(N) (0 where N = 0).

    Uses the same column-then-row passes, in the same order, as the cross recursion restricted to its pixel
    diagonal, so that N_h equals S_h[p, p](x, x) up to the rounding that ``_snap`` absorbs.
    """
    h0, w0, c = x.shape
    for i in range(h0):
        for j in range(w0):
            s = 0.0
            for k in range(c):
                s += x[i, j, k] * x[i, j, k]
            cur[i * w0 + j] = s
    n_layers = sqrt_n.shape[0]
    for h in range(n_layers):
        hi, wi = dims[h, 0], dims[h, 1]
        ho, wo = dims[h + 1, 0], dims[h + 1, 1]
        scale = 1.0 if h == 0 else inv_q2
        for i in range(hi):
            for j in range(wo):
                s = 0.0
                for bb in range(q):
                    jj = j + bb + off
                    if jj < 0 or jj >= wi:
                        continue
                    s += cur[i * wi + jj]
                col[i * wo + j] = s
        for i in range(ho):
            for j in range(wo):
                s = 0.0
                for aa in range(q):
                    ii = i + aa + off
                    if ii < 0 or ii >= hi:
                        continue
                    s += col[ii * wo + j]
                if scale != 1.0:
                    s *= scale
                nxt[i * wo + j] = s
        for p in range(ho * wo):
            v = nxt[p]
            cur[p] = v
            sqrt_n[h, p] = np.sqrt(v)
            rsqrt_n[h, p] = 1.0 / np.sqrt(v) if v > 0.0 else 0.0


@numba.njit(cache=True, parallel=True)
def _all_normalisers(X, dims, q, off, inv_q2, n_layers, p1):
    n, h0, w0, _ = X.shape
    sqrt_n = np.zeros((n, n_layers, p1))
    rsqrt_n = np.zeros((n, n_layers, p1))
    for a in prange(n):
        col = np.empty(h0 * w0)
        cur = np.empty(h0 * w0)
        nxt = np.empty(h0 * w0)
        _image_normalisers(X[a], dims, q, off, inv_q2, sqrt_n[a], rsqrt_n[a], col, cur, nxt)
    return sqrt_n, rsqrt_n


@numba.njit(cache=True)
def _row_exact(s, s0, pm, p0, p_zero, g, m, w, rx, sx, rsy, sy, y0):
    """One row (fixed i, i', j) of layer h: G = sqrt(N N') k1(r), M = P Gdot + G (exact arc-cosines)."""
    for jp in range(w):
        a = _snap(s[s0 + jp] * (rx * rsy[y0 + jp]))
        kd, k = _k0_k1(a)
        gv = k * (sx * sy[y0 + jp])
        g[jp] = gv
        if p_zero:
            m[jp] = gv
        else:
            m[jp] = pm[p0 + jp] * kd + gv


@numba.njit(cache=True)
def _row_poly(s, s0, pm, p0, p_zero, g, m, w, rx, sx, rsy, sy, y0, c0, c1, use0, use1):
    """As _row_exact with polynomials in place of k0 (use0) and/or k1 (use1)."""
    for jp in range(w):
        a = _snap(s[s0 + jp] * (rx * rsy[y0 + jp]))
        kd = _horner(c0, a) if use0 else _k0(a)
        k = _horner(c1, a) if use1 else _k1(a)
        gv = k * (sx * sy[y0 + jp])
        g[jp] = gv
        if p_zero:
            m[jp] = gv
        else:
            m[jp] = pm[p0 + jp] * kd + gv


@numba.njit(cache=True)
def _final_exact(s, s0, pm, p0, p_zero, w, rx, sx, rsy, sy, y0, add_g):
    acc = 0.0
    for jp in range(w):
        a = _snap(s[s0 + jp] * (rx * rsy[y0 + jp]))
        kd, k = _k0_k1(a)
        v = 0.0 if p_zero else pm[p0 + jp] * kd
        if add_g:
            v += k * (sx * sy[y0 + jp])
        acc += v
    return acc


@numba.njit(cache=True)
def _final_poly(s, s0, pm, p0, p_zero, w, rx, sx, rsy, sy, y0, add_g, c0, c1, use0, use1):
    acc = 0.0
    for jp in range(w):
        a = _snap(s[s0 + jp] * (rx * rsy[y0 + jp]))
        kd = _horner(c0, a) if use0 else _k0(a)
        v = 0.0 if p_zero else pm[p0 + jp] * kd
        if add_g:
            k = _horner(c1, a) if use1 else _k1(a)
            v += k * (sx * sy[y0 + jp])
        acc += v
    return acc


@numba.njit(cache=True)
def _cntk_pair(x, y, sqx, rsx, sqy, rsy, dims, q, off, inv_q2, fix_first, fix_last,
               c0, c1, use0, use1, s, pm, t1, t2, g, m):
    """CNTK-GAP of one pair of images (spec section 3), with caller-provided workspaces.

    Workspaces: ``s``, ``pm`` hold S_h and P_h on grid h+1 (layout [i, i', j, j']); ``t1``, ``t2`` the
    column-passed blocks; ``g``, ``m`` one W x W block of G_h and P_{h-1} Gdot_h + G_h.
    """
    poly = use0 or use1
    n_layers = sqx.shape[0]
    h0, w0, nc = x.shape
    h1, w1 = dims[1, 0], dims[1, 1]
    # ---- input layer: G0 block by block, column pass into t1, row pass into s (no 1/q^2 on this layer).
    for i in range(h0):
        for ip in range(h0):
            for j in range(w0):
                for jp in range(w0):
                    v = 0.0
                    for k in range(nc):
                        v += x[i, j, k] * y[ip, jp, k]
                    g[j * w0 + jp] = v
            _column_pass(g, w0, t1, (i * h0 + ip) * w1 * w1, w1, q, off)
    _row_pass(t1, h0, s, h1, w1 * w1, q, off, 1.0)
    p_zero = fix_first
    if not fix_first:
        for k in range(h1 * h1 * w1 * w1):
            pm[k] = s[k]
    # ---- hidden layers h = 1..L-1: G_h, Gdot_h from S_{h-1}; S_h and P_h by patch sums.
    for h in range(1, n_layers):
        hh, wh = dims[h, 0], dims[h, 1]
        hn, wn = dims[h + 1, 0], dims[h + 1, 1]
        nb = wn * wn
        for i in range(hh):
            for ip in range(hh):
                blk0 = (i * hh + ip) * wh * wh
                for j in range(wh):
                    px = i * wh + j
                    r0 = blk0 + j * wh
                    gr = g[j * wh:(j + 1) * wh]
                    mr = m[j * wh:(j + 1) * wh]
                    if poly:
                        _row_poly(s, r0, pm, r0, p_zero, gr, mr, wh, rsx[h - 1, px], sqx[h - 1, px],
                                  rsy[h - 1], sqy[h - 1], ip * wh, c0, c1, use0, use1)
                    else:
                        _row_exact(s, r0, pm, r0, p_zero, gr, mr, wh, rsx[h - 1, px], sqx[h - 1, px],
                                   rsy[h - 1], sqy[h - 1], ip * wh)
                _column_pass(g, wh, t1, (i * hh + ip) * nb, wn, q, off)
                _column_pass(m, wh, t2, (i * hh + ip) * nb, wn, q, off)
        _row_pass(t1, hh, s, hn, nb, q, off, inv_q2)
        _row_pass(t2, hh, pm, hn, nb, q, off, inv_q2)
        p_zero = False
    # ---- last layer: GAP of P_{L-1} Gdot_L (+ G_L).
    hl, wl = dims[n_layers, 0], dims[n_layers, 1]
    total = 0.0
    add_g = not fix_last
    for i in range(hl):
        for ip in range(hl):
            blk0 = (i * hl + ip) * wl * wl
            for j in range(wl):
                px = i * wl + j
                r0 = blk0 + j * wl
                if poly:
                    total += _final_poly(s, r0, pm, r0, p_zero, wl, rsx[n_layers - 1, px],
                                         sqx[n_layers - 1, px], rsy[n_layers - 1], sqy[n_layers - 1], ip * wl,
                                         add_g, c0, c1, use0, use1)
                else:
                    total += _final_exact(s, r0, pm, r0, p_zero, wl, rsx[n_layers - 1, px],
                                          sqx[n_layers - 1, px], rsy[n_layers - 1], sqy[n_layers - 1], ip * wl,
                                          add_g)
    n_grid = hl * wl
    return total * inv_q2 / (float(n_grid) * float(n_grid))


@numba.njit(cache=True, parallel=True)
def _cntk_pairs(X1, X2, sq1, rs1, sq2, rs2, pairs, dims, q, off, inv_q2, fix_first, fix_last,
                c0, c1, use0, use1, n_chunks, out):
    """Evaluate out[k] = CNTK(X1[pairs[k, 0]], X2[pairs[k, 1]]) for every k, in parallel over chunks of pairs.

    Each chunk allocates its O(P^2) workspaces once; a pair's value does not depend on the chunking.
    """
    n_pairs = pairs.shape[0]
    h0, w0 = dims[0, 0], dims[0, 1]
    h1, w1 = dims[1, 0], dims[1, 1]
    size_s = h1 * h1 * w1 * w1
    size_t = h0 * h0 * w1 * w1  # the largest column-passed layer is the input one
    for c in prange(n_chunks):
        start = (c * n_pairs) // n_chunks
        stop = ((c + 1) * n_pairs) // n_chunks
        s = np.empty(size_s)
        pm = np.empty(size_s)
        t1 = np.empty(size_t)
        t2 = np.empty(size_t)
        g = np.empty(w0 * w0)
        m = np.empty(w0 * w0)
        for k in range(start, stop):
            a = pairs[k, 0]
            b = pairs[k, 1]
            out[k] = _cntk_pair(X1[a], X2[b], sq1[a], rs1[a], sq2[b], rs2[b], dims, q, off, inv_q2,
                                fix_first, fix_last, c0, c1, use0, use1, s, pm, t1, t2, g, m)


# ------------------------------------------------------------------------------------------------ Python API
def cntk_grid_sizes(height, width, depth, filter_size, padding):
    """Grid sizes ``[(H_0, W_0), ..., (H_L, W_L)]`` of the input and of the L layers' outputs (spec section 3).

    'valid' shrinks each side by ``q - 1`` per layer; 'same' keeps it.
    """
    shrink = 0 if padding == "same" else filter_size - 1
    return [(height - h * shrink, width - h * shrink) for h in range(depth + 1)]


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def _check_coefficients(c, name):
    if c is None:
        return np.zeros(1), False
    arr = np.asarray(c)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric 1-d array of polynomial coefficients c_0, c_1, ...; "
                         f"got dtype {arr.dtype}.")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array (c_0, c_1, ..., c_p); got shape {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass finite polynomial coefficients.")
    return arr, True


def cntk_kernel(X1, X2=None, *, depth, filter_size=3, padding="valid", fix_first=True, fix_last=True,
                k0_coefficients=None, k1_coefficients=None):
    """Exact CNTK-GAP kernel matrix of a deep convolutional ReLU network (spec section 3).

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
        (q - 1)/2 on each side (q must be odd), the grid keeps its size and the 1/q^2 stays at the border.
    fix_first, fix_last : bool
        Whether the first / last layer is fixed (not trained): ``P_0 = 0`` instead of ``S_0``, and the final
        average is over ``P_{L-1} Gdot_L`` instead of ``P_{L-1} Gdot_L + G_L``.  Both True (default) is the
        CNTK-GAP of Arora et al. (2019) used in Zandieh et al. (2021); both True with ``depth=1`` leaves no
        trainable layer (the kernel is identically zero) and is rejected.
    k0_coefficients, k1_coefficients : array_like, optional
        Polynomial coefficients ``c_0..c_p`` (``sum_l c_l r^l``) used in place of k0 / k1 in the recursion
        (e.g. :func:`ntk_sketch.arccos.taylor_coefficients_k0`); ``None`` uses the exact arc-cosine function.
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
    al. (2019) with their depth L + 1 (spec section 3).  Cost O(L q P^2) per pair for P pixels, O(P^2) memory
    per thread.  For constant images (``padding='valid'``) the kernel reduces to the fully connected NTK
    recursion of the pixel vectors (spec section 2), which the tests use as a closed form.
    """
    depth = check_positive_int(depth, "depth")
    q = check_positive_int(filter_size, "filter_size")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; got {padding!r}.")
    fix_first = _check_bool(fix_first, "fix_first")
    fix_last = _check_bool(fix_last, "fix_last")
    if padding == "same" and q % 2 == 0:
        raise ValueError(f"padding='same' needs an odd filter_size (symmetric zero padding); got filter_size={q}. "
                         "Use an odd filter_size or padding='valid'.")
    if fix_first and fix_last and depth == 1:
        raise ValueError("fix_first=True and fix_last=True with depth=1 leave no trainable layer: the kernel is "
                         "identically zero. Use depth >= 2 or set fix_first=False or fix_last=False.")
    c0, use0 = _check_coefficients(k0_coefficients, "k0_coefficients")
    c1, use1 = _check_coefficients(k1_coefficients, "k1_coefficients")

    X1 = check_images(X1, "X1", dtype=np.float64)
    symmetric = X2 is None
    if symmetric:
        X2 = X1
    else:
        X2 = check_images(X2, "X2", dtype=np.float64)
        if X2.shape[1:] != X1.shape[1:]:
            raise ValueError(f"X1 and X2 must have the same image shape (H, W, C); got {X1.shape[1:]} and "
                             f"{X2.shape[1:]}. Resize or pad the images to a common shape.")
    n1, height, width, _ = X1.shape
    n2 = X2.shape[0]
    if padding == "valid":
        field = depth * (q - 1) + 1
        if height < field or width < field:
            raise ValueError(f"images of {height} x {width} pixels are smaller than the receptive field "
                             f"{field} x {field} of depth={depth} 'valid' layers with filter_size={q}; use "
                             "smaller depth or filter_size, larger images, or padding='same'.")
    dims = np.array(cntk_grid_sizes(height, width, depth, q, padding), dtype=np.int64)
    off = -((q - 1) // 2) if padding == "same" else 0
    inv_q2 = 1.0 / float(q * q)
    p1 = int(dims[1, 0] * dims[1, 1])

    sq1, rs1 = _all_normalisers(X1, dims, q, off, inv_q2, depth, p1)
    if symmetric:
        sq2, rs2 = sq1, rs1
        ia, ib = np.triu_indices(n1)
    else:
        sq2, rs2 = _all_normalisers(X2, dims, q, off, inv_q2, depth, p1)
        ia, ib = (v.ravel() for v in np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij"))
    pairs = np.ascontiguousarray(np.stack([ia, ib], axis=1), dtype=np.int64)
    n_chunks = max(1, min(len(pairs), numba.get_num_threads()))
    values = np.empty(len(pairs))
    _cntk_pairs(X1, X2, sq1, rs1, sq2, rs2, pairs, dims, q, off, inv_q2, fix_first, fix_last,
                c0, c1, use0, use1, n_chunks, values)
    K = np.empty((n1, n2))
    K[pairs[:, 0], pairs[:, 1]] = values
    if symmetric:
        K[pairs[:, 1], pairs[:, 0]] = values
    return K
