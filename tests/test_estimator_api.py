"""The scikit-learn estimator protocol of every estimator (ntk_sketch/_base.py), checked with scikit-learn itself.

get_params / set_params round trips, clone, validation in fit (not __init__), NotFittedError before fit,
n_features_in_, the classifier conventions (binary decision_function, continuous targets rejected, pandas labels),
``sklearn.utils.estimator_checks`` for every 2-d estimator, and a GridSearchCV over ``n_components`` in a Pipeline.
The module is skipped when scikit-learn (>= 1.6, an optional test extra) is not installed.
"""
import inspect
import pathlib
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")   # estimator tags and expected_failed_checks

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError as SkNotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import ntk_sketch as nk  # noqa: E402
from ntk_sketch._base import DataConversionWarning  # noqa: E402



class _NTK1:
    """The depth-1 NTK as a kernel callable, with a fixed repr (test ids must not contain memory addresses)."""

    def __call__(self, A, B):
        return nk.ntk_kernel(A, B, depth=1)

    def __repr__(self):
        return "ntk_kernel(depth=1)"


KERNEL = _NTK1()

# Small, fast configurations of every 2-d estimator (rows in, rows out).
TWO_D = [
    nk.NTKSketch(depth=1, n_components=16, degree=2, seed=0),
    nk.NTKSketch(depth=2, n_components=16, degree=2, variant="single", seed=0),
    nk.NTKRandomFeatures(depth=1, n_components=16, seed=0),
    nk.NystromFeatures(8, seed=0),
    nk.RidgeRegressor(),
    nk.RidgeClassifier(),
    nk.KernelRidgeRegressor(KERNEL),
    nk.KernelRidgeClassifier(KERNEL),
    nk.MLPRegressor(width=32, learning_rate=1e-2, max_epochs=100),
    nk.MLPClassifier(width=32, learning_rate=1e-2, max_epochs=100),
]
# Estimators whose input is not a 2-d matrix of any width, so scikit-learn's common checks do not apply:
#   CNTKSketch   takes images (n, H, W, C);
#   CountSketch, SRHT, PolySketch   have a fixed input dimension d (an __init__ parameter), while the checks
#                fit matrices of 1 to 10 columns; PolySketch also returns a 3-d array (n, degree, m);
#   TensorSRHT   takes two matrices (X, Y).
# They are covered by the protocol tests below (get_params, clone, NotFittedError, n_features_in_).
OTHERS = [
    nk.CNTKSketch(depth=1, n_components=8, filter_size=3, fix_first=False, pixel_dim=8, degree=2, seed=0),
    nk.CountSketch(6, 4, seed=0),
    nk.SRHT(6, 4, seed=0),
    nk.PolySketch(6, 4, 2, seed=0),
    nk.TensorSRHT(3, 2, 4, seed=0),
]
ALL = TWO_D + OTHERS

# scikit-learn's checks that set n_components=1, below the minimum of NTKSketch and NTKRandomFeatures (2: for
# NTKRandomFeatures one ReLU and one TensorSRHT coordinate, for NTKSketch one column per part of the layered
# sketch).  They are expected to fail on those two classes and are run instead on a subclass that floors
# n_components at 2, so that the rest of each check is still exercised (test_checks_that_set_one_component).
N_COMPONENTS_ONE = [
    "check_dont_overwrite_parameters",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
]


def _expected_failed_checks(estimator):
    if isinstance(estimator, (nk.NTKSketch, nk.NTKRandomFeatures)) and not isinstance(estimator, _Floor):
        return {name: "sets n_components=1, below the map's minimum of 2" for name in N_COMPONENTS_ONE}
    return {}


class _Floor:
    """Mixin for the check-only subclasses: ``n_components`` below 2 is raised to 2 in ``fit``."""

    def fit(self, X, y=None):
        kept = self.n_components
        if isinstance(kept, int) and kept < 2:
            self.n_components = 2
        try:
            return super().fit(X, y)
        finally:
            self.n_components = kept


class NTKSketchFloor(_Floor, nk.NTKSketch):
    pass


