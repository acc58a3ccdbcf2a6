"""Architecture screen within the CNTK-GAP family: test accuracy of CNTKSketch + ridge on a Fashion-MNIST subset for
each configuration (depth, filter size, padding, fixed or free first and last layers), all timed in one run.

Every configuration gets the same training and test images (the first --n-train training and the first --n-test test
images of the full Debian Fashion-MNIST when installed, else of the bundled subset), the same feature dimension m
(each of --m in turn; pixel_dim by CNTKSketch's default rule unless the configuration sets it) and the same learner
(RidgeClassifier, lam chosen on a seeded validation split of the training rows). Columns: accuracy, features time (fit
of the map, including its data polynomials, plus the train and test features, stored as float32), ridge time, and the
process's peak resident memory so far (``ru_maxrss``: it only grows, so a row's figure covers the rows above it). The
architectures differ in cost per image (depth and padding set the work per layer), so the time column is part of the
comparison.

    python benchmarks/bench_cntk_architectures.py                                   # the default grid, 2000/1000
    python benchmarks/bench_cntk_architectures.py --configs "3,4,valid,1,1;5,3,same,1,1" --n-train 5000

A configuration is ``depth,filter_size,padding,fix_first,fix_last[,degree[,pixel_dim[,patch_sketch]]]`` (fix flags
1/0; degree, pixel_dim and patch_sketch default to CNTKSketch's); --configs separates them with ';'.

    python benchmarks/bench_cntk_architectures.py --configs "4,5,same,1,1;4,5,same,1,1,3"   # degree 5 against 3
    # a saturation curve: one configuration at three m and two pixel_dim (m varies slowest)
    python benchmarks/bench_cntk_architectures.py --m 4096 8192 16384 --n-train 60000 --n-test 10000 \
        --configs "3,5,same,1,1,3,128,signed_sum;3,5,same,1,1,3,256,signed_sum"

--feature-cache DIR keeps each row's train and test features in DIR (float32 .npy files named by the configuration,
m, seed and sizes) and reads them back on a later run instead of recomputing them, whose features time column then
says 'cached': a ridge can be re-run on features that took most of an hour to make.

--lean is for feature dimensions whose features or D x D matrices do not fit in memory (m = 32768 on the full data:
9.2 GB of float32 features, 8.6 GB per float64 D x D matrix): the features go to --feature-cache batch by batch and
are read back in row blocks, and the ridge is ``fit_stream_lean`` (one D x D matrix; the same split, grid and
selection as RidgeClassifier).  --lambda-search coarse_to_fine evaluates every third lam of the grid and then the
best one's neighbours; --lambda-min L replaces the ridge's default grid (trace(F^T F) * logspace(-11, 0, 34), F centred)
by trace(F^T F) * logspace(log10 L, 0), three per decade, F not centred (the grid of the README's rows measured when
the default grid stopped at 1e-8: "--lambda-min 1e-11" there).

    python benchmarks/bench_cntk_architectures.py --configs "3,5,same,1,1,3,128,signed_sum" --m 32768 \
        --n-train 60000 --n-test 10000 --lean --lambda-search coarse_to_fine --feature-cache DIR
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import time

import numpy as np

from ntk_sketch import CNTKSketch, RidgeClassifier, datasets, fit_stream_lean

DEFAULT_GRID = ("3,3,valid,1,1;3,4,valid,1,1;3,3,same,1,1;3,4,same,1,1;3,5,same,1,1;4,3,same,1,1;5,3,same,1,1;"
                "6,3,same,1,1;8,3,same,1,1;5,4,same,1,1;5,3,same,0,0;5,3,same,1,0")


def load(n_train, n_test):
    try:
        X, y = datasets.load_fashion_mnist("train")
        Xt, yt = datasets.load_fashion_mnist("test")
        source = "Debian Fashion-MNIST"
    except Exception:  # the Debian package is missing: the bundled subset
        X, y = datasets.load_bundled_fashion_mnist("train")
        Xt, yt = datasets.load_bundled_fashion_mnist("test")
        source = "bundled Fashion-MNIST subset"
    X, y, Xt, yt = X[:n_train], y[:n_train], Xt[:n_test], yt[:n_test]
    if X.ndim == 3:
        X, Xt = X[..., None], Xt[..., None]
    return np.asarray(X, dtype=np.float64), y, np.asarray(Xt, dtype=np.float64), yt, source


def features(sk, X, batch=250):
    return np.concatenate([np.asarray(sk.transform(X[i:i + batch]), dtype=np.float32)
                           for i in range(0, X.shape[0], batch)])


def features_to_file(sk, X, path, batch=250):
    """Write the float32 features of X to the .npy file ``path`` batch by batch: only one batch is ever in memory.

    The batches go through an ordinary file handle (not a memory map), so they do not count in the resident memory.
    """
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(X.shape[0], sk.n_components))
    offset = mm.offset
    del mm
    with open(path, "r+b") as f:
        f.seek(offset)
        for i in range(0, X.shape[0], batch):
            f.write(np.ascontiguousarray(sk.transform(X[i:i + batch]), dtype=np.float32).tobytes())


def npy_row_chunks(path, y, batch=2048):
    """A re-iterable stream of (rows, labels) read from the .npy file ``path`` with ordinary reads (no memory map,
    so the rows read do not stay resident)."""
    mm = np.load(path, mmap_mode="r")
    shape, offset = mm.shape, mm.offset
    del mm

    def stream():
        with open(path, "rb") as f:
            f.seek(offset)
            for i in range(0, shape[0], batch):
                rows = min(batch, shape[0] - i)
                yield np.fromfile(f, dtype=np.float32, count=rows * shape[1]).reshape(rows, shape[1]), y[i:i + rows]

    return stream


def cached_features(cache, key, sk, X, Xt, *, in_memory=True):
    """(F, Ft, seconds or None): from ``cache`` when both files are there, else computed (and stored if cache).

    With ``in_memory=False`` (a cache is then needed) F and Ft are the two file paths: the features go to disk
    batch by batch and are never held whole.
    """
    if cache:
        paths = [os.path.join(cache, f"{key}_{part}.npy") for part in ("train", "test")]
        if all(os.path.exists(p) for p in paths):
            if not in_memory:
                return paths[0], paths[1], None
            return np.load(paths[0]), np.load(paths[1]), None
    t0 = time.perf_counter()
    sk.fit(X)
    if not in_memory:
        os.makedirs(cache, exist_ok=True)
        for p, A in zip(paths, (X, Xt)):
            features_to_file(sk, A, p + ".part")
            os.replace(p + ".part", p)   # a killed run leaves no file that looks complete
        return paths[0], paths[1], time.perf_counter() - t0
    F, Ft = features(sk, X), features(sk, Xt)
    seconds = time.perf_counter() - t0
    if cache:
        os.makedirs(cache, exist_ok=True)
        for p, A in zip(paths, (F, Ft)):
            np.save(p, A)
    return F, Ft, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=DEFAULT_GRID)
    ap.add_argument("--m", type=int, nargs="+", default=[2048], help="feature dimensions: every configuration at each")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--feature-cache", metavar="DIR", help="store the features here and reuse them on a later run")
    ap.add_argument("--lean", action="store_true",
                    help="never hold the features whole (they go to --feature-cache batch by batch) and fit the ridge "
                         "with fit_stream_lean (one D x D matrix in memory): for m = 32768 on the full data")
    ap.add_argument("--lambda-search", choices=("grid", "coarse_to_fine"), default="grid",
                    help="with --lean: every lam of the ridge's grid, or every third and then the best's neighbours")
    ap.add_argument("--lambda-min", type=float, default=None,
                    help="with --lean: instead of the ridge's default grid, lams from this times trace(F^T F) (F not "
                         "centred) up to the trace, three per decade")
    ap.add_argument("--features-only", action="store_true", help="compute (and cache) the features, fit no ridge")
    args = ap.parse_args(argv)
    if (args.lean or args.features_only) and not args.feature_cache:
        ap.error("--lean and --features-only need --feature-cache DIR (where the features are written)")
    if not args.lean and (args.lambda_search != "grid" or args.lambda_min is not None):
        ap.error("--lambda-search and --lambda-min set the lean ridge: add --lean")
    X, y, Xt, yt, source = load(args.n_train, args.n_test)
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{source}: {X.shape[0]} train / {Xt.shape[0]} test images, "
          f"CNTKSketch m = {' / '.join(map(str, args.m))}, seed {args.seed}; "
          f"load average at start {load_avg:.1f}")
    print(f"{'m':>6s} {'L':>2s} {'q':>2s} {'padding':>7s} {'fix':>5s} {'degree':>6s} {'pixel_dim':>9s} {'patch':>11s} "
          f"{'accuracy':>9s} {'features s':>10s} {'ridge s':>8s} {'peak RSS GB':>11s}")
    for m, cfg in itertools.product(args.m, args.configs.split(";")):
        fields = cfg.split(",")
        if len(fields) not in (5, 6, 7, 8):
            raise SystemExit(f"configuration {cfg!r}: expected depth,filter_size,padding,fix_first,fix_last"
                             f"[,degree[,pixel_dim[,patch_sketch]]]")
        L, q, padding, ff, fl = fields[:5]
        extra = {}
        if len(fields) > 5:
            extra["degree"] = int(fields[5])
        if len(fields) > 6:
            extra["pixel_dim"] = int(fields[6])
        if len(fields) > 7:
            extra["patch_sketch"] = fields[7]
        sk = CNTKSketch(int(L), m, filter_size=int(q), padding=padding, fix_first=ff == "1",
                        fix_last=fl == "1", seed=args.seed, **extra)
        key = (f"L{L}_q{q}_{padding}_fix{ff}{fl}_deg{sk.degree}_pd{extra.get('pixel_dim', 'auto')}_{sk.patch_sketch}"
               f"_m{m}_seed{args.seed}_n{X.shape[0]}_{Xt.shape[0]}")
        on_disk = args.lean or args.features_only
        F, Ft, t_feat = cached_features(args.feature_cache, key, sk, X, Xt, in_memory=not on_disk)
        if t_feat is None:   # the map was not fitted: its pixel_dim_ comes from a fit on a few images
            sk.fit(X[:2])
        t0 = time.perf_counter()
        if args.features_only:
            acc = float("nan")
        elif args.lean:
            stream = npy_row_chunks(F, y)
            lambdas = None
            if args.lambda_min is not None:   # trace(F^T F) (F not centred) times a grid from lambda_min to 1
                trace = sum(float(np.einsum("ij,ij->", Fc, Fc, dtype=np.float64)) for Fc, _ in stream())
                lambdas = trace * np.logspace(np.log10(args.lambda_min), 0.0,
                                              int(round(-3 * np.log10(args.lambda_min))) + 1)
            clf = fit_stream_lean(RidgeClassifier(lambdas, seed=args.seed), stream, lambda_search=args.lambda_search)
            print(f"  lean ridge: {len(clf.lambdas_)} lams evaluated, best {clf.best_lambda_:.4g}; validation accuracy "
                  + " ".join(f"{lam:.3g}:{s:.4f}" for lam, s in zip(clf.lambdas_, clf.validation_scores_)), flush=True)
            acc = float(np.mean(np.concatenate([clf.predict(Fc) for Fc, _ in npy_row_chunks(Ft, yt)()]) == yt))
        else:
            clf = RidgeClassifier(seed=args.seed).fit(F, y)
            acc = float(np.mean(clf.predict(Ft) == yt))
        t_ridge = time.perf_counter() - t0
        print(f"{m:6d} {L:>2s} {q:>2s} {padding:>7s} {ff + '/' + fl:>5s} {sk.degree:6d} {sk.pixel_dim_:9d} "
              f"{sk.patch_sketch:>11s} {acc:9.4f} {'cached' if t_feat is None else f'{t_feat:.1f}':>10s} "
              f"{t_ridge:8.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:11.2f}", flush=True)
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at end {load_avg:.1f}")


if __name__ == "__main__":
    main()
