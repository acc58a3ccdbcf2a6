"""Dask backend: block-wise feature maps and ridge learners on row-chunked dask arrays.

The feature maps are embarrassingly parallel over rows, and the ridge of ``ridge.py`` needs only the float64
moments ``F^T F``, ``F^T Y``, the column sums and the target sums of the training and validation parts (module
docstring of ``ntk_sketch.learn.ridge``; docs/math.md §8).  So Dask's own scheduler runs the pipeline on any
cluster -- a ``dask.distributed.LocalCluster`` on one machine or a remote scheduler -- and nothing here is a
scheduler of its own:

* ``transform(estimator, X)``: the features of every row block, computed on the workers by the fitted
  estimator's own ``transform``.  The estimator travels once, as ONE key of the task graph that every block
  task depends on (a worker fetches it once and keeps it while blocks need it), never once per block.
* ``fit(learner, F, y)``: each block contributes its training / validation moments (the validation rows of a
  block are those ``ridge_moments.validation_mask`` replays from the learner's seed, so the split is the one
  ``learner.fit`` or ``fit_stream`` would draw); the per-block moments are combined by Dask's tree reduction
  (``dask.bag.Bag.reduction`` with ``split_every``); only the D x D and D x k sums come back to the client,
  where ``learner.fit_moments`` chooses ``lam`` and solves, exactly as in memory.  A classifier scoring ``lam``
  by validation accuracy reads the validation rows a second time on the workers (its ``count_correct`` hook):
  only the grid's models travel there, only per-``lam`` counts come back.
* ``decision_function`` / ``predict`` / ``score``: block-wise on the workers.

Features of a block are never gathered on the client.  With the same seed the features are those of
``estimator.transform`` on the same rows (every feature map here is row-wise): bit for bit for the maps computed
by njit kernels (NTKSketch, CNTKSketch), to the rounding of a dot product for those built on BLAS products
(NTKRandomFeatures, NystromFeatures: OpenBLAS rounds a row differently by its position in the GEMM call); the
ridge coefficients equal the in-memory ones up to the rounding of the summation order, whatever the chunking.

Dask is an optional dependency (``pip install 'ntk_sketch[dask]'``); this module imports it only when called.
Arrays must be chunked by rows only: axis 0 in any number of chunks of known sizes, every other axis in one.
"""
from __future__ import annotations

import numbers
import uuid

import numpy as np

from .._base import check_is_fitted
from .._validation import check_bool, check_random_state
from ._checks import _check_fraction, _check_labels, _check_lambdas, _check_regression_targets, _check_rows
from .ridge import RidgeClassifier, RidgeRegressor

# The float64 sufficient statistics of a set of rows (``add(F, y)``, ``merged(other)``) and the seeded split.
from .ridge_moments import RidgeMoments as _RidgeMoments
from .ridge_moments import validation_mask

__all__ = ["transform", "fit", "decision_function", "predict", "score"]


def _dask():
    """Import Dask lazily (the core package runs without it)."""
    try:
        import dask
        import dask.array as da
        import dask.bag as db
    except ImportError as exc:  # pragma: no cover - exercised only without dask installed
        raise ImportError(
            "ntk_sketch.learn.dask_backend needs Dask: pip install 'ntk_sketch[dask]' "
            "(or pip install 'dask[array,distributed]')."
        ) from exc
    return dask, da, db


# ------------------------------------------------------------------------------------------- shipping models
# How many times this process has unpickled a shipped model: read on the workers (``Client.run``) by the tests
# to check that a model crosses the wire once per worker, not once per block.
_UNPACKED = 0


def _unpack(obj):
    global _UNPACKED
    _UNPACKED += 1
    return _Shipped(obj)


