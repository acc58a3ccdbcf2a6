"""NTKSketch: oblivious sketches of the fully connected ReLU NTK (Zandieh et al. 2021, Algorithm 1; docs/math.md §5).

The arc-cosine functions are replaced by polynomials with non-negative coefficients (:mod:`ntk_sketch.kernels.polynomials`)
and the polynomial kernels are sketched with PolySketch (:mod:`ntk_sketch.sketches.polysketch`), so a row costs time
linear in its number of non-zeros plus O(m log m) per sketch.  Three variants:

``variant='layered'`` (Algorithm 1; depth <= 10: deeper nets are refused with a pointer to 'compressed').  With
``phi_0 = psi_0 = x / |x|`` and per layer polynomials P1_h ~ k1, P0_h ~ k0 (coefficients c1, c0):

    Z_l      = Q_h^l phi_{h-1}^(l),  l = 1..p                        (one PolySketch per layer, all degrees)
    phi_h    = SRHT( sqrt(c1_0) (+) sqrt(c1_1) Z_1 (+) ... )           <phi_h(y), phi_h(z)> ~ s_h
    phidot_h = SRHT( sqrt(c0_0) (+) sqrt(c0_1) Z_1 (+) ... )           <.,.> ~ k0(s_{h-1})
    psi_h    = SRHT( TensorSRHT(psi_{h-1}, phidot_h) (+) phi_h )       <.,.> ~ T_{h-1} Sdot_h + S_h
    features = |x| psi_L

Every map is independent and unbiased, so at L = 1 the expected inner product is exactly the polynomial
recursion ``a P0(a) + P1(a)``; for L >= 2 the polynomials of deeper layers are evaluated at estimated inner
products, which leaves a bias of the order of the sketch variance (it vanishes as the sketch dimension grows).
With ``normalize_layers=True`` (default) phi_h is rescaled to unit norm before it enters the next layer, so that
the next layer's polynomial sees a cosine in [-1, 1] and the diagonal ``<phi_h(x), phi_h(x)> = 1 = s_h(1)`` is
exact; this is a ratio estimator (not in the paper's Algorithm 1) that lowers the error; ``False`` is the paper's.

``variant='single'``: one polynomial with non-negative coefficients approximates the whole ``K_L``
(:func:`ntk_sketch.kernels.polynomials.ntk_polynomial`) and one sketch of the tensor powers carries it:
``features = |x| [sqrt(c_0), sqrt(c_1) Q^1 u, ..., sqrt(c_p) Q^p u^(p)]`` with ``u = x/|x|``.  Unbiased for the
polynomial kernel ``|x||y| sum_l c_l a^l`` at every depth, with no compounding of errors across layers (the
authors' released code uses this form).  Three economies, none of which changes the expectation: degrees with
``c_l = 0`` get no columns (least-squares fits are sparse: K_2 at degree 4 uses l = 0, 1, 4); the degree-1 term
is ``u`` itself when d is below a degree's share of m (no variance); and for dense input with d <= the per-degree
width, each degree is a tree of TensorSRHTs with identity leaves instead of a PolySketch with SRHT leaves (the
leaves would only add variance and transforms of length m where length d suffices).  Sparse or high-dimensional
input uses PolySketch with OSNAP leaves (input-sparsity time).

``variant='compressed'`` (the default): the same single polynomial, but every degree is sketched at full width w
(default m up to m = 2048, m/2 above) and the coefficient-weighted concatenation is compressed to m by one more
sketch (the authors' and neural-tangents' construction):

    features = |x| [ sqrt(c_0), (sqrt(c_1) u), S( sqrt(c_1) T_1 u (+) sqrt(c_2) T_2 u^(2) (+) ... ) ]

with T_l the degree-l sketch (a tree of TensorSRHTs with identity leaves for dense u, d <= w; PolySketch with
OSNAP leaves otherwise) and S an SRHT (m <= 2048) or a CountSketch (cheaper; above).  The constant is exact, and so
is the linear block u when the variance proxy ``|G|^4 / m_out`` of the compression says it pays for its d columns.
Unbiased for the polynomial kernel (S is unbiased given the concatenation).  Why it beats splitting m: the
compression's variance scales with ``(P(1) - c_0)^2 / m`` for the whole polynomial, while a split gives every
degree only m / k columns.  On the standardised Fashion-MNIST protocol (L = 2) it measured 0.085 / 0.043 / 0.031
at m = 1024 / 4096 / 8192 against 0.208 / 0.060 / 0.049 for 'single' (benchmarks/bench_ntk_features.py).  When
the sketched degrees fit in m side by side (raw pixels: the data polynomial keeps the constant, u and degree 4
only), nothing is compressed and each degree's sketch is widened to fill the output: on raw rows 0.030 / 0.026 at
m = 4096 / 8192 against 0.034 / 0.036 with a compression.  The trees of the degrees share their left subtrees
(:func:`_draw_power_trees`): degrees 2, 3, 4 cost four TensorSRHTs instead of six, which with the kernels
called directly on validated rows took m = 8192 from about 4,800 to 8,400 rows/s at the same error.

Polynomials: ``'data'`` (default: a least-squares fit weighted like the Frobenius error, on the cosines of pairs of
the rows given to ``fit``; :func:`ntk_sketch.kernels.polynomials.ntk_polynomial_for_cosines`), ``'taylor'``
(truncated series, the theory's choice) or ``'fit'`` (least squares on an interval, non-negative, exact at a = 1).  Fitting intervals: layers >= 2 see values of k1, i.e. cosines in [0, 1]; the first layer (and the
single polynomial) sees the input cosines, which are in [0, 1] when every input entry is >= 0 (detected at fit).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._base import BaseEstimator, TransformerMixin, check_is_fitted
from .._validation import (
    check_bool,
    check_matrix,
    check_n_features,
    check_positive_int,
    check_random_state,
    row_scale_exponents,
    scale_rows,
    unscale_rows,
)
from ..kernels.polynomials import arccos_polynomials, ntk_polynomial, ntk_polynomial_for_cosines
from ..sketches.countsketch import _countsketch_dense_batch, draw_countsketch
from ..sketches.polysketch import apply_polysketch, draw_polysketch, weighted_concat
from ..sketches.srht import _srht_dense_batch, apply_srht, draw_srht
from ..sketches.tensor_srht import _tensor_srht_batch, draw_tensor_srht, tensor_srht

__all__ = ["NTKSketch"]


def _row_norms(X):
    if sp.issparse(X):
        return np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return np.sqrt(np.einsum("ij,ij->i", X, X))


def _scale_rows(X, factors):
    if sp.issparse(X):
        return sp.csr_matrix(sp.diags(factors) @ X)
    return X * factors[:, None]


# variant='compressed', compression='auto': SRHT (lower variance, sampling without replacement) up to this m,
# CountSketch above it (cost linear in the concatenation; measured on bench_ntk_features.py)
_SRHT_COMPRESSION_MAX_M = 2048
# variant='layered' refuses deeper nets (see _check_params)
_LAYERED_MAX_DEPTH = 10


def _cosine_sample(X, max_rows=400, n_bins=4000):
    """Cosines of pairs of (up to ``max_rows`` evenly spaced, non-zero) rows of X and their Frobenius weights.

    Returns ``(a, w)``: the pair cosines binned into ``n_bins`` equal bins of [-1, 1] (``a`` the weighted mean
    cosine of a bin, ``w`` the bin's total weight ``sum |x|^2 |y|^2``); the diagonal (cosine 1, fitted exactly) is
    left out.  Deterministic: no random numbers are drawn.
    """
    n = X.shape[0]
    idx = np.unique(np.linspace(0, n - 1, min(n, max_rows)).astype(np.int64))
    B = X[idx]
    B = B.toarray() if sp.issparse(B) else np.asarray(B, dtype=np.float64)
    B = B.astype(np.float64, copy=False)
    # Rows with entries outside ~[1e-77, 1e77] would over- or underflow |x|^2 |y|^2: rows are rescaled by powers of
    # two (exact) and the weights carry the exponents, shifted so that the largest weight is of order one.
    e = row_scale_exponents(B, np.float64)
    B = scale_rows(B, e)
    nrm = np.sqrt(np.einsum("ij,ij->i", B, B))
    keep_rows = nrm > 0
    B, nrm, e = B[keep_rows], nrm[keep_rows], e[keep_rows]
    if B.shape[0] < 2:
        return np.zeros(0), np.zeros(0)
    U = B / nrm[:, None]
    iu = np.triu_indices(B.shape[0], 1)
    a = np.clip((U @ U.T)[iu], -1.0, 1.0)
    w = (nrm[:, None] * nrm[None, :])[iu] ** 2
    if np.any(e):
        shift = 2 * (e[:, None] + e[None, :])[iu]
        w = np.ldexp(w, shift - shift.max())
    k = np.minimum(((a + 1.0) * (n_bins / 2.0)).astype(np.int64), n_bins - 1)
    wsum = np.bincount(k, weights=w, minlength=n_bins)
    asum = np.bincount(k, weights=w * a, minlength=n_bins)
    keep = wsum > 0
    return asum[keep] / wsum[keep], wsum[keep]


def _draw_power_trees(d, m, degrees, rng):
    """Tables of TensorSRHT trees sketching ``u^(l)`` for every l in ``degrees``, identity leaves (dense u, d <= m).

    Degree 1 is the leaf u itself.  Degree l >= 2 is one node ``TensorSRHT(Q^ceil(l/2) u, R^floor(l/2) u)`` whose
    left child is the sketch of degree ceil(l/2) that the other degrees use too (built once, shared) and whose right
    child R is a fresh tree of its own (so that the two children are independent).  Each node is unbiased given its
    children and independent of them, so ``E <Q^l u, Q^l v> = <u, v>^l`` for every l, without padding with e1
    leaves.  Sharing the left children costs degrees 2, 3, 4 four TensorSRHTs instead of six; each degree is still
    unbiased (only the covariance between degrees changes, which the compression's error did not show: module
    docstring).  For dense input of dimension d <= m the leaf sketch of PolySketch (docs/math.md §4) is not needed
    for dimension reduction, and skipping it removes its variance and its cost: the first-level nodes transform
    vectors of length next_pow2(d) instead of next_pow2(m).

    Returns ``(nodes, outputs)``: ``nodes`` a list of ``(left, right, TensorSRHTTables)`` in evaluation order, where
    a child is -1 for u or the index of an earlier node; ``outputs[l]`` the node carrying degree l (-1 for l = 1).
    """
    nodes, shared = [], {1: -1}

    def width(child):
        return d if child < 0 else m

    def fresh(k):
        # an independent tree of degree k (no node shared with anything else)
        if k == 1:
            return -1
        left, right = fresh((k + 1) // 2), fresh(k // 2)
        nodes.append((left, right, draw_tensor_srht(width(left), width(right), m, rng)))
        return len(nodes) - 1

    def sketch(k):
        if k not in shared:
            left = sketch((k + 1) // 2)
            right = fresh(k // 2)
            nodes.append((left, right, draw_tensor_srht(width(left), width(right), m, rng)))
            shared[k] = len(nodes) - 1
        return shared[k]

    outputs = {int(l): sketch(int(l)) for l in sorted(degrees)}
    return nodes, outputs


def _apply_power_trees(u, trees, into=None):
    """``[Q^l u for l in sorted(outputs)]`` from :func:`_draw_power_trees`'s tables; u dense, rows of norm <= 1
    (validated and scaled by the caller, so the njit kernel is called directly).  ``into``: optional list of
    (n, width) arrays, one per degree in sorted order, that receive the sketches (views into a larger array are
    fine); the returned list then holds those arrays."""
    nodes, outputs = trees
    degrees = sorted(outputs)
    target = {outputs[l]: into[i] for i, l in enumerate(degrees)} if into is not None else {}
    values = []
    for k, (left, right, t) in enumerate(nodes):
        X = u if left < 0 else values[left]
        Y = u if right < 0 else values[right]
        out = target.get(k)
        if out is None:
            out = np.empty((u.shape[0], t.rows1.shape[0]), dtype=u.dtype)
        _tensor_srht_batch(t.signs1, t.signs2, t.rows1, t.rows2, t.scale, t.n_pad1, t.n_pad2, X, Y, out)
        values.append(out)
    result = []
    for i, l in enumerate(degrees):
        if outputs[l] >= 0:
            result.append(values[outputs[l]])
        elif into is not None:
            into[i][:] = u
            result.append(into[i])
        else:
            result.append(u)
    return result


class NTKSketch(TransformerMixin, BaseEstimator):
    """Sketch of the depth-L fully connected ReLU NTK (Algorithm 1 of Zandieh et al. 2021; docs/math.md §5).

    Parameters
    ----------
    depth : int, default 2
        Number of hidden ReLU layers L >= 1 (the kernel of :func:`ntk_sketch.kernels.ntk_exact.ntk_kernel`).
    n_components : int, default 8192
        Output dimension m.  For ``variant='single'``, and for 'compressed' when the sketched degrees fit side by
        side, the output has at most m columns: the constant coordinate, possibly the exact linear block (d
        columns) and one block of equal width per sketched degree (``n_features_out_`` says how many).
    degree : int, default 4
        Degree p of the polynomials (any p >= 1).
    polynomial : {'data', 'fit', 'taylor'}, default 'data'
        'data': least-squares fit, weighted by ``|x|^2 |y|^2``, to the cosines of pairs of the rows given to
        ``fit`` (:func:`ntk_sketch.kernels.polynomials.ntk_polynomial_for_cosines`), which minimises the
        Frobenius error of the polynomial kernel on such data; for the layered variant, the sup-norm fit on
        ``[min cosine, 1]``.  'fit': least squares on a fixed interval; 'taylor': truncated series.
    variant : {'compressed', 'single', 'layered'}, default 'compressed'
        'compressed': one polynomial for the whole K_L, every degree sketched at full width and the weighted
        concatenation compressed to m by one SRHT (module docstring); 'single': the same polynomial with m split
        between the degrees; 'layered': the paper's Algorithm 1.  The default is the most accurate at equal m
        on ``benchmarks/bench_ntk_features.py``.
    sketch_dim : int, optional
        Internal width: of each degree's sketch for 'compressed' (default ``n_components`` up to 2048, then
        ``n_components // 2``: at m = 8192 the half width runs at about the speed of the previous 'single' variant
        and is still well under the authors' error), of the PolySketch,
        phi/phidot and TensorSRHT sketches for 'layered' (default ``n_components // 2``).
    normalize_layers : bool, default True
        Layered variant only: rescale phi_h to unit norm between layers (see the module docstring).
    base : {'auto', 'osnap', 'srht'}, default 'auto'
        Leaf sketch of the first PolySketch: OSNAP for sparse input (input-sparsity time), SRHT for dense.
    compression : {'auto', 'srht', 'countsketch'}, default 'auto'
        Variant 'compressed': the map that compresses the weighted concatenation of the degrees' sketches to m.
        SRHT samples without replacement (lower variance); CountSketch costs one pass over the concatenation.
        'auto': SRHT for ``n_components <= 2048``, CountSketch above.
    node : {'tensor_srht', 'countsketch'}, default 'tensor_srht'
        Internal nodes of the degree sketches: TensorSRHT, or CountSketch products by FFT ("TensorSketch" nodes,
        docs/math.md §10, with OSNAP leaves; :func:`ntk_sketch.sketches.polysketch.draw_polysketch`).  Measured on
        ``benchmarks/bench_ntk_features.py`` (L = 2, 1000 rows, median of 3 seeds): at equal m CountSketch nodes
        are more accurate on raw non-negative rows (m = 1024: 0.046 against 0.067), as accurate on standardised
        rows (0.085 against 0.085; 0.030 against 0.031 at m = 8192), and 10-30x slower (numpy FFTs against njit
        Hadamard transforms), so at equal time TensorSRHT nodes are far more accurate: the default.
    chunk_size : int, default 256
        Rows per block in ``transform``; working memory is O(chunk_size * degree * sketch_dim).
    seed : None, int, SeedSequence or numpy.random.Generator

    Attributes
    ----------
    n_features_in_ : int
    n_features_out_ : int
    sketch_width_ : int
        ``variant='single'``: columns per sketched degree.
    coefficients_ : dict
        The polynomials used: ``{'P0': [...], 'P1': [...]}`` per layer (layered) or ``{'K': c}`` (single).
    """

    _accept_sparse = True
    _preserves_float32 = True

    def __init__(self, depth=2, n_components=8192, *, degree=4, polynomial="data", variant="compressed",
                 sketch_dim=None, normalize_layers=True, base="auto", chunk_size=256, seed=None,
                 compression="auto", node="tensor_srht"):
        self.depth = depth
        self.n_components = n_components
        self.degree = degree
        self.polynomial = polynomial
        self.variant = variant
        self.sketch_dim = sketch_dim
        self.normalize_layers = normalize_layers
        self.base = base
        self.chunk_size = chunk_size
        self.seed = seed
        self.compression = compression
        self.node = node

    def _check_params(self):
        L = check_positive_int(self.depth, "depth")
        m = check_positive_int(self.n_components, "n_components", minimum=2)
        p = check_positive_int(self.degree, "degree")
        if self.polynomial not in ("data", "fit", "taylor"):
            raise ValueError(f"polynomial must be 'data', 'fit' or 'taylor'; got {self.polynomial!r}.")
        if self.variant not in ("compressed", "layered", "single"):
            raise ValueError(f"variant must be 'compressed', 'single' or 'layered'; got {self.variant!r}.")
        if self.compression not in ("auto", "srht", "countsketch"):
            raise ValueError(f"compression must be 'auto', 'srht' or 'countsketch'; got {self.compression!r}.")
        if self.base not in ("auto", "osnap", "srht"):
            raise ValueError(f"base must be 'auto', 'osnap' or 'srht'; got {self.base!r}.")
        if self.node not in ("tensor_srht", "countsketch"):
            raise ValueError(f"node must be 'tensor_srht' or 'countsketch'; got {self.node!r}.")
        if self.variant == "single" and m - 1 < p:
            raise ValueError(f"n_components must be at least degree + 1 = {p + 1} for variant='single'; got {m}.")
        if self.variant == "compressed" and m < 2:
            raise ValueError(f"n_components must be at least 2 for variant='compressed'; got {m}.")
        if self.variant == "compressed":  # full width up to 2048, half width above (measured: module docstring)
            default_ms = m if m <= 2048 else m // 2
        else:
            default_ms = max(m // 2, 1)
        if self.variant == "layered" and L > _LAYERED_MAX_DEPTH:
            raise ValueError(
                f"variant='layered' is limited to depth <= {_LAYERED_MAX_DEPTH} (got depth={L}): its errors compound "
                "across layers, so that at depth 20-50 the error stops falling with n_components (and overflows "
                "without normalize_layers).  Use variant='compressed' (the default), whose error does not depend on "
                "the depth beyond the polynomial fit.")
        ms = default_ms if self.sketch_dim is None else check_positive_int(self.sketch_dim, "sketch_dim")
        check_positive_int(self.chunk_size, "chunk_size")
        check_bool(self.normalize_layers, "normalize_layers")
        return L, m, p, ms

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Choose the polynomials and draw every random table (X: dense or CSR, only its shape and sign used)."""
        X = check_matrix(X, "X", dtype=None, accept_sparse=True)
        L, m, p, ms = self._check_params()
        rng = check_random_state(self.seed)
        d = X.shape[1]
        self.n_features_in_ = d
        data = X.data if sp.issparse(X) else X
        first_interval = (0.0, 1.0) if data.size == 0 or data.min() >= 0 else (-1.0, 1.0)
        self.first_layer_interval_ = first_interval
        # CountSketch nodes: OSNAP leaves by default (injective hashes for d <= width: isometries, no collisions)
        base = self.base if self.base != "auto" else (
            "osnap" if sp.issparse(X) or self.node == "countsketch" else "srht")
        self.base_ = base
        if self.variant in ("single", "compressed") and self.polynomial == "data":
            a, w = _cosine_sample(X)
            c = ntk_polynomial_for_cosines(L, p, a, w) if a.size else ntk_polynomial(L, p, "fit", first_interval)
        elif self.variant in ("single", "compressed"):
            c = ntk_polynomial(L, p, self.polynomial, first_interval)
        if self.variant == "compressed":
            return self._fit_compressed(X, c, d, m, ms, base, rng)
        if self.variant == "single":
            self.coefficients_ = {"K": c}
            # Only degrees with c_l > 0 get columns (least-squares fits are often sparse: K_2 at degree 4 uses
            # l = 0, 1, 4).  Degree 1 is kept exact (u itself, no variance) when d is below a degree's share of m.
            active = [l for l in range(1, p + 1) if c[l] > 0]
            self.exact_linear_ = bool(1 in active and d < (m - 1) // max(len(active), 1))
            sketched = [l for l in active if not (l == 1 and self.exact_linear_)]
            budget = m - 1 - (d if self.exact_linear_ else 0)
            m_poly = budget // len(sketched) if sketched else 0
            if sketched and m_poly < 1:
                raise ValueError(f"n_components = {m} is too small for {len(sketched)} sketched degrees.")
            self.sketched_degrees_ = np.array(sketched, dtype=np.int64)
            self.sketch_width_ = m_poly  # columns per sketched degree
            # dense input of dimension <= m_poly: a tree of TensorSRHTs per degree, identity leaves; otherwise one
            # PolySketch (OSNAP leaves for sparse input: input-sparsity time) for all degrees at once
            self.power_trees_ = None
            self.poly_tables_ = None
            if sketched and self._power_trees_apply(X, d, m_poly):
                self.power_trees_ = _draw_power_trees(d, m_poly, sketched, rng)
            elif sketched:
                self.poly_tables_ = draw_polysketch(d, m_poly, max(sketched), base=base, seed=rng, node=self.node)
            self.n_features_out_ = 1 + (d if self.exact_linear_ else 0) + len(sketched) * m_poly
            return self
        P0, P1 = [], []
        method = self.polynomial
        if method == "data":  # the sup-norm fit on the interval the input cosines occupy
            a, _ = _cosine_sample(X)
            lo = max(-1.0, min(float(a.min()) - 0.05, 0.0)) if a.size else first_interval[0]
            first_interval, method = (lo, 1.0), "fit"
            self.first_layer_interval_ = first_interval
        for h in range(L):
            c0, c1 = arccos_polynomials(method, p, first_interval if h == 0 else (0.0, 1.0))
            P0.append(c0)
            P1.append(c1)
        self.coefficients_ = {"P0": P0, "P1": P1}
        self.layer_tables_ = []
        dim_phi, dim_psi = d, d
        for h in range(L):
            out_dim = m if h == L - 1 else ms
            tables = {
                "poly": draw_polysketch(dim_phi, ms, p, base=base if h == 0 else "srht", seed=rng, node=self.node),
                "phi": draw_srht(1 + p * ms, ms, rng),
                "phidot": draw_srht(1 + p * ms, ms, rng),
                "tensor": draw_tensor_srht(dim_psi, ms, ms, rng),
                "psi": draw_srht(2 * ms, out_dim, rng),
            }
            self.layer_tables_.append(tables)
            dim_phi, dim_psi = ms, out_dim
        self.n_features_out_ = m
        return self

    def _power_trees_apply(self, X, d, width):
        """TensorSRHT trees with identity leaves replace PolySketch for dense input of dimension <= width."""
        return self.node == "tensor_srht" and not sp.issparse(X) and self.base == "auto" and d <= width

    def _fit_compressed(self, X, c, d, m, w, base, rng):
        """Tables of variant 'compressed' (module docstring): per-degree sketches of width w, one SRHT to m."""
        self.coefficients_ = {"K": c}
        active = [l for l in range(1, len(c)) if c[l] > 0]
        # The constant coordinate is exact.  The linear block u (d columns) is kept exact too when that lowers the
        # variance of the compression, which scales like |G|^4 / m_out with |G|^2 = P(1) - c_0 (- c_1 if exact).
        rest = float(c.sum() - c[0])
        exact = False
        if 1 in active and d < m - 1 - 16:
            exact = (rest - c[1]) ** 2 / (m - 1 - d) < rest ** 2 / (m - 1)
        self.exact_linear_ = bool(exact)
        sketched = [l for l in active if not (l == 1 and exact)]
        self.sketched_degrees_ = np.array(sketched, dtype=np.int64)
        self.sketch_width_ = w
        self.power_trees_ = None
        self.poly_tables_ = None
        self.compress_tables_ = None
        m_out = m - 1 - (d if exact else 0)
        self.compression_ = None
        if sketched:
            trees = self._power_trees_apply(X, d, w)
            fixed = d if (trees and 1 in sketched) else 0  # degree 1 through a tree is u itself: d columns
            n_wide = len(sketched) - (1 if fixed else 0)
            kind = self.compression
            if kind == "auto" and fixed + n_wide * w <= m_out:
                # the concatenation fits in m: no compression, and each sketch as wide as the output allows
                kind = "none"
                w = max(w, (m_out - fixed) // n_wide) if n_wide else w
                self.sketch_width_ = w
                trees = self._power_trees_apply(X, d, w)
            elif kind == "auto":
                kind = "srht" if m <= _SRHT_COMPRESSION_MAX_M else "countsketch"
            if trees:
                self.power_trees_ = _draw_power_trees(d, w, sketched, rng)
                widths = [d if l == 1 else w for l in sketched]
            else:
                self.poly_tables_ = draw_polysketch(d, w, max(sketched), base=base, seed=rng, node=self.node)
                widths = [w] * len(sketched)
            self.block_widths_ = np.array(widths, dtype=np.int64)
            self.compression_ = kind
            weights = np.repeat(np.sqrt(c[sketched]), widths)  # sqrt(c_l) per column of the concatenation
            if kind == "srht":
                self.compress_tables_ = draw_srht(int(sum(widths)), m_out, rng)
                self.compress_signs_ = self.compress_tables_.signs * weights
            elif kind == "countsketch":
                self.compress_tables_ = draw_countsketch(int(sum(widths)), m_out, 1, rng)
                self.compress_signs_ = self.compress_tables_.signs * weights[:, None]
            else:
                m_out = int(sum(widths))
        self.n_features_out_ = 1 + (d if exact else 0) + (m_out if sketched else 0)
        return self

    # ---------------------------------------------------------------------------------------------- transform
    def transform(self, X):
        """Features of shape (n, n_features_out_) for rows of X (dense or CSR; float32 stays float32)."""
        check_is_fitted(self, "n_features_out_")
        X = check_matrix(X, "X", dtype=None, accept_sparse=True, allow_empty_rows=True)
        check_n_features(X, self.n_features_in_, owner=self)
        e = row_scale_exponents(X)  # F(c x) = c F(x): extreme rows rescaled by 2^-e, output scaled back exactly
        X = scale_rows(X, e)
        n = X.shape[0]
        out = np.empty((n, self.n_features_out_), dtype=X.dtype)
        for start in range(0, n, self.chunk_size):
            block = X[start:start + self.chunk_size]
            norms = _row_norms(block)
            inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            u = _scale_rows(block, inv.astype(X.dtype))
            if self.variant == "compressed":
                F = self._transform_compressed(u)
            elif self.variant == "single":
                F = self._transform_single(u)
            else:
                F = self._transform_layered(u)
            np.multiply(F, norms[:, None].astype(X.dtype), out=out[start:start + block.shape[0]])
        return unscale_rows(out, e, "X")

    def _transform_single(self, u):
        c = self.coefficients_["K"]
        parts = [np.full((u.shape[0], 1), np.sqrt(c[0]), dtype=u.dtype)]
        if self.exact_linear_:
            parts.append(np.sqrt(c[1]) * (u.toarray() if sp.issparse(u) else u))
        if self.power_trees_ is not None:
            for l, Z in zip(self.sketched_degrees_, _apply_power_trees(u, self.power_trees_)):
                parts.append(np.sqrt(c[l]) * Z)
        elif self.poly_tables_ is not None:
            Z = apply_polysketch(u, self.poly_tables_, name="X")
            deg = self.sketched_degrees_
            parts.append((Z[:, deg - 1, :] * np.sqrt(c[deg])[None, :, None]).reshape(u.shape[0], -1))
        return np.hstack(parts)

    def _transform_compressed(self, u):
        c = self.coefficients_["K"]
        n = u.shape[0]
        F = np.empty((n, self.n_features_out_), dtype=u.dtype)
        F[:, 0] = np.sqrt(c[0])
        col = 1
        dense = u.toarray() if sp.issparse(u) else u
        if self.exact_linear_:
            np.multiply(dense, np.sqrt(c[1]), out=F[:, 1:1 + dense.shape[1]])
            col += dense.shape[1]
        degrees = self.sketched_degrees_
        if degrees.size == 0:
            return F
        # the degrees' sketches side by side, unweighted: the weights sqrt(c_l) are folded into the compression's
        # signs (_fit_compressed), or applied in place when nothing is compressed
        direct = self.compression_ == "none"
        Z = F[:, col:] if direct else np.empty((n, int(self.block_widths_.sum())), dtype=u.dtype)
        bounds = np.concatenate([[0], np.cumsum(self.block_widths_)])
        blocks = [Z[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        if self.power_trees_ is not None:
            _apply_power_trees(dense, self.power_trees_, into=blocks)
        else:
            P = apply_polysketch(u, self.poly_tables_, name="X")
            for block, l in zip(blocks, degrees):
                block[:] = P[:, l - 1, :]
        if direct:
            for block, l in zip(blocks, degrees):
                block *= np.sqrt(c[l])
            return F
        t = self.compress_tables_
        if self.compression_ == "srht":
            _srht_dense_batch(self.compress_signs_, t.rows, t.scale, t.n_pad, Z, F[:, col:])
        else:
            _countsketch_dense_batch(t.indices, self.compress_signs_, Z, F[:, col:])
        return F

    def _transform_layered(self, u):
        phi = u
        psi = u.toarray() if sp.issparse(u) else u
        for h, t in enumerate(self.layer_tables_):
            Z = apply_polysketch(phi, t["poly"], name="X")
            phi_next = apply_srht(weighted_concat(Z, self.coefficients_["P1"][h]), t["phi"])
            phidot = apply_srht(weighted_concat(Z, self.coefficients_["P0"][h]), t["phidot"])
            psi = apply_srht(np.hstack([tensor_srht(psi, phidot, t["tensor"]), phi_next]), t["psi"])
            if self.normalize_layers:
                nrm = np.sqrt(np.einsum("ij,ij->i", phi_next, phi_next))
                phi_next = phi_next / np.where(nrm > 0, nrm, 1.0)[:, None]
            phi = phi_next
        return psi

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
