"""``python -m paper_figures``: regenerate every experiment and the index (see the package docstring)."""
import argparse
import importlib
import os
import sys
import time

from . import EXPERIMENTS
from . import _common as c

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m paper_figures", description=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="small sizes, a few minutes on 2 cores (the default)")
    g.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                   help="tiny sizes for CI (numbers are not meaningful)")
    g.add_argument("--full", dest="mode", action="store_const", const="full", help="the documented full sizes")
    ap.set_defaults(mode="quick")
    ap.add_argument("--only", default=None, help=f"comma list of experiments among {', '.join(EXPERIMENTS)}")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default paper_figures/out)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    return ap


def write_index(out_dir, mode_note=""):
    """``index.md`` over every experiment whose JSON record is in ``out_dir`` (so runs of single experiments with
    ``--only`` add up to one index)."""
    import json
    lines = ["# Paper figures regenerated", "", mode_note,
             "Substitute data: " + "; ".join(c.SUBSTITUTES.values()) + ".", ""]
    for name in EXPERIMENTS:
        path = os.path.join(out_dir, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as fh:
            r = json.load(fh)
        md = os.path.basename(r["markdown"])
        lines += [f"## {r['title']}", "", f"Table: [{md}]({md}). Mode `{r.get('mode', '?')}`, "
                  f"{r['seconds']:.0f} s wall, {r.get('cpu_seconds', float('nan')):.0f} s CPU. Headline: {r['headline']}",
                  ""]
        for f in r["figures"]:
            lines += [f"![{r['name']}]({os.path.basename(f)})", ""]
        for n in r["notes"]:
            lines += [f"- note: {n}"]
        lines += [""]
    path = os.path.join(out_dir, "index.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path


def main(argv=None):
    args = build_parser().parse_args(argv)
    names = EXPERIMENTS if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    for n in names:
        if n not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {n!r}; choose from {', '.join(EXPERIMENTS)}")
    os.makedirs(args.out, exist_ok=True)
    ctx = c.Context(args.mode, args.out, seed=args.seed, quiet=args.quiet)
    ctx.log(f"mode {args.mode}: warm-up (numba compilation)")
    c.warm_up()
    results = []
    for n in names:
        mod = importlib.import_module(f"paper_figures.{n}")
        t0, cpu0 = time.perf_counter(), time.process_time()
        res = mod.run(ctx)
        res.seconds = time.perf_counter() - t0
        res.cpu_seconds = time.process_time() - cpu0
        res.mode = ctx.mode
        if hasattr(os, "getloadavg"):
            # timings are wall-clock: say how busy the machine was, so that slow rows can be read for what they are
            res.notes.append(f"machine load average at the end of this experiment: {os.getloadavg()[0]:.1f} on "
                             f"{os.cpu_count()} cores ({res.cpu_seconds:.0f} s CPU over {res.seconds:.0f} s wall)")
            with open(res.markdown, "a") as fh:
                fh.write(f"- {res.notes[-1]}\n")
        res.save_json(ctx.out_dir)
        results.append(res)
        ctx.log(f"{n} done in {res.seconds:.0f} s: {res.headline}")
    total, cpu = time.perf_counter() - ctx.t0, time.process_time()
    index = write_index(ctx.out_dir, f"Last run: mode `{ctx.mode}`, {total:.0f} s wall, {cpu:.0f} s CPU (all threads) "
                                     f"for {', '.join(names)}.")
    print(f"wrote {index}")
    for r in results:
        print(f"{r.name} ({r.seconds:.0f} s): {r.headline}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
