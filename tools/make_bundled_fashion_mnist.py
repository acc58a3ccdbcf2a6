"""Make the class-balanced Fashion-MNIST subset shipped in ntk_sketch/data (docs/datasets.md).

Reads the Debian package's IDX files (`apt-get install -y dataset-fashion-mnist`), draws without replacement
--per-class-train images of each class from the 60000 training images and --per-class-test from the 10000 test
images (seeded), shuffles each split, and writes uint8 arrays with np.savez_compressed:

    x_train (n, 28, 28) uint8, y_train (n,) uint8, train_index (n,) int64   -- index into the original train file
    x_test, y_test, test_index                                             -- likewise for t10k

plus the MIT notice of Fashion-MNIST ((c) 2017 Zalando SE) next to it.

    python tools/make_bundled_fashion_mnist.py            # default: 200 + 100 per class, seed 0
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ntk_sketch.datasets import FASHION_MNIST_DIR, read_idx  # noqa: E402

MIT_NOTICE = """Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist)

The file fashion_mnist_subset.npz in this folder is a subset of Fashion-MNIST (made by
tools/make_bundled_fashion_mnist.py from the Debian package dataset-fashion-mnist), distributed under the
following licence:

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def balanced_indices(labels, per_class, rng):
    chosen = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        if idx.size < per_class:
            raise SystemExit(f"class {c} has only {idx.size} images; asked for {per_class}.")
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    out = np.concatenate(chosen)
    return out[rng.permutation(out.size)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    ap.add_argument("--per-class-train", type=int, default=200)
    ap.add_argument("--per-class-test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "ntk_sketch", "data"))
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    arrays = {}
    for split, prefix, per_class in (("train", "train", args.per_class_train), ("test", "t10k", args.per_class_test)):
        images = read_idx(os.path.join(args.data_dir, f"{prefix}-images-idx3-ubyte.gz"), expected_magic=0x00000803)
        labels = read_idx(os.path.join(args.data_dir, f"{prefix}-labels-idx1-ubyte.gz"), expected_magic=0x00000801)
        idx = balanced_indices(labels, per_class, rng)
        arrays[f"x_{split}"] = images[idx].astype(np.uint8)
        arrays[f"y_{split}"] = labels[idx].astype(np.uint8)
        arrays[f"{split}_index"] = idx.astype(np.int64)
    os.makedirs(args.out_dir, exist_ok=True)
    out = os.path.join(args.out_dir, "fashion_mnist_subset.npz")
    np.savez_compressed(out, **arrays)
    with open(os.path.join(args.out_dir, "LICENSE-fashion-mnist.txt"), "w", encoding="utf-8") as fh:
        fh.write(MIT_NOTICE)
    print(f"wrote {out}: {os.path.getsize(out) / 1e6:.2f} MB, "
          f"train {arrays['x_train'].shape}, test {arrays['x_test'].shape}")


if __name__ == "__main__":
    main()
