"""Streaming sufficient statistics of ridge regression: ``RidgeMoments``.

The ridge objective of ``ridge.py`` (docs/math.md §8),

    minimise  |F w + 1 b^T - Y|_F^2 + lam |w|_F^2,

depends on the rows ``(F_i, Y_i)`` only through their float64 moments

    n,   G = F^T F (D x D),   s = F^T 1 (D),   B = F^T Y (D x k),   t = Y^T 1 (k),   q = sum_i Y_i^2 (k),

and each of these is a plain sum over rows.  So a set of rows can be cut into blocks in any way, each block
summarised by ``RidgeMoments().add(F_block, y_block)``, and the summaries combined with ``merged`` in any order
or tree shape: ``a.merged(b)`` is the moments of the union of the rows, with no row stored.  Memory is
O(D^2 + D k) whatever n is; combining is exact up to the rounding of the float64 additions (whose order is the
only thing a different tree changes).

For classification the targets are one-hot minus ``1/C`` (``C`` classes), and ``C`` is only known once every
block has been seen.  The moments therefore keep, per class label, the count of rows and the sum of their
feature rows ``S_c = sum_{i: y_i = c} F_i``; ``targets(classes)`` forms the one-hot-minus-1/C moments from them
once the classes are known: ``B[:, c] = S_c - s / C``, ``t_c = n_c - n / C``,
``q_c = n_c (1 - 1/C)^2 + (n - n_c) / C^2``.

``validation_mask`` gives the rows of any block that the feature ridge's seeded Bernoulli split puts in the
validation part, so blocks summarised separately (and in parallel) reproduce ``fit_stream``'s split exactly:
summarise each block's training rows and validation rows into two ``RidgeMoments``, reduce each kind, and pass
the two results to ``RidgeRegressor.fit_moments`` / ``RidgeClassifier.fit_moments``.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._linalg import BLOCK as ROW_BLOCK, gram
from ._checks import _check_fraction, _check_labels, _check_regression_targets

__all__ = ["RidgeMoments", "validation_mask"]


class RidgeMoments:
    """Float64 sufficient statistics of a set of rows for ridge regression or ridge classification.

    Parameters
    ----------
    classification : bool, default False
        False: ``y`` holds real targets, (n,) or (n, k), accumulated as they are.  True: ``y`` holds class labels
        (integers or strings) and only per-class counts and feature sums are kept (module docstring).

    Attributes
    ----------
    n_rows : int
        Rows accumulated.
    n_features : int or None
        D, fixed by the first ``add`` (None before).
    gram : ndarray (D, D) or None
        ``F^T F``.
    col_sum : ndarray (D,) or None
        ``F^T 1``, the column sums of the features.
    cross, target_sum, target_sq_sum : ndarray (D, k), (k,), (k,) or None
        Regression only: ``F^T Y``, ``Y^T 1`` and the per-output sums of squares.
    targets_1d : bool or None
        Regression only: whether the targets were given 1-d.
    class_counts, class_sums : dict
        Classification only: label -> number of rows, label -> ``S_c`` (D,).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> F, y = rng.standard_normal((100, 5)), rng.standard_normal(100)
    >>> parts = [RidgeMoments().add(F[i:i + 30], y[i:i + 30]) for i in range(0, 100, 30)]
    >>> whole = RidgeMoments().add(F, y)
    >>> total = parts[0].merged(parts[1].merged(parts[2].merged(parts[3])))
    >>> bool(np.allclose(total.gram, whole.gram)) and total.n_rows == 100
    True
    """

    # A subclass that keeps F^T F elsewhere sets this False (ridge_lean.py: the D x D matrix is its own).
    _keep_gram = True

    def __init__(self, classification=False):
        if not isinstance(classification, (bool, np.bool_)):
            raise TypeError(f"classification must be True or False; got {classification!r}.")
        self.classification = bool(classification)
        self.n_rows = 0
        self.n_features = None
        self.gram = None
        self.col_sum = None
        self.cross = None
        self.target_sum = None
        self.target_sq_sum = None
        self.targets_1d = None
        self.class_counts = {}
        self.class_sums = {}

    def __repr__(self):
        kind = "classification" if self.classification else "regression"
        return f"RidgeMoments({kind}, n_rows={self.n_rows}, n_features={self.n_features})"

    # -------------------------------------------------------------------------------------------- building
    def _ensure(self, d):
        if self.n_features is None:
            self.n_features = int(d)
            self.gram = np.zeros((d, d)) if self._keep_gram else None
            self.col_sum = np.zeros(d)
        elif d != self.n_features:
            raise ValueError(
                f"F has {d} features but these moments hold {self.n_features}; every block must have the same columns."
            )

    def _ensure_outputs(self, k, was_1d):
        if self.cross is None:
            self.cross = np.zeros((self.n_features, k))
            self.target_sum = np.zeros(k)
            self.target_sq_sum = np.zeros(k)
            self.targets_1d = was_1d
        elif self.cross.shape[1] != k:
            raise ValueError(f"y has {k} outputs but these moments hold {self.cross.shape[1]}; they must match.")

    def add(self, F, y):
        """Add the rows ``F`` (n, D) with targets or labels ``y`` (in place); returns ``self``.

        ``F`` may be float32 or float64 (or any real dtype); the sums are float64.  An empty block (n = 0) only
        fixes D.
        """
        F = np.asarray(F)
        if F.ndim != 2:
            raise ValueError(f"F must be 2-d (n_rows, n_features); got shape {F.shape}.")
        if F.dtype.kind not in "biuf":
            raise ValueError(f"F must be real numbers; got dtype {F.dtype}.")
        self._ensure(F.shape[1])
        if self.classification:
            y = _check_labels(y, F.shape[0])
        else:
            y, was_1d = _check_regression_targets(y, F.shape[0])
            self._ensure_outputs(y.shape[1], was_1d)
        # in row blocks, so that a float32 F is converted to float64 a block at a time, never whole
        for r0 in range(0, F.shape[0], ROW_BLOCK):
            self._add_rows(np.asarray(F[r0:r0 + ROW_BLOCK], dtype=np.float64), y[r0:r0 + ROW_BLOCK])
        return self

    def _add_rows(self, F, y):
        self.n_rows += F.shape[0]
        if self._keep_gram:
            gram(F, out=self.gram)  # F^T F in blocks the bundled OpenBLAS survives (ntk_sketch/_linalg.py)
        self.col_sum += F.sum(axis=0)
        if self.classification:
            labels, inverse = np.unique(y, return_inverse=True)
            onehot = np.zeros((F.shape[0], labels.size))
            onehot[np.arange(F.shape[0]), inverse.ravel()] = 1.0
            sums = onehot.T @ F
            counts = onehot.sum(axis=0)
            for i, lab in enumerate(labels.tolist()):
                if lab in self.class_sums:
                    self.class_sums[lab] += sums[i]
                    self.class_counts[lab] += int(counts[i])
                else:
                    self.class_sums[lab] = sums[i].copy()
                    self.class_counts[lab] = int(counts[i])
        else:
            self.cross += F.T @ y
            self.target_sum += y.sum(axis=0)
            self.target_sq_sum += (y * y).sum(axis=0)

    def merged(self, other):
        """The moments of the union of the rows of ``self`` and ``other`` (a new object; neither is changed).

        Associative and commutative (exactly so up to float64 rounding), with ``RidgeMoments()`` as identity:
        blocks may be reduced in any tree order.
        """
        if not isinstance(other, RidgeMoments):
            raise TypeError(f"can only merge RidgeMoments with RidgeMoments; got {type(other).__name__}.")
        if other.classification != self.classification:
            raise ValueError("cannot merge classification moments with regression moments.")
        out = RidgeMoments(self.classification)
        for src in (self, other):
            if src.n_features is None:
                continue
            out._ensure(src.n_features)
            out.n_rows += src.n_rows
            out.gram = out.gram + src.gram
            out.col_sum = out.col_sum + src.col_sum
            if self.classification:
                for lab, s in src.class_sums.items():
                    if lab in out.class_sums:
                        out.class_sums[lab] = out.class_sums[lab] + s
                        out.class_counts[lab] += src.class_counts[lab]
                    else:
                        out.class_sums[lab] = s.copy()
                        out.class_counts[lab] = src.class_counts[lab]
            elif src.cross is not None:
                out._ensure_outputs(src.cross.shape[1], src.targets_1d)
                out.cross = out.cross + src.cross
                out.target_sum = out.target_sum + src.target_sum
                out.target_sq_sum = out.target_sq_sum + src.target_sq_sum
        return out

    # ----------------------------------------------------------------------------------------- what fits need
    def classes(self):
        """Sorted class labels seen so far (classification only)."""
        if not self.classification:
            raise ValueError("classes() is defined for classification moments only.")
        return np.array(sorted(self.class_sums.keys()))

    def targets(self, classes=None, n_outputs=None):
        """``(F^T Y, Y^T 1, per-output sum of Y^2)`` of these rows.

        Parameters
        ----------
        classes : array_like or None
            Classification: the labels of all the classes (of every part of the data, not only these rows); the
            targets are one-hot minus ``1/C``.  Ignored for regression.
        n_outputs : int or None
            Regression: the number of outputs k, used only when these moments hold no rows yet (zeros).
        """
        if self.n_features is None:
            raise ValueError("these moments hold no data; call add first.")
        d = self.n_features
        if not self.classification:
            if self.cross is None:
                k = 1 if n_outputs is None else int(n_outputs)
                return np.zeros((d, k)), np.zeros(k), np.zeros(k)
            return self.cross, self.target_sum, self.target_sq_sum
        if classes is None:
            classes = self.classes()
        C = len(classes)
        S = np.zeros((d, C))
        counts = np.zeros(C)
        for j, lab in enumerate(np.asarray(classes).tolist()):
            if lab in self.class_sums:
                S[:, j] = self.class_sums[lab]
                counts[j] = self.class_counts[lab]
        B = S - np.outer(self.col_sum, np.full(C, 1.0 / C))
        sum_y = counts - self.n_rows / C
        sq_y = counts * (1.0 - 1.0 / C) ** 2 + (self.n_rows - counts) / C**2
        return B, sum_y, sq_y

    def centred(self, B, sum_y, fit_intercept):
        """Normal equations of the objective for these rows: ``(G_c, B_c, mean_f, mean_y)``.

        With ``fit_intercept`` the features and targets are centred by their means over these rows (the
        unpenalised intercept), ``G_c = G - n mean_f mean_f^T`` and ``B_c = B - n mean_f mean_y^T``; otherwise
        ``(G, B, 0, 0)``.  ``B, sum_y`` come from ``targets``.
        """
        if fit_intercept:
            mu_f = self.col_sum / self.n_rows
            mu_y = sum_y / self.n_rows
            Gc = self.gram - self.n_rows * np.outer(mu_f, mu_f)
            Bc = B - self.n_rows * np.outer(mu_f, mu_y)
            # Re-symmetrise: the rank-one update can leave asymmetry of one ulp.
            return 0.5 * (Gc + Gc.T), Bc, mu_f, mu_y
        return self.gram, B, np.zeros_like(self.col_sum), np.zeros_like(sum_y)


def validation_mask(seed, validation_fraction, start, n_rows):
    """Which of the stream's rows ``start .. start + n_rows - 1`` the feature ridge puts in the validation part.

    ``RidgeRegressor`` / ``RidgeClassifier`` with this ``seed`` draw ``rng.random(n) < validation_fraction`` in
    stream order (one uniform per row); this returns the slice ``[start, start + n_rows)`` of that mask without
    drawing the rows before it (the PCG64 stream is advanced by ``start`` steps), so blocks of a distributed data
    set can be split independently and still agree with ``fit_stream`` over the same rows in the same order.

    Parameters
    ----------
    seed : int or numpy.random.SeedSequence
        The estimator's ``seed``.  A Generator or None cannot be replayed from an offset and is rejected.
    validation_fraction : float in (0, 1)
    start, n_rows : int >= 0
        Global index of the block's first row, and the block's number of rows.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        raise ValueError(
            f"seed must be a non-negative int or a SeedSequence to replay the split from an offset; got {seed!r}."
        )
    if isinstance(seed, numbers.Integral) and seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed}.")
    fraction = _check_fraction(validation_fraction)
    for name, v in (("start", start), ("n_rows", n_rows)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0; got {v!r}.")
    bit_generator = np.random.PCG64(seed)
    bit_generator.advance(int(start))   # Generator.random draws one 64-bit output per float64
    return np.random.Generator(bit_generator).random(int(n_rows)) < fraction