class NTKRandomFeaturesFloor(_Floor, nk.NTKRandomFeatures):
    pass


def _fit_data(est, n=30, seed=0):
    rng = np.random.default_rng(seed)
    if isinstance(est, nk.CNTKSketch):
        return rng.random((4, 5, 5, 1)), None
    if isinstance(est, nk.TensorSRHT):
        return None, None
    d = getattr(est, "d", 5)
    X = rng.standard_normal((n, d))
    if getattr(est, "_estimator_type", None) == "classifier":
        return X, np.arange(n) % 3
    if getattr(est, "_estimator_type", None) == "regressor":
        return X, X[:, 0] - 2 * X[:, 1]
    return X, None


def _fitted(est):
    est = type(est)(**est.get_params(deep=False))   # a fresh copy holding the very same parameter objects
    X, y = _fit_data(est)
    return est.fit() if X is None else est.fit(X, y), X


def _ids(estimators):
    return [type(e).__name__ for e in estimators]


# ------------------------------------------------------------------------------------------ the protocol
@pytest.mark.parametrize("est", ALL, ids=_ids(ALL))
def test_get_params_set_params_round_trip_and_clone(est):
    params = est.get_params()
    again = type(est)(**params)
    assert all(again.get_params()[k] is v for k, v in params.items()) and again.get_params().keys() == params.keys()
    twin = clone(est)   # clone rebuilds from get_params and checks that __init__ stored every argument unchanged
    assert type(twin) is type(est) and twin is not est and twin.get_params().keys() == params.keys()
    name = "seed" if "seed" in params else sorted(params)[0]
    assert est.set_params(**{name: params[name]}) is est
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_knob'"):
        clone(est).set_params(no_such_knob=3)


@pytest.mark.parametrize("est", ALL, ids=_ids(ALL))
def test_not_fitted_error_before_fit(est):
    X, y = _fit_data(est)
    fresh = clone(est)
    methods = [m for m in ("transform", "predict", "decision_function", "predict_proba", "to_dense") if
               hasattr(fresh, m)]
    assert methods
    for m in methods:
        args = () if m == "to_dense" else ((X,) if not isinstance(fresh, nk.TensorSRHT) else (np.ones((2, 3)),
                                                                                             np.ones((2, 2))))
        with pytest.raises(nk.NotFittedError, match="not fitted") as info:
            getattr(fresh, m)(*args)
        # scikit-learn is imported here, so the error is also scikit-learn's (its tools catch that class)
        assert isinstance(info.value, (ValueError, AttributeError, SkNotFittedError))
        assert isinstance(pickle.loads(pickle.dumps(info.value)), nk.NotFittedError)


@pytest.mark.parametrize("est", ALL, ids=_ids(ALL))
def test_fit_sets_n_features_in_and_leaves_params_alone(est):
    before = est.get_params(deep=False)
    fitted, X = _fitted(est)
    for name, value in fitted.get_params(deep=False).items():
        assert value is before[name]
    if isinstance(est, nk.CNTKSketch):
        assert fitted.n_features_in_ == 5 * 5 * 1
    elif isinstance(est, nk.TensorSRHT):
        assert fitted.n_features_in_ == 3 * 2
    else:
        assert fitted.n_features_in_ == X.shape[1]


def test_validation_happens_in_fit_not_init():
    # invalid values construct (scikit-learn's clone / set_params need that) and fail in fit, naming the argument
    X = np.random.default_rng(0).standard_normal((20, 4))
    y = np.arange(20) % 2
    cases = [
        (nk.NTKSketch(depth=0), "depth"),
        (nk.NTKRandomFeatures(relu_fraction="0.3"), "relu_fraction"),
        (nk.NystromFeatures(chunk_size=0), "chunk_size"),
        (nk.RidgeClassifier(selection="best"), "selection"),
        (nk.MLPClassifier(width=-1), "width"),
        (nk.CountSketch(4, 0), "m"),
        (nk.SRHT(4, -1), "m"),
        (nk.PolySketch(4, 3, 0), "degree"),
    ]
    for est, name in cases:
        with pytest.raises((ValueError, TypeError), match=name):
            est.fit(X, y)


