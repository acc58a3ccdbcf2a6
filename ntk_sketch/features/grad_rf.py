"""GradRF: the per-example parameter gradients of a finite ReLU network at initialisation (docs/math.md §11).

The paper's baseline for the MNIST and CNN experiments (Zandieh et al. 2021, Section 6; after Arora et al. 2019):
the features of a row are the gradient of a randomly initialised network's output with respect to all of its
parameters.  In the NTK parameterisation their inner products converge to the infinite-width NTK as the width w
grows, with fluctuations of order w^(-1/2).

Fully connected (``GradRF``), depth L, width w, no biases (docs/math.md §11):

    a_0 = x,   g_1 = W_1 a_0,   a_h = relu(g_h),   g_{h+1} = sqrt(2/w) W_{h+1} a_h,   f(x) = sqrt(2/w) v^T a_L

with every weight ~ N(0, 1).  Its NTK as w -> infinity is ``ntk_kernel(depth=L)`` (docs/math.md §2).  The
features are ``[df/dW_1, ..., df/dW_L, df/dv]`` (each ``W_h`` flattened row-major, shape (w, d_{h-1})), of
dimension ``d w + (L - 1) w^2 + w``.  Backpropagation: ``delta_L = sqrt(2/w) v o 1{g_L > 0}``,
``delta_{h-1} = sqrt(2/w) (W_h^T delta_h) o 1{g_{h-1} > 0}`` (the factor is 1 for h = 1), and
``df/dW_h = c_h delta_h a_{h-1}^T`` with ``c_1 = 1``, ``c_h = sqrt(2/w)``.

Convolutional with global average pooling (``CNNGradRF``): q x q stride-1 convolutions, ``'valid'`` (the paper's
choice) or ``'same'`` (zero padding), L ReLU layers, then the average over the last grid and a linear readout:

    g_1[p] = sum_u W_1[u] x_{p+u}                        (W_1[u] of shape (C, w): no 1/q^2 on the input layer)
    g_h[p] = sqrt(2)/(q sqrt(w)) sum_u W_h[u] a_{h-1}[p+u],      a_h = relu(g_h)
    f(x)   = sqrt(2)/(q sqrt(w)) v^T (1/|grid_L|) sum_p a_L[p]

so that as w -> infinity ``<grad f(x), grad f(y)>`` tends to ``cntk_kernel(..., fix_first=False, fix_last=False)``
(docs/math.md §3, the NTK of neural-tangents' ``Conv(W_std=q sqrt(C)), [Relu, Conv(W_std=sqrt 2)] x (L-1), Relu,
GlobalAvgPool, Dense(W_std=sqrt(2)/q)``).  ``fix_first=True`` / ``fix_last=True`` leave out the gradients of the
first convolution / of the readout, which is the kernel with the same flags (``P_0 = 0`` / no ``G_L`` term).

Width: given ``n_components = m``, the width is the ``w >= 1`` whose gradient dimension is nearest to m (ties to
the smaller w); the dimension is then ``n_features_out_``, which is m only when some w hits it exactly.  A
``width`` argument overrides this.

Computation: no autograd.  The forward and backward passes are batched BLAS products (``X @ W^T`` for dense
layers, patches ``@`` the filter matrix for convolutions), and each gradient block is an outer product per row
(dense layers, written straight into the output by a small numba kernel, parallel over rows) or a batched
product ``patches^T @ delta`` per image (convolutions).  All randomness is drawn in ``fit`` from ``seed``.
"""
from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from numba import prange

from .._base import BaseEstimator, TransformerMixin, check_is_fitted
from .._validation import (
    check_bool,
    serialised,
    check_images,
    check_matrix,
    check_n_features,
    check_positive_int,
    check_random_state,
)
from ..kernels.cntk_exact import cntk_grid_sizes

__all__ = ["GradRF", "CNNGradRF", "grad_rf_dimension", "cnn_grad_rf_dimension"]


