"""Learning with NTK / CNTK features against Nystrom-NTK, a trained MLP and exact CNTK kernel ridge (issue item 7).

Part 1 (equal dimension): for every m in --dims and every method in --methods, the test accuracy and the total
time (feature map fit + features of the train and test rows + ridge fit with lambda chosen on a validation split of
the training rows + prediction).  The MLP gets m * C parameters (the weight count of a ridge classifier on m
features); a second MLP row per m gets, in addition, a wall-clock budget equal to the time of the reference method
(--equal-time-ref, default CNTKSketch when available, else NTKSketch) at that m ("equal time").  Part 2 (equal
time) is read off the same measurements: for each method and each time of the reference, the best accuracy the
method reached within that time.

Part 3 (exact CNTK): exact CNTK kernel ridge on the first --exact-n train / --exact-n-test test images (a random
subset), against CNTKSketch at every m on the same subset: accuracy difference and speed-up.

All methods run in this one process on the same data (the demo's loaders and method registry,
``ntk_sketch.demo.METHODS``); methods whose modules are not installed are skipped with a note.  With more
training rows than features, the features are kept as float32 and the ridge is fitted from streamed chunks
(memory O(m^2), never n x m float64).  Times are single runs (--repeats > 1: medians over seeds 0, 1, ...).

    python benchmarks/bench_learning.py                                   # bundled subset, m = 1024 4096
    python benchmarks/bench_learning.py --dataset fashion-mnist --dims 1024 4096 16384 --exact-n 500
    python benchmarks/bench_learning.py --dataset mnist-5k --methods ntkrf,nystrom,mlp --dims 1024 4096
    # part 3 only, exact CNTK matrices computed once and reused for other sketch settings:
    python benchmarks/bench_learning.py --parts 3 --methods cntk-sketch --exact-n 200 --exact-cache /tmp/k200.npz
"""
import argparse
import os
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntk_sketch import demo  # noqa: E402
from ntk_sketch.learn.mlp import MLPClassifier  # noqa: E402
from ntk_sketch.learn import KernelRidgeClassifier, RidgeClassifier  # noqa: E402

FEATURE_METHODS = ("ntk-sketch", "ntkrf", "cntk-sketch", "nystrom")


def features_and_ridge(fmap, X, y, Xt, yt, seed, progress, label, batch=512):
    """Fit the map, compute features (float32 store when n > m), fit ridge, score. Returns (t_feat, t_fit, acc)."""
    t0 = time.perf_counter()
    fmap.fit(X)
    F = progress.chunked(lambda r: np.asarray(fmap.transform(r), dtype=np.float32), X, f"{label} train", batch)
    Ft = progress.chunked(lambda r: np.asarray(fmap.transform(r), dtype=np.float32), Xt, f"{label} test", batch)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf = RidgeClassifier(seed=seed)
    if F.shape[0] > F.shape[1]:
        # Primal normal equations accumulated in float64 from chunks: O(m^2) memory whatever n.
        clf.fit_stream(lambda: ((F[i:i + 4096], y[i:i + 4096]) for i in range(0, F.shape[0], 4096)))
    else:
        clf.fit(F, y)
    acc = float(np.mean(np.concatenate([clf.predict(Ft[i:i + 4096]) for i in range(0, Ft.shape[0], 4096)]) == yt))
    return t_feat, time.perf_counter() - t0, acc


def make_cfg(args, m, seed, n_classes):
    return types.SimpleNamespace(depth=args.depth, cntk_depth=args.cntk_depth, filter_size=args.filter_size,
                                 padding=args.padding, cntk_degree=args.cntk_degree, patch_sketch=args.patch_sketch,
                                 n_components=m, degree=args.degree, pixel_dim=args.pixel_dim, seed=seed,
                                 n_classes=n_classes, quick=False)


