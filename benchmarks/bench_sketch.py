"""Benchmark of the sketch primitives (docs/math.md §4; issue "Sketch primitives ... in input-sparsity time").

Table 1 - PolySketch (OSNAP leaves) on CSR rows at several densities: time per row must grow with nnz.  Rows are
generated chunk by chunk (the 10% matrix alone would be ~0.8 GB) and every chunk is sketched into one reused
(chunk, p, m) output buffer by the parallel njit batch kernel, so we time the sketch, not page faults of a
fresh 1.3 GB output.  Density 0 (empty rows) is timed as well: it is the fixed per-row cost (the internal
TensorSRHT nodes, zeroing the leaves, writing p m outputs), so "leaves" = total - fixed is the part that
scales with nnz.  A single-thread timing of the tree kernel alone (``_polysketch_tree``) is printed too.

Table 2 - SRHT against a dense Gaussian projection (numpy matmul with a precomputed d x m matrix, BLAS
threads) with the same m, both timed in this process on the same data.

Every number is a median over --repeats runs.  Example (the issue's sizes, the defaults):

    python benchmarks/bench_sketch.py
    python benchmarks/bench_sketch.py --n 2000 --repeats 3          # quicker
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np
import scipy.sparse as sp

from ntk_sketch.sketches.polysketch import _polysketch_csr_batch, _polysketch_tree, draw_polysketch
from ntk_sketch.sketches.srht import apply_srht, draw_srht


def random_csr(rng, n, d, density):
    """n x d CSR with about density d non-zeros per row at uniformly random columns, standard normal values.

    Columns are drawn with replacement and duplicates merged (at 10% of 65,536 about 5% of the draws collide);
    the tables report the measured nnz per row.
    """
    k = int(round(density * d))
    if k == 0:
        return sp.csr_matrix((n, d))
    cols = np.sort(rng.integers(0, d, size=(n, k)), axis=1)
    indptr = np.arange(0, n * k + 1, k)
    X = sp.csr_matrix((rng.standard_normal(n * k), cols.ravel(), indptr), shape=(n, d))
    X.sum_duplicates()
    return X


def count_fwht(p):
    """Number of length-N FWHTs _polysketch_tree runs per vector (mirrors its loops)."""
    q = 1 << (p - 1).bit_length()
    count = 0
    for t in range(1, q.bit_length()):
        half, size = 1 << (t - 1), 1 << t
        for j in range(q >> t):
            lo = j * size
            if lo >= p:
                break
            mid = lo + half
            count += (mid <= p) + (lo + size <= p)
            count += sum(1 for l in range(lo + 1, min(lo + size - 1, p) + 1) if l != mid)
    return count


def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def bench_polysketch(args):
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    tables = draw_polysketch(args.d, args.m, args.degree, base="osnap", s=args.s, seed=rng)
    t_draw = time.perf_counter() - t0
    targs = tables.njit_args() + (tables.leaf_n_pad, tables.node_n_pad)
    out = np.empty((args.chunk, args.degree, args.m))
    # compile and warm up outside the timings
    warm = random_csr(rng, 4, args.d, 0.01)
    _polysketch_csr_batch(*targs, warm.indptr, warm.indices, warm.data, out[:4])

    # Densities are timed round-robin on every chunk (repeat r of every density, then repeat r + 1, ...), so
    # that a change in the load of a shared machine hits all of them alike; medians over repeats per chunk.
    densities = [0.0] + list(args.densities)
    total = {dens: 0.0 for dens in densities}
    nnz = {dens: 0 for dens in densities}
    for c0 in range(0, args.n, args.chunk):
        nc = min(args.chunk, args.n - c0)
        mats = {dens: random_csr(rng, nc, args.d, dens) for dens in densities}
        times = {dens: [] for dens in densities}
        for _ in range(args.repeats):
            for dens, X in mats.items():
                t0 = time.perf_counter()
                _polysketch_csr_batch(*targs, X.indptr, X.indices, X.data, out[:nc])
                times[dens].append(time.perf_counter() - t0)
        for dens in densities:
            total[dens] += float(np.median(times[dens]))
            nnz[dens] += mats[dens].nnz
    rows = [(dens, nnz[dens] / args.n, total[dens] / args.n) for dens in densities]

    # the tree alone, one thread, one row (leaf values fixed): the O(p log p m log m) part
    q = tables.n_leaves
    xa = np.random.default_rng(0).standard_normal((q, args.m))
    xb = np.empty_like(xa)
    mix = np.empty((args.degree + 1, args.m))
    w1 = np.empty(tables.node_n_pad)
    w2 = np.empty(tables.node_n_pad)
    o1 = np.empty((args.degree, args.m))
    a = tables.njit_args()

    def tree():
        for _ in range(200):
            _polysketch_tree(tables.degree, tables.n_levels, *a[8:14], xa, xb, mix, w1, w2, o1)

    tree()
    t_tree = median_time(tree, args.repeats) / 200

    threads = numba.get_num_threads()
    print(f"\nPolySketch degree {args.degree}, m = {args.m}, n = {args.n} CSR rows of d = {args.d}, OSNAP leaves "
          f"(s = {args.s}), float64, {threads} numba threads; tables drawn in {t_draw:.2f} s")
    print(f"{'density':>8} {'nnz/row':>9} {'us/row':>9} {'rows/s':>10} {'leaves us/row':>14} "
          f"{'fixed us/row':>13} {'ns/scatter':>11}")
    fixed = rows[0][2]
    for density, nnz_row, t in rows:
        # one scatter = one (non-zero, leaf, OSNAP entry) update; per thread, hence the factor `threads`
        per = (t - fixed) * threads / (nnz_row * args.degree * args.s) * 1e9 if nnz_row else float("nan")
        print(f"{density:8.3%} {nnz_row:9.0f} {t * 1e6:9.1f} {1 / t:10.0f} {(t - fixed) * 1e6:14.1f} "
              f"{fixed * 1e6:13.1f} {per:11.1f}")
    by_density = {r[0]: r[2] for r in rows}
    if 0.1 in by_density and 0.01 in by_density:
        t10, t1 = by_density[0.1], by_density[0.01]
        print(f"time ratio 10% / 1%: {t10 / t1:.2f}   (leaf part only, fixed cost subtracted: "
              f"{(t10 - fixed) / max(t1 - fixed, 1e-12):.2f}; nnz ratio 10)")
    print(f"tree alone, 1 thread: {t_tree * 1e6:.1f} us per row ({count_fwht(args.degree)} FWHTs of length "
          f"{tables.node_n_pad}); the us/row columns above are wall time / n with {threads} threads")


def bench_srht(args):
    rng = np.random.default_rng(args.seed + 1)
    print(f"\nSRHT vs dense Gaussian projection, n = {args.srht_n} rows, m = {args.srht_m}, float64 "
          f"({numba.get_num_threads()} numba threads; BLAS threads for the matmul)")
    print(f"{'d':>7} {'SRHT s':>9} {'Gauss s':>9} {'Gauss/SRHT':>11} {'SRHT us/row':>12} {'Gauss us/row':>13}")
    for d in args.srht_d:
        X = rng.standard_normal((args.srht_n, d))
        tables = draw_srht(d, args.srht_m, seed=rng)
        G = rng.standard_normal((d, args.srht_m)) / np.sqrt(args.srht_m)
        apply_srht(X[:64], tables)
        _ = X[:64] @ G
        ts = median_time(lambda: apply_srht(X, tables), args.repeats)
        tg = median_time(lambda: X @ G, args.repeats)
        print(f"{d:7d} {ts:9.4f} {tg:9.4f} {tg / ts:11.2f} {ts / args.srht_n * 1e6:12.2f} "
              f"{tg / args.srht_n * 1e6:13.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="CSR rows for PolySketch")
    ap.add_argument("--d", type=int, default=65_536)
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--degree", type=int, default=4)
    ap.add_argument("--s", type=int, default=1, help="OSNAP non-zeros per column")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    ap.add_argument("--chunk", type=int, default=500, help="rows per timed batch call")
    ap.add_argument("--srht-n", type=int, default=2000)
    ap.add_argument("--srht-m", type=int, default=512)
    ap.add_argument("--srht-d", type=int, nargs="+", default=[1024, 16384])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="numba threads (0: numba's default)")
    ap.add_argument("--skip-poly", action="store_true")
    ap.add_argument("--skip-srht", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        numba.set_num_threads(args.threads)
    if not args.skip_poly:
        bench_polysketch(args)
    if not args.skip_srht:
        bench_srht(args)


if __name__ == "__main__":
    main()
