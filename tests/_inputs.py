"""Inputs that a careful user can hand the library and that once went wrong (issue 15), for the module tests."""
import numpy as np
import scipy.sparse as sp


def non_canonical_csr(seed=0, n=40, d=12):
    """A CSR matrix with unsorted column indices and duplicate entries, and its dense value (duplicates summed)."""
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for i in range(n):
        c = rng.choice(d, size=4, replace=False)
        c = np.concatenate([c[::-1], c[:1]])  # reversed order, then the first column again (a duplicate)
        rows += [i] * c.size
        cols += list(c)
        vals += list(rng.standard_normal(c.size))
    indptr = np.searchsorted(np.asarray(rows), np.arange(n + 1))
    X = sp.csr_matrix((np.asarray(vals), np.asarray(cols, dtype=np.int32), indptr.astype(np.int32)), shape=(n, d))
    dense = np.zeros((n, d))
    np.add.at(dense, (np.asarray(rows), np.asarray(cols)), np.asarray(vals))
    assert not X.has_canonical_format
    return X, dense


def snapshot_csr(X):
    return X.data.copy(), X.indices.copy(), X.indptr.copy()


def assert_csr_unchanged(X, snap):
    for a, b in zip((X.data, X.indices, X.indptr), snap):
        np.testing.assert_array_equal(a, b)


def read_only(a):
    """A read-only copy of a dense array or of a sparse matrix's arrays."""
    if sp.issparse(a):
        a = a.copy()
        for arr in (a.data, a.indices, a.indptr):
            arr.flags.writeable = False
        return a
    a = np.array(a)
    a.flags.writeable = False
    return a


def assert_scales_exactly(f, X, degree=1, exponents=(-1000, -700, -300, 0, 300, 600)):
    """f(2^k X) == 2^(degree k) f(X) bit for bit (powers of two commute with floating point, absent overflow)."""
    ref = f(X)
    for k in exponents:
        got = f(np.ldexp(X, k))
        np.testing.assert_array_equal(got, np.ldexp(ref, degree * k), err_msg=f"scale 2^{k}")
