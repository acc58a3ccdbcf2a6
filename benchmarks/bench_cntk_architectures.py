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
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import time

import numpy as np

from ntk_sketch import CNTKSketch, RidgeClassifier, datasets

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


def cached_features(cache, key, sk, X, Xt):
    """(F, Ft, seconds or None): from ``cache`` when both files are there, else computed (and stored if cache)."""
    if cache:
        paths = [os.path.join(cache, f"{key}_{part}.npy") for part in ("train", "test")]
        if all(os.path.exists(p) for p in paths):
            return np.load(paths[0]), np.load(paths[1]), None
    t0 = time.perf_counter()
    sk.fit(X)
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
    args = ap.parse_args(argv)
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
        F, Ft, t_feat = cached_features(args.feature_cache, key, sk, X, Xt)
        if t_feat is None:   # the map was not fitted: its pixel_dim_ comes from a fit on a few images
            sk.fit(X[:2])
        t0 = time.perf_counter()
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
