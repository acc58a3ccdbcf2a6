"""Layer 2: oblivious sketching primitives (docs/math.md §4).

CountSketch / OSNAP (input-sparsity time on CSR rows), the fast Walsh-Hadamard transform and SRHT, TensorSRHT
of two vectors, and PolySketch of any degree.  Each module follows one pattern: ``draw_*`` makes the random
tables from a ``numpy.random.Generator``, ``apply_*`` (or the function of the same name) maps rows with them in
njit code, and a small class bundles the two for users.  Imports only ``ntk_sketch._validation``.
"""
from .countsketch import CountSketch, apply_countsketch, draw_countsketch
from .polysketch import PolySketch, apply_polysketch, draw_polysketch, polynomial_features
from .srht import SRHT, apply_srht, draw_srht, fwht
from .tensor_srht import TensorSRHT, draw_tensor_srht, tensor_srht

__all__ = [
    "CountSketch",
    "apply_countsketch",
    "draw_countsketch",
    "PolySketch",
    "apply_polysketch",
    "draw_polysketch",
    "polynomial_features",
    "SRHT",
    "apply_srht",
    "draw_srht",
    "fwht",
    "TensorSRHT",
    "draw_tensor_srht",
    "tensor_srht",
]
