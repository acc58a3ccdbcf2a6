"""Layer 4: learners on features or kernels, and the baselines the feature maps are compared against.

Ridge regression and classification on features, feature streams or exact kernels (docs/math.md §8); Nystrom
NTK features and a finite ReLU MLP (the paper's Section 6 baselines).  May import every lower layer.
"""
from .mlp import MLPClassifier, MLPRegressor
from .nystrom import NystromFeatures
from .ridge import KernelRidgeClassifier, KernelRidgeRegressor, RidgeClassifier, RidgeRegressor

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "NystromFeatures",
    "KernelRidgeClassifier",
    "KernelRidgeRegressor",
    "RidgeClassifier",
    "RidgeRegressor",
]
