"""``python -m proofs_check [--quick | --full] [--only NAME] [--out DIR]``: run the checks, print the summary.

Exit status 1 when a statement that must hold (an identity or a rigorous bound) does not; 0 otherwise.  Findings
(fitted constants of O(.) statements) are reported but never fail the run.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from . import CHECKS
from ._common import HAVE_MPL, Context, Timer


def _summary_lines(results):
    lines = ["| check | statement | data | measured | margin | verdict |", "|---|---|---|---|---|---|"]
    for r in results:
        cells = [r.check, r.statement, r.data, r.measured, r.margin, r.status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m proofs_check", description=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small sizes, a few minutes on 2 cores (default)")
    g.add_argument("--full", action="store_true", help="paper-sized runs (tens of minutes)")
    ap.add_argument("--only", action="append", choices=CHECKS, metavar="NAME",
                    help=f"run only this check (repeatable); one of {', '.join(CHECKS)}")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"),
                    help="output folder for tables and plots (default proofs_check/out)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    ctx = Context(mode="full" if args.full else "quick", out_dir=args.out, seed=args.seed)
    os.makedirs(ctx.out_dir, exist_ok=True)
    names = args.only or list(CHECKS)
    results, timings = [], {}
    t_all = time.perf_counter()
    for name in names:
        mod = importlib.import_module(f"proofs_check.{name}")
        print(f"\n=== {name}: {mod.TITLE}", flush=True)
        print((mod.__doc__ or "").strip(), flush=True)
        with Timer() as t:
            rows = mod.run(ctx)
        timings[name] = t.seconds
        for r in rows:
            print(f"  [{r.status}] {r.statement}\n      data: {r.data}\n      measured: {r.measured}; "
                  f"margin: {r.margin}" + (f"\n      note: {r.note}" if r.note else ""), flush=True)
        print(f"  ({t.seconds:.1f} s)", flush=True)
        results.extend(rows)
    total = time.perf_counter() - t_all
    summary = _summary_lines(results)
    n_fail = sum(r.failed for r in results)
    n_hold = sum(r.status == "holds" for r in results)
    n_find = sum(r.status == "finding" for r in results)
    head = (f"{n_hold} statements hold, {n_fail} do not, {n_find} findings (fitted constants / orders); "
            f"mode {ctx.mode}, {total:.0f} s.")
    with open(os.path.join(ctx.out_dir, "summary.md"), "w") as fh:
        fh.write("# proofs_check summary\n\n" + head + "\n\n" + "\n".join(summary) + "\n")
    idx = ["# proofs_check index", "", head, "", "[summary](summary.md)", ""]
    for name in names:
        mod = importlib.import_module(f"proofs_check.{name}")
        idx.append(f"## {name}: {mod.TITLE}  ({timings[name]:.1f} s)")
        idx.append("")
        tables = sorted(f for f in os.listdir(ctx.out_dir) if f.startswith(name) and f.endswith(".md"))
        idx.extend(f"- table: [{t}]({t})" for t in tables)
        pngs = sorted(f for f in os.listdir(ctx.out_dir) if f.startswith(name) and f.endswith(".png"))
        if pngs:
            idx.extend(f"- plot: [{p}]({p})\n\n  ![{p}]({p})" for p in pngs)
        elif not HAVE_MPL:
            idx.append("- plot skipped: matplotlib is not installed (pip install matplotlib)")
        idx.append("")
    with open(os.path.join(ctx.out_dir, "index.md"), "w") as fh:
        fh.write("\n".join(idx))
    print("\n=== summary\n" + head + "\n" + "\n".join(summary))
    print(f"\nTables, plots and index: {ctx.out_dir}/index.md")
    if not HAVE_MPL:
        print("note: matplotlib is not installed, plots were skipped")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
