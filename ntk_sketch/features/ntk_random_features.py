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

Two variance reductions that keep every expectation (defaults; ``orthogonal=False, centered=False`` is the plain
construction above): the weight directions are orthogonal within blocks (orthogonal random features), and the
features are centred, ``[sqrt(2) mu |z|, sqrt(2/m1) (f(z) - mu |z|)]`` with ``mu |z| = E f(z)``, and likewise the
steps around 1/2: ``E <., .>`` is unchanged because the centred parts have mean zero, while the common mode,
which carries most of the kernel's value on data whose cosines spread around 0, becomes exact.
Sparse (CSR) input: the first layer's products cost O(nnz (m0 + m1)) (input-sparsity time).
"""
from __future__ import annotations

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
    unscale_rows,
)
from ..sketches.tensor_srht import _tensor_srht_batch, draw_tensor_srht

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


class NTKRandomFeatures(TransformerMixin, BaseEstimator):
    """Random features for the depth-L fully connected ReLU NTK (Algorithm 2 of Zandieh et al. 2021).

    Parameters
    ----------
    depth : int, default 2
        Number of hidden ReLU layers L >= 1 (the kernel of :func:`ntk_sketch.kernels.ntk_exact.ntk_kernel`).
    n_components : int, default 8192
        Output dimension ``m1 + ms``.
    relu_fraction : float, optional
        Share of the output given to the ReLU (NNGP) features: ``m1 = round(relu_fraction * n_components)``
        (less the centring coordinate), the rest to the TensorSRHT.  Default 0.35 for ``n_components <= 4096``,
        0.25 above.
    n_step_features : int, optional
        ``m0``, the step-feature count per layer (they only enter through the TensorSRHT).  Default ``2 m1`` for
        ``n_components <= 4096``, ``m1`` above.  The defaults are the best of a sweep on the standardised
        Fashion-MNIST protocol of ``benchmarks/bench_ntk_features.py`` (L = 2): at m = 1024 / 4096 they lower the
        error from 0.136 / 0.068 (0.25, m0 = m1) to 0.130 / 0.066; at m = 8192 the larger split costs ~2x the
        second layer's GEMM for no measured gain.
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
        TensorSRHT of ``z_ntk_{h-1} (x) t`` per layer.
    """

    _accept_sparse = True
    _preserves_float32 = True

    def __init__(self, depth=2, n_components=8192, *, relu_fraction=None, n_step_features=None,
                 sampling="leverage", dtype=None, chunk_size=512, seed=None, orthogonal=True, centered=True):
        self.depth = depth
        self.n_components = n_components
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
        small = m <= 4096
        frac = (0.35 if small else 0.25) if self.relu_fraction is None else self.relu_fraction
        if not (0.0 < check_nonnegative_float(frac, "relu_fraction") < 1.0):
            raise ValueError(f"relu_fraction must be strictly between 0 and 1; got {self.relu_fraction}.")
        check_bool(self.orthogonal, "orthogonal")
        c = 1 if (check_bool(self.centered, "centered") and m >= 3) else 0  # centring takes one coordinate; m = 2 runs uncentred
        m1 = min(max(int(round(frac * m)) - c, 1), m - 1 - c)
        ms = m - m1 - c
        m0 = (2 if small else 1) * (m1 + c) if self.n_step_features is None else check_positive_int(
            self.n_step_features, "n_step_features")
        if self.sampling not in ("leverage", "gaussian"):
            raise ValueError(f"sampling must be 'leverage' or 'gaussian'; got {self.sampling!r}.")
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be None, 'float32' or 'float64'; got {self.dtype!r}.")
        check_positive_int(self.chunk_size, "chunk_size")
        return L, m0, m1, ms, c

    def fit(self, X, y=None):
        """Draw every random table for inputs with ``X.shape[1]`` features (only the shape of X is used)."""
        X = check_matrix(X, "X", dtype=None, accept_sparse=True)
        L, m0, m1, ms, c = self._check_params()
        self.centered_ = bool(c)
        rng = check_random_state(self.seed)
        d = X.shape[1]
        self.n_features_in_ = d
        self.m0_, self.m1_, self.ms_ = m0, m1, ms
        self.W0_, self.W1_, self.relu_scale_, self.tensor_tables_, self.relu_mean_ = [], [], [], [], []
        dim_nngp, dim_ntk = d, d
        for _ in range(L):
            if self.orthogonal:
                self.W0_.append(_random_directions(dim_nngp, m0, True, rng))
                dirs = _random_directions(dim_nngp, m1, True, rng)
                if self.sampling == "leverage":  # |w|^2 ~ chi-square(D + 2) under q (module docstring)
                    radius = np.sqrt(rng.chisquare(dim_nngp + 2, size=m1))
                    weights = np.sqrt(dim_nngp) / radius
                else:  # Gaussian columns: chi(D) lengths
                    radius = np.sqrt(rng.chisquare(dim_nngp, size=m1))
                    weights = np.ones(m1)
                W1 = dirs * radius[None, :]
            else:
                self.W0_.append(rng.standard_normal((dim_nngp, m0)))
                if self.sampling == "leverage":
                    W1, weights = sample_leverage_relu_weights(dim_nngp, m1, rng)
                else:
                    W1, weights = rng.standard_normal((dim_nngp, m1)), np.ones(m1)
            self.W1_.append(W1)
            self.relu_scale_.append(np.sqrt(2.0 / m1) * weights)
            self.relu_mean_.append(_relu_mean(dim_nngp, self.sampling))
            self.tensor_tables_.append(draw_tensor_srht(dim_ntk, m0 + c, ms, rng))
            dim_nngp, dim_ntk = m1 + c, m1 + c + ms
        self._cast_cache = {}
        return self

    # ---------------------------------------------------------------------------------------------- transform
    def _weights_for(self, dtype):
        """Weight matrices in the working dtype, converted once and cached."""
        key = np.dtype(dtype).str
        if key not in self._cast_cache:
            self._cast_cache[key] = [
                (np.asarray(W0, dtype=dtype), np.asarray(W1, dtype=dtype), np.asarray(sc, dtype=dtype))
                for W0, W1, sc in zip(self.W0_, self.W1_, self.relu_scale_)
            ]
        return self._cast_cache[key]

    def transform(self, X):
        """Map rows of ``X`` (dense or CSR, float32 or float64) to features of dimension ``m1 + ms``.

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
        c = 1 if self.centered_ else 0
        width = self.m1_ + c + self.ms_
        out = np.empty((n, width), dtype=dtype)
        step_value = np.sqrt(2.0 / self.m0_)
        for start in range(0, n, self.chunk_size):
            block = X[start:start + self.chunk_size]
            nb = block.shape[0]
            if sp.issparse(block):
                # input-sparsity time: the first layer's products cost O(nnz (m0 + m1)); only the TensorSRHT of
                # the first layer reads the dense row
                z_nngp = sp.csr_matrix(block, dtype=dtype)
                z_ntk = np.ascontiguousarray(block.toarray(), dtype=dtype)
            else:
                z_nngp = z_ntk = np.ascontiguousarray(block, dtype=dtype)
            for (W0, W1, scale), mu, tables in zip(layers, self.relu_mean_, self.tensor_tables_):
                pre0 = z_nngp @ W0
                relu = z_nngp @ W1
                pre0, relu = np.asarray(pre0), np.asarray(relu)
                t = np.empty((nb, self.m0_ + c), dtype=dtype)
                if c:  # centred steps: sqrt(1/2) exact, then sqrt(2/m0) (1{.} - 1/2), same kernel k0
                    t[:, 0] = np.sqrt(0.5)
                    t[:, 1:] = np.where(pre0 > 0, 0.5 * step_value, -0.5 * step_value)
                else:
                    t[:] = np.where(pre0 > 0, step_value, 0.0)
                np.maximum(relu, 0.0, out=relu)
                relu *= scale
                z_next = np.empty((nb, width), dtype=dtype)
                if c:  # centred ReLU features: sqrt(2) mu |z| exact, then sqrt(2/m1) (f - mu |z|)
                    if sp.issparse(z_nngp):
                        nrm = np.sqrt(np.asarray(z_nngp.multiply(z_nngp).sum(axis=1)).ravel())
                    else:
                        nrm = np.sqrt(np.einsum("ij,ij->i", z_nngp, z_nngp))
                    nrm = nrm.astype(dtype)
                    z_next[:, 0] = np.sqrt(2.0) * mu * nrm
                    np.subtract(relu, (np.sqrt(2.0 / self.m1_) * mu * nrm)[:, None], out=z_next[:, 1:self.m1_ + 1])
                else:
                    z_next[:, :self.m1_] = relu
                _tensor_srht_batch(tables.signs1, tables.signs2, tables.rows1, tables.rows2, tables.scale,
                                   tables.n_pad1, tables.n_pad2, z_ntk, t, z_next[:, self.m1_ + c:])
                z_nngp, z_ntk = z_next[:, :self.m1_ + c], z_next
            out[start:start + nb] = z_ntk
        return unscale_rows(out, e, "X")

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
