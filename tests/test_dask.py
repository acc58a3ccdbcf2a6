"""ntk_sketch.learn.dask_backend on a real dask.distributed.LocalCluster (2 worker processes, 1 thread each).

The Dask path must give what the in-memory path gives for the same seed: the features bit for bit for the same
rows (to the rounding of a dot product for the maps built on BLAS products, whose last bit depends on a row's
position in the call), the ridge coefficients up to the rounding of a different summation order (bound below), the same lam,
whatever the chunking -- also when a worker is killed in the middle of a fit (Dask recomputes the blocks it
held).  The fitted feature map must cross to each worker once per computation, not once per block.

Worker processes are started with the 'spawn' method (Dask's default, set explicitly here): a forked child of a
process that already ran numba's OpenMP threading layer can hang.  Each worker also gets
NUMBA_NUM_THREADS = OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = 1, so two single-threaded workers use the two cores
instead of oversubscribing them, and shares this process's NUMBA_CACHE_DIR, so the workers load the kernels
compiled here instead of compiling them again.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("dask.distributed")

from ntk_sketch import (  # noqa: E402
    CNTKSketch,
    NTKRandomFeatures,
    NTKSketch,
    NystromFeatures,
    RidgeClassifier,
    RidgeRegressor,
)
from ntk_sketch.learn import dask_backend as ndb  # noqa: E402

EPS = np.finfo(np.float64).eps


@pytest.fixture(scope="module")
def client():
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    if "NUMBA_CACHE_DIR" in os.environ:
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, env=env, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _rows(n=600, d=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    labels = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.4).astype(np.int64) + (X[:, 2] > 0.8)   # 3 classes
    target = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, labels, target


GEMM_MAPS = {"ntk_random_features", "nystrom"}  # built on BLAS products: equal to rounding (below)

CHUNKINGS = {
    "one": lambda n: (n,),
    "even": lambda n: (n // 6,) * 6,
    "uneven": lambda n: (1, 97, 13, n - 1 - 97 - 13 - 200, 200),
}


def _unpickles(client):
    return sum(client.run(ndb.unpickle_count).values())


# ---------------------------------------------------------------------------------------------- transform
FC_MAPS = {
    "ntk_sketch_layered": lambda: NTKSketch(depth=2, n_components=128, seed=1),
    "ntk_sketch_single": lambda: NTKSketch(depth=3, n_components=200, variant="single", seed=2),
    "ntk_random_features": lambda: NTKRandomFeatures(depth=2, n_components=160, seed=3),
    "nystrom": lambda: NystromFeatures(n_components=40, depth=2, seed=4),
}


@pytest.mark.parametrize("name", sorted(FC_MAPS))
@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
def test_transform_is_bit_for_bit_the_in_memory_one(client, name, chunking):
    X, _, _ = _rows()
    est = FC_MAPS[name]().fit(X)
    expected = est.transform(X)
    Xd = da.from_array(X, chunks=(CHUNKINGS[chunking](X.shape[0]), -1))
    before = _unpickles(client)
    got = ndb.transform(est, Xd).compute()
    shipped = _unpickles(client) - before
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if name in GEMM_MAPS:
        # OpenBLAS rounds a row's products differently by its position in the GEMM call (its micro-kernels treat
        # the rows of a tile tail in another order; measured: the same row differs in the last bit at position
        # 120 of a 128-row call and at position 20), so these maps agree to the rounding of dot products of length
        # <= 2048 (2048 eps ~ 5e-13, relative to the features' scale), not bit for bit
        assert np.max(np.abs(got - expected)) <= 1e-12 * np.max(np.abs(expected))
    else:
        assert np.array_equal(got, expected)
    # one copy of the model per worker at most (2), however many blocks (up to 6 here)
    assert shipped <= 2


def test_cntk_transform_on_images_chunked_by_rows(client):
    rng = np.random.default_rng(5)
    X = rng.random((40, 7, 7, 2))
    est = CNTKSketch(depth=2, n_components=64, degree=3, seed=6).fit(X)
    expected = est.transform(X)
    Xd = da.from_array(X, chunks=((3, 17, 20), -1, -1, -1))
    before = _unpickles(client)
    got = ndb.transform(est, Xd).compute()
    assert _unpickles(client) - before <= 2
    assert np.array_equal(got, expected)


def test_float32_features_stay_float32_and_equal(client):
    X, _, _ = _rows()
    X = X.astype(np.float32)
    est = NTKSketch(depth=2, n_components=128, seed=1).fit(X)
    got = ndb.transform(est, da.from_array(X, chunks=(100, -1))).compute()
    assert got.dtype == np.float32 and np.array_equal(got, est.transform(X))


def test_model_is_one_graph_key_not_one_per_block():
    # Graph-level check (no cluster needed): 30 blocks, the estimator object appears under a single key.
    X, _, _ = _rows(300)
    est = NTKSketch(depth=1, n_components=64, seed=0).fit(X)
    F = ndb.transform(est, da.from_array(X, chunks=(10, -1)))
    graph = dict(F.__dask_graph__())
    holders = [k for k, v in graph.items() if "ntk-sketch-NTKSketch" in str(k)]
    assert len(holders) == 1 and F.numblocks == (30, 1)


# ------------------------------------------------------------------------------------------- input errors
def test_split_columns_raise_a_clear_error():
    X, labels, _ = _rows()
    est = NTKSketch(depth=1, n_components=64, seed=0).fit(X)
    split = da.from_array(X, chunks=(100, 10))
    with pytest.raises(ValueError, match=r"X is split along axis 1.*rechunk\(\{1: -1\}\)"):
        ndb.transform(est, split)
    with pytest.raises(ValueError, match=r"F is split along axis 1"):
        ndb.fit(RidgeClassifier(), split, labels)
    images = da.from_array(np.random.default_rng(0).random((10, 7, 7, 2)), chunks=(5, 7, 3, 2))
    cntk = CNTKSketch(depth=2, n_components=32, degree=2, seed=0).fit((7, 7, 2))
    with pytest.raises(ValueError, match=r"X is split along axis 2"):
        ndb.transform(cntk, images)
    with pytest.raises(TypeError, match="must be a dask array"):
        ndb.transform(est, X)
    with pytest.raises(ValueError, match="has 600 rows but the features have 599"):
        ndb.fit(RidgeRegressor(), da.from_array(X[:599], chunks=(100, -1)), labels)


def test_core_imports_and_runs_without_dask():
    code = ("import sys; sys.modules['dask'] = None\n"
            "import numpy as np, ntk_sketch\n"
            "from ntk_sketch.learn import dask_backend\n"
            "F = ntk_sketch.NTKSketch(depth=1, n_components=32, seed=0).fit_transform(np.ones((3, 4)))\n"
            "try:\n"
            "    dask_backend.transform(None, None)\n"
            "except ImportError as e:\n"
            "    print('ok', F.shape, 'ntk_sketch[dask]' in str(e))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "ok (3, 32) True", out.stderr


# ---------------------------------------------------------------------------------------------------- ridge
def _coef_tolerance(learner):
    """Rounding bound for the coefficients of two fits that sum the same rows in different orders.

    Each entry of F^T F and F^T Y changes by at most ~ n eps |.| with the summation order; the solve of
    (G + lam I) w = B amplifies a relative perturbation by at most cond(G + lam I).  We allow 100 times
    cond * n * eps relative to the largest coefficient (cond from the fit's own spectrum).
    """
    full = learner._train.merged(learner._val)
    G = full.gram - (np.outer(full.col_sum, full.col_sum) / full.n_rows if learner.fit_intercept else 0.0)
    s = np.linalg.eigvalsh(0.5 * (G + G.T))
    cond = (s[-1] + learner.best_lambda_) / (max(s[0], 0.0) + learner.best_lambda_)
    return 100.0 * cond * full.n_rows * EPS * np.abs(learner.coef_).max()


def _assert_same_fit(got, ref):
    assert got.n_train_ == ref.n_train_ and got.n_validation_ == ref.n_validation_
    np.testing.assert_allclose(got.lambdas_, ref.lambdas_, rtol=1e-12)
    # the same lam: the same grid point (the grid itself is trace-relative, equal up to rounding)
    assert int(np.argmin(np.abs(got.lambdas_ - got.best_lambda_))) == \
        int(np.argmin(np.abs(ref.lambdas_ - ref.best_lambda_)))
    assert got.selection_ == ref.selection_
    if ref.validation_scores_ is not None:
        np.testing.assert_allclose(got.validation_scores_, ref.validation_scores_, rtol=1e-9, atol=1e-12)
    tol = _coef_tolerance(ref)
    assert np.abs(np.asarray(got.coef_) - np.asarray(ref.coef_)).max() <= tol
    assert np.abs(np.asarray(got.intercept_) - np.asarray(ref.intercept_)).max() <= tol * 10


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
def test_classifier_fit_equals_in_memory(client, chunking):
    X, labels, _ = _rows()
    est = NTKSketch(depth=2, n_components=128, seed=1).fit(X)
    F = est.transform(X)
    ref = RidgeClassifier(seed=7, solver="primal").fit(F, labels)
    assert ref.selection_ == "accuracy"
    Fd = ndb.transform(est, da.from_array(X, chunks=(CHUNKINGS[chunking](X.shape[0]), -1)))
    got = ndb.fit(RidgeClassifier(seed=7), Fd, labels, split_every=2)
    _assert_same_fit(got, ref)
    assert np.array_equal(ndb.predict(got, Fd).compute(), ref.predict(F))
    assert ndb.score(got, Fd, labels) == pytest.approx(ref.score(F, labels), abs=1e-12)


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
def test_regressor_fit_equals_in_memory(client, chunking):
    X, _, target = _rows()
    Y = np.column_stack([target, -2.0 * target + X[:, 3]])
    F = NTKRandomFeatures(depth=2, n_components=160, seed=3).fit_transform(X)
    Fd = da.from_array(F, chunks=(CHUNKINGS[chunking](X.shape[0]), -1))   # features already on the cluster
    for y in (target, Y) if chunking == "uneven" else (target,):
        ref = RidgeRegressor(seed=11, solver="primal").fit(F, y)
        y_dask = da.from_array(y, chunks=(250,) + y.shape[1:])   # other chunks than F: rechunked to match
        got = ndb.fit(RidgeRegressor(seed=11), Fd, y_dask)
        _assert_same_fit(got, ref)
        pred = ndb.predict(got, Fd).compute()
        assert pred.shape == ref.predict(F).shape
        np.testing.assert_allclose(pred, ref.predict(F), rtol=0, atol=1e-9 * np.abs(ref.predict(F)).max())
        assert ndb.score(got, Fd, y) == pytest.approx(ref.score(F, y), rel=1e-10)


def test_fixed_lambda_and_squared_error_selection(client):
    X, labels, target = _rows()
    F = NTKSketch(depth=1, n_components=96, variant="single", seed=0).fit_transform(X)
    Fd = da.from_array(F, chunks=((0, 150, 450), -1))   # an empty block is harmless, as in a stream
    ref = RidgeRegressor(lambdas=3.0, seed=1).fit_stream([(F, target)])
    got = ndb.fit(RidgeRegressor(lambdas=3.0, seed=1), Fd, target)
    assert got.best_lambda_ == 3.0 and got.n_validation_ == 0
    _assert_same_fit(got, ref)
    ref = RidgeClassifier(seed=2, selection="squared_error").fit(F, labels)
    got = ndb.fit(RidgeClassifier(seed=2, selection="squared_error"), Fd, labels)
    _assert_same_fit(got, ref)


# ------------------------------------------------------------------------------- a worker dies mid-fit
def _progress(dask_scheduler):
    """Per worker: the number of results it holds in memory; and whether any task is still running."""
    held = {addr: len(ws.has_what) for addr, ws in dask_scheduler.workers.items()}
    running = any(ts.state in ("processing", "waiting", "queued", "no-worker") for ts in dask_scheduler.tasks.values())
    return held, running


def test_worker_killed_mid_fit_gives_the_same_result(client):
    client.wait_for_workers(2, timeout=60)
    X, labels, _ = _rows(n=2000, d=20, seed=9)
    est = NTKSketch(depth=2, n_components=256, seed=3).fit(X)
    F = est.transform(X)
    ref = RidgeClassifier(seed=5, solver="primal").fit(F, labels)
    Fd = ndb.transform(est, da.from_array(X, chunks=(100, -1)))    # 20 blocks
    pids = client.run(os.getpid)
    result, errors = [], []

    def work():
        try:
            result.append(ndb.fit(RidgeClassifier(seed=5), Fd, labels, split_every=3))
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and thread.is_alive():
        held, running = client.run_on_scheduler(_progress)
        ready = [a for a, k in held.items() if k >= 2 and a in pids]
        if ready and running:
            victim = ready[0]
            os.kill(pids[victim], signal.SIGKILL)   # results held there are lost mid-computation
            break
        time.sleep(0.02)
    thread.join(timeout=120)
    assert victim is not None, "the fit ended before a worker held results; make the blocks slower"
    assert not errors, errors
    _assert_same_fit(result[0], ref)
    client.wait_for_workers(2, timeout=60)
    assert pids[victim] not in client.run(os.getpid).values()   # it really died (the nanny started a new one)
