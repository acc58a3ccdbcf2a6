"""Tests of ntk_sketch.learn.mlp: parameter count, exact gradients, training, early stopping, seeding, errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from ntk_sketch.learn.mlp import MLPClassifier, MLPRegressor, mlp_param_count, width_for_params


def _blobs(seed, n=300, d=5, C=3, sep=3.0):
    rng = np.random.default_rng(seed)
    centres = sep * rng.standard_normal((C, d))
    labels = rng.integers(0, C, n)
    return centres[labels] + rng.standard_normal((n, d)), labels


def test_param_count_matches_the_arrays():
    X, y = _blobs(0, n=60, d=7, C=4)
    for depth in (1, 2, 3):
        m = MLPClassifier(width=9, depth=depth, max_epochs=1, seed=0).fit(X, y)
        actual = sum(W.size for W in m.coefs_) + sum(b.size for b in m.intercepts_)
        assert actual == mlp_param_count(9, 7, 4, depth) == m.n_params_


@given(n_params=st.integers(1, 10**6), d=st.integers(1, 3000), k=st.integers(1, 20), depth=st.integers(1, 4))
def test_width_for_params_is_the_closest(n_params, d, k, depth):
    w = width_for_params(n_params, d, k, depth)
    assert w >= 1
    err = abs(mlp_param_count(w, d, k, depth) - n_params)
    # P is increasing in w, so the closest width is one of the two neighbours of the real root
    assert err <= abs(mlp_param_count(w + 1, d, k, depth) - n_params)
    if w > 1:   # ties go to the smaller width
        assert err < abs(mlp_param_count(w - 1, d, k, depth) - n_params)


@pytest.mark.parametrize("cls,depth,wd", [(MLPClassifier, 1, 0.0), (MLPClassifier, 3, 0.1), (MLPRegressor, 2, 0.05)])
def test_gradients_match_finite_differences(cls, depth, wd):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 4))
    model = cls(width=5, depth=depth, weight_decay=wd)
    T = np.eye(3)[rng.integers(0, 3, 7)] if cls is MLPClassifier else rng.standard_normal((7, 3))
    params = model._init_params(4, 3, 5, depth, rng, np.float64)
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]   # non-zero biases too
    loss, grads = model._loss_and_grads(params, X, T)
    h = 1e-6
    for p, g in zip(params, grads):
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            p[idx] = old + h
            up, _ = model._loss_and_grads(params, X, T)
            p[idx] = old - h
            down, _ = model._loss_and_grads(params, X, T)
            p[idx] = old
            # central differences: error O(h^2 * third derivative) + O(eps / h) ~ 1e-9 (ReLU kinks are not hit:
            # the pre-activations are continuous random values, at distance >> h from 0 with probability ~1)
            assert g[idx] == pytest.approx((up - down) / (2 * h), abs=1e-6)


def test_classifier_learns_separable_blobs():
    X, y = _blobs(2)
    Xt, _ = _blobs(2, n=200)
    m = MLPClassifier(width=32, seed=0).fit(X, y)
    # Blobs 3 standard deviations apart in expectation: a well-trained net is far above the 1/3 chance level.
    assert m.score(X, y) > 0.9
    assert m.predict_proba(Xt).shape == (200, 3)
    np.testing.assert_allclose(m.predict_proba(Xt).sum(1), 1.0)


def test_regressor_learns_a_smooth_function():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, (600, 2))
    y = np.sin(X[:, 0]) * X[:, 1] + 5.0
    m = MLPRegressor(width=64, seed=0).fit(X, y)
    assert m.score(X, y) > 0.95
    assert m.predict(X).shape == (600,)
    assert m.rmse(X, y) < 0.25 * np.std(y)


def test_early_stopping_keeps_the_best_epoch():
    X, y = _blobs(4, n=120, sep=0.5)    # overlapping classes: a wide net overfits, validation loss turns up
    m = MLPClassifier(width=256, learning_rate=1e-2, patience=3, max_epochs=300, seed=1).fit(X, y)
    curve = m.validation_curve_
    assert m.best_epoch_ == int(np.argmin(curve))
    assert m.n_epochs_ == len(curve) - 1
    assert m.n_epochs_ - m.best_epoch_ == 3 and m.n_epochs_ < 300
    assert m.best_validation_loss_ == curve.min()


def test_seeded_and_reproducible():
    X, y = _blobs(5, n=100)
    a = MLPClassifier(width=8, max_epochs=5, seed=7).fit(X, y)
    b = MLPClassifier(width=8, max_epochs=5, seed=7).fit(X, y)
    c = MLPClassifier(width=8, max_epochs=5, seed=8).fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(Wa, Wb)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_n_params_and_max_time():
    X, y = _blobs(6, n=200, d=20, C=4)
    m = MLPClassifier(n_params=2000, max_epochs=1000, patience=1000, seed=0).fit(X, y)
    assert m.width_ == width_for_params(2000, 20, 4, 1)
    # The time budget is checked after every minibatch: a zero budget stops after the first one (epoch 1).
    t = MLPClassifier(n_params=2000, max_epochs=1000, patience=1000, max_time=0.0, seed=0).fit(X, y)
    assert t.n_epochs_ == 1 and len(t.validation_curve_) == 2


def test_float32():
    X, y = _blobs(7, n=100)
    m = MLPClassifier(width=8, max_epochs=3, dtype=np.float32, seed=0).fit(X, y)
    assert m.coefs_[0].dtype == np.float32 and m.predict(X).shape == (100,)


def test_errors():
    X, y = _blobs(8, n=50)
    with pytest.raises(ValueError, match="width"):
        MLPClassifier().fit(X, y)
    with pytest.raises(ValueError, match="not both"):
        MLPClassifier(width=3, n_params=100).fit(X, y)
    with pytest.raises(ValueError, match="single class"):
        MLPClassifier(width=3).fit(X, np.zeros(50))
    with pytest.raises(ValueError, match="match"):
        MLPClassifier(width=3).fit(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        MLPRegressor(width=3).fit(X, np.full(50, np.nan))
    with pytest.raises(ValueError, match="NaN"):
        MLPRegressor(width=3).fit(np.full((50, 5), np.nan), np.ones(50))
    with pytest.raises(ValueError, match="not fitted"):
        MLPClassifier(width=3).predict(X)
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPClassifier(width=3, validation_fraction=0.0).fit(X, y)
    m = MLPClassifier(width=3, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        m.predict(X[:, :2])