# ------------------------------------------------------------------------------------------------ helpers
@serialised
@numba.njit(cache=True, parallel=True)
def _outer_into(out, offset, delta, a, scale):
    """out[r, offset + i*k + j] = scale * delta[r, i] * a[r, j] for every row r (k = a.shape[1])."""
    n, w = delta.shape
    k = a.shape[1]
    for r in prange(n):
        for i in range(w):
            c = scale * delta[r, i]
            base = offset + i * k
            for j in range(k):
                out[r, base + j] = c * a[r, j]


def grad_rf_dimension(width, n_features_in, depth):
    """Gradient dimension ``d w + (L - 1) w^2 + w`` of the fully connected network (docs/math.md §11)."""
    w, d, L = int(width), int(n_features_in), int(depth)
    return d * w + (L - 1) * w * w + w


def cnn_grad_rf_dimension(width, channels, depth, filter_size, fix_first=False, fix_last=False):
    """Gradient dimension of the convolutional network: ``q^2 C w [first] + (L - 1) q^2 w^2 + w [last]``."""
    w, c, L, q = int(width), int(channels), int(depth), int(filter_size)
    return (0 if fix_first else q * q * c * w) + (L - 1) * q * q * w * w + (0 if fix_last else w)


def _nearest_width(dimension, m):
    """The w >= 1 whose ``dimension(w)`` (increasing in w) is nearest to m; ties go to the smaller w."""
    lo, hi = 1, 1
    while dimension(hi) < m:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # dimension(lo) < m <= dimension(hi), or lo == hi == 1
        mid = (lo + hi) // 2
        if dimension(mid) < m:
            lo = mid
        else:
            hi = mid
    if dimension(lo) >= m:
        return lo
    return lo if m - dimension(lo) <= dimension(hi) - m else hi


def _check_dtype(dtype):
    if dtype not in (None, "float32", "float64", np.float32, np.float64):
        raise ValueError(f"dtype must be None, 'float32' or 'float64'; got {dtype!r}.")



