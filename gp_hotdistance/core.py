"""Deprecated: the numpy-level functions under their former home.

They live in :mod:`gp_hotdistance.distance` (the face distance and the target)
and :mod:`gp_hotdistance.weights` (the class-balancing weights and the distance
mask), and every public name is importable from :mod:`gp_hotdistance` itself.
This module re-exports them for code written against version 0.1 and warns
on import; it will be removed in a later release.
"""

import warnings

from . import distance, weights
from .distance import *  # noqa: F403
from .weights import *  # noqa: F403

warnings.warn(
    "gp_hotdistance.core is deprecated: import the same names from gp_hotdistance "
    "(or gp_hotdistance.distance and gp_hotdistance.weights)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [*distance.__all__, *weights.__all__]
