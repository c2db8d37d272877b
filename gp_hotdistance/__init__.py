"""Hot-distance targets and weights for gunpowder training pipelines.

The math lives in :mod:`gp_hotdistance.core` (numpy only), the spec's API in
:class:`HotDistancePredictor`, and the gunpowder nodes :class:`AddHotDistance`
and :class:`BalanceHotDistance` in :mod:`gp_hotdistance.nodes`.
"""

from .core import (
    balance_weights,
    context_distance,
    distance_mask,
    face_distance,
    hot_distance_target,
    hot_distance_weights,
    signed_face_distance,
    unknown_distance,
)
from .nodes import AddHotDistance, BalanceHotDistance
from .predictor import HotDistanceArrayType, HotDistancePredictor

__version__ = "0.1.0"

__all__ = [
    "AddHotDistance",
    "BalanceHotDistance",
    "HotDistancePredictor",
    "HotDistanceArrayType",
    "balance_weights",
    "context_distance",
    "distance_mask",
    "face_distance",
    "hot_distance_target",
    "hot_distance_weights",
    "signed_face_distance",
    "unknown_distance",
]
