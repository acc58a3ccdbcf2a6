"""Worker processes and threads (issue 15): the library must work in multiprocessing pools of every start method
after a parallel numba call in the parent, and from concurrent Python threads, with the same results.

Before the fix numba used its 'omp' threading layer (GNU OpenMP): a process forked after any parallel region
killed its children ("fork() called from a process already using GNU OpenMP") and ``Pool.map`` never returned.
ntk_sketch/__init__.py now selects numba's 'forksafe' layer (TBB if installed, else 'workqueue'), and every
parallel njit function takes a process-wide lock (_validation.serialised), because 'workqueue' aborts on parallel
regions launched concurrently from two threads.  Every pool call here has a timeout, so a regression fails
instead of hanging the test run.
"""
import multiprocessing as mp
import os
import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import ntk_sketch
from ntk_sketch import NTKRandomFeatures, apply_srht, cntk_kernel, draw_srht, ntk_kernel

TIMEOUT = 240  # seconds for a whole pool round trip, worker start-up (imports, cached compiles) included


def _work(seed):
    """Parallel numba paths of three modules; returns the arrays so that the parent can compare them bit for bit."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 6))  # 40 > 32 rows: the prange batch kernels, not the serial shortcut
    K = ntk_kernel(X, depth=2)
    S = apply_srht(X, draw_srht(6, 8, seed=seed))
    F = NTKRandomFeatures(depth=1, n_components=16, seed=seed).fit(X).transform(X)
    C = cntk_kernel(rng.random((2, 4, 4, 1)), depth=2, filter_size=2)
    return K, S, F, C


def _expected(seeds):
    return [_work(s) for s in seeds]


def test_threading_layer_is_fork_safe():
    _work(0)  # launches numba's threads
    layer = numba.threading_layer()
    if os.environ.get("NUMBA_THREADING_LAYER"):
        pytest.skip(f"the user chose NUMBA_THREADING_LAYER={os.environ['NUMBA_THREADING_LAYER']}")
    assert layer in ("tbb", "workqueue"), layer


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_after_a_parallel_call(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"start method {method} is not available on this platform")
    seeds = [1, 2, 3]
    expected = _expected(seeds)  # the parent has run parallel regions before the pool starts
    ctx = mp.get_context(method)
    # one worker for the start methods that launch a fresh interpreter (each costs an import of numba and scipy)
    with ctx.Pool(2 if method == "fork" else 1) as pool:
        got = pool.map_async(_work, seeds).get(timeout=TIMEOUT)
    for a, b in zip(got, expected):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


_THREADS_SCRIPT = textwrap.dedent("""
    import threading
    import numpy as np
    import sys
    sys.path.insert(0, {tests!r})
    from test_processes import _work

    seeds = list(range(6))
    expected = [_work(s) for s in seeds]
    results = [None] * len(seeds)
    errors = []

    def run(i):
        try:
            for _ in range(3):
                results[i] = _work(seeds[i])
        except Exception as exc:  # reported by the parent
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, exp in zip(results, expected):
        for u, v in zip(got, exp):
            assert np.array_equal(u, v)
    print("identical")
""")


def test_concurrent_threads_give_identical_results():
    # In a subprocess: a threading layer that is not thread-safe aborts the whole process, which must fail this
    # test, not take the test run down with it.
    script = _THREADS_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("identical")


def test_every_parallel_function_takes_the_lock():
    # numba releases the GIL inside a parallel region, and the 'workqueue' layer aborts the process when two
    # threads launch parallel regions at once: every parallel=True njit function must be wrapped by
    # _validation.serialised (the decorator line just above its @numba.njit).
    root = os.path.dirname(ntk_sketch.__file__)
    bare = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as fh:
                    lines = fh.read().splitlines()
                for k, line in enumerate(lines):
                    if line.startswith("@") and "parallel=True" in line and (k == 0 or lines[k - 1] != "@serialised"):
                        bare.append(f"{name}:{k + 1}")
    assert not bare, bare
