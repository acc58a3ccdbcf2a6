"""Ridge regression and classification on feature matrices and feature streams.

This is the learning step of the paper's experiments (Zandieh et al. 2021; docs/math.md §8): a linear
model on the features of a sketch / random-feature map (``RidgeRegressor``, ``RidgeClassifier``).  Exact kernel
ridge, the reference, is in ``kernel_ridge.py`` (``KernelRidgeRegressor``, ``KernelRidgeClassifier``); the
streaming sufficient statistics are ``RidgeMoments`` in ``ridge_moments.py``.

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

The default grid is relative to the data scale: ``lam = trace(F^T F) * logspace(-11, 0, 34)`` with ``F`` the
(centred, when ``fit_intercept``) full training features; ``trace(F^T F) = trace(K)`` for a kernel, so features
that approximate a kernel get nearly the grid of exact kernel ridge, whatever their dimension ``D``.

The whole grid is solved from ONE symmetric eigendecomposition of the training part's ``F^T F`` (D x D, features)
or ``K`` (n_part x n_part, kernels): ``w(lam) = V diag(1/(s + lam)) V^T F^T Y``.  The final fit on the full set is
one Cholesky-based solve (``solve_spd`` of ``ntk_sketch/_linalg.py``, in blocks above 4096 columns: see there
why).  All sums and solves are in float64, also for float32 features.  When D > n, ``fit`` works in the dual
instead (``solver='auto'``): the same computation with the n x n Gram ``F F^T`` (centred), ``w = F_c^T alpha`` --
the same split, grid and solution.

Streaming
---------
``fit_stream(chunks)`` takes an iterable of ``(F_chunk, y_chunk)`` and accumulates, separately for the training and
validation parts, ``F^T F``, ``F^T Y``, the column sums and the target moments in float64: memory is O(D^2 + D k),
never O(n D).  Validation squared errors follow exactly from these moments.  Validation ACCURACY of a classifier
needs the validation rows once more: pass a callable that returns a fresh iterable (the stream is then read twice;
the validation squared errors then come from those rows too, and the validation ``F^T F`` is not projected on the
eigenbasis: two D^3 products saved) or use ``selection='squared_error'``.  ``partial_fit`` / ``finalize`` are the
same accumulation one chunk at a time.  The two accumulators are ``RidgeMoments`` (``ridge_moments.py``), whose
``merged`` combines blocks in any order; ``fit_moments(train, validation)`` fits from moments reduced elsewhere
(e.g. in parallel), scoring accuracy, if asked, through a ``count_correct`` callable that runs where the validation
rows are.

Where the two D x D accumulators and the eigendecomposition do not fit in memory (D = 32768: 8.6 GB per matrix),
``fit_stream_lean`` (``ridge_lean.py``) gives the same fit holding one D x D matrix, at one Cholesky factorisation
per lam.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg

from .._base import BaseEstimator, ClassifierMixin, RegressorMixin, check_is_fitted
from .._linalg import gram, solve_spd
from .._validation import check_bool, check_n_features, check_random_state
from ._checks import (
    _best_index,
    _binary_decision,
    _check_fraction,
    _check_labels,
    _check_lambdas,
    _check_regression_targets,
    _check_rows,
    _r2_pooled,
    _r2_score,
    _rmse,
    _rounding_error,
    default_relative_lambdas,
)
from .kernel_ridge import _dual_ridge
from .ridge_moments import RidgeMoments

__all__ = [
    "RidgeRegressor",
    "RidgeClassifier",
    "default_relative_lambdas",
    "feature_chunks",
]


def feature_chunks(transform, X, y, chunk_size=1024):
    """A re-iterable stream ``(transform(X[i:i+b]), y[i:i+b])`` for ``fit_stream``, never holding all features.

    Returns a zero-argument callable (so a classifier can read the validation rows twice; each pass recomputes
    the features).  ``transform`` is e.g. the ``transform`` method of a fitted feature map; ``chunk_size`` is the
    number of rows per chunk.
    """
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}.")
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}; they must match.")

    def stream():
        for start in range(0, n, chunk_size):
            yield transform(X[start:start + chunk_size]), y[start:start + chunk_size]

    return stream


def _require_finite(*arrays, what="X^T X"):
    """Raise a ValueError naming X when a moment or solution overflowed float64 (features above ~1e154)."""
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(
            f"{what} overflows float64: the features X are too large in magnitude (entries above ~1e154 square to "
            "inf); rescale X (e.g. divide it by its largest absolute entry) before fitting."
        )


# ---------------------------------------------------------------------------------------- feature ridge
class _FeatureRidge(BaseEstimator):
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
    def fit(self, X, y):
        """Fit on an in-memory feature matrix ``X`` (the features F, (n, D)) and targets ``y``; chooses ``lam``
        as described above.

        Identical (up to float rounding) to ``fit_stream`` on any split of the rows into chunks.
        """
        F = _check_rows(X, "X")
        checked = self._check_targets(y, F.shape[0])  # early, clear errors before any work
        if self._classification:
            y = checked   # 1-d labels from here on (a column vector warns once, here)
        self._stream_1d = None
        check_bool(self.fit_intercept, "fit_intercept")
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
                    f"the training labels contain a single class ({classes.tolist()}); a classifier needs at least 2 "
                    "classes, got 1 class."
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
        with np.errstate(over="ignore", invalid="ignore"):
            K = gram(F.T)       # F F^T, in blocks the bundled OpenBLAS survives (ntk_sketch/_linalg.py)
        _require_finite(K, what="X X^T")
        res = _dual_ridge(K, Y, labels, classes, self.lambdas, self.validation_fraction, self.seed,
                          self.fit_intercept, criterion)
        for name in ("lambdas_", "best_lambda_", "validation_scores_", "validation_squared_errors_", "n_train_",
                     "n_validation_"):
            setattr(self, name, res[name])
        self.selection_ = None if res["validation_scores_"] is None else criterion
        self.n_features_in_ = d
        mu_f = F.mean(axis=0) if self.fit_intercept else np.zeros(d)
        with np.errstate(over="ignore", invalid="ignore"):
            W = (F - mu_f).T @ res["alpha"]
            b = res["mu_y"] - mu_f @ W
        _require_finite(W, b, what="the ridge solution for X")
        self._set_weights(W, b)
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
        check_bool(self.fit_intercept, "fit_intercept")
        self._lambdas_abs, self._fixed = _check_lambdas(self.lambdas)
        if not self._fixed:
            self._fraction = _check_fraction(self.validation_fraction)
        self._rng = check_random_state(self.seed)
        self._train = RidgeMoments(self._classification)
        self._val = RidgeMoments(self._classification)
        self._masks = []
        self._n_features = None
        self._stream_1d = None
        self._declared_classes = None
        self._started = True
        for attr in ("coef_", "intercept_", "best_lambda_", "_W", "n_features_in_"):
            if hasattr(self, attr):
                delattr(self, attr)

    def partial_fit(self, X, y, classes=None):
        """Accumulate one chunk of rows ``X`` (features) with targets ``y`` (float64 moments); call ``finalize()``
        after the last chunk.

        The first call after construction, ``fit`` or ``finalize`` starts a new accumulation.  ``classes``
        (classifier only, optional): every class label of the whole stream, for classes that may be missing from
        the chunks; ``classes_`` is then their union with the labels seen.
        """
        if not getattr(self, "_started", False):
            self._reset()
        F = _check_rows(X, "X", allow_empty_rows=True)   # an empty chunk in a stream is harmless
        y = self._check_targets(y, F.shape[0])
        if classes is not None:
            if not self._classification:
                raise ValueError("classes is for classifiers; a regressor takes real targets.")
            declared = np.unique(_check_labels(classes, len(classes), "classes"))
            self._declared_classes = declared if self._declared_classes is None else \
                np.union1d(self._declared_classes, declared)
        if self._n_features is None:
            self._n_features = F.shape[1]
            self.n_features_in_ = F.shape[1]
        elif F.shape[1] != self._n_features:
            raise ValueError(
                f"X has {F.shape[1]} features, but {type(self).__name__} is expecting {self._n_features} features "
                f"as input: earlier chunks had {self._n_features}; they must match."
            )
        if self._fixed:
            self._train.add(F, y)
            self._masks.append(None)
            return self
        # Validation rows by a seeded Bernoulli mask, drawn in stream order: rng.random(a) then rng.random(b)
        # gives the same numbers as rng.random(a + b), so the split does not depend on the chunking
        # (ridge_moments.validation_mask replays any block of it).
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
        if not getattr(self, "_started", False) or self._n_features is None or \
                self._train.n_rows + self._val.n_rows == 0:
            raise ValueError("no data: call partial_fit with at least one non-empty chunk before finalize().")
        self._started = False
        rows = None if second_pass is None else (lambda: self._masked_rows(second_pass))
        return self._fit_from_moments(self._train, self._val, rows)

    def fit_moments(self, train, validation=None, *, validation_rows=None, count_correct=None):
        """Fit from precomputed moments (``RidgeMoments``) of the training and validation parts.

        The same selection and final solve as ``finalize``, for moments accumulated elsewhere, e.g. blocks of a
        distributed data set summarised in parallel and reduced with ``RidgeMoments.merged``
        (``ridge_moments.validation_mask`` reproduces this estimator's split block by block).

        Parameters
        ----------
        train : RidgeMoments
            Moments of the rows the models of the grid are fitted on.
        validation : RidgeMoments or None
            Moments of the held-out rows that choose ``lam``.  Needed for a grid; with a single ``lam`` its rows
            join the final fit (as in ``fit``, where the final fit uses every row).
        validation_rows : callable or None
            Classifier only: a zero-argument callable returning an iterable of ``(F_val_chunk, y_val_chunk)``
            pairs holding exactly the validation rows, to choose ``lam`` by accuracy.  Without it (and without
            ``count_correct``) the selection uses the squared error (``selection='accuracy'`` then raises).
        count_correct : callable or None
            Classifier only: the alternative to ``validation_rows`` when the validation rows should stay where they
            are (e.g. on the workers of a cluster: ``dask_backend.fit``), so only the grid's models travel to
            them.  Called once as ``count_correct(V, coefs, classes)``; ``coefs`` lists one pair ``(W, b)`` per
            ``lam`` of the grid, in the eigenbasis ``V`` (D x D) of the training part's (centred) ``F^T F``: the
            model of grid point ``i`` predicts ``classes[argmax((f @ V) @ W + b)]`` for a feature row ``f``.  It
            returns ``(correct, n_rows)``: ``correct[i]`` the number of validation rows that model ``i`` labels
            correctly, ``n_rows`` the number of validation rows scored, which must be ``validation.n_rows``.
        """
        if validation_rows is not None and count_correct is not None:
            raise ValueError("pass validation_rows or count_correct, not both: they are two ways to score the same "
                             "validation rows.")
        if count_correct is not None and not callable(count_correct):
            raise TypeError(f"count_correct must be a callable (V, coefs, classes) -> (correct, n_rows); "
                            f"got {type(count_correct).__name__}.")
        self._started = False
        self._declared_classes = None
        check_bool(self.fit_intercept, "fit_intercept")
        for name, m in (("train", train), ("validation", validation)):
            if m is None and name == "validation":
                continue
            if not isinstance(m, RidgeMoments):
                raise TypeError(f"{name} must be a RidgeMoments; got {type(m).__name__}.")
            if m.classification != self._classification:
                kind = "classification" if self._classification else "regression"
                raise ValueError(f"{name} holds the wrong kind of moments: {type(self).__name__} needs {kind} moments.")
        self._lambdas_abs, self._fixed = _check_lambdas(self.lambdas)
        if validation is None:
            if not self._fixed:
                raise ValueError(
                    "choosing lam from a grid needs validation moments: pass validation=, or a single lambda."
                )
            validation = RidgeMoments(self._classification)
        if train.n_features is None or train.n_rows + validation.n_rows == 0:
            raise ValueError("no data: the moments hold no rows.")
        if validation.n_features is not None and validation.n_features != train.n_features:
            raise ValueError(
                f"validation has {validation.n_features} features but train has {train.n_features}; they must match."
            )
        self._n_features = train.n_features
        if not self._classification:
            ks = {m.cross.shape[1] for m in (train, validation) if m.cross is not None}
            if len(ks) > 1:
                raise ValueError(f"train and validation hold different numbers of outputs ({sorted(ks)}).")
            self._stream_k = ks.pop()
            self._stream_1d = bool(train.targets_1d if train.cross is not None else validation.targets_1d)
        if self._fixed:
            train, validation = train.merged(validation), RidgeMoments(self._classification)
        return self._fit_from_moments(train, validation, validation_rows, count_correct)

    def _fit_from_moments(self, train, val, validation_rows, count_correct=None):
        self._train, self._val = train, val
        full = train.merged(val)
        classes = None
        k = None
        if self._classification:
            classes = full.classes()
            declared = getattr(self, "_declared_classes", None)
            if declared is not None:
                unknown = np.setdiff1d(classes, declared)
                if unknown.size:
                    raise ValueError(f"the labels {unknown.tolist()} are not among the classes passed to partial_fit.")
                classes = declared
            if classes.size < 2:
                raise ValueError(
                    f"the training labels contain a single class ({classes.tolist()}); a classifier needs at least 2 "
                    "classes, got 1 class."
                )
            self.classes_ = classes
            k = classes.size
        else:
            k = self._stream_k
        self.n_features_in_ = self._n_features
        with np.errstate(over="ignore", invalid="ignore"):
            Bf, sum_yf, _ = full.targets(classes, k)
            Gf, Bfc, mu_f, mu_y = full.centred(Bf, sum_yf, self.fit_intercept)
            trace = float(np.trace(Gf))
        _require_finite(Gf, Bfc, mu_f, mu_y, trace)
        if self._lambdas_abs is None:
            scale = trace if trace > 0 else 1.0
            lambdas = scale * default_relative_lambdas()
        else:
            lambdas = self._lambdas_abs
        self.lambdas_ = lambdas
        self.n_train_ = train.n_rows
        self.n_validation_ = val.n_rows
        if self._fixed:
            self.best_lambda_ = float(lambdas[0])
            self.validation_scores_ = None
            self.selection_ = None
        else:
            self._select(lambdas, classes, k, validation_rows, count_correct)
        self._solve_full(Gf, Bfc, mu_f, mu_y, self.best_lambda_)
        return self

    def _select(self, lambdas, classes, k, validation_rows, count_correct=None):
        tr, va = self._train, self._val
        if tr.n_rows == 0 or va.n_rows == 0:
            raise ValueError(
                f"the validation split of n_samples={tr.n_rows + va.n_rows} rows left {tr.n_rows} training and "
                f"{va.n_rows} validation rows; use more data or a validation_fraction further from 0 and 1, or pass "
                "a single lambda to skip the selection."
            )
        Bt, sum_yt, _ = tr.targets(classes, k)
        Gt, Btc, mu_ft, mu_yt = tr.centred(Bt, sum_yt, self.fit_intercept)
        n_full = tr.n_rows + va.n_rows
        # One eigendecomposition for the whole grid; the penalty on the part is lam * n_part / n (module doc).
        _require_finite(Gt, Btc, mu_ft, mu_yt)
        s, V = scipy.linalg.eigh(Gt)
        s = np.maximum(s, 0.0)
        Q = V.T @ Btc                          # (D, k): coefficients in the eigenbasis are Q / (s + lam')
        lam_part = lambdas * (tr.n_rows / n_full)
        Bv, sum_yv, sq_yv = va.targets(classes, k)
        Vt_mu = V.T @ mu_ft
        coefs = []
        for lam in lam_part:
            W = Q / (s + lam)[:, None]
            coefs.append((W, mu_yt - Vt_mu @ W))
        selection = getattr(self, "selection", None)
        if self._classification:
            if selection not in ("auto", "accuracy", "squared_error"):
                raise ValueError(f"selection must be 'auto', 'accuracy' or 'squared_error'; got {selection!r}.")
            rows_given = validation_rows is not None or count_correct is not None
            if selection == "accuracy" and not rows_given:
                raise ValueError(
                    "selection='accuracy' needs the validation rows twice: pass fit_stream a callable returning a "
                    "fresh iterable, call finalize(second_pass=...), or use selection='squared_error'."
                )
            use_acc = selection != "squared_error" and rows_given
        else:
            use_acc = False
        if use_acc and validation_rows is not None:
            # The rows are read anyway: their squared errors come with the accuracies, and the validation Gram
            # never has to be turned into the eigenbasis (two D x D x D matrix products).
            scores, sse = self._validation_accuracy(validation_rows, V, coefs, classes)
        else:
            sse = self._moment_sse(V, coefs, va, Bv, sum_yv, sq_yv)
            if use_acc:
                scores = self._counted_accuracy(count_correct, V, coefs, classes)
        if use_acc:
            self.selection_ = "accuracy"
        elif self._classification:
            scores = -sse / va.n_rows
            self.selection_ = "squared_error"
        else:
            scores = np.array([_r2_pooled(e, sq_yv, sum_yv, va.n_rows) for e in sse])
            self.selection_ = "r2"
        self.validation_scores_ = scores
        self.validation_squared_errors_ = sse / va.n_rows
        rounding = _rounding_error(np.trace(Gt), lam_part)
        self.best_lambda_ = float(lambdas[_best_index(scores if use_acc else None, sse, lambdas, rounding)])

    @staticmethod
    def _moment_sse(V, coefs, va, Bv, sum_yv, sq_yv):
        """Validation sum of squared errors of every grid point from the validation moments alone (no rows)."""
        P = V.T @ va.gram @ V                  # validation F^T F in the eigenbasis
        r = V.T @ Bv
        sf = V.T @ va.col_sum
        sse = np.empty(len(coefs))
        for i, (W, b) in enumerate(coefs):
            # |F_v W + 1 b^T - Y_v|^2 expanded into validation moments (exact, no rows stored).
            val = (np.sum(sq_yv) - 2.0 * np.sum(W * r) - 2.0 * b @ sum_yv + np.sum(W * (P @ W))
                   + 2.0 * b @ (W.T @ sf) + va.n_rows * (b @ b))
            sse[i] = max(val, 0.0)
        return sse

    def _masked_rows(self, second_pass):
        """The validation rows of a second pass over the stream, chunk by chunk, by the masks of the first."""
        n_chunks = 0
        for idx, item in enumerate(second_pass()):
            try:
                Fc, yc = item
            except (TypeError, ValueError) as exc:
                raise ValueError("each element of the stream must be a pair (F_chunk, y_chunk).") from exc
            if idx >= len(self._masks):
                raise ValueError("the second pass of the stream has more chunks than the first; it must repeat it.")
            Fc = _check_rows(Fc, "F_chunk", allow_empty_rows=True)
            yc = _check_labels(yc, Fc.shape[0])
            if self._masks[idx] is None or self._masks[idx].size != (Fc.shape[0] + 7) // 8:
                raise ValueError("the second pass of the stream has different chunk sizes; it must repeat the first.")
            mask = np.unpackbits(self._masks[idx], count=Fc.shape[0]).astype(bool)
            n_chunks += 1
            yield Fc[mask], yc[mask]
        if n_chunks != len(self._masks):
            raise ValueError("the second pass of the stream differs from the first; it must repeat the same chunks.")

    def _validation_accuracy(self, validation_rows, V, coefs, classes):
        """(accuracy, sum of squared errors) of every grid point on the validation rows, read once more."""
        correct = np.zeros(len(coefs))
        sse = np.zeros(len(coefs))
        n_val = 0
        for item in validation_rows():
            try:
                Fv, yv = item
            except (TypeError, ValueError) as exc:
                raise ValueError("each element of validation_rows must be a pair (F_chunk, y_chunk).") from exc
            Fv = _check_rows(Fv, "F_chunk", allow_empty_rows=True)
            truth = _check_labels(yv, Fv.shape[0])
            if Fv.shape[0] == 0:
                continue
            if Fv.shape[1] != self._n_features:
                raise ValueError(f"a validation chunk has {Fv.shape[1]} features; expected {self._n_features}.")
            Z = np.asarray(Fv, dtype=np.float64) @ V
            n_val += truth.size
            Yv = (truth[:, None] == classes[None, :]) - 1.0 / classes.size   # the targets of the moments
            for i, (W, b) in enumerate(coefs):
                out = Z @ W + b
                correct[i] += np.count_nonzero(classes[np.argmax(out, axis=1)] == truth)
                sse[i] += np.sum((out - Yv) ** 2)
        if n_val != self._val.n_rows:
            raise ValueError(
                f"the second pass of the stream differs from the first: it held {n_val} validation rows, the "
                f"moments {self._val.n_rows}; it must repeat the same chunks."
            )
        return correct / n_val, sse

    def _counted_accuracy(self, count_correct, V, coefs, classes):
        """Validation accuracy of every grid point from a ``count_correct`` callable (``fit_moments``)."""
        out = count_correct(V, coefs, classes)
        try:
            correct, n_val = out
        except (TypeError, ValueError) as exc:
            raise ValueError("count_correct must return a pair (correct, n_rows).") from exc
        correct = np.asarray(correct, dtype=np.float64)
        if correct.shape != (len(coefs),):
            raise ValueError(f"count_correct returned {correct.shape} counts; expected one per lam ({len(coefs)},).")
        if n_val != self._val.n_rows:
            raise ValueError(
                f"count_correct scored {n_val} validation rows but the validation moments hold {self._val.n_rows}; "
                "it must score exactly the rows the validation moments were summed over."
            )
        return correct / n_val

    def _solve_full(self, G, B, mu_f, mu_y, lam):
        with np.errstate(over="ignore", invalid="ignore"):
            A = G + lam * np.eye(G.shape[0])
        _require_finite(A, what="X^T X + lam I")
        try:
            W = solve_spd(A, B)
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                f"X^T X + lam I could not be factorised in float64 ({exc}): lam = {lam:.3g} is below the rounding "
                f"level of X^T X (largest |entry| {float(np.abs(G).max(initial=0.0)):.3g}); rescale X, or pass "
                "larger lambdas (lambdas=None scales the grid to trace(X^T X))."
            ) from exc
        with np.errstate(over="ignore", invalid="ignore"):
            b = mu_y - mu_f @ W
        _require_finite(W, b, what="the ridge solution for X")
        self._set_weights(W, b)

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
    def _decision(self, X):
        check_is_fitted(self, "_W", "This {name} instance is not fitted yet: call fit, fit_stream or finalize first.")
        F = _check_rows(X, "X")
        check_n_features(F, self.n_features_in_, "X", owner=self)
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.asarray(F, dtype=np.float64) @ self._W + self._b
        if not np.all(np.isfinite(out)):
            raise ValueError("X w + b overflows float64: the rows of X are too large in magnitude for the fitted "
                             "weights; rescale X as the training features were.")
        return out


class RidgeRegressor(RegressorMixin, _FeatureRidge):
    """Ridge regression on features with ``lam`` chosen on a validation split (module docstring, eq. (1)).

    ``fit(X, y)`` / ``predict(X)`` take the feature matrix (``F`` in the formulas; ``X`` in the signatures, as in
    scikit-learn, so the model can follow a feature map in a ``Pipeline``).

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
    n_features_in_ : D, the number of features (set by ``fit``, or by the first ``partial_fit``).
    """

    _classification = False
    _multi_output = True

    def predict(self, X):
        """Predictions ``X w + b`` for features ``X``: shape (n,) for 1-d training targets, (n, k) otherwise."""
        out = self._decision(X)
        return out[:, 0] if self._stream_1d else out

    def score(self, X, y):
        """R^2 = 1 - SSE/SST pooled over the outputs."""
        return _r2_score(self._decision(X), y)

    def rmse(self, X, y):
        """Root mean squared error (over rows and outputs)."""
        return _rmse(self._decision(X), y)


class RidgeClassifier(ClassifierMixin, _FeatureRidge):
    """Ridge classifier on features: targets one-hot minus 1/C, prediction by argmax (docs/math.md §8).

    Parameters are those of ``RidgeRegressor`` (but ``fit_intercept`` defaults to False, the paper's
    convention: the 1/C shift already centres the targets), plus

    selection : {'auto', 'accuracy', 'squared_error'}
        Validation criterion for ``lam``.  'auto' is accuracy when the validation rows can be read again
        (``fit``, or ``fit_stream`` given a callable) and the squared error of the one-hot targets otherwise.
        Ties in accuracy are broken by the squared error.

    Attributes
    ----------
    classes_ : sorted class labels (with ``partial_fit(classes=...)``: the declared ones).
    selection_ : the criterion actually used.
    Others as in ``RidgeRegressor``; ``validation_scores_`` are accuracies (or minus mean squared errors).
    """

    _classification = True

    def __init__(self, lambdas=None, *, validation_fraction=0.2, fit_intercept=False, seed=0, selection="auto",
                 solver="auto"):
        super().__init__(lambdas, validation_fraction=validation_fraction, fit_intercept=fit_intercept, seed=seed,
                         solver=solver)
        self.selection = selection

    def decision_function(self, X):
        """Scores of the classes for features ``X``: (n, C) for C > 2 classes, the predicted class is the argmax.

        For two classes, scikit-learn's convention: shape (n,), positive for ``classes_[1]``.  It is the
        difference of the two outputs, which equals the output of a ridge fitted on targets +-1.
        """
        return _binary_decision(self._decision(X))

    def predict(self, X):
        out = self._decision(X)   # first: raises NotFittedError before fit
        return self.classes_[np.argmax(out, axis=1)]

    def score(self, X, y):
        """Accuracy."""
        pred = self.predict(X)
        truth = _check_labels(y, pred.shape[0])
        return float(np.mean(pred == truth))
