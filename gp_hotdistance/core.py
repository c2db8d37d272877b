"""The numpy-level functions of the package, under their former home.

They now live in :mod:`gp_hotdistance.distance` (the face distance and the
target) and :mod:`gp_hotdistance.weights` (the class-balancing weights and the
distance mask); this module re-exports them so that ``from
gp_hotdistance.core import ...`` keeps working.
"""

from .distance import (
    context_distance,
    face_distance,
    hot_distance_target,
    padding_voxels,
    signed_face_distance,
    unknown_distance,
)
from .weights import balance_weights, distance_mask, hot_distance_weights, trust_reach

__all__ = [
    "balance_weights",
    "context_distance",
    "distance_mask",
    "face_distance",
    "hot_distance_target",
    "hot_distance_weights",
    "padding_voxels",
    "signed_face_distance",
    "trust_reach",
    "unknown_distance",
]
