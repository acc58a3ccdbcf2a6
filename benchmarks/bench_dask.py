"""Dask backend at scale: NTKSketch (m = 4096) + ridge on up to one million rows, CNTKSketch + ridge on images.

Rows: Fashion-MNIST training images (the Debian package ``dataset-fashion-mnist`` if installed, else the
bundled 2000-image subset) repeated with a small seeded jitter: row r is image ``r mod N`` plus Gaussian noise
of standard deviation 0.02, clipped to [0, 1], the noise drawn from ``default_rng([seed, first row of its
block])``, so every block is generated on a worker from the (uint8) base images shipped once, and the
single-process path regenerates exactly the same rows block by block.

For each size the script reports, on a ``LocalCluster`` of ``--workers`` single-threaded worker processes:
the total time of transform + ridge fit (features never leave the workers; the D x D moments are
tree-reduced), the peak resident memory of each worker (sampled every 0.5 s), and, for the sizes listed in
``--single``, the same pipeline in this one process (``transform`` + ``partial_fit`` per block +
``finalize``) with its time and the largest coefficient difference between the two fits.

The classifier selects lam by validation squared error (one pass over the rows); accuracy selection would
read the validation rows a second time.

``--split-every`` is the fan-in of the moments' tree reduction (default 2, ``dask_backend.fit``'s default); the
pending D x D partial sums it leaves on the workers are what sets their peak memory (README, Scale section).

The figures in the README (2 shared cores)::

    python benchmarks/bench_dask.py --m 4096 --rows 250000 500000 1000000 --single 250000 --cntk-images 0 --split-every 4
    python benchmarks/bench_dask.py --m 4096 --rows 250000 1000000 --single --cntk-images 0 --split-every 2
    python benchmarks/bench_dask.py --m 1024 --rows --single --cntk-images 1000 --cntk-block 50
"""
from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import threading
import time

import numpy as np


def _base_images(prefer_full=True):
    from ntk_sketch.datasets import DataNotAvailableError, load_bundled_fashion_mnist, load_fashion_mnist

    try:
        if not prefer_full:
            raise DataNotAvailableError("bundled requested")
        X, y = load_fashion_mnist("train", dtype=np.float64)
        source = "Fashion-MNIST train (60000 images, dataset-fashion-mnist)"
    except DataNotAvailableError:
        X, y = load_bundled_fashion_mnist("train", dtype=np.float64)
        source = "bundled Fashion-MNIST subset (2000 images)"
    return np.round(X * 255).astype(np.uint8), y.astype(np.int64), source


def make_rows(base, start, stop, seed, flatten):
    """Rows start..stop-1 of the jittered set (images r mod N plus seeded noise), float64."""
    n_base = base.shape[0]
    idx = np.arange(start, stop) % n_base
    X = base[idx].astype(np.float64) / 255.0
    rng = np.random.default_rng([seed, start])
    X += 0.02 * rng.standard_normal(X.shape)
    np.clip(X, 0.0, 1.0, out=X)
    return X.reshape(X.shape[0], -1) if flatten else X


def _gen_block(shipped_base, start, stop, seed, flatten):
    return make_rows(shipped_base.obj, start, stop, seed, flatten)


def _bounds(n, block):
    starts = list(range(0, n, block))
    return [(a, min(a + block, n)) for a in starts]


class PeakMemory:
    """Samples every worker's resident memory (psutil, via Client.run) in a background thread."""

    def __init__(self, client, period=0.5):
        self.client, self.period = client, period
        self.peak = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _rss():
        import psutil
        return psutil.Process().memory_info().rss

    def _loop(self):
        while not self._stop.is_set():
            try:
                for addr, rss in self.client.run(self._rss).items():
                    self.peak[addr] = max(self.peak.get(addr, 0), rss)
            except Exception:   # a worker restarting; sample again
                pass
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_dask(client, est, learner, base, labels, n, block, seed, flatten, split_every):
    import dask
    import dask.array as da

    from ntk_sketch.learn import dask_backend as ndb

    shipped_base = ndb._ship(base, "base-images")
    shape = (base.shape[1] * base.shape[2] * base.shape[3],) if flatten else base.shape[1:]
    parts = [da.from_delayed(dask.delayed(_gen_block, pure=True)(shipped_base, a, b, seed, flatten),
                             shape=(b - a,) + tuple(shape), dtype=np.float64)
             for a, b in _bounds(n, block)]
    X = da.concatenate(parts, axis=0)
    y = labels[np.arange(n) % labels.size]
    with PeakMemory(client) as mem:
        t0 = time.perf_counter()
        F = ndb.transform(est, X)
        ndb.fit(learner, F, y, split_every=split_every)
        total = time.perf_counter() - t0
    return total, sorted(mem.peak.values())


def warm_up(client, est, base, block, seed, flatten):
    """Not timed: every worker (and this process) loads the compiled kernels on a few small blocks."""
    import dask.array as da

    from ntk_sketch.learn import dask_backend as ndb

    X = make_rows(base, 0, 4 * min(block, 64), seed, flatten)
    est.transform(X[:2])
    ndb.transform(est, da.from_array(X, chunks=(min(block, 64),) + X.shape[1:])).compute()


