"""Geometry of the CNTK-GAP recursion, shared by the exact kernel and by CNTKSketch (docs/math.md §3, §7).

Everything here depends on the architecture and on one image at a time, never on a pair of images:

* **Grids.**  Layer h = 1..L maps grid h-1 to grid h.  'valid' (no padding) shrinks each side by q - 1;
  'same' (zero padding of (q-1)//2 before and q//2 after, the usual 'SAME' alignment; symmetric for odd q)
  keeps it.  :func:`cntk_grid_sizes` lists
  ``[(H_0, W_0), ..., (H_L, W_L)]`` and :func:`check_receptive_field` rejects images smaller than the receptive
  field ``L (q - 1) + 1`` of L 'valid' layers.
* **Patches.**  Output pixel (i, j) reads the q x q input pixels (i + a + off, j + b + off), a, b = 0..q-1,
  with the first patch offset ``off = 0`` ('valid') or ``-((q-1)//2)`` ('same', :func:`patch_offset`: centred
  for odd q, one pixel more after than before for even q); pixels outside the input grid are zero.  The
  patch offsets are numbered t = a q + b (row-major), which is also the order of the q^2-fold concatenations
  of CNTKSketch.
* **Patch sum** of a per-pixel quantity v: ``(scale * sum_{a, b} v[i+a+off, j+b+off])``, computed in one fixed
  order (:func:`_patch_sum`): a column pass over b for every input row, then a row pass over a, then the scale.
  The exact kernel's pair recursion sums in the same order on its pixel diagonal, so its ``S_h[p, p](x, x)``
  reproduces ``N_h`` to the last bit before the cosine snap.
* **Normalisers** ``N_0[p] = sum_u |x_{p+u}|^2`` (no 1/q^2 on the input layer) and ``N_h = (1/q^2) patch sum
  of N_{h-1}``, h = 1..L-1; ``N_h`` lives on grid h + 1 and equals the pixel diagonal ``S_h[p, p](x, x)``.
  The exact kernel divides its cross terms by ``sqrt(N N')``; CNTKSketch scales its unit-norm pixel features by
  ``sqrt(N)`` (docs/math.md §7).
* **Fixed layers.**  ``fix_first``: ``P_0 = 0`` instead of ``S_0``; ``fix_last``: the final average is over
  ``P_{L-1} Gdot_L`` instead of ``P_{L-1} Gdot_L + G_L``.  With both and L = 1 no layer is trained and the kernel
  is identically zero: :func:`check_fixed_layers` rejects it.

Pixel (i, j) of grid h is stored at the flat index ``i * W_h + j`` (compact row-major) in every array here.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._validation import (
    check_bool,
    check_images,
    check_positive_int,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
    warn_if_channels_first,
)

__all__ = ["cntk_grid_sizes", "cntk_normalisers", "patch_offset", "check_architecture", "check_fixed_layers",
           "check_receptive_field"]


# ------------------------------------------------------------------------------------------------ Python API
def cntk_grid_sizes(height, width, depth, filter_size, padding):
    """Grid sizes ``[(H_0, W_0), ..., (H_L, W_L)]`` of the input and of the L layers' outputs (docs/math.md §3).

    'valid' shrinks each side by ``q - 1`` per layer; 'same' keeps it.
    """
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    depth, filter_size = check_architecture(depth, filter_size, padding)
    shrink = 0 if padding == "same" else filter_size - 1
    return [(height - h * shrink, width - h * shrink) for h in range(depth + 1)]


def patch_offset(filter_size, padding):
    """First patch offset: 0 for 'valid' (patches start at the pixel), ``-((q-1)//2)`` for 'same'.

    For 'same' the patch of output pixel p covers input pixels ``p - (q-1)//2 .. p + q//2``: centred for odd q,
    and for even q the asymmetric 'SAME' alignment of TensorFlow / JAX (and neural-tangents), whose zero padding
    is (q-1)//2 before and q//2 after.
    """
    return -((filter_size - 1) // 2) if padding == "same" else 0


def check_architecture(depth, filter_size, padding):
    """Validate ``depth`` >= 1, ``filter_size`` >= 1 and ``padding`` (any q for both; see :func:`patch_offset`)."""
    depth = check_positive_int(depth, "depth")
    q = check_positive_int(filter_size, "filter_size")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; got {padding!r}.")
    return depth, q



def check_fixed_layers(depth, fix_first, fix_last):
    """Validate the two flags; both True with depth 1 (an identically zero kernel) is rejected."""
    fix_first = check_bool(fix_first, "fix_first")
    fix_last = check_bool(fix_last, "fix_last")
    if fix_first and fix_last and depth == 1:
        raise ValueError("fix_first=True and fix_last=True with depth=1 leave no trainable layer: the kernel is "
                         "identically zero. Use depth >= 2 or set fix_first=False or fix_last=False.")
    return fix_first, fix_last


def check_receptive_field(height, width, depth, filter_size, padding):
    """'valid' layers need images of at least ``depth (q - 1) + 1`` pixels on each side."""
    if padding == "valid":
        field = depth * (filter_size - 1) + 1
        if height < field or width < field:
            raise ValueError(f"images of {height} x {width} pixels are smaller than the receptive field "
                             f"{field} x {field} of depth={depth} 'valid' layers with filter_size={filter_size}; "
                             "use smaller depth or filter_size, larger images, or padding='same'.")


def grid_geometry(height, width, depth, filter_size, padding):
    """Grid sizes (an (L + 1, 2) int64 array) and the first patch offset, after checking the receptive field."""
    check_receptive_field(height, width, depth, filter_size, padding)
    dims = np.array(cntk_grid_sizes(height, width, depth, filter_size, padding), dtype=np.int64)
    return dims, patch_offset(filter_size, padding)


def cntk_normalisers(X, *, depth, filter_size=3, padding="valid"):
    """Per-pixel normalisers ``N_h`` of CNTK-GAP for h = 0..L-1 (docs/math.md §3), which depend on one image only.

    ``N_0[p] = sum_u |x_{p+u}|^2`` (squared patch norm, zero padding for 'same') and
    ``N_h[p] = (1/q^2) sum_u N_{h-1}[p+u]``; ``N_h`` lives on the output grid of layer h + 1 and equals the
    pixel diagonal ``S_h[p, p](x, x)`` of the recursion.  CNTKSketch (docs/math.md §7) combines its unit-norm
    pixel features with these exact values.

    Parameters
    ----------
    X : array_like, shape (n, H, W, C)
        Images; float32 is accepted, the computation is in float64.
    depth, filter_size, padding
        As in :func:`ntk_sketch.kernels.cntk_exact.cntk_kernel`.

    Returns
    -------
    list of numpy.ndarray
        ``depth`` float64 arrays; entry h has shape (n, H_{h+1}, W_{h+1}) (see :func:`cntk_grid_sizes`).
    """
    depth, q = check_architecture(depth, filter_size, padding)
    X = check_images(X, "X", dtype=np.float64, allow_empty=True)
    warn_if_channels_first(X.shape, "X", padding)
    dims, off = grid_geometry(X.shape[1], X.shape[2], depth, q, padding)
    e = row_scale_exponents(X)  # N_h is homogeneous of degree 2 in the image: rescale, then scale back exactly
    N = _normalisers_batch(scale_rows(X, e), dims, q, off)
    return [unscale_rows(np.ascontiguousarray(N[:, h, :dims[h + 1, 0] * dims[h + 1, 1]].reshape(
                -1, dims[h + 1, 0], dims[h + 1, 1])), e, "X", 2)
            for h in range(depth)]


# ------------------------------------------------------------------------------------------------ njit kernels
@numba.njit(cache=True)
def _patch_sum(src, hi, wi, ho, wo, q, off, scale, col, out):
    """out[i*wo + j] = scale * sum_{a, b < q} src[(i+a+off)*wi + (j+b+off)] on the ho x wo output grid.

    Zero outside the hi x wi input grid.  Order: a column pass (b ascending) for every input row into ``col``
    (hi * wo scratch), then a row pass (a ascending), then the scale (skipped when it is 1).
    """
    for i in range(hi):
        for j in range(wo):
            s = 0.0
            for b in range(q):
                jj = j + b + off
                if 0 <= jj < wi:
                    s += src[i * wi + jj]
            col[i * wo + j] = s
    for i in range(ho):
        for j in range(wo):
            s = 0.0
            for a in range(q):
                ii = i + a + off
                if 0 <= ii < hi:
                    s += col[ii * wo + j]
            if scale != 1.0:
                s *= scale
            out[i * wo + j] = s


@numba.njit(cache=True)
def _image_normalisers(x, dims, q, off, norms, col, sq):
    """norms[h, :H_{h+1} W_{h+1}] = N_h of the image x (H, W, C) on grid h + 1, h = 0..L-1 (module docstring).

    ``col`` (H W) and ``sq`` (H W) are scratch.  Rows of ``norms`` beyond a grid's pixel count are left alone.
    """
    h0, w0, c = x.shape
    for i in range(h0):
        for j in range(w0):
            s = 0.0
            for k in range(c):
                s += x[i, j, k] * x[i, j, k]
            sq[i * w0 + j] = s
    inv_q2 = 1.0 / float(q * q)
    for h in range(norms.shape[0]):
        src = sq if h == 0 else norms[h - 1]
        _patch_sum(src, dims[h, 0], dims[h, 1], dims[h + 1, 0], dims[h + 1, 1], q, off,
                   1.0 if h == 0 else inv_q2, col, norms[h])


@serialised
@numba.njit(cache=True, parallel=True)
def _normalisers_batch(X, dims, q, off):
    """N[a, h, :] = normalisers of image a (compact grids, zero beyond them), in parallel over images."""
    n, h0, w0, _ = X.shape
    n_layers = dims.shape[0] - 1
    N = np.zeros((n, n_layers, h0 * w0))
    for a in prange(n):
        col = np.empty(h0 * w0)
        sq = np.empty(h0 * w0)
        _image_normalisers(X[a], dims, q, off, N[a], col, sq)
    return N
