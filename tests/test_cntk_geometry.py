"""Tests for ntk_sketch.kernels.cntk_geometry (grids, patch offsets, normalisers, fixed-layer rules; docs/math.md §3).

The exact kernel and CNTKSketch both take these from the geometry module; their own tests check the recursions.
"""
import numpy as np
import pytest

import ntk_sketch
from ntk_sketch import kernels
from ntk_sketch.kernels import cntk_exact, cntk_geometry
from ntk_sketch.kernels.cntk_geometry import (_image_normalisers, _patch_sum, check_architecture, check_fixed_layers,
                                              check_receptive_field, cntk_grid_sizes, cntk_normalisers,
                                              grid_geometry, patch_offset)
from naive import cntk_normalisers_naive


def test_one_copy_exported_everywhere():
    for mod in (ntk_sketch, kernels, cntk_exact):
        assert mod.cntk_grid_sizes is cntk_geometry.cntk_grid_sizes
        assert mod.cntk_normalisers is cntk_geometry.cntk_normalisers


def test_grids_and_offsets():
    assert cntk_grid_sizes(9, 7, 2, 3, "valid") == [(9, 7), (7, 5), (5, 3)]
    assert cntk_grid_sizes(9, 7, 2, 3, "same") == [(9, 7)] * 3
    assert patch_offset(3, "valid") == 0 and patch_offset(5, "same") == -2 and patch_offset(1, "same") == 0
    # even q, 'same': (q-1)//2 zeros before, q//2 after
    assert patch_offset(2, "same") == 0 and patch_offset(4, "same") == -1 and patch_offset(6, "same") == -2
    assert cntk_grid_sizes(9, 7, 2, 4, "same") == [(9, 7)] * 3
    dims, off = grid_geometry(6, 6, 2, 3, "valid")
    assert dims.dtype == np.int64 and dims.tolist() == [[6, 6], [4, 4], [2, 2]] and off == 0


def test_patch_sum_is_the_zero_padded_window_sum():
    rng = np.random.default_rng(0)
    src = rng.random((5, 4))
    for q, padding in ((3, "same"), (2, "valid"), (3, "valid"), (1, "same"), (2, "same"), (4, "same")):
        off = patch_offset(q, padding)
        ho, wo = cntk_grid_sizes(5, 4, 1, q, padding)[1]
        out = np.zeros(ho * wo)
        _patch_sum(src.ravel(), 5, 4, ho, wo, q, off, 0.5, np.zeros(5 * wo), out)
        padded = np.zeros((5 + 2 * q, 4 + 2 * q))
        padded[q:q + 5, q:q + 4] = src
        ref = np.array([[padded[q + i + off:q + i + off + q, q + j + off:q + j + off + q].sum() for j in range(wo)]
                        for i in range(ho)])
        np.testing.assert_allclose(out.reshape(ho, wo), 0.5 * ref, rtol=1e-14)


@pytest.mark.parametrize("q", [2, 4])
def test_same_padding_of_even_filters_is_one_zero_more_after(q):
    """'same' with even q: output pixel p reads input pixels p - (q-1)//2 .. p + q//2 (TensorFlow / JAX 'SAME'),
    so a single non-zero pixel (i0, j0) reaches N_0 exactly at rows i0 - q//2 .. i0 + (q-1)//2 (likewise
    columns), clipped to the grid."""
    i0, j0 = 3, 1
    x = np.zeros((1, 7, 6, 1))
    x[0, i0, j0, 0] = 2.0
    N0 = cntk_normalisers(x, depth=1, filter_size=q, padding="same")[0][0]
    rows = [i for i in range(7) if i0 - q // 2 <= i <= i0 + (q - 1) // 2]
    cols = [j for j in range(6) if j0 - q // 2 <= j <= j0 + (q - 1) // 2]
    expected = np.zeros((7, 6))
    expected[np.ix_(rows, cols)] = 4.0
    np.testing.assert_array_equal(N0, expected)


@pytest.mark.parametrize("padding,q", [("valid", 3), ("same", 3), ("valid", 2), ("same", 1), ("same", 2),
                                       ("same", 4)])
def test_normalisers_match_naive(padding, q):
    X = np.random.default_rng(1).random((2, 7, 6, 2))
    L = 2
    dims, off = grid_geometry(7, 6, L, q, padding)
    batch = cntk_normalisers(X, depth=L, filter_size=q, padding=padding)
    for a in range(2):
        norms = np.zeros((L, 42))
        _image_normalisers(X[a], dims, q, off, norms, np.zeros(42), np.zeros(42))
        for h, ref in enumerate(cntk_normalisers_naive(X[a], L, q, padding)):
            hh, wh = dims[h + 1]
            # sums of at most 9 positive terms: a few ulps apart from the naive order
            np.testing.assert_allclose(norms[h, :hh * wh].reshape(hh, wh), ref, rtol=1e-13)
            np.testing.assert_array_equal(batch[h][a], norms[h, :hh * wh].reshape(hh, wh))


def test_validation():
    # even filters with 'same' are accepted (asymmetric 'SAME' alignment, see test_same_padding_of_even_filters...)
    assert check_architecture(2, 2, "same") == (2, 2) and check_architecture(3, 4, "same") == (3, 4)
    with pytest.raises(ValueError, match="padding must be"):
        check_architecture(2, 3, "full")
    with pytest.raises(ValueError, match="depth must be"):
        check_architecture(0, 3, "valid")
    with pytest.raises(ValueError, match="identically zero"):
        check_fixed_layers(1, True, True)
    with pytest.raises(ValueError, match="fix_last must be True or False"):
        check_fixed_layers(2, True, "no")
    assert check_fixed_layers(1, True, False) == (True, False)
    with pytest.raises(ValueError, match="receptive field 7 x 7"):
        check_receptive_field(6, 9, 3, 3, "valid")
    check_receptive_field(6, 9, 3, 3, "same")
    check_receptive_field(7, 7, 3, 3, "valid")