class _Shipped:
    """Wrapper of a fitted model placed in the graph as one key; counts its unpicklings."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __reduce__(self):
        return (_unpack, (self.obj,))


def _ship(obj, what):
    """One graph key holding ``obj`` (a Delayed): every block task depends on this key instead of a copy."""
    dask, _, _ = _dask()
    return dask.delayed(_Shipped(obj), name=f"ntk-sketch-{what}-{uuid.uuid4().hex}")


def unpickle_count():
    """How many shipped models this process has unpickled (a diagnostic; call it on workers via Client.run)."""
    return _UNPACKED


# ----------------------------------------------------------------------------------------------- input checks
def _check_row_chunked(X, name, *, ndim=None):
    _, da, _ = _dask()
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask array chunked by rows; got {type(X).__name__}. Wrap a NumPy array with "
            f"dask.array.from_array({name}, chunks=(rows_per_block,) + {name}.shape[1:])."
        )
    if X.ndim < 2 or (ndim is not None and X.ndim != ndim):
        want = f"{ndim}-d" if ndim is not None else "at least 2-d"
        raise ValueError(f"{name} must be a {want} dask array of rows; got shape {X.shape}.")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(f"{name} has row chunks of unknown size; call {name}.compute_chunk_sizes() first.")
    for axis in range(1, X.ndim):
        if len(X.chunks[axis]) > 1:
            raise ValueError(
                f"{name} is split along axis {axis} into chunks {X.chunks[axis]}; it must be chunked by rows only "
                f"(every other axis in one chunk): use {name}.rechunk({{{axis}: -1}})."
            )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows.")
    return X


def _check_learner(learner):
    if not isinstance(learner, (RidgeRegressor, RidgeClassifier)):
        raise TypeError(
            f"learner must be a RidgeRegressor or RidgeClassifier; got {type(learner).__name__}."
        )


def _check_split_every(split_every):
    if isinstance(split_every, (bool, np.bool_)) or not isinstance(split_every, numbers.Integral) or split_every < 2:
        raise ValueError(f"split_every must be an integer >= 2 (the fan-in of the tree reduction); got {split_every!r}.")
    return int(split_every)


def _target_blocks(y, row_chunks, name="y"):
    """Per-block targets aligned with the feature blocks: slices of a NumPy array or Delayed dask blocks."""
    _, da, _ = _dask()
    n = int(sum(row_chunks))
    if isinstance(y, da.Array):
        if y.ndim not in (1, 2):
            raise ValueError(f"{name} must be 1-d or 2-d; got shape {y.shape}.")
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} rows but the features have {n}; they must match.")
        if y.ndim == 2 and len(y.chunks[1]) > 1:
            y = y.rechunk({1: -1})
        if tuple(y.chunks[0]) != tuple(row_chunks):
            y = y.rechunk({0: tuple(row_chunks)})
        return list(y.to_delayed().ravel()), y.ndim, (y.shape[1] if y.ndim == 2 else 1)
    arr = np.asarray(y)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-d or 2-d; got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the features have {n}; they must match.")
    bounds = np.concatenate([[0], np.cumsum(row_chunks)]).astype(np.int64)
    return [arr[a:b] for a, b in zip(bounds[:-1], bounds[1:])], arr.ndim, (arr.shape[1] if arr.ndim == 2 else 1)


# -------------------------------------------------------------------------------------------------- transform
def _transform_block(block, shipped):
    if block.shape[0] == 1:
        # NumPy multiplies a single row by a matrix with BLAS gemv, which rounds differently from the gemm used
        # for every larger batch; two copies of the row keep a one-row block bit for bit equal to the same row
        # transformed among others.
        return shipped.obj.transform(np.concatenate([block, block]))[:1]
    return shipped.obj.transform(block)


def transform(estimator, X):
    """Features of the rows of ``X`` computed block-wise on the workers, as a lazy dask array.

    Parameters
    ----------
    estimator : fitted feature map
        ``NTKSketch``, ``NTKRandomFeatures``, ``NystromFeatures`` (2-d ``X``) or ``CNTKSketch`` (4-d images), or
        any fitted object whose ``transform`` maps rows independently.
    X : dask.array.Array
        Rows chunked along axis 0 only (any number of chunks); for ``CNTKSketch`` images (n, H, W, C) chunked on
        the first axis.

    Returns
    -------
    dask.array.Array of shape (n, n_features), with ``X``'s row chunks; ``compute`` / ``persist`` it, or pass it
    on to ``fit`` / ``predict`` without bringing it to the client.  Row for row equal to ``estimator.transform``
    of the same rows: bit for bit for njit maps, to rounding for BLAS-based ones (module docstring).
    """
    _, da, _ = _dask()
    X = _check_row_chunked(X, "X")
    # One row on the client: checks that the estimator is fitted and matches X, and gives the output width and
    # dtype without computing anything of X.
    probe = np.asarray(estimator.transform(np.ones((1,) + tuple(X.shape[1:]), dtype=X.dtype)))
    if probe.ndim != 2 or probe.shape[0] != 1:
        raise ValueError(f"{type(estimator).__name__}.transform returned shape {probe.shape} for one row; "
                         "expected (1, n_features).")
    width = probe.shape[1]
    model = _ship(estimator, type(estimator).__name__)
    extra = list(range(2, X.ndim))
    return da.map_blocks(
        _transform_block, X, model,
        chunks=(X.chunks[0], (width,)), drop_axis=extra or None,
        dtype=probe.dtype, meta=np.empty((0, width), dtype=probe.dtype),
        name=f"ntk-features-{type(estimator).__name__}",
    )


# ------------------------------------------------------------------------------------------------------- fit
def _block_moments(F, y, packed, n_rows, classification):
    """(training moments, validation moments or None) of one block; ``packed`` is its validation mask."""
    F = _check_rows(F, "F", allow_empty_rows=True)
    if F.shape[0] != n_rows:
        raise ValueError(f"a block of F has {F.shape[0]} rows but its chunk size says {n_rows}.")
    if classification:
        y = _check_labels(y, n_rows)
    else:
        _check_regression_targets(y, n_rows)   # a clear error here; ``add`` keeps whether y is 1-d
        y = np.asarray(y)
    # ``add`` of no rows still fixes D, so a block with no training (or no validation) rows merges like any other.
    if packed is None:
        return [(_RidgeMoments(classification).add(F, y), None)]
    val = np.unpackbits(packed, count=n_rows).astype(bool)
    return [(_RidgeMoments(classification).add(F[~val], y[~val]), _RidgeMoments(classification).add(F[val], y[val]))]


def _merge_moments(pairs):
    pairs = list(pairs)
    train, valid = pairs[0]
    for t, v in pairs[1:]:
        train = train.merged(t)
        valid = None if valid is None else valid.merged(v)
    return train, valid


def _block_correct(F, y, packed, n_rows, shipped):
    """Correct validation predictions of one block for every candidate ``lam`` (accuracy selection)."""
    V, coefs, classes = shipped.obj
    if packed is None:
        return [(np.zeros(len(coefs)), 0)]
    mask = np.unpackbits(packed, count=n_rows).astype(bool)
    if not mask.any():
        return [(np.zeros(len(coefs)), 0)]
    F = _check_rows(F, "F", allow_empty_rows=True)
    truth = _check_labels(y, n_rows)[mask]
    Z = np.asarray(F[mask], dtype=np.float64) @ V
    correct = np.array([np.count_nonzero(classes[np.argmax(Z @ W + b, axis=1)] == truth) for W, b in coefs],
                       dtype=np.float64)
    return [(correct, int(truth.size))]


def _sum_correct(parts):
    parts = list(parts)
    correct, n = parts[0]
    for c, k in parts[1:]:
        correct = correct + c
        n += k
    return correct, n


def _validation_masks(learner, row_chunks):
    """The learner's validation split of each block (packed bits), or None per block for a single ``lam``.

    The split of the in-memory fit: one uniform per row in row order, ``< validation_fraction``.  An int (or
    SeedSequence) seed is replayed block by block from each block's first row (``ridge_moments.validation_mask``);
    a Generator (or None) cannot be replayed from an offset, so its uniforms are drawn here in row order, block
    after block, exactly as ``partial_fit`` draws them (the Generator advances as in the in-memory fit).
    """
    _, fixed = _check_lambdas(learner.lambdas)
    if fixed:
        return [None] * len(row_chunks)
    fraction = _check_fraction(learner.validation_fraction)
    seed = learner.seed
    starts = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(np.int64)
    if isinstance(seed, (numbers.Integral, np.random.SeedSequence)) and not isinstance(seed, (bool, np.bool_)):
        return [np.packbits(validation_mask(seed, fraction, int(a), nb)) for a, nb in zip(starts, row_chunks)]
    rng = check_random_state(seed)
    return [np.packbits(rng.random(nb) < fraction) for nb in row_chunks]


def _count_correct_on_workers(f_blocks, y_blocks, packed, row_chunks, split_every, n_validation):
    """A ``count_correct`` for ``fit_moments``: scores the validation rows block-wise where they are.

    Only the grid's models ``(V, coefs, classes)`` travel (one graph key); each block returns its per-``lam``
    counts of correct labels, tree-summed like the moments.  The validation features never reach the client.
    """
    def count_correct(V, coefs, classes):
        dask, _, db = _dask()
        shipped = _ship((V, coefs, classes), "validation-coefficients")
        parts = [dask.delayed(_block_correct, pure=True)(fb, yb, pk, nb, shipped)
                 for fb, yb, pk, nb in zip(f_blocks, y_blocks, packed, row_chunks)]
        correct, n_val = db.from_delayed(parts).reduction(_sum_correct, _sum_correct,
                                                          split_every=split_every).compute()
        if n_val != n_validation:
            raise ValueError("the validation rows changed between the two passes over F; F must be deterministic.")
        return correct, n_val

    return count_correct


def fit(learner, F, y, *, split_every=2):
    """Fit a ``RidgeRegressor`` / ``RidgeClassifier`` on row-chunked dask features; returns the learner.

    Exactly the in-memory fit (module docstring of ``ntk_sketch.learn.ridge``): the same seeded validation split
    (``ridge_moments.validation_mask`` per block), the same ``lam`` grid and selection, the same final solve
    (``learner.fit_moments``); the sums ``F^T F``, ``F^T Y``, ... of each block are formed on the workers and
    combined by Dask's tree reduction.

    Parameters
    ----------
    learner : RidgeRegressor or RidgeClassifier
        Configured as usual (``lambdas``, ``validation_fraction``, ``fit_intercept``, ``seed``, ``selection``);
        fitted in place.  ``solver`` is ignored: the fit is always primal (D x D), as ``fit_stream``.
    F : dask.array.Array (n, D)
        Features chunked by rows, e.g. ``transform(feature_map, X)``; never gathered on the client.  A
        classifier that selects ``lam`` by accuracy reads F twice (persist F first to avoid recomputing it):
        the second pass counts, on the workers, the validation rows each ``lam`` labels correctly
        (``fit_moments(count_correct=...)``).
    y : array_like or dask.array.Array (n,) or (n, k)
        Targets or labels; rechunked to F's row chunks if needed.
    split_every : int >= 2
        Fan-in of the tree reduction.  The workers hold the pending partial sums (a training and a validation
        D x D matrix each: 256 MiB at D = 4096), up to ``split_every - 1`` per level of the tree, so about
        ``(split_every - 1) log_split_every(n_blocks)`` of them: 2, the default, holds the fewest (the additions
        are the same, ``n_blocks - 1``, whatever the fan-in).
    """
    dask, _, db = _dask()
    _check_learner(learner)
    F = _check_row_chunked(F, "F", ndim=2)
    split_every = _check_split_every(split_every)
    row_chunks = tuple(int(c) for c in F.chunks[0])
    y_blocks, y_ndim, k = _target_blocks(y, row_chunks)
    classification = isinstance(learner, RidgeClassifier)
    if classification and y_ndim == 2 and k != 1:
        raise ValueError(f"y must be a 1-d array of class labels; got {k} columns.")
    selection = getattr(learner, "selection", None)
    if classification and selection not in ("auto", "accuracy", "squared_error"):
        raise ValueError(f"selection must be 'auto', 'accuracy' or 'squared_error'; got {selection!r}.")
    check_bool(learner.fit_intercept, "fit_intercept")
    packed = _validation_masks(learner, row_chunks)   # checks lambdas / validation_fraction / seed first

    f_blocks = list(F.to_delayed().ravel())
    parts = [dask.delayed(_block_moments, pure=True)(fb, yb, pk, nb, classification)
             for fb, yb, pk, nb in zip(f_blocks, y_blocks, packed, row_chunks)]
    train, valid = db.from_delayed(parts).reduction(_merge_moments, _merge_moments,
                                                    split_every=split_every).compute()
    count_correct = None
    if classification and selection != "squared_error" and valid is not None:
        count_correct = _count_correct_on_workers(f_blocks, y_blocks, packed, row_chunks, split_every,
                                                  valid.n_rows)
    return learner.fit_moments(train, valid, count_correct=count_correct)


# -------------------------------------------------------------------------------------------------- predict
def _decision_block(F, shipped):
    # The learner's (n, k) outputs ``F w + b``: its public ``decision_function`` folds a binary classifier's two
    # outputs into one column, and a 1-d regressor's ``predict`` drops the column.
    return shipped.obj._decision(F)


def _predict_block(F, shipped):
    return shipped.obj.predict(F)


def _check_fitted_on(learner, F):
    _check_learner(learner)
    check_is_fitted(learner, "coef_", "This {name} instance is not fitted yet: call "
                    "ntk_sketch.learn.dask_backend.fit (or its own fit) first.")
    F = _check_row_chunked(F, "F", ndim=2)
    if F.shape[1] != learner.n_features_in_:
        raise ValueError(f"F has {F.shape[1]} features but the learner was fitted on {learner.n_features_in_}.")
    return F


def _n_outputs(learner):
    """k, the width of ``F w + b``: the classifier's C classes, the regressor's outputs."""
    if isinstance(learner, RidgeClassifier):
        return learner.classes_.size
    return 1 if np.ndim(learner.coef_) == 1 else learner.coef_.shape[1]


def decision_function(learner, F):
    """Block-wise ``F w + b`` (n, k) as a lazy dask array (the classifier's C outputs, the regressor's k)."""
    _, da, _ = _dask()
    F = _check_fitted_on(learner, F)
    k = _n_outputs(learner)
    model = _ship(learner, type(learner).__name__)
    return da.map_blocks(_decision_block, F, model, chunks=(F.chunks[0], (k,)), dtype=np.float64,
                         meta=np.empty((0, k)), name="ntk-ridge-decision")


def predict(learner, F):
    """Block-wise ``learner.predict`` as a lazy dask array: labels (classifier) or values (regressor)."""
    _, da, _ = _dask()
    F = _check_fitted_on(learner, F)
    model = _ship(learner, type(learner).__name__)
    if isinstance(learner, RidgeClassifier):
        dtype = learner.classes_.dtype
        return da.map_blocks(_predict_block, F, model, chunks=(F.chunks[0],), drop_axis=1, dtype=dtype,
                             meta=np.empty((0,), dtype=dtype), name="ntk-ridge-predict")
    k = _n_outputs(learner)
    if np.ndim(learner.coef_) == 1:   # fitted on 1-d targets: predictions are 1-d
        return da.map_blocks(_predict_block, F, model, chunks=(F.chunks[0],), drop_axis=1, dtype=np.float64,
                             meta=np.empty((0,)), name="ntk-ridge-predict")
    return da.map_blocks(_predict_block, F, model, chunks=(F.chunks[0], (k,)), dtype=np.float64,
                         meta=np.empty((0, k)), name="ntk-ridge-predict")


def score(learner, F, y):
    """Accuracy (classifier) or R^2 pooled over the outputs (regressor), computed block-wise; returns a float."""
    _, da, _ = _dask()
    F = _check_fitted_on(learner, F)
    row_chunks = tuple(int(c) for c in F.chunks[0])
    if isinstance(y, da.Array):
        y = y.rechunk({0: row_chunks})
    else:
        y = da.from_array(np.asarray(y), chunks=(row_chunks,) + tuple(-1 for _ in np.shape(y)[1:]))
    if y.shape[0] != F.shape[0]:
        raise ValueError(f"y has {y.shape[0]} rows but F has {F.shape[0]}; they must match.")
    if isinstance(learner, RidgeClassifier):
        return float((predict(learner, F) == y).mean().compute())
    out = decision_function(learner, F)
    Y = y[:, None] if y.ndim == 1 else y
    sse, s1, s2 = da.compute(((out - Y) ** 2).sum(), Y.sum(axis=0), (Y * Y).sum(axis=0))
    sst = float(np.sum(s2) - np.sum(s1**2) / F.shape[0])
    return 1.0 - float(sse) / sst if sst > 0 else (1.0 if sse == 0 else -np.inf)
