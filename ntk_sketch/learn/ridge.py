"""Ridge regression and classification on feature matrices, feature streams and exact kernels.

This is the learning step of the paper's experiments (Zandieh et al. 2021; docs/math.md §8): a linear
model on the features of a sketch / random-feature map (``RidgeRegressor``, ``RidgeClassifier``), and exact kernel
ridge regression as the reference (``KernelRidgeRegressor``, ``KernelRidgeClassifier``).

Objective
---------
With ``F`` the (n, D) features of the FULL training set and ``Y`` the (n, k) targets,

    minimise  |F w + 1 b^T - Y|_F^2 + lam |w|_F^2                                       (1)

(``b`` only when ``fit_intercept``; it is not penalised, which is the same as centring ``F`` and ``Y`` by their
training means).  Kernel ridge minimises the same objective in the kernel's feature space,
``alpha = (K + lam I)^{-1} Y``, so a feature map with ``F F^T = K`` gives exactly the kernel predictions.

Classification (docs/math.md §8): the targets are one-hot minus ``1/C`` (``C`` classes); the prediction is the
argmax of the ``C`` outputs and ``score`` is the accuracy.  Regression: ``score`` is the coefficient of
determination ``R^2 = 1 - SSE / SST`` pooled over the outputs (for one output, the usual R^2); ``rmse`` is the
root mean squared error.

Choosing lam
------------
``lam`` is chosen from a grid on a validation split of the TRAINING set only (never on test data), and it is on
the scale of the full training set: each row is assigned to the validation part by a seeded Bernoulli draw
(``rng.random(n) < validation_fraction``, drawn chunk by chunk in the stream order, so a stream never has to be
stored and in-memory and streamed fits agree), the model is fitted on the remaining ``n_part`` rows with the
penalty ``lam * n_part / n`` for every ``lam`` of the grid -- which is (1) divided by ``n`` with the data term
replaced by its average over the part, i.e. the same regularisation per sample -- scored on the validation rows,
and the best ``lam`` is then used in (1) on the full training set.  (The authors' released code multiplied the
ridge parameter by ``n`` twice and tuned it on a 1000-point subset (docs/math.md §9); here ``lam`` means exactly the
coefficient in (1).)

The default grid is relative to the data scale: ``lam = trace(F^T F) * logspace(-8, 0, 25)`` with ``F`` the
(centred, when ``fit_intercept``) full training features; ``trace(F^T F) = trace(K)`` for a kernel, so features
that approximate a kernel get nearly the grid of exact kernel ridge, whatever their dimension ``D``.

The whole grid is solved from ONE symmetric eigendecomposition of the training part's ``F^T F`` (D x D, features)
or ``K`` (n_part x n_part, kernels): ``w(lam) = V diag(1/(s + lam)) V^T F^T Y``.  The final fit on the full set is
one Cholesky-based solve (``scipy.linalg.solve(..., assume_a='pos')``).  All sums and solves are in float64, also
for float32 features.  When D > n, ``fit`` works in the dual instead (``solver='auto'``): the same computation
with the n x n Gram ``F F^T`` (centred), ``w = F_c^T alpha`` -- the same split, grid and solution.

Streaming
---------
``fit_stream(chunks)`` takes an iterable of ``(F_chunk, y_chunk)`` and accumulates, separately for the training
and validation parts, ``F^T F``, ``F^T Y``, the column sums and the target moments in float64: memory is
O(D^2 + D k), never O(n D).  Validation squared errors follow exactly from these moments.  Validation ACCURACY of a
classifier needs the validation rows once more: pass a callable that returns a fresh iterable (the stream is then
read twice) or use ``selection='squared_error'``.  ``partial_fit`` / ``finalize`` are the same accumulation one
chunk at a time.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg

from .._validation import check_matrix, check_n_features, check_random_state

__all__ = [
    "RidgeRegressor",
    "RidgeClassifier",
    "KernelRidgeRegressor",
    "KernelRidgeClassifier",
    "default_relative_lambdas",
    "feature_chunks",
]


def default_relative_lambdas():
    """The default grid of ``lam / trace(F^T F)``: 25 values, 3 per decade, from 1e-8 to 1."""
    return np.logspace(-8.0, 0.0, 25)


def feature_chunks(transform, X, y, batch_size=1024):
    """A re-iterable stream ``(transform(X[i:i+b]), y[i:i+b])`` for ``fit_stream``, never holding all features.

    Returns a zero-argument callable (so a classifier can read the validation rows twice; each pass recomputes
    the features).  ``transform`` is e.g. the ``transform`` method of a fitted feature map.
    """
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}; they must match.")

    def stream():
        for start in range(0, n, batch_size):
            yield transform(X[start:start + batch_size]), y[start:start + batch_size]

    return stream


# ----------------------------------------------------------------------------------------------- input checks
def _check_lambdas(lambdas):
    """Return (array of absolute lambdas or None, whether a single fixed value was given)."""
    if lambdas is None:
        return None, False
    if isinstance(lambdas, numbers.Real) and not isinstance(lambdas, (bool, np.bool_)):
        arr = np.array([float(lambdas)])
        fixed = True
    else:
        try:
            arr = np.asarray(lambdas, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"lambdas must be None, a positive number or a 1-d array of them; got {lambdas!r}.") from exc
        fixed = arr.size == 1
    if arr.size == 0:
        raise ValueError("lambdas is empty; pass None for the default grid or at least one positive value.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"lambdas must all be finite and > 0; got {arr}.")
    return arr, fixed


def _check_fraction(validation_fraction):
    if isinstance(validation_fraction, (bool, np.bool_)) or not isinstance(validation_fraction, numbers.Real):
        raise ValueError(f"validation_fraction must be a number in (0, 1); got {validation_fraction!r}.")
    v = float(validation_fraction)
    if not (0.0 < v < 1.0):
        raise ValueError(f"validation_fraction must be in (0, 1) (e.g. 0.2); got {validation_fraction}.")
    return v


def _check_regression_targets(y, n_rows, name="y"):
    """Float64 2-d targets (n, k); returns (Y, was_1d)."""
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric for regression; got dtype {arr.dtype}.")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-d (n,) or 2-d (n, n_outputs); got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the features have {n_rows}; they must match.")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf targets; drop or impute those rows first.")
    was_1d = arr.ndim == 1
    return (arr[:, None] if was_1d else arr), was_1d


def _check_labels(y, n_rows, name="y"):
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class labels; got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the features have {n_rows} rows; they must match.")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf labels; drop those rows first.")
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} has complex dtype; class labels must be integers or strings.")
    if arr.dtype.kind == "O":
        raise ValueError(f"{name} has object dtype; pass integer or string labels.")
    return arr


def _check_rows(F, name, allow_empty_rows=False):
    # Features keep float32 if given (accumulation is float64 anyway); everything else becomes float64.
    return check_matrix(F, name, dtype=None, allow_empty_rows=allow_empty_rows)


# --------------------------------------------------------------------------------------- selection helpers
def _best_index(scores, sq_errors, lambdas):
    """Index of the best lambda: highest score, ties broken by lower squared error, then larger lambda."""
    order = np.lexsort((-lambdas, sq_errors, -scores))
    return int(order[0])


def _r2_pooled(sse, y_sq_sum, y_sum, n):
    """1 - SSE/SST pooled over outputs, from moments: SST = sum_j (sum y_j^2 - (sum y_j)^2 / n)."""
    sst = float(np.sum(y_sq_sum) - np.sum(y_sum**2) / n) if n > 0 else 0.0
    if sst <= 0.0:
        # Constant validation targets: fall back to the negative mean squared error (same ranking as SSE).
        return -sse / max(n, 1)
    return 1.0 - sse / sst



def _r2_score(pred, y):
    """R^2 = 1 - SSE/SST pooled over the outputs (regression ``score`` of the feature and kernel ridges)."""
    Y, _ = _check_regression_targets(y, pred.shape[0])
    sse = float(np.sum((pred - Y) ** 2))
    sst = float(np.sum((Y - Y.mean(axis=0)) ** 2))
    return 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else -np.inf)


def _rmse(pred, y):
    Y, _ = _check_regression_targets(y, pred.shape[0])
    return float(np.sqrt(np.mean((pred - Y) ** 2)))

class _Moments:
    """Float64 sufficient statistics of a set of rows: n, F^T F, sum F, and target moments.

    For regression the targets are accumulated directly (F^T Y, sum Y, sum Y^2 per output).  For classification
    only per-class row sums and counts are kept, so the classes need not be known in advance: the one-hot-minus-1/C
    moments are formed in ``targets`` once the classes are known (``F^T Y[:, c] = S_c - sum F / C`` and so on).
    """

    def __init__(self, classification):
        self.classification = classification
        self.n = 0
        self.G = None
        self.sum_f = None
        # regression
        self.B = None
        self.sum_y = None
        self.sq_y = None
        # classification
        self.class_sums = {}
        self.class_counts = {}

    def ensure(self, d):
        if self.G is None:
            self.G = np.zeros((d, d))
            self.sum_f = np.zeros(d)

    def add(self, F, y):
        F = np.asarray(F, dtype=np.float64)
        self.ensure(F.shape[1])
        if F.shape[0] == 0:
            return
        self.n += F.shape[0]
        self.G += F.T @ F
        self.sum_f += F.sum(axis=0)
        if self.classification:
            labels, inverse = np.unique(y, return_inverse=True)
            onehot = np.zeros((F.shape[0], labels.size))
            onehot[np.arange(F.shape[0]), inverse] = 1.0
            sums = onehot.T @ F
            counts = onehot.sum(axis=0)
            for i, lab in enumerate(labels.tolist()):
                if lab in self.class_sums:
                    self.class_sums[lab] += sums[i]
                    self.class_counts[lab] += counts[i]
                else:
                    self.class_sums[lab] = sums[i].copy()
                    self.class_counts[lab] = counts[i]
        else:
            if self.B is None:
                self.B = np.zeros((F.shape[1], y.shape[1]))
                self.sum_y = np.zeros(y.shape[1])
                self.sq_y = np.zeros(y.shape[1])
            self.B += F.T @ y
            self.sum_y += y.sum(axis=0)
            self.sq_y += (y * y).sum(axis=0)

    def targets(self, classes, k_outputs):
        """(F^T Y, sum Y, sum Y^2 per output) for this part, given the classes (classification)."""
        d = self.G.shape[0]
        if not self.classification:
            if self.B is None:
                return np.zeros((d, k_outputs)), np.zeros(k_outputs), np.zeros(k_outputs)
            return self.B, self.sum_y, self.sq_y
        C = len(classes)
        S = np.zeros((d, C))
        counts = np.zeros(C)
        for j, lab in enumerate(classes):
            if lab in self.class_sums:
                S[:, j] = self.class_sums[lab]
                counts[j] = self.class_counts[lab]
        B = S - np.outer(self.sum_f, np.full(C, 1.0 / C))
        sum_y = counts - self.n / C
        sq_y = counts * (1.0 - 1.0 / C) ** 2 + (self.n - counts) / C**2
        return B, sum_y, sq_y

    def merged(self, other):
        out = _Moments(self.classification)
        out.n = self.n + other.n
        out.G = self.G + other.G
        out.sum_f = self.sum_f + other.sum_f
        if self.classification:
            for src in (self, other):
                for lab, s in src.class_sums.items():
                    if lab in out.class_sums:
                        out.class_sums[lab] = out.class_sums[lab] + s
                        out.class_counts[lab] += src.class_counts[lab]
                    else:
                        out.class_sums[lab] = s.copy()
                        out.class_counts[lab] = src.class_counts[lab]
        else:
            parts = [p for p in (self, other) if p.B is not None]
            if parts:
                out.B = sum(p.B for p in parts)
                out.sum_y = sum(p.sum_y for p in parts)
                out.sq_y = sum(p.sq_y for p in parts)
        return out


def _centred_system(m, B, sum_y, fit_intercept):
    """Normal equations of (1) for a part: (G_c, B_c, mean_f, mean_y), centred when fitting an intercept."""
    if fit_intercept:
        mu_f = m.sum_f / m.n
        mu_y = sum_y / m.n
        Gc = m.G - m.n * np.outer(mu_f, mu_f)
        Bc = B - m.n * np.outer(mu_f, mu_y)
        # Re-symmetrise: the rank-one update can leave asymmetry of one ulp.
        Gc = 0.5 * (Gc + Gc.T)
        return Gc, Bc, mu_f, mu_y
    return m.G, B, np.zeros_like(m.sum_f), np.zeros_like(sum_y)


# ---------------------------------------------------------------------------------------- feature ridge
class _FeatureRidge:
    _classification = False

    def __init__(self, lambdas=None, *, validation_fraction=0.2, fit_intercept=True, seed=0, solver="auto"):
        self.lambdas = lambdas
        self.validation_fraction = validation_fraction
        self.fit_intercept = fit_intercept
        self.seed = seed
        self.solver = solver

    # --------------------------------------------------------------------------------- target handling
    def _check_targets(self, y, n_rows):
        if self._classification:
            return _check_labels(y, n_rows)
        Y, was_1d = _check_regression_targets(y, n_rows)
        if getattr(self, "_stream_1d", None) is None:
            self._stream_1d = was_1d
            self._stream_k = Y.shape[1]
        elif Y.shape[1] != self._stream_k:
            raise ValueError(f"y has {Y.shape[1]} outputs but earlier chunks had {self._stream_k}; they must match.")
        return Y

    # ------------------------------------------------------------------------------------------- fitting
    def fit(self, F, y):
        """Fit on an in-memory feature matrix ``F`` (n, D) and targets ``y``; chooses ``lam`` as described above.

        Identical (up to float rounding) to ``fit_stream`` on any split of the rows into chunks.
        """
        F = _check_rows(F, "F")
        self._check_targets(y, F.shape[0])  # early, clear errors before any work
        self._stream_1d = None
        if self.solver not in ("auto", "primal", "dual"):
            raise ValueError(f"solver must be 'auto', 'primal' or 'dual'; got {self.solver!r}.")
        if self.solver == "dual" or (self.solver == "auto" and F.shape[1] > F.shape[0]):
            return self._fit_dual(F, y)
        return self.fit_stream(lambda: iter([(F, y)]))

    def _fit_dual(self, F, y):
        """The same fit through the n x n Gram ``F F^T`` (cheaper when D > n): ``w = F_c^T alpha``."""
        self._reset()
        self._started = False
        F = np.asarray(F, dtype=np.float64)
        n, d = F.shape
        labels = classes = None
        if self._classification:
            labels = _check_labels(y, n)
            classes = np.unique(labels)
            if classes.size < 2:
                raise ValueError(
                    f"the training labels contain a single class ({classes.tolist()}); a classifier needs at least 2."
                )
            self.classes_ = classes
            Y = (labels[:, None] == classes[None, :]).astype(np.float64) - 1.0 / classes.size
            selection = getattr(self, "selection", None)
            if selection not in ("auto", "accuracy", "squared_error"):
                raise ValueError(f"selection must be 'auto', 'accuracy' or 'squared_error'; got {selection!r}.")
            criterion = "squared_error" if selection == "squared_error" else "accuracy"
        else:
            Y, was_1d = _check_regression_targets(y, n)
            self._stream_1d, self._stream_k = was_1d, Y.shape[1]
            criterion = "r2"
        res = _dual_ridge(F @ F.T, Y, labels, classes, self.lambdas, self.validation_fraction, self.seed,
                          self.fit_intercept, criterion)
        for name in ("lambdas_", "best_lambda_", "validation_scores_", "validation_squared_errors_", "n_train_",
                     "n_validation_"):
            setattr(self, name, res[name])
        self.selection_ = None if res["validation_scores_"] is None else criterion
        self.n_features_in_ = d
        mu_f = F.mean(axis=0) if self.fit_intercept else np.zeros(d)
        W = (F - mu_f).T @ res["alpha"]
        self._set_weights(W, res["mu_y"] - mu_f @ W)
        return self

    def fit_stream(self, chunks):
        """Fit from a stream of ``(F_chunk, y_chunk)`` pairs without storing the features.

        Parameters
        ----------
        chunks : iterable or callable
            An iterable of ``(F_chunk, y_chunk)``, or a zero-argument callable returning a fresh such iterable.
            With a callable, a classifier with ``selection`` 'auto' or 'accuracy' reads the stream a second time
            to score the validation rows by accuracy; with a plain iterable it is read once.
        """
        self._reset()
        stream = chunks() if callable(chunks) else chunks
        for item in stream:
            try:
                Fc, yc = item
            except (TypeError, ValueError) as exc:
                raise ValueError("each element of the stream must be a pair (F_chunk, y_chunk).") from exc
            self.partial_fit(Fc, yc)
        return self.finalize(second_pass=chunks if callable(chunks) else None)

    def _reset(self):
        self._lambdas_abs, self._fixed = _check_lambdas(self.lambdas)
        if not self._fixed:
            self._fraction = _check_fraction(self.validation_fraction)
        self._rng = check_random_state(self.seed)
        self._train = _Moments(self._classification)
        self._val = _Moments(self._classification)
        self._masks = []
        self._n_features = None
        self._stream_1d = None
        self._started = True
        for attr in ("coef_", "intercept_", "best_lambda_", "_W"):
            if hasattr(self, attr):
                delattr(self, attr)

    def partial_fit(self, F, y):
        """Accumulate one chunk of rows (float64 moments); call ``finalize()`` after the last chunk.

        The first call after construction, ``fit`` or ``finalize`` starts a new accumulation.
        """
        if not getattr(self, "_started", False):
            self._reset()
        F = _check_rows(F, "F_chunk", allow_empty_rows=True)   # an empty chunk in a stream is harmless
        y = self._check_targets(y, F.shape[0])
        if self._n_features is None:
            self._n_features = F.shape[1]
            self._train.ensure(F.shape[1])
            self._val.ensure(F.shape[1])
        elif F.shape[1] != self._n_features:
            raise ValueError(
                f"F_chunk has {F.shape[1]} features but earlier chunks had {self._n_features}; they must match."
            )
        if self._fixed:
            self._train.add(F, y)
            self._masks.append(None)
            return self
        # Validation rows by a seeded Bernoulli mask, drawn in stream order: rng.random(a) then rng.random(b)
        # gives the same numbers as rng.random(a + b), so the split does not depend on the chunking.
        val = self._rng.random(F.shape[0]) < self._fraction
        self._masks.append(np.packbits(val))
        self._train.add(F[~val], y[~val])
        self._val.add(F[val], y[val])
        return self

    def finalize(self, second_pass=None):
        """Choose ``lam`` from the accumulated moments and solve (1) on all accumulated rows.

        Parameters
        ----------
        second_pass : callable or None
            Optional zero-argument callable returning the same stream again (same chunks, same order); used by a
            classifier to score the validation rows by accuracy.
        """
        if not getattr(self, "_started", False) or self._n_features is None or self._train.n + self._val.n == 0:
            raise ValueError("no data: call partial_fit with at least one non-empty chunk before finalize().")
        self._started = False
        full = self._train.merged(self._val)
        classes = None
        k = None
        if self._classification:
            classes = np.array(sorted(full.class_sums.keys()))
            if classes.size < 2:
                raise ValueError(
                    f"the training labels contain a single class ({classes.tolist()}); a classifier needs at least 2."
                )
            self.classes_ = classes
            k = classes.size
        else:
            k = self._stream_k
        self.n_features_in_ = self._n_features
        Bf, sum_yf, _ = full.targets(classes, k)
        Gf, Bfc, mu_f, mu_y = _centred_system(full, Bf, sum_yf, self.fit_intercept)
        trace = float(np.trace(Gf))
        if self._lambdas_abs is None:
            scale = trace if trace > 0 else 1.0
            lambdas = scale * default_relative_lambdas()
        else:
            lambdas = self._lambdas_abs
        self.lambdas_ = lambdas
        self.n_train_ = self._train.n
        self.n_validation_ = self._val.n
        if self._fixed:
            self.best_lambda_ = float(lambdas[0])
            self.validation_scores_ = None
            self.selection_ = None
        else:
            self._select(lambdas, classes, k, second_pass)
        self._solve_full(Gf, Bfc, mu_f, mu_y, self.best_lambda_)
        return self

    def _select(self, lambdas, classes, k, second_pass):
        tr, va = self._train, self._val
        if tr.n == 0 or va.n == 0:
            raise ValueError(
                f"the validation split left {tr.n} training and {va.n} validation rows; use more data or a "
                "validation_fraction further from 0 and 1, or pass a single lambda to skip the selection."
            )
        Bt, sum_yt, _ = tr.targets(classes, k)
        Gt, Btc, mu_ft, mu_yt = _centred_system(tr, Bt, sum_yt, self.fit_intercept)
        n_full = tr.n + va.n
        # One eigendecomposition for the whole grid; the penalty on the part is lam * n_part / n (module doc).
        s, V = scipy.linalg.eigh(Gt)
        s = np.maximum(s, 0.0)
        Q = V.T @ Btc                          # (D, k): coefficients in the eigenbasis are Q / (s + lam')
        lam_part = lambdas * (tr.n / n_full)
        Bv, sum_yv, sq_yv = va.targets(classes, k)
        Vt_mu = V.T @ mu_ft
        P = V.T @ va.G @ V                     # validation F^T F in the eigenbasis
        r = V.T @ Bv
        sf = V.T @ va.sum_f
        sse = np.empty(lambdas.size)
        coefs = []
        for i, lam in enumerate(lam_part):
            W = Q / (s + lam)[:, None]
            b = mu_yt - Vt_mu @ W
            # |F_v W + 1 b^T - Y_v|^2 expanded into validation moments (exact, no rows stored).
            val = (np.sum(sq_yv) - 2.0 * np.sum(W * r) - 2.0 * b @ sum_yv + np.sum(W * (P @ W))
                   + 2.0 * b @ (W.T @ sf) + va.n * (b @ b))
            sse[i] = max(val, 0.0)
            coefs.append((W, b))
        selection = getattr(self, "selection", None)
        if self._classification:
            if selection not in ("auto", "accuracy", "squared_error"):
                raise ValueError(f"selection must be 'auto', 'accuracy' or 'squared_error'; got {selection!r}.")
            if selection == "accuracy" and second_pass is None:
                raise ValueError(
                    "selection='accuracy' needs the validation rows twice: pass fit_stream a callable returning a "
                    "fresh iterable, call finalize(second_pass=...), or use selection='squared_error'."
                )
            use_acc = selection != "squared_error" and second_pass is not None
        else:
            use_acc = False
        if use_acc:
            scores = self._validation_accuracy(second_pass, V, coefs, classes)
            self.selection_ = "accuracy"
        elif self._classification:
            scores = -sse / va.n
            self.selection_ = "squared_error"
        else:
            scores = np.array([_r2_pooled(e, sq_yv, sum_yv, va.n) for e in sse])
            self.selection_ = "r2"
        self.validation_scores_ = scores
        self.validation_squared_errors_ = sse / va.n
        self.best_lambda_ = float(lambdas[_best_index(scores, sse, lambdas)])

    def _validation_accuracy(self, second_pass, V, coefs, classes):
        correct = np.zeros(len(coefs))
        n_val = 0
        stream = second_pass()
        n_chunks = 0
        for idx, item in enumerate(stream):
            Fc, yc = item
            if idx >= len(self._masks):
                raise ValueError("the second pass of the stream has more chunks than the first; it must repeat it.")
            Fc = _check_rows(Fc, "F_chunk", allow_empty_rows=True)
            yc = _check_labels(yc, Fc.shape[0])
            if self._masks[idx].size != (Fc.shape[0] + 7) // 8:
                raise ValueError("the second pass of the stream has different chunk sizes; it must repeat the first.")
            mask = np.unpackbits(self._masks[idx], count=Fc.shape[0]).astype(bool)
            n_chunks += 1
            if not mask.any():
                continue
            Z = np.asarray(Fc[mask], dtype=np.float64) @ V
            truth = yc[mask]
            n_val += truth.size
            for i, (W, b) in enumerate(coefs):
                pred = classes[np.argmax(Z @ W + b, axis=1)]
                correct[i] += np.count_nonzero(pred == truth)
        if n_chunks != len(self._masks) or n_val != self._val.n:
            raise ValueError("the second pass of the stream differs from the first; it must repeat the same chunks.")
        return correct / n_val

    def _solve_full(self, G, B, mu_f, mu_y, lam):
        A = G + lam * np.eye(G.shape[0])
        W = scipy.linalg.solve(A, B, assume_a="pos")
        self._set_weights(W, mu_y - mu_f @ W)

    def _set_weights(self, W, b):
        self._W = W
        self._b = b
        if self._classification or not self._stream_1d:
            self.coef_ = W
            self.intercept_ = b
        else:
            self.coef_ = W[:, 0]
            self.intercept_ = float(b[0])

    # ---------------------------------------------------------------------------------------- prediction
    def _check_fitted(self):
        if not hasattr(self, "_W"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit, fit_stream or finalize first.")

    def _decision(self, F):
        self._check_fitted()
        F = _check_rows(F, "F")
        check_n_features(F, self.n_features_in_, "F")
        return np.asarray(F, dtype=np.float64) @ self._W + self._b


class RidgeRegressor(_FeatureRidge):
    """Ridge regression on features with ``lam`` chosen on a validation split (module docstring, eq. (1)).

    Parameters
    ----------
    lambdas : None, float or array_like
        None: the grid ``trace(F^T F) * default_relative_lambdas()``.  A float: that ``lam``, no validation split.
        An array: the grid of absolute values of ``lam`` in (1).
    validation_fraction : float in (0, 1)
        Expected fraction of training rows held out to choose ``lam`` (Bernoulli per row).
    fit_intercept : bool
        Fit an unpenalised intercept (default True for regression).
    seed : None, int or numpy Generator
        Seeds the validation split.
    solver : {'auto', 'primal', 'dual'}
        For ``fit`` only: 'primal' works with the D x D matrix ``F^T F``, 'dual' with the n x n Gram ``F F^T``
        (``w = F_c^T alpha``; same split, grid, selection and solution up to rounding); 'auto' picks the dual
        when D > n.  ``fit_stream`` and ``partial_fit`` are always primal.

    Attributes
    ----------
    coef_, intercept_ : fitted weights (D,) / float for 1-d targets, (D, k) / (k,) otherwise.
    best_lambda_ : the chosen ``lam`` (on the scale of the full training set).
    lambdas_, validation_scores_ : the grid and its validation R^2 (pooled over outputs).
    validation_squared_errors_ : the grid's validation mean squared errors (summed over outputs).
    n_train_, n_validation_ : rows in the two parts of the split.
    """

    _classification = False

    def predict(self, F):
        """Predictions ``F w + b``: shape (n,) for 1-d training targets, (n, k) otherwise."""
        out = self._decision(F)
        return out[:, 0] if self._stream_1d else out

    def score(self, F, y):
        """R^2 = 1 - SSE/SST pooled over the outputs."""
        return _r2_score(self._decision(F), y)

    def rmse(self, F, y):
        """Root mean squared error (over rows and outputs)."""
        return _rmse(self._decision(F), y)


class RidgeClassifier(_FeatureRidge):
    """Ridge classifier on features: targets one-hot minus 1/C, prediction by argmax (docs/math.md §8).

    Parameters are those of ``RidgeRegressor`` (but ``fit_intercept`` defaults to False, the paper's
    convention: the 1/C shift already centres the targets), plus

    selection : {'auto', 'accuracy', 'squared_error'}
        Validation criterion for ``lam``.  'auto' is accuracy when the validation rows can be read again
        (``fit``, or ``fit_stream`` given a callable) and the squared error of the one-hot targets otherwise.
        Ties in accuracy are broken by the squared error.

    Attributes
    ----------
    classes_ : sorted class labels.
    selection_ : the criterion actually used.
    Others as in ``RidgeRegressor``; ``validation_scores_`` are accuracies (or minus mean squared errors).
    """

    _classification = True

    def __init__(self, lambdas=None, *, validation_fraction=0.2, fit_intercept=False, seed=0, selection="auto",
                 solver="auto"):
        super().__init__(lambdas, validation_fraction=validation_fraction, fit_intercept=fit_intercept, seed=seed,
                         solver=solver)
        self.selection = selection

    def decision_function(self, F):
        """The C outputs ``F w + b`` (n, C); the predicted class is the argmax."""
        return self._decision(F)

    def predict(self, F):
        return self.classes_[np.argmax(self._decision(F), axis=1)]

    def score(self, F, y):
        """Accuracy."""
        pred = self.predict(F)
        truth = _check_labels(y, pred.shape[0])
        return float(np.mean(pred == truth))


# ----------------------------------------------------------------------------------------- kernel ridge
def _centre_gram(K, fit_intercept):
    """Doubly centred Gram (centring in feature space) and the statistics needed to centre cross-kernels."""
    if not fit_intercept:
        return K, (None, None)
    col_mean = K.mean(axis=0)
    tot_mean = float(col_mean.mean())
    Kc = K - col_mean[None, :] - col_mean[:, None] + tot_mean
    return 0.5 * (Kc + Kc.T), (col_mean, tot_mean)


def _centre_cross(Kx, col_mean, tot_mean, fit_intercept):
    """Centre K(X, X_train) consistently with ``_centre_gram`` of K(X_train, X_train)."""
    if not fit_intercept:
        return Kx
    return Kx - col_mean[None, :] - Kx.mean(axis=1)[:, None] + tot_mean


def _dual_ridge(K, Y, labels, classes, lambdas, validation_fraction, seed, fit_intercept, criterion):
    """Kernel ridge with the module's lambda selection, in the dual: ``alpha = (K_c + lam I)^{-1} (Y - mean Y)``.

    One eigendecomposition of the training part's (centred) K for the whole grid, the penalty ``lam n_part / n``
    on the part, the same seeded Bernoulli split and default grid as the primal (feature) solver.  ``criterion``
    is 'r2', 'accuracy' or 'squared_error'.  Returns a dict of the fitted quantities.
    """
    n = K.shape[0]
    K = 0.5 * (K + K.T)
    lambdas_abs, fixed = _check_lambdas(lambdas)
    Kc_full, centre = _centre_gram(K, fit_intercept)
    trace = float(np.trace(Kc_full))
    grid = lambdas_abs if lambdas_abs is not None else (trace if trace > 0 else 1.0) * default_relative_lambdas()
    out = {"lambdas_": grid, "centre": centre, "validation_scores_": None, "validation_squared_errors_": None}
    if fixed:
        out.update(best_lambda_=float(grid[0]), n_train_=n, n_validation_=0)
    else:
        fraction = _check_fraction(validation_fraction)
        val = check_random_state(seed).random(n) < fraction   # the same draw as the primal solver's
        tr = ~val
        n_tr, n_val = int(tr.sum()), int(val.sum())
        if n_tr == 0 or n_val == 0:
            raise ValueError(
                f"the validation split left {n_tr} training and {n_val} validation rows; use more data or another "
                "validation_fraction, or pass a single lambda."
            )
        Ktt_c, (col_mean, tot_mean) = _centre_gram(K[np.ix_(tr, tr)], fit_intercept)
        Kvt_c = _centre_cross(K[np.ix_(val, tr)], col_mean, tot_mean, fit_intercept)
        Yt, Yv = Y[tr], Y[val]
        mu_t = Yt.mean(axis=0) if fit_intercept else np.zeros(Y.shape[1])
        s, U = scipy.linalg.eigh(Ktt_c)
        s = np.maximum(s, 0.0)
        Qy = U.T @ (Yt - mu_t)
        KU = Kvt_c @ U
        scores = np.empty(grid.size)
        sse = np.empty(grid.size)
        for i, lam in enumerate(grid * (n_tr / n)):
            pred = KU @ (Qy / (s + lam)[:, None]) + mu_t
            sse[i] = np.sum((pred - Yv) ** 2)
            if criterion == "accuracy":
                scores[i] = np.mean(classes[np.argmax(pred, axis=1)] == labels[val])
            elif criterion == "squared_error":
                scores[i] = -sse[i] / n_val
            else:
                scores[i] = _r2_pooled(sse[i], np.sum(Yv**2, axis=0), Yv.sum(axis=0), n_val)
        out.update(best_lambda_=float(grid[_best_index(scores, sse, grid)]), n_train_=n_tr, n_validation_=n_val,
                   validation_scores_=scores, validation_squared_errors_=sse / n_val)
    mu_y = Y.mean(axis=0) if fit_intercept else np.zeros(Y.shape[1])
    out["alpha"] = scipy.linalg.solve(Kc_full + out["best_lambda_"] * np.eye(n), Y - mu_y, assume_a="pos")
    out["mu_y"] = mu_y
    return out


class _KernelRidge:
    _classification = False

    def __init__(self, kernel, lambdas=None, *, validation_fraction=0.2, fit_intercept=True, seed=0):
        self.kernel = kernel
        self.lambdas = lambdas
        self.validation_fraction = validation_fraction
        self.fit_intercept = fit_intercept
        self.seed = seed

    def _gram(self, A, B, name):
        K = np.asarray(self.kernel(A, B), dtype=np.float64)
        if K.shape != (A.shape[0], B.shape[0]):
            raise ValueError(f"kernel returned shape {K.shape} for {name}; expected {(A.shape[0], B.shape[0])}.")
        if not np.all(np.isfinite(K)):
            raise ValueError(f"kernel returned NaN or inf values for {name}.")
        return K

    def _targets(self, y, n):
        if self._classification:
            labels = _check_labels(y, n)
            classes = np.unique(labels)
            if classes.size < 2:
                raise ValueError(
                    f"the training labels contain a single class ({classes.tolist()}); a classifier needs at least 2."
                )
            self.classes_ = classes
            C = classes.size
            Y = (labels[:, None] == classes[None, :]).astype(np.float64) - 1.0 / C
            self._was_1d = False
            return Y, labels
        Y, was_1d = _check_regression_targets(y, n)
        self._was_1d = was_1d
        return Y, None

    def fit(self, X, y):
        """Fit on training inputs ``X`` (or the (n, n) training Gram matrix if ``kernel='precomputed'``)."""
        if isinstance(self.kernel, str) and self.kernel == "precomputed":
            K = check_matrix(X, "X (precomputed Gram matrix)")
            if K.shape[0] != K.shape[1]:
                raise ValueError(f"with kernel='precomputed', X must be the square (n, n) training Gram; got {K.shape}.")
            self._X = None
        else:
            if not callable(self.kernel):
                raise ValueError("kernel must be a callable kernel(X1, X2) -> (n1, n2) array or 'precomputed'.")
            Xa = np.asarray(X)
            if Xa.ndim < 2 or Xa.shape[0] == 0:
                raise ValueError(f"X must be an array of rows (n, ...) with n >= 1; got shape {Xa.shape}.")
            if Xa.dtype.kind in "biuf" and not np.all(np.isfinite(Xa)):
                raise ValueError("X contains NaN or inf; remove or impute those entries first.")
            self._X = Xa
            K = self._gram(Xa, Xa, "the training Gram matrix")
        n = K.shape[0]
        Y, labels = self._targets(y, n)
        res = _dual_ridge(K, Y, labels, self.classes_ if self._classification else None, self.lambdas,
                          self.validation_fraction, self.seed, self.fit_intercept,
                          "accuracy" if self._classification else "r2")
        for name in ("lambdas_", "best_lambda_", "validation_scores_", "validation_squared_errors_", "n_train_",
                     "n_validation_"):
            setattr(self, name, res[name])
        self.dual_coef_ = res["alpha"]
        self._mu_y = res["mu_y"]
        self._centre = res["centre"]
        self._n_fit = n
        return self

    def _decision(self, X):
        if not hasattr(self, "dual_coef_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit first.")
        if isinstance(self.kernel, str) and self.kernel == "precomputed":
            Kx = check_matrix(X, "X (precomputed test-by-train kernel)")
            if Kx.shape[1] != self._n_fit:
                raise ValueError(
                    f"with kernel='precomputed', predict needs K(X_test, X_train) of shape (n_test, {self._n_fit}); "
                    f"got {Kx.shape}."
                )
        else:
            Xa = np.asarray(X)
            if Xa.shape[1:] != self._X.shape[1:]:
                raise ValueError(f"X rows have shape {Xa.shape[1:]} but training rows had {self._X.shape[1:]}.")
            Kx = self._gram(Xa, self._X, "K(X, X_train)")
        col_mean, tot_mean = self._centre
        return _centre_cross(Kx, col_mean, tot_mean, self.fit_intercept) @ self.dual_coef_ + self._mu_y


class KernelRidgeRegressor(_KernelRidge):
    """Exact kernel ridge regression, ``alpha = (K + lam I)^{-1} (Y - mean Y)``, with the feature ridge's ``lam``
    selection (module docstring; one eigendecomposition of the training part's K for the whole grid).

    For n up to a few thousand (O(n^2) memory, O(n^3) time).

    Parameters
    ----------
    kernel : callable or 'precomputed'
        ``kernel(X1, X2) -> (n1, n2)``, e.g. ``functools.partial(ntk_kernel, depth=2)``; with 'precomputed',
        ``fit`` takes the (n, n) training Gram and ``predict`` the (n_test, n) test-by-train kernel.
    lambdas, validation_fraction, fit_intercept, seed :
        As in ``RidgeRegressor``; the split draws the same mask as the feature ridge with the same seed, and the
        intercept is the feature-space one (doubly centred Gram), so a feature map with ``F F^T = K`` gives the
        same ``lam`` and the same predictions.
    """

    _classification = False

    def predict(self, X):
        out = self._decision(X)
        return out[:, 0] if self._was_1d else out

    def score(self, X, y):
        """R^2 = 1 - SSE/SST pooled over the outputs."""
        return _r2_score(self._decision(X), y)

    def rmse(self, X, y):
        """Root mean squared error (over rows and outputs)."""
        return _rmse(self._decision(X), y)


class KernelRidgeClassifier(_KernelRidge):
    """Exact kernel ridge classifier: targets one-hot minus 1/C, argmax prediction, ``lam`` chosen by validation
    accuracy (ties broken by squared error).  ``fit_intercept`` defaults to False as in ``RidgeClassifier``."""

    _classification = True

    def __init__(self, kernel, lambdas=None, *, validation_fraction=0.2, fit_intercept=False, seed=0):
        super().__init__(kernel, lambdas, validation_fraction=validation_fraction, fit_intercept=fit_intercept,
                         seed=seed)

    def decision_function(self, X):
        return self._decision(X)

    def predict(self, X):
        return self.classes_[np.argmax(self._decision(X), axis=1)]

    def score(self, X, y):
        pred = self.predict(X)
        truth = _check_labels(y, pred.shape[0])
        return float(np.mean(pred == truth))
