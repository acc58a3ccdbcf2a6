"""ntk_sketch: sketches and random features for the Neural Tangent Kernel in near input-sparsity time.

Reference: A. Zandieh, I. Han, H. Avron, N. Shoham, C. Kim, J. Shin, *Scaling Neural Tangent Kernels via
Sketching and Random Features*, NeurIPS 2021 (arXiv:2106.07880).

The feature maps (``NTKSketch``, ``NTKRandomFeatures``, ``CNTKSketch``) follow scikit-learn's shape: configure in
``__init__``, ``fit`` draws the random tables from ``seed``, ``transform`` maps rows.  Exact kernels
(``ntk_kernel``, ``cntk_kernel``) are the test oracle and the baseline.
"""
from .arccos import (
    arccos_kernel_0,
    arccos_kernel_1,
    taylor_coefficients_k0,
    taylor_coefficients_k1,
    taylor_truncation_error,
)
from .cntk_exact import cntk_grid_sizes, cntk_kernel, cntk_normalisers
from .cntk_sketch import CNTKSketch
from .countsketch import CountSketch, apply_countsketch, draw_countsketch
from .metrics import (
    entrywise_error_quantiles,
    relative_frobenius_error,
    spectral_epsilon,
    statistical_dimension,
)
from .mlp import MLPClassifier, MLPRegressor
from .ntk_exact import nngp_kernel, ntk_kernel
from .ntk_random_features import NTKRandomFeatures
from .ntk_sketch_fc import NTKSketch
from .nystrom import NystromFeatures
from .polysketch import PolySketch, apply_polysketch, draw_polysketch, polynomial_features
from .ridge import KernelRidgeClassifier, KernelRidgeRegressor, RidgeClassifier, RidgeRegressor
from .srht import SRHT, apply_srht, draw_srht, fwht
from .tensor_srht import TensorSRHT, draw_tensor_srht, tensor_srht

__version__ = "0.1.0"
