"""The documentation in docs/ and the code that cites it stay in step.

* ``docs/math.md`` has the sections §1..§13 (numbered in order, each once); the code cites them by number.
* Every section cited as ``docs/math.md §N`` (or in a list such as ``docs/math.md §3, §4, §7``) anywhere in
  ntk_sketch/, tests/, benchmarks/, tools/ or the README exists in docs/math.md.  The repository uses the sign §
  only for sections of docs/math.md, so every ``§N`` in those files is checked, also a bare one such as "(§5)"
  that follows an earlier mention of docs/math.md.
* Nothing in the package or its tests points to the folder of design notes outside the repository.
* The reference tables of docs/math.md (K_L and s_L at -1, 0, 1; Taylor truncation tails; errors of the fitted
  polynomials) are what the code computes, to the digits printed.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MATH = ROOT / "docs" / "math.md"
CITING_DIRS = ("ntk_sketch", "tests", "benchmarks", "tools")
SECTION_SIGN = "\u00a7"
HEADING = re.compile(r"^## " + SECTION_SIGN + r"(\d+)\.\s", re.MULTILINE)
CITATION = re.compile(SECTION_SIGN + r"\s*(\d+)")
# Paths outside the repository.  The character classes keep this file from matching its own check (and keep
# a plain grep for that folder name clean).
OUTSIDE_PATH = re.compile(rb"shared/spe[c]|\.\./share[d]")


def _text_files(dirs, suffixes=(".py", ".md", ".txt", ".cfg", ".toml", ".yml", ".yaml", ".sh")):
    for d in dirs:
        for path in sorted((ROOT / d).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in suffixes:
                yield path


def math_sections(text):
    return [int(n) for n in HEADING.findall(text)]


def cited_sections(text):
    """Every (line number, section) of a ``§N`` in ``text``."""
    found = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        found.extend((lineno, int(n)) for n in CITATION.findall(line))
    return found


def test_math_has_sections_1_to_13_in_order():
    assert MATH.is_file(), "docs/math.md is missing"
    assert math_sections(MATH.read_text(encoding="utf-8")) == list(range(1, 14))


def test_docs_index_and_companion_pages_exist():
    for name in ("README.md", "architecture.md", "datasets.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"


def test_citation_scanner_finds_citations_and_lists():
    text = f"see docs/math.md {SECTION_SIGN}3, {SECTION_SIGN}4 and {SECTION_SIGN}17\nnothing here\n({SECTION_SIGN}5)"
    assert cited_sections(text) == [(1, 3), (1, 4), (1, 17), (3, 5)]
    sections = set(math_sections(MATH.read_text(encoding="utf-8")))
    assert [s for _, s in cited_sections(text) if s not in sections] == [17]


def test_every_cited_section_exists():
    sections = set(math_sections(MATH.read_text(encoding="utf-8")))
    files = list(_text_files(CITING_DIRS)) + [ROOT / "README.md"]
    n_citations = 0
    bad = []
    for path in files:
        for lineno, section in cited_sections(path.read_text(encoding="utf-8", errors="replace")):
            n_citations += 1
            if section not in sections:
                bad.append(f"{path.relative_to(ROOT)}:{lineno} cites {SECTION_SIGN}{section}")
    assert not bad, "citations of sections that docs/math.md does not have:\n" + "\n".join(bad)
    assert n_citations > 50, "the scanner found almost no citations; is it reading the right files?"


@pytest.mark.parametrize("folder", ["ntk_sketch", "tests"])
def test_nothing_points_outside_the_repository(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        for match in OUTSIDE_PATH.finditer(path.read_bytes()):
            bad.append(f"{path.relative_to(ROOT)} mentions {match.group().decode()!r}")
    assert not bad, "files that depend on a path outside the repository:\n" + "\n".join(bad)


def _table_after(text, header_start):
    """Rows (lists of cell strings) of the markdown table whose header line starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    return rows


def _last_number(cell):
    return float(re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", cell)[-1])


def test_reference_values_of_K_L_and_s_L_match_the_code():
    """The K_L / s_L table of docs/math.md §2 is what ntk_cosine_kernel / nngp_cosine_kernel compute (6 decimals)."""
    import numpy as np

    from ntk_sketch.kernels.ntk_exact import nngp_cosine_kernel, ntk_cosine_kernel

    rows = _table_after(MATH.read_text(encoding="utf-8"), "| L | `K_L(-1)`")
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    a = np.array([-1.0, 0.0, 1.0])
    for r in rows:
        L = int(r[0])
        documented = [_last_number(c) for c in r[1:7]]
        computed = list(ntk_cosine_kernel(a, L)) + list(nngp_cosine_kernel(a, L))
        np.testing.assert_allclose(computed, documented, rtol=0, atol=5e-7)


def test_documented_taylor_tails_match_the_code():
    """The truncation-error table of docs/math.md §1 is taylor_truncation_error (to the digits printed there)."""
    from ntk_sketch.kernels.arccos import taylor_truncation_error

    text = MATH.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| p | 1 | 2 |"))
    degrees = [int(c) for c in header.strip().strip("|").split("|")[1:]]
    by_name = {r[0]: r[1:] for r in _table_after(text, "| p | 1 | 2 |")}
    for kernel in ("k0", "k1"):
        assert len(by_name[kernel]) == len(degrees)
        for p, cell in zip(degrees, by_name[kernel]):
            mantissa, _, exponent = cell.partition("e")
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            half_unit = 0.5 * 10.0 ** (int(exponent or 0) - decimals)  # rounding of the printed value
            assert abs(taylor_truncation_error(kernel, p) - float(cell)) <= half_unit * (1 + 1e-9), (kernel, p, cell)


def test_documented_fit_errors_match_the_code():
    """The sup-norm error table of the fitted polynomials in docs/math.md §5 (4 decimals) is what the code fits."""
    from ntk_sketch.kernels.arccos import arccos_kernel_0, arccos_kernel_1
    from ntk_sketch.kernels.ntk_exact import ntk_cosine_kernel
    from ntk_sketch.kernels.polynomials import arccos_polynomials, ntk_polynomial, polynomial_max_error

    rows = _table_after(MATH.read_text(encoding="utf-8"), "| interval | p | k0 | k1 |")
    assert len(rows) == 6
    for interval_cell, p_cell, e0, e1, eK in rows:
        interval = tuple(float(v) for v in interval_cell.strip("[]").split(","))
        p = int(p_cell)
        c0, c1 = arccos_polynomials("fit", p, interval)
        K = ntk_polynomial(2, p, "fit", interval)
        measured = (polynomial_max_error(c0, arccos_kernel_0, interval),
                    polynomial_max_error(c1, arccos_kernel_1, interval),
                    polynomial_max_error(K, lambda a: ntk_cosine_kernel(a, 2), interval))
        for value, cell in zip(measured, (e0, e1, eK)):
            assert abs(value - float(cell)) <= 0.5e-4 * (1 + 1e-9), (interval, p, cell, value)
