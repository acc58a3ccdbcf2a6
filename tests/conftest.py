"""Shared pytest configuration: hypothesis profiles.

The ``ci`` profile (selected by HYPOTHESIS_PROFILE=ci, which .ci/run sets, and the default here too) is
derandomized, so every run tries the same examples and a statistical test cannot flake between runs; numba
compile time makes per-example deadlines meaningless, so they are off.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=25,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
