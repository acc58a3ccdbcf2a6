"""Smoke tests of the proofs_check runner (the top-level package beside ntk_sketch, run from the repository root):
one cheap check end to end, the exit status on a statement that does not hold, and the output files."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

proofs_check = pytest.importorskip("proofs_check")
from proofs_check import __main__ as runner  # noqa: E402
from proofs_check._common import Result  # noqa: E402


def test_taylor_check_runs_and_writes_its_outputs(tmp_path, capsys):
    assert runner.main(["--only", "taylor", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "summary" in out and "p^-1/2" in out
    for name in ("taylor.md", "summary.md", "index.md"):
        assert (tmp_path / name).exists()
    assert "| taylor |" in (tmp_path / "summary.md").read_text()
    index = (tmp_path / "index.md").read_text()
    assert "taylor.md" in index and ("taylor.png" in index or "plot skipped" in index)


def test_exit_status_is_one_when_a_statement_fails_and_zero_for_findings(tmp_path, monkeypatch):
    import proofs_check.taylor as taylor

    def fake(status):
        return lambda ctx: [Result("taylor", "s", "d", "m", "margin", status)]

    monkeypatch.setattr(taylor, "run", fake("DOES NOT HOLD"))
    assert runner.main(["--only", "taylor", "--out", str(tmp_path)]) == 1
    monkeypatch.setattr(taylor, "run", fake("finding"))
    assert runner.main(["--only", "taylor", "--out", str(tmp_path)]) == 0


def test_tensor_srht_variance_formula_edge_cases():
    """The exact TensorSRHT variance vanishes for a basis vector ((3 - 2)^2 - 1 = 0: its transform is flat) and
    when every pair of the grid is sampled (m = M); the composed PolySketch bound falls with m."""
    import numpy as np

    from proofs_check.sketch_moments import polysketch_variance_bound, tensor_srht_variance

    e = np.zeros(16)
    e[3] = 1.0
    assert tensor_srht_variance(e, 64) == 0.0
    x = np.ones(4) / 2.0
    assert tensor_srht_variance(x, 16) == 0.0            # m = M = 4 * 4: every pair sampled
    assert polysketch_variance_bound(16, 64, 2, "osnap") > polysketch_variance_bound(16, 128, 2, "osnap")
