"""Numerical checks of the statements of Zandieh et al. 2021 (arXiv:2106.07880) for the ntk_sketch implementation.

Run ``python -m proofs_check`` from the repository root (``--full`` for paper-sized runs, ``--only NAME`` for one
check).  Each check prints its statement, what it measured on which real data and the margin, and writes a
markdown table and (with matplotlib) a PNG plot under ``proofs_check/out/``; the run ends with a summary table and
an index.  Not part of the installed package: it imports ntk_sketch's public API only.
"""
CHECKS = (
    "ntk_recursion",
    "taylor",
    "leverage",
    "sketch_moments",
    "ntk_sketch_entries",
    "cntk_sketch_entries",
    "ntkrf",
)