# ------------------------------------------------------------------------------------------------ FC GradRF
class GradRF(TransformerMixin, BaseEstimator):
    """Gradient features of a fully connected ReLU network at initialisation (docs/math.md §11).

    ``<transform(x), transform(y)>`` converges to ``ntk_kernel(x, y, depth=depth)`` (docs/math.md §2) as the
    width grows, with relative fluctuations of order ``width ** -0.5``; the network is in the module docstring.

    Parameters
    ----------
    depth : int, default 2
        Number of hidden ReLU layers L >= 1.
    n_components : int, default 8192
        Target feature dimension m; the width is chosen so that ``d w + (L - 1) w^2 + w`` is nearest to m
        (``width_`` and ``n_features_out_`` report the choice).
    width : int, optional
        Use this width instead of deriving it from ``n_components``.
    dtype : {None, 'float32', 'float64'}
        Arithmetic of ``transform``; None follows the input (float32 stays float32, else float64).
    chunk_size : int, default 256
        Rows per block in ``transform``.
    seed : None, int, SeedSequence or numpy.random.Generator

    Attributes
    ----------
    n_features_in_ : int
    width_ : int
    n_features_out_ : int
        ``d w + (L - 1) w^2 + w``.
    weights_ : list of numpy.ndarray
        ``W_1`` of shape (w, d) and ``W_2..W_L`` of shape (w, w), entries N(0, 1).
    readout_ : numpy.ndarray of shape (w,)
        ``v``, entries N(0, 1).
    """

    def __init__(self, depth=2, n_components=8192, *, width=None, dtype=None, chunk_size=256, seed=None):
        self.depth = depth
        self.n_components = n_components
        self.width = width
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.seed = seed

    def fit(self, X, y=None):
        """Draw the network's weights for inputs with ``X.shape[1]`` features (only the shape of X is used)."""
        X = check_matrix(X, "X", dtype=None, accept_sparse=True)
        L = check_positive_int(self.depth, "depth")
        _check_dtype(self.dtype)
        check_positive_int(self.chunk_size, "chunk_size")
        d = X.shape[1]
        if self.width is None:
            m = check_positive_int(self.n_components, "n_components")
            w = _nearest_width(lambda v: grad_rf_dimension(v, d, L), m)
        else:
            w = check_positive_int(self.width, "width")
        rng = check_random_state(self.seed)
        self.n_features_in_ = d
        self.width_ = w
        self.n_features_out_ = grad_rf_dimension(w, d, L)
        self.weights_ = [rng.standard_normal((w, d))] + [rng.standard_normal((w, w)) for _ in range(L - 1)]
        self.readout_ = rng.standard_normal(w)
        self._cast_cache = {}
        return self

    def _weights_for(self, dtype):
        key = np.dtype(dtype).str
        if key not in self._cast_cache:
            self._cast_cache[key] = ([np.asarray(W, dtype=dtype) for W in self.weights_],
                                     np.asarray(self.readout_, dtype=dtype))
        return self._cast_cache[key]

    def transform(self, X):
        """Gradient features of the rows of ``X`` (dense or CSR), shape (n, n_features_out_)."""
        check_is_fitted(self, "weights_")
        X = check_matrix(X, "X", dtype=None, accept_sparse=True, allow_empty_rows=True)
        check_n_features(X, self.n_features_in_, owner=self)
        dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        Ws, v = self._weights_for(dtype)
        L, w, d = len(Ws), self.width_, self.n_features_in_
        c = dtype.type(np.sqrt(2.0 / w))
        n = X.shape[0]
        out = np.empty((n, self.n_features_out_), dtype=dtype)
        offsets = np.cumsum([0, d * w] + [w * w] * (L - 1))
        for start in range(0, n, self.chunk_size):
            block = X[start:start + self.chunk_size]
            block = block.toarray() if sp.issparse(block) else block
            a = [np.ascontiguousarray(block, dtype=dtype)]
            g = []
            for h, W in enumerate(Ws):
                gh = a[-1] @ W.T
                if h > 0:
                    gh *= c
                g.append(gh)
                a.append(np.maximum(gh, 0))
            rows = out[start:start + a[0].shape[0]]
            rows[:, offsets[-1]:] = c * a[-1]                                   # df/dv
            delta = (c * v) * (g[-1] > 0)                                       # df/dg_L
            for h in range(L - 1, -1, -1):
                scale = 1.0 if h == 0 else float(c)
                _outer_into(rows, int(offsets[h]), np.ascontiguousarray(delta), a[h], dtype.type(scale))
                if h > 0:
                    delta = (c * (delta @ Ws[h])) * (g[h - 1] > 0)
        return out

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)


# ------------------------------------------------------------------------------------------------ CNN GradRF
def _patches(a, q):
    """(B, H, W, c) -> (B, (H-q+1)(W-q+1), q*q*c) with entries ordered (row offset, column offset, channel)."""
    B, H, W, c = a.shape
    Ho, Wo = H - q + 1, W - q + 1
    out = np.empty((B, Ho, Wo, q, q, c), dtype=a.dtype)
    for i in range(q):
        for j in range(q):
            out[:, :, :, i, j, :] = a[:, i:i + Ho, j:j + Wo, :]
    return out.reshape(B, Ho * Wo, q * q * c)


def _unpatch(dp, shape, q):
    """Adjoint of ``_patches``: scatter-add (B, Ho*Wo, q*q*c) back onto an array of ``shape`` (B, H, W, c)."""
    B, H, W, c = shape
    Ho, Wo = H - q + 1, W - q + 1
    dp = dp.reshape(B, Ho, Wo, q, q, c)
    out = np.zeros(shape, dtype=dp.dtype)
    for i in range(q):
        for j in range(q):
            out[:, i:i + Ho, j:j + Wo, :] += dp[:, :, :, i, j, :]
    return out


