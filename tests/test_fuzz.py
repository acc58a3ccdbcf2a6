"""Property-based fuzz of every public entry point (issue 15): the input contract of README "Conventions".

For each public function and estimator, hypothesis draws one array argument in many forms (dtypes int, bool,
float16/32/64, object, complex; C, Fortran, strided, reversed and read-only layouts; scipy.sparse formats with
unsorted and duplicate indices where sparse input is accepted; 0, 1 or a few rows; scales from 1e-300 to
1e300; NaN and inf at drawn positions) and, separately, bad and good parameter values.  The contract:

* the call raises a ValueError or TypeError whose message names the argument, or
* it returns a finite result equal, bit for bit, to the result for the same values given as a C-contiguous
  array of the working dtype (float32 stays float32, everything else float64; sparse input: canonical CSR);
* never another exception, a hang, a NaN, or a change to the caller's input.

Shapes are fixed per target (only the number of rows varies) so that numba compiles few signatures; the
examples are bounded (hypothesis profile ``ci``) so the file runs in well under a minute once compiled.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import ntk_sketch as ns

EXAMPLES = min(settings.default.max_examples, 25)
fuzz = settings(max_examples=EXAMPLES, deadline=None)

DTYPES = ["float64", "float32", "float16", "int64", "int32", "uint8", "bool", "object", "complex128"]
LAYOUTS = ["C", "F", "strided", "reversed", "readonly"]
SPARSE = ["csr", "csc", "coo", "lil", "noncanonical"]


# ------------------------------------------------------------------------------------------------ inputs
def _values(draw, shape, positive=False, cosines=False):
    """Float64 values of the given shape (before the dtype cast), at a drawn scale."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if cosines:
        return rng.uniform(-1.0, 1.0, shape)
    v = rng.standard_normal(shape)
    if positive:
        v = np.abs(v)
    if draw(st.booleans()):  # some exact zeros, including whole zero rows
        v[rng.random(shape) < 0.3] = 0.0
    scale = 10.0 ** draw(st.sampled_from([-300, -200, -150, -20, 0, 0, 0, 20, 150, 200, 300]))
    return v * scale


def _cast(v, dtype):
    with np.errstate(all="ignore"):
        if dtype in ("int64", "int32", "uint8"):  # small integers: the scale would only overflow the cast
            r = np.round(v / max(np.abs(v).max(initial=0.0), 1e-300) * 5)
            return (np.abs(r) if dtype == "uint8" else r).astype(dtype)
        if dtype == "bool":
            return v > 0
        return v.astype(object if dtype == "object" else dtype)


def _layout(a, layout):
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed":
        r = np.ascontiguousarray(a[::-1])
        return r[::-1]
    if layout == "readonly":
        a = np.array(a)
        a.flags.writeable = False
        return a
    return np.array(a)


