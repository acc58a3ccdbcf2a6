"""Baselines at equal feature dimension: Nystrom NTK features (uniform / ridge-leverage landmarks) + ridge, a
trained ReLU MLP with the same number of trainable weights, and exact NTK kernel ridge, on Fashion-MNIST.

All methods run in this one process, on the same data; lambda is chosen on a validation split of the training set
only.  Times are medians over --repeats runs (seeds 0, 1, ...); accuracies are medians over the same runs.  The
MLP gets ``n_params = m * C`` (the weight count of a ridge model on m features with C classes), and a second MLP
row gets the wall time of the Nystrom-uniform pipeline at that m ("equal time").

    python benchmarks/bench_learning.py                      # bundled 2000 + 1000 subset, m = 256 1024
    python benchmarks/bench_learning.py --data debian --n-train 5000 --dims 512 2048 --repeats 3
"""
import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntk_sketch.datasets import load_bundled_fashion_mnist, load_fashion_mnist  # noqa: E402
from ntk_sketch.mlp import MLPClassifier  # noqa: E402
from ntk_sketch.ntk_exact import ntk_kernel  # noqa: E402
from ntk_sketch.nystrom import NystromFeatures  # noqa: E402
from ntk_sketch.ridge import KernelRidgeClassifier, RidgeClassifier  # noqa: E402


def load(args):
    if args.data == "bundled":
        X, y = load_bundled_fashion_mnist("train", flatten=True)
        Xt, yt = load_bundled_fashion_mnist("test", flatten=True)
    else:
        X, y = load_fashion_mnist("train", flatten=True)
        Xt, yt = load_fashion_mnist("test", flatten=True)
    rng = np.random.default_rng(12345)
    tr = rng.permutation(X.shape[0])[: args.n_train]
    te = rng.permutation(Xt.shape[0])[: args.n_test]
    return X[tr], y[tr], Xt[te], yt[te]


def run_nystrom(X, y, Xt, yt, m, depth, landmarks, seed):
    t0 = time.perf_counter()
    nf = NystromFeatures(m, depth=depth, landmarks=landmarks, seed=seed).fit(X)
    model = RidgeClassifier(seed=seed).fit(nf.transform(X), y)
    acc = model.score(nf.transform(Xt), yt)
    return time.perf_counter() - t0, acc


def run_mlp(X, y, Xt, yt, n_params, seed, max_time=None):
    t0 = time.perf_counter()
    model = MLPClassifier(n_params=n_params, seed=seed, max_time=max_time).fit(X, y)
    return time.perf_counter() - t0, model.score(Xt, yt), model.width_


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["bundled", "debian"], default="bundled")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--dims", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    X, y, Xt, yt = load(args)
    C = np.unique(y).size
    print(f"Fashion-MNIST ({args.data}), n_train={X.shape[0]}, n_test={Xt.shape[0]}, NTK depth {args.depth}, "
          f"medians over {args.repeats} runs")

    times, accs = [], []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        krr = KernelRidgeClassifier(functools.partial(ntk_kernel, depth=args.depth), seed=seed).fit(X, y)
        accs.append(krr.score(Xt, yt))
        times.append(time.perf_counter() - t0)
    t_exact, a_exact = float(np.median(times)), float(np.median(accs))
    print(f"{'method':34s} {'m':>6s} {'time s':>8s} {'time/exact':>10s} {'test acc':>9s}")
    print(f"{'exact NTK kernel ridge':34s} {'-':>6s} {t_exact:8.2f} {1.0:10.2f} {a_exact:9.4f}")
    for m in args.dims:
        rows = {}
        for landmarks in ("uniform", "rls"):
            res = [run_nystrom(X, y, Xt, yt, m, args.depth, landmarks, s) for s in range(args.repeats)]
            rows[f"Nystrom NTK ({landmarks}) + ridge"] = (np.median([r[0] for r in res]), np.median([r[1] for r in res]))
        t_uniform = rows["Nystrom NTK (uniform) + ridge"][0]
        res = [run_mlp(X, y, Xt, yt, m * C, s) for s in range(args.repeats)]
        width = res[0][2]
        rows[f"MLP, {m}x{C} params (w={width})"] = (np.median([r[0] for r in res]), np.median([r[1] for r in res]))
        res = [run_mlp(X, y, Xt, yt, m * C, s, max_time=t_uniform) for s in range(args.repeats)]
        rows[f"MLP, same params, time<=Nystrom"] = (np.median([r[0] for r in res]), np.median([r[1] for r in res]))
        for name, (t, a) in rows.items():
            print(f"{name:34s} {m:6d} {t:8.2f} {t / t_exact:10.2f} {a:9.4f}")


if __name__ == "__main__":
    main()
