"""ntk_sketch: sketches and random features for the Neural Tangent Kernel in near input-sparsity time.

Reference: A. Zandieh, I. Han, H. Avron, N. Shoham, C. Kim, J. Shin, *Scaling Neural Tangent Kernels via
Sketching and Random Features*, NeurIPS 2021 (arXiv:2106.07880).

The feature maps (``NTKSketch``, ``NTKRandomFeatures``, ``CNTKSketch``) follow scikit-learn's shape: configure in
``__init__``, ``fit`` draws the random tables from ``seed``, ``transform`` maps rows.  Every estimator has
``get_params`` / ``set_params`` (so scikit-learn's ``clone``, ``Pipeline`` and ``GridSearchCV`` work with them) and
raises ``NotFittedError`` when used before ``fit``; scikit-learn itself is not needed.  Exact kernels
(``ntk_kernel``, ``cntk_kernel``) are the test oracle and the baseline.
"""
import os as _os

# Numba's OpenMP threads and OpenBLAS's threads both busy-wait after a parallel region.  On a machine with few
# cores (2 here) each pool's spinning steals the cores the other needs next: a BLAS product followed by a numba
# parallel loop (ntk_kernel) ran 0.073 s with the default policy and 0.058 s with passive waiting, and nothing we
# measured got slower.  libgomp reads this when numba first starts its OpenMP layer, so it must be set before
# that; setdefault leaves a user's own choice alone.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Threading layer: 'forksafe' unless the user chose one (NUMBA_THREADING_LAYER, or numba.config.THREADING_LAYER set
# before this import).  numba's 'forksafe' loads TBB when the tbb package is installed and otherwise its own
# 'workqueue' pool; on Linux it never loads 'omp', which is what numba picks by default.  The reason: numba's omp
# layer runs on GNU OpenMP, and a process that forks after a parallel region (multiprocessing's default start
# method on Linux, joblib, dask, scikit-learn's n_jobs) kills every child with "fork() called from a process
# already using GNU OpenMP", and Pool.map never returns.  'workqueue' is fork-safe but aborts when two threads
# launch parallel regions at once (numba releases the GIL inside them), so every parallel njit function of the
# library takes one process-wide lock (_validation.serialised): concurrent Python threads take turns, each turn
# using all of numba's threads, with results identical to a serial run.  tests/test_processes.py checks pools of
# every start method and concurrent threads.  TBB would need no lock but is a compiled dependency without wheels
# for every platform numba supports, so it stays optional (installed, it is preferred).  Speed: README
# "Conventions" quotes the measurement.  This is a process-wide numba setting: it also applies to the user's own
# parallel numba code, and it has no effect if parallel numba code already ran before ntk_sketch was imported.
import numba as _numba

if "NUMBA_THREADING_LAYER" not in _os.environ and str(_numba.config.THREADING_LAYER).lower() == "default":
    _numba.config.THREADING_LAYER = "forksafe"

# The package is layered; a lower layer never imports a higher one (tests/test_layout.py checks the graph):
#   kernels/   exact kernels and polynomial approximations      (layer 1)
#   sketches/  CountSketch, SRHT, TensorSRHT, PolySketch         (layer 2)
#   features/  NTKSketch, NTKRandomFeatures, CNTKSketch, GradRF  (layer 3)
#   learn/     ridge learners, Nystrom and MLP baselines         (layer 4)
# with _validation, _base, _linalg, metrics, datasets and demo beside them at the top.
from ._base import NotFittedError, check_is_fitted
from .features import CNNGradRF, CNTKSketch, GradRF, NTKRandomFeatures, NTKSketch
from .kernels import (
    arccos_kernel_0,
    arccos_kernel_1,
    cntk_grid_sizes,
    cntk_kernel,
    cntk_normalisers,
    nngp_kernel,
    ntk_kernel,
    taylor_coefficients_k0,
    taylor_coefficients_k1,
    taylor_truncation_error,
)
from .learn import (
    KernelRidgeClassifier,
    KernelRidgeRegressor,
    MLPClassifier,
    MLPRegressor,
    NystromFeatures,
    RidgeClassifier,
    RidgeMoments,
    RidgeRegressor,
    fit_stream_lean,
)
from .metrics import (
    entrywise_error_quantiles,
    relative_frobenius_error,
    spectral_epsilon,
    statistical_dimension,
)
from .sketches import (
    SRHT,
    CountSketch,
    PolySketch,
    TensorSRHT,
    apply_countsketch,
    apply_polysketch,
    apply_srht,
    draw_countsketch,
    draw_polysketch,
    draw_srht,
    draw_tensor_srht,
    fwht,
    polynomial_features,
    tensor_srht,
)

__version__ = "0.1.0"