class CNNGradRF(TransformerMixin, BaseEstimator):
    """Gradient features of a convolutional ReLU network with global average pooling (docs/math.md §3, §11).

    ``<transform(x), transform(y)>`` converges to ``cntk_kernel(x, y, depth=depth, filter_size=filter_size,
    padding=padding, fix_first=fix_first, fix_last=fix_last)`` as the width (channels per layer) grows, with
    relative fluctuations of order ``width ** -0.5``; the network is in the module docstring.

    Parameters
    ----------
    depth : int, default 3
        Number L >= 1 of convolutional ReLU layers.
    n_components : int, default 4096
        Target feature dimension m; the width w is chosen so that the gradient dimension
        ``q^2 C w + (L - 1) q^2 w^2 + w`` (less the dropped blocks) is nearest to m.
    filter_size : int, default 3
        Side q of the square filters (stride 1).
    padding : {'valid', 'same'}, default 'valid'
        As in :func:`ntk_sketch.kernels.cntk_exact.cntk_kernel` ('same': (q-1)//2 zeros before, q//2 after).
    width : int, optional
        Use this width instead of deriving it from ``n_components``.
    fix_first, fix_last : bool, default False
        Leave out the gradients of the first convolution / of the readout (the kernel with the same flags);
        both True with depth=1 leaves no parameter and is rejected.
    dtype : {None, 'float32', 'float64'}
        Arithmetic of ``transform``; None follows the input.
    chunk_size : int, default 32
        Images per block in ``transform``; memory is O(chunk_size P q^2 w) for P pixels.
    seed : None, int, SeedSequence or numpy.random.Generator

    Attributes
    ----------
    image_shape_ : tuple (H, W, C)
    grid_sizes_ : list of (H_h, W_h), h = 0..L
    width_ : int
    n_features_out_ : int
    filters_ : list of numpy.ndarray
        ``W_h`` of shape (q, q, c_{h-1}, w), entries N(0, 1) (c_0 = C, later c = w).
    readout_ : numpy.ndarray of shape (w,)
    """

    def __init__(self, depth=3, n_components=4096, *, filter_size=3, padding="valid", width=None, fix_first=False,
                 fix_last=False, dtype=None, chunk_size=32, seed=None):
        self.depth = depth
        self.n_components = n_components
        self.filter_size = filter_size
        self.padding = padding
        self.width = width
        self.fix_first = fix_first
        self.fix_last = fix_last
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.seed = seed

    def _check_params(self):
        L = check_positive_int(self.depth, "depth")
        q = check_positive_int(self.filter_size, "filter_size")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'; got {self.padding!r}.")
        ff = check_bool(self.fix_first, "fix_first")
        fl = check_bool(self.fix_last, "fix_last")
        if ff and fl and L == 1:
            raise ValueError("fix_first=True and fix_last=True with depth=1 leave no parameter to differentiate. "
                             "Use depth >= 2 or set fix_first=False or fix_last=False.")
        _check_dtype(self.dtype)
        check_positive_int(self.chunk_size, "chunk_size")
        return L, q, ff, fl

    def fit(self, X, y=None):
        """Draw the filters for images of one shape.

        Parameters
        ----------
        X : tuple (H, W, C) or array_like (n, H, W, C)
            The image shape, or images (only their shape is used).
        """
        L, q, ff, fl = self._check_params()
        if isinstance(X, tuple) and len(X) == 3 and all(isinstance(v, (int, np.integer)) for v in X):
            shape = tuple(int(v) for v in X)
            if min(shape) < 1:
                raise ValueError(f"image shape must be three positive integers (H, W, C); got {X}.")
        else:
            shape = check_images(X, "X", dtype=None).shape[1:]
        H, W, C = shape
        if self.padding == "valid" and min(H, W) < L * (q - 1) + 1:
            raise ValueError(f"images of {H} x {W} pixels are smaller than the receptive field of depth={L} 'valid' "
                             f"layers with filter_size={q}; use smaller depth or filter_size, or padding='same'.")
        if self.width is None:
            m = check_positive_int(self.n_components, "n_components")
            w = _nearest_width(lambda v: cnn_grad_rf_dimension(v, C, L, q, ff, fl), m)
        else:
            w = check_positive_int(self.width, "width")
        rng = check_random_state(self.seed)
        self.image_shape_ = (H, W, C)
        self.n_features_in_ = H * W * C  # values per image
        self.grid_sizes_ = cntk_grid_sizes(H, W, L, q, self.padding)
        self.width_ = w
        self.n_features_out_ = cnn_grad_rf_dimension(w, C, L, q, ff, fl)
        self.filters_ = [rng.standard_normal((q, q, C if h == 0 else w, w)) for h in range(L)]
        self.readout_ = rng.standard_normal(w)
        self._config = (L, q, ff, fl)
        self._cast_cache = {}
        return self

    def _weights_for(self, dtype):
        key = np.dtype(dtype).str
        if key not in self._cast_cache:
            self._cast_cache[key] = ([np.asarray(F.reshape(-1, F.shape[-1]), dtype=dtype) for F in self.filters_],
                                     np.asarray(self.readout_, dtype=dtype))
        return self._cast_cache[key]

    def transform(self, X):
        """Gradient features of the images ``X`` (n, H, W, C), shape (n, n_features_out_)."""
        check_is_fitted(self, "filters_",
                        "This {name} instance is not fitted yet: call fit(image_shape or images) first.")
        X = check_images(X, "X", dtype=None)
        if X.shape[1:] != self.image_shape_:
            raise ValueError(f"X has images of shape {X.shape[1:]} but this CNNGradRF was fitted on "
                             f"{self.image_shape_}; resize the images or refit.")
        dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        Ws, v = self._weights_for(dtype)
        Wts = [np.ascontiguousarray(W.T) for W in Ws]
        L, q, ff, fl = self._config
        w = self.width_
        c = dtype.type(np.sqrt(2.0) / (q * np.sqrt(w)))
        # 'same': (q-1)//2 zeros before and q//2 after (one more after for even q, as cntk_geometry.patch_offset)
        pb, pa = ((q - 1) // 2, q // 2) if self.padding == "same" else (0, 0)
        n = X.shape[0]
        out = np.empty((n, self.n_features_out_), dtype=dtype)
        sizes = [Ws[h].size for h in range(L)]
        starts = np.cumsum([0] + [0 if (h == 0 and ff) else sizes[h] for h in range(L)])
        for b0 in range(0, n, self.chunk_size):
            a = np.asarray(X[b0:b0 + self.chunk_size], dtype=dtype)
            B = a.shape[0]
            patches, gs, in_shapes = [], [], []
            for h in range(L):
                if pb or pa:
                    a = np.pad(a, ((0, 0), (pb, pa), (pb, pa), (0, 0)))
                in_shapes.append(a.shape)
                P = _patches(a, q)
                g = (P.reshape(-1, P.shape[2]) @ Ws[h]).reshape(B, -1, w)       # (B, pixels, w), one 2-d GEMM
                if h > 0:
                    g *= c
                patches.append(P)
                gs.append(g)
                Ho, Wo = a.shape[1] - q + 1, a.shape[2] - q + 1
                a = np.maximum(g, 0).reshape(B, Ho, Wo, w)
            rows = out[b0:b0 + B]
            n_last = gs[-1].shape[1]
            if not fl:
                rows[:, starts[-1]:] = c * a.reshape(B, n_last, w).mean(axis=1)          # df/dv
            delta = (c / n_last) * v * (gs[-1] > 0)                                       # df/dg_L, (B, P_L, w)
            for h in range(L - 1, -1, -1):
                if not (h == 0 and ff):
                    grad = np.matmul(patches[h].transpose(0, 2, 1), delta)                # (B, q*q*c_in, w)
                    if h > 0:
                        grad *= c
                    rows[:, starts[h]:starts[h + 1]] = grad.reshape(B, -1)
                if h > 0:
                    # 2-d product with a contiguous W^T: numpy's stacked (3-d @ transposed 2-d) path is ~10x slower
                    back = (c * delta).reshape(-1, w) @ Wts[h]
                    da = _unpatch(back.reshape(B, -1, Wts[h].shape[1]), in_shapes[h], q)
                    if pb or pa:
                        da = da[:, pb:da.shape[1] - pa, pb:da.shape[2] - pa, :]
                    delta = da.reshape(B, -1, w) * (gs[h - 1] > 0)
        return out

    def fit_transform(self, X, y=None):
        """``fit(X)`` then ``transform(X)`` (X must be images here)."""
        return self.fit(X).transform(X)