def run_single(est, learner, base, labels, n, block, seed, flatten):
    import resource

    t0 = time.perf_counter()
    for a, b in _bounds(n, block):
        X = make_rows(base, a, b, seed, flatten)
        learner.partial_fit(est.transform(X), labels[np.arange(a, b) % labels.size])
    learner.finalize()
    total = time.perf_counter() - t0
    return total, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _same_lam(a, b):
    """The same point of the lam grid (the grids are trace-relative, so equal only up to rounding)."""
    return int(np.argmin(np.abs(a.lambdas_ - a.best_lambda_))) == int(np.argmin(np.abs(b.lambdas_ - b.best_lambda_)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--single", type=int, nargs="*", default=[250_000],
                        help="sizes also run in one process (same rows) for the throughput ratio")
    parser.add_argument("--block", type=int, default=4096, help="rows per block (dask chunk)")
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--variant", default="single", choices=["single", "layered"])
    parser.add_argument("--cntk-images", type=int, default=1000)
    parser.add_argument("--cntk-block", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--split-every", type=int, default=2, help="fan-in of the moments' tree reduction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundled", action="store_true", help="use the bundled 2000-image subset")
    args = parser.parse_args()

    from dask.distributed import Client, LocalCluster

    from ntk_sketch import CNTKSketch, NTKSketch, RidgeClassifier

    base, labels, source = _base_images(prefer_full=not args.bundled)
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if "NUMBA_CACHE_DIR" in os.environ:
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=env, silence_logs=40, memory_limit=0)
    client = Client(cluster)
    print(f"data: {source}; cluster: {args.workers} worker processes x 1 thread; block {args.block} rows; "
          f"split_every {args.split_every}")
    print(f"cpu cores: {os.cpu_count()}; load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")

    flat = base.reshape(base.shape[0], -1).astype(np.float64) / 255.0
    est = NTKSketch(depth=2, n_components=args.m, variant=args.variant, seed=args.seed).fit(flat[:100])
    D = est.n_features_out_
    print(f"NTKSketch(depth=2, n_components={args.m}, variant={args.variant!r}): D = {D}; "
          f"pickled model {len(pickle.dumps(est)) / 2**20:.1f} MiB; base images {base.nbytes / 2**20:.1f} MiB; "
          f"one D x D moment {D * D * 8 / 2**20:.0f} MiB")
    warm_up(client, est, base, args.block, args.seed, True)
    print()
    print("| path | rows | total s | rows/s | peak RSS per worker (MiB) | load (1 min) |")
    print("|---|---:|---:|---:|---|---:|")
    fits = {}
    for n in args.rows:
        learner = RidgeClassifier(seed=args.seed, selection="squared_error")
        t, peaks = run_dask(client, est, learner, base, labels, n, args.block, args.seed, True,
                            args.split_every)
        fits[n] = learner
        load = os.getloadavg()[0]
        print(f"| dask | {n} | {t:.0f} | {n / t:.0f} | {', '.join(f'{p / 2**20:.0f}' for p in peaks)} | {load:.1f} |",
              flush=True)
    for n in args.single:
        learner = RidgeClassifier(seed=args.seed, selection="squared_error")
        t, rss = run_single(est, learner, base, labels, n, args.block, args.seed, True)
        load = os.getloadavg()[0]
        print(f"| one process | {n} | {t:.0f} | {n / t:.0f} | (process peak {rss / 2**20:.0f}) | {load:.1f} |",
              flush=True)
        if n in fits:
            diff = np.abs(fits[n].coef_ - learner.coef_).max() / np.abs(learner.coef_).max()
            print(f"  same rows, dask vs one process: same lam {_same_lam(fits[n], learner)}, "
                  f"max relative coefficient difference {diff:.1e}")

    if args.cntk_images:
        n = args.cntk_images
        cest = CNTKSketch(depth=3, n_components=args.m, nonnegative=True, seed=args.seed).fit(base.shape[1:])
        print()
        print(f"CNTKSketch(depth=3, n_components={args.m}) on {n} jittered images, block {args.cntk_block}")
        print("| path | images | total s | images/s | peak RSS per worker (MiB) | load (1 min) |")
        print("|---|---:|---:|---:|---|---:|")
        warm_up(client, cest, base, args.cntk_block, args.seed, False)
        learner = RidgeClassifier(seed=args.seed, selection="squared_error")
        t, peaks = run_dask(client, cest, learner, base, labels, n, args.cntk_block, args.seed, False,
                            args.split_every)
        print(f"| dask | {n} | {t:.0f} | {n / t:.1f} | {', '.join(f'{p / 2**20:.0f}' for p in peaks)} | "
              f"{os.getloadavg()[0]:.1f} |", flush=True)
        single = RidgeClassifier(seed=args.seed, selection="squared_error")
        t, rss = run_single(cest, single, base, labels, n, args.cntk_block, args.seed, False)
        print(f"| one process | {n} | {t:.0f} | {n / t:.1f} | (process peak {rss / 2**20:.0f}) | "
              f"{os.getloadavg()[0]:.1f} |")
        diff = np.abs(single.coef_ - learner.coef_).max() / np.abs(single.coef_).max()
        print(f"  dask vs one process: same lam {_same_lam(single, learner)}, "
              f"max relative coefficient difference {diff:.1e}")
    print(f"\nload after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
