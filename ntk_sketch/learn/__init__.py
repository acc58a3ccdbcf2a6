"""Layer 4: learners on features or kernels, and the baselines the feature maps are compared against.

Ridge regression and classification on features or feature streams (``ridge``), their streaming moments
(``ridge_moments``) and exact kernel ridge (``kernel_ridge``) (docs/math.md §8); Nystrom
NTK features and a finite ReLU MLP (the paper's Section 6 baselines).  May import every lower layer.
"""
from .mlp import MLPClassifier, MLPRegressor
from .nystrom import NystromFeatures
from .kernel_ridge import KernelRidgeClassifier, KernelRidgeRegressor
from .ridge import RidgeClassifier, RidgeRegressor, default_relative_lambdas, feature_chunks
from .ridge_lean import fit_stream_lean
from .ridge_moments import RidgeMoments, validation_mask

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "NystromFeatures",
    "KernelRidgeClassifier",
    "KernelRidgeRegressor",
    "RidgeClassifier",
    "RidgeRegressor",
    "RidgeMoments",
    "default_relative_lambdas",
    "feature_chunks",
    "fit_stream_lean",
    "validation_mask",
]
