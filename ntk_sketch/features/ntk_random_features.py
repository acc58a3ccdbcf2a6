"""NTKRF: random features for the fully connected ReLU NTK (Zandieh et al. 2021, Algorithm 2; docs/math.md §6).

Per layer h = 1..L, with ``z_nngp_0 = z_ntk_0 = x`` (no normalisation of the input is needed):

    t        = Phi0_h(z_nngp_{h-1}) = sqrt(2/m0) 1{W0_h^T z_nngp_{h-1} > 0}          (step features, ~ k0)
    z_nngp_h = Phi1_h(z_nngp_{h-1}) = sqrt(2/m1) relu(W1_h^T z_nngp_{h-1})            (ReLU features, ~ S_h)
    z_ntk_h  = [ z_nngp_h ,  TensorSRHT_ms(z_ntk_{h-1}, t) ]                           (~ S_h + T_{h-1} Sdot_h)

and the features are ``z_ntk_L`` (dimension m1 + ms).  Because every random map is independent of the others and
the TensorSRHT is unbiased, ``E <z(y), z(z)>`` equals the NTK at L = 1 exactly; for L >= 2 the deeper layers
evaluate k0, k1 at *estimated* inner products, which leaves a bias of the order of the variance.

Leverage-score sampling of the ReLU weights (Theorem 4 of the paper, for L = 1): draw ``w`` from
``q(w) = |w|^2 N(w; 0, I) / D`` (D the input dimension of the layer) and weight the feature by ``sqrt(D)/|w|``,
which keeps ``E_q[(D/|w|^2) relu(w.u) relu(w.v)] = E_N[relu(w.u) relu(w.v)]``.  ``q`` is rotation invariant and
``|w|^2 ~ chi-square(D + 2)`` under it, so ``w = g sqrt(chi2_{D+2}) / |g|`` with ``g ~ N(0, I)`` samples it exactly
(no Gibbs sampler).  Note that ``relu(w.u) sqrt(D)/|w| = sqrt(D) relu(u . w/|w|)``: the weighted feature depends on
the direction of ``w`` only, so leverage sampling amounts to ReLU features on uniformly random unit directions,
scaled by sqrt(D); the draw of |w| cancels.  We still draw |w| as the theorem states and apply the weight, which
costs nothing and keeps the code a literal transcription.  Leverage sampling is applied at every layer (the
identity above holds at any layer); the step features are unaffected by it (they depend on directions only).

Variance reductions that keep every expectation (the defaults; ``orthogonal=False, centered=False,
shared_directions=False`` with ``hidden_components=n_components`` is the plain construction above):

* orthogonal directions: the weight directions are orthogonal within blocks (orthogonal random features);
* centring: ``[sqrt(2) mu |z|, sqrt(2/m1) (f(z) - mu |z|)]`` with ``mu |z| = E f(z)`` for the ReLU features, and the
  steps around 1/2: ``E <., .>`` is unchanged because the centred parts have mean zero, while the common mode,
  which carries most of the kernel's value on data whose cosines spread around 0, becomes exact;
* the linear term: with centred steps ``t = [sqrt(1/2), t_c]``, so ``<z, z'> <t, t'> = (1/2) <z, z'> + <z, z'>
  <t_c, t_c'>``.  The TensorSRHT sketches only ``z_ntk_{h-1} (x) t_c`` (whose norm is half that of ``z (x) t``: a
  quarter of the variance), and ``(1/2) <z, z'>`` is estimated by k sampled coordinates of the signed Hadamard
  transform of ``z_ntk_{h-1}`` that the TensorSRHT computes anyway, times sqrt(1/2) (an SRHT, at no extra
  transform).  The rows are drawn independently of the TensorSRHT's pairs and second signs, so given the shared
  first signs the two estimates are independent, and since the TensorSRHT is unbiased for any first signs the two
  are uncorrelated;
* shared directions: a step feature depends on the direction of its weight only, so the steps reuse the ReLU
  directions (one GEMM per layer instead of two; each estimate stays unbiased, and the measured error did not
  change: 0.048 shared against 0.049 separate at m = 8192 on the standardised protocol);
* wider hidden layers: the features of layers 1..L-1 are never returned, so they may be wider than the output
  (``hidden_components``, default ``max(n_components, 2048)``).

Sparse (CSR) input: the first layer's products cost O(nnz (m0 + m1)) below 3% density (an njit CSR kernel;
above, the GEMM on the densified block is faster), the rest of the map does not depend on the sparsity.
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
import scipy.special

from .._base import BaseEstimator, TransformerMixin, check_is_fitted
from .._validation import (
    check_bool,
    check_matrix,
    check_n_features,
    check_nonnegative_float,
    check_positive_int,
    check_random_state,
    row_scale_exponents,
    scale_rows,
    serialised,
    unscale_rows,
)
from ..sketches.tensor_srht import _signed_fwht, _tensor_srht_batch, _tensor_srht_combine, draw_tensor_srht

__all__ = ["NTKRandomFeatures", "sample_leverage_relu_weights"]


def sample_leverage_relu_weights(dim, n_features, seed=None):
    """Draw ReLU weights from the leverage density ``q(w) = |w|^2 N(w; 0, I_dim) / dim`` (docs/math.md §6).

    Parameters
    ----------
    dim : int
        Input dimension D.
    n_features : int
        Number of weight vectors m.
    seed : None, int, SeedSequence or numpy.random.Generator

    Returns
    -------
    W : numpy.ndarray of shape (dim, n_features)
        Columns ``w = g sqrt(chi2_{D+2}) / |g|``: uniformly random directions with ``|w|^2 ~ chi-square(D + 2)``.
    weights : numpy.ndarray of shape (n_features,)
        Importance weights ``sqrt(D) / |w|`` so that ``E_q[weights^2 relu(w.u) relu(w.v)] = E_N[relu(w.u) relu(w.v)]``.
    """
    D = check_positive_int(dim, "dim")
    m = check_positive_int(n_features, "n_features")
    rng = check_random_state(seed)
    G = rng.standard_normal((D, m))
    radius = np.sqrt(rng.chisquare(D + 2, size=m))
    W = G * (radius / np.linalg.norm(G, axis=0))
    return W, np.sqrt(D) / radius


# orthogonal directions: within blocks of dim columns for dim <= _ORTHO_FULL_DIM, else of _ORTHO_BLOCK columns, and
# only for layer inputs of dimension at most _ORTHO_MAX_DIM (the QR costs O(dim block n); beyond, the directions are
# independent).  Measured at m = 1024 on the standardised protocol: full blocks 0.130, blocks of 256 0.137.
_ORTHO_FULL_DIM = 1024
_ORTHO_BLOCK = 256
_ORTHO_MAX_DIM = 8192


def _random_directions(dim, n, orthogonal, rng):
    """(dim, n) unit columns, each uniformly distributed on the sphere; if ``orthogonal``, the columns of each block
    (of dim columns for dim <= 1024, else 256) are orthonormal (Haar), for ``dim <= 8192`` (docs/math.md §6)."""
    G = rng.standard_normal((dim, n))
    if orthogonal and dim <= _ORTHO_MAX_DIM:
        block = dim if dim <= _ORTHO_FULL_DIM else _ORTHO_BLOCK
        with _single_blas_thread():
            for a in range(0, n, block):
                b = min(n, a + block)
                Q, R = np.linalg.qr(G[:, a:b])
                G[:, a:b] = Q * np.sign(np.diag(R))[None, :]  # sign fix: Q is then Haar distributed
        return G
    return G / np.linalg.norm(G, axis=0)


def _single_blas_thread():
    """LAPACK's QR with a threaded BLAS on a busy machine was measured 80x slower than on one thread (0.08 s vs
    5.8 s for 784 x 257 at load 17 on 2 cores); limit it to one thread when threadpoolctl is installed."""
    try:
        import threadpoolctl
    except ImportError:  # optional: without it the QR runs as configured
        import contextlib

        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(1, user_api="blas")


def _relu_mean(dim, sampling):
    """``E[weight relu(w . u)]`` for a unit u: the mean of one weighted ReLU feature (docs/math.md §6).

    Gaussian w: ``E relu(g) = 1/sqrt(2 pi)``.  Leverage sampling: the weighted feature is ``sqrt(D) relu(w_hat . u)``
    with w_hat uniform on the sphere, whose first coordinate has ``E|w_hat_1| = Gamma(D/2) / (sqrt(pi)
    Gamma((D+1)/2))``.
    """
    if sampling == "gaussian":
        return 1.0 / np.sqrt(2.0 * np.pi)
    D = float(dim)
    return 0.5 * np.sqrt(D) * np.exp(scipy.special.gammaln(D / 2) - scipy.special.gammaln((D + 1) / 2)) / np.sqrt(np.pi)


# Sparse first layer: below this density (stored entries / (rows x columns) of a block) the products with the
# CSR rows are cheaper than a GEMM on the densified block; above, the GEMM wins.  Measured for 512 rows of
# d = 65,536 against a (d, 1078) weight matrix, 2 cores: CSR kernel 0.15 s at 1% and 1.65 s at 10% density, dense
# GEMM 0.73 s (crossover near 4.5%); scipy's CSR product took 0.36 s and 4.5 s.
_SPARSE_MAX_DENSITY = 0.03


def _use_sparse_products(block):
    return block.nnz < _SPARSE_MAX_DENSITY * block.shape[0] * block.shape[1]


@serialised
@numba.njit(cache=True, parallel=True)
def _csr_times_dense(indptr, indices, data, W, out):
    """``out = A @ W`` for A in CSR (indptr, indices, data): O(nnz(A) W.shape[1]); rows in parallel, each row's
    sum in the order of its stored entries, so the result does not depend on the thread count."""
    for r in numba.prange(indptr.shape[0] - 1):
        o = out[r]
        o[:] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            v = data[p]
            w = W[indices[p]]
            for k in range(w.shape[0]):
                o[k] += v * w[k]


@serialised
@numba.njit(cache=True, parallel=True)
def _steps_and_relu(P, m0, off, m1, relu_scale, step_value, centred, constant_step, mu_norm, t, z):
    """From one layer's pre-activations P (rows in parallel): the step features into ``t`` and the ReLU features
    into ``z[:, :m1 + centred]`` (class docstring of NTKRandomFeatures).

    Steps (columns 0..m0-1 of P): ``sqrt(2/m0) 1{p > 0}``, or centred ``+-(1/2) sqrt(2/m0)`` after a constant
    ``sqrt(1/2)`` when ``constant_step``.  ReLU (columns off..off+m1-1): ``relu_scale relu(p)``, or centred
    ``[sqrt(2) mu|z|, relu_scale relu(p) - sqrt(2/m1) mu|z|]`` with ``mu_norm = mu |z|`` per row.
    """
    hi = 0.5 * step_value if centred else step_value
    lo = -hi if centred else 0.0 * step_value
    root_half = np.sqrt(0.5)
    root_two = np.sqrt(2.0)
    relu_centre = np.sqrt(2.0 / m1)
    for r in numba.prange(P.shape[0]):
        j0 = 0
        if constant_step:
            t[r, 0] = root_half
            j0 = 1
        for j in range(m0):
            t[r, j0 + j] = hi if P[r, j] > 0 else lo
        if centred:
            z[r, 0] = root_two * mu_norm[r]
            shift = relu_centre * mu_norm[r]
            for j in range(m1):
                v = P[r, off + j]
                z[r, 1 + j] = (v * relu_scale[j] if v > 0 else 0.0 * v) - shift
        else:
            for j in range(m1):
                v = P[r, off + j]
                z[r, j] = v * relu_scale[j] if v > 0 else 0.0 * v


@numba.njit(cache=True)
def _tensor_srht_and_linear_rows(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, Z, T, out, lin_rows,
                                 lin_scale, out_lin, r0, r1):
    """Rows r0..r1-1: ``out[r] = TensorSRHT(Z[r] (x) T[r])`` and ``out_lin[r] = lin_scale (Hu D1 Z[r])[lin_rows]``,
    one Hadamard transform of Z[r] serving both."""
    work1 = np.empty(n_pad1, dtype=out.dtype)
    work2 = np.empty(n_pad2, dtype=out.dtype)
    for r in range(r0, r1):
        _signed_fwht(signs1, Z[r], work1)
        _signed_fwht(signs2, T[r], work2)
        _tensor_srht_combine(rows1, rows2, scale, work1, work2, out[r])
        for j in range(lin_rows.shape[0]):
            out_lin[r, j] = lin_scale * work1[lin_rows[j]]


@serialised
@numba.njit(cache=True, parallel=True)
def _tensor_srht_and_linear_batch(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, Z, T, out, lin_rows,
                                  lin_scale, out_lin):
    """All rows of :func:`_tensor_srht_and_linear_rows`, blocks of 32 rows in parallel (thread-count independent)."""
    n = Z.shape[0]
    for b in numba.prange((n + 31) // 32):
        _tensor_srht_and_linear_rows(signs1, signs2, rows1, rows2, scale, n_pad1, n_pad2, Z, T, out, lin_rows,
                                     lin_scale, out_lin, b * 32, min(n, (b + 1) * 32))


def _layer_products(z, W):
    """``z @ W`` for dense z (a GEMM) or CSR z (the njit kernel above, O(nnz(z) W.shape[1]))."""
    if not sp.issparse(z):
        return z @ W
    out = np.empty((z.shape[0], W.shape[1]), dtype=W.dtype)
    _csr_times_dense(z.indptr, z.indices, z.data.astype(W.dtype, copy=False), W, out)
    return out


_MIN_HIDDEN = 2048  # default width of the hidden layers' features: max(n_components, 2048) (class docstring)


class NTKRandomFeatures(TransformerMixin, BaseEstimator):
    """Random features for the depth-L fully connected ReLU NTK (Algorithm 2 of Zandieh et al. 2021).

    Parameters
    ----------
    depth : int, default 2
        Number of hidden ReLU layers L >= 1 (the kernel of :func:`ntk_sketch.kernels.ntk_exact.ntk_kernel`).
    n_components : int, default 8192
        Output dimension ``m1 + c + ms`` (c = 1 with ``centered``).
    relu_fraction : float, optional
        Share of each layer's features given to the ReLU (NNGP) features: ``m1 = round(relu_fraction * width)``
        (less the centring coordinate), the rest ``ms`` to the NTK part.  Default 0.3 for ``n_components <= 2048``,
        0.25 above.
    n_step_features : int, optional
        ``m0``, the step-feature count per layer (they only enter through the TensorSRHT).  Default ``m1`` (the
        ReLU directions, shared), ``m1 + 1`` without the linear term.
    linear_fraction : float, default 0.5
        Share ``k = round(linear_fraction * ms)`` of the NTK part that estimates the linear term
        ``(1/2) K_{h-1}`` (module docstring; needs ``centered``, 0 turns it off).
    hidden_components : int, optional
        Width of the features of the hidden layers 1..L-1 (never returned).  Default ``max(n_components, 2048)``.
    shared_directions : bool, default True
        The step features reuse the ReLU directions (one GEMM per layer); False draws them independently.

    The defaults are the best of a sweep on the standardised Fashion-MNIST protocol of
    ``benchmarks/bench_ntk_features.py`` (L = 2, median of 7 seeds, relative Frobenius error): at m = 1024 / 4096
    / 8192 they reach 0.115-0.119 / 0.057 / 0.045, against 0.135 / 0.065 / 0.048 for the previous defaults
    (relu_fraction 0.35 and m0 = 2 m1 up to m = 4096, no linear term, separate directions, hidden width m), at
    1.1x / 2.5-2.8x / 1.15-1.7x their rows per second (two runs of the benchmark).
    sampling : {'leverage', 'gaussian'}, default 'leverage'
        How the ReLU weights are drawn (see the module docstring).
    dtype : {None, 'float32', 'float64'}
        Arithmetic of ``transform``; None follows the input (float32 stays float32, else float64).
    chunk_size : int, default 512
        Rows per block in ``transform`` (bounds the working memory to O(chunk_size * (m0 + m1 + ms))).
    seed : None, int, SeedSequence or numpy.random.Generator
    orthogonal : bool, default True
        Draw the directions of the step and ReLU weights orthogonal in blocks (orthogonal random features: lower
        variance, same expectation; see :func:`_random_directions`).
    centered : bool, default True
        Centred features: ``[sqrt(2) mu |z|, sqrt(2/m1) (f(z) - mu |z|)]`` for the ReLU features (mu the mean of
        one weighted ReLU feature of a unit vector, :func:`_relu_mean`) and ``[sqrt(1/2), sqrt(2/m0) (1{.} -
        1/2)]`` for the step features.  The inner products have the same expectation (the cross terms vanish
        because the centred parts have mean zero) and the common mode, exact, no longer carries variance:
        0.230 -> 0.136 relative error at m = 1024 on the standardised protocol.  Costs one coordinate each.

    Attributes
    ----------
    n_features_in_ : int
    W0_, W1_ : list of numpy.ndarray
        Step and ReLU weight matrices per layer, shapes (D_{h-1}, m0) and (D_{h-1}, m1).
    relu_scale_ : list of numpy.ndarray
        Per-feature factor ``sqrt(2/m1) * weight`` of the ReLU features, per layer.
    tensor_tables_ : list of TensorSRHTTables
        TensorSRHT of ``z_ntk_{h-1} (x) t`` per layer (of ``z_ntk_{h-1} (x) t_c`` with the linear term).
    linear_rows_ : list of (numpy.ndarray or None)
        The k sampled rows of the linear term's transform per layer (None where it is off).
    layer_splits_ : list of tuple
        ``(m0, m1, ms, c, k)`` per layer: steps, ReLU features, NTK part, centring coordinate, linear rows.
    m0_, m1_, ms_, centered_ :
        The last layer's split.
    """

    _accept_sparse = True
    _preserves_float32 = True

    def __init__(self, depth=2, n_components=8192, *, relu_fraction=None, n_step_features=None,
                 sampling="leverage", dtype=None, chunk_size=512, seed=None, orthogonal=True, centered=True,
                 hidden_components=None, shared_directions=True, linear_fraction=0.5):
        self.depth = depth
        self.n_components = n_components
        self.hidden_components = hidden_components
        self.shared_directions = shared_directions
        self.linear_fraction = linear_fraction
        self.relu_fraction = relu_fraction
        self.n_step_features = n_step_features
        self.sampling = sampling
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.seed = seed
        self.orthogonal = orthogonal
        self.centered = centered

    # ---------------------------------------------------------------------------------------------- fit
    def _check_params(self):
        L = check_positive_int(self.depth, "depth")
        m = check_positive_int(self.n_components, "n_components", minimum=2)
        hidden = max(m, _MIN_HIDDEN) if self.hidden_components is None else check_positive_int(
            self.hidden_components, "hidden_components", minimum=2)
        if self.relu_fraction is not None and not (0.0 < check_nonnegative_float(self.relu_fraction,
                                                                                  "relu_fraction") < 1.0):
            raise ValueError(f"relu_fraction must be strictly between 0 and 1; got {self.relu_fraction}.")
        if not (0.0 <= check_nonnegative_float(self.linear_fraction, "linear_fraction") < 1.0):
            raise ValueError(f"linear_fraction must be in [0, 1); got {self.linear_fraction}.")
        check_bool(self.orthogonal, "orthogonal")
        centered = check_bool(self.centered, "centered")
        check_bool(self.shared_directions, "shared_directions")
        if self.n_step_features is not None:
            check_positive_int(self.n_step_features, "n_step_features")
        if self.sampling not in ("leverage", "gaussian"):
            raise ValueError(f"sampling must be 'leverage' or 'gaussian'; got {self.sampling!r}.")
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be None, 'float32' or 'float64'; got {self.dtype!r}.")
        check_positive_int(self.chunk_size, "chunk_size")
        # layers 1..L-1 produce hidden features of width `hidden`, layer L the output of width m
        # more ReLU features for small outputs: 0.3 measured better than 0.25 at m = 1024, worse at m = 4096
        frac = (0.3 if m <= 2048 else 0.25) if self.relu_fraction is None else self.relu_fraction
        return L, [self._split(hidden if h < L - 1 else m, frac, centered) for h in range(L)]

    def _split(self, width, frac, centered):
        """(m0, m1, ms, c, k) of one layer whose features have ``width = m1 + c + ms`` coordinates: m0 steps,
        m1 ReLU features, c = 1 centring coordinate, ms NTK coordinates of which k carry the linear term
        (class docstring)."""
        c = 1 if (centered and width >= 3) else 0  # centring takes one coordinate; width 2 runs uncentred
        m1 = min(max(int(round(frac * width)) - c, 1), width - 1 - c)
        ms = width - m1 - c
        # the linear term needs the centred steps (it is their constant half); it leaves ms - k >= 1 for the rest
        k = min(int(round(self.linear_fraction * ms)), ms - 1) if c else 0
        m0 = (m1 if k else m1 + c) if self.n_step_features is None else int(self.n_step_features)
        return m0, m1, ms, c, k

    def fit(self, X, y=None):
        """Draw every random table for inputs with ``X.shape[1]`` features (only the shape of X is used)."""
        X = check_matrix(X, "X", dtype=None, accept_sparse=True)
        L, splits = self._check_params()
        rng = check_random_state(self.seed)
        d = X.shape[1]
        self.n_features_in_ = d
        self.layer_splits_ = splits
        self.m0_, self.m1_, self.ms_, c, _ = splits[-1]
        self.centered_ = bool(c)
        self.W0_, self.W1_, self.relu_scale_, self.tensor_tables_, self.relu_mean_ = [], [], [], [], []
        self.linear_rows_ = []
        dim_nngp, dim_ntk = d, d
        for m0, m1, ms, c, k in splits:
            # ReLU weights W1 (D, m1) with their per-feature weights, then the step weights W0 (D, m0): with shared
            # directions the steps reuse the first min(m0, m1) ReLU directions (a step depends on the direction
            # only) and draw only the m0 - m1 extra ones
            if self.orthogonal:
                dirs = _random_directions(dim_nngp, m1, True, rng)
                if self.sampling == "leverage":  # |w|^2 ~ chi-square(D + 2) under q (module docstring)
                    radius = np.sqrt(rng.chisquare(dim_nngp + 2, size=m1))
                    weights = np.sqrt(dim_nngp) / radius
                else:  # Gaussian columns: chi(D) lengths
                    radius = np.sqrt(rng.chisquare(dim_nngp, size=m1))
                    weights = np.ones(m1)
                W1 = dirs * radius[None, :]
            elif self.sampling == "leverage":
                W1, weights = sample_leverage_relu_weights(dim_nngp, m1, rng)
            else:
                W1, weights = rng.standard_normal((dim_nngp, m1)), np.ones(m1)
            n_new = m0 - min(m0, m1) if self.shared_directions else m0
            new = (_random_directions(dim_nngp, n_new, True, rng) if self.orthogonal
                   else rng.standard_normal((dim_nngp, n_new)))
            self.W0_.append(np.hstack([W1[:, :m0 - n_new], new]) if self.shared_directions else new)
            self.W1_.append(W1)
            self.relu_scale_.append(np.sqrt(2.0 / m1) * weights)
            self.relu_mean_.append(_relu_mean(dim_nngp, self.sampling))
            if k:
                # centred steps without their constant coordinate; the constant's term (1/2) <z, z'> by k sampled
                # coordinates of the same signed Hadamard transform of z_ntk that the TensorSRHT computes.  The
                # rows are drawn independently of the TensorSRHT's pairs and second signs, so the two estimates
                # are uncorrelated (docs/math.md §6); the transform is padded to at least k so that the k rows can
                # be distinct.
                tables = draw_tensor_srht(max(dim_ntk, k), m0, ms - k, rng)
                tables = tables._replace(signs1=tables.signs1[:dim_ntk])  # padded to >= k, signs for z only
                self.tensor_tables_.append(tables)
                self.linear_rows_.append(np.sort(rng.choice(tables.n_pad1, size=k, replace=False)).astype(np.int64))
            else:
                self.tensor_tables_.append(draw_tensor_srht(dim_ntk, m0 + c, ms, rng))
                self.linear_rows_.append(None)
            dim_nngp, dim_ntk = m1 + c, m1 + c + ms
        self._cast_cache = {}
        return self

    # ---------------------------------------------------------------------------------------------- transform
    def _weights_for(self, dtype):
        """Per layer, in the working dtype (converted once and cached): the matrix ``W`` of the layer's single GEMM
        ``P = z @ W``, from which the step pre-activations are ``P[:, :m0]`` and the ReLU pre-activations
        ``P[:, off:off + m1]``, and the ReLU features' scale.  With shared directions W = [W1, extra step
        directions] (off = 0), else [W0, W1] (off = m0)."""
        key = np.dtype(dtype).str
        if key not in self._cast_cache:
            layers = []
            for W0, W1, sc, (m0, m1, _, _, _) in zip(self.W0_, self.W1_, self.relu_scale_, self.layer_splits_):
                if self.shared_directions:
                    W = np.hstack([W1, W0[:, min(m0, m1):]])
                    off = 0
                else:
                    W, off = np.hstack([W0, W1]), m0
                layers.append((np.asarray(W, dtype=dtype), off, np.asarray(sc, dtype=dtype)))
            self._cast_cache[key] = layers
        return self._cast_cache[key]

    def transform(self, X):
        """Map rows of ``X`` (dense or CSR, float32 or float64) to features of dimension ``m1 + c + ms``.

        Streams over blocks of ``chunk_size`` rows, so memory is independent of the number of rows beyond the
        output itself.
        """
        check_is_fitted(self, "W1_")
        X = check_matrix(X, "X", dtype=None, accept_sparse=True, allow_empty_rows=True)
        check_n_features(X, self.n_features_in_, owner=self)
        dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        # F(c x) = c F(x): rows beyond ~2^+-256 (2^+-32 in float32) rescaled by 2^-e, output scaled back exactly
        e = row_scale_exponents(X, dtype)
        X = scale_rows(X, e)
        layers = self._weights_for(dtype)
        n = X.shape[0]
        out = np.empty((n, self.m1_ + int(self.centered_) + self.ms_), dtype=dtype)
        for start in range(0, n, self.chunk_size):
            block = X[start:start + self.chunk_size]
            nb = block.shape[0]
            if sp.issparse(block):
                # input-sparsity time: the first layer's products cost O(nnz (m0 + m1)) on sparse rows; only the
                # TensorSRHT of the first layer reads the dense row
                z_ntk = np.ascontiguousarray(block.toarray(), dtype=dtype)
                z_nngp = sp.csr_matrix(block, dtype=dtype) if _use_sparse_products(block) else z_ntk
            else:
                z_nngp = z_ntk = np.ascontiguousarray(block, dtype=dtype)
            for h, ((W, off, scale), mu, tables, linear, (m0, m1, ms, c, k)) in enumerate(zip(
                    layers, self.relu_mean_, self.tensor_tables_, self.linear_rows_, self.layer_splits_)):
                P = _layer_products(z_nngp, W)
                # steps: with k > 0 the centred steps alone (their constant sqrt(1/2) enters through the linear
                # term below), else with c the exact constant first, else the plain steps
                t = np.empty((nb, m0 + (c if not k else 0)), dtype=dtype)
                last = h == len(layers) - 1  # the last layer writes straight into the output
                z_next = out[start:start + nb] if last else np.empty((nb, m1 + c + ms), dtype=dtype)
                if c:
                    if sp.issparse(z_nngp):
                        nrm = np.sqrt(np.asarray(z_nngp.multiply(z_nngp).sum(axis=1)).ravel())
                    else:
                        nrm = np.sqrt(np.einsum("ij,ij->i", z_nngp, z_nngp))
                    mu_norm = (mu * nrm).astype(dtype)
                else:
                    mu_norm = np.zeros(nb, dtype=dtype)
                _steps_and_relu(P, m0, off, m1, scale, np.sqrt(2.0 / m0), bool(c), bool(c and not k), mu_norm, t,
                                z_next)
                tsrht = (tables.signs1, tables.signs2, tables.rows1, tables.rows2, tables.scale, tables.n_pad1,
                         tables.n_pad2, z_ntk, t, z_next[:, m1 + c:m1 + c + ms - k])
                if k:  # (1/2) K_{h-1}: sampled coordinates of the TensorSRHT's own transform of z_ntk, sqrt(1/2)
                    _tensor_srht_and_linear_batch(*tsrht, linear, np.sqrt(0.5 / k), z_next[:, m1 + c + ms - k:])
                else:
                    _tensor_srht_batch(*tsrht)
                z_nngp, z_ntk = z_next[:, :m1 + c], z_next
        return unscale_rows(out, e, "X")

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
