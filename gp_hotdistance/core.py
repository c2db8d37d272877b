"""The numpy-level functions of the package, under their former home.

They now live in :mod:`gp_hotdistance.distance` (the face distance and the
target) and :mod:`gp_hotdistance.weights` (the class-balancing weights and the
distance mask); this module re-exports them so that ``from
gp_hotdistance.core import ...`` keeps working.
"""

from . import distance, weights
from .distance import *  # noqa: F403
from .weights import *  # noqa: F403

__all__ = [*distance.__all__, *weights.__all__]
