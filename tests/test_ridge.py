"""Tests of ntk_sketch.learn.ridge: exact solves against scipy, streaming = in-memory, the validation split."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, strategies as st

from ntk_sketch.learn._checks import _best_index
from ntk_sketch.learn.ridge import (
    RidgeClassifier,
    RidgeRegressor,
    default_relative_lambdas,
    feature_chunks,
)
from naive import best_lambda_index_naive, ridge_rounding_rtol


def _regression_data(seed, n=120, d=8, k=None, noise=0.3, shift=2.0):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    w = rng.standard_normal((d,) if k is None else (d, k))
    y = F @ w + noise * rng.standard_normal((n,) + w.shape[1:]) + shift
    return F, y


def _classification_data(seed, n=150, d=6, C=3):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n, d))
    centres = 2.0 * rng.standard_normal((C, d))
    labels = rng.integers(0, C, n)
    return F + centres[labels], labels


# ------------------------------------------------------------------------------------------- exact solves
def test_fixed_lambda_matches_scipy_solve_no_intercept():
    F, y = _regression_data(0)
    lam = 3.7
    model = RidgeRegressor(lam, fit_intercept=False).fit(F, y)
    expected = scipy.linalg.solve(F.T @ F + lam * np.eye(F.shape[1]), F.T @ y)
    np.testing.assert_allclose(model.coef_, expected, rtol=1e-10, atol=1e-12)
    assert model.intercept_ == 0.0
    assert model.validation_scores_ is None and model.n_train_ == F.shape[0]


def test_fixed_lambda_with_intercept_matches_augmented_solve():
    # Unpenalised intercept: solve the augmented system with a zero penalty on the constant column.
    F, y = _regression_data(1)
    lam = 0.9
    A = np.hstack([F, np.ones((F.shape[0], 1))])
    P = lam * np.eye(A.shape[1])
    P[-1, -1] = 0.0
    sol = scipy.linalg.solve(A.T @ A + P, A.T @ y)
    model = RidgeRegressor(lam).fit(F, y)
    np.testing.assert_allclose(model.coef_, sol[:-1], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(model.intercept_, sol[-1], rtol=1e-9)


def test_multi_output_and_float32_features_accumulate_in_float64():
    F, y = _regression_data(2, k=3)
    lam = 0.5
    m64 = RidgeRegressor(lam, fit_intercept=False).fit(F.astype(np.float32), y)
    F32 = F.astype(np.float32).astype(np.float64)
    expected = scipy.linalg.solve(F32.T @ F32 + lam * np.eye(F.shape[1]), F32.T @ y)
    np.testing.assert_allclose(m64.coef_, expected, rtol=1e-10, atol=1e-12)
    assert m64.coef_.dtype == np.float64 and m64.predict(F).shape == y.shape


def test_classifier_targets_one_hot_minus_one_over_C():
    F, labels = _classification_data(3)
    lam = 1.3
    model = RidgeClassifier(lam).fit(F, labels)
    Y = np.eye(3)[labels] - 1.0 / 3
    expected = scipy.linalg.solve(F.T @ F + lam * np.eye(F.shape[1]), F.T @ Y)
    np.testing.assert_allclose(model.coef_, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.predict(F), np.argmax(F @ expected, axis=1))
    assert model.score(F, labels) == np.mean(model.predict(F) == labels)


def test_string_labels_are_supported():
    F, labels = _classification_data(4)
    names = np.array(["cat", "dog", "emu"])[labels]
    a = RidgeClassifier(seed=1).fit(F, labels)
    b = RidgeClassifier(seed=1).fit(F, names)
    np.testing.assert_array_equal(b.classes_, ["cat", "dog", "emu"])
    np.testing.assert_array_equal(np.array(["cat", "dog", "emu"])[a.predict(F)], b.predict(F))


# ------------------------------------------------------------------------------------- lambda selection
def _brute_force_selection(F, Y, val, lambdas, fit_intercept, score):
    """Fit on the rows not in val with lam * n_part / n by scipy.solve, score on val; the obvious way."""
    n = F.shape[0]
    Ft, Yt = F[~val], Y[~val]
    out = []
    for lam in lambdas:
        lp = lam * Ft.shape[0] / n
        if fit_intercept:
            mf, my = Ft.mean(0), Yt.mean(0)
            W = scipy.linalg.solve((Ft - mf).T @ (Ft - mf) + lp * np.eye(F.shape[1]), (Ft - mf).T @ (Yt - my))
            b = my - mf @ W
        else:
            W = scipy.linalg.solve(Ft.T @ Ft + lp * np.eye(F.shape[1]), Ft.T @ Yt)
            b = 0.0
        out.append(score(F[val] @ W + b, Y[val]))
    return np.array(out)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_grid_from_one_eigendecomposition_matches_brute_force(fit_intercept):
    F, y = _regression_data(5, n=90, d=12)
    lambdas = np.logspace(-3, 3, 9)
    model = RidgeRegressor(lambdas, validation_fraction=0.3, seed=11, fit_intercept=fit_intercept).fit(F, y)
    val = np.random.default_rng(11).random(F.shape[0]) < 0.3
    assert model.n_validation_ == val.sum()

    def r2(p, t):
        return 1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2)

    expected = _brute_force_selection(F, y, val, lambdas, fit_intercept, r2)
    np.testing.assert_allclose(model.validation_scores_, expected, rtol=1e-9, atol=1e-12)
    assert model.best_lambda_ == lambdas[np.argmax(expected)]


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_classifier_accuracy_selection_matches_brute_force(fit_intercept):
    F, labels = _classification_data(6, n=200)
    lambdas = np.logspace(-2, 4, 7)
    model = RidgeClassifier(lambdas, seed=3, fit_intercept=fit_intercept).fit(F, labels)
    val = np.random.default_rng(3).random(F.shape[0]) < 0.2
    Y = np.eye(3)[labels] - 1 / 3
    acc = _brute_force_selection(F, Y, val, lambdas, fit_intercept, lambda p, t: np.mean(p.argmax(1) == t.argmax(1)))
    sq = _brute_force_selection(F, Y, val, lambdas, fit_intercept, lambda p, t: np.sum((p - t) ** 2))
    np.testing.assert_allclose(model.validation_scores_, acc)
    np.testing.assert_allclose(model.validation_squared_errors_ * val.sum(), sq, rtol=1e-9)
    trace_part = np.sum((F[~val] - (F[~val].mean(0) if fit_intercept else 0)) ** 2)
    rounding = 100 * np.finfo(float).eps * (1 + trace_part / (lambdas * (~val).sum() / F.shape[0]))
    assert model.best_lambda_ == lambdas[best_lambda_index_naive(acc, sq, lambdas, rounding)]
    assert model.selection_ == "accuracy"


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_validation_errors_from_rows_equal_those_from_moments(fit_intercept):
    # Scored by accuracy, the validation rows give the squared errors too; by squared error they come from the
    # validation moments alone.  The two are the same sums (rounding apart), in float32 features as well.
    F, labels = _classification_data(7, n=300, d=9, C=4)
    lambdas = np.logspace(-3, 3, 13)
    for dtype in (np.float64, np.float32):
        rows = RidgeClassifier(lambdas, seed=5, fit_intercept=fit_intercept).fit(F.astype(dtype), labels)
        moments = RidgeClassifier(lambdas, seed=5, fit_intercept=fit_intercept,
                                  selection="squared_error").fit(F.astype(dtype), labels)
        assert (rows.selection_, moments.selection_) == ("accuracy", "squared_error")
        np.testing.assert_allclose(rows.validation_squared_errors_, moments.validation_squared_errors_, rtol=1e-9)


def test_lambda_is_on_the_full_training_scale():
    # The model fitted on the training part for a grid value lam uses the penalty lam * n_part / n (same
    # regularisation per sample as lam on the full set): check the score of one grid value against that formula.
    F, y = _regression_data(7, n=100, d=5)
    lam = 10.0
    model = RidgeRegressor([lam, 1e6], validation_fraction=0.5, seed=0, fit_intercept=False).fit(F, y)
    val = np.random.default_rng(0).random(100) < 0.5
    n_part = (~val).sum()
    W = scipy.linalg.solve(F[~val].T @ F[~val] + lam * n_part / 100 * np.eye(5), F[~val].T @ y[~val])
    r2 = 1 - np.sum((F[val] @ W - y[val]) ** 2) / np.sum((y[val] - y[val].mean()) ** 2)
    assert model.validation_scores_[0] == pytest.approx(r2, rel=1e-10)


def test_default_grid_is_relative_to_trace():
    F, y = _regression_data(8)
    model = RidgeRegressor(fit_intercept=False).fit(F, y)
    np.testing.assert_allclose(model.lambdas_, np.trace(F.T @ F) * default_relative_lambdas())
    assert model.best_lambda_ in model.lambdas_
    scaled = RidgeRegressor(fit_intercept=False).fit(10 * F, y)
    # Scaling the features by 10 scales the grid by 100 and picks the matching lambda.
    assert scaled.best_lambda_ == pytest.approx(100 * model.best_lambda_)


def test_selection_settles_a_rounding_plateau_towards_the_larger_lambda():
    lambdas = np.logspace(-3, 0, 4)
    rounding = np.array([1e-3, 1e-6, 1e-9, 1e-12])        # an ill-conditioned small end, as _rounding_error gives
    # well resolved: the lowest squared error wins, whatever its lambda
    assert _best_index(None, np.array([5.0, 4.0, 3.0, 6.0]), lambdas, rounding) == 2
    assert _best_index(None, np.array([1.0, 2.0, 3.0, 6.0]), lambdas, rounding) == 0
    # the smallest lambda is lower by less than its own rounding: it could be the lowest, and so could the next,
    # which is larger; the third is above the second's interval
    assert _best_index(None, np.array([3.0, 3.000001, 3.0001, 6.0]), lambdas, rounding) == 1
    # the same numbers perturbed within the smallest lambda's rounding (another solver): the same choice
    assert _best_index(None, np.array([3.0025, 3.000001, 3.0001, 6.0]), lambdas, rounding) == 1
    # accuracy first, compared exactly: the plateau rule acts within the best accuracy only
    acc = np.array([0.9, 0.8, 0.9, 0.9])
    assert _best_index(acc, np.array([3.0, 3.000001, 3.1, 6.0]), lambdas, rounding) == 0
    assert _best_index(acc, np.array([3.0, 3.000001, 3.0000001, 6.0]), lambdas, rounding) == 2


@given(st.integers(1, 12), st.integers(0, 2**32 - 1), st.booleans())
def test_selection_rule_matches_naive(n, seed, with_scores):
    rng = np.random.default_rng(seed)
    lambdas = np.sort(rng.choice(np.logspace(-11, 0, 34), n, replace=False))
    sq = 1.0 + rng.integers(0, 4, n) * 10.0 ** -rng.integers(2, 10, n)      # near-ties at several scales
    rounding = 10.0 ** -rng.integers(3, 14, n)
    scores = rng.integers(0, 3, n) / 2 if with_scores else None
    assert _best_index(scores, sq, lambdas, rounding) == best_lambda_index_naive(scores, sq, lambdas, rounding)


def test_lambda_is_chosen_on_the_training_set_not_the_test_set():
    # A test set whose best lambda is the largest (its targets are 0, so shrinking to 0 is best) while the
    # training set's validation split prefers a small one: the chosen lambda must be the brute-force validation
    # optimum computed from the TRAINING rows alone, and it differs from the test optimum.
    F, y = _regression_data(9, n=150, noise=0.1, shift=0.0)
    Ftr, ytr, Fte = F[:100], y[:100], F[100:]
    yte = np.zeros(50)
    lambdas = np.logspace(-4, 4, 9)
    model = RidgeRegressor(lambdas, seed=4, fit_intercept=False).fit(Ftr, ytr)
    val = np.random.default_rng(4).random(100) < 0.2

    def r2(p, t):
        return 1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2)

    on_train = _brute_force_selection(Ftr, ytr, val, lambdas, False, r2)
    assert model.best_lambda_ == lambdas[np.argmax(on_train)]
    test_mse = [np.mean((RidgeRegressor(lam, fit_intercept=False).fit(Ftr, ytr).predict(Fte) - yte) ** 2)
                for lam in lambdas]
    assert lambdas[np.argmin(test_mse)] == lambdas[-1] != model.best_lambda_


# ---------------------------------------------------------------------------------------------- streaming
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_streaming_equals_in_memory_regression(seed, sizes):
    n = sum(sizes)
    if n < 20:
        sizes = sizes + [20]
        n += 20
    F, y = _regression_data(seed % 1000, n=n, d=5)
    bounds = np.cumsum([0] + sizes)
    chunks = [(F[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    mem = RidgeRegressor(validation_fraction=0.3, seed=seed).fit(F, y)
    stream = RidgeRegressor(validation_fraction=0.3, seed=seed).fit_stream(iter(chunks))
    assert stream.n_validation_ == mem.n_validation_
    np.testing.assert_allclose(stream.validation_scores_, mem.validation_scores_, rtol=1e-8, atol=1e-10)
    # the grid scales with trace(F^T F), whose float sum depends on the chunking: equal up to rounding
    assert stream.best_lambda_ == pytest.approx(mem.best_lambda_, rel=1e-12)
    np.testing.assert_allclose(stream.coef_, mem.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(stream.intercept_, mem.intercept_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("selection", ["auto", "squared_error"])
def test_streaming_equals_in_memory_classifier(selection, fit_intercept):
    F, labels = _classification_data(10, n=230)
    chunks = [(F[i:i + 31], labels[i:i + 31]) for i in range(0, 230, 31)]
    kw = dict(seed=2, selection=selection, fit_intercept=fit_intercept)
    mem = RidgeClassifier(**kw).fit(F, labels)
    two_pass = RidgeClassifier(**kw).fit_stream(lambda: iter(chunks))
    assert two_pass.selection_ == mem.selection_
    np.testing.assert_allclose(two_pass.validation_scores_, mem.validation_scores_, rtol=1e-9, atol=1e-12)
    assert two_pass.best_lambda_ == pytest.approx(mem.best_lambda_, rel=1e-12)
    np.testing.assert_allclose(two_pass.coef_, mem.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(two_pass.predict(F), mem.predict(F))


def test_feature_chunks_stream_equals_in_memory_features():
    F, labels = _classification_data(18, n=170)
    W = np.random.default_rng(0).standard_normal((F.shape[1], 9))

    def transform(rows):
        return np.cos(rows @ W)

    stream = feature_chunks(transform, F, labels, chunk_size=40)
    a = RidgeClassifier(seed=1).fit_stream(stream)
    b = RidgeClassifier(seed=1).fit(transform(F), labels)
    assert a.selection_ == "accuracy"
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="chunk_size"):
        feature_chunks(transform, F, labels, chunk_size=0)


def test_single_pass_classifier_stream_uses_squared_error_and_partial_fit_agrees():
    F, labels = _classification_data(11, n=200)
    chunks = [(F[i:i + 50], labels[i:i + 50]) for i in range(0, 200, 50)]
    one = RidgeClassifier(seed=5).fit_stream(iter(chunks))
    assert one.selection_ == "squared_error"
    ref = RidgeClassifier(seed=5, selection="squared_error").fit(F, labels)
    assert one.best_lambda_ == pytest.approx(ref.best_lambda_, rel=1e-12)
    pf = RidgeClassifier(seed=5)
    for Fc, yc in chunks:
        pf.partial_fit(Fc, yc)
    pf.finalize()
    np.testing.assert_allclose(pf.coef_, one.coef_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="accuracy"):
        RidgeClassifier(selection="accuracy").fit_stream(iter(chunks))


def test_classes_missing_from_some_chunks_are_accumulated():
    F, labels = _classification_data(12, n=120)
    order = np.argsort(labels, kind="stable")   # chunks sorted by class: each chunk sees one or two classes
    F, labels = F[order], labels[order]
    chunks = [(F[i:i + 20], labels[i:i + 20]) for i in range(0, 120, 20)]
    a = RidgeClassifier(1.0).fit_stream(iter(chunks))
    b = RidgeClassifier(1.0).fit(F, labels)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)


def test_partial_fit_declared_classes():
    # classes= declares labels that some (here: all) chunks miss; they get their one-hot column (C = 4 in the
    # 1/C shift) and are never predicted; a label outside the declared ones is an error.
    F, labels = _classification_data(21, n=90)
    m = RidgeClassifier(1.0)
    m.partial_fit(F[:45], labels[:45], classes=[0, 1, 2, 3])
    assert m.n_features_in_ == F.shape[1]
    m.partial_fit(F[45:], labels[45:])
    m.finalize()
    assert m.classes_.tolist() == [0, 1, 2, 3]
    Y = np.eye(4)[labels] - 0.25
    np.testing.assert_allclose(m.coef_, scipy.linalg.solve(F.T @ F + np.eye(F.shape[1]), F.T @ Y), rtol=1e-10)
    bad = RidgeClassifier(1.0).partial_fit(F, labels, classes=[0, 1])
    with pytest.raises(ValueError, match="not among the classes"):
        bad.finalize()
    with pytest.raises(ValueError, match="classifiers"):
        RidgeRegressor().partial_fit(F, labels * 1.0, classes=[0, 1])


def test_second_pass_must_repeat_the_stream():
    F, labels = _classification_data(13, n=100)
    calls = {"n": 0}

    def stream():
        calls["n"] += 1
        step = 25 if calls["n"] == 1 else 20
        return iter([(F[i:i + step], labels[i:i + step]) for i in range(0, 100, step)])

    with pytest.raises(ValueError, match="second pass"):
        RidgeClassifier().fit_stream(stream)


# ------------------------------------------------------------------------------------------ primal / dual
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("k", [None, 2])
def test_dual_solver_equals_primal_regression(fit_intercept, k):
    F, y = _regression_data(19, n=40, d=60, k=k)       # D > n: 'auto' takes the dual
    a = RidgeRegressor(seed=2, fit_intercept=fit_intercept, solver="primal").fit(F, y)
    b = RidgeRegressor(seed=2, fit_intercept=fit_intercept).fit(F, y)
    assert b.best_lambda_ == pytest.approx(a.best_lambda_, rel=1e-12)
    # at the grid's small end the systems are ill-conditioned (rank 32 of 60 in the primal): the two solvers agree
    # to their rounding there, and to 1e-7 elsewhere; R^2 = 1 - sse / sst moves by the sse's change over sst
    rt = np.maximum(1e-7, ridge_rounding_rtol(a.lambdas_, np.sum(F**2), a.n_train_, a.n_validation_))
    sse_a, sse_b = a.validation_squared_errors_, b.validation_squared_errors_
    assert np.all(np.abs(sse_b - sse_a) <= rt * sse_a + 1e-12)
    assert np.all(np.abs(b.validation_scores_ - a.validation_scores_) <= rt * np.abs(1 - a.validation_scores_) + 1e-9)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-7, atol=1e-9 * np.abs(a.coef_).max())
    np.testing.assert_allclose(b.intercept_, a.intercept_, rtol=1e-7, atol=1e-9)
    assert b.predict(F).shape == y.shape


@pytest.mark.parametrize("selection", ["auto", "squared_error"])
def test_dual_solver_equals_primal_classifier(selection):
    F, labels = _classification_data(20, n=60, d=80)
    a = RidgeClassifier(seed=6, selection=selection, solver="primal").fit(F, labels)
    b = RidgeClassifier(seed=6, selection=selection, solver="dual").fit(F, labels)
    assert a.selection_ == b.selection_
    # scores: accuracies (equal) or minus the mean squared error, equal to the solvers' rounding (regression test)
    rt = np.maximum(1e-7, ridge_rounding_rtol(a.lambdas_, np.sum(F**2), a.n_train_, a.n_validation_))
    assert np.all(np.abs(b.validation_scores_ - a.validation_scores_) <= rt * np.abs(a.validation_scores_) + 1e-9)
    assert b.best_lambda_ == pytest.approx(a.best_lambda_, rel=1e-12)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-7, atol=1e-9 * np.abs(a.coef_).max())
    lam = 0.3
    c = RidgeClassifier(lam, solver="dual").fit(F, labels)
    Y = np.eye(3)[labels] - 1 / 3
    np.testing.assert_allclose(c.coef_, scipy.linalg.solve(F.T @ F + lam * np.eye(80), F.T @ Y), rtol=1e-8,
                               atol=1e-10)
    with pytest.raises(ValueError, match="solver"):
        RidgeClassifier(solver="svd").fit(F, labels)


# ------------------------------------------------------------------------------------------------ errors
def test_clear_errors():
    F, y = _regression_data(17, n=40)
    with pytest.raises(ValueError, match="rows"):
        RidgeRegressor().fit(F, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        RidgeRegressor().fit(F, np.where(np.arange(40) == 3, np.nan, y))
    with pytest.raises(ValueError, match="NaN"):
        RidgeRegressor().fit(np.where(np.arange(40)[:, None] == 3, np.nan, F), y)
    with pytest.raises(ValueError, match="single class"):
        RidgeClassifier().fit(F, np.zeros(40, int))
    with pytest.raises(ValueError, match="NaN"):
        RidgeClassifier().fit(F, np.where(np.arange(40) == 3, np.nan, 1.0 * (y > 2)))
    with pytest.raises(ValueError, match="lambdas"):
        RidgeRegressor([1.0, -1.0]).fit(F, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        RidgeRegressor(validation_fraction=1.0).fit(F, y)
    with pytest.raises(ValueError, match="not fitted"):
        RidgeRegressor().predict(F)
    m = RidgeRegressor().fit(F, y)
    with pytest.raises(ValueError, match="features"):
        m.predict(F[:, :3])
    with pytest.raises(ValueError, match="earlier chunks"):
        RidgeRegressor().fit_stream([(F[:20], y[:20]), (F[20:, :3], y[20:])])
    with pytest.raises(ValueError, match="validation split"):
        RidgeRegressor(validation_fraction=0.01, seed=0).fit(F[:3], y[:3])
    with pytest.raises(ValueError, match="no data"):
        RidgeRegressor().finalize()
