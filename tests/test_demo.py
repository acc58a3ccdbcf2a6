"""End-to-end tests of the demo (``python -m ntk_sketch demo``) on a reduced size of the bundled data."""
import io
import subprocess
import sys

import numpy as np
import pytest

from ntk_sketch import demo
from ntk_sketch.__main__ import main as cli_main

# Reduced run: the --quick sizes (300 train / 200 test, m = 512) with a 10 + 10 image exact-CNTK subset so the
# exact CNTK (a few ms per image pair) costs about 155 pairs.
ARGS = ["--quick", "--quiet", "--exact-cntk-n-train", "10", "--exact-cntk-n-test", "10"]


@pytest.fixture(scope="module")
def quick_run():
    cfg = demo.parse_args(ARGS)
    out = io.StringIO()
    rows = demo.run_demo(cfg, out=out)
    return cfg, rows, out.getvalue()


def _parse_table(text):
    """Rows of the printed table as {method: [dim, n_train, n_test, features, fit, acc]}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("method"))
    table = {}
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith(("note:", "total wall time")):
            break
        # The method name may contain spaces; the last six fields are the numeric columns.
        parts = line.split()
        table[" ".join(parts[:-6])] = parts[-6:]
    return table


def test_demo_table_has_every_available_method(quick_run):
    cfg, rows, text = quick_run
    table = _parse_table(text)
    expected = []
    for key in cfg.methods:
        method = demo.METHODS[key]
        ok, _ = demo.method_available(method)
        label = method.label(cfg)
        if ok:
            expected.append(label)
        else:
            # A method whose module is not installed is skipped with a note, not an error.
            assert f"note: {label}: skipped" in text
    printed = list(table)
    assert len(printed) == len(rows)
    for label in expected:
        assert any(name.startswith(label[:-1]) for name in printed), (label, printed)
    assert "total wall time" in text


def test_demo_sizes_and_dimensions(quick_run):
    cfg, rows, _ = quick_run
    by_label = {r.method: r for r in rows}
    for key in ("ntkrf", "ntk-sketch", "cntk-sketch"):  # m = 512 under --quick
        label = demo.METHODS[key].label(cfg)
        if label in by_label:
            assert by_label[label].dim == "512"
            assert (by_label[label].n_train, by_label[label].n_test) == (300, 200)
    nys = by_label[demo.METHODS["nystrom"].label(cfg)]
    assert nys.dim == str(min(512, 300))           # Nystrom has at most n_train landmarks
    cntk = by_label[demo.METHODS["cntk-exact"].label(cfg)]
    assert (cntk.n_train, cntk.n_test) == (10, 10)
    assert 0.0 <= cntk.accuracy <= 1.0            # 10 test images: too few for any accuracy claim
    for r in rows:
        assert r.fit_s >= 0 and (r.feature_s is None or r.feature_s >= 0)


def test_demo_accuracies_well_above_chance(quick_run):
    # 10 classes, 200 test images: chance is 0.1.  At this size the kernel methods reach 0.64-0.76 (runs with
    # several seeds), so 0.45 is far below them: with true accuracy p >= 0.6 the binomial probability of
    # measuring < 0.45 on 200 images is below 1e-5 (z > 4.3); and a broken method at chance level reaches 0.45
    # with probability < 1e-30 (Bin(200, 0.1) >= 90).  The MLP has only m*C = 5120 parameters (width 6), which
    # reaches about 0.4-0.6 here: the bound 0.25 still excludes chance (P[Bin(200, 0.1) >= 50] < 1e-8).
    cfg, rows, _ = quick_run
    cntk_exact = demo.METHODS["cntk-exact"].label(cfg)
    for r in rows:
        if r.method == cntk_exact or r.n_test < 200:
            continue
        bound = 0.25 if r.method.startswith("MLP") else 0.45
        assert r.accuracy > bound, (r.method, r.accuracy)


def test_missing_method_is_skipped_with_a_note(monkeypatch):
    ghost = demo.Method("ghost", "features", False, lambda c: "Ghost features", lambda c: None,
                        ("module_that_does_not_exist", "Ghost"))
    monkeypatch.setitem(demo.METHODS, "ghost", ghost)
    cfg = demo.parse_args(["--quick", "--quiet", "--methods", "ghost,ntk-exact", "--n-train", "100",
                           "--n-test", "50"])
    out = io.StringIO()
    rows = demo.run_demo(cfg, out=out)
    assert [r.method for r in rows] == [demo.METHODS["ntk-exact"].label(cfg)]
    assert "note: Ghost features: skipped" in out.getvalue()


def test_quick_defaults_yield_to_explicit_options():
    cfg = demo.parse_args(["--quick", "--n-train", "123", "-m", "64"])
    assert cfg.n_train == 123 and cfg.n_components == 64 and cfg.n_test == demo._QUICK["n_test"]
    cfg = demo.parse_args([])
    assert cfg.n_train is None and cfg.n_components == 2048 and cfg.methods == list(demo.METHODS)


@pytest.mark.parametrize("bad", [["--methods", "ntkrf,nope"], ["--methods", ","], ["--depth", "0"],
                                 ["--dataset", "cifar"]])
def test_bad_options_exit_with_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as info:
        demo.parse_args(bad)
    assert info.value.code == 2


@pytest.mark.parametrize("bad,what", [
    (["--seed", "-1"], "--seed"), (["-m", "1"], "--n-components"),
    (["--padding", "valid", "--filter-size", "30"], "--filter-size 30"),
    (["--cntk-depth", "1"], "--cntk-depth"), (["--n-train", "1"], "--n-train"), (["--seed", "x"], "--seed"),
    (["--dataset", "digits", "--padding", "valid", "--filter-size", "4"], "8 x 8"),
    (["--padding", "full"], "--padding"),
])
def test_values_argparse_used_to_accept_are_one_line_errors(bad, what, capsys):
    # issue 15: these values passed argparse and ended in a Python traceback (exit 1) inside the run
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--quick", "--quiet"] + bad)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert what in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_filter_size_check_applies_only_when_a_cntk_method_runs():
    cfg = demo.parse_args(["--filter-size", "30", "--methods", "ntkrf"])
    assert cfg.filter_size == 30
    cfg = demo.parse_args(["--padding", "valid", "--filter-size", "30", "--methods", "ntkrf"])
    assert cfg.filter_size == 30


def test_filter_size_check_applies_only_to_valid_padding():
    # 'same' layers keep the grid, so any filter fits; 'valid' ones need depth (q - 1) + 1 pixels
    cfg = demo.parse_args(["--filter-size", "30", "--padding", "same"])
    assert cfg.filter_size == 30 and cfg.padding == "same"
    with pytest.raises(SystemExit):
        demo.parse_args(["--filter-size", "30", "--padding", "valid"])


def test_cntk_defaults_reach_the_feature_map_and_the_exact_kernel():
    cfg = demo.parse_args([])
    sk = demo.METHODS["cntk-sketch"].build(cfg)
    d = demo.CNTK_DEFAULTS
    assert (sk.depth, sk.filter_size, sk.padding, sk.degree, sk.patch_sketch, sk.pixel_dim) == (
        d["depth"], d["filter_size"], d["padding"], d["degree"], d["patch_sketch"], d["pixel_dim"])
    assert f"{d['filter_size']}x{d['filter_size']} {d['padding']}" in demo.METHODS["cntk-exact"].label(cfg)
    # the exact kernel the demo builds is the CNTK of that architecture (small images keep it cheap)
    from ntk_sketch.kernels.cntk_exact import cntk_kernel
    imgs = np.random.default_rng(0).random((3, 9, 9, 1))
    expected = cntk_kernel(imgs, depth=d["depth"], filter_size=d["filter_size"], padding=d["padding"])
    np.testing.assert_array_equal(demo.METHODS["cntk-exact"].build(cfg)(imgs), expected)


def test_library_value_errors_exit_2_without_traceback(monkeypatch, capsys):
    # a combination that no option check foresees still ends in one line and exit status 2
    def fail(cfg, out=None, progress=None):
        raise ValueError("n_components = 3 is too small for 4 sketched degrees.")

    monkeypatch.setattr(demo, "run_demo", fail)
    assert demo.main(["--quick"], prog="demo") == 2
    err = capsys.readouterr().err
    assert err.strip() == "demo: error: n_components = 3 is too small for 4 sketched degrees."


def test_cli_dispatch(capsys):
    assert cli_main([]) == 2
    assert "demo" in capsys.readouterr().out
    assert cli_main(["frobnicate"]) == 2
    with pytest.raises(SystemExit) as info:
        cli_main(["demo", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--methods", "--depth", "--n-components", "--seed", "--n-train", "--quick"):
        assert option in text


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "ntk_sketch", "demo", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0
    assert "--n-components" in res.stdout


def test_load_dataset_subsets_are_seeded_and_disjoint_splits():
    X, y, Xt, yt = demo.load_dataset("bundled-fashion-mnist", n_train=50, n_test=30, seed=3)
    X2, y2, _, _ = demo.load_dataset("bundled-fashion-mnist", n_train=50, n_test=30, seed=3)
    assert X.shape == (50, 28, 28, 1) and Xt.shape == (30, 28, 28, 1)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="unknown dataset"):
        demo.load_dataset("cifar")


def test_every_method_of_the_registry_is_available():
    # the registry names each method's module; a wrong module path would silently skip that method in the demo
    for key, method in demo.METHODS.items():
        ok, why = demo.method_available(method)
        assert ok, f"{key}: {why}"