def median_runs(fn, repeats):
    runs = [fn(seed) for seed in range(repeats)]
    return tuple(float(np.median([r[i] for r in runs])) for i in range(len(runs[0])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=list(demo.DATASETS), default="bundled-fashion-mnist")
    ap.add_argument("--n-train", type=int, default=None, help="random subset of the training split (default all)")
    ap.add_argument("--n-test", type=int, default=None, help="random subset of the test split (default all)")
    ap.add_argument("--dims", type=int, nargs="+", default=[1024, 4096], help="feature dimensions m")
    ap.add_argument("--methods", default="ntk-sketch,ntkrf,cntk-sketch,nystrom,mlp",
                    help="comma list from ntk-sketch, ntkrf, cntk-sketch, nystrom, mlp")
    ap.add_argument("--depth", type=int, default=2, help="FC NTK depth L")
    # The CNTK defaults are the demo's (ntk_sketch.demo.CNTK_DEFAULTS): the configuration the architecture screen
    # and the full Fashion-MNIST runs found best at their cost.
    cd = demo.CNTK_DEFAULTS
    ap.add_argument("--cntk-depth", type=int, default=cd["depth"], help="CNTK depth")
    ap.add_argument("--filter-size", type=int, default=cd["filter_size"])
    ap.add_argument("--padding", choices=["same", "valid"], default=cd["padding"], help="CNTK padding")
    ap.add_argument("--cntk-degree", type=int, default=cd["degree"], help="CNTKSketch polynomial degree")
    ap.add_argument("--patch-sketch", choices=["signed_sum", "countsketch", "srht"], default=cd["patch_sketch"])
    ap.add_argument("--degree", type=int, default=None, help="NTKSketch polynomial degree")
    ap.add_argument("--pixel-dim", type=int, default=cd["pixel_dim"], help="CNTKSketch per-pixel dimension")
    ap.add_argument("--exact-n", type=int, default=0, help="train images for exact CNTK ridge (0: skip part 3)")
    ap.add_argument("--exact-n-test", type=int, default=None, help="test images for exact CNTK (default --exact-n)")
    ap.add_argument("--exact-cache", default=None,
                    help="npz file: load the exact CNTK matrices (and their time) from it if it exists, else save "
                         "them there (so part 3 can be rerun with other sketch settings)")
    ap.add_argument("--parts", default="1,3", help="which parts to run: 1 (equal dimension/time), 3 (exact subset)")
    ap.add_argument("--equal-time-ref", default=None, help="method whose time the equal-time MLP gets")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="data subset seed")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    methods = [k.strip() for k in args.methods.split(",") if k.strip()]
    for k in methods:
        if k not in FEATURE_METHODS + ("mlp",):
            ap.error(f"unknown method {k!r}")
    progress = demo.Progress(quiet=args.quiet)
    notes = []
    available = []
    for k in methods:
        ok, why = demo.method_available(demo.METHODS[k])
        (available.append(k) if ok else notes.append(f"{k}: skipped, {why}"))
    ref = args.equal_time_ref or next((k for k in ("cntk-sketch", "ntk-sketch", "ntkrf") if k in available), None)

    X, y, Xt, yt = demo.load_dataset(args.dataset, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    C = int(np.unique(y).size)
    flat, flat_t = X.reshape(X.shape[0], -1), Xt.reshape(Xt.shape[0], -1)
    try:
        import numba
        threads = numba.get_num_threads()
    except Exception:  # pragma: no cover
        threads = "?"
    title = (f"{demo.DATASETS[args.dataset].split(' (')[0]}: n_train={X.shape[0]}, n_test={Xt.shape[0]}, "
             f"FC depth {args.depth}, CNTK depth {args.cntk_depth} {args.filter_size}x{args.filter_size} "
             f"{args.padding}, {threads} numba threads, "
             f"{'median of %d runs' % args.repeats if args.repeats > 1 else 'single runs'}")
    progress.log(title)

    # Warm-up: compile (or load from numba's cache) every kernel on two rows, so no timing below includes it.
    progress.log("warm-up (numba compilation)")
    for k in available:
        if k != "mlp":
            meth = demo.METHODS[k]
            A = X[:2] if meth.images else flat[:2]
            meth.build(make_cfg(args, min(args.dims), 0, C)).fit(A).transform(A)
    if args.exact_n > 0:
        demo.METHODS["cntk-exact"].build(make_cfg(args, min(args.dims), 0, C))(X[:2], X[2:4])

    parts = {p.strip() for p in args.parts.split(",")}
    results = {}   # (method, m) -> (t_feat, t_fit, acc, extra)
    for m in (args.dims if "1" in parts else []):
        for k in available:
            meth = demo.METHODS[k]
            label = f"{k} m={m}"
            progress.log(label)
            if k == "mlp":
                def one(seed, m=m):
                    t0 = time.perf_counter()
                    model = MLPClassifier(n_params=m * C, seed=seed).fit(flat, y)
                    return 0.0, time.perf_counter() - t0, model.score(flat_t, yt), model.width_
            else:
                A, At = (X, Xt) if meth.images else (flat, flat_t)

                def one(seed, m=m, meth=meth, A=A, At=At, label=label):
                    fmap = meth.build(make_cfg(args, m, seed, C))
                    tf, tr, acc = features_and_ridge(fmap, A, y, At, yt, seed, progress, label)
                    return tf, tr, acc, getattr(fmap, "n_components_", m)
            results[(k, m)] = median_runs(one, args.repeats)
            tf, tr, acc, extra = results[(k, m)]
            progress.log(f"  {label}: {tf + tr:.1f} s, accuracy {acc:.4f}")
        if "mlp" in available and ref in available:
            t_ref = sum(results[(ref, m)][:2])

            def one_t(seed, m=m, t_ref=t_ref):
                t0 = time.perf_counter()
                model = MLPClassifier(n_params=m * C, seed=seed, max_time=t_ref).fit(flat, y)
                return 0.0, time.perf_counter() - t0, model.score(flat_t, yt), model.width_
            progress.log(f"mlp m={m}, time budget {t_ref:.1f} s (= {ref})")
            results[("mlp, time<=" + ref, m)] = median_runs(one_t, args.repeats)

    print(title)
    if "1" in parts:
        print_parts_1_2(results, args, available, ref)
    if args.exact_n > 0 and "3" in parts:
        part3(args, X, y, Xt, yt, C, available, progress, notes)
    for note in notes:
        print(f"note: {note}")
    print(f"total wall time {progress.elapsed():.1f} s")


def print_parts_1_2(results, args, available, ref):
    print("Part 1: equal dimension m (MLP: m*C parameters). total s = features + ridge fit + predict.")
    print(f"{'method':24s} {'m':>6s} {'dim':>7s} {'features s':>10s} {'fit s':>8s} {'total s':>8s} {'test acc':>9s}")
    for (k, m), (tf, tr, acc, extra) in results.items():
        dim = f"w={int(extra)}" if k.startswith("mlp") else str(int(extra))
        print(f"{k:24s} {m:6d} {dim:>7s} {tf:10.1f} {tr:8.1f} {tf + tr:8.1f} {acc:9.4f}")

    if ref in available and len(available) > 1:
        print(f"\nPart 2: equal time. For each {ref} run, the best accuracy each other method reached in at most "
              "that total time (any m measured above; '-' if none was that fast).")
        others = [k for k in available if k != ref]
        print(f"{ref + ' m':>16s} {'time s':>8s} {'acc':>7s} " + " ".join(f"{k:>12s}" for k in others))
        for m in args.dims:
            t_ref = sum(results[(ref, m)][:2])
            cells = []
            for k in others:
                accs = [v[2] for (kk, mm), v in results.items() if kk == k and v[0] + v[1] <= t_ref]
                cells.append(f"{max(accs):12.4f}" if accs else f"{'-':>12s}")
            print(f"{m:16d} {t_ref:8.1f} {results[(ref, m)][2]:7.4f} " + " ".join(cells))



def part3(args, X, y, Xt, yt, C, available, progress, notes):
    n_tr = min(args.exact_n, X.shape[0])
    n_te = min(args.exact_n_test or args.exact_n, Xt.shape[0])
    A, ya, At, yat = X[:n_tr], y[:n_tr], Xt[:n_te], yt[:n_te]
    cfg = make_cfg(args, args.dims[0], 0, C)
    kernel = demo.METHODS["cntk-exact"].build(cfg)
    key = np.array([n_tr, n_te, args.cntk_depth, args.filter_size, args.padding == "same", args.seed])
    if args.exact_cache and os.path.exists(args.exact_cache):
        with np.load(args.exact_cache) as z:
            if not np.array_equal(z["key"], key) or args.dataset != str(z["dataset"]):
                raise SystemExit(f"{args.exact_cache} holds another subset or CNTK; remove it or pass another")
            K, Kt, t_k = z["K"], z["Kt"], float(z["t_k"])
        progress.log(f"exact CNTK matrices loaded from {args.exact_cache} (computed in {t_k:.1f} s)")
    else:
        progress.log(f"exact CNTK on {n_tr} train / {n_te} test")
        t0 = time.perf_counter()
        K = demo._blocked_kernel(kernel, A, None, progress, "exact CNTK K(train, train)", 16)
        Kt = demo._blocked_kernel(kernel, At, A, progress, "exact CNTK K(test, train)", 16)
        t_k = time.perf_counter() - t0
        if args.exact_cache:
            np.savez(args.exact_cache, K=K, Kt=Kt, t_k=t_k, key=key, dataset=args.dataset)
    t0 = time.perf_counter()
    acc_exact = KernelRidgeClassifier("precomputed", seed=0).fit(K, ya).score(Kt, yat)
    t_exact = t_k + time.perf_counter() - t0
    pairs = n_tr * (n_tr + 1) / 2 + n_tr * n_te
    print(f"\nPart 3: exact CNTK kernel ridge on a subset, n_train={n_tr}, n_test={n_te} "
          f"({pairs:.0f} kernel pairs, {1e3 * t_k / pairs:.2f} ms per pair)")
    print(f"{'method':24s} {'m':>6s} {'total s':>8s} {'test acc':>9s} {'speed-up':>9s} {'acc - exact':>11s}")
    print(f"{'exact CNTK ridge':24s} {'-':>6s} {t_exact:8.1f} {acc_exact:9.4f} {1.0:9.1f} {0.0:11.4f}")
    if "cntk-sketch" in available:
        for m in args.dims:
            fmap = demo.METHODS["cntk-sketch"].build(make_cfg(args, m, 0, C))
            tf, tr, acc = features_and_ridge(fmap, A, ya, At, yat, 0, progress, f"cntk-sketch subset m={m}")
            print(f"{'cntk-sketch':24s} {m:6d} {tf + tr:8.1f} {acc:9.4f} {t_exact / (tf + tr):9.1f} "
                  f"{acc - acc_exact:11.4f}")
    else:
        notes.append("part 3: CNTKSketch not available, exact CNTK only")


if __name__ == "__main__":
    main()
