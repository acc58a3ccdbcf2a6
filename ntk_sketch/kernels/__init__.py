"""Layer 1: exact kernels and their polynomial approximations.

The arc-cosine functions ``k0``, ``k1`` (docs/math.md §1), the fully connected NTK and NNGP (§2), the CNTK with
global average pooling (§3), and non-negative polynomial approximations of ``k0``, ``k1`` and ``K_L`` (§5).
These are the test oracle and the baselines of every sketch.  This layer imports nothing from the layers above.
"""
from .arccos import (
    arccos_kernel_0,
    arccos_kernel_1,
    taylor_coefficients_k0,
    taylor_coefficients_k1,
    taylor_truncation_error,
)
from .cntk_exact import cntk_kernel
from .cntk_geometry import cntk_grid_sizes, cntk_normalisers
from .cntk_polynomials import cntk_data_polynomials
from .ntk_exact import nngp_cosine_kernel, nngp_kernel, ntk_cosine_kernel, ntk_kernel
from .polynomials import arccos_polynomials, ntk_polynomial

__all__ = [
    "arccos_kernel_0",
    "arccos_kernel_1",
    "taylor_coefficients_k0",
    "taylor_coefficients_k1",
    "taylor_truncation_error",
    "cntk_data_polynomials",
    "cntk_grid_sizes",
    "cntk_kernel",
    "cntk_normalisers",
    "nngp_cosine_kernel",
    "nngp_kernel",
    "ntk_cosine_kernel",
    "ntk_kernel",
    "arccos_polynomials",
    "ntk_polynomial",
]
