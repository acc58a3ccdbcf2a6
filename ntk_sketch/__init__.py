"""ntk_sketch: sketches and random features for the Neural Tangent Kernel in near input-sparsity time.

Reference: A. Zandieh, I. Han, H. Avron, N. Shoham, C. Kim, J. Shin, *Scaling Neural Tangent Kernels via
Sketching and Random Features*, NeurIPS 2021 (arXiv:2106.07880).
"""
from .arccos import (
    arccos_kernel_0,
    arccos_kernel_1,
    taylor_coefficients_k0,
    taylor_coefficients_k1,
    taylor_truncation_error,
)

__version__ = "0.1.0"
