"""Tests of ntk_sketch.learn.ridge_moments: RidgeMoments sums, merges in any tree order, and fits like fit_stream."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from ntk_sketch import RidgeClassifier, RidgeMoments, RidgeRegressor
from ntk_sketch.learn.ridge_moments import validation_mask


def _data(seed, n=90, d=5, k=None, C=None):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    if C is not None:
        return F, rng.integers(0, C, n)
    return F, rng.standard_normal((n,) if k is None else (n, k))


def _blocks(n, cuts):
    edges = [0] + sorted(set(min(c, n) for c in cuts)) + [n]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:])]


def test_moments_are_the_plain_sums():
    F, y = _data(0, k=2)
    m = RidgeMoments().add(F, y)
    assert m.n_rows == 90 and m.n_features == 5 and m.targets_1d is False
    np.testing.assert_allclose(m.gram, F.T @ F, rtol=1e-13)
    np.testing.assert_allclose(m.col_sum, F.sum(0), rtol=1e-13)
    np.testing.assert_allclose(m.cross, F.T @ y, rtol=1e-13)
    np.testing.assert_allclose(m.target_sum, y.sum(0), rtol=1e-13)
    np.testing.assert_allclose(m.target_sq_sum, (y**2).sum(0), rtol=1e-13)


def test_classification_targets_are_one_hot_minus_one_over_C():
    F, labels = _data(1, C=3)
    m = RidgeMoments(classification=True).add(F, labels)
    Y = np.eye(3)[labels] - 1.0 / 3
    B, t, q = m.targets()
    np.testing.assert_allclose(B, F.T @ Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t, Y.sum(0), atol=1e-12)
    np.testing.assert_allclose(q, (Y**2).sum(0), rtol=1e-12)
    # a class absent from these rows still gets its column (the classes of every part are passed in)
    B4, t4, _ = m.targets(classes=[0, 1, 2, 7])
    np.testing.assert_allclose(B4[:, 3], -F.sum(0) / 4, rtol=1e-12)
    assert t4[3] == pytest.approx(-90 / 4)


@given(st.lists(st.integers(0, 90), max_size=6), st.randoms(use_true_random=False), st.booleans())
def test_merge_in_any_tree_order_equals_the_whole(cuts, rnd, classification):
    # merged is a sum: any split into blocks and any order / tree of merges gives the moments of all rows, up to
    # float64 rounding of D-term sums (relative 1e-12 is ~1e4 ulps, far above the rounding of 90-row sums).
    F, y = _data(2, C=3 if classification else None)
    whole = RidgeMoments(classification).add(F, y)
    parts = [RidgeMoments(classification).add(F[a:b], y[a:b]) for a, b in _blocks(90, cuts)]
    parts.append(RidgeMoments(classification))   # the identity may appear anywhere
    while len(parts) > 1:                         # random tree: merge a random adjacent or non-adjacent pair
        i, j = rnd.sample(range(len(parts)), 2)
        merged = parts[i].merged(parts[j])
        parts = [p for t, p in enumerate(parts) if t not in (i, j)] + [merged]
    total = parts[0]
    assert total.n_rows == whole.n_rows
    np.testing.assert_allclose(total.gram, whole.gram, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(total.col_sum, whole.col_sum, rtol=1e-12, atol=1e-12)
    for a, b in zip(total.targets(), whole.targets()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_merged_leaves_its_inputs_alone_and_checks_kinds():
    F, y = _data(3)
    a, b = RidgeMoments().add(F[:40], y[:40]), RidgeMoments().add(F[40:], y[40:])
    g = a.gram.copy()
    a.merged(b)
    np.testing.assert_array_equal(a.gram, g)
    assert a.n_rows == 40
    with pytest.raises(ValueError, match="classification"):
        a.merged(RidgeMoments(classification=True))
    with pytest.raises(ValueError, match="features"):
        a.merged(RidgeMoments().add(F[:, :3], y))
    with pytest.raises(TypeError, match="RidgeMoments"):
        a.merged(3)
    with pytest.raises(ValueError, match="rows"):
        RidgeMoments().add(F, y[:-1])
    with pytest.raises(TypeError, match="classification"):
        RidgeMoments("yes")


@given(st.integers(0, 2**32), st.integers(0, 500), st.integers(0, 200))
def test_validation_mask_replays_the_stream_split(seed, start, n_rows):
    full = np.random.default_rng(seed).random(start + n_rows) < 0.3
    np.testing.assert_array_equal(validation_mask(seed, 0.3, start, n_rows), full[start:])


@pytest.mark.parametrize("classification", [False, True])
def test_blocks_summarised_apart_fit_like_fit_stream(classification):
    # The distributed recipe of the module docstring: split each block with validation_mask, summarise, reduce,
    # fit_moments; it must agree with fit_stream over the same rows in the same order.
    F, y = _data(4, n=200, d=6, C=3 if classification else None)
    Est = RidgeClassifier if classification else RidgeRegressor
    kw = dict(seed=11, fit_intercept=True)
    if classification:
        kw["selection"] = "squared_error"
    ref = Est(**kw).fit_stream(iter([(F[i:i + 64], y[i:i + 64]) for i in range(0, 200, 64)]))
    trains, vals = [], []
    for a, b in _blocks(200, [37, 120, 150]):
        val = validation_mask(11, 0.2, a, b - a)
        trains.append(RidgeMoments(classification).add(F[a:b][~val], y[a:b][~val]))
        vals.append(RidgeMoments(classification).add(F[a:b][val], y[a:b][val]))
    train = trains[3].merged(trains[0]).merged(trains[2].merged(trains[1]))
    validation = vals[1].merged(vals[3]).merged(vals[0]).merged(vals[2])
    got = Est(**kw).fit_moments(train, validation)
    assert got.best_lambda_ == pytest.approx(ref.best_lambda_, rel=1e-12)
    assert (got.n_train_, got.n_validation_) == (ref.n_train_, ref.n_validation_)
    np.testing.assert_allclose(got.validation_scores_, ref.validation_scores_, rtol=1e-9)
    np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    if classification:
        np.testing.assert_array_equal(got.predict(F), ref.predict(F))
    else:
        np.testing.assert_allclose(got.predict(F), ref.predict(F), rtol=1e-9, atol=1e-12)


def test_classifier_accuracy_selection_from_validation_rows():
    F, labels = _data(5, n=150, C=3)
    ref = RidgeClassifier(seed=2).fit(F, labels)          # accuracy selection on the in-memory split
    val = validation_mask(2, 0.2, 0, 150)
    train = RidgeMoments(True).add(F[~val], labels[~val])
    validation = RidgeMoments(True).add(F[val], labels[val])
    got = RidgeClassifier(seed=2).fit_moments(train, validation, validation_rows=lambda: [(F[val], labels[val])])
    assert got.selection_ == "accuracy"
    np.testing.assert_allclose(got.validation_scores_, ref.validation_scores_)
    assert got.best_lambda_ == ref.best_lambda_
    with pytest.raises(ValueError, match="differs"):
        RidgeClassifier(seed=2).fit_moments(train, validation, validation_rows=lambda: [(F[val][:5], labels[val][:5])])
    with pytest.raises(ValueError, match="validation moments"):
        RidgeClassifier(seed=2).fit_moments(train)
    with pytest.raises(ValueError, match="regression"):
        RidgeRegressor().fit_moments(train, validation)


def test_classifier_accuracy_selection_from_count_correct():
    # count_correct scores the validation rows where they live; only the grid's models reach it.  Counting the
    # same rows with the same arithmetic, it must give exactly the scores of validation_rows.
    F, labels = _data(5, n=150, C=3)
    val = validation_mask(2, 0.2, 0, 150)
    train = RidgeMoments(True).add(F[~val], labels[~val])
    validation = RidgeMoments(True).add(F[val], labels[val])
    ref = RidgeClassifier(seed=2).fit_moments(train, validation, validation_rows=lambda: [(F[val], labels[val])])
    calls = []

    def count_correct(V, coefs, classes, rows=(F[val], labels[val])):
        calls.append((V.shape, len(coefs)))
        Z = rows[0] @ V
        return [np.count_nonzero(classes[np.argmax(Z @ W + b, axis=1)] == rows[1]) for W, b in coefs], rows[1].size

    got = RidgeClassifier(seed=2).fit_moments(train, validation, count_correct=count_correct)
    assert calls == [((5, 5), ref.lambdas_.size)]
    assert got.selection_ == "accuracy"
    np.testing.assert_array_equal(got.validation_scores_, ref.validation_scores_)
    assert got.best_lambda_ == ref.best_lambda_
    np.testing.assert_array_equal(got.coef_, ref.coef_)
    # squared_error selection never calls it
    RidgeClassifier(seed=2, selection="squared_error").fit_moments(train, validation, count_correct=count_correct)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="count_correct scored 5 validation rows"):
        RidgeClassifier(seed=2).fit_moments(
            train, validation, count_correct=lambda V, c, k: count_correct(V, c, k, (F[val][:5], labels[val][:5])))
    with pytest.raises(ValueError, match="one per lam"):
        RidgeClassifier(seed=2).fit_moments(train, validation, count_correct=lambda V, c, k: ([1.0], int(val.sum())))
    with pytest.raises(ValueError, match="a pair"):
        RidgeClassifier(seed=2).fit_moments(train, validation, count_correct=lambda V, c, k: None)
    with pytest.raises(ValueError, match="not both"):
        RidgeClassifier(seed=2).fit_moments(train, validation, validation_rows=lambda: [], count_correct=count_correct)
    with pytest.raises(TypeError, match="count_correct must be a callable"):
        RidgeClassifier(seed=2).fit_moments(train, validation, count_correct=3)
