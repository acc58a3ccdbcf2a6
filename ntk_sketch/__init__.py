"""ntk_sketch: sketches and random features for the Neural Tangent Kernel in near input-sparsity time.

Reference: A. Zandieh, I. Han, H. Avron, N. Shoham, C. Kim, J. Shin, *Scaling Neural Tangent Kernels via
Sketching and Random Features*, NeurIPS 2021 (arXiv:2106.07880).

The feature maps (``NTKSketch``, ``NTKRandomFeatures``, ``CNTKSketch``) follow scikit-learn's shape: configure in
``__init__``, ``fit`` draws the random tables from ``seed``, ``transform`` maps rows.  Exact kernels
(``ntk_kernel``, ``cntk_kernel``) are the test oracle and the baseline.
"""
import os as _os

# Numba's OpenMP threads and OpenBLAS's threads both busy-wait after a parallel region.  On a machine with few
# cores (2 here) each pool's spinning steals the cores the other needs next: a BLAS product followed by a numba
# parallel loop (ntk_kernel) ran 0.073 s with the default policy and 0.058 s with passive waiting, and nothing we
# measured got slower.  libgomp reads this when numba first starts its OpenMP layer, so it must be set before
# that; setdefault leaves a user's own choice alone.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
