"""CNTKSketch: features of the CNTK-GAP computed pixel by pixel, linear in the number of pixels.

docs/math.md §3, §4, §7; Zandieh et al. (2021), Section 5 and Algorithm 3.  The exact CNTK-GAP recursion
(:mod:`ntk_sketch.kernels.cntk_exact`) is carried out with one short feature vector per pixel and layer whose inner
products estimate the layer quantities, with polynomials ``P0_h ~ k0`` and ``P1_h ~ k1`` (non-negative
coefficients, one pair per layer h) in place of the arc-cosine functions: by default fitted to the exact
CNTK-GAP on a few of the images given to ``fit`` (:func:`ntk_sketch.kernels.cntk_polynomials.cntk_data_polynomials`),
else on fixed intervals (:func:`ntk_sketch.kernels.polynomials.arccos_polynomials`).
Grids, patch offsets, the fixed-layer rules and the exact normalisers ``N_h`` (they depend on the image only)
come from :mod:`ntk_sketch.kernels.cntk_geometry`, shared with the exact kernel.

Per image, the stages of :func:`_image_features` (``tests/naive.py`` repeats them line by line):

1. **input layer** (:func:`_input_layer`), pixel p of grid 1: ``phi0_p = concat_{u in patch} x_{p+u}``, so
   ``<phi0_p(x), phi0_p'(y)> = S0[p, p']`` exactly and ``|phi0_p|^2 = N0[p]``; the P features are 0
   (``fix_first``: P_0 = 0) or phi0 (P_0 = S_0).

For every layer h = 1..L, pixel p of grid h, ``f_p`` its S_{h-1} feature:

2. **powers** (:func:`_unit_powers`): unit-normalise ``u = f_p / |f_p|`` and sketch its powers ``Z_1 = u``,
   ``Z_l = T_l(Z_{l-1}, u)`` (one TensorSRHT per degree, docs/math.md §4), so that ``E <Z_l, Z'_l> = <u, u'>^l``;
3. **G and Gdot features** (:func:`_g_and_gdot`):

       g_p    = sqrt(N_{h-1}[p]) [sqrt(c1_0), sqrt(c1_1) Z_1, ..., sqrt(c1_p) Z_p]    ~ G_h = sqrt(N N') P1(r)
       gdot_p =                  [sqrt(c0_0), sqrt(c0_1) Z_1, ..., sqrt(c0_p) Z_p]    ~ Gdot_h = P0(r);

4. **P times Gdot** (hidden layers h < L, :func:`_tensor_product`): ``mm_p = T_h(pp_p, gdot_p)`` ~ P_{h-1} Gdot_h,
   a TensorSRHT of the previous P features with the Gdot features (skipped where P_{h-1} = 0);
5. **patch sums** (hidden layers, :func:`_patch_sums`), pixel p of grid h + 1:

       f_p  = [C_h((1/q) concat_u g~_{p+u}), (1/q) (g_{p+u}[0])_u]      ~ S_h  (patch sum of G_h)
       pp_p = [C'_h((1/q) concat_u mm_{p+u}), f_p]                      ~ P_h = patch sum of P_{h-1} Gdot_h + S_h

   with ``C_h``, ``C'_h`` CountSketches (``patch_sketch='countsketch'``) or SRHTs ('srht') of the
   q^2-fold concatenation, or ('signed_sum') ``sum_u D_u roll(W v_u, s_u)``: each pixel's g~ CountSketched once
   by ``W`` into R^d (``W`` = identity for mm), then the q^2 neighbours summed after independent +-1 diagonals
   ``D_u`` and distinct cyclic shifts ``s_u`` (docs/math.md §7).  ``g~`` is g without its constant coordinate
   ``g[0] = sqrt(c1_0 N)``, which is carried exactly (q^2 numbers; sketched, that coordinate, shared by every
   pixel and image, gives errors shared by all of them).  Writing P_h = patch sum of (P_{h-1} Gdot_h) + S_h lets
   the P features reuse the S features instead of sketching g a second time;
6. **global average pooling** (last layer, :func:`_pool_pixel`, :func:`_pool_final`, :func:`_pool`):
   ``(1/(q |grid_L|)) sum_p T_L(pp_p, gdot_p)`` (+ ``(+) g_p`` unless ``fix_last``; the concatenation is then
   compressed to ``n_components`` by one SRHT per image).  The sum over pixels of the final TensorSRHT is formed
   after the last grid, one dot product over pixels per output row (``_pool_final``), not pixel by pixel.

Random tables.  :func:`draw_cntk_sketch_tables` draws every random map from one numpy Generator into a
:class:`CNTKSketchTables`: the powers' TensorSRHTs (:class:`PowerTables`, per layer and degree), the hidden
layers' TensorSRHTs (:class:`HiddenTensorTables`), the two patch compressions (:class:`PatchTables`), the final
TensorSRHT and the output SRHT.  Per-layer tables are stacked along a first axis (layer h = 0..L-1, or 0..L-2 for
the hidden-layer ones) and zero-padded to a common length; the sizes ``d_in``, ``d_g``, ``d_t``, ``d_pp`` say
how much of each row is used.  The sketches are applied with the njit kernels of :mod:`ntk_sketch.sketches`
(``_signed_fwht``, ``_tensor_srht_combine``, ``_srht_from_work``, ``_srht_dense``, ``_countsketch1_add_block``);
the per-pixel stage functions are inlined into the per-image loop (``inline="always"``): as separate calls, their
argument passing cost up to 1.7x on small configurations.

Every random map is unbiased and independent of its inputs, so for L = 1 (where the polynomial inputs are exact)
the features are unbiased for the CNTK with the polynomials; deeper, a polynomial of degree >= 2 of an unbiased
estimate is biased by O(variance), which vanishes as the per-pixel dimension grows.  Sharing one sign vector and
one transform of ``u`` between the degrees keeps each ``Z_l`` unbiased: ``(1/N) <Hu D u, Hu D u'> = <u, u'>``
for every sign draw ``D``.  Zero patches (N = 0) give zero features, never NaN.

Renormalisation (``renormalize=True``, the default): neighbouring pixels and similar images have nearly
parallel features, so a sketch's error on their norms is shared by all of them and does not average out over
pixels or images.  Every sketched vector whose exact norm is known is therefore rescaled to it: ``|Z_l| = 1``,
``|T(a (x) b)| = |a| |b|``, and the two halves of ``pp`` to the exact diagonals ``S_h[p, p](x, x) = N_h[p] P1(1)``
and ``P_h[p, p](x, x) - S_h[p, p](x, x)`` (computed per image, like ``N_h``, by the recursion at r = 1:
``P_h[p, p] = (1/q^2) patch sum of (P_{h-1}[p, p] P0(1) + N_{h-1}[p] P1(1))``).  On Fashion-MNIST (L = 3, q = 3,
m = 4096) this cut the median relative error from 0.09 to about 0.04; it costs an O(1/d) bias and exact
unbiasedness at L = 1 (``renormalize=False`` restores it; the tests check both).

Cost per image: O(L P (q^2 d + d log d)) for P pixels and per-pixel dimension d, plus O(P m) for the final
TensorSRHT (m = n_components): linear in the number of pixels.  Memory per worker: O(P d + m), independent of the
number of images; ``transform`` streams over images in parallel (one image per thread at a time, fixed
arithmetic order per image, so the result does not depend on the thread count).
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .._base import BaseEstimator, TransformerMixin, check_is_fitted
from .._validation import (
    check_bool,
    check_images,
    check_positive_int,
    check_random_state,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
    warn_if_channels_first,
)
from ..kernels.cntk_geometry import (_image_normalisers, _patch_sum, check_architecture, check_fixed_layers,
                                     check_receptive_field, cntk_grid_sizes, patch_offset)
from ..kernels.cntk_polynomials import cntk_data_polynomials
from ..kernels.polynomials import arccos_polynomials
from ..sketches.countsketch import _countsketch1_add_block, draw_countsketch
from ..sketches.srht import SRHTTables, _srht_dense, _srht_from_work, draw_srht
from ..sketches.tensor_srht import TensorSRHTTables, _signed_fwht, _tensor_srht_combine, draw_tensor_srht

__all__ = ["CNTKSketch", "CNTKSketchTables", "draw_cntk_sketch_tables", "default_pixel_dim", "default_patch_sketch"]

PATCH_MODES = {"countsketch": 0, "srht": 1, "signed_sum": 2}  # CNTKSketchTables.patch_mode


def default_pixel_dim(n_components):
    """The per-pixel dimension CNTKSketch uses when ``pixel_dim`` is None: ``min(1024, max(256, n_components // 8))``.

    The per-pixel sketches' errors are shared by neighbouring pixels and do not average out over the grid, so
    past m ~ 1024 they, not m, set the error; growing d with m keeps n_components the accuracy knob, at a cost
    per image about linear in d.  Below m = 2048 it stays at 256 (smaller d made the error fall only like
    m^-0.31 over m = 16..1024 in proofs_check --quick, against m^-0.61 at 256).  Beyond d = 1024 the degree-5
    polynomials' floor dominates: on Fashion-MNIST (L = 3, q = 4, 100 test images, floor 0.013) the median
    error was 0.018 at m = 4096 (d = 512), 0.015 at m = 4096 with d = 1024, 0.016 at m = 16384 with d = 1024
    and 0.017 with d = 2048 (4x slower); ``python benchmarks/bench_cntk_sketch.py --threads 2 --filter-size 4
    --n-error 100 --m 4096 16384 --seeds 3 --skip-speed --pixel-dim D``.
    """
    return min(1024, max(256, int(n_components) // 8))


def default_patch_sketch(pixel_dim):
    """The patch compression CNTKSketch uses for ``patch_sketch='auto'``: 'signed_sum' up to pixel_dim 512,
    'countsketch' above.

    'signed_sum' reads each pixel's vector once instead of q^2 times; its CountSketch error is shared by the q^2
    neighbours instead of averaging over them, which costs accuracy only once that error is the largest left.
    Measured (Fashion-MNIST, 100 test images, median relative error of 5 seeds, images per second of the same
    transforms in one run): L = 3, 3x3 'valid', m = 4096, pixel_dim 512: 0.0271 (range 0.019-0.031) at 12.7
    images/s against the CountSketch's 0.0290 (0.014-0.052) at 9.3 (a loaded machine); L = 3, 4x4 'valid':
    equal within the seeds' spread at pixel_dim 256 and 512 at 1.8-1.9x the images per second, but 0.023
    against 0.015 at m = 16384, pixel_dim 1024 (``python benchmarks/bench_cntk_sketch.py --threads 2 [--filter-size 4]
    --n-error 100 --m M --seeds 5 --skip-speed --patch-sketch countsketch --versus patch_sketch=signed_sum``).
    """
    return "signed_sum" if int(pixel_dim) <= 512 else "countsketch"


# ------------------------------------------------------------------------------------------------ random tables
class PowerTables(NamedTuple):
    """Stage 2, every layer h = 0..L-1: the TensorSRHTs ``Z_l = T_{h,l}(Z_{l-1}, u)``, l = 2..p, into R^d.

    Row ``l - 2`` of the second axis is degree l.  The second factor u has one sign vector per layer, shared by
    the degrees, so its transform is computed once per pixel (module docstring).
    """

    u_signs: np.ndarray  # float64 (L, max d_in): signs of u's transform (first d_in[h] used)
    u_n_pad: np.ndarray  # int64 (L,): padded length of u's transform
    z_signs: np.ndarray  # float64 (L, max(p-1, 1), max(d_in, d)): signs of Z_{l-1}'s transform
    z_rows: np.ndarray  # int64 (L, max(p-1, 1), d): sampled rows of Z_{l-1}'s transform
    u_rows: np.ndarray  # int64 (L, max(p-1, 1), d): sampled rows of u's transform
    z_n_pad: np.ndarray  # int64 (L, max(p-1, 1)): padded length of Z_{l-1}'s transform
    scale: float  # 1/sqrt(d)


class HiddenTensorTables(NamedTuple):
    """Stage 4, hidden layers h = 0..L-2: TensorSRHT ``T_h(pp, gdot)`` into R^d (used where ``d_t[h] > 0``)."""

    signs1: np.ndarray  # float64 (max(L-1, 1), max d_pp)
    signs2: np.ndarray  # float64 (max(L-1, 1), max d_g)
    rows1: np.ndarray  # int64 (max(L-1, 1), d)
    rows2: np.ndarray  # int64 (max(L-1, 1), d)
    n_pad1: np.ndarray  # int64 (max(L-1, 1),)
    n_pad2: np.ndarray  # int64 (max(L-1, 1),)
    scale: float  # 1/sqrt(d)


class PatchTables(NamedTuple):
    """Stage 5, hidden layers h = 0..L-2: compression of a q^2-fold patch concatenation (length q^2 dim) to R^d.

    ``CNTKSketchTables.patch_mode`` 0, CountSketch: ``cs_index``, ``cs_signs``, the single columns of the
    (q^2 dim, 1) tables of :func:`ntk_sketch.sketches.countsketch.draw_countsketch`; 1, SRHT: ``srht_signs``,
    ``srht_rows``, ``n_pad``, ``scale`` of :func:`ntk_sketch.sketches.srht.draw_srht`; 2, signed sum:
    ``sum_signs[h, t]`` and ``sum_shifts[h, t]``, the +-1 vector and the cyclic shift of patch offset t
    (distinct when q^2 <= d), and for inputs longer than d (the S features' g) ``cs_index``, ``cs_signs`` of one
    CountSketch of a single pixel's vector (length dim) into R^d.  Tables another mode does not use are zeros.
    """

    cs_index: np.ndarray  # int64 (max(L-1, 1), max q^2 dim, or max dim for the signed sum)
    cs_signs: np.ndarray  # float64 (same shape)
    srht_signs: np.ndarray  # float64 (max(L-1, 1), max q^2 dim)
    srht_rows: np.ndarray  # int64 (max(L-1, 1), d)
    n_pad: np.ndarray  # int64 (max(L-1, 1),)
    scale: float  # 1/sqrt(d)
    sum_signs: np.ndarray  # float64 (max(L-1, 1), q^2, d), signed sum only
    sum_shifts: np.ndarray  # int64 (max(L-1, 1), q^2), signed sum only


class CNTKSketchTables(NamedTuple):
    """Everything CNTKSketch's transform applies, for one architecture and image shape (module docstring).

    Sizes, per layer h = 0..L-1 (pixel features on grid h + 1):

    * ``d_in[h]``: length of the S_h pixel features f (the input of layer h + 1): q^2 C, then d + q^2;
    * ``d_g[h] = 1 + d_in[h] + (p - 1) d``: length of g and gdot;
    * ``d_t[h]``: output length of the hidden TensorSRHT T_h(pp, gdot) (d, or 0 where P_h = 0 or h = L - 1);
    * ``d_pp[h]``: length of the P_h pixel features pp: 0 or q^2 C on grid 1, then ``d_t[h-1] + d + q^2``.
    """

    d_in: np.ndarray  # int64 (L,)
    d_g: np.ndarray  # int64 (L,)
    d_t: np.ndarray  # int64 (L,)
    d_pp: np.ndarray  # int64 (L,)
    pixel_dim: int  # d
    sqrt_c0: np.ndarray  # float64 (L, p + 1): square roots of the coefficients of P0 ~ k0, per layer
    sqrt_c1: np.ndarray  # float64 (L, p + 1): same for P1 ~ k1
    powers: PowerTables  # stage 2
    hidden_tensor: HiddenTensorTables  # stage 4
    patch_mode: int  # stage 5: 0 CountSketch, 1 SRHT, 2 signed sum (PatchTables)
    patch_s: PatchTables  # stage 5: compression of the concatenated g~ (S features), input length q^2 d_g[h]
    patch_p: PatchTables  # stage 5: compression of the concatenated mm (P features), input length q^2 d_t[h]
    final_tensor: TensorSRHTTables  # stage 6: T_L(pp, gdot) -> R^m (used if has_final_tensor)
    has_final_tensor: bool  # False where P_{L-1} = 0 (L = 1 with fix_first)
    out_srht: SRHTTables  # stage 6: the pooled [T_L part, g] -> R^m (used if compress_out)
    compress_out: bool  # True unless the pooled vector is the T_L part alone (fix_last with P_{L-1} != 0)


def _pad_stack(arrays, dtype, width=None):
    """Stack 1-d or 2-d arrays along a new first axis, zero-padding the last axis (and the second, for 2-d)."""
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    shape = tuple(max(max(a.shape[k] for a in arrays), 1) for k in range(arrays[0].ndim))
    if width is not None:
        shape = shape[:-1] + (max(width, 1),)
    out = np.zeros((len(arrays),) + shape, dtype=dtype)
    for k, a in enumerate(arrays):
        out[(k,) + tuple(slice(0, n) for n in a.shape)] = a
    return out


def draw_cntk_sketch_tables(image_shape, depth, filter_size, degree, pixel_dim, n_components, k0_coefficients,
                            k1_coefficients, *, fix_first=True, fix_last=True, patch_sketch="countsketch",
                            seed=None) -> CNTKSketchTables:
    """Draw all random tables of CNTKSketch (docs/math.md §7) from one Generator, in a fixed order.

    Parameters
    ----------
    image_shape : (H, W, C)
        Only C matters (the tables do not depend on H, W).
    depth, filter_size, degree, pixel_dim, n_components : int
        L, q, p, d, m (already validated by the caller).
    k0_coefficients, k1_coefficients : list of L arrays of length p + 1
        Non-negative coefficients of P0 ~ k0 and P1 ~ k1 per layer.
    fix_first, fix_last : bool
    patch_sketch : {'signed_sum', 'countsketch', 'srht'}
    seed : None, int, SeedSequence or numpy.random.Generator

    Returns
    -------
    CNTKSketchTables

    Notes
    -----
    Order of the draws: the powers (layer by layer, degree by degree), then per hidden layer the TensorSRHT
    T_h (if used) and the two patch compressions, then the final TensorSRHT and the output SRHT.
    """
    L, q, p, d, m = depth, filter_size, degree, pixel_dim, n_components
    C = image_shape[2]
    rng = check_random_state(seed)
    mode = PATCH_MODES[patch_sketch]
    dphi = q * q * C
    d_in = np.array([dphi] + [d + q * q] * (L - 1), dtype=np.int64)  # S features: [sketch, q^2 exact constants]
    d_g = 1 + d_in + (p - 1) * d
    d_t = np.array([0 if (h == 0 and fix_first) or h == L - 1 else d for h in range(L)], dtype=np.int64)
    d_pp = np.array([0 if fix_first else dphi] + [d_t[h] + d + q * q for h in range(L - 1)], dtype=np.int64)

    # stage 2: powers of u, per layer one TensorSRHT (Z_{l-1}, u) -> d per degree l >= 2; u's signs shared
    u_signs, u_n_pad, z_signs, z_rows, u_rows, z_n_pad = [], [], [], [], [], []
    for h in range(L):
        ts = [draw_tensor_srht(int(d_in[h]) if l == 2 else d, int(d_in[h]), d, rng) for l in range(2, p + 1)]
        u_signs.append(ts[0].signs2 if ts else np.zeros(1))
        u_n_pad.append(ts[0].n_pad2 if ts else 1)
        z_signs.append(_pad_stack([t.signs1 for t in ts] or [np.zeros(1)], np.float64))
        z_rows.append(_pad_stack([t.rows1 for t in ts] or [np.zeros(d)], np.int64))
        u_rows.append(_pad_stack([t.rows2 for t in ts] or [np.zeros(d)], np.int64))
        z_n_pad.append([t.n_pad1 for t in ts] or [1])
    powers = PowerTables(_pad_stack(u_signs, np.float64), np.array(u_n_pad, dtype=np.int64),
                         _pad_stack(z_signs, np.float64), _pad_stack(z_rows, np.int64),
                         _pad_stack(u_rows, np.int64), _pad_stack(z_n_pad, np.int64), 1.0 / np.sqrt(d))

    # stages 4 and 5, hidden layers: TensorSRHT (pp, gdot) -> d, then the S and P patch compressions
    tensors = []
    patches = {"s": [], "p": []}
    for h in range(L - 1):
        tensors.append(draw_tensor_srht(int(d_pp[h]), int(d_g[h]), d, rng) if d_t[h] > 0 else None)
        for key, dim in (("s", int(d_g[h])), ("p", int(d_t[h]))):
            if dim == 0:
                patches[key].append(None)
            elif mode == 1:
                patches[key].append(draw_srht(q * q * dim, d, rng))
            elif mode == 0:
                patches[key].append(draw_countsketch(q * q * dim, d, 1, rng))
            else:  # signed sum: the P features' mm already lie in R^d; g (longer) is CountSketched per pixel first
                cs = draw_countsketch(dim, d, 1, rng) if key == "s" else None
                signs = rng.choice(np.array([-1.0, 1.0]), size=(q * q, d))
                shifts = rng.permutation(d)[:q * q] if q * q <= d else rng.integers(0, d, size=q * q)
                patches[key].append((cs, signs, shifts))
    z1, zd = np.zeros(1), np.zeros(d, np.int64)
    hidden = HiddenTensorTables(
        _pad_stack([t.signs1 if t else z1 for t in tensors] or [z1], np.float64),
        _pad_stack([t.signs2 if t else z1 for t in tensors] or [z1], np.float64),
        _pad_stack([t.rows1 if t else zd for t in tensors] or [zd], np.int64),
        _pad_stack([t.rows2 if t else zd for t in tensors] or [zd], np.int64),
        np.array([t.n_pad1 if t else 1 for t in tensors] or [1], dtype=np.int64),
        np.array([t.n_pad2 if t else 1 for t in tensors] or [1], dtype=np.int64), 1.0 / np.sqrt(d))

    def patch_tables(lst):
        if mode == 2:
            cs = [t[0] if t is not None else None for t in lst]
            sums = [t[1] if t is not None else np.zeros((q * q, d)) for t in lst]
            shifts = [t[2] if t is not None else np.zeros(q * q, np.int64) for t in lst]
        else:
            cs = [None if mode == 1 else t for t in lst]  # CountSketchTables or None
            sums, shifts = [np.zeros((1, 1))], [np.zeros(1, np.int64)]
        sr = [t if mode == 1 else None for t in lst]  # SRHTTables or None
        return PatchTables(
            _pad_stack([t.indices[:, 0] if t is not None else z1 for t in cs] or [z1], np.int64),
            _pad_stack([t.signs[:, 0] if t is not None else z1 for t in cs] or [z1], np.float64),
            _pad_stack([t.signs if t is not None else z1 for t in sr] or [z1], np.float64),
            _pad_stack([t.rows if t is not None else zd for t in sr] or [zd], np.int64),
            np.array([t.n_pad if t is not None else 1 for t in sr] or [1], dtype=np.int64), 1.0 / np.sqrt(d),
            _pad_stack(sums or [np.zeros((1, 1))], np.float64), _pad_stack(shifts or [np.zeros(1)], np.int64))

    # stage 6: final TensorSRHT (pp_{L-1}, gdot_L) -> m unless P_{L-1} = 0; g appended unless fix_last
    has_final = bool(d_pp[L - 1] > 0)
    if has_final:
        final = draw_tensor_srht(int(d_pp[L - 1]), int(d_g[L - 1]), m, rng)
    else:
        final = TensorSRHTTables(z1, z1, np.zeros(0, np.int64), np.zeros(0, np.int64), 1.0, 1, 1)
    d_acc = (m if has_final else 0) + (0 if fix_last else int(d_g[L - 1]))
    compress_out = bool(d_acc != m or not has_final)
    out = draw_srht(d_acc, m, rng) if compress_out else SRHTTables(z1, np.zeros(m, np.int64), 1.0, 1)
    return CNTKSketchTables(d_in, d_g, d_t, d_pp, int(d), np.sqrt(np.stack(k0_coefficients)),
                            np.sqrt(np.stack(k1_coefficients)), powers, hidden, mode, patch_tables(patches["s"]),
                            patch_tables(patches["p"]), final, has_final, out, compress_out)


# ------------------------------------------------------------------------------------------------ njit stages
@numba.njit(cache=True, inline="always")
def _sq(v):
    s = 0.0
    for k in range(v.shape[0]):
        s += v[k] * v[k]
    return s


@numba.njit(cache=True, inline="always")
def _rescale(v, target):
    """Scale v to norm ``target`` (left as is when it is 0: nothing to rescale)."""
    s = _sq(v)
    if s > 0.0:
        c = target / np.sqrt(s)
        for k in range(v.shape[0]):
            v[k] *= c


@numba.njit(cache=True)
def _input_layer(x, dims, q, off, fix_first, norms, F, PP, pdiag):
    """Stage 1, on grid 1: F[p] = phi0_p = concat_{t = a q + b} x[p + (a, b) + off] (zero outside the image).

    The P_0 features PP[p] are phi0_p (P_0 = S_0) unless ``fix_first`` (P_0 = 0, zero-length features), and
    ``pdiag[p] = P_0[p, p](x, x)`` is N_0[p] or 0.
    """
    h0, w0, nc = x.shape
    h1, w1 = dims[1, 0], dims[1, 1]
    dphi = q * q * nc
    for i in range(h1):
        for j in range(w1):
            pix = i * w1 + j
            phi0 = F[pix]
            t = 0
            for a in range(q):
                ii = i + a + off
                for b in range(q):
                    jj = j + b + off
                    inside = 0 <= ii < h0 and 0 <= jj < w0
                    for k in range(nc):
                        phi0[t * nc + k] = x[ii, jj, k] if inside else 0.0
                    t += 1
            if not fix_first:
                PP[pix, :dphi] = phi0[:dphi]
            pdiag[pix] = 0.0 if fix_first else norms[0, pix]


@numba.njit(cache=True, inline="always")
def _unit_powers(powers, h, f, f_sq, degree, renorm, u, Z, work_u, work_z):
    """Stage 2: u = f / |f| (``f_sq = |f|^2 > 0``) and Z[l-2] = Z_l = T_{h,l}(Z_{l-1}, u), l = 2..p (Z_1 = u).

    The transform of u is computed once and shared by the degrees (one sign vector per layer).  With
    ``renorm`` every Z_l is rescaled to its exact norm 1.
    """
    din = f.shape[0]
    inv = 1.0 / np.sqrt(f_sq)
    for k in range(din):
        u[k] = f[k] * inv
    wu = work_u[:powers.u_n_pad[h]]
    if degree >= 2:
        _signed_fwht(powers.u_signs[h], u[:din], wu)
    for l in range(2, degree + 1):
        prev = u[:din] if l == 2 else Z[l - 3]
        wz = work_z[:powers.z_n_pad[h, l - 2]]
        _signed_fwht(powers.z_signs[h, l - 2], prev, wz)
        _tensor_srht_combine(powers.z_rows[h, l - 2], powers.u_rows[h, l - 2], powers.scale, wz, wu, Z[l - 2])
        if renorm:  # |u^(l)| = 1 exactly
            _rescale(Z[l - 2], 1.0)


@numba.njit(cache=True, inline="always")
def _g_and_gdot(sqrt_c0, sqrt_c1, sqrt_n, u, Z, degree, g, gdot):
    """Stage 3: g = sqrt(N) [sqrt(c1_0), sqrt(c1_1) u, sqrt(c1_l) Z_l ...], gdot = [sqrt(c0_0), sqrt(c0_1) u, ...]."""
    din = u.shape[0]
    d = Z.shape[1]
    g[0] = sqrt_n * sqrt_c1[0]
    gdot[0] = sqrt_c0[0]
    a1 = sqrt_n * sqrt_c1[1]
    a0 = sqrt_c0[1]
    for k in range(din):
        g[1 + k] = a1 * u[k]
        gdot[1 + k] = a0 * u[k]
    for l in range(2, degree + 1):
        o = 1 + din + (l - 2) * d
        a1 = sqrt_n * sqrt_c1[l]
        a0 = sqrt_c0[l]
        zl = Z[l - 2]
        for k in range(d):
            g[o + k] = a1 * zl[k]
            gdot[o + k] = a0 * zl[k]


@numba.njit(cache=True, inline="always")
def _tensor_product(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, a, b, out, work1, work2, renorm):
    """Stages 4 and 6: out = TensorSRHT(a (x) b), rescaled to its exact norm |a| |b| with ``renorm``."""
    w1 = work1[:n_pad1]
    w2 = work2[:n_pad2]
    _signed_fwht(signs1, a, w1)
    _signed_fwht(signs2, b, w2)
    _tensor_srht_combine(rows1, rows2, scale, w1, w2, out)
    if renorm:
        _rescale(out, np.sqrt(_sq(a) * _sq(b)))


@numba.njit(cache=True, inline="always")
def _compress_patch(patch, mode, h, src, hs, ws, i, j, q, off, dim, exact_first, d, out, work):
    """Stage 5: out[:d] = C_h((1/q) concat_{t = a q + b} src[pixel (i+a+off, j+b+off), :dim]), zero outside.

    ``src`` holds one row per pixel of the hs x ws grid; C_h is the layer's CountSketch (``mode`` 0) or SRHT (1)
    of the concatenation, or (2) the signed sum ``sum_t sum_signs[h, t] * roll(src[pixel t, k0:k0 + d],
    sum_shifts[h, t])`` of rows already in R^d (for the S features, _patch_sums has CountSketched every g~
    into G[:, 1:1 + d] first).
    With ``exact_first`` coordinate 0 of every block (the constant coordinate of g, the same for every pixel
    and image up to sqrt(N)) is not sketched but copied: out[d + t] = src[..., 0] / q (0 outside the grid).
    """
    inv_q = 1.0 / q
    k0 = 1 if exact_first else 0
    head = out[:d]
    wk = work[:patch.n_pad[h]]
    signs = patch.srht_signs[h]
    cs_index = patch.cs_index[h]
    cs_signs = patch.cs_signs[h]
    if mode == 1:
        wk[:] = 0.0
    else:
        head[:] = 0.0
    t = 0
    for a in range(q):
        ii = i + a + off
        for b in range(q):
            jj = j + b + off
            if 0 <= ii < hs and 0 <= jj < ws:
                if mode == 2:
                    v = src[ii * ws + jj, k0:k0 + d]
                    sg = patch.sum_signs[h, t]
                    sh = patch.sum_shifts[h, t]  # head[k] += sg[k] v[(k - sh) mod d], in two contiguous runs
                    for k in range(sh, d):
                        head[k] += sg[k] * v[k - sh]
                    for k in range(sh):
                        head[k] += sg[k] * v[k - sh + d]
                else:
                    v = src[ii * ws + jj, k0:dim]
                    start = t * dim + k0
                    if mode == 1:
                        for k in range(v.shape[0]):
                            wk[start + k] = signs[start + k] * v[k]
                    else:
                        _countsketch1_add_block(cs_index, cs_signs, start, v, head)
                if exact_first:
                    out[d + t] = src[ii * ws + jj, 0] * inv_q
            elif exact_first:
                out[d + t] = 0.0
            t += 1
    if mode == 1:
        _srht_from_work(patch.srht_rows[h], patch.scale, head, wk)
    for k in range(d):
        head[k] *= inv_q


@numba.njit(cache=True)
def _patch_sums(T, h, dims, q, off, renorm, norms, G, MM, pdiag, F, PP, pdiag_next, col, tmp, work):
    """Stage 5: S_{h+1} features F and P_{h+1} features PP on grid h + 2 from G and MM on grid h + 1.

    ``pdiag_next`` gets the exact P_{h+1}[p, p](x, x) = (1/q^2) patch sum of (P_h[p, p] P0(1) + N_h[p] P1(1))
    (``pdiag`` holds P_h[p, p]); with ``renorm`` the two halves of every P feature are rescaled to
    P_{h+1}[p, p] - S_{h+1}[p, p] and S_{h+1}[p, p] = N_{h+1}[p] P1(1).
    """
    d = T.pixel_dim
    hh, wh = dims[h + 1, 0], dims[h + 1, 1]
    hn, wn = dims[h + 2, 0], dims[h + 2, 1]
    dg, dt, dpn = T.d_g[h], T.d_t[h], T.d_pp[h + 1]
    p0_one = 0.0
    p1_one = 0.0
    for k in range(T.sqrt_c0.shape[1]):
        p0_one += T.sqrt_c0[h, k] ** 2
        p1_one += T.sqrt_c1[h, k] ** 2
    for pix in range(hh * wh):
        tmp[pix] = pdiag[pix] * p0_one + norms[h, pix] * p1_one
    _patch_sum(tmp, hh, wh, hn, wn, q, off, 1.0 / float(q * q), col, pdiag_next)
    if T.patch_mode == 2:  # signed sum: CountSketch every pixel's g~ = G[pix, 1:dg] into G[pix, 1:1 + d] once
        y = work[:d]
        for pix in range(hh * wh):
            y[:] = 0.0
            _countsketch1_add_block(T.patch_s.cs_index[h], T.patch_s.cs_signs[h], 1, G[pix, 1:dg], y)
            G[pix, 1:1 + d] = y
    for i in range(hn):
        for j in range(wn):
            pix = i * wn + j
            f = F[pix, :d + q * q]
            _compress_patch(T.patch_s, T.patch_mode, h, G, hh, wh, i, j, q, off, dg, True, d, f, work)
            pp = PP[pix, :dpn]
            if dt > 0:  # P_{h+1} = [compressed patch of P_h Gdot_{h+1}, S_{h+1}]
                _compress_patch(T.patch_p, T.patch_mode, h, MM, hh, wh, i, j, q, off, dt, False, d, pp[:d], work)
                pp[d:] = f
            else:  # P_h = 0: P_{h+1} = S_{h+1}
                pp[:] = f
            if renorm:
                pd = pdiag_next[pix]
                sd = norms[h + 1, pix] * p1_one
                if dt > 0:
                    _rescale(pp[:d], np.sqrt(max(pd - sd, 0.0)))
                    _rescale(pp[d:], np.sqrt(sd))
                else:
                    _rescale(pp, np.sqrt(pd))


@numba.njit(cache=True, inline="always")
def _pool_pixel(T, fix_last, renorm, pix, pp, gdot, g, acc, W1, W2, target):
    """Stage 6, one pixel of grid L: acc += g (unless fix_last), and the pixel's half of T_L(pp, gdot) (if
    P_{L-1} != 0): its two signed Hadamard transforms go to row ``pix`` of W1 / W2 and |pp|^2 |gdot|^2 to
    ``target[pix]``; _pool_final combines the rows of all pixels."""
    if T.has_final_tensor:
        ft = T.final_tensor
        _signed_fwht(ft.signs1, pp, W1[pix, :ft.n_pad1])
        _signed_fwht(ft.signs2, gdot, W2[pix, :ft.n_pad2])
        target[pix] = _sq(pp) * _sq(gdot) if renorm else 0.0
    if not fix_last:
        o = T.final_tensor.rows1.shape[0] if T.has_final_tensor else 0
        for k in range(g.shape[0]):
            acc[o + k] += g[k]


@numba.njit(cache=True, inline="always")
def _transpose(A, AT, n_rows, n_cols):
    """AT[j, i] = A[i, j] for i < n_rows, j < n_cols, in 16 x 16 tiles (both sides stay in cache)."""
    for i0 in range(0, n_rows, 16):
        i1 = min(i0 + 16, n_rows)
        for j0 in range(0, n_cols, 16):
            j1 = min(j0 + 16, n_cols)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    AT[j, i] = A[i, j]


@numba.njit(cache=True)
def _pool_final(ft, renorm, n_pix, W1, W2, W1T, W2T, target, c, order, acc):
    """Stage 6, after the last grid: acc[k] += sum_p c_p T_L(pp_p, gdot_p)[k] for the m rows k of the final
    TensorSRHT, with c_p = |pp_p| |gdot_p| / |T_L(pp_p, gdot_p)| under ``renorm`` (else 1).

    Row k of T_L(pp_p, gdot_p) is ``scale W1[p, rows1[k]] W2[p, rows2[k]]`` (the signed Hadamard transforms of
    pixel p, row p of W1 / W2), so the sum over pixels is a dot product of column rows1[k] of W1 with column
    rows2[k] of W2: one pass over m pairs of contiguous rows of the transposes instead of m scattered reads per
    pixel (the per-pixel form cost as much as a hidden layer at m in the thousands).  The pixels go in blocks of
    B = W2T.shape[1] (from n_pad2 and the image size, not from the machine: _workspace_sizes), transposed into
    W1T / W2T, so that the rows read at random stay in cache whatever the image size; ``order`` visits the rows
    sorted by (rows1, rows2), so that consecutive rows reuse the same W1T row.  Each acc[k] is its own sum
    (blocks in pixel order); c's additions follow ``order``.
    """
    m = ft.rows1.shape[0]
    block = W2T.shape[1]
    s2 = ft.scale * ft.scale
    for p0 in range(0, n_pix, block):
        nb = min(block, n_pix - p0)
        _transpose(W1[p0:p0 + nb], W1T, nb, ft.n_pad1)  # pixels along the rows from here on
        _transpose(W2[p0:p0 + nb], W2T, nb, ft.n_pad2)
        if renorm:
            # |T_L(pp_p, gdot_p)|^2 for the block's pixels at once: a vector update over pixels per row k
            c[:nb] = 0.0
            for j in range(m):
                k = order[j]
                r1 = W1T[ft.rows1[k]]
                r2 = W2T[ft.rows2[k]]
                for p in range(nb):
                    v = r1[p] * r2[p]
                    c[p] += v * v
            for p in range(nb):  # c[p] becomes c_p, folded into W1T's column p
                s = s2 * c[p]
                c[p] = np.sqrt(target[p0 + p]) / np.sqrt(s) if s > 0.0 else 1.0
            for i in range(ft.n_pad1):
                row = W1T[i]
                for p in range(nb):
                    row[p] *= c[p]
        for j in range(m):
            k = order[j]
            # BLAS ddot: numba does not vectorise a float sum without fastmath, ddot's kernel does
            # (single-threaded at this length, so the result does not depend on the thread count)
            acc[k] += ft.scale * np.dot(W1T[ft.rows1[k], :nb], W2T[ft.rows2[k], :nb])


@numba.njit(cache=True)
def _pool(T, acc, gap, out, work):
    """Stage 6: out = gap * acc, compressed to m by the output SRHT when ``compress_out``."""
    if T.compress_out:
        for k in range(acc.shape[0]):
            acc[k] *= gap
        o = T.out_srht
        _srht_dense(o.signs, o.rows, o.scale, acc, out, work[:o.n_pad])
    else:
        for k in range(out.shape[0]):
            out[k] = acc[k] * gap


@numba.njit(cache=True)
def _image_features(x, T, dims, q, off, fix_first, fix_last, renorm,
                    norms, pdiag, F, PP, G, MM, u, gdot, Z, col, tmp, work1, work2, acc, W1, W2, W1T, W2T, target,
                    pool_c, order, out):
    """Features of one image into ``out`` (m,), stage by stage (module docstring); the other arrays are scratch.

    Pixel p = (i, j) of grid h is row i * W_h + j of ``F``, ``PP`` (the S_{h-1} and P_{h-1} features on grid h),
    ``G`` and ``MM`` (g and T_h(pp, gdot) on grid h); ``norms[h]`` holds N_h on grid h + 1 and ``pdiag[h % 2]``
    the exact P_h[p, p](x, x).
    """
    n_layers = dims.shape[0] - 1
    degree = T.sqrt_c0.shape[1] - 1
    _image_normalisers(x, dims, q, off, norms, col, tmp)  # exact N_h (cntk_geometry)
    _input_layer(x, dims, q, off, fix_first, norms, F, PP, pdiag[0])  # stage 1
    acc[:] = 0.0
    for h in range(n_layers):  # layer h + 1 of docs/math.md §3, on grid h + 1
        last = h == n_layers - 1
        hh, wh = dims[h + 1, 0], dims[h + 1, 1]
        din, dg, dt, dpp = T.d_in[h], T.d_g[h], T.d_t[h], T.d_pp[h]
        sqrt_c0, sqrt_c1 = T.sqrt_c0[h], T.sqrt_c1[h]
        ht = T.hidden_tensor
        t_signs1, t_signs2, t_rows1, t_rows2 = ht.signs1[h], ht.signs2[h], ht.rows1[h], ht.rows2[h]
        for pix in range(hh * wh):
            f = F[pix, :din]
            g = G[pix, :dg]
            nn = norms[h, pix]
            f_sq = _sq(f)
            if nn == 0.0 or f_sq == 0.0:
                # zero patch: G, Gdot and P vanish there (docs/math.md §3), so every feature is 0
                g[:] = 0.0
                if not last:
                    MM[pix, :dt] = 0.0
                elif T.has_final_tensor:
                    W1[pix] = 0.0
                    W2[pix] = 0.0
                    target[pix] = 0.0
                continue
            _unit_powers(T.powers, h, f, f_sq, degree, renorm, u, Z, work2, work1)  # stage 2
            gd = gdot[:dg]
            _g_and_gdot(sqrt_c0, sqrt_c1, np.sqrt(nn), u[:din], Z, degree, g, gd)  # stage 3
            if not last:
                if dt > 0:  # stage 4
                    _tensor_product(t_signs1, t_signs2, t_rows1, t_rows2, ht.scale, ht.n_pad1[h], ht.n_pad2[h],
                                    PP[pix, :dpp], gd, MM[pix, :dt], work1, work2, renorm)
            else:  # stage 6, per pixel
                _pool_pixel(T, fix_last, renorm, pix, PP[pix, :dpp], gd, g, acc, W1, W2, target)
        if not last:  # stage 5
            _patch_sums(T, h, dims, q, off, renorm, norms, G, MM, pdiag[h % 2], F, PP, pdiag[1 - h % 2], col, tmp,
                        work1)
    hl, wl = dims[n_layers, 0], dims[n_layers, 1]
    if T.has_final_tensor:
        _pool_final(T.final_tensor, renorm, hl * wl, W1, W2, W1T, W2T, target, pool_c, order, acc)
    _pool(T, acc, 1.0 / (q * float(hl * wl)), out, work1)  # stage 6


_POOL_BLOCK_BYTES = 1 << 20


def _workspace_sizes(T, image_shape):
    """Lengths of the per-worker scratch arrays of _sketch_images (all O(P d + m))."""
    d = T.pixel_dim
    pads = [T.powers.u_n_pad.max(), T.powers.z_n_pad.max(), T.hidden_tensor.n_pad1.max(),
            T.hidden_tensor.n_pad2.max(), T.patch_s.n_pad.max(), T.patch_p.n_pad.max(), T.final_tensor.n_pad1,
            T.final_tensor.n_pad2, T.out_srht.n_pad, d]
    m_final = T.final_tensor.rows1.shape[0] if T.has_final_tensor else 0
    d_acc = max(m_final + (T.out_srht.signs.shape[0] - m_final if T.compress_out else 0), 1)
    H, W, _ = image_shape
    # _pool_final's block of pixels: the n_pad2 x block rows it reads at random take _POOL_BLOCK_BYTES (half an L2)
    pool_block = min(H * W, max(8, _POOL_BLOCK_BYTES // (8 * max(int(T.final_tensor.n_pad2), 1))))
    return np.array([int(T.d_in.max()), max(int(T.d_pp.max()), d, 1), int(T.d_g.max()), max(int(T.d_t.max()), 1),
                     int(max(pads)), d_acc, H * W, pool_block], dtype=np.int64)


def _sketch_images(X, T, dims, q, off, fix_first, fix_last, renorm, sizes, n_chunks, out):
    """out[a] = features of X[a] (float64 images), in parallel over chunks of images (see _sketch_chunks)."""
    _sketch_chunks(X, *T, dims, q, off, fix_first, fix_last, renorm, sizes, n_chunks, out)


@serialised
@numba.njit(cache=True, parallel=True)
def _sketch_chunks(X, d_in, d_g, d_t, d_pp, pixel_dim, sqrt_c0, sqrt_c1, powers, hidden_tensor, patch_mode, patch_s,
                   patch_p, final_tensor, has_final_tensor, out_srht, compress_out,
                   dims, q, off, fix_first, fix_last, renorm, sizes, n_chunks, out):
    """Chunks of images in parallel, one O(P d + m) workspace per chunk, each image by one thread in a fixed order.

    The tables come as the fields of CNTKSketchTables, in order, and are reassembled inside the loop: numba
    cannot hand a NamedTuple that nests NamedTuples to a prange body.
    """
    n, h0, w0, _ = X.shape
    npix = h0 * w0
    n_layers = dims.shape[0] - 1
    degree = sqrt_c0.shape[1] - 1
    d_f, d_p, d_gm, d_tm, n_work, d_acc, n_tmp = sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], sizes[5], sizes[6]
    # the final TensorSRHT's rows sorted by their index pairs (_pool_final)
    order = np.argsort(final_tensor.rows1 * final_tensor.n_pad2 + final_tensor.rows2, kind="mergesort")
    n1 = final_tensor.n_pad1 if has_final_tensor else 0
    n2 = final_tensor.n_pad2 if has_final_tensor else 0
    block = sizes[7]
    for c in prange(n_chunks):
        start = (c * n) // n_chunks
        stop = ((c + 1) * n) // n_chunks
        norms = np.zeros((n_layers, npix))
        pdiag = np.zeros((2, npix))
        F = np.zeros((npix, d_f))
        PP = np.zeros((npix, d_p))
        G = np.zeros((npix, d_gm))
        MM = np.zeros((npix, d_tm))
        u = np.zeros(d_f)
        gdot = np.zeros(d_gm)
        Z = np.zeros((max(degree - 1, 1), pixel_dim))
        col = np.zeros(npix)
        tmp = np.zeros(n_tmp)
        work1 = np.zeros(n_work)
        work2 = np.zeros(n_work)
        acc = np.zeros(d_acc)
        W1 = np.zeros((npix, n1))
        W2 = np.zeros((npix, n2))
        W1T = np.zeros((n1, block))
        W2T = np.zeros((n2, block))
        target = np.zeros(npix)
        pool_c = np.zeros(block)
        T = CNTKSketchTables(d_in, d_g, d_t, d_pp, pixel_dim, sqrt_c0, sqrt_c1, powers, hidden_tensor, patch_mode,
                             patch_s, patch_p, final_tensor, has_final_tensor, out_srht, compress_out)
        for a in range(start, stop):
            _image_features(X[a], T, dims, q, off, fix_first, fix_last, renorm, norms, pdiag, F, PP, G, MM, u,
                            gdot, Z, col, tmp, work1, work2, acc, W1, W2, W1T, W2T, target, pool_c, order,
                            out[a])


# ------------------------------------------------------------------------------------------------ Python API

class CNTKSketch(TransformerMixin, BaseEstimator):
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
        As in the exact kernel ('same' with an even filter_size pads one zero more after than before).
    degree : int, default 5
        Degree p >= 1 of the polynomials; the cost per pixel grows about linearly with it.  The polynomials'
        error is a floor under the sketch's: with the default 'data' polynomials on Fashion-MNIST (L = 3, q = 4,
        100 test images) the polynomial CNTK is 0.021 from the exact one at degree 3, 0.013 at degree 5, 0.010
        at degree 8, 0.0080 at degree 12 and 0.0064 at degree 16 (0.055 / 0.039 / 0.024 with 'fit' at 3 / 5 / 8):
        about degree^-0.6, the rate the arc-cosine k0's square-root singularity at 1 allows (its series
        coefficients fall like l^-3/2, so a degree-p truncation leaves a tail of order p^-1/2).  Degree 3 is
        about 1.5x faster and enough at m <= 4096 with q = 3, but at q = 4 its median sketch error was 0.032 at
        m = 4096 against 0.017 at degree 5.  These
        figures: ``python benchmarks/bench_cntk_sketch.py --threads 2 --filter-size 4 --n-error 100 --m 4096
        --seeds 3 --skip-speed --degree D [--polynomial fit]`` (floor and sketch error).  For the most accurate
        kernel at large m, pass degree=16: its lower floor lets the sketch's error keep falling, median 0.0128
        at m = 4096 and 0.0093 at m = 16384 (pixel_dim 512 and 1024) against 0.0183 and 0.0149 at degree 5, at
        3-3.5x the time per image (same setting, 5 seeds: ``python benchmarks/bench_cntk_sketch.py --threads 1
        --filter-size 4 --n-error 100 --m 4096 16384 --seeds 5 --skip-speed --degree 16 --versus degree=5``).
        Degree 12 did not help there (0.0158 at m = 16384), so the gain is not monotone in the degree.
    polynomial : {'data', 'fit', 'taylor'} or (P0_list, P1_list), default 'data'
        'data' (needs images in ``fit``): per-layer polynomials fitted to the exact CNTK-GAP on
        ``polynomial_images`` of the images given to ``fit``, each layer on the cosines it actually sees and the
        last layer on the kernel values themselves (:func:`ntk_sketch.kernels.cntk_polynomials.cntk_data_polynomials`);
        on Fashion-MNIST (L = 3, q = 4, degree 5) the polynomial CNTK is 0.015-0.02 from the exact one against
        0.039 for 'fit'.  When ``fit`` gets only an image shape, 'data' falls back to 'fit' (``polynomial_``
        says which was used).  'fit': least-squares non-negative fits exact at 1 (layer 1 on [0, 1] for
        non-negative images, else on [-1, 1]; deeper layers on [0, 1], where their cosines, values of k1, lie);
        'taylor': truncated series; or two lists of L coefficient arrays (length degree + 1, non-negative), one
        per layer.
    polynomial_images : int, default 6
        For 'data': how many of the images given to ``fit`` (evenly spaced through them) the polynomials are
        fitted on; the fit uses every pair of them (21 for 6 images) and took 4.4 s at 28 x 28, L = 3, q = 4.
        Each pair costs an exact CNTK evaluation, quadratic in the pixels (16x from 28 x 28 to 56 x 56): for
        large images pass fewer, or fit on the image shape (``polynomial='fit'``).
    fit_lower : float or None
        For 'fit' only: fit every layer on (fit_lower, 1) instead of the intervals above.  When the data's
        cosines are concentrated near 1 (natural images: Fashion-MNIST's lie mostly above 0.5) a narrower
        interval lowers the polynomial error where it matters (Fashion-MNIST, L = 3, q = 4, degree 3: the
        relative error of the polynomial CNTK falls from 0.052 with (0, 1) to 0.030 with (0.7, 1)); cosines below
        fit_lower are extrapolated (coefficients stay non-negative, the value at 1 stays exact).
    pixel_dim : int or None, default None
        Per-pixel sketch dimension d: of every power Z_l (l >= 2), of the sketched part of the S features and
        of the P features' first half, and of the hidden layers' TensorSRHTs.  Cost and memory per pixel grow
        like q^2 d.  The errors of these per-pixel sketches are largely shared by neighbouring pixels, so they do
        not average out over the grid: they, not n_components, limit the accuracy once m >= 1024.  None:
        :func:`default_pixel_dim` ``(n_components) = min(1024, max(256, n_components // 8))``, so that
        n_components sets the accuracy (Fashion-MNIST, L = 3, q = 3, m = 4096, degree 3, 3 seeds: median error
        0.029 with range 0.014-0.059 at d = 256, 0.020 with range 0.016-0.023 at d = 512).
    renormalize : bool, default True
        Rescale every per-pixel sketch to the norm it must have exactly (|Z_l| = 1 since |u| = 1,
        |T(a (x) b)| = |a| |b|, and the P features to the exact diagonal P_h[p, p](x, x), computed per image
        like N_h).  Neighbouring pixels and similar images have nearly parallel features, so the sketches' norm
        errors are shared by all of them and do not average out over pixels; renormalising removes them
        (measured: median error 0.09 -> 0.04 at m = 4096) at the price of an O(1/d) bias.  False gives the
        plain sketch (unbiased for L = 1).
    patch_sketch : {'auto', 'countsketch', 'srht', 'signed_sum'}, default 'auto'
        'auto': 'signed_sum' up to pixel_dim 512, 'countsketch' above (:func:`default_patch_sketch`, where the
        measurements that chose it are; ``patch_sketch_`` says which was used).
        Compression of the q^2-fold patch concatenation: CountSketch (O(q^2 d) per pixel) or SRHT
        (O(q^2 d log(q^2 d))), or 'signed_sum': every pixel's vector CountSketched once to d, then the q^2
        neighbours summed with random signs and cyclic shifts (module docstring).  It reads each pixel's
        (p + 1) d-long g once instead of q^2 times: 1.8-1.9x the images per second, but the CountSketch's
        error is shared by the q^2 neighbours instead of averaging over them.  Fashion-MNIST, L = 3, q = 4,
        100 test images, median relative error over 5 seeds, 'signed_sum' against 'countsketch': m = 1024
        0.025 / 0.030, 2048 0.036 / 0.030, 4096 0.019 / 0.018 (pixel_dim 256, 256, 512: equal within the seeds'
        spread, so at equal time 'signed_sum' is ahead), 16384 0.023 / 0.015 (pixel_dim 1024: behind);
        ``python benchmarks/bench_cntk_sketch.py --threads 2 --filter-size 4 --n-error 100 --m 1024 2048 4096
        16384 --seeds 5 --skip-speed --patch-sketch signed_sum --versus patch_sketch=countsketch``.
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
    polynomial_ : str
        How they were obtained: 'data', 'fit', 'taylor' or 'given'.
    pixel_dim_ : int
        The per-pixel dimension used.
    patch_sketch_ : str
        The patch compression used ('auto' resolved).
    n_features_in_ : int
        ``H * W * C``, the values per image.
    n_features_out_ : int
    """

    _two_d_input = False   # images (n, H, W, C)

    def __init__(self, depth=3, n_components=4096, *, filter_size=3, padding="valid", degree=5, polynomial="data",
                 polynomial_images=6, fit_lower=None, pixel_dim=None, patch_sketch="auto", renormalize=True,
                 fix_first=True, fix_last=True, nonnegative=None, seed=None):
        self.depth = depth
        self.n_components = n_components
        self.filter_size = filter_size
        self.padding = padding
        self.degree = degree
        self.polynomial = polynomial
        self.polynomial_images = polynomial_images
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
        L, q = check_architecture(self.depth, self.filter_size, self.padding)
        m = check_positive_int(self.n_components, "n_components")
        p = check_positive_int(self.degree, "degree")
        d = default_pixel_dim(m) if self.pixel_dim is None else check_positive_int(self.pixel_dim, "pixel_dim")
        if not isinstance(self.patch_sketch, str) or (self.patch_sketch not in PATCH_MODES
                                                       and self.patch_sketch != "auto"):
            raise ValueError(f"patch_sketch must be 'auto', 'signed_sum', 'countsketch' or 'srht'; got "
                             f"{self.patch_sketch!r}.")
        check_bool(self.renormalize, "renormalize")
        ff, fl = check_fixed_layers(L, self.fix_first, self.fix_last)
        if self.nonnegative is not None:
            check_bool(self.nonnegative, "nonnegative")
        return L, m, q, p, d, ff, fl

    def _polynomials(self, L, p, nonnegative, images=None):
        """The per-layer polynomials and the name of the method used ('data', 'fit', 'taylor' or 'given')."""
        poly = self.polynomial
        if isinstance(poly, str):
            if poly not in ("data", "fit", "taylor"):
                raise ValueError(f"polynomial must be 'data', 'fit', 'taylor' or a pair (P0_list, P1_list); got "
                                 f"{poly!r}.")
            n_images = check_positive_int(self.polynomial_images, "polynomial_images")
            if poly == "data" and self.fit_lower is None and images is not None and np.any(images):
                # evenly spaced images: deterministic, and the seed's generator is left to the tables
                idx = np.unique(np.linspace(0, images.shape[0] - 1, min(n_images, images.shape[0])).astype(int))
                P0, P1 = cntk_data_polynomials(images[idx], depth=L, degree=p, filter_size=self.filter_size,
                                               padding=self.padding, fix_first=self.fix_first,
                                               fix_last=self.fix_last, n_images=n_images)
                return P0, P1, "data"
            if poly == "data":
                poly = "fit"
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
            return P0, P1, poly
        try:
            P0, P1 = poly
        except (TypeError, ValueError):
            raise ValueError("polynomial must be 'data', 'fit', 'taylor' or a pair (P0_list, P1_list) of "
                             "per-layer coefficient lists.") from None
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
        return out[0], out[1], "given"

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Draw the random tables for images of one shape.

        Parameters
        ----------
        X : tuple (H, W, C) or array_like (n, H, W, C)
            The image shape, or images: their shape, if ``nonnegative`` is None the sign of their pixels, and for
            ``polynomial='data'`` up to ``polynomial_images`` of them are used.
        y : ignored

        Returns
        -------
        self
        """
        L, m, q, p, d, ff, fl = self._check_params()
        nonneg = self.nonnegative
        images = None
        if isinstance(X, tuple) and len(X) == 3 and all(isinstance(v, (int, np.integer)) for v in X):
            shape = tuple(int(v) for v in X)
            if min(shape) < 1:
                raise ValueError(f"image shape (H, W, C) must be positive; got {shape}.")
        else:
            Xc = check_images(X, "X", dtype=None)
            warn_if_channels_first(Xc.shape, "X", self.padding)
            shape = Xc.shape[1:]
            if Xc.shape[0] > 0:
                images = Xc
            if nonneg is None:
                nonneg = bool(np.all(Xc >= 0))
        nonneg = bool(nonneg) if nonneg is not None else False
        H, W, C = shape
        check_receptive_field(H, W, L, q, self.padding)
        P0, P1, method = self._polynomials(L, p, nonneg, images)
        patch = default_patch_sketch(d) if self.patch_sketch == "auto" else self.patch_sketch
        self._tables = draw_cntk_sketch_tables((H, W, C), L, q, p, d, m, P0, P1, fix_first=ff, fix_last=fl,
                                               patch_sketch=patch, seed=check_random_state(self.seed))
        self._workspace = _workspace_sizes(self._tables, (H, W, C))
        self.image_shape_ = (H, W, C)
        self.grid_sizes_ = cntk_grid_sizes(H, W, L, q, self.padding)
        self.poly_k0_, self.poly_k1_ = P0, P1
        self.polynomial_ = method
        self.nonnegative_ = nonneg
        self.n_features_out_ = m
        self.pixel_dim_ = d
        self.patch_sketch_ = patch
        self.n_features_in_ = H * W * C   # values per image
        self._config = (L, m, q, p, d, ff, fl)
        return self

    # -------------------------------------------------------------------------------------------- transform
    def transform(self, X, *, chunk_size=256):
        """Features of the images ``X`` (n, H, W, C) -> (n, n_components) float64.

        Images are converted to float64 and sketched ``chunk_size`` at a time, in parallel over images; memory
        beyond the output is O(chunk_size P + threads P pixel_dim), independent of n.
        """
        check_is_fitted(self, "n_features_out_",
                        "This {name} instance is not fitted yet: call fit(image_shape or images) first.")
        chunk_size = check_positive_int(chunk_size, "chunk_size")
        arr = X if isinstance(X, np.ndarray) else check_images(X, "X", allow_empty=True)
        if arr.dtype.kind not in "biuf":  # object arrays read as float64, complex rejected, even with 0 images
            arr = check_images(arr, "X", allow_empty=True)
        if arr.ndim != 4 or min(arr.shape[1:]) == 0:
            check_images(arr, "X")  # raises the standard message
        if arr.shape[1:] != self.image_shape_:
            raise ValueError(f"X has images of shape {arr.shape[1:]} but this CNTKSketch was fitted on "
                             f"{self.image_shape_}; resize the images or refit.")
        L, m, q, p, d, ff, fl = self._config
        n = arr.shape[0]
        out = np.empty((n, m))
        dims = np.array(self.grid_sizes_, dtype=np.int64)
        off = patch_offset(q, self.padding)
        for b0 in range(0, n, chunk_size):
            Xb = check_images(arr[b0:b0 + chunk_size], "X", dtype=np.float64)
            e = row_scale_exponents(Xb)  # F(c x) = c F(x): extreme images rescaled by 2^-e, scaled back exactly
            Xb = scale_rows(Xb, e)
            nb = Xb.shape[0]
            n_chunks = max(1, min(nb, numba.get_num_threads()))
            _sketch_images(Xb, self._tables, dims, q, off, ff, fl, bool(self.renormalize), self._workspace,
                           n_chunks, out[b0:b0 + nb])
            unscale_rows(out[b0:b0 + nb], e, "X")
        return out

    def fit_transform(self, X, y=None):
        """``fit(X)`` then ``transform(X)`` (X must be images here)."""
        return self.fit(X).transform(X)
