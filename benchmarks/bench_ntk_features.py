"""Benchmark of the fully connected NTK feature maps: speed (rows per second) and accuracy (relative Frobenius
error against the exact NTK) on real rows.

Methods, timed in one run on the same rows:

* NTKSketch (Algorithm 1): variants 'layered' and 'single', polynomials 'fit' and 'taylor';
* NTKRF (Algorithm 2): leverage-score and Gaussian ReLU weights, float32 transform;
* the Gaussian arc-cosine random-features GEMM ``sqrt(2/m) relu(X W)`` (one matrix product and a ReLU, the
  NNGP features of a single layer) as a speed yardstick only.

Accuracy: ``|F F^T - K|_F / |K|_F`` on ``--n-error`` rows (default 1000) with K the exact NTK of the same depth,
median over ``--seeds`` seeds.  Speed: rows per second of ``transform`` on ``--n-speed`` rows, median of
``--repeats`` runs, compile excluded.  Data: Fashion-MNIST training rows (d = 784) from the Debian package
dataset-fashion-mnist, or the bundled subset if that is missing.

The authors' released PyTorch code, measured on these machines (2 threads, d = 784, L = 2, m = 8192): NTKSketch
0.089 at ~4,900 rows/s (degree 2), 0.049 at ~3,000 rows/s (degree 4); NTKRF 0.063 at 2,750 rows/s (float32)
after a 34 s fit.  Those figures are quoted, not run here.

Usage::

    python benchmarks/bench_ntk_features.py --depths 2 --ms 8192          # the headline comparison
    python benchmarks/bench_ntk_features.py                                # L in {1,2,3}, m in {1024,4096,16384}
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ntk_sketch.metrics import relative_frobenius_error
from ntk_sketch.kernels.ntk_exact import ntk_kernel
from ntk_sketch.features.ntk_random_features import NTKRandomFeatures
from ntk_sketch.features.ntk_sketch_fc import NTKSketch


def load_rows(n):
    from ntk_sketch import datasets

    try:
        X, _ = datasets.load_fashion_mnist("train", flatten=True)
        source = "Fashion-MNIST train"
    except Exception:  # the Debian package is missing: fall back to the bundled subset
        X, _ = datasets.load_bundled_fashion_mnist("train", flatten=True)
        source = "bundled Fashion-MNIST subset"
    if len(X) < n:
        X = np.concatenate([X] * (n // len(X) + 1))
    return np.ascontiguousarray(X[:n], dtype=np.float64), source


class ArcCosineGEMM:
    """sqrt(2/m) relu(X W), W Gaussian: the speed yardstick (one GEMM)."""

    def __init__(self, n_components, seed=0, dtype=np.float32):
        self.m, self.seed, self.dtype = n_components, seed, dtype

    def fit(self, X):
        self.W_ = np.random.default_rng(self.seed).standard_normal((X.shape[1], self.m)).astype(self.dtype)
        return self

    def transform(self, X):
        F = np.asarray(X, dtype=self.dtype) @ self.W_
        np.maximum(F, 0, out=F)
        F *= np.sqrt(2.0 / self.m)
        return F


def methods(depth, m, degree):
    out = []
    for variant in ("single", "layered"):
        for poly in ("fit", "taylor"):
            out.append((f"NTKSketch {variant} {poly} p={degree}", np.float64,
                        lambda s, v=variant, p=poly: NTKSketch(depth, m, degree=degree, polynomial=p, variant=v, seed=s)))
    for sampling in ("leverage", "gaussian"):
        out.append((f"NTKRF {sampling} (float32)", np.float32,
                    lambda s, sa=sampling: NTKRandomFeatures(depth, m, sampling=sa, seed=s)))
    out.append(("arc-cosine GEMM yardstick (float32)", np.float32, lambda s: ArcCosineGEMM(m, s)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="1,2,3", help="comma list of depths L (default 1,2,3)")
    parser.add_argument("--ms", default="1024,4096,16384", help="comma list of feature dimensions m")
    parser.add_argument("--degree", type=int, default=4, help="NTKSketch polynomial degree (default 4)")
    parser.add_argument("--n-error", type=int, default=1000, help="rows for the error against the exact NTK")
    parser.add_argument("--n-speed", type=int, default=4000, help="rows timed for rows/s")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the median error (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats for rows/s (default 3)")
    parser.add_argument("--only", default="", help="substring filter on method names")
    args = parser.parse_args(argv)
    depths = [int(v) for v in args.depths.split(",")]
    ms = [int(v) for v in args.ms.split(",")]
    X, source = load_rows(max(args.n_error, args.n_speed))
    X_err = X[:args.n_error]
    print(f"data: {source}, d = {X.shape[1]}; error on {args.n_error} rows (median of {args.seeds} seeds), "
          f"speed on {args.n_speed} rows (median of {args.repeats})")
    print(f"{'L':>2s} {'m':>6s}  {'method':40s} {'rel. error':>10s} {'rows/s':>9s} {'fit s':>7s} {'vs GEMM':>8s}")
    for L in depths:
        K = ntk_kernel(X_err, depth=L)
        for m in ms:
            rows = []
            for name, dtype, make in methods(L, m, args.degree):
                if args.only and args.only not in name and "yardstick" not in name:
                    continue
                errs, fit_times = [], []
                for s in range(args.seeds):
                    t0 = time.perf_counter()
                    fm = make(s).fit(X_err.astype(dtype))
                    fit_times.append(time.perf_counter() - t0)
                    if "yardstick" not in name:
                        errs.append(relative_frobenius_error(fm.transform(X_err.astype(dtype)), K))
                Xs = X[:args.n_speed].astype(dtype)
                fm.transform(Xs[:64])  # compile / warm up
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    fm.transform(Xs)
                    times.append(time.perf_counter() - t0)
                rate = args.n_speed / float(np.median(times))
                rows.append((name, float(np.median(errs)) if errs else float("nan"), rate, float(np.median(fit_times))))
            gemm_rate = [r for r in rows if "yardstick" in r[0]][0][2]
            for name, err, rate, fit_s in rows:
                print(f"{L:2d} {m:6d}  {name:40s} {err:10.4f} {rate:9.0f} {fit_s:7.2f} {rate / gemm_rate:8.2f}")


if __name__ == "__main__":
    main()
