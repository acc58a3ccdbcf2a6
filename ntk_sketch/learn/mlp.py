"""A trained finite-width ReLU network: the "just train the net" baseline for the NTK feature maps.

A fully connected ReLU network with ``depth`` hidden layers of ``width`` units (biases everywhere), trained with
minibatch Adam (Kingma & Ba 2015) on softmax cross-entropy (``MLPClassifier``) or mean squared error
(``MLPRegressor``, on targets standardised with the training part's mean and standard deviation), with early
stopping on a validation split of the training set: after every epoch the validation loss is measured, training
stops after ``patience`` epochs without improvement (or ``max_epochs``, or ``max_time`` seconds), and the weights
of the best epoch are kept.  Plain numpy; all randomness (initialisation, split, minibatch order) comes from one
seeded ``numpy.random.Generator``.

Parameter count (weights and biases) of a network with input dimension d, k outputs, L = ``depth`` hidden
layers of width w:

    P(w) = (d + 1) w + (L - 1) (w + 1) w + (w + 1) k
         = (L - 1) w^2 + (d + L + k) w + k

``width_for_params(m, d, k, L)`` returns the width whose P(w) is closest to m, so that the network can be compared
with a linear model on m features "at equal parameter count".  (A ridge model on m features with k outputs has
m k weights: pass ``n_params = m * k`` for that comparison, or ``m`` to match the feature dimension itself.)
"""
from __future__ import annotations

import math
import time

import numpy as np

from .._base import BaseEstimator, ClassifierMixin, RegressorMixin, check_is_fitted
from .._validation import (
    check_matrix,
    check_n_features,
    check_nonnegative_float,
    check_positive_int,
    check_random_state,
)
from ._checks import _check_labels, _check_regression_targets

__all__ = ["MLPClassifier", "MLPRegressor", "mlp_param_count", "width_for_params"]


def mlp_param_count(width, n_inputs, n_outputs, depth=1):
    """Number of weights and biases ``P(w)`` of the network (module docstring)."""
    w, d, k, L = width, n_inputs, n_outputs, depth
    return (d + 1) * w + (L - 1) * (w + 1) * w + (w + 1) * k


def width_for_params(n_params, n_inputs, n_outputs, depth=1):
    """The width ``w >= 1`` whose parameter count ``P(w)`` is closest to ``n_params`` (ties: the smaller w)."""
    m = check_positive_int(n_params, "n_params")
    d = check_positive_int(n_inputs, "n_inputs")
    k = check_positive_int(n_outputs, "n_outputs")
    L = check_positive_int(depth, "depth")
    a, b, c = L - 1, d + L + k, k - m
    # Positive root of a w^2 + b w + c = 0, then compare its two integer neighbours.
    root = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = {max(1, int(math.floor(root))), max(1, int(math.floor(root)) + 1)}
    return min(sorted(candidates), key=lambda w: abs(mlp_param_count(w, d, k, L) - m))