def test_boolean_parameters_must_be_bools():
    X = np.random.default_rng(1).standard_normal((20, 4))
    y = np.arange(20) % 2
    for est, name in [(nk.NTKSketch(n_components=8, normalize_layers="no"), "normalize_layers"),
                      (nk.RidgeClassifier(fit_intercept="no"), "fit_intercept"),
                      (nk.RidgeRegressor(fit_intercept=1), "fit_intercept"),
                      (nk.KernelRidgeClassifier(KERNEL, fit_intercept="False"), "fit_intercept")]:
        with pytest.raises(ValueError, match=f"{name} must be True or False"):
            est.fit(X, y)
    imgs = np.random.default_rng(2).random((2, 5, 5, 1))
    with pytest.raises(ValueError, match="renormalize"):
        nk.CNTKSketch(depth=1, fix_first=False, renormalize="no").fit(imgs)


def test_repr_shows_the_changed_parameters():
    assert repr(nk.NTKSketch(n_components=64, seed=3)) == "NTKSketch(n_components=64, seed=3)"
    assert repr(nk.RidgeClassifier()) == "RidgeClassifier()"
    assert repr(nk.SRHT(8, 4)) == "SRHT(d=8, m=4)"


def test_fit_transform_equals_fit_then_transform():
    X = np.random.default_rng(3).standard_normal((25, 6))
    for est in [nk.NTKSketch(n_components=16, seed=1), nk.NTKRandomFeatures(n_components=16, seed=1),
                nk.NystromFeatures(6, seed=1), nk.CountSketch(6, 4, seed=1), nk.SRHT(6, 4, seed=1)]:
        np.testing.assert_array_equal(clone(est).fit_transform(X), clone(est).fit(X).transform(X))


