"""PolySketch against scikit-learn's PolynomialCountSketch (TensorSketch) on scikit-learn's own acceptance-test setting.

Setting (scikit-learn's ``test_polynomial_count_sketch``): X, Y of shape (300, 50) with uniform entries, every row
divided by its sum (rows with a large mean); the kernel ``(gamma <x, y> + coef0)^degree`` between X and Y;
gamma in {0.1, 1, 2.5}, coef0 in {0, 2.5}, (degree, n_components) in {(1, 500), (2, 500), (3, 5000)}; the test
asserts a max entry error <= 0.1 and a mean absolute error <= 0.05.

Ours, at the same output dimension m = n_components: the degree-p block of a PolySketch of
``x' = [sqrt(gamma) x, sqrt(coef0)]`` (``<x', y'>^p`` is the kernel), with TensorSRHT or CountSketch-product
("TensorSketch") internal nodes and OSNAP (CountSketch) or SRHT leaves.  Each cell is the median over
``--seeds`` seeds of the max entry error (and of the mean absolute error), scikit-learn seeded the same way.
scikit-learn is needed only for this comparison (it is not a dependency of ntk_sketch).

Usage::

    python benchmarks/bench_polysketch_vs_sklearn.py            # 5 seeds
"""
from __future__ import annotations

import argparse

import numpy as np

from ntk_sketch.sketches.polysketch import PolySketch


def data():
    rng = np.random.RandomState(0)
    X = rng.random_sample(size=(300, 50))
    Y = rng.random_sample(size=(300, 50))
    return X / X.sum(axis=1)[:, None], Y / Y.sum(axis=1)[:, None]


def ours(X, Y, gamma, coef0, degree, m, seed, node, base):
    aug = lambda A: np.hstack([np.sqrt(gamma) * A, np.full((A.shape[0], 1), np.sqrt(coef0))])
    ps = PolySketch(X.shape[1] + 1, m, degree, base=base, node=node, seed=seed).fit()
    return ps.transform(aug(X))[:, degree - 1], ps.transform(aug(Y))[:, degree - 1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    from sklearn.kernel_approximation import PolynomialCountSketch
    from sklearn.metrics.pairwise import polynomial_kernel

    X, Y = data()
    variants = [("countsketch", "osnap"), ("countsketch", "srht"), ("tensor_srht", "osnap"), ("tensor_srht", "srht")]
    print(f"max |error| (mean |error|), median of {args.seeds} seeds; sklearn's test asserts max <= 0.1, mean <= 0.05")
    head = "gamma coef0 p     m   sklearn PCS        " + "  ".join(f"{n[:6]}/{b:5s}     " for n, b in variants)
    print(head)
    worst_ratio = 0.0
    for gamma in (0.1, 1.0, 2.5):
        for degree, m in ((1, 500), (2, 500), (3, 5000)):
            for coef0 in (0.0, 2.5):
                K = polynomial_kernel(X, Y, gamma=gamma, degree=degree, coef0=coef0)
                cells = []
                sk = []
                for s in range(args.seeds):
                    t = PolynomialCountSketch(n_components=m, gamma=gamma, coef0=coef0, degree=degree,
                                              random_state=42 + s)
                    E = np.abs(K - t.fit_transform(X) @ t.transform(Y).T)
                    sk.append((E.max(), E.mean()))
                sk_max, sk_mean = np.median(np.array(sk), axis=0)
                line = f"{gamma:5.1f} {coef0:5.1f} {degree:1d} {m:5d}   {sk_max:.4f} ({sk_mean:.4f})"
                for node, base in variants:
                    res = []
                    for s in range(args.seeds):
                        FX, FY = ours(X, Y, gamma, coef0, degree, m, 42 + s, node, base)
                        E = np.abs(K - FX @ FY.T)
                        res.append((E.max(), E.mean()))
                    mx, mn = np.median(np.array(res), axis=0)
                    if (node, base) == variants[0]:
                        worst_ratio = max(worst_ratio, mx / sk_max)
                    line += f"  {mx:.4f} ({mn:.4f})"
                print(line, flush=True)
    print(f"largest ratio of {variants[0][0]}/{variants[0][1]} max error to scikit-learn's: {worst_ratio:.2f}")


if __name__ == "__main__":
    main()