class _MLPBase(BaseEstimator):
    _classification = False

    def __init__(self, width=None, *, n_params=None, depth=1, learning_rate=1e-3, batch_size=128, max_epochs=200,
                 patience=10, validation_fraction=0.2, weight_decay=0.0, max_time=None, dtype=np.float64, seed=0):
        self.width = width
        self.n_params = n_params
        self.depth = depth
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.max_time = max_time
        self.dtype = dtype
        self.seed = seed

    # ----------------------------------------------------------------------------------------- the network
    def _init_params(self, d, k, width, depth, rng, dtype):
        """He initialisation N(0, 2 / fan_in) for ReLU layers, N(0, 1 / fan_in) for the output layer; zero biases."""
        sizes = [d] + [width] * depth + [k]
        params = []
        for i in range(len(sizes) - 1):
            gain = 2.0 if i < depth else 1.0
            W = rng.standard_normal((sizes[i], sizes[i + 1])) * math.sqrt(gain / sizes[i])
            params.append(W.astype(dtype))
            params.append(np.zeros(sizes[i + 1], dtype=dtype))
        return params

    @staticmethod
    def _forward(params, X):
        """Output and the list of hidden activations (needed by the backward pass)."""
        acts = [X]
        h = X
        n_layers = len(params) // 2
        for i in range(n_layers):
            z = h @ params[2 * i] + params[2 * i + 1]
            h = np.maximum(z, 0) if i < n_layers - 1 else z
            if i < n_layers - 1:
                acts.append(h)
        return h, acts

    def _loss_and_grads(self, params, X, T):
        """Mean loss over the rows of ``X`` (plus the L2 penalty) and its gradient for every parameter."""
        out, acts = self._forward(params, X)
        n = X.shape[0]
        if self._classification:
            z = out - out.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -float(np.sum(T * logp)) / n
            delta = (np.exp(logp) - T) / n
        else:
            diff = out - T
            loss = 0.5 * float(np.sum(diff * diff)) / n
            delta = diff / n
        wd = self.weight_decay
        grads = [None] * len(params)
        n_layers = len(params) // 2
        for i in range(n_layers - 1, -1, -1):
            W = params[2 * i]
            grads[2 * i] = acts[i].T @ delta + wd * W
            grads[2 * i + 1] = delta.sum(axis=0)
            if i > 0:
                delta = (delta @ W.T) * (acts[i] > 0)
        if wd:
            loss += 0.5 * wd * sum(float(np.sum(params[2 * i] ** 2)) for i in range(n_layers))
        return loss, grads

    def _loss(self, params, X, T):
        out, _ = self._forward(params, X)
        n = X.shape[0]
        if self._classification:
            z = out - out.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return -float(np.sum(T * logp)) / n
        return 0.5 * float(np.sum((out - T) ** 2)) / n

    # --------------------------------------------------------------------------------------------- fitting
    def fit(self, X, y):
        """Train on ``X`` (n, d) and ``y``; a random ``validation_fraction`` of the rows is held out for early
        stopping (and not trained on)."""
        dtype = np.dtype(self.dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64; got {self.dtype!r}.")
        X = check_matrix(X, "X", dtype=dtype)
        n, d = X.shape
        T = self._encode_targets(y, n).astype(dtype)
        k = T.shape[1]
        depth = check_positive_int(self.depth, "depth")
        if self.width is not None and self.n_params is not None:
            raise ValueError("give either width or n_params, not both.")
        if self.width is not None:
            width = check_positive_int(self.width, "width")
        elif self.n_params is not None:
            width = width_for_params(self.n_params, d, k, depth)
        else:
            raise ValueError("give the hidden width (width=...) or a parameter budget (n_params=...).")
        lr = check_nonnegative_float(self.learning_rate, "learning_rate", strictly_positive=True)
        batch = check_positive_int(self.batch_size, "batch_size")
        max_epochs = check_positive_int(self.max_epochs, "max_epochs")
        patience = check_positive_int(self.patience, "patience")
        check_nonnegative_float(self.weight_decay, "weight_decay")
        max_time = None if self.max_time is None else check_nonnegative_float(self.max_time, "max_time")
        frac = self.validation_fraction
        if not isinstance(frac, (float, int)) or isinstance(frac, bool) or not (0.0 < frac < 1.0):
            raise ValueError(f"validation_fraction must be in (0, 1) (e.g. 0.2); got {frac!r}.")
        n_val = int(round(frac * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"validation_fraction={frac} leaves an empty training or validation part for "
                             f"n_samples={n}.")

        rng = check_random_state(self.seed)
        perm = rng.permutation(n)
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        Xt, Tt, Xv, Tv = X[tr_idx], T[tr_idx], X[val_idx], T[val_idx]
        if not self._classification:
            # Standardise regression targets on the training part (undone in predict).
            self._y_mean = Tt.mean(axis=0)
            self._y_std = np.where(Tt.std(axis=0) > 0, Tt.std(axis=0), 1.0).astype(dtype)
            Tt = (Tt - self._y_mean) / self._y_std
            Tv = (Tv - self._y_mean) / self._y_std

        params = self._init_params(d, k, width, depth, rng, dtype)
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        step = 0
        best = (self._loss(params, Xv, Tv), [p.copy() for p in params], 0)
        curve = [best[0]]
        since_best = 0
        start = time.perf_counter()
        out_of_time = False
        epoch = 0
        for epoch in range(1, max_epochs + 1):
            order = rng.permutation(Xt.shape[0])
            for s in range(0, order.size, batch):
                rows = order[s:s + batch]
                _, grads = self._loss_and_grads(params, Xt[rows], Tt[rows])
                step += 1
                c1 = 1.0 - beta1**step
                c2 = 1.0 - beta2**step
                for p, g, a, b in zip(params, grads, m1, m2):
                    a *= beta1
                    a += (1 - beta1) * g
                    b *= beta2
                    b += (1 - beta2) * g * g
                    p -= (lr * (a / c1) / (np.sqrt(b / c2) + eps)).astype(p.dtype, copy=False)
                if max_time is not None and time.perf_counter() - start > max_time:
                    out_of_time = True
                    break
            val_loss = self._loss(params, Xv, Tv)
            curve.append(val_loss)
            if val_loss < best[0]:
                best = (val_loss, [p.copy() for p in params], epoch)
                since_best = 0
            else:
                since_best += 1
            if since_best >= patience or out_of_time:
                break
        self._params = best[1]
        self.best_epoch_ = best[2]
        self.best_validation_loss_ = best[0]
        self.validation_curve_ = np.array(curve)
        self.n_epochs_ = epoch
        self.fit_time_ = time.perf_counter() - start
        self.width_ = width
        self.n_params_ = mlp_param_count(width, d, k, depth)
        self.n_features_in_ = d
        return self

    def _check_X(self, X):
        check_is_fitted(self, "_params")
        X = check_matrix(X, "X", dtype=self._params[0].dtype)
        check_n_features(X, self.n_features_in_, "X", owner=self)
        return X

    @property
    def coefs_(self):
        """Weight matrices, input layer first."""
        return [self._params[2 * i] for i in range(len(self._params) // 2)]

    @property
    def intercepts_(self):
        return [self._params[2 * i + 1] for i in range(len(self._params) // 2)]


class MLPClassifier(ClassifierMixin, _MLPBase):
    """ReLU network classifier trained with minibatch Adam on softmax cross-entropy (module docstring).

    Parameters
    ----------
    width : int or None
        Hidden width; or give ``n_params`` and the width is ``width_for_params(n_params, d, n_classes, depth)``.
    n_params : int or None
        Parameter budget (weights + biases).
    depth : int
        Number of hidden ReLU layers.
    learning_rate, batch_size, max_epochs : Adam step size, minibatch size, epoch limit.
    patience : int
        Epochs without a lower validation loss before stopping.
    validation_fraction : float in (0, 1)
        Fraction of the training rows held out for early stopping.
    weight_decay : float
        L2 penalty ``0.5 * weight_decay * |W|^2`` on the weight matrices.
    max_time : float or None
        Wall-clock training budget in seconds (for comparisons at equal time).
    dtype : float32 or float64
    seed : None, int or Generator

    Attributes
    ----------
    classes_, width_, n_params_, best_epoch_, n_epochs_, fit_time_, validation_curve_ (validation loss after each
    epoch, entry 0 at initialisation), best_validation_loss_, coefs_, intercepts_, n_features_in_.
    """

    _classification = True

    def _encode_targets(self, y, n):
        y = _check_labels(y, n)
        classes, inverse = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"the labels contain a single class ({classes.tolist()}); a classifier needs at least 2 "
                             "classes, got 1 class.")
        self.classes_ = classes
        T = np.zeros((n, classes.size))
        T[np.arange(n), inverse.ravel()] = 1.0
        return T

    def predict_proba(self, X):
        X = self._check_X(X)
        out, _ = self._forward(self._params, X)
        z = out - out.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        X = self._check_X(X)
        out, _ = self._forward(self._params, X)
        return self.classes_[np.argmax(out, axis=1)]

    def score(self, X, y):
        """Accuracy."""
        pred = self.predict(X)
        return float(np.mean(pred == _check_labels(y, pred.shape[0])))


class MLPRegressor(RegressorMixin, _MLPBase):
    """ReLU network regressor trained with minibatch Adam on mean squared error of standardised targets.

    Parameters and attributes as in ``MLPClassifier`` (``n_outputs`` is the number of target columns).
    """

    _classification = False
    _multi_output = True

    def _encode_targets(self, y, n):
        Y, self._was_1d = _check_regression_targets(y, n)
        return Y

    def predict(self, X):
        X = self._check_X(X)
        out, _ = self._forward(self._params, X)
        out = out * self._y_std + self._y_mean
        return out[:, 0] if self._was_1d else out

    def score(self, X, y):
        """R^2 pooled over outputs (as ``RidgeRegressor.score``)."""
        pred = np.asarray(self.predict(X), dtype=np.float64).reshape(len(X), -1)
        Y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        sst = float(np.sum((Y - Y.mean(axis=0)) ** 2))
        return 1.0 - float(np.sum((pred - Y) ** 2)) / sst if sst > 0 else -np.inf

    def rmse(self, X, y):
        pred = np.asarray(self.predict(X), dtype=np.float64).reshape(len(X), -1)
        return float(np.sqrt(np.mean((pred - np.asarray(y, dtype=np.float64).reshape(len(X), -1)) ** 2)))
