"""Speed of numba's threading layers on the exact-kernel benchmark: the library's choice against numba's default.

ntk_sketch selects numba's 'forksafe' layer (TBB if installed, else 'workqueue', plus a lock around parallel
calls; see ntk_sketch/__init__.py), where numba alone would pick 'omp' on Linux.  This script runs
``benchmarks/bench_exact.py`` in fresh processes, alternating ``NUMBA_THREADING_LAYER=omp`` (the old behaviour)
and the library's default, ``--reps`` times each, and prints the medians and their ratio for the FC NTK Gram
matrix (seconds) and the two CNTK configurations (wall ms per pair, and CPU ms per pair per thread, which a
loaded machine disturbs less).

Usage::

    python benchmarks/bench_threading_layer.py --reps 5
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PATTERNS = {
    "FC NTK Gram, n=1000 (s)": (r"ntk_sketch\.ntk_kernel\s+([\d.]+)", 1),
    "CNTK q=3 same, wall ms/pair": (r"q=3 same, trained first/last\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", 1),
    "CNTK q=3 same, cpu ms/pair/thread": (r"q=3 same, trained first/last\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", 3),
    "CNTK q=4 valid, wall ms/pair": (r"q=4 valid, fixed first/last\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", 1),
    "CNTK q=4 valid, cpu ms/pair/thread": (r"q=4 valid, fixed first/last\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", 3),
}


def run_once(layer):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer != "library default":
        env["NUMBA_THREADING_LAYER"] = layer
    cmd = [sys.executable, os.path.join(HERE, "bench_exact.py"), "--kernels", "fc,cntk", "--fc-n", "1000",
           "--cntk-n", "8", "--cntk-repeats", "3", "--cntk-check-crop", "0"]
    code = ("import sys, runpy, numba; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
            "print('threading layer:', numba.threading_layer())")
    out = subprocess.run([sys.executable, "-c", code] + cmd[1:], capture_output=True, text=True, env=env,
                         timeout=900).stdout
    values = {}
    for name, (pat, group) in PATTERNS.items():
        m = re.search(pat, out)
        if m:
            values[name] = float(m.group(group))
    layer_used = re.search(r"threading layer: (\w+)", out)
    return values, layer_used.group(1) if layer_used else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="alternating runs per layer (default 5)")
    args = ap.parse_args()
    layers = ["omp", "library default"]
    results = {layer: {name: [] for name in PATTERNS} for layer in layers}
    used = {}
    for rep in range(args.reps):
        for layer in layers:
            values, used[layer] = run_once(layer)
            for name, v in values.items():
                results[layer][name].append(v)
            print(f"rep {rep + 1} {layer} ({used[layer]}): "
                  + ", ".join(f"{k.split(',')[0]} {v:g}" for k, v in values.items()), flush=True)
    print(f"\nmedians of {args.reps} alternating runs; 'after' = library default ({used.get('library default')}), "
          f"'before' = omp")
    print(f"{'quantity':<38} {'omp':>10} {'default':>10} {'ratio':>7}")
    for name in PATTERNS:
        a, b = results["omp"][name], results["library default"][name]
        if a and b:
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"{name:<38} {ma:>10.4g} {mb:>10.4g} {mb / ma:>7.2f}")


if __name__ == "__main__":
    main()