def test_the_library_never_imports_sklearn():
    # The protocol lives in ntk_sketch/_base.py; scikit-learn is only looked up in sys.modules, never imported.
    code = (
        "import sys, numpy as np, ntk_sketch as nk\n"
        "X = np.random.default_rng(0).standard_normal((40, 5)); y = np.arange(40) % 3\n"
        "F = nk.NTKSketch(n_components=16, seed=0).fit(X).transform(X)\n"
        "m = nk.RidgeClassifier().set_params(fit_intercept=True).fit(F, y); m.decision_function(F); repr(m)\n"
        "try:\n    nk.NTKRandomFeatures().transform(X)\nexcept nk.NotFittedError:\n    pass\n"
        "assert not [k for k in sys.modules if k.split('.')[0] == 'sklearn'], 'sklearn was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(nk.__file__).parents[1])


# ----------------------------------------------------------------------------------------- classifiers
CLASSIFIERS = [nk.RidgeClassifier(seed=0), nk.KernelRidgeClassifier(KERNEL, seed=0),
               nk.MLPClassifier(width=16, max_epochs=30, seed=0)]


def _blobs(seed, n=60, C=2):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % C
    return rng.standard_normal((n, 4)) + 3.0 * np.eye(C, 4)[labels], labels


@pytest.mark.parametrize("est", CLASSIFIERS[:2], ids=_ids(CLASSIFIERS[:2]))
def test_binary_decision_function_has_shape_n_and_its_sign_predicts(est):
    X, y = _blobs(4)
    m = clone(est).fit(X, np.where(y == 1, "yes", "no"))
    d = m.decision_function(X)
    assert d.shape == (X.shape[0],)
    np.testing.assert_array_equal(m.predict(X), m.classes_[(d > 0).astype(int)])
    X3, y3 = _blobs(5, C=3)
    assert clone(est).fit(X3, y3).decision_function(X3).shape == (X3.shape[0], 3)


@pytest.mark.parametrize("est", CLASSIFIERS, ids=_ids(CLASSIFIERS))
def test_continuous_targets_are_rejected(est):
    X, _ = _blobs(6)
    y = np.random.default_rng(6).standard_normal(X.shape[0])   # would be 60 classes of one row each
    with pytest.raises(ValueError, match="Unknown label type: continuous.*regressor"):
        clone(est).fit(X, y)
    # floats with integer values are class labels, as in scikit-learn
    assert clone(est).fit(X, (np.arange(X.shape[0]) % 2).astype(float)).classes_.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("est", CLASSIFIERS, ids=_ids(CLASSIFIERS))
def test_pandas_string_and_categorical_labels(est):
    pd = pytest.importorskip("pandas")
    X, y = _blobs(7, C=3)
    names = np.array(["ant", "bee", "cat"])[y]
    ref = clone(est).fit(X, names)
    for labels in (pd.Series(names, dtype="string"), pd.Series(names, dtype="category"), pd.Series(names)):
        m = clone(est).fit(X, labels)
        assert m.classes_.tolist() == ["ant", "bee", "cat"]
        np.testing.assert_array_equal(m.predict(X), ref.predict(X))
        assert m.score(X, labels) == ref.score(X, names)
    with pytest.raises(ValueError, match="missing labels"):
        clone(est).fit(X, pd.Series(names, dtype="string").where(np.arange(len(names)) != 3))
    with pytest.raises(ValueError, match="mixes label types"):
        clone(est).fit(X, np.array(["ant", 1] * (len(names) // 2), dtype=object))


def test_column_vector_labels_warn_and_are_flattened():
    X, y = _blobs(8)
    with pytest.warns(DataConversionWarning, match="column-vector"):
        m = nk.RidgeClassifier().fit(X, y[:, None])
    np.testing.assert_array_equal(m.predict(X), nk.RidgeClassifier().fit(X, y).predict(X))


# ------------------------------------------------------------------------------ scikit-learn's own checks
with warnings.catch_warnings():
    # "does not inherit from sklearn.base.BaseEstimator": by design, scikit-learn is not a dependency
    warnings.filterwarnings("ignore", message=".*does not inherit from `sklearn.base.BaseEstimator`")
    _STRICT = {"xfail_strict": True} if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {}
    _SKLEARN_CHECKS = parametrize_with_checks(TWO_D, expected_failed_checks=_expected_failed_checks, **_STRICT)


@_SKLEARN_CHECKS
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(estimator)


@pytest.mark.parametrize("check_name", N_COMPONENTS_ONE)
@pytest.mark.parametrize("cls", [NTKSketchFloor, NTKRandomFeaturesFloor], ids=["NTKSketch", "NTKRandomFeatures"])
def test_checks_that_set_one_component(cls, check_name):
    from sklearn.utils import estimator_checks

    getattr(estimator_checks, check_name)(cls.__name__, cls(depth=1, n_components=16, seed=0))


# -------------------------------------------------------------------------------- Pipeline / GridSearchCV
def test_grid_search_over_n_components_in_a_pipeline():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    X, y = load_digits(return_X_y=True)
    X, y, Xt, yt = X[:600], y[:600], X[600:900], y[600:900]
    pipe = Pipeline([("features", nk.NTKSketch(depth=1, seed=0)), ("ridge", nk.RidgeClassifier())])
    search = GridSearchCV(pipe, {"features__n_components": [32, 256]}, cv=3).fit(X, y)
    assert search.best_params_["features__n_components"] in (32, 256)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    # Everything is seeded (sketch, ridge split, unshuffled folds), so these are fixed numbers; the bound is far
    # below the ~0.95 that NTK features reach on digits and far above chance (0.1).
    assert search.score(Xt, yt) > 0.85
    assert search.best_estimator_.named_steps["features"].n_features_in_ == 64
    # set_params through the pipeline reaches the feature map, and the refit pipeline uses it
    pipe.set_params(features__n_components=48, ridge__fit_intercept=True)
    assert pipe.named_steps["features"].n_components == 48
    assert pipe.fit(X, y).named_steps["features"].n_features_out_ == 48


@pytest.mark.slow
def test_readme_grid_search_example_runs():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## scikit-learn: pipelines and grid search", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "GridSearchCV" in code and "NTKSketch" in code
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)   # noqa: S102 -- our own README's example
    assert namespace["search"].best_params_["features__n_components"] in (128, 512)
