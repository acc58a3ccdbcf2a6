"""Layer 3: feature maps of the NTK and CNTK, built from the sketches of layer 2 and the polynomials of layer 1.

``NTKSketch`` (Algorithm 1, docs/math.md §5), ``NTKRandomFeatures`` (Algorithm 2, §6) and ``CNTKSketch``
(Algorithm 3, §7), and the paper's gradient baselines ``GradRF`` / ``CNNGradRF`` (§11).  Each is configured in ``__init__``, draws its random tables in ``fit`` and maps rows in
``transform``.  Imports layers 1 and 2, never layer 4.
"""
from .cntk_sketch import CNTKSketch
from .grad_rf import CNNGradRF, GradRF
from .ntk_random_features import NTKRandomFeatures
from .ntk_sketch_fc import NTKSketch

__all__ = ["CNNGradRF", "CNTKSketch", "GradRF", "NTKRandomFeatures", "NTKSketch"]