def _poison(draw, a):
    """NaN or inf at a drawn position (float dtypes), or the array unchanged."""
    kind = draw(st.sampled_from([None, None, None, "nan", "inf", "-inf"]))
    if kind is None or a.size == 0 or a.dtype.kind not in "fc":
        return a, False
    a = np.array(a)
    flat = a.reshape(-1)
    flat[draw(st.integers(0, a.size - 1))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
    return a, True


@st.composite
def dense_inputs(draw, cols, n_rows=(0, 1, 3, 5), positive=False, cosines=False, fixed_rows=None):
    """(variant, reference or None, expect_error): reference = same values, C-contiguous, working dtype."""
    n = fixed_rows if fixed_rows is not None else draw(st.sampled_from(n_rows))
    shape = (n,) + tuple(cols)
    dtype = draw(st.sampled_from(DTYPES))
    a = _cast(_values(draw, shape, positive, cosines), dtype)
    a, poisoned = _poison(draw, a)
    variant = _layout(a, draw(st.sampled_from(LAYOUTS)))
    if dtype == "complex128":
        return variant, None, True
    # an object array holding numbers is read as float64 (scikit-learn's convention, check_dtype_object)
    working = np.float32 if dtype == "float32" else np.float64
    return variant, np.array(a, dtype=working, order="C"), poisoned


@st.composite
def sparse_inputs(draw, d, n_rows=(0, 1, 3, 5)):
    n = draw(st.sampled_from(n_rows))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool", "complex128"]))
    v = _values(draw, (n, d))
    if v.size:
        v[np.abs(v) < np.median(np.abs(v))] = 0.0
    a = np.asarray(_cast(v, dtype))
    fmt = draw(st.sampled_from(SPARSE))
    if fmt == "noncanonical":
        coo = sp.coo_matrix(a)
        r, c, x = coo.row, coo.col, coo.data
        if x.size and x.dtype.kind in "fc":  # split the first entry into two equal halves: a duplicate index
            x = np.concatenate([x, x[:1] / 2])
            x[0] = x[-1]
            r = np.concatenate([r, r[:1]])
            c = np.concatenate([c, c[:1]])
        order = np.lexsort((-c, r))  # every row's columns in decreasing order: unsorted indices
        indptr = np.searchsorted(r[order], np.arange(n + 1)).astype(np.int32)
        variant = sp.csr_matrix((x[order], c[order].astype(np.int32), indptr), shape=(n, d))
    else:
        variant = getattr(sp.csr_matrix(a), f"to{fmt}")()
    poisoned = False
    if fmt in ("csr", "csc", "noncanonical") and variant.nnz and variant.dtype.kind == "f" and draw(st.booleans()):
        variant.data[draw(st.integers(0, variant.nnz - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        poisoned = True
    if dtype == "complex128":
        return variant, None, True
    working = np.float32 if dtype == "float32" else np.float64
    return variant, sp.csr_matrix(variant.toarray().astype(working)), poisoned


def _snapshot(x):
    if sp.issparse(x):
        x = x.tocsr() if x.format in ("lil", "dok") else x
        parts = [getattr(x, k) for k in ("data", "indices", "indptr", "row", "col") if hasattr(x, k)]
        return [np.array(p, copy=True) for p in parts], x
    return [np.array(x, copy=True)], x


def _unchanged(snap):
    parts, x = snap
    now = [getattr(x, k) for k in ("data", "indices", "indptr", "row", "col") if hasattr(x, k)] if sp.issparse(x) \
        else [x]
    for a, b in zip(parts, now):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), "the caller's input was modified"


def _outputs(res):
    if isinstance(res, (list, tuple)):
        return [np.asarray(r) for r in res]
    return [np.asarray(res)]


def check_contract(f, variant, reference, expect_error, argname):
    """The contract of the module docstring for one call."""
    snap = _snapshot(variant)
    try:
        out = f(variant)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert argname in msg, f"the error does not name {argname!r}: {msg}"
        if not expect_error:  # a valid input may only fail when the reference fails the same way
            with pytest.raises(type(exc)):
                f(reference)
        _unchanged(snap)
        return
    _unchanged(snap)
    assert not expect_error, "invalid input (NaN / inf / object / complex) was accepted"
    ref = f(reference)
    for o, r in zip(_outputs(out), _outputs(ref)):
        assert np.all(np.isfinite(o)), "non-finite result"
        assert o.dtype == r.dtype and o.shape == r.shape
        np.testing.assert_array_equal(o, r)


# ------------------------------------------------------------------------------------------------ fixtures
_rng = np.random.default_rng(0)
Y3 = _rng.standard_normal((4, 3))
T_CS = ns.draw_countsketch(5, 8, 2, seed=0)
T_SRHT = ns.draw_srht(5, 8, seed=0)
T_TS = ns.draw_tensor_srht(5, 3, 8, seed=0)
T_POLY = ns.draw_polysketch(5, 8, 2, seed=0)
T_POLY_SRHT = ns.draw_polysketch(5, 8, 2, base="srht", seed=0)
X0 = _rng.standard_normal((6, 5))
IMG0 = _rng.random((2, 5, 5, 1))
Y_REG = _rng.standard_normal(5)
Y_CLS = np.array([0, 1, 0, 1, 1])


def _fit_transform(make):
    return lambda X: make().fit(X).transform(X)


def _ridge_reg(X):
    return ns.RidgeRegressor(lambdas=[1e-3, 1.0]).fit(X, Y_REG).predict(X)


def _ridge_cls(X):
    return ns.RidgeClassifier(lambdas=[1e-3, 1.0]).fit(X, Y_CLS).predict(X)


def _kernel_ridge(X):
    return ns.KernelRidgeRegressor(lambda A, B=None: ns.ntk_kernel(A, B, depth=1), lambdas=[1e-3, 1.0]).fit(
        X, Y_REG).predict(X)


def _mlp(X):
    return ns.MLPRegressor(width=4, max_epochs=3, batch_size=8, seed=0).fit(X, Y_REG).predict(X)


# name: (function of the fuzzed argument, argument name, columns, accepts sparse, extra options)
ROW_TARGETS = {
    "ntk_kernel[X1]": (lambda X: ns.ntk_kernel(X, depth=2), "X1", 3, False, {}),
    "ntk_kernel[X2]": (lambda X: ns.ntk_kernel(Y3, X, depth=1), "X2", 3, False, {}),
    "nngp_kernel[X1]": (lambda X: ns.nngp_kernel(X, Y3, depth=2), "X1", 3, False, {}),
    "apply_countsketch": (lambda X: ns.apply_countsketch(X, T_CS), "X", 5, True, {}),
    "CountSketch": (lambda X: ns.CountSketch(5, 8, s=2, seed=0).fit().transform(X), "X", 5, True, {}),
    "apply_srht": (lambda X: ns.apply_srht(X, T_SRHT), "X", 5, True, {}),
    "SRHT": (lambda X: ns.SRHT(5, 8, seed=0).fit().transform(X), "X", 5, True, {}),
    "apply_polysketch": (lambda X: ns.apply_polysketch(X, T_POLY), "X", 5, True, {}),
    "apply_polysketch[srht]": (lambda X: ns.apply_polysketch(X, T_POLY_SRHT), "X", 5, True, {}),
    "PolySketch": (lambda X: ns.PolySketch(5, 8, 2, seed=0).fit().transform(X), "X", 5, True, {}),
    "polynomial_features": (lambda X: ns.polynomial_features(X, [0.5, 0.3, 0.2], T_POLY), "X", 5, True, {}),
    "tensor_srht[X]": (lambda X: ns.tensor_srht(X, np.ones((X.shape[0], 3)), T_TS), "X", 5, False, {}),
    "TensorSRHT[Y]": (lambda Y: ns.TensorSRHT(5, 3, 8, seed=0).fit().transform(np.ones((Y.shape[0], 5)), Y), "Y", 3,
                      False, {}),
    "fwht": (lambda A: ns.fwht(A), "A", 8, False, {}),
    "NTKSketch": (_fit_transform(lambda: ns.NTKSketch(depth=2, n_components=16, seed=0)), "X", 5, True,
                  {"min_rows": 1}),
    "NTKSketch[single]": (_fit_transform(lambda: ns.NTKSketch(depth=2, n_components=16, variant="single", seed=0)),
                          "X", 5, True, {"min_rows": 1}),
    "NTKSketch[transform]": (lambda X: ns.NTKSketch(depth=1, n_components=16, seed=0).fit(X0).transform(X), "X", 5,
                             True, {}),
    "NTKRandomFeatures": (_fit_transform(lambda: ns.NTKRandomFeatures(depth=2, n_components=16, seed=0)), "X", 5,
                          True, {"min_rows": 1}),
    "NTKRandomFeatures[transform]": (
        lambda X: ns.NTKRandomFeatures(depth=1, n_components=16, seed=0).fit(X0).transform(X), "X", 5, True, {}),
    "NystromFeatures": (lambda X: ns.NystromFeatures(2, seed=0).fit(X0).transform(X), "X", 5, False, {}),
    "relative_frobenius_error[F]": (lambda F: ns.relative_frobenius_error(F, np.eye(5) + 1.0), "F", 3, False,
                                    {"rows": 5}),
    "spectral_epsilon[F]": (lambda F: ns.spectral_epsilon(F, np.eye(5) + 1.0, 0.1), "F", 3, False, {"rows": 5}),
    "entrywise_error_quantiles[F]": (lambda F: ns.entrywise_error_quantiles(F, np.eye(5) + 1.0), "F", 3, False,
                                     {"rows": 5}),
    "statistical_dimension[K]": (lambda K: ns.statistical_dimension(K, 0.1), "K", 5, False, {"rows": 5}),
    "RidgeRegressor": (_ridge_reg, "X", 3, False, {"rows": 5}),
    "RidgeClassifier": (_ridge_cls, "X", 3, False, {"rows": 5}),
    "KernelRidgeRegressor": (_kernel_ridge, "X", 3, False, {"rows": 5}),
    "MLPRegressor": (_mlp, "X", 3, False, {"rows": 5}),
}


@pytest.mark.parametrize("target", sorted(ROW_TARGETS))
@fuzz
@given(data=st.data())
def test_row_input_contract(target, data):
    f, argname, d, accepts_sparse, opts = ROW_TARGETS[target]
    rows = opts.get("rows")
    n_rows = tuple(n for n in (0, 1, 3, 5) if n >= opts.get("min_rows", 0))
    if accepts_sparse and data.draw(st.booleans()):
        variant, ref, bad = data.draw(sparse_inputs(d, n_rows=n_rows if rows is None else (rows,)))
    else:
        variant, ref, bad = data.draw(dense_inputs((d,), n_rows=n_rows, fixed_rows=rows))
    check_contract(f, variant, ref, bad, argname)


IMAGE_TARGETS = {
    "cntk_kernel[X1]": (lambda X: ns.cntk_kernel(X, depth=2, filter_size=3, padding="same"), "X1"),
    "cntk_kernel[X2]": (lambda X: ns.cntk_kernel(IMG0, X, depth=2, filter_size=2), "X2"),
    "cntk_normalisers": (lambda X: ns.cntk_normalisers(X, depth=2, filter_size=3), "X"),
    "CNTKSketch": (lambda X: ns.CNTKSketch(depth=2, n_components=16, pixel_dim=8, seed=0).fit(IMG0).transform(X),
                   "X"),
}


@pytest.mark.parametrize("target", sorted(IMAGE_TARGETS))
@fuzz
@given(data=st.data())
def test_image_input_contract(target, data):
    f, argname = IMAGE_TARGETS[target]
    variant, ref, bad = data.draw(dense_inputs((5, 5, 1), positive=True))
    check_contract(f, variant, ref, bad, argname)


@pytest.mark.parametrize("func", [ns.arccos_kernel_0, ns.arccos_kernel_1])
@fuzz
@given(data=st.data())
def test_cosine_input_contract(func, data):
    ndim_cols = data.draw(st.sampled_from([(), (3,), (2, 2)]))
    variant, ref, bad = data.draw(dense_inputs(ndim_cols, n_rows=(0, 1, 4), cosines=True))
    check_contract(func, variant, ref, bad, "a")


# ------------------------------------------------------------------------------------------------ parameters
BAD_OR_ODD = [None, True, False, -1, 0, 1, 2, 3, 2.5, np.nan, np.inf, -np.inf, "abc", "fit", "single", "srht",
              np.int64(2), np.float64(2.0), [1], (1, 2), 1e-3, 0.5, 16]

ESTIMATORS = {
    "NTKSketch": (lambda **kw: ns.NTKSketch(**{"n_components": 16, "seed": 0, **kw}), X0,
                  ["depth", "n_components", "degree", "polynomial", "variant", "sketch_dim", "normalize_layers",
                   "base", "chunk_size", "seed"]),
    "NTKRandomFeatures": (lambda **kw: ns.NTKRandomFeatures(**{"n_components": 16, "seed": 0, **kw}), X0,
                          ["depth", "n_components", "relu_fraction", "n_step_features", "sampling", "dtype",
                           "chunk_size", "seed"]),
    "CNTKSketch": (lambda **kw: ns.CNTKSketch(**{"n_components": 16, "pixel_dim": 8, "depth": 2, "seed": 0, **kw}),
                   IMG0, ["depth", "n_components", "filter_size", "padding", "degree", "polynomial", "fit_lower",
                          "pixel_dim", "patch_sketch", "renormalize", "fix_first", "fix_last", "nonnegative", "seed"]),
    "NystromFeatures": (lambda **kw: ns.NystromFeatures(**{"n_components": 3, "seed": 0, **kw}), X0,
                        ["n_components", "depth", "landmarks", "rls_lambda", "rls_oversample", "eig_cutoff",
                         "chunk_size", "seed"]),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@fuzz
@given(data=st.data())
def test_parameter_contract(name, data):
    make, X, params = ESTIMATORS[name]
    param = data.draw(st.sampled_from(params))
    value = data.draw(st.sampled_from(BAD_OR_ODD))
    snap = _snapshot(X)
    try:
        out = make(**{param: value}).fit(X).transform(X)
    except (ValueError, TypeError) as exc:
        assert param in str(exc), f"{param}={value!r}: the error does not name {param!r}: {exc}"
    else:
        assert np.all(np.isfinite(out)), f"{param}={value!r}: non-finite features"
    _unchanged(snap)


SKETCH_DRAWS = {
    "draw_countsketch": (lambda v: ns.draw_countsketch(5, 8, v, seed=0), "s"),
    "draw_srht[m]": (lambda v: ns.draw_srht(5, v, seed=0), "m"),
    "draw_tensor_srht[d2]": (lambda v: ns.draw_tensor_srht(5, v, 4, seed=0), "d2"),
    "draw_polysketch[degree]": (lambda v: ns.draw_polysketch(5, 4, v, seed=0), "degree"),
    "draw_polysketch[seed]": (lambda v: ns.draw_polysketch(5, 4, 2, seed=v), "seed"),
    "ntk_kernel[depth]": (lambda v: ns.ntk_kernel(X0, depth=v), "depth"),
    "cntk_kernel[filter_size]": (lambda v: ns.cntk_kernel(IMG0, depth=1, filter_size=v, fix_first=False), "filter_size"),
    "taylor_coefficients_k0": (lambda v: ns.taylor_coefficients_k0(v), "degree"),
    "taylor_truncation_error": (lambda v: ns.taylor_truncation_error("k1", v), "degree"),
    "cntk_grid_sizes": (lambda v: np.array(ns.cntk_grid_sizes(8, 8, 2, v, "valid")), "filter_size"),
    "spectral_epsilon[lam]": (lambda v: ns.spectral_epsilon(np.eye(3), np.eye(3), v), "lam"),
    "statistical_dimension[lam]": (lambda v: ns.statistical_dimension(np.eye(3), v), "lam"),
    "polynomial_features[coefficients]": (lambda v: ns.polynomial_features(X0, v, T_POLY), "coefficients"),
}


@pytest.mark.parametrize("name", sorted(SKETCH_DRAWS))
@fuzz
@given(value=st.sampled_from(BAD_OR_ODD + [np.array([0.1, 0.2, 0.3]), [1.0, -1.0, 0.0], [1.0, 2.0, 3.0]]))
def test_function_parameter_contract(name, value):
    f, param = SKETCH_DRAWS[name]
    try:
        out = f(value)
    except (ValueError, TypeError) as exc:
        assert param in str(exc), f"{param}={value!r}: the error does not name {param!r}: {exc}"
        return
    for o in _outputs(out if not hasattr(out, "_fields") else [a for a in out if isinstance(a, np.ndarray)]):
        if o.dtype.kind in "fc":
            assert np.all(np.isfinite(o)), f"{param}={value!r}: non-finite result"


# ------------------------------------------------------------------------------------------------ 0 rows
MAPS = [name for name, spec in ROW_TARGETS.items() if "rows" not in spec[4] and "min_rows" not in spec[4]]


@pytest.mark.parametrize("target", sorted(MAPS) + sorted(IMAGE_TARGETS))
def test_zero_rows_give_an_empty_result_for_every_map(target):
    # issue 15: 0-row input was an empty result for some maps and an error for others; now always empty
    if target in IMAGE_TARGETS:
        f, _ = IMAGE_TARGETS[target]
        outs = _outputs(f(np.zeros((0, 5, 5, 1))))
    else:
        f, _, d, accepts_sparse, _ = ROW_TARGETS[target]
        outs = _outputs(f(np.zeros((0, d))))
        if accepts_sparse:
            outs += _outputs(f(sp.csr_matrix((0, d))))
    for o in outs:
        assert o.size == 0 and o.ndim >= 2 and 0 in o.shape  # (0, m), or (n1, 0) for an empty X2
